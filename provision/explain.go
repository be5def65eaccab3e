package provision

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Explanation says why a machine boots what it boots: its bootenv, every
// resolved param with its source, and the files it would be served.
type Explanation struct {
	UUID    string
	Name    string
	State   model.MachineState
	BootEnv string
	Arch    string
	// Local is true when DHCP gives the machine no boot file.
	Local  bool
	Params []model.ResolvedParam
	// Files are the paths the machine would fetch, with how each is made:
	// "rendered from template T", "file in the boot root", or a problem.
	Files []ExplainedFile
	// Problems lists what would stop the machine from booting.
	Problems []string `json:",omitempty"`
}

// ExplainedFile is one path a machine would be served.
type ExplainedFile struct {
	Path   string
	Source string
	Error  string `json:",omitempty"`
}

// Explain builds a machine's explanation. Secure values stay sealed.
func (s *Service) Explain(ctx context.Context, uuid string, server netip.Addr) (*Explanation, error) {
	m, err := store.Get[model.Machine](ctx, s.st, uuid)
	if err != nil {
		return nil, err
	}
	params, err := s.AggregateParams(ctx, uuid)
	if err != nil {
		return nil, err
	}
	be, err := s.bootEnvFor(ctx, m)
	if err != nil {
		return nil, err
	}
	s.checkAvailable(be)
	ex := &Explanation{UUID: m.UUID, Name: m.Name, State: m.State, BootEnv: be.Name, Arch: m.Arch, Local: be.Local, Params: params}
	if !be.Available {
		ex.Problems = append(ex.Problems, be.Errors...)
	}
	for _, rp := range be.RequiredParams {
		found := false
		for _, p := range params {
			if p.Name == rp {
				found = true
			}
		}
		if !found {
			ex.Problems = append(ex.Problems, fmt.Sprintf("required param %s is not set", rp))
		}
	}
	mac := m.PrimaryMAC()
	loader := map[string]string{
		model.TemplateIPXE:     mac + ".ipxe",
		model.TemplatePXELinux: "pxelinux.cfg/01-" + strings.ReplaceAll(mac, ":", "-"),
		model.TemplateGRUB:     "grub/grub.cfg-01-" + strings.ReplaceAll(mac, ":", "-"),
	}
	for _, t := range be.Templates {
		path := loader[t.Name]
		if path == "" {
			path = "machines/" + m.UUID + "/" + t.Path
		}
		if mac == "" && model.IsBootLoaderTemplate(t.Name) {
			continue
		}
		src := "rendered from template " + t.ID
		if t.ID == "" {
			src = "rendered from bootenv " + be.Name + " template " + t.Name
		}
		f := ExplainedFile{Path: path, Source: src}
		if _, err := s.RenderPath(ctx, m.UUID, path, server); err != nil {
			f.Error = err.Error()
			ex.Problems = append(ex.Problems, fmt.Sprintf("%s: %v", path, err))
		}
		ex.Files = append(ex.Files, f)
	}
	if ai, ok := be.Arches[m.Arch]; ok {
		rc, _, err := s.RenderContext(ctx, m, mac, server)
		if err == nil {
			if k, err := rc.BootEnv.Kernel(); err == nil {
				ex.Files = append(ex.Files, ExplainedFile{Path: k, Source: "file in the boot root (kernel)"})
			} else if ai.Kernel != "" {
				ex.Files = append(ex.Files, ExplainedFile{Path: ai.Kernel, Source: "kernel", Error: err.Error()})
			}
			if ins, err := rc.BootEnv.Initrds(); err == nil {
				for _, p := range ins {
					ex.Files = append(ex.Files, ExplainedFile{Path: p, Source: "file in the boot root (initrd)"})
				}
			}
		}
	} else if !be.Local {
		ex.Problems = append(ex.Problems, fmt.Sprintf("bootenv %s has nothing for arch %s", be.Name, m.Arch))
	}
	sort.SliceStable(ex.Files, func(i, j int) bool { return ex.Files[i].Path < ex.Files[j].Path })
	return ex, nil
}
