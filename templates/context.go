package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/ironcast/ironcast/model"
)

// Default ports used for URLs when RenderContext leaves them zero; they
// match the daemon's defaults.
const (
	DefaultHTTPPort = 8091
	DefaultAPIPort  = 8092
)

// maxNesting bounds how deeply templated paths and command lines may render
// each other (a BootParams that uses .BootParams would otherwise recurse
// until the stack overflows).
const maxNesting = 8

// RenderContext is what a template renders over ("the dot"). The caller
// (provision) fills it with values; the package never reads the store.
// The zero value is valid: a machine with nothing known, no bootenv and no
// params. Engine.Render works on a copy, so one RenderContext may be used
// by several renders at once as long as the caller does not change it.
type RenderContext struct {
	// Machine is the machine being served. For a machine that is not
	// registered yet only MAC (and perhaps Address and Arch) are set.
	Machine Machine
	// BootEnv is the machine's bootenv; {{.BootEnv.Name}} and the other
	// model.BootEnv fields, plus the per-architecture Kernel, Initrds and
	// ArchInfo of the machine's architecture.
	BootEnv BootEnv
	// Firmware is what DHCP told about the client ("bios", "uefi-x64", …);
	// {{if .Firmware.UEFI}} and {{.Firmware.Arch}} work on it. Empty when
	// unknown.
	Firmware model.Firmware
	// ServerAddr is our address the client reached (the HTTP or TFTP
	// request's local address); ProvisionerURL and ApiURL use it.
	ServerAddr netip.Addr
	// HTTPPort and APIPort are the plain HTTP boot and HTTPS API ports
	// (zero means DefaultHTTPPort and DefaultAPIPort).
	HTTPPort, APIPort int
	// Resolve returns a param's effective value (machine, profiles,
	// bootenv, global, default; secure values already decrypted). nil
	// means no params are set.
	Resolve func(name string) (any, bool)
	// Token returns a token scoped to this machine for its callbacks to the
	// API. nil makes .GenerateToken fail.
	Token func() (string, error)

	engine *Engine
	depth  int
}

// bind returns a copy of c that renders nested texts with e.
func (c *RenderContext) bind(e *Engine) *RenderContext {
	var rc RenderContext
	if c != nil {
		rc = *c
	}
	rc.engine = e
	rc.depth = 0
	rc.BootEnv.rc = &rc
	return &rc
}

// renderInline renders text (a templated path or command line) with the
// same context, bounded in nesting.
func (c *RenderContext) renderInline(name, text string) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	if c == nil || c.engine == nil {
		return "", fmt.Errorf("render %s: context is not bound to an engine", name)
	}
	if c.depth >= maxNesting {
		return "", fmt.Errorf("render %s: templates nest more than %d deep", name, maxNesting)
	}
	c.depth++
	defer func() { c.depth-- }()
	s := c.engine.cur.Load()
	t, err := c.engine.inlineTemplate(s, name, text)
	if err != nil {
		return "", err
	}
	out, err := c.engine.execute(t, name, c)
	return string(out), err
}

// MissingParamError is returned by .Param and .ParamAsJSON for a param
// that no layer sets and that has no default.
type MissingParamError struct {
	// Name is the param's name.
	Name string
	// Machine names the machine (its name, or its MAC when unknown).
	Machine string
}

func (e *MissingParamError) Error() string {
	if e.Machine == "" {
		return fmt.Sprintf("param %q is not set", e.Name)
	}
	return fmt.Sprintf("param %q is not set for machine %s", e.Name, e.Machine)
}

// Param returns the value of the named param: {{.Param "ntp-servers"}}.
// A param that is not set fails the render with a *MissingParamError naming
// it; guard optional params with .ParamExists.
func (c *RenderContext) Param(name string) (any, error) {
	if c.Resolve != nil {
		if v, ok := c.Resolve(name); ok {
			return v, nil
		}
	}
	m := c.Machine.Name
	if m == "" {
		m = c.Machine.MAC
	}
	return nil, &MissingParamError{Name: name, Machine: m}
}

// ParamExists reports whether the named param has a value:
// {{if .ParamExists "proxy"}}…{{end}}.
func (c *RenderContext) ParamExists(name string) bool {
	if c.Resolve == nil {
		return false
	}
	_, ok := c.Resolve(name)
	return ok
}

// ParamAsJSON returns the named param's value encoded as compact JSON, for
// cloud-init, Ignition and scripts: {{.ParamAsJSON "disks"}}. A missing
// param fails like .Param.
func (c *RenderContext) ParamAsJSON(name string) (string, error) {
	v, err := c.Param(name)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("param %q as JSON: %w", name, err)
	}
	return string(b), nil
}

// ErrNewlineInBootParams is returned (wrapped) by .BootParams when the
// rendered kernel command line contains a newline, which would end the
// kernel line of an iPXE script or boot loader config and let the rest run
// as commands.
var ErrNewlineInBootParams = errors.New("kernel command line contains a newline")

// BootParams returns the rendered kernel command line: the architecture's
// BootParams followed by the bootenv's BootParams, each rendered as a
// template over this context, joined by a space. A line break in the
// result fails the render with ErrNewlineInBootParams.
func (c *RenderContext) BootParams() (string, error) {
	var parts []string
	env := c.BootEnv.BootEnv
	if env == nil {
		return "", nil
	}
	if ai, ok := env.Arches[c.BootEnv.arch(c)]; ok && ai.BootParams != "" {
		s, err := c.renderInline(env.Name+" "+c.BootEnv.arch(c)+" BootParams", ai.BootParams)
		if err != nil {
			return "", err
		}
		parts = append(parts, strings.TrimSpace(s))
	}
	if env.BootParams != "" {
		s, err := c.renderInline(env.Name+" BootParams", env.BootParams)
		if err != nil {
			return "", err
		}
		parts = append(parts, strings.TrimSpace(s))
	}
	out := strings.TrimSpace(strings.Join(parts, " "))
	if strings.ContainsAny(out, "\r\n") {
		return "", fmt.Errorf("bootenv %s: %w", env.Name, ErrNewlineInBootParams)
	}
	return out, nil
}

// ProvisionerURL is the base URL of HTTP boot as this client reaches it,
// "http://<ServerAddr>:<HTTPPort>", without a trailing slash. It fails when
// ServerAddr is not set.
func (c *RenderContext) ProvisionerURL() (string, error) {
	return c.url("http", c.HTTPPort, DefaultHTTPPort)
}

// ApiURL is the base URL of the HTTPS API as this client reaches it,
// "https://<ServerAddr>:<APIPort>", without a trailing slash. It fails when
// ServerAddr is not set.
func (c *RenderContext) ApiURL() (string, error) {
	return c.url("https", c.APIPort, DefaultAPIPort)
}

func (c *RenderContext) url(scheme string, port, def int) (string, error) {
	if !c.ServerAddr.IsValid() {
		return "", errors.New("server address is not known for this request")
	}
	if port == 0 {
		port = def
	}
	return scheme + "://" + netip.AddrPortFrom(c.ServerAddr.Unmap(), uint16(port)).String(), nil
}

// GenerateToken returns a token scoped to this machine, for its callbacks
// to the API (registering inventory, reporting install progress). Every
// call may return a new token.
func (c *RenderContext) GenerateToken() (string, error) {
	if c.Token == nil {
		return "", errors.New("no token source for this machine")
	}
	t, err := c.Token()
	if err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return t, nil
}

// Env gives path helpers for the bootenv's files: {{.Env.PathFor "http" "vmlinuz"}}.
func (c *RenderContext) Env() Env { return Env{rc: c} }

// Env holds the path helpers of a render.
type Env struct{ rc *RenderContext }

// PathFor returns how a client fetches file (a path relative to the boot
// root, itself possibly a template such as .BootEnv.Kernel) over proto:
// for "http" the full URL ProvisionerURL + "/" + file, for "tftp" the
// clean relative path (what pxelinux and GRUB ask the TFTP server for).
// Paths that leave the boot root, contain NUL or backslashes are refused.
func (e Env) PathFor(proto, file string) (string, error) {
	f, err := e.rc.renderInline("path "+file, file)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(f, "\x00\\") {
		return "", fmt.Errorf("path %q: contains NUL or backslash", f)
	}
	clean := path.Clean("/" + f)[1:]
	if clean == "" {
		return "", fmt.Errorf("path %q: names no file", f)
	}
	if c2 := path.Clean(f); c2 == ".." || strings.HasPrefix(c2, "../") {
		return "", fmt.Errorf("path %q: leaves the boot root", f)
	}
	switch proto {
	case "http":
		base, err := e.rc.ProvisionerURL()
		if err != nil {
			return "", err
		}
		return base + "/" + clean, nil
	case "tftp":
		return clean, nil
	}
	return "", fmt.Errorf("PathFor: protocol %q is not one of http, tftp", proto)
}

// Machine is the machine as templates see it.
type Machine struct {
	// UUID is the machine's ID; empty for a machine not registered yet.
	UUID string
	// Name is the machine's unique name.
	Name string
	// MAC is the primary (booting) MAC address, lower-case with colons.
	MAC string
	// HardwareAddrs are all the machine's MACs.
	HardwareAddrs []string
	// Address is the machine's IPv4 address, or "" when unknown.
	Address string
	// Arch is "amd64" or "arm64".
	Arch string
}

// MachineFrom copies the fields templates see from m. mac, when not empty,
// is the MAC the machine is booting from and becomes .Machine.MAC; otherwise
// the machine's first MAC is used.
func MachineFrom(m *model.Machine, mac string) Machine {
	if m == nil {
		return Machine{MAC: strings.ToLower(mac)}
	}
	out := Machine{
		UUID:          m.UUID,
		Name:          m.Name,
		MAC:           m.PrimaryMAC(),
		HardwareAddrs: append([]string(nil), m.HardwareAddrs...),
		Address:       m.Address,
		Arch:          m.Arch,
	}
	if mac != "" {
		out.MAC = strings.ToLower(mac)
	}
	return out
}

// Known reports whether the machine is registered (has a UUID).
func (m Machine) Known() bool { return m.UUID != "" }

// MACDashed is the MAC in pxelinux and GRUB config-file form: ARP hardware
// type 1 (Ethernet) then the bytes separated by dashes, "01-aa-bb-cc-dd-ee-ff".
// Empty when the MAC is unknown.
func (m Machine) MACDashed() string {
	if m.MAC == "" {
		return ""
	}
	return "01-" + strings.ReplaceAll(strings.ToLower(m.MAC), ":", "-")
}

// MACPlain is the MAC as twelve lower-case hex digits, "aabbccddeeff".
func (m Machine) MACPlain() string {
	return strings.ReplaceAll(strings.ToLower(m.MAC), ":", "")
}

// HexAddress is the IPv4 address as eight upper-case hex digits, the
// name pxelinux tries in pxelinux.cfg/ ("192.168.1.5" → "C0A80105").
// Empty when the address is unknown or not IPv4.
func (m Machine) HexAddress() string {
	a, err := netip.ParseAddr(m.Address)
	if err != nil || !a.Unmap().Is4() {
		return ""
	}
	b := a.Unmap().As4()
	return fmt.Sprintf("%02X%02X%02X%02X", b[0], b[1], b[2], b[3])
}

// BootEnv is the bootenv as templates see it: every model.BootEnv field
// ({{.BootEnv.Name}}, {{.BootEnv.Params}}, and {{.BootEnv.BootParams}},
// the raw, unrendered command-line template) plus the methods below for
// the machine's architecture.
type BootEnv struct {
	*model.BootEnv
	// Arch selects the architecture for Kernel, Initrds and ArchInfo;
	// empty means the machine's Arch, then the firmware's, then amd64.
	Arch string

	rc *RenderContext
}

func (b BootEnv) arch(c *RenderContext) string {
	switch {
	case b.Arch != "":
		return b.Arch
	case c != nil && c.Machine.Arch != "":
		return c.Machine.Arch
	case c != nil && c.Firmware.Arch() != "":
		return c.Firmware.Arch()
	}
	return model.ArchAMD64
}

// ArchInfo returns the bootenv's entry for the machine's architecture,
// unrendered; the zero ArchInfo when there is none.
func (b BootEnv) ArchInfo() model.ArchInfo {
	if b.BootEnv == nil {
		return model.ArchInfo{}
	}
	return b.BootEnv.Arches[b.arch(b.rc)]
}

// Kernel returns the kernel path (relative to the boot root) for the
// machine's architecture, rendered. It fails when the bootenv has no
// kernel for that architecture.
func (b BootEnv) Kernel() (string, error) {
	ai := b.ArchInfo()
	if ai.Kernel == "" {
		return "", fmt.Errorf("bootenv %s has no kernel for %s", b.name(), b.arch(b.rc))
	}
	return b.rc.renderInline(b.name()+" Kernel", ai.Kernel)
}

// Initrds returns the initrd paths for the machine's architecture,
// rendered; empty when there are none.
func (b BootEnv) Initrds() ([]string, error) {
	ai := b.ArchInfo()
	out := make([]string, 0, len(ai.Initrds))
	for _, p := range ai.Initrds {
		s, err := b.rc.renderInline(b.name()+" Initrds", p)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// InitrdNames returns the file names (last path element) of Initrds, the
// names EFI kernels need as initrd=<name> on the command line when booted
// from iPXE.
func (b BootEnv) InitrdNames() ([]string, error) {
	ps, err := b.Initrds()
	if err != nil {
		return nil, err
	}
	for i, p := range ps {
		ps[i] = path.Base(p)
	}
	return ps, nil
}

func (b BootEnv) name() string {
	if b.BootEnv == nil {
		return "(none)"
	}
	return b.BootEnv.Name
}
