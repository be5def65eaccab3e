package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
)

var ctx = context.Background()

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/api/v1/machines", "", 401},
		{"no token info", "GET", "/api/v1/info", "", 401},
		{"no token events", "GET", "/api/v1/events", "", 401},
		{"garbage token", "GET", "/api/v1/machines", "garbage", 401},
		{"healthz needs none", "GET", "/healthz", "", 200},
		{"swagger UI needs none", "GET", "/swagger/index.html", "", 200},
		{"spec needs none", "GET", "/swagger/doc.json", "", 200},
		{"metrics need none", "GET", "/metrics", "", 200},
		{"unknown route", "GET", "/api/v1/nothing", e.token("admin", model.RoleAdmin, ""), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := e.raw(tt.method, tt.path, tt.token, "", "")
			if code != tt.want {
				t.Fatalf("status %d, want %d: %s", code, tt.want, body)
			}
			if code == 401 {
				if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", h.Get("WWW-Authenticate"))
				}
				var er struct{ Message string }
				if json.Unmarshal([]byte(body), &er) != nil || er.Message == "" {
					t.Errorf("401 body is not a JSON error: %s", body)
				}
			}
		})
	}
	if _, _, body := e.raw("GET", "/swagger/doc.json", "", "", ""); !strings.Contains(body, `"ironcast API"`) {
		t.Errorf("/swagger/doc.json does not serve the generated spec: %.200s", body)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	m := e.createMachine(e.admin, &model.Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:12:34:56"}})

	// readonly reads but never writes.
	if _, _, err := e.readonly.Get(ctx, model.KindMachines, m.UUID, false); err != nil {
		t.Errorf("readonly get: %v", err)
	}
	_, err := e.readonly.Create(ctx, model.KindMachines, `{"Name":"n2"}`)
	apiError(t, err, http.StatusForbidden)
	_, err = e.readonly.Patch(ctx, model.KindMachines, m.UUID, []byte(`{"Description":"x"}`), client.MergePatch, "")
	apiError(t, err, http.StatusForbidden)
	_, err = e.readonly.Delete(ctx, model.KindMachines, m.UUID, "")
	apiError(t, err, http.StatusForbidden)
	_, err = e.readonly.SetParam(ctx, m.UUID, "x", 1)
	apiError(t, err, http.StatusForbidden)
	_, _, err = e.readonly.Get(ctx, model.KindMachines, m.UUID, true)
	apiError(t, err, http.StatusForbidden)

	// operator does everything but users.
	e.createMachine(e.operator, &model.Machine{Name: "n2"})
	_, err = e.operator.Create(ctx, model.KindUsers, `{"Name":"eve","Role":"admin","Password":"12345678"}`)
	apiError(t, err, http.StatusForbidden)
	_, err = e.operator.Patch(ctx, model.KindUsers, "ro", []byte(`{"Role":"admin"}`), client.MergePatch, "")
	apiError(t, err, http.StatusForbidden)
	if _, _, err := e.operator.List(ctx, model.KindUsers, nil); err != nil {
		t.Errorf("operator lists users: %v", err)
	}
	_, err = e.operator.Token(ctx, "admin", "", 0)
	apiError(t, err, http.StatusForbidden)
	var buf bytes.Buffer
	_, err = e.operator.Backup(ctx, &buf)
	apiError(t, err, http.StatusForbidden)

	if n := e.count(model.KindUsers); n != 3 {
		t.Errorf("%d users stored, want 3", n)
	}

	// admin manages users.
	if _, err := e.admin.Create(ctx, model.KindUsers, `{"Name":"eve","Role":"operator","Password":"eve-password"}`); err != nil {
		t.Errorf("admin creates user: %v", err)
	}
	// admin backs up.
	n, err := e.admin.Backup(ctx, &buf)
	if err != nil || n == 0 || int64(buf.Len()) != n {
		t.Errorf("backup: %d bytes (buffer %d), %v", n, buf.Len(), err)
	}
	code, h, _ := e.raw("GET", "/api/v1/backup", e.token("admin", model.RoleAdmin, ""), "", "")
	if cd := h.Get("Content-Disposition"); code != 200 || !strings.HasPrefix(cd, `attachment; filename="ironcast-`) {
		t.Errorf("backup: %d, Content-Disposition %q", code, cd)
	}
}

func TestUsersNeverShowSecrets(t *testing.T) {
	e := newEnv(t)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, err := e.admin.Events(cctx, model.KindUsers)
	if err != nil {
		t.Fatal(err)
	}
	created, err := e.admin.Create(ctx, model.KindUsers, `{"Name":"eve","Role":"operator","Password":"eve-password"}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := e.admin.Get(ctx, model.KindUsers, "eve", true)
	list, _, _ := e.admin.List(ctx, model.KindUsers, nil)
	patched, err := e.admin.Patch(ctx, model.KindUsers, "eve", []byte(`{"Description":"d"}`), client.MergePatch, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := <-evs
	outputs := map[string]string{"create": string(created), "get": string(got), "list": joinRaw(list), "patch": string(patched), "event": string(ev.Object)}
	for name, out := range outputs {
		if out == "" || strings.Contains(out, "Password") || strings.Contains(out, "$2a$") || strings.Contains(out, "eve-password") {
			t.Errorf("%s shows a password or hash (or nothing): %s", name, out)
		}
	}
	// The patch kept the password: eve can still log in.
	if _, err := e.admin.Token(ctx, "eve", "eve-password", 0); err != nil {
		t.Errorf("eve logs in after patch: %v", err)
	}
	// A JSON Patch cannot probe the hash with a test operation.
	_, err = e.admin.Patch(ctx, model.KindUsers, "eve", []byte(`[{"op":"test","path":"/PasswordHash","value":"x"}]`), client.JSONPatch, "")
	if err == nil {
		t.Error("test op on PasswordHash succeeded")
	}
}

func TestRejectedWritesStoreNothing(t *testing.T) {
	e := newEnv(t)
	if _, err := e.admin.Create(ctx, model.KindParams, `{"Name":"ntp-count","Schema":{"type":"integer","minimum":1}}`); err != nil {
		t.Fatal(err)
	}
	owner := e.createMachine(e.admin, &model.Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:12:34:56"}})
	tests := []struct {
		name      string
		body      string
		code      int
		field     string
		inMessage string
	}{
		{"invalid JSON", `{"Name":"n2",`, 400, "", "invalid JSON"},
		{"syntax error", `{"Name" "n2"}`, 400, "", "invalid JSON at byte"},
		{"unknown field", `{"Name":"n2","Bogus":1}`, 400, "Bogus", "unknown field"},
		{"wrong type", `{"Name":"n2","HardwareAddrs":"52:54:00:00:00:01"}`, 400, "HardwareAddrs", "must be an array"},
		{"trailing data", `{"Name":"n2"} {}`, 400, "", "after the top-level value"},
		{"empty body", ``, 400, "", "empty"},
		{"MAC owned by another machine", `{"Name":"n2","HardwareAddrs":["52:54:00:12:34:56"]}`, 409, "", "52:54:00:12:34:56"},
		{"MAC in another notation", `{"Name":"n2","HardwareAddrs":["52-54-00-12-34-56"]}`, 409, "", "52:54:00:12:34:56"},
		{"param fails its schema", `{"Name":"n2","Params":{"ntp-count":0}}`, 422, "Params.ntp-count", "schema"},
		{"invalid MAC", `{"Name":"n2","HardwareAddrs":["zz"]}`, 422, "HardwareAddrs[0]", "not a MAC"},
		{"name taken", `{"Name":"n1"}`, 409, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.admin.Create(ctx, model.KindMachines, tt.body)
			ae := apiError(t, err, tt.code)
			if ae.Field != tt.field && tt.field != "" {
				t.Errorf("Field = %q, want %q", ae.Field, tt.field)
			}
			if !strings.Contains(ae.Error(), tt.inMessage) {
				t.Errorf("message %q does not say %q", ae.Error(), tt.inMessage)
			}
			if n := e.count(model.KindMachines); n != 1 {
				t.Errorf("%d machines stored, want 1", n)
			}
		})
	}
	// The owner keeps its MAC.
	if _, total, _ := e.admin.List(ctx, model.KindMachines, url.Values{"HardwareAddrs": {"52:54:00:12:34:56"}}); total != 1 {
		t.Errorf("%d machines hold the MAC, want 1 (%s)", total, owner.UUID)
	}
	// A body over the limit is refused with 413.
	big := `{"Name":"n3","Description":"` + strings.Repeat("x", 17<<20) + `"}`
	_, err := e.admin.Create(ctx, model.KindMachines, big)
	apiError(t, err, http.StatusRequestEntityTooLarge)
	// Not JSON.
	code, _, body := e.raw("POST", "/api/v1/machines", e.token("admin", model.RoleAdmin, ""), "text/plain", "Name: x")
	if code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d %s", code, body)
	}
}

func TestETagCompareAndSwap(t *testing.T) {
	e := newEnv(t)
	m := e.createMachine(e.admin, &model.Machine{Name: "n1"})
	_, etag, err := e.admin.Get(ctx, model.KindMachines, m.UUID, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"%d"`, m.Revision); etag != want {
		t.Errorf("ETag %s, want %s", etag, want)
	}
	// Two writers with the same ETag, at the same time: one wins.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			c := *m
			c.Description = fmt.Sprint("writer ", i)
			_, errs[i] = e.operator.Replace(ctx, model.KindMachines, m.UUID, c, etag)
		})
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case client.IsConflict(err):
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Errorf("%d succeeded and %d got 409, want 1 and 1", ok, conflicts)
	}
	// The stale ETag fails for every write verb.
	_, err = e.operator.Patch(ctx, model.KindMachines, m.UUID, []byte(`{"Description":"late"}`), client.MergePatch, etag)
	apiError(t, err, http.StatusConflict)
	_, err = e.operator.SetParam(ctx, m.UUID, "x", 1)
	if err != nil {
		t.Errorf("set param without If-Match: %v", err)
	}
	_, err = e.operator.Delete(ctx, model.KindMachines, m.UUID, etag)
	apiError(t, err, http.StatusConflict)
	// PUT with the key of another object is refused.
	_, err = e.operator.Replace(ctx, model.KindMachines, m.UUID, `{"UUID":"00000000-0000-4000-8000-000000000000","Name":"n1"}`, "")
	if ae := apiError(t, err, http.StatusUnprocessableEntity); ae.Field != "UUID" {
		t.Errorf("Field = %q, want UUID", ae.Field)
	}
	_, err = e.operator.Replace(ctx, model.KindMachines, m.UUID, `{"Name":"n1"}`, `"abc"`)
	apiError(t, err, http.StatusBadRequest)
	// A fresh ETag works, and HEAD reports existence.
	_, etag, _ = e.admin.Get(ctx, model.KindMachines, m.UUID, false)
	if _, err := e.operator.Delete(ctx, model.KindMachines, m.UUID, etag); err != nil {
		t.Errorf("delete with current ETag: %v", err)
	}
	if ok, err := e.operator.Exists(ctx, model.KindMachines, m.UUID); ok || err != nil {
		t.Errorf("Exists after delete = %v, %v", ok, err)
	}
	_, _, err = e.admin.Get(ctx, model.KindMachines, m.UUID, false)
	apiError(t, err, http.StatusNotFound)
}

func TestPatch(t *testing.T) {
	e := newEnv(t)
	m := e.createMachine(e.admin, &model.Machine{Name: "n1", Description: "before", Profiles: nil})
	tests := []struct {
		name  string
		ctype string
		patch string
		code  int
		check func(*model.Machine) string
	}{
		{"merge patch sets and removes", client.MergePatch, `{"Description":null,"Params":{"a":1,"b":"x"}}`, 200, func(m *model.Machine) string {
			return cmp.Diff(m.Params, map[string]any{"a": 1.0, "b": "x"}) + cmp.Diff(m.Description, "")
		}},
		{"merge patch deletes one param", client.MergePatch, `{"Params":{"b":null}}`, 200, func(m *model.Machine) string {
			return cmp.Diff(m.Params, map[string]any{"a": 1.0})
		}},
		{"JSON patch", client.JSONPatch, `[{"op":"add","path":"/Description","value":"after"},{"op":"add","path":"/Params/c","value":[1,2]},{"op":"remove","path":"/Params/a"}]`, 200, func(m *model.Machine) string {
			return cmp.Diff(m.Params, map[string]any{"c": []any{1.0, 2.0}}) + cmp.Diff(m.Description, "after")
		}},
		{"JSON patch test passes", client.JSONPatch, `[{"op":"test","path":"/Name","value":"n1"},{"op":"replace","path":"/Name","value":"n1b"}]`, 200, func(m *model.Machine) string {
			return cmp.Diff(m.Name, "n1b")
		}},
		{"JSON patch test fails", client.JSONPatch, `[{"op":"test","path":"/Name","value":"other"}]`, 409, nil},
		{"JSON patch path missing", client.JSONPatch, `[{"op":"remove","path":"/Nope"}]`, 422, nil},
		{"JSON patch not an array", client.JSONPatch, `{"op":"add"}`, 400, nil},
		{"merge patch not JSON", client.MergePatch, `{`, 400, nil},
		{"patch adds unknown field", client.MergePatch, `{"Bogus":1}`, 400, nil},
		{"patch changes the key", client.MergePatch, `{"UUID":"00000000-0000-4000-8000-000000000000"}`, 422, nil},
		{"patch breaks validation", client.MergePatch, `{"Arch":"sparc"}`, 422, nil},
		{"plain JSON is not a patch", "application/json", `{"Description":"x"}`, 415, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _, _ := e.admin.Get(ctx, model.KindMachines, m.UUID, false)
			raw, err := e.operator.Patch(ctx, model.KindMachines, m.UUID, []byte(tt.patch), tt.ctype, "")
			if tt.code != 200 {
				apiError(t, err, tt.code)
				after, _, _ := e.admin.Get(ctx, model.KindMachines, m.UUID, false)
				if diff := cmp.Diff(string(after), string(before)); diff != "" {
					t.Errorf("a refused patch changed the machine:\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := decodeInto[model.Machine](t, raw)
			if diff := tt.check(got); diff != "" {
				t.Errorf("patched machine:\n%s", diff)
			}
			stored, _, _ := e.admin.GetObject(ctx, model.KindMachines, m.UUID, false)
			if diff := tt.check(stored.(*model.Machine)); diff != "" {
				t.Errorf("stored machine:\n%s", diff)
			}
		})
	}
}

func TestListQuery(t *testing.T) {
	e := newEnv(t)
	for i, spec := range []struct {
		name, arch string
		rack       any
	}{
		{"m3", "amd64", "r1"}, {"m1", "arm64", "r2"}, {"m5", "amd64", "r1"}, {"m2", "amd64", "r3"}, {"m4", "arm64", nil},
	} {
		m := &model.Machine{Name: spec.name, Arch: spec.arch, HardwareAddrs: []string{fmt.Sprintf("52:54:00:00:00:%02x", i)}}
		if spec.rack != nil {
			m.Params = map[string]any{"rack": spec.rack}
		}
		m.Inventory = &model.Inventory{CPUs: 10 - i}
		e.createMachine(e.operator, m)
	}
	tests := []struct {
		name  string
		query string
		want  []string
		total int
	}{
		{"all in key order has 5", "sort=Name", []string{"m1", "m2", "m3", "m4", "m5"}, 5},
		{"filter field", "Arch=arm64&sort=Name", []string{"m1", "m4"}, 2},
		{"filter case-insensitive name", "arch=arm64&sort=name", []string{"m1", "m4"}, 2},
		{"filter alternatives", "Name=m1&Name=m5&sort=Name", []string{"m1", "m5"}, 2},
		{"filter param", "param.rack=r1&sort=Name", []string{"m3", "m5"}, 2},
		{"filter nested", "Inventory.CPUs=8", []string{"m5"}, 1},
		{"filter array element, any MAC notation", "HardwareAddrs=52-54-00-00-00-03", []string{"m2"}, 1},
		{"filter and", "Arch=amd64&param.rack=r1&sort=Name", []string{"m3", "m5"}, 2},
		{"no match", "Name=zz", []string{}, 0},
		{"sort reverse", "sort=Name&reverse=true", []string{"m5", "m4", "m3", "m2", "m1"}, 5},
		{"sort numeric nested", "sort=Inventory.CPUs", []string{"m4", "m2", "m5", "m1", "m3"}, 5},
		{"sort param, missing first", "sort=param.rack&Name=m1&Name=m3&Name=m4", []string{"m4", "m3", "m1"}, 3},
		{"offset and limit", "sort=Name&offset=1&limit=2", []string{"m2", "m3"}, 5},
		{"offset past end", "sort=Name&offset=9", []string{}, 5},
		{"limit zero counts", "limit=0", []string{}, 5},
		{"filter then page", "Arch=amd64&sort=Name&limit=1&offset=1", []string{"m3"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			objs, total, err := e.readonly.ListObjects(ctx, model.KindMachines, q)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, o := range objs {
				got = append(got, o.(*model.Machine).Name)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("names (-got +want):\n%s", diff)
			}
			if total != tt.total {
				t.Errorf("X-Total-Count %d, want %d", total, tt.total)
			}
		})
	}
	for _, bad := range []struct{ query, field string }{
		{"Bogus=1", "Bogus"}, {"sort=Nope", "sort"}, {"limit=-1", "limit"}, {"offset=x", "offset"},
		{"reverse=maybe", "reverse"}, {"Name.x=1", "Name.x"}, {"PasswordHash=x", "PasswordHash"},
	} {
		q, _ := url.ParseQuery(bad.query)
		_, _, err := e.readonly.List(ctx, model.KindMachines, q)
		if ae := apiError(t, err, http.StatusBadRequest); ae.Field != bad.field {
			t.Errorf("%s: Field %q, want %q (%v)", bad.query, ae.Field, bad.field, ae)
		}
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, err := e.readonly.Events(cctx, model.KindMachines)
	if err != nil {
		t.Fatal(err)
	}
	// A profile event must not reach a machines subscription.
	if _, err := e.admin.Create(ctx, model.KindProfiles, `{"Name":"p1"}`); err != nil {
		t.Fatal(err)
	}
	m := e.createMachine(e.admin, &model.Machine{Name: "n1"})
	if _, err := e.admin.Patch(ctx, model.KindMachines, m.UUID, []byte(`{"Description":"x"}`), client.MergePatch, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Delete(ctx, model.KindMachines, m.UUID, ""); err != nil {
		t.Fatal(err)
	}
	type seen struct{ Type, Kind, Key, Description string }
	var got []seen
	for len(got) < 3 {
		ev, ok := <-evs
		if !ok {
			t.Fatalf("stream closed after %v", got)
		}
		var obj model.Machine
		if err := json.Unmarshal(ev.Object, &obj); err != nil {
			t.Fatalf("event object: %v", err)
		}
		got = append(got, seen{ev.Type, ev.Kind, ev.Key, obj.Description})
	}
	want := []seen{
		{"created", "machines", m.UUID, ""},
		{"updated", "machines", m.UUID, "x"},
		{"deleted", "machines", m.UUID, "x"},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
	// The stream ends when the client goes.
	cancel()
	for range evs {
	}
	code, _, body := e.raw("GET", "/api/v1/events?kind=nope", e.token("ro", model.RoleReadOnly, ""), "", "")
	if code != 400 || !strings.Contains(body, "nope") {
		t.Errorf("bad kind: %d %s", code, body)
	}
}

func TestMachineToken(t *testing.T) {
	e := newEnv(t)
	m1 := e.createMachine(e.admin, &model.Machine{Name: "n1", Params: map[string]any{"x": 1}})
	m2 := e.createMachine(e.admin, &model.Machine{Name: "n2"})
	mc := e.client(client.WithToken(e.token("admin", model.RoleReadOnly, auth.MachineScope(m1.UUID))))
	if _, _, err := mc.Get(ctx, model.KindMachines, m1.UUID, false); err != nil {
		t.Errorf("own machine: %v", err)
	}
	if p, err := mc.Params(ctx, m1.UUID, false); err != nil || p["x"] != 1.0 {
		t.Errorf("own params: %v, %v", p, err)
	}
	if _, err := mc.AggregateParams(ctx, m1.UUID, false); err != nil {
		t.Errorf("own aggregate params: %v", err)
	}
	_, _, err := mc.List(ctx, model.KindMachines, nil)
	apiError(t, err, http.StatusForbidden)
	_, _, err = mc.Get(ctx, model.KindMachines, m2.UUID, false)
	apiError(t, err, http.StatusForbidden)
	_, err = mc.Params(ctx, m2.UUID, false)
	apiError(t, err, http.StatusForbidden)
	_, _, err = mc.List(ctx, model.KindProfiles, nil)
	apiError(t, err, http.StatusForbidden)
	_, err = mc.SetParam(ctx, m1.UUID, "x", 2)
	apiError(t, err, http.StatusForbidden)
	_, err = mc.Token(ctx, "admin", "", 0)
	apiError(t, err, http.StatusForbidden)
	_, _, err = mc.Get(ctx, model.KindMachines, m1.UUID, true)
	apiError(t, err, http.StatusForbidden)
	code, _, _ := e.raw("GET", "/api/v1/machines/"+m1.UUID+"/../"+m2.UUID, e.token("admin", model.RoleReadOnly, auth.MachineScope(m1.UUID)), "", "")
	if code != http.StatusForbidden {
		t.Errorf("dot-dot path: %d, want 403", code)
	}
	reg := e.client(client.WithToken(e.token("admin", model.RoleReadOnly, auth.ScopeRegister)))
	_, _, err = reg.List(ctx, model.KindMachines, nil)
	apiError(t, err, http.StatusForbidden)
}

func TestSecureParams(t *testing.T) {
	e := newEnv(t)
	if _, err := e.admin.Create(ctx, model.KindParams, `{"Name":"root-password","Secure":true,"Schema":{"type":"string","minLength":8}}`); err != nil {
		t.Fatal(err)
	}
	const secret = "hunter2hunter2"
	m := e.createMachine(e.admin, &model.Machine{Name: "n1", Params: map[string]any{"root-password": secret, "plain": "v"}})
	op := e.operator
	ro := e.readonly
	sealedOK := func(name string, raw string) {
		t.Helper()
		if strings.Contains(raw, secret) || !strings.Contains(raw, "$sealed") {
			t.Errorf("%s: secure value not sealed: %s", name, raw)
		}
	}
	clearOK := func(name string, raw string) {
		t.Helper()
		if !strings.Contains(raw, secret) {
			t.Errorf("%s: secure value not revealed: %s", name, raw)
		}
	}
	raw, _, _ := ro.Get(ctx, model.KindMachines, m.UUID, false)
	sealedOK("readonly get", string(raw))
	raw, _, _ = op.Get(ctx, model.KindMachines, m.UUID, false)
	sealedOK("operator get without decode", string(raw))
	list, _, _ := e.admin.List(ctx, model.KindMachines, nil)
	sealedOK("admin list", joinRaw(list))
	raw, _, _ = e.admin.Get(ctx, model.KindMachines, m.UUID, true)
	clearOK("admin decode", string(raw))
	raw, _, _ = op.Get(ctx, model.KindMachines, m.UUID, true)
	clearOK("operator decode", string(raw))
	list, _, _ = op.List(ctx, model.KindMachines, url.Values{"decode": {"true"}})
	clearOK("operator list decode", joinRaw(list))
	_, _, err := ro.Get(ctx, model.KindMachines, m.UUID, true)
	apiError(t, err, http.StatusForbidden)
	for _, spelling := range []string{"1", "TRUE", "t", "yes"} {
		code, _, body := e.raw("GET", "/api/v1/machines/"+m.UUID+"?decode="+spelling, e.token("ro", model.RoleReadOnly, ""), "", "")
		if code != http.StatusForbidden || strings.Contains(body, secret) {
			t.Errorf("readonly decode=%s: %d %s", spelling, code, body)
		}
	}

	agg, err := ro.AggregateParams(ctx, m.UUID, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(agg)
	sealedOK("readonly aggregate", string(b))
	agg, err = e.admin.AggregateParams(ctx, m.UUID, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(agg)
	clearOK("admin aggregate decode", string(b))
	p, _ := e.admin.Params(ctx, m.UUID, false)
	b, _ = json.Marshal(p)
	sealedOK("params", string(b))
	p, _ = e.admin.Params(ctx, m.UUID, true)
	if p["root-password"] != secret {
		t.Errorf("params decode: %v", p)
	}
	// Setting a secure param seals it; a bad value is refused by its schema.
	p, err = op.SetParam(ctx, m.UUID, "root-password", "another-secret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(p)
	if strings.Contains(string(b), "another-secret") {
		t.Errorf("SetParam answer shows the secret: %s", b)
	}
	_, err = op.SetParam(ctx, m.UUID, "root-password", "short")
	if ae := apiError(t, err, http.StatusUnprocessableEntity); ae.Field != "Params.root-password" {
		t.Errorf("Field %q", ae.Field)
	}
	// Writing back a sealed value read from the API keeps the secret.
	raw, etag, _ := op.Get(ctx, model.KindMachines, m.UUID, false)
	if _, err := op.Replace(ctx, model.KindMachines, m.UUID, raw, etag); err != nil {
		t.Fatal(err)
	}
	p, _ = e.admin.Params(ctx, m.UUID, true)
	if p["root-password"] != "another-secret" {
		t.Errorf("after round trip: %v", p)
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	// HTTP Basic of the user.
	tok, err := e.admin.Token(ctx, "ro", "readonly-password", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.ExpiresAt); d <= 8*time.Minute || d > 10*time.Minute {
		t.Errorf("expires in %v, want about 10m", d)
	}
	who, err := e.client(client.WithToken(tok.Token)).Whoami(ctx)
	if err != nil || who.Name != "ro" || who.Role != model.RoleReadOnly {
		t.Errorf("whoami = %+v, %v", who, err)
	}
	_, err = e.admin.Token(ctx, "ro", "wrong-password", 0)
	apiError(t, err, http.StatusUnauthorized)
	_, err = e.admin.Token(ctx, "nobody", "whatever-pw", 0)
	apiError(t, err, http.StatusUnauthorized)
	_, err = e.admin.Token(ctx, "ro", "readonly-password", -time.Second)
	if err != nil {
		t.Errorf("ttl 0 (default): %v", err)
	}
	code, _, body := e.raw("POST", "/api/v1/users/ro/token", "", "", "")
	if code != 401 {
		t.Errorf("no credentials: %d %s", code, body)
	}
	code, _, body = e.raw("POST", "/api/v1/users/ro/token", e.token("ro", model.RoleReadOnly, ""), "application/json", `{"TTL":"soon"}`)
	if code != 400 || !strings.Contains(body, "TTL") {
		t.Errorf("bad TTL: %d %s", code, body)
	}
	// An admin token gets one for another user, with that user's role.
	tok, err = e.admin.Token(ctx, "op", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if who, _ := e.client(client.WithToken(tok.Token)).Whoami(ctx); who == nil || who.Role != model.RoleOperator {
		t.Errorf("admin-issued token: %+v", who)
	}
	// Readonly renews its own token but not another's.
	if _, err := e.readonly.Token(ctx, "ro", "", 0); err != nil {
		t.Errorf("renew own token: %v", err)
	}
	_, err = e.readonly.Token(ctx, "admin", "", 0)
	apiError(t, err, http.StatusForbidden)

	// Tokens expire.
	past, err := auth.New(auth.Config{Key: e.key, Users: e.user, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := past.Issue(auth.Principal{Name: "admin", Role: model.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.client(client.WithToken(old)).List(ctx, model.KindMachines, nil)
	if ae := apiError(t, err, http.StatusUnauthorized); !strings.Contains(ae.Message, "expired") {
		t.Errorf("message %q does not say expired", ae.Message)
	}
	// A client with basic credentials logs in by itself, and again when
	// its token is refused.
	basic := e.client(client.WithBasicAuth("op", "operator-password"))
	if who, err := basic.Whoami(ctx); err != nil || who.Name != "op" {
		t.Errorf("basic-auth client: %+v, %v", who, err)
	}
	// Neither tokens nor passwords reach the log, which does have one
	// line per request with its route pattern.
	logs := e.logs.String()
	for _, secret := range []string{tok.Token, old, "readonly-password", adminPassword, "Bearer", "Basic "} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret (%.12s…)", secret)
		}
	}
	if !strings.Contains(logs, "route=/api/v1/users/{key}/token") || !strings.Contains(logs, "status=401") {
		t.Errorf("the log lacks request lines:\n%.2000s", logs)
	}
	// A deleted user's tokens stop working.
	rotok := e.token("ro", model.RoleReadOnly, "")
	if _, err := e.admin.Delete(ctx, model.KindUsers, "ro", ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.client(client.WithToken(rotok)).List(ctx, model.KindMachines, nil)
	apiError(t, err, http.StatusUnauthorized)
}

func TestInfoAndMetrics(t *testing.T) {
	e := newEnv(t)
	info, err := e.readonly.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "test" || info.Ports["api"] != 8092 || time.Since(info.ServerTime) > time.Hour {
		t.Errorf("info = %+v", info)
	}
	m := e.createMachine(e.admin, &model.Machine{Name: "n1"})
	_, _, _ = e.readonly.Get(ctx, model.KindMachines, m.UUID, false)
	_, _, _ = e.readonly.Get(ctx, model.KindMachines, "00000000-0000-4000-8000-000000000000", false)
	code, _, body := e.raw("GET", "/metrics", "", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`ironcast_api_requests_total{code="201",method="POST",route="/api/v1/machines"} 1`,
		`ironcast_api_requests_total{code="200",method="GET",route="/api/v1/machines/{key}"} 1`,
		`ironcast_api_requests_total{code="404",method="GET",route="/api/v1/machines/{key}"} 1`,
		`ironcast_api_request_duration_seconds_count{route="/api/v1/machines/{key}"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, m.UUID) {
		t.Error("/metrics labels hold a raw path")
	}
}

// TestAccessLog checks the level and fields of each request's "api
// request" line, and that no token or password reaches the log, whether
// sent in a header or in the query string.
func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	admin := e.token("admin", model.RoleAdmin, "")
	const querySecret = "query-secret-5f0c"
	const badToken = "not-a-valid-token-8d1e"
	tests := []struct {
		name         string
		method, path string
		query        string
		auth         string // Authorization header
		body         string
		wantLevel    string
		wantStatus   int
		wantUser     string
	}{
		{name: "a read is debug", method: "GET", path: "/api/v1/info", query: "?token=" + querySecret,
			auth: "Bearer " + admin, wantLevel: "DEBUG", wantStatus: 200, wantUser: "admin"},
		{name: "a bad query is info", method: "GET", path: "/api/v1/machines", query: "?token=" + querySecret + "&Name=x",
			auth: "Bearer " + admin, wantLevel: "INFO", wantStatus: 400, wantUser: "admin"},
		{name: "a write is info", method: "POST", path: "/api/v1/profiles", auth: "Bearer " + admin, body: `{"Name":"p-log"}`,
			wantLevel: "INFO", wantStatus: 201, wantUser: "admin"},
		{name: "a client error is info", method: "GET", path: "/api/v1/machines/00000000-0000-4000-8000-00000000dead",
			auth: "Bearer " + admin, wantLevel: "INFO", wantStatus: 404, wantUser: "admin"},
		{name: "a metrics scrape is debug", method: "GET", path: "/metrics", wantLevel: "DEBUG", wantStatus: 200},
		{name: "a login is info with its user", method: "POST", path: "/api/v1/users/op/token",
			auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("op:operator-password")), wantLevel: "INFO", wantStatus: 200, wantUser: "op"},
		{name: "a refused token is info", method: "GET", path: "/api/v1/whoami", query: "?access_token=" + querySecret,
			auth: "Bearer " + badToken, wantLevel: "INFO", wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.srv.URL+tt.path+tt.query, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			// The line is written when the handler returns, before the
			// server ends the answer the client has read to its end.
			var line string
			for _, l := range strings.Split(e.logs.String(), "\n") {
				if strings.Contains(l, `msg="api request" method=`+tt.method+" path="+tt.path+" ") {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no api request line for %s %s in:\n%s", tt.method, tt.path, e.logs.String())
			}
			want := []string{"level=" + tt.wantLevel + " ", " status=" + strconv.Itoa(tt.wantStatus) + " ", " bytes=", " duration=", " route="}
			if tt.wantUser != "" {
				want = append(want, " user="+tt.wantUser+" ")
			}
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("log line lacks %q: %s", w, line)
				}
			}
			if tt.wantUser == "" && strings.Contains(line, " user=") {
				t.Errorf("log line names a user: %s", line)
			}
		})
	}
	logs := e.logs.String()
	for _, secret := range []string{admin, badToken, querySecret, "operator-password", "Bearer", "Basic ", "token="} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret (%.12s…):\n%s", secret, logs)
		}
	}
}
