package model

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// BootEnv describes how to boot a machine into one environment (discovery,
// local disk, an OS installer, a LinuxKit image): the kernel, initrds and
// command line per architecture, and the templates rendered for each
// machine that uses it.
type BootEnv struct {
	ObjectMeta
	Name        string
	Description string `json:",omitempty"`
	// Local bootenvs boot from the machine's own disk; DHCP gives their
	// machines an address and no boot file.
	Local bool `json:",omitempty"`
	// Arches holds kernel, initrds and files per architecture ("amd64", "arm64").
	Arches map[string]ArchInfo `json:",omitempty"`
	// BootParams is a template for the kernel command line, appended to the
	// architecture's own BootParams.
	BootParams string `json:",omitempty"`
	// Templates are rendered per machine and served over TFTP and HTTP.
	Templates []TemplateInfo `json:",omitempty"`
	// RequiredParams must resolve for a machine to use the bootenv.
	RequiredParams []string `json:",omitempty"`
	OptionalParams []string `json:",omitempty"`
	// Params are the bootenv's own param values, below the machine's
	// profiles and above the global profile in precedence.
	Params map[string]any `json:",omitempty"`
	// ReadOnly is true for built-in bootenvs (set by the server, not stored).
	ReadOnly bool `json:",omitempty"`
	// Available and Errors are computed by the server: whether every file
	// the bootenv needs is present with the right checksum, and what is not.
	Available bool     `json:",omitempty"`
	Errors    []string `json:",omitempty"`
}

// ArchInfo is what a bootenv needs on one architecture. Paths are relative
// to the boot root and may contain templates over the machine.
type ArchInfo struct {
	Kernel     string   `json:",omitempty"`
	Initrds    []string `json:",omitempty"`
	BootParams string   `json:",omitempty"`
	// IsoFile names an uploaded ISO whose contents the kernel and initrds
	// come from; IsoSha256 is its expected checksum.
	IsoFile   string `json:",omitempty"`
	IsoSha256 string `json:",omitempty"`
	// Files the bootenv needs, with checksums where known.
	Files []BootFile `json:",omitempty"`
}

// BootFile is a file a bootenv needs in the boot root.
type BootFile struct {
	Path   string
	Sha256 string `json:",omitempty"`
	// Source says where an operator gets the file (a URL or a build command).
	Source string `json:",omitempty"`
}

// TemplateInfo binds a template to what a machine is served. The boot
// loader templates have the well-known names TemplateIPXE, TemplatePXELinux
// and TemplateGRUB and are served at the paths firmware asks for
// (<mac>.ipxe, pxelinux.cfg/01-<mac>, grub/grub.cfg-01-<mac>, ...); every
// other template is served at machines/<uuid>/<Path> (e.g. "preseed.cfg",
// "user-data"). Exactly one of ID (a stored or built-in template) and
// Contents is set.
type TemplateInfo struct {
	Name     string
	Path     string
	ID       string `json:",omitempty"`
	Contents string `json:",omitempty"`
}

// Boot loader template names.
const (
	TemplateIPXE     = "ipxe"
	TemplatePXELinux = "pxelinux"
	TemplateGRUB     = "grub"
)

// IsBootLoaderTemplate reports whether name is one of the boot loader
// template names.
func IsBootLoaderTemplate(name string) bool {
	return name == TemplateIPXE || name == TemplatePXELinux || name == TemplateGRUB
}

// Template returns the bootenv's template binding by name.
func (b *BootEnv) Template(name string) (TemplateInfo, bool) {
	for _, t := range b.Templates {
		if t.Name == name {
			return t, true
		}
	}
	return TemplateInfo{}, false
}

// Built-in bootenv names that other packages refer to.
const (
	BootEnvDiscovery = "discovery"
	BootEnvLocal     = "local"
	BootEnvWipe      = "wipe"
	BootEnvLinuxKit  = "linuxkit"
)

func (*BootEnv) Kind() string  { return KindBootEnvs }
func (b *BootEnv) Key() string { return b.Name }
func (b *BootEnv) Normalize()  {}
func (b *BootEnv) Indexes() map[string][]string {
	return nil
}

// Validate checks names, paths and template bindings.
func (b *BootEnv) Validate() error {
	var errs []error
	if err := validName("Name", b.Name); err != nil {
		errs = append(errs, err)
	}
	for arch, ai := range b.Arches {
		f := "Arches." + arch
		if arch != ArchAMD64 && arch != ArchARM64 {
			errs = append(errs, Invalid(f, "architecture %q is not one of amd64, arm64", arch))
		}
		if ai.Kernel != "" {
			if err := validRelPath(f+".Kernel", ai.Kernel); err != nil {
				errs = append(errs, err)
			}
		}
		for i, p := range ai.Initrds {
			if err := validRelPath(fmt.Sprintf("%s.Initrds[%d]", f, i), p); err != nil {
				errs = append(errs, err)
			}
		}
		for i, bf := range ai.Files {
			if err := validRelPath(fmt.Sprintf("%s.Files[%d].Path", f, i), bf.Path); err != nil {
				errs = append(errs, err)
			}
			if bf.Sha256 != "" && !isHex(bf.Sha256, 64) {
				errs = append(errs, Invalid(fmt.Sprintf("%s.Files[%d].Sha256", f, i), "is not a hex sha256"))
			}
		}
		if ai.IsoSha256 != "" && !isHex(ai.IsoSha256, 64) {
			errs = append(errs, Invalid(f+".IsoSha256", "is not a hex sha256"))
		}
	}
	names := map[string]bool{}
	for i, t := range b.Templates {
		f := fmt.Sprintf("Templates[%d]", i)
		if t.Name == "" {
			errs = append(errs, Invalid(f+".Name", "is required"))
		} else if names[t.Name] {
			errs = append(errs, Invalid(f+".Name", "%q is used twice", t.Name))
		}
		names[t.Name] = true
		if t.Path == "" && !IsBootLoaderTemplate(t.Name) {
			errs = append(errs, Invalid(f+".Path", "is required"))
		}
		if t.Path != "" {
			if err := validRelPath(f+".Path", t.Path); err != nil {
				errs = append(errs, err)
			}
		}
		if (t.ID == "") == (t.Contents == "") {
			errs = append(errs, Invalid(f, "exactly one of ID and Contents must be set"))
		}
	}
	for k := range b.Params {
		if validName("", k) != nil {
			errs = append(errs, Invalid("Params", "param name %q is not valid", k))
		}
	}
	return errors.Join(errs...)
}

// validRelPath accepts clean relative slash paths; template actions are
// allowed and checked when rendered.
func validRelPath(field, p string) error {
	if strings.Contains(p, "{{") {
		return nil
	}
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return Invalid(field, "%q is not a clean relative path", p)
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// Template is a stored text/template that bootenvs reference by ID and
// other templates include with {{template "ID" .}}.
type Template struct {
	ObjectMeta
	ID          string
	Description string `json:",omitempty"`
	Contents    string
	ReadOnly    bool `json:",omitempty"`
}

func (*Template) Kind() string                   { return KindTemplates }
func (t *Template) Key() string                  { return t.ID }
func (t *Template) Normalize()                   {}
func (t *Template) Indexes() map[string][]string { return nil }

// Validate checks the ID; parsing the contents is the templates package's job.
func (t *Template) Validate() error {
	return validName("ID", t.ID)
}
