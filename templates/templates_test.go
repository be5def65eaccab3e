package templates

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testContext is the fixed context the tables and the fuzzer render over.
func testContext() *RenderContext {
	m := &model.Machine{
		UUID:          "3f1c2b9e-8a4d-4c6e-9f10-2b3c4d5e6f70",
		Name:          "node-1",
		HardwareAddrs: []string{"52:54:00:12:34:56", "52:54:00:ab:cd:ef"},
		Address:       "192.168.10.5",
		Arch:          model.ArchAMD64,
	}
	params := map[string]any{
		"console":     "ttyS0,115200",
		"ntp-servers": []any{"10.0.0.1", "10.0.0.2"},
		"disk":        map[string]any{"dev": "/dev/sda", "size": 20},
		"empty":       "",
	}
	env := &model.BootEnv{
		Name:       "discovery",
		BootParams: `console={{.Param "console"}} ironcast.url={{.ApiURL}}`,
		Arches: map[string]model.ArchInfo{
			model.ArchAMD64: {
				Kernel:     "discovery/amd64/vmlinuz",
				Initrds:    []string{"discovery/amd64/initrd.img", "discovery/{{.Machine.Arch}}/extra.cpio"},
				BootParams: "rootfstype=ramfs",
			},
			model.ArchARM64: {
				Kernel:  "discovery/arm64/Image",
				Initrds: []string{"discovery/arm64/initrd.img"},
			},
		},
	}
	return &RenderContext{
		Machine:    MachineFrom(m, ""),
		BootEnv:    BootEnv{BootEnv: env},
		Firmware:   model.FirmwareUEFI64,
		ServerAddr: netip.MustParseAddr("192.168.10.1"),
		HTTPPort:   8091,
		APIPort:    8092,
		Resolve: func(name string) (any, bool) {
			v, ok := params[name]
			return v, ok
		},
		Token: func() (string, error) { return "tok-node-1", nil },
	}
}

func TestHelpers(t *testing.T) {
	ctx := testContext()
	tests := []struct {
		name string
		text string
		want string
	}{
		{"machine name", `{{.Machine.Name}}`, "node-1"},
		{"machine uuid", `{{.Machine.UUID}}`, "3f1c2b9e-8a4d-4c6e-9f10-2b3c4d5e6f70"},
		{"machine mac is the primary", `{{.Machine.MAC}}`, "52:54:00:12:34:56"},
		{"machine hardware addrs", `{{join "," .Machine.HardwareAddrs}}`, "52:54:00:12:34:56,52:54:00:ab:cd:ef"},
		{"machine address", `{{.Machine.Address}}`, "192.168.10.5"},
		{"machine arch", `{{.Machine.Arch}}`, "amd64"},
		{"machine known", `{{.Machine.Known}}`, "true"},
		{"mac dashed", `{{.Machine.MACDashed}}`, "01-52-54-00-12-34-56"},
		{"mac plain", `{{.Machine.MACPlain}}`, "525400123456"},
		{"hex address", `{{.Machine.HexAddress}}`, "C0A80A05"},
		{"param string", `{{.Param "console"}}`, "ttyS0,115200"},
		{"param list", `{{range .Param "ntp-servers"}}[{{.}}]{{end}}`, "[10.0.0.1][10.0.0.2]"},
		{"param empty string is set", `{{.ParamExists "empty"}}`, "true"},
		{"param exists", `{{.ParamExists "console"}}`, "true"},
		{"param does not exist", `{{.ParamExists "nope"}}`, "false"},
		{"param as json map", `{{.ParamAsJSON "disk"}}`, `{"dev":"/dev/sda","size":20}`},
		{"param as json list", `{{.ParamAsJSON "ntp-servers"}}`, `["10.0.0.1","10.0.0.2"]`},
		{"bootenv name", `{{.BootEnv.Name}}`, "discovery"},
		{"bootenv raw boot params", `{{.BootEnv.BootParams}}`, `console={{.Param "console"}} ironcast.url={{.ApiURL}}`},
		{"bootenv kernel", `{{.BootEnv.Kernel}}`, "discovery/amd64/vmlinuz"},
		{"bootenv initrds rendered", `{{join " " .BootEnv.Initrds}}`, "discovery/amd64/initrd.img discovery/amd64/extra.cpio"},
		{"bootenv initrd names", `{{join " " .BootEnv.InitrdNames}}`, "initrd.img extra.cpio"},
		{"bootenv arch info", `{{.BootEnv.ArchInfo.BootParams}}`, "rootfstype=ramfs"},
		{"boot params rendered", `{{.BootParams}}`, "rootfstype=ramfs console=ttyS0,115200 ironcast.url=https://192.168.10.1:8092"},
		{"provisioner url", `{{.ProvisionerURL}}`, "http://192.168.10.1:8091"},
		{"api url", `{{.ApiURL}}`, "https://192.168.10.1:8092"},
		{"path for http", `{{.Env.PathFor "http" "a/b.img"}}`, "http://192.168.10.1:8091/a/b.img"},
		{"path for tftp", `{{.Env.PathFor "tftp" "a/b.img"}}`, "a/b.img"},
		{"path for leading slash", `{{.Env.PathFor "tftp" "/a//b.img"}}`, "a/b.img"},
		{"path for kernel", `{{.Env.PathFor "http" .BootEnv.Kernel}}`, "http://192.168.10.1:8091/discovery/amd64/vmlinuz"},
		{"path for templated", `{{.Env.PathFor "tftp" "x/{{.Machine.MACPlain}}.cfg"}}`, "x/525400123456.cfg"},
		{"generate token", `{{.GenerateToken}}`, "tok-node-1"},
		{"firmware", `{{.Firmware}}`, "uefi-x64"},
		{"firmware uefi", `{{if .Firmware.UEFI}}efi{{else}}bios{{end}}`, "efi"},
		{"firmware arch", `{{.Firmware.Arch}}`, "amd64"},
		{"sprig upper", `{{upper .Machine.Name}}`, "NODE-1"},
		{"sprig default", `{{default "x" ""}}`, "x"},
		{"sprig b64enc", `{{b64enc "hi"}}`, "aGk="},
		{"sprig bounded repeat", `{{repeat 3 "ab"}}`, "ababab"},
		{"sprig bounded until", `{{range until 3}}{{.}}{{end}}`, "012"},
		{"sprig bounded seq", `{{seq 3}}`, "1 2 3"},
		{"sprig bounded untilStep", `{{untilStep 0 10 4}}`, "[0 4 8]"},
	}
	e := NewEngine()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.RenderString(tc.name, tc.text, ctx)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("render %q (-got +want):\n%s", tc.text, diff)
			}
		})
	}
}

func TestHelperContextVariants(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *RenderContext)
		text string
		want string
	}{
		{"ipv6 url", func(c *RenderContext) { c.ServerAddr = netip.MustParseAddr("fd00::1") }, `{{.ProvisionerURL}} {{.ApiURL}}`, "http://[fd00::1]:8091 https://[fd00::1]:8092"},
		{"v4-mapped address is unmapped", func(c *RenderContext) { c.ServerAddr = netip.MustParseAddr("::ffff:10.1.2.3") }, `{{.ProvisionerURL}}`, "http://10.1.2.3:8091"},
		{"default ports", func(c *RenderContext) { c.HTTPPort, c.APIPort = 0, 0 }, `{{.ProvisionerURL}} {{.ApiURL}}`, "http://192.168.10.1:8091 https://192.168.10.1:8092"},
		{"unknown machine", func(c *RenderContext) { c.Machine = MachineFrom(nil, "AA:BB:CC:DD:EE:FF") }, `{{.Machine.Known}} {{.Machine.MAC}} {{.Machine.MACDashed}} [{{.Machine.HexAddress}}]`, "false aa:bb:cc:dd:ee:ff 01-aa-bb-cc-dd-ee-ff []"},
		{"booting mac overrides primary", func(c *RenderContext) {
			c.Machine = MachineFrom(&model.Machine{Name: "x", HardwareAddrs: []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}}, "52:54:00:00:00:02")
		}, `{{.Machine.MAC}}`, "52:54:00:00:00:02"},
		{"arch from machine", func(c *RenderContext) { c.Machine.Arch = model.ArchARM64 }, `{{.BootEnv.Kernel}} {{.BootParams}}`, "discovery/arm64/Image console=ttyS0,115200 ironcast.url=https://192.168.10.1:8092"},
		{"arch from firmware", func(c *RenderContext) { c.Machine.Arch = ""; c.Firmware = model.FirmwareUEFIARM64 }, `{{.BootEnv.Kernel}}`, "discovery/arm64/Image"},
		{"arch override", func(c *RenderContext) { c.BootEnv.Arch = model.ArchARM64 }, `{{.BootEnv.Kernel}}`, "discovery/arm64/Image"},
		{"no bootenv boot params", func(c *RenderContext) { c.BootEnv = BootEnv{} }, `[{{.BootParams}}]`, "[]"},
		{"no firmware", func(c *RenderContext) { c.Firmware = "" }, `{{if .Firmware.UEFI}}efi{{else}}other{{end}}`, "other"},
	}
	e := NewEngine()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext()
			tc.edit(ctx)
			got, err := e.RenderString(tc.name, tc.text, ctx)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("render %q (-got +want):\n%s", tc.text, diff)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *RenderContext)
		text    string
		is      error
		inError []string
	}{
		{"missing param names it", nil, "line one\n{{.Param \"root-password\"}}", nil, []string{`param "root-password" is not set for machine node-1`, "missing param names it:2:2"}},
		{"missing param as json", nil, `{{.ParamAsJSON "nope"}}`, nil, []string{`param "nope" is not set`}},
		{"newline in boot params", func(c *RenderContext) { c.BootEnv.BootParams = "a=1\nreboot" }, `{{.BootParams}}`, ErrNewlineInBootParams, []string{"discovery"}},
		{"newline from a param in boot params", func(c *RenderContext) {
			c.BootEnv.BootParams = `x={{.Param "p"}}`
			c.Resolve = func(string) (any, bool) { return "1\r\nchain http://evil/", true }
		}, `{{.BootParams}}`, ErrNewlineInBootParams, nil},
		{"no server address", func(c *RenderContext) { c.ServerAddr = netip.Addr{} }, `{{.ProvisionerURL}}`, nil, []string{"server address is not known"}},
		{"no token source", func(c *RenderContext) { c.Token = nil }, `{{.GenerateToken}}`, nil, []string{"no token source"}},
		{"token error", func(c *RenderContext) { c.Token = func() (string, error) { return "", errors.New("signer down") } }, `{{.GenerateToken}}`, nil, []string{"generate token: signer down"}},
		{"path escaping root", nil, `{{.Env.PathFor "http" "../etc/passwd"}}`, nil, []string{"leaves the boot root"}},
		{"path with backslash", nil, `{{.Env.PathFor "tftp" "a\\b"}}`, nil, []string{"backslash"}},
		{"path with nothing", nil, `{{.Env.PathFor "tftp" "/"}}`, nil, []string{"names no file"}},
		{"path unknown protocol", nil, `{{.Env.PathFor "ftp" "a"}}`, nil, []string{`protocol "ftp"`}},
		{"no kernel for arch", func(c *RenderContext) { c.BootEnv.Arch = "riscv64" }, `{{.BootEnv.Kernel}}`, nil, []string{"bootenv discovery has no kernel for riscv64"}},
		{"missing map key", nil, `{{(.Param "disk").label}}`, nil, []string{`map has no entry for key "label"`}},
		{"recursive boot params", func(c *RenderContext) { c.BootEnv.BootParams = "{{.BootParams}}" }, `{{.BootParams}}`, nil, []string{"nest more than"}},
		{"repeat too large", nil, `{{repeat 100000000 "abcdef"}}`, ErrTooLarge, nil},
		{"until too large", nil, `{{until 100000000}}`, ErrTooLarge, nil},
		{"output too large", nil, `{{range until 40}}{{repeat 1000000 "x"}}{{end}}`, ErrTooLarge, nil},
		{"negative repeat", nil, `{{repeat -1 "x"}}`, nil, []string{"negative count"}},
	}
	e := NewEngine()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext()
			if tc.edit != nil {
				tc.edit(ctx)
			}
			got, err := e.RenderString(tc.name, tc.text, ctx)
			if err == nil {
				t.Fatalf("render %q = %q, want an error", tc.text, got)
			}
			if got != "" {
				t.Errorf("render failed but returned %q", got)
			}
			var re *RenderError
			if !errors.As(err, &re) {
				t.Errorf("error %v is not a *RenderError", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, s := range tc.inError {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "\x00") {
				t.Errorf("error %q leaks the internal inline name", err)
			}
		})
	}
}

func TestMissingParamIsTyped(t *testing.T) {
	e := NewEngine()
	if err := e.Set("kickstart", "rootpw {{.Param \"root-password\"}}\n"); err != nil {
		t.Fatal(err)
	}
	_, err := e.Render("kickstart", testContext())
	var mp *MissingParamError
	if !errors.As(err, &mp) {
		t.Fatalf("error %v does not hold a *MissingParamError", err)
	}
	if diff := cmp.Diff(*mp, MissingParamError{Name: "root-password", Machine: "node-1"}); diff != "" {
		t.Errorf("missing param (-got +want):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want ParseError
	}{
		{"unclosed action", "#!ipxe\nkernel {{.Machine.Name\n", ParseError{ID: "t", Line: 2, Column: 8}},
		{"bad function", "a\nb {{nosuchfunc 1}}\n", ParseError{ID: "t", Line: 2, Column: 3}},
		{"env is absent", "{{env \"HOME\"}}", ParseError{ID: "t", Line: 1, Column: 1}},
		{"expandenv is absent", "x {{expandenv \"$HOME\"}}", ParseError{ID: "t", Line: 1, Column: 3}},
		{"getHostByName is absent", "{{getHostByName \"example.com\"}}", ParseError{ID: "t", Line: 1, Column: 1}},
		{"second action on line", "ok {{.A}} then {{.B )}}\n", ParseError{ID: "t", Line: 1, Column: 16}},
		{"end without if", "line1\nline2\n  {{end}}", ParseError{ID: "t", Line: 3, Column: 3}},
		{"if without end", "{{if .A}}\nyes\n", ParseError{ID: "t", Line: 3, Column: 1}},
		{"bad syntax after unicode", "é {{.A )}}", ParseError{ID: "t", Line: 1, Column: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine()
			err := e.Set("t", tc.text)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Set(%q) = %v, want a *ParseError", tc.text, err)
			}
			if pe.Message == "" {
				t.Errorf("parse error has no message")
			}
			got := *pe
			got.Message = ""
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("parse error %v (-got +want):\n%s", pe, diff)
			}
			if !strings.HasPrefix(pe.Error(), fmt.Sprintf("template t:%d:%d: ", tc.want.Line, tc.want.Column)) {
				t.Errorf("Error() = %q does not lead with the position", pe.Error())
			}
			if e.Has("t") {
				t.Errorf("a template that does not parse was stored")
			}
			var ve *model.ValidationError
			if !errors.As(err, &ve) || ve.Field != "Contents" || !strings.Contains(ve.Message, fmt.Sprintf("line %d, column %d", tc.want.Line, tc.want.Column)) {
				t.Errorf("parse error as a validation error: %+v", ve)
			}
			if cerr := e.Check("t", tc.text); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Check = %v, want the same error as Set (%v)", cerr, err)
			}
		})
	}
}

func TestSetKeepsOldOnParseError(t *testing.T) {
	e := NewEngine()
	if err := e.Set("t", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := e.Set("t", "{{"); err == nil {
		t.Fatal("Set accepted a broken template")
	}
	got, err := e.Render("t", nil)
	if err != nil || string(got) != "v1" {
		t.Errorf("Render = %q, %v; want the old v1", got, err)
	}
}

func TestIncludes(t *testing.T) {
	e := NewEngine()
	must := func(id, text string) {
		t.Helper()
		if err := e.Set(id, text); err != nil {
			t.Fatalf("Set %s: %v", id, err)
		}
	}
	// The includer may be stored before the included template.
	must("ipxe-main", "#!ipxe\n{{template \"ipxe-kernel\" .}}\n{{template \"helpers\" .}}{{template \"greeting\" .}}")
	must("ipxe-kernel", "kernel {{.Env.PathFor \"http\" .BootEnv.Kernel}}")
	must("helpers", `{{define "greeting"}}hello {{.Machine.Name}}{{end}}`)

	got, err := e.Render("ipxe-main", testContext())
	if err != nil {
		t.Fatal(err)
	}
	want := "#!ipxe\nkernel http://192.168.10.1:8091/discovery/amd64/vmlinuz\nhello node-1"
	if diff := cmp.Diff(string(got), want); diff != "" {
		t.Errorf("render (-got +want):\n%s", diff)
	}

	// An inline text may include stored templates too.
	s, err := e.RenderString("path", `x-{{template "greeting" .}}`, testContext())
	if err != nil || s != "x-hello node-1" {
		t.Errorf("RenderString include = %q, %v", s, err)
	}

	// Replacing an included template changes the includer's output.
	must("ipxe-kernel", "kernel none")
	got, _ = e.Render("ipxe-main", testContext())
	if !strings.Contains(string(got), "kernel none") {
		t.Errorf("after replacing ipxe-kernel got %q", got)
	}

	// Deleting it makes the includer fail cleanly.
	e.Delete("ipxe-kernel")
	if _, err := e.Render("ipxe-main", testContext()); err == nil || !strings.Contains(err.Error(), "ipxe-kernel") {
		t.Errorf("render after delete: %v, want an error naming ipxe-kernel", err)
	}
	if _, err := e.Render("ipxe-kernel", nil); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("render deleted template: %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(e.IDs(), []string{"helpers", "ipxe-main"}); diff != "" {
		t.Errorf("IDs (-got +want):\n%s", diff)
	}
}

func TestDefineConflicts(t *testing.T) {
	e := NewEngine()
	if err := e.Set("a", "A"); err != nil {
		t.Fatal(err)
	}
	if err := e.Set("b", `{{define "shared"}}B{{end}}`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, id, text string }{
		{"define another id", "c", `{{define "a"}}hijack{{end}}`},
		{"define another's block", "c", `{{define "shared"}}C{{end}}`},
		{"id is another's block", "shared", `S`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.Set(tc.id, tc.text); !errors.Is(err, model.ErrConflict) {
				t.Errorf("Set(%s) = %v, want ErrConflict", tc.id, err)
			}
		})
	}
	if err := e.Check("c", `{{define "a"}}hijack{{end}}`); !errors.Is(err, model.ErrConflict) {
		t.Errorf("Check = %v, want ErrConflict", err)
	}
	if err := e.Check("c", `{{define "c-part"}}fine{{end}}`); err != nil {
		t.Errorf("Check of a good template = %v", err)
	}
	if e.Has("c") {
		t.Errorf("Check stored the template")
	}
	got, _ := e.Render("a", nil)
	if string(got) != "A" {
		t.Errorf("a = %q after refused redefinitions", got)
	}
	// A template may redefine its own blocks when it is replaced.
	if err := e.Set("b", `{{define "shared"}}B2{{end}}`); err != nil {
		t.Errorf("replace own block: %v", err)
	}
}

func TestEmptyTemplate(t *testing.T) {
	e := NewEngine()
	if err := e.Set("blank", "  \n"); err != nil {
		t.Fatal(err)
	}
	got, err := e.Render("blank", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "  \n" && string(got) != "" {
		t.Errorf("blank = %q", got)
	}
}

func TestConcurrentSetAndRender(t *testing.T) {
	e := NewEngine()
	if err := e.Set("main", `{{template "part" .}}`); err != nil {
		t.Fatal(err)
	}
	if err := e.Set("part", "p0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := testContext()
			for i := 0; i < 200; i++ {
				out, err := e.Render("main", ctx)
				if err != nil {
					t.Errorf("render: %v", err)
					return
				}
				if !strings.HasPrefix(string(out), "p") {
					t.Errorf("render = %q", out)
					return
				}
				if _, err := e.RenderString("bp", `{{.BootParams}}`, ctx); err != nil {
					t.Errorf("render string: %v", err)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if err := e.Set("part", fmt.Sprintf("p%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := e.Set(fmt.Sprintf("other-%d", i%7), "x"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestGoldenIPXE(t *testing.T) {
	e := NewEngine()
	text, err := os.ReadFile("testdata/ipxe.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Set("ipxe", string(text)); err != nil {
		t.Fatal(err)
	}
	got, err := e.Render("ipxe", testContext())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "ipxe.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(got), string(want)); diff != "" {
		t.Errorf("ipxe render (-got +want):\n%s", diff)
	}
}

func TestFuncMapOmitsNonHermetic(t *testing.T) {
	fm := FuncMap()
	for _, name := range []string{"env", "expandenv", "getHostByName"} {
		if _, ok := fm[name]; ok {
			t.Errorf("FuncMap has %s", name)
		}
	}
	for _, name := range []string{"upper", "trim", "default", "toJson", "b64enc", "sha256sum", "regexReplaceAll", "dict", "list"} {
		if _, ok := fm[name]; !ok {
			t.Errorf("FuncMap lacks sprig's %s", name)
		}
	}
}
