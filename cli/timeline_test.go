package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/api/client"
)

func TestTimelineDetails(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		attrs map[string]any
		want  string
	}{
		{"transition first", "transition", map[string]any{"from": "ready", "to": "provisioning", "event": "provision", "bootenv": "linuxkit"},
			"ready → provisioning (provision) bootenv=linuxkit"},
		{"numbers as integers, sorted keys", "http.file", map[string]any{"path": "/discovery/amd64/vmlinuz", "bytes": float64(8247232), "status": float64(200), "duration_ms": 1.5},
			"bytes=8247232 duration_ms=1.5 path=/discovery/amd64/vmlinuz status=200"},
		{"values with spaces quoted", "tftp.file", map[string]any{"error": `client error 8 "User aborted"`, "status": float64(499)},
			`error="client error 8 \"User aborted\"" status=499`},
		{"no attributes", "callback", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(timelineDetails(tt.typ, tt.attrs), tt.want); diff != "" {
				t.Errorf("timelineDetails (-got +want):\n%s", diff)
			}
		})
	}
}

func TestWriteTimelineKeepsEverything(t *testing.T) {
	long := "machines/0b0e8a4c-5d0e-4c38-9b7e-1f7e2d9a9a01/user-data-with-a-long-name"
	var out bytes.Buffer
	err := writeTimeline(&out, []client.TimelineEntry{
		{Time: time.Date(2026, 12, 3, 20, 29, 43, 242e6, time.Local), Type: "render", Attrs: map[string]any{"path": long}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "2026-12-03 20:29:43.242  render  path=" + long + "\n"
	if diff := cmp.Diff(out.String(), want); diff != "" {
		t.Errorf("writeTimeline (-got +want):\n%s", diff)
	}
}
