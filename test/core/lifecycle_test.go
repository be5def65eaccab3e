package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ironcast/ironcast/api/client"
)

// plain does a request on the HTTP boot port.
func (s *server) plain(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path), rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var tokenRE = regexp.MustCompile(`ironcast\.token=(\S+)`)

// TestMachineLifecycleAndTokenScope walks a machine the way the discovery
// image and an operator do, over the plain HTTP boot port and the API, and
// checks what machine tokens may and may not do.
func TestMachineLifecycleAndTokenScope(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	s.start()
	admin := s.client()

	// An unknown machine's iPXE script carries a registration token.
	code, script := s.plain(t, "GET", "/52:54:00:de:ad:01.ipxe", "", nil)
	if code != 200 || !bytes.Contains(script, []byte("ironcast.mode=discover")) {
		t.Fatalf("discovery script: %d\n%s", code, script)
	}
	m := tokenRE.FindSubmatch(script)
	if m == nil {
		t.Fatalf("no token in %s", script)
	}
	regToken := string(m[1])

	// The registration token can do nothing but register.
	if code, _ := s.plain(t, "GET", "/api/v1/machines/", regToken, nil); code != 403 {
		t.Errorf("registration token listing machines: %d, want 403", code)
	}
	code, body := s.plain(t, "POST", "/api/v1/machines/register", regToken, map[string]any{
		"HardwareAddrs": []string{"52:54:00:de:ad:01"}, "Arch": "amd64",
		"Inventory": map[string]any{"CPUs": 2, "MemoryMiB": 2048, "Disks": []map[string]any{{"Name": "vda", "SizeBytes": 1 << 30}}},
	})
	if code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	var reg struct {
		UUID, Token string
		Machine     struct{ State, BootEnv string }
	}
	json.Unmarshal(body, &reg)
	if reg.Machine.State != "ready" || reg.Machine.BootEnv != "discovery" || reg.Token == "" {
		t.Fatalf("registered: %s", body)
	}

	other, err := admin.Create(ctx, "machines", map[string]any{"Name": "other", "HardwareAddrs": []string{"52:54:00:de:ad:02"}})
	if err != nil {
		t.Fatal(err)
	}
	var otherM struct{ UUID string }
	json.Unmarshal(other, &otherM)

	// What a machine token may and may not do, on the plain port.
	scope := []struct {
		name, method, path string
		want               int
	}{
		{"own record", "GET", "/api/v1/machines/" + reg.UUID, 200},
		{"own params", "GET", "/api/v1/machines/" + reg.UUID + "/params?aggregate=true", 200},
		{"own metadata", "GET", "/api/v1/machines/" + reg.UUID + "/metadata", 200},
		{"own metadata.json", "GET", "/machines/" + reg.UUID + "/metadata.json", 200},
		{"another machine's metadata.json", "GET", "/machines/" + otherM.UUID + "/metadata.json", 403},
		{"another machine", "GET", "/api/v1/machines/" + otherM.UUID, 403},
		{"another machine's metadata", "GET", "/api/v1/machines/" + otherM.UUID + "/metadata", 403},
		{"list machines", "GET", "/api/v1/machines/", 403},
		{"own record, decoded", "GET", "/api/v1/machines/" + reg.UUID + "?decode=true", 403},
		{"change itself", "PUT", "/api/v1/machines/" + reg.UUID, 403},
		{"provision itself", "POST", "/api/v1/machines/" + reg.UUID + "/actions/provision", 403},
		{"delete itself", "DELETE", "/api/v1/machines/" + reg.UUID, 403},
		{"another machine's callback", "POST", "/api/v1/machines/" + otherM.UUID + "/callbacks/failed", 403},
		{"other API routes over plain HTTP", "GET", "/api/v1/bootenvs/", 404},
	}
	for _, c := range scope {
		t.Run("machine token/"+c.name, func(t *testing.T) {
			if code, body := s.plain(t, c.method, c.path, reg.Token, nil); code != c.want {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
			}
		})
	}
	// A known machine that boots discovery again (after a wipe, say) finds
	// its own machine token in the script and registers itself with it,
	// and only itself.
	code, script = s.plain(t, "GET", "/52:54:00:de:ad:01.ipxe", "", nil)
	if code != 200 || !bytes.Contains(script, []byte("ironcast.uuid="+reg.UUID)) {
		t.Fatalf("known machine's discovery script: %d\n%s", code, script)
	}
	if m = tokenRE.FindSubmatch(script); m == nil {
		t.Fatalf("no token in %s", script)
	}
	ownToken := string(m[1])
	code, body = s.plain(t, "POST", "/api/v1/machines/register", ownToken, map[string]any{
		"HardwareAddrs": []string{"52:54:00:de:ad:01"}, "Arch": "amd64",
		"Inventory": map[string]any{"CPUs": 4, "MemoryMiB": 4096},
	})
	var again struct {
		UUID    string
		Machine struct{ Inventory struct{ CPUs int } }
	}
	json.Unmarshal(body, &again)
	if code != 200 || again.UUID != reg.UUID || again.Machine.Inventory.CPUs != 4 {
		t.Fatalf("re-register with the machine's own token: %d %s; want 200, UUID %s, 4 CPUs", code, body, reg.UUID)
	}
	code, body = s.plain(t, "POST", "/api/v1/machines/register", ownToken, map[string]any{
		"HardwareAddrs": []string{"52:54:00:de:ad:02"}, "Arch": "amd64",
	})
	if code != 409 || !bytes.Contains(body, []byte(otherM.UUID)) {
		t.Errorf("machine token registering another machine's MAC: %d %s, want 409 naming %s", code, body, otherM.UUID)
	}

	// A user token is never accepted in clear.
	tok, err := admin.Token(ctx, "admin", s.password(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := s.plain(t, "GET", "/api/v1/machines/"+reg.UUID, tok.Token, nil); code != 403 {
		t.Errorf("admin token over plain HTTP: %d, want 403", code)
	}

	// The operator provisions; an illegal action answers 409 with the state.
	op := s.client(client.WithToken(tok.Token))
	if _, err := op.SetParam(ctx, reg.UUID, "linuxkit-image", "demo"); err != nil {
		t.Fatal(err)
	}
	post := func(path string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", s.url(path), bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := s.httpsClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, body := post("/api/v1/machines/"+reg.UUID+"/actions/release", nil); code != 409 || !strings.Contains(string(body), "ready") {
		t.Errorf("release of a ready machine: %d %s, want 409 naming the state", code, body)
	}
	if code, body := post("/api/v1/machines/"+reg.UUID+"/actions/provision", map[string]string{"BootEnv": "linuxkit"}); code != 200 {
		t.Fatalf("provision: %d %s", code, body)
	}
	code, script = s.plain(t, "GET", "/52:54:00:de:ad:01.ipxe", "", nil)
	if code != 200 || !bytes.Contains(script, []byte("linuxkit/demo-kernel")) {
		t.Fatalf("after provision the script is %d:\n%s", code, script)
	}
	// The booted image reports running with its own token.
	if code, body := s.plain(t, "POST", "/api/v1/machines/"+reg.UUID+"/callbacks/running", reg.Token, map[string]any{}); code != 200 {
		t.Fatalf("running callback: %d %s", code, body)
	}
	raw, _, err := op.Get(ctx, "machines", reg.UUID, false)
	if err != nil || !bytes.Contains(raw, []byte(`"State":"running"`)) {
		t.Fatalf("machine after running: %s %v", raw, err)
	}

	// Render and explain show what the machine is served.
	req, _ := http.NewRequest("GET", s.url("/api/v1/machines/"+reg.UUID+"/render/ipxe"), nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := s.httpsClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rendered, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(rendered, []byte("linuxkit/demo-kernel")) {
		t.Errorf("render ipxe: %d %s", resp.StatusCode, rendered)
	}
	if _, err := op.Delete(ctx, "params", "linuxkit-image", ""); err == nil {
		t.Log("deleted a param definition that did not exist")
	}
	if _, err := op.Patch(ctx, "machines", reg.UUID, []byte(`{"Params":{"linuxkit-image":null}}`), "application/merge-patch+json", ""); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", s.url("/api/v1/machines/"+reg.UUID+"/render/ipxe"), nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = s.httpsClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !strings.Contains(string(body), "linuxkit-image") {
		t.Errorf("render without the param: %d %s, want 422 naming it", resp.StatusCode, body)
	}
	if code, _ := s.plain(t, "GET", "/52:54:00:de:ad:01.ipxe", "", nil); code != 500 {
		t.Errorf("firmware fetching a broken render got %d, want 500", code)
	}

	// The timeline tells the story.
	req, _ = http.NewRequest("GET", s.url("/api/v1/machines/"+reg.UUID+"/timeline"), nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = s.httpsClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tl []struct {
		Type  string
		Attrs map[string]any
	}
	json.NewDecoder(resp.Body).Decode(&tl)
	resp.Body.Close()
	var types []string
	for _, e := range tl {
		types = append(types, e.Type)
	}
	joined := strings.Join(types, ",")
	for _, want := range []string{"render", "http.file", "transition", "render.failed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("timeline %v lacks %s", types, want)
		}
	}
}

// TestLifecycleCLI drives provision, render, explain and timeline through
// the CLI with no flags.
func TestLifecycleCLI(t *testing.T) {
	s := newServer(t)
	s.start()
	out, errOut, code := s.cli("", "machines", "create", `{"Name":"c1","HardwareAddrs":["52:54:00:c1:00:01"],"Params":{"linuxkit-image":"demo"}}`)
	if code != 0 {
		t.Fatalf("create: %s %s", out, errOut)
	}
	if _, errOut, code := s.cli("", "machines", "render", "Name:c1", "ipxe"); code != 0 {
		t.Fatalf("render: %s", errOut)
	}
	if _, errOut, code := s.cli("", "machines", "release", "Name:c1"); code == 0 || !strings.Contains(errOut, "409") {
		t.Errorf("release of a discovered machine: exit %d %s, want a 409", code, errOut)
	}
	if _, errOut, code := s.cli("", "machines", "provision", "Name:c1", "--bootenv", "linuxkit"); code != 0 {
		t.Fatalf("provision: %s", errOut)
	}
	out, errOut, code = s.cli("", "machines", "render", "Name:c1", "ipxe")
	if code != 0 || !strings.Contains(out, "linuxkit/demo-kernel") {
		t.Fatalf("render after provision: %d %s %s", code, out, errOut)
	}
	out, errOut, code = s.cli("", "machines", "explain", "Name:c1")
	if code != 0 || !strings.Contains(out, "linuxkit-image") || !strings.Contains(out, "from machine") || !strings.Contains(out, "52:54:00:c1:00:01.ipxe") {
		t.Fatalf("explain: %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = s.cli("", "machines", "timeline", "Name:c1")
	if code != 0 || !strings.Contains(out, "transition") {
		t.Fatalf("timeline: %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = s.cli("", "machines", "timeline", "Name:c1", "-o", "json")
	var tl []struct {
		Type  string
		Attrs map[string]any
	}
	if code != 0 || json.Unmarshal([]byte(out), &tl) != nil {
		t.Fatalf("timeline -o json: %d\n%s\n%s", code, out, errOut)
	}
	provisioned := false
	for _, e := range tl {
		if e.Type == "transition" && e.Attrs["to"] == "provisioning" && e.Attrs["event"] == "provision" {
			provisioned = true
		}
	}
	if !provisioned {
		t.Errorf("timeline has no provision transition: %s", out)
	}
	_, errOut, code = s.cli("", "machines", "release", "Name:c1")
	if code != 0 {
		t.Fatalf("release from provisioning: %s", errOut)
	}
	out, _, _ = s.cli("", "machines", "show", "Name:c1")
	if !strings.Contains(out, `"BootEnv": "wipe"`) || !strings.Contains(out, `"State": "releasing"`) {
		t.Errorf("after release: %s", out)
	}
}
