package provision

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/templates"
)

// Tokens issues the tokens templates embed: a machine-scoped token for a
// known machine's callbacks, and a short-lived registration token for the
// discovery image of a machine not known yet.
type Tokens interface {
	MachineToken(uuid string) (string, error)
	RegisterToken() (string, error)
}

// RenderTarget is what a requested path resolves to: which machine (or
// unknown MAC), and which of its bootenv's templates.
type RenderTarget struct {
	Machine *model.Machine // nil for an unknown machine
	MAC     string         // the booting MAC, when the path names one
	// Template is a boot loader template name (ipxe, pxelinux, grub) or,
	// for machines/<uuid>/<path>, the served path.
	Template string
	// PerMachine is true for machines/<uuid>/<path> files.
	PerMachine bool
	// GenericGRUB is true for grub/grub.cfg asked by an unknown client: it
	// chains to the per-MAC config.
	GenericGRUB bool
}

// Render implements bootfs.Renderer: it serves per-machine boot loader
// configs and machines/<uuid>/ files. ok is false for paths that are not
// virtual files (the disk is tried then).
func (s *Service) Render(ctx context.Context, req model.FileRequest) ([]byte, bool, error) {
	tgt, ok, err := s.resolvePath(ctx, req)
	if err != nil || !ok {
		return nil, ok, err
	}
	out, err := s.renderTarget(ctx, tgt, req)
	who := tgt.MAC
	if tgt.Machine != nil {
		who = tgt.Machine.UUID
	}
	if err != nil {
		s.log.Warn("render failed", "path", req.Path, "machine", who, "client", req.Remote.Addr(), "err", err)
		s.publish(model.Event{Type: "render.failed", Kind: model.KindMachines, Key: keyOf(tgt.Machine), Attrs: map[string]any{"path": req.Path, "mac": tgt.MAC, "error": err.Error(), "protocol": req.Protocol}})
		return nil, true, err
	}
	s.publish(model.Event{Type: "render", Kind: model.KindMachines, Key: keyOf(tgt.Machine), Attrs: map[string]any{"path": req.Path, "mac": tgt.MAC, "bytes": len(out), "protocol": req.Protocol}})
	return out, true, nil
}

func keyOf(m *model.Machine) string {
	if m == nil {
		return ""
	}
	return m.UUID
}

// resolvePath maps a cleaned boot path to a render target.
func (s *Service) resolvePath(ctx context.Context, req model.FileRequest) (RenderTarget, bool, error) {
	p := req.Path
	switch {
	case strings.HasSuffix(p, ".ipxe") && !strings.Contains(p, "/"):
		name := strings.TrimSuffix(p, ".ipxe")
		if name == "default" || name == "boot" {
			if q := req.Query["mac"]; q != "" {
				name = q
			} else {
				return s.targetByAddr(ctx, req.Remote.Addr(), model.TemplateIPXE)
			}
		}
		mac, err := parseMAC(name)
		if err != nil {
			return RenderTarget{}, false, nil
		}
		return s.targetByMAC(ctx, mac, model.TemplateIPXE)
	case strings.HasPrefix(p, "pxelinux.cfg/"):
		name := strings.TrimPrefix(p, "pxelinux.cfg/")
		switch {
		case strings.HasPrefix(name, "01-"):
			mac, err := parseMAC(name[3:])
			if err != nil {
				return RenderTarget{}, false, nil
			}
			return s.targetByMAC(ctx, mac, model.TemplatePXELinux)
		case name == "default":
			return s.targetByAddr(ctx, req.Remote.Addr(), model.TemplatePXELinux)
		case len(name) == 8:
			b, err := hex.DecodeString(name)
			if err != nil {
				return RenderTarget{}, false, nil
			}
			return s.targetByAddr(ctx, netip.AddrFrom4([4]byte(b)), model.TemplatePXELinux)
		}
		return RenderTarget{}, false, nil
	case p == "grub/grub.cfg":
		tgt, ok, err := s.targetByAddr(ctx, req.Remote.Addr(), model.TemplateGRUB)
		if err == nil && ok && tgt.Machine == nil && tgt.MAC == "" {
			tgt.GenericGRUB = true
		}
		return tgt, ok, err
	case strings.HasPrefix(p, "grub/grub.cfg-"):
		name := strings.TrimPrefix(strings.TrimPrefix(p, "grub/grub.cfg-"), "01-")
		mac, err := parseMAC(name)
		if err != nil {
			return RenderTarget{}, false, nil
		}
		return s.targetByMAC(ctx, mac, model.TemplateGRUB)
	case strings.HasPrefix(p, "machines/"):
		rest := strings.TrimPrefix(p, "machines/")
		uuid, file, ok := strings.Cut(rest, "/")
		if !ok || file == "" || !model.ValidUUID(uuid) {
			return RenderTarget{}, false, nil
		}
		m, err := store.Get[model.Machine](ctx, s.st, uuid)
		if errors.Is(err, model.ErrNotFound) {
			return RenderTarget{}, false, nil
		}
		if err != nil {
			return RenderTarget{}, false, err
		}
		return RenderTarget{Machine: m, MAC: m.PrimaryMAC(), Template: file, PerMachine: true}, true, nil
	}
	return RenderTarget{}, false, nil
}

// parseMAC accepts colon, dash or plain-hex MACs.
func parseMAC(s string) (string, error) {
	if len(s) == 12 {
		if _, err := hex.DecodeString(s); err == nil {
			var b strings.Builder
			for i := 0; i < 12; i += 2 {
				if i > 0 {
					b.WriteByte(':')
				}
				b.WriteString(s[i : i+2])
			}
			s = b.String()
		}
	}
	return model.NormalizeMAC(s)
}

func (s *Service) targetByMAC(ctx context.Context, mac, tmpl string) (RenderTarget, bool, error) {
	m, err := store.LookupBy[model.Machine](ctx, s.st, "mac", mac)
	if errors.Is(err, model.ErrNotFound) {
		return RenderTarget{MAC: mac, Template: tmpl}, true, nil
	}
	if err != nil {
		return RenderTarget{}, false, err
	}
	return RenderTarget{Machine: m, MAC: mac, Template: tmpl}, true, nil
}

// targetByAddr finds the machine at an IPv4 address (its Address, else
// its lease); an unknown address renders the unknown-machine bootenv.
func (s *Service) targetByAddr(ctx context.Context, addr netip.Addr, tmpl string) (RenderTarget, bool, error) {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return RenderTarget{Template: tmpl}, true, nil
	}
	m, err := store.LookupBy[model.Machine](ctx, s.st, "ip", addr.String())
	if err == nil {
		return RenderTarget{Machine: m, MAC: m.PrimaryMAC(), Template: tmpl}, true, nil
	}
	if !errors.Is(err, model.ErrNotFound) {
		return RenderTarget{}, false, err
	}
	l, err := store.Get[model.Lease](ctx, s.st, addr.String())
	if err == nil && l.Token != "" {
		return s.targetByMAC(ctx, l.Token, tmpl)
	}
	if err != nil && !errors.Is(err, model.ErrNotFound) {
		return RenderTarget{}, false, err
	}
	return RenderTarget{Template: tmpl}, true, nil
}

// genericGRUB chains an unknown GRUB client to its per-MAC config.
const genericGRUB = `# ironcast: chain to this machine's own config
set timeout=0
configfile $prefix/grub.cfg-01-$net_default_mac
`

// bootEnvFor returns the bootenv a machine boots (the unknown-machine
// bootenv for nil).
func (s *Service) bootEnvFor(ctx context.Context, m *model.Machine) (*model.BootEnv, error) {
	name := s.unknownBootEnv
	if m != nil && m.BootEnv != "" {
		name = m.BootEnv
	}
	obj, err := s.Get(ctx, model.KindBootEnvs, name)
	if err != nil {
		return nil, fmt.Errorf("bootenv %s: %w", name, err)
	}
	return obj.(*model.BootEnv), nil
}

// RenderContext builds the template context for a machine (nil: unknown,
// booting from mac) as reached at server.
func (s *Service) RenderContext(ctx context.Context, m *model.Machine, mac string, server netip.Addr) (*templates.RenderContext, *model.BootEnv, error) {
	be, err := s.bootEnvFor(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	rc := &templates.RenderContext{
		Machine:    templates.MachineFrom(m, mac),
		BootEnv:    templates.BootEnv{BootEnv: be},
		ServerAddr: server.Unmap(),
		HTTPPort:   s.httpPort,
		APIPort:    s.apiPort,
		Firmware:   s.firmwareOf(mac),
	}
	if rc.Machine.Arch == "" {
		rc.Machine.Arch = rc.Firmware.Arch()
	}
	if m != nil {
		layers, err := s.Layers(ctx, m)
		if err != nil {
			return nil, nil, err
		}
		layers.BootEnv = be
		rc.Resolve = func(name string) (any, bool) {
			r, ok := layers.Resolve(name)
			if !ok {
				return nil, false
			}
			if secrets.IsSealed(r.Value) {
				v, err := s.sealer.Open(r.Value)
				if err != nil {
					s.log.Warn("secure param does not open", "machine", m.UUID, "param", name, "err", err)
					return nil, false
				}
				return v, true
			}
			return r.Value, true
		}
		if s.tokens != nil {
			uuid := m.UUID
			rc.Token = func() (string, error) { return s.tokens.MachineToken(uuid) }
		}
	} else {
		layers, err := s.Layers(ctx, &model.Machine{})
		if err != nil {
			return nil, nil, err
		}
		layers.BootEnv = be
		rc.Resolve = func(name string) (any, bool) {
			r, ok := layers.Resolve(name)
			if !ok || secrets.IsSealed(r.Value) {
				return nil, false // unknown machines never see secure values
			}
			return r.Value, true
		}
		if s.tokens != nil {
			rc.Token = s.tokens.RegisterToken
		}
	}
	return rc, be, nil
}

func (s *Service) renderTarget(ctx context.Context, tgt RenderTarget, req model.FileRequest) ([]byte, error) {
	if tgt.GenericGRUB {
		return []byte(genericGRUB), nil
	}
	rc, be, err := s.RenderContext(ctx, tgt.Machine, tgt.MAC, req.Local.Addr())
	if err != nil {
		return nil, err
	}
	if tgt.PerMachine {
		for _, t := range be.Templates {
			if t.Path == tgt.Template && !model.IsBootLoaderTemplate(t.Name) {
				return s.renderInfo(be, t, rc)
			}
		}
		if out, ok, err := s.metadataFile(ctx, tgt.Machine, tgt.Template, rc); ok {
			return out, err
		}
		return nil, fmt.Errorf("bootenv %s has no template for %s: %w", be.Name, tgt.Template, model.ErrNotFound)
	}
	t, ok := be.Template(tgt.Template)
	if !ok {
		return nil, fmt.Errorf("bootenv %s has no %s template: %w", be.Name, tgt.Template, model.ErrNotFound)
	}
	return s.renderInfo(be, t, rc)
}

func (s *Service) renderInfo(be *model.BootEnv, t model.TemplateInfo, rc *templates.RenderContext) ([]byte, error) {
	if t.Contents != "" {
		out, err := s.engine.RenderString(be.Name+"/"+t.Name, t.Contents, rc)
		return []byte(out), err
	}
	return s.engine.Render(t.ID, rc)
}

// RenderPath renders what machine uuid is served at path, exactly as a
// client at server would get it (for `ironcast machines render`).
func (s *Service) RenderPath(ctx context.Context, uuid, path string, server netip.Addr) ([]byte, error) {
	m, err := store.Get[model.Machine](ctx, s.st, uuid)
	if err != nil {
		return nil, err
	}
	var tgt RenderTarget
	switch path {
	case model.TemplateIPXE, m.PrimaryMAC() + ".ipxe":
		tgt = RenderTarget{Machine: m, MAC: m.PrimaryMAC(), Template: model.TemplateIPXE}
	case model.TemplatePXELinux:
		tgt = RenderTarget{Machine: m, MAC: m.PrimaryMAC(), Template: model.TemplatePXELinux}
	case model.TemplateGRUB:
		tgt = RenderTarget{Machine: m, MAC: m.PrimaryMAC(), Template: model.TemplateGRUB}
	default:
		req := model.FileRequest{Path: path, Protocol: "http", Local: netip.AddrPortFrom(server, uint16(s.httpPort))}
		if !strings.Contains(path, "/") || !strings.HasPrefix(path, "machines/") && !strings.HasPrefix(path, "pxelinux.cfg/") && !strings.HasPrefix(path, "grub/") {
			req.Path = "machines/" + uuid + "/" + path
		}
		t, ok, err := s.resolvePath(ctx, req)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s is not a rendered path: %w", path, model.ErrNotFound)
		}
		tgt = t
	}
	return s.renderTarget(ctx, tgt, model.FileRequest{Path: path, Protocol: "http", Local: netip.AddrPortFrom(server, uint16(s.httpPort))})
}

// metadataFile serves the cloud-init NoCloud files every machine has,
// unless its bootenv overrides them. The JSON metadata document, which
// holds decrypted secure params, is not among them: it is served only to
// the machine's own token (see Metadata).
func (s *Service) metadataFile(_ context.Context, m *model.Machine, name string, rc *templates.RenderContext) ([]byte, bool, error) {
	if m == nil {
		return nil, false, nil
	}
	switch name {
	case "meta-data":
		return fmt.Appendf(nil, "instance-id: %s\nlocal-hostname: %s\n", m.UUID, m.Name), true, nil
	case "user-data":
		if rc.ParamExists("cloud-init-user-data") {
			v, err := rc.Param("cloud-init-user-data")
			if err != nil {
				return nil, true, err
			}
			return fmt.Appendf(nil, "%v", v), true, nil
		}
		return []byte("#cloud-config\n{}\n"), true, nil
	case "vendor-data":
		return []byte("#cloud-config\n{}\n"), true, nil
	case "network-config":
		return []byte("version: 2\nethernets:\n  all:\n    match:\n      name: \"e*\"\n    dhcp4: true\n"), true, nil
	}
	return nil, false, nil
}

// MetadataDoc is the JSON metadata a booted machine reads about itself.
type MetadataDoc struct {
	UUID          string
	Name          string
	HardwareAddrs []string
	Address       string `json:",omitempty"`
	Arch          string
	BootEnv       string
	State         model.MachineState
	Pool          string
	// Params are the machine's resolved params, secure ones decrypted:
	// the document is served only to the machine itself.
	Params map[string]any
}

// Metadata builds a machine's metadata document.
func (s *Service) Metadata(ctx context.Context, m *model.Machine) (*MetadataDoc, error) {
	layers, err := s.Layers(ctx, m)
	if err != nil {
		return nil, err
	}
	doc := &MetadataDoc{UUID: m.UUID, Name: m.Name, HardwareAddrs: m.HardwareAddrs, Address: m.Address,
		Arch: m.Arch, BootEnv: m.BootEnv, State: m.State, Pool: m.Pool, Params: map[string]any{}}
	for name, r := range layers.All() {
		v := r.Value
		if secrets.IsSealed(v) {
			if v, err = s.sealer.Open(v); err != nil {
				return nil, fmt.Errorf("param %s: %w", name, err)
			}
		}
		doc.Params[name] = v
	}
	return doc, nil
}
