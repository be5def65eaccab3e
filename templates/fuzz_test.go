package templates

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// bigNumber skips inputs that only test how long a loop can run
// ({{range 99999999}}) or how much a function can allocate: both are
// bounded by MaxOutput and the sprig caps, not worth fuzzing time.
var bigNumber = regexp.MustCompile(`[0-9]{5,}|[0-9]e[0-9]|0x[0-9a-fA-F]{4,}`)

// FuzzRender feeds arbitrary template text through Set, Render and
// RenderString with a fixed context. Errors are fine; panics, parse errors
// without a position, and output from a failed render are not.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		`{{.Machine.Name}} {{.Machine.MACDashed}} {{.Machine.HexAddress}}`,
		`{{.Param "console"}} {{.ParamExists "x"}} {{.ParamAsJSON "disk"}}`,
		`{{.BootParams}} {{.BootEnv.Kernel}} {{join " " .BootEnv.Initrds}}`,
		`{{.Env.PathFor "http" .BootEnv.Kernel}} {{.Env.PathFor "tftp" "../x"}}`,
		`{{.ProvisionerURL}} {{.ApiURL}} {{.GenerateToken}} {{.Firmware.UEFI}}`,
		`{{template "inc" .}}{{define "d"}}x{{end}}{{template "d"}}`,
		`{{if .A}}{{else}}{{end}}`, `{{range until 3}}{{.}}{{end}}`,
		`{{repeat 3 "x"}}`, `{{- /* c */ -}}`, `{{`, `}}`, `{{end}}`,
		"#!ipxe\nkernel {{.Env.PathFor \"http\" .BootEnv.Kernel}} {{.BootParams}}\nboot\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		// Nested loops multiply (three ranges of 999 run 10⁹ times).
		if len(text) > 4096 || bigNumber.MatchString(text) || strings.Count(text, "range") > 1 {
			t.Skip()
		}
		e := NewEngine()
		if err := e.Set("inc", `{{.Machine.Name}}`); err != nil {
			t.Fatal(err)
		}
		ctx := testContext()
		if err := e.Set("f", text); err != nil {
			var pe *ParseError
			if errors.As(err, &pe) && pe.Line <= 0 {
				t.Errorf("parse error without a line: %v", pe)
			}
		} else if out, err := e.Render("f", ctx); err != nil && out != nil {
			t.Errorf("failed render returned %d bytes", len(out))
		}
		if out, err := e.RenderString("s", text, ctx); err != nil && out != "" {
			t.Errorf("failed render returned %q", out)
		}
	})
}
