package model

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fields(err error) []string {
	var out []string
	for _, ve := range ValidationErrors(err) {
		out = append(out, ve.Field)
	}
	return out
}

func TestMachineValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Machine
		want []string // invalid fields
	}{
		{"minimal", Machine{HardwareAddrs: []string{"52:54:00:12:34:56"}}, nil},
		{"dashed MAC is normalised", Machine{HardwareAddrs: []string{"52-54-00-12-34-56"}}, nil},
		{"bad MAC", Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:12:34"}}, []string{"HardwareAddrs[0]"}},
		{"duplicate MAC", Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:12:34:56", "52:54:00:12:34:56"}}, []string{"HardwareAddrs[1]"}},
		{"bad arch", Machine{Name: "n1", Arch: "ppc64"}, []string{"Arch"}},
		{"bad address", Machine{Name: "n1", Address: "10.0.0.300"}, []string{"Address"}},
		{"ipv6 address", Machine{Name: "n1", Address: "fe80::1"}, []string{"Address"}},
		{"bad name", Machine{Name: "no spaces"}, []string{"Name"}},
		{"missing name and MAC", Machine{}, []string{"Name"}},
		{"bad uuid", Machine{UUID: "nope", Name: "n1"}, []string{"UUID"}},
		{"bad state", Machine{Name: "n1", State: "sleeping"}, []string{"State"}},
		{"bad profile name", Machine{Name: "n1", Profiles: []string{"../x"}}, []string{"Profiles[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			m.Normalize()
			if diff := cmp.Diff(fields(m.Validate()), tt.want); diff != "" {
				t.Errorf("invalid fields (-got +want):\n%s", diff)
			}
		})
	}
}

func TestMachineNormalize(t *testing.T) {
	m := Machine{HardwareAddrs: []string{"52-54-00-AB-CD-EF"}}
	m.Normalize()
	if !ValidUUID(m.UUID) {
		t.Errorf("UUID %q not generated", m.UUID)
	}
	got := []string{m.HardwareAddrs[0], m.Name, m.Arch, string(m.State), m.Pool}
	want := []string{"52:54:00:ab:cd:ef", "m-525400abcdef", "amd64", "discovered", "default"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("normalised fields (-got +want):\n%s", diff)
	}
}

func TestLifecycle(t *testing.T) {
	tests := []struct {
		from  MachineState
		event string
		want  MachineState
		ok    bool
	}{
		{StateDiscovered, EventRegister, StateReady, true},
		{StateReady, EventProvision, StateProvisioning, true},
		{StateProvisioning, EventRunning, StateRunning, true},
		{StateProvisioning, EventInstalled, StateInstalled, true},
		{StateRunning, EventRelease, StateReleasing, true},
		{StateInstalled, EventRelease, StateReleasing, true},
		{StateReleasing, EventWiping, StateWiping, true},
		{StateWiping, EventWiped, StateReady, true},
		{StateReleasing, EventWiped, StateReady, true},
		{StateRunning, EventReboot, StateRunning, true},
		{StateWiping, EventFailed, StateFailed, true},
		{StateFailed, EventRelease, StateReleasing, true},
		{StateProvisioning, EventRelease, StateReleasing, true},
		// Illegal transitions keep the state and say so.
		{StateDiscovered, EventRunning, StateDiscovered, false},
		{StateReady, EventRelease, StateReady, false},
		{StateReady, EventWiped, StateReady, false},
		{StateRunning, EventProvision, StateRunning, false},
		{StateWiping, EventProvision, StateWiping, false},
		{StateReleasing, EventRunning, StateReleasing, false},
		{StateInstalled, EventProvision, StateInstalled, false},
		{StateReady, "explode", StateReady, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"+"+tt.event, func(t *testing.T) {
			got, err := tt.from.Next(tt.event)
			if got != tt.want {
				t.Errorf("Next = %s, want %s", got, tt.want)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				var te *TransitionError
				if !errors.As(err, &te) || te.State != tt.from || !errors.Is(err, ErrConflict) {
					t.Errorf("err = %#v, want a *TransitionError from %s that is ErrConflict", err, tt.from)
				}
			}
		})
	}
}

func TestParamPrecedence(t *testing.T) {
	defs := map[string]*Param{
		"p": {Name: "p", Default: "default"},
		"s": {Name: "s", Secure: true},
	}
	full := func() ParamLayers {
		return ParamLayers{
			Machine:  &Machine{Params: map[string]any{"p": "machine"}},
			Profiles: []*Profile{{Name: "first", Params: map[string]any{"p": "first"}}, {Name: "second", Params: map[string]any{"p": "second"}}},
			BootEnv:  &BootEnv{Name: "be", Params: map[string]any{"p": "bootenv"}},
			Global:   &Profile{Name: GlobalProfile, Params: map[string]any{"p": "global"}},
			Defs:     defs,
		}
	}
	tests := []struct {
		name   string
		strip  func(*ParamLayers)
		want   any
		source ParamSource
		found  bool
	}{
		{"machine wins", func(*ParamLayers) {}, "machine", ParamSource{Kind: "machine"}, true},
		{"first profile next", func(l *ParamLayers) { l.Machine.Params = nil }, "first", ParamSource{"profile", "first"}, true},
		{"profiles in order", func(l *ParamLayers) { l.Machine.Params = nil; l.Profiles[0].Params = nil }, "second", ParamSource{"profile", "second"}, true},
		{"bootenv after profiles", func(l *ParamLayers) { l.Machine.Params = nil; l.Profiles = nil }, "bootenv", ParamSource{"bootenv", "be"}, true},
		{"global after bootenv", func(l *ParamLayers) { l.Machine.Params = nil; l.Profiles = nil; l.BootEnv = nil }, "global", ParamSource{"global", GlobalProfile}, true},
		{"default last", func(l *ParamLayers) { l.Machine.Params = nil; l.Profiles = nil; l.BootEnv = nil; l.Global = nil }, "default", ParamSource{Kind: "default"}, true},
		{"nothing", func(l *ParamLayers) { *l = ParamLayers{} }, nil, ParamSource{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := full()
			tt.strip(&l)
			got, ok := l.Resolve("p")
			if ok != tt.found {
				t.Fatalf("found = %v, want %v", ok, tt.found)
			}
			if got.Value != tt.want || got.Source != tt.source {
				t.Errorf("Resolve = %v from %v, want %v from %v", got.Value, got.Source, tt.want, tt.source)
			}
		})
	}
	l := full()
	l.Global.Params["s"] = "secret"
	all := l.All()
	if r := all["s"]; !r.Secure || r.Value != "secret" {
		t.Errorf("All()[s] = %+v, want secure value from global", r)
	}
}

func TestSubnet(t *testing.T) {
	tests := []struct {
		name      string
		s         Subnet
		want      []string
		wantRange [2]string
	}{
		{"default range", Subnet{Name: "lab", Subnet: "10.9.0.7/24", Enabled: true}, nil, [2]string{"10.9.0.2", "10.9.0.254"}},
		{"range outside", Subnet{Name: "lab", Subnet: "10.9.0.0/24", ActiveStart: "10.9.1.10", ActiveEnd: "10.9.0.20"}, []string{"ActiveStart"}, [2]string{"10.9.1.10", "10.9.0.20"}},
		{"reversed range", Subnet{Name: "lab", Subnet: "10.9.0.0/24", ActiveStart: "10.9.0.50", ActiveEnd: "10.9.0.20"}, []string{"ActiveEnd"}, [2]string{"10.9.0.50", "10.9.0.20"}},
		{"not a cidr", Subnet{Name: "lab", Subnet: "10.9.0.0"}, []string{"Subnet"}, [2]string{"", ""}},
		{"proxy needs no range", Subnet{Name: "lab", Subnet: "10.9.0.0/24", Proxy: true}, nil, [2]string{"", ""}},
		{"bad option code", Subnet{Name: "lab", Subnet: "10.9.0.0/24", Options: []DHCPOption{{Code: 255}}}, []string{"Options[0].Code"}, [2]string{"10.9.0.2", "10.9.0.254"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.Normalize()
			if diff := cmp.Diff(fields(s.Validate()), tt.want); diff != "" {
				t.Errorf("invalid fields (-got +want):\n%s", diff)
			}
			if got := [2]string{s.ActiveStart, s.ActiveEnd}; got != tt.wantRange {
				t.Errorf("range = %v, want %v", got, tt.wantRange)
			}
		})
	}
}

func TestFirmwareFromArchType(t *testing.T) {
	tests := []struct {
		code uint16
		want Firmware
		arch string
		http bool
	}{
		{0, FirmwareBIOS, ArchAMD64, false},
		{6, FirmwareUEFI32, "", false},
		{7, FirmwareUEFI64, ArchAMD64, false},
		{9, FirmwareUEFI64, ArchAMD64, false},
		{10, FirmwareUEFIARM32, "", false},
		{11, FirmwareUEFIARM64, ArchARM64, false},
		{16, FirmwareUEFIHTTP64, ArchAMD64, true},
		{19, FirmwareUEFIHTTPARM64, ArchARM64, true},
		{42, FirmwareUnknown, "", false},
	}
	for _, tt := range tests {
		f, _ := FirmwareFromArchType(tt.code)
		if f != tt.want || f.Arch() != tt.arch || f.HTTPBoot() != tt.http {
			t.Errorf("arch type %d: got %q/%q/%v, want %q/%q/%v", tt.code, f, f.Arch(), f.HTTPBoot(), tt.want, tt.arch, tt.http)
		}
	}
}

func TestBootEnvValidate(t *testing.T) {
	b := BootEnv{
		Name:      "x",
		Arches:    map[string]ArchInfo{"amd64": {Kernel: "../etc/passwd"}, "sparc": {}},
		Templates: []TemplateInfo{{Name: "a", Path: "a.ipxe"}, {Name: "a", Path: "b", ID: "t"}, {Name: "ipxe", ID: "x"}, {Name: "c", ID: "x"}},
	}
	got := fields(b.Validate())
	want := []string{"Arches.amd64.Kernel", "Arches.sparc", "Templates[0]", "Templates[1].Name", "Templates[3].Path"}
	if diff := cmp.Diff(sortStrings(got), want); diff != "" {
		t.Errorf("invalid fields (-got +want):\n%s", diff)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}
