package templates

import (
	"os"
	"testing"
)

// BenchmarkRenderIPXE renders a per-machine iPXE script (templated kernel
// path, initrds, command line with params) as HTTP boot does per request.
func BenchmarkRenderIPXE(b *testing.B) {
	text, err := os.ReadFile("testdata/ipxe.tmpl")
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine()
	if err := e.Set("ipxe", string(text)); err != nil {
		b.Fatal(err)
	}
	ctx := testContext()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, err := e.Render("ipxe", ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(out)))
	}
}
