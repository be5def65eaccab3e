package provision

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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

	// uuid and rev identify the machine's stored record ("" and 0 for an
	// unknown machine); raw is that record when Machine is not decoded yet
	// (a cache hit never decodes it).
	uuid string
	rev  int64
	raw  []byte
	// byMAC is true when the path named the MAC (macTarget).
	byMAC bool
}

// load decodes the machine record resolvePath left raw.
func (t *RenderTarget) load() error {
	if t.Machine != nil || t.raw == nil {
		return nil
	}
	m, err := store.Decode[model.Machine](store.Entry{Key: t.uuid, Value: t.raw, Revision: t.rev})
	if err != nil {
		return err
	}
	t.Machine, t.raw = m, nil
	return nil
}

// machineTarget is a target for a decoded machine.
func machineTarget(m *model.Machine, mac, tmpl string) RenderTarget {
	return RenderTarget{Machine: m, MAC: mac, Template: tmpl, uuid: m.UUID, rev: m.Revision}
}

// Render implements bootfs.Renderer: it serves per-machine boot loader
// configs and machines/<uuid>/ files. ok is false for paths that are not
// virtual files (the disk is tried then). The returned slice may be shared
// with the render cache: callers must not modify it.
//
// While Run runs, outputs are cached (render_cache.go). A write to a
// machine drops the entries of its UUID and MACs, and a write to param
// definitions, profiles, bootenvs or templates drops every entry, before
// the next render starts (render_state.go), so a cached file is never
// stale. Paths that name a MAC are answered from the cache without a store
// read; paths resolved by client address or UUID look the machine (and
// lease) up on every request and key the entry by the record's revision. A failed
// render is never cached. Hits publish the same "render" event as misses,
// with "cached": true.
func (s *Service) Render(ctx context.Context, req model.FileRequest) ([]byte, bool, error) {
	// The generations are taken (stored templates brought into the engine,
	// machine writes applied to the cache) before anything is read from
	// the store.
	snap, mgen := s.sync()
	caching := snap != nil && s.cache.enabled()
	if caching {
		// A path naming its MAC is answered from the cache without a store
		// read: machine writes drop the entries of their UUID and MACs.
		if mac, _, ok := macTarget(req); ok {
			key := cacheKey{path: req.Path, local: req.Local.Addr().Unmap(), mac: mac, fw: s.firmwareOf(mac)}
			if out, uuid, ok := s.cache.get(snap.gen, key, s.clock.Now()); ok {
				s.publishRender(req, uuid, mac, out, true)
				return out, true, nil
			}
		}
	}
	tgt, ok, err := s.resolvePath(ctx, req)
	if err != nil || !ok {
		return nil, ok, err
	}
	fw := s.firmwareOf(tgt.MAC)
	var key cacheKey
	cacheable := caching && !tgt.GenericGRUB
	if cacheable {
		key = cacheKey{path: req.Path, local: req.Local.Addr().Unmap(), mac: tgt.MAC, fw: fw}
		if !tgt.byMAC {
			// Found by address or UUID: the record read now decides.
			key.uuid, key.rev = tgt.uuid, tgt.rev
			if out, _, ok := s.cache.get(snap.gen, key, s.clock.Now()); ok {
				s.publishRender(req, tgt.uuid, tgt.MAC, out, true)
				return out, true, nil
			}
		}
	}
	out, err := s.renderTarget(ctx, tgt, req, fw, snap)
	if err != nil {
		who := tgt.MAC
		if tgt.uuid != "" {
			who = tgt.uuid
		}
		s.log.Warn("render failed", "path", req.Path, "machine", who, "client", req.Remote.Addr(), "err", err)
		s.publish(model.Event{Type: "render.failed", Kind: model.KindMachines, Key: tgt.uuid, Attrs: map[string]any{"path": req.Path, "mac": tgt.MAC, "error": err.Error(), "protocol": req.Protocol}})
		return nil, true, err
	}
	if cacheable {
		// A copy of exactly its length: the render buffer's spare
		// capacity (up to half of it) would stay alive in the cache.
		out = bytes.Clone(out)
		s.cache.put(snap.gen, mgen, key, tgt.uuid, out, s.clock.Now())
	}
	s.publishRender(req, tgt.uuid, tgt.MAC, out, false)
	return out, true, nil
}

func (s *Service) publishRender(req model.FileRequest, uuid, mac string, out []byte, cached bool) {
	attrs := map[string]any{"path": req.Path, "mac": mac, "bytes": len(out), "protocol": req.Protocol}
	if cached {
		attrs["cached"] = true
	}
	s.publish(model.Event{Type: "render", Kind: model.KindMachines, Key: uuid, Attrs: attrs})
}

// macTarget returns the booting MAC and boot loader template of a path
// that names its MAC (<mac>.ipxe, default.ipxe?mac=, pxelinux.cfg/01-<mac>,
// grub/grub.cfg-01-<mac>): such a path resolves without knowing the
// client's address.
func macTarget(req model.FileRequest) (mac, tmpl string, ok bool) {
	p := req.Path
	var name string
	switch {
	case strings.HasSuffix(p, ".ipxe") && !strings.Contains(p, "/"):
		name, tmpl = strings.TrimSuffix(p, ".ipxe"), model.TemplateIPXE
		if name == "default" || name == "boot" {
			if name = req.Query["mac"]; name == "" {
				return "", "", false
			}
		}
	case strings.HasPrefix(p, "pxelinux.cfg/01-"):
		name, tmpl = strings.TrimPrefix(p, "pxelinux.cfg/01-"), model.TemplatePXELinux
	case strings.HasPrefix(p, "grub/grub.cfg-"):
		name, tmpl = strings.TrimPrefix(strings.TrimPrefix(p, "grub/grub.cfg-"), "01-"), model.TemplateGRUB
	default:
		return "", "", false
	}
	mac, err := parseMAC(name)
	if err != nil {
		return "", "", false
	}
	return mac, tmpl, true
}

// resolvePath maps a cleaned boot path to a render target.
func (s *Service) resolvePath(ctx context.Context, req model.FileRequest) (RenderTarget, bool, error) {
	if mac, tmpl, ok := macTarget(req); ok {
		return s.targetByMAC(ctx, mac, tmpl)
	}
	p := req.Path
	switch {
	case strings.HasSuffix(p, ".ipxe") && !strings.Contains(p, "/"):
		name := strings.TrimSuffix(p, ".ipxe")
		if name == "default" || name == "boot" {
			return s.targetByAddr(ctx, req.Remote.Addr(), model.TemplateIPXE)
		}
		return RenderTarget{}, false, nil
	case strings.HasPrefix(p, "pxelinux.cfg/"):
		name := strings.TrimPrefix(p, "pxelinux.cfg/")
		switch {
		case strings.HasPrefix(name, "01-"):
			return RenderTarget{}, false, nil // not a MAC
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
		tgt := machineTarget(m, m.PrimaryMAC(), file)
		tgt.PerMachine = true
		return tgt, true, nil
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

// targetByMAC finds the machine with that MAC. Its record is left raw:
// the key of a cache hit needs only its UUID and revision.
func (s *Service) targetByMAC(ctx context.Context, mac, tmpl string) (RenderTarget, bool, error) {
	e, err := s.st.Lookup(ctx, model.KindMachines, "mac", mac)
	if errors.Is(err, model.ErrNotFound) {
		return RenderTarget{MAC: mac, Template: tmpl, byMAC: true}, true, nil
	}
	if err != nil {
		return RenderTarget{}, false, fmt.Errorf("lookup machines by mac %q: %w", mac, err)
	}
	return RenderTarget{MAC: mac, Template: tmpl, uuid: e.Key, rev: e.Revision, raw: e.Value, byMAC: true}, true, nil
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
		return machineTarget(m, m.PrimaryMAC(), tmpl), true, nil
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
	name := s.bootEnvName(m)
	obj, err := s.Get(ctx, model.KindBootEnvs, name)
	if err != nil {
		return nil, fmt.Errorf("bootenv %s: %w", name, err)
	}
	return obj.(*model.BootEnv), nil
}

// bootEnvName names the bootenv a machine boots (the unknown-machine
// bootenv for nil).
func (s *Service) bootEnvName(m *model.Machine) string {
	if m != nil && m.BootEnv != "" {
		return m.BootEnv
	}
	return s.unknownBootEnv
}

// RenderContext builds the template context for a machine (nil: unknown,
// booting from mac) as reached at server.
func (s *Service) RenderContext(ctx context.Context, m *model.Machine, mac string, server netip.Addr) (*templates.RenderContext, *model.BootEnv, error) {
	snap, _ := s.sync()
	return s.renderContext(ctx, m, mac, server, s.firmwareOf(mac), snap)
}

// renderContext builds the template context from the snapshot of shared
// objects (nil: read them from the store). The returned bootenv may be
// shared: read it only.
func (s *Service) renderContext(ctx context.Context, m *model.Machine, mac string, server netip.Addr, fw model.Firmware, snap *snapshot) (*templates.RenderContext, *model.BootEnv, error) {
	name := s.bootEnvName(m)
	var be *model.BootEnv
	var err error
	if snap != nil {
		be, err = snap.bootEnv(ctx, s, name)
	} else {
		be, err = s.loadBootEnv(ctx, name)
	}
	if err != nil {
		return nil, nil, err
	}
	layers, err := s.renderLayers(ctx, m, snap)
	if err != nil {
		return nil, nil, err
	}
	layers.BootEnv = be
	// Templates get their own copy of what sprig could change in place
	// (set/unset on a dict): bootenv params and param values. The objects
	// themselves are shared by every render of the generation.
	own := *be
	own.Params = copyParams(be.Params)
	rc := &templates.RenderContext{
		Machine:    templates.MachineFrom(m, mac),
		BootEnv:    templates.BootEnv{BootEnv: &own},
		ServerAddr: server.Unmap(),
		HTTPPort:   s.httpPort,
		APIPort:    s.apiPort,
		Firmware:   fw,
	}
	if rc.Machine.Arch == "" {
		rc.Machine.Arch = rc.Firmware.Arch()
	}
	if m != nil {
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
			return copyValue(r.Value), true
		}
		if s.tokens != nil {
			uuid := m.UUID
			rc.Token = func() (string, error) { return s.tokens.MachineToken(uuid) }
		}
	} else {
		rc.Resolve = func(name string) (any, bool) {
			r, ok := layers.Resolve(name)
			if !ok || secrets.IsSealed(r.Value) {
				return nil, false // unknown machines never see secure values
			}
			return copyValue(r.Value), true
		}
		if s.tokens != nil {
			rc.Token = s.tokens.RegisterToken
		}
	}
	return rc, be, nil
}

// renderLayers loads the param layers of a machine (nil: unknown) except
// its bootenv, from the snapshot (nil: from the store).
func (s *Service) renderLayers(ctx context.Context, m *model.Machine, snap *snapshot) (model.ParamLayers, error) {
	l := model.ParamLayers{Machine: m}
	var err error
	if snap != nil {
		l.Defs, err = snap.paramDefs(ctx, s)
	} else {
		l.Defs, err = s.paramDefs(ctx)
	}
	if err != nil {
		return l, err
	}
	profile := func(name string) (*model.Profile, error) {
		if snap != nil {
			return snap.profile(ctx, s, name)
		}
		p, err := store.Get[model.Profile](ctx, s.st, name)
		if errors.Is(err, model.ErrNotFound) {
			return nil, nil
		}
		return p, err
	}
	if m != nil {
		for _, name := range m.Profiles {
			p, err := profile(name)
			if err != nil {
				return l, err
			}
			if p == nil {
				s.log.Warn("machine names a missing profile", "machine", m.UUID, "profile", name)
				continue
			}
			l.Profiles = append(l.Profiles, p)
		}
	}
	if l.Global, err = profile(model.GlobalProfile); err != nil {
		return l, err
	}
	return l, nil
}

// copyValue deep-copies the maps and lists of a JSON value.
func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyParams(v)
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = copyValue(e)
		}
		return c
	}
	return v
}

func copyParams(p map[string]any) map[string]any {
	if p == nil {
		return nil
	}
	c := make(map[string]any, len(p))
	for k, v := range p {
		c[k] = copyValue(v)
	}
	return c
}

func (s *Service) renderTarget(ctx context.Context, tgt RenderTarget, req model.FileRequest, fw model.Firmware, snap *snapshot) ([]byte, error) {
	if tgt.GenericGRUB {
		return []byte(genericGRUB), nil
	}
	if err := tgt.load(); err != nil {
		return nil, err
	}
	rc, be, err := s.renderContext(ctx, tgt.Machine, tgt.MAC, req.Local.Addr(), fw, snap)
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

// RenderPath renders what machine uuid is served at path (for `ironcast
// machines render`). URLs in it name the address the machine reaches this
// server on: for a machine with an Address, the source address this host
// uses towards it; otherwise server, the address the caller reached.
func (s *Service) RenderPath(ctx context.Context, uuid, path string, server netip.Addr) ([]byte, error) {
	m, err := store.Get[model.Machine](ctx, s.st, uuid)
	if err != nil {
		return nil, err
	}
	server = sourceAddrTowards(m.Address, server)
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
	snap, _ := s.sync()
	return s.renderTarget(ctx, tgt, model.FileRequest{Path: path, Protocol: "http", Local: netip.AddrPortFrom(server, uint16(s.httpPort))}, s.firmwareOf(tgt.MAC), snap)
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

// sourceAddrTowards returns the local address the kernel picks for a route
// to addr (connecting a UDP socket sends nothing), or fallback when addr is
// empty, not IPv4/IPv6 or has no route.
func sourceAddrTowards(addr string, fallback netip.Addr) netip.Addr {
	dst, err := netip.ParseAddr(addr)
	if err != nil || dst.IsUnspecified() {
		return fallback
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return fallback
	}
	defer c.Close()
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(la.IP); ok {
			return ip.Unmap()
		}
	}
	return fallback
}
