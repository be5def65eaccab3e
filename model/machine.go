package model

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Machine is one physical (or virtual) server known to ironcast.
type Machine struct {
	ObjectMeta
	// UUID is the machine's key. It is generated on create when empty.
	UUID string
	// Name is a unique, human-friendly name (defaults to "m-" + the first MAC).
	Name        string
	Description string `json:",omitempty"`
	// HardwareAddrs are the machine's NIC MAC addresses, lower-case and
	// colon-separated. Each MAC belongs to at most one machine.
	HardwareAddrs []string
	// Address is the IPv4 address last acked to the machine by DHCP, or set
	// by the operator. Empty when unknown.
	Address string `json:",omitempty"`
	// Arch is the CPU architecture: "amd64" or "arm64".
	Arch string
	// BootEnv names the bootenv the machine boots next.
	BootEnv string
	// Profiles are applied in order when resolving params.
	Profiles []string `json:",omitempty"`
	// Params are the machine's own param values; they win over everything.
	Params map[string]any `json:",omitempty"`
	// Pool is the pool the machine belongs to ("default" when empty).
	Pool string `json:",omitempty"`
	// State is the machine's lifecycle state; see MachineState.
	State MachineState
	// StateReason says why the machine is in State, e.g. a failure message.
	StateReason string `json:",omitempty"`
	// StateChangedAt is when State last changed; the server keeps it.
	StateChangedAt time.Time `json:",omitzero"`
	// Allocation is set while the machine is allocated from its pool.
	Allocation *Allocation `json:",omitempty"`
	// Inventory is what the discovery image reported about the hardware.
	Inventory *Inventory `json:",omitempty"`
	// Locked machines refuse every change except unlocking.
	Locked bool `json:",omitempty"`
}

// Inventory is the hardware a machine reported when it registered.
type Inventory struct {
	SerialNumber string `json:",omitempty"`
	SystemUUID   string `json:",omitempty"`
	Manufacturer string `json:",omitempty"`
	ProductName  string `json:",omitempty"`
	CPUs         int    `json:",omitempty"`
	CPUModel     string `json:",omitempty"`
	MemoryMiB    int64  `json:",omitempty"`
	Disks        []Disk `json:",omitempty"`
	NICs         []NIC  `json:",omitempty"`
}

// Disk is one block device seen by the discovery image.
type Disk struct {
	Name      string
	SizeBytes int64  `json:",omitempty"`
	Model     string `json:",omitempty"`
	Serial    string `json:",omitempty"`
}

// NIC is one network interface seen by the discovery image.
type NIC struct {
	Name   string
	MAC    string
	Driver string `json:",omitempty"`
	Speed  int    `json:",omitempty"`
}

// Architectures ironcast can boot.
const (
	ArchAMD64 = "amd64"
	ArchARM64 = "arm64"
)

func (*Machine) Kind() string  { return KindMachines }
func (m *Machine) Key() string { return m.UUID }

// PrimaryMAC returns the first hardware address, or "".
func (m *Machine) PrimaryMAC() string {
	if len(m.HardwareAddrs) == 0 {
		return ""
	}
	return m.HardwareAddrs[0]
}

// HasMAC reports whether mac (any case) is one of the machine's addresses.
func (m *Machine) HasMAC(mac string) bool {
	mac = strings.ToLower(mac)
	for _, a := range m.HardwareAddrs {
		if a == mac {
			return true
		}
	}
	return false
}

// Normalize canonicalises MACs and the UUID, and fills Arch, State, Name and Pool.
func (m *Machine) Normalize() {
	m.UUID = strings.ToLower(strings.TrimSpace(m.UUID))
	if m.UUID == "" {
		m.UUID = NewUUID()
	}
	for i, a := range m.HardwareAddrs {
		if hw, err := NormalizeMAC(a); err == nil {
			m.HardwareAddrs[i] = hw
		}
	}
	if m.Arch == "" {
		m.Arch = ArchAMD64
	}
	if m.State == "" {
		m.State = StateDiscovered
	}
	if m.Name == "" && len(m.HardwareAddrs) > 0 {
		m.Name = "m-" + strings.ReplaceAll(m.HardwareAddrs[0], ":", "")
	}
	if m.Pool == "" {
		m.Pool = DefaultPool
	}
	if m.Address != "" {
		if a, err := netip.ParseAddr(m.Address); err == nil {
			m.Address = a.String()
		}
	}
}

// Validate checks every field and reports each problem with its field name.
func (m *Machine) Validate() error {
	var errs []error
	if !ValidUUID(m.UUID) {
		errs = append(errs, Invalid("UUID", "%q is not a UUID", m.UUID))
	}
	if err := validName("Name", m.Name); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, a := range m.HardwareAddrs {
		f := fmt.Sprintf("HardwareAddrs[%d]", i)
		hw, err := NormalizeMAC(a)
		if err != nil {
			errs = append(errs, Invalid(f, "%v", err))
			continue
		}
		if seen[hw] {
			errs = append(errs, Invalid(f, "%s is listed twice", hw))
		}
		seen[hw] = true
	}
	if m.Address != "" {
		if a, err := netip.ParseAddr(m.Address); err != nil || !a.Is4() {
			errs = append(errs, Invalid("Address", "%q is not an IPv4 address", m.Address))
		}
	}
	if m.Arch != ArchAMD64 && m.Arch != ArchARM64 {
		errs = append(errs, Invalid("Arch", "%q is not one of amd64, arm64", m.Arch))
	}
	if m.BootEnv != "" {
		if err := validName("BootEnv", m.BootEnv); err != nil {
			errs = append(errs, err)
		}
	}
	for i, p := range m.Profiles {
		if err := validName(fmt.Sprintf("Profiles[%d]", i), p); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range m.Params {
		if err := validName("Params."+k, k); err != nil {
			errs = append(errs, Invalid("Params", "param name %q is not valid", k))
		}
	}
	if m.Pool != "" {
		if err := validName("Pool", m.Pool); err != nil {
			errs = append(errs, err)
		}
	}
	if !m.State.Valid() {
		errs = append(errs, Invalid("State", "%q is not a machine state", m.State))
	}
	if m.Allocation != nil {
		errs = append(errs, m.Allocation.Validate("Allocation"))
	}
	return errors.Join(errs...)
}

// Indexes makes each MAC and the address unique among machines.
func (m *Machine) Indexes() map[string][]string {
	idx := map[string][]string{"mac": m.HardwareAddrs, "name": {m.Name}}
	if m.Address != "" {
		idx["ip"] = []string{m.Address}
	}
	return idx
}

// NormalizeMAC parses a 6-byte Ethernet MAC in any common notation and
// returns it lower-case and colon-separated.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%q is not a MAC address", s)
	}
	if len(hw) != 6 {
		return "", fmt.Errorf("%q is not a 6-byte Ethernet MAC address", s)
	}
	return hw.String(), nil
}
