package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironcast/ironcast/model"
)

func TestBootEnvAvailability(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	root := t.TempDir()
	svc.bootRoot = root
	write := func(p, content string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("kernel"))
	good := hex.EncodeToString(sum[:])
	be := &model.BootEnv{Name: "custom", Arches: map[string]model.ArchInfo{
		"amd64": {Kernel: "custom/vmlinuz", Initrds: []string{"custom/initrd"}, Files: []model.BootFile{{Path: "custom/vmlinuz", Sha256: good}}},
	}, Templates: []model.TemplateInfo{{Name: "ipxe", ID: "ipxe-linux"}}}
	mustCreate(t, svc, be)

	check := func(wantAvail bool, wantErr string) {
		t.Helper()
		got, err := svc.Get(ctx, model.KindBootEnvs, "custom")
		if err != nil {
			t.Fatal(err)
		}
		b := got.(*model.BootEnv)
		if b.Available != wantAvail || !strings.Contains(strings.Join(b.Errors, "\n"), wantErr) {
			t.Errorf("Available=%v Errors=%q, want %v and %q", b.Available, b.Errors, wantAvail, wantErr)
		}
	}
	check(false, "amd64: custom/initrd is missing")
	write("custom/initrd", "initrd")
	write("custom/vmlinuz", "not the kernel")
	wrong := sha256.Sum256([]byte("not the kernel"))
	check(false, "custom/vmlinuz has sha256 "+hex.EncodeToString(wrong[:])+", expected "+good)
	write("custom/vmlinuz", "kernel")
	check(true, "")

	local, _ := svc.Get(ctx, model.KindBootEnvs, "local")
	if !local.(*model.BootEnv).Available {
		t.Error("local is not available")
	}
	disc, _ := svc.Get(ctx, model.KindBootEnvs, "discovery")
	if d := disc.(*model.BootEnv); d.Available || !strings.Contains(strings.Join(d.Errors, "\n"), "ironcast bootenvs build discovery --arch amd64") {
		t.Errorf("discovery without files: %v %q", d.Available, d.Errors)
	}
}
