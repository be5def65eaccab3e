package bootenvs

import (
	"testing"

	"github.com/ironcast/ironcast/model"
)

func TestLoad(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alma-9-install", "debian-12-install", "discovery", "flatcar-install", "linuxkit", "local", "ubuntu-24.04-install", "wipe"}
	var got []string
	for _, b := range c.BootEnvs() {
		got = append(got, b.Name)
		if !b.ReadOnly {
			t.Errorf("%s is not read-only", b.Name)
		}
		for _, name := range []string{model.TemplateIPXE, model.TemplateGRUB, model.TemplatePXELinux} {
			if _, ok := b.Template(name); !ok {
				t.Errorf("%s has no %s template", b.Name, name)
			}
		}
		if !b.Local {
			for _, arch := range []string{model.ArchAMD64, model.ArchARM64} {
				if b.Arches[arch].Kernel == "" {
					t.Errorf("%s has no %s kernel", b.Name, arch)
				}
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("bootenvs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("bootenvs = %v, want %v", got, want)
		}
	}
	if b := find(c, "local"); b == nil || !b.Local {
		t.Error("local bootenv is not Local")
	}
}

func find(c *Catalog, name string) *model.BootEnv {
	for _, b := range c.BootEnvs() {
		if b.Name == name {
			return b
		}
	}
	return nil
}
