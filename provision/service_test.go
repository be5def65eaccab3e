package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/bootenvs"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// fixedTokens makes rendered output stable for golden files.
type fixedTokens struct{}

func (fixedTokens) MachineToken(uuid string) (string, error) { return "machine-token-" + uuid[:8], nil }
func (fixedTokens) RegisterToken() (string, error)           { return "register-token", nil }

type recorder struct{ events []model.Event }

func (r *recorder) Publish(ev model.Event) { r.events = append(r.events, ev) }

func newService(t testing.TB) (*Service, *bolt.Store, *recorder) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "ironcast.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := bootenvs.Load()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc, err := New(Config{Store: st, Sealer: sealer, Catalog: cat, Tokens: fixedTokens{}, Notifier: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	return svc, st, rec
}

func mustCreate(t *testing.T, svc *Service, obj model.Object) {
	t.Helper()
	if err := svc.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %s %s: %v", obj.Kind(), obj.Key(), err)
	}
}

func TestCreateRefusesAndStoresNothing(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t)
	mustCreate(t, svc, &model.Param{Name: "ntp-count", Schema: json.RawMessage(`{"type":"integer","minimum":1}`)})
	mustCreate(t, svc, &model.Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:12:34:56"}})

	tests := []struct {
		name      string
		obj       model.Object
		wantField string
		wantErr   error
	}{
		{"MAC owned by another machine", &model.Machine{Name: "n2", HardwareAddrs: []string{"52:54:00:12:34:56"}}, "", model.ErrConflict},
		{"param fails its schema", &model.Machine{Name: "n3", Params: map[string]any{"ntp-count": "many"}}, "Params.ntp-count", nil},
		{"param below minimum", &model.Machine{Name: "n3", Params: map[string]any{"ntp-count": 0.0}}, "Params.ntp-count", nil},
		{"missing profile", &model.Machine{Name: "n3", Profiles: []string{"nope"}}, "Profiles[0]", nil},
		{"missing bootenv", &model.Machine{Name: "n3", BootEnv: "nope"}, "BootEnv", nil},
		{"same name", &model.Machine{Name: "n1"}, "", model.ErrConflict},
		{"template does not parse", &model.Template{ID: "broken", Contents: "line one\n{{if .Machine}}x"}, "Contents", nil},
		{"bad schema", &model.Param{Name: "p", Schema: json.RawMessage(`{"type":"nonsense"}`)}, "Schema", nil},
		{"default fails schema", &model.Param{Name: "p", Schema: json.RawMessage(`{"type":"string"}`), Default: 3.0}, "Default", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := st.Count(ctx, tt.obj.Kind())
			err := svc.Create(ctx, tt.obj)
			if err == nil {
				t.Fatal("create succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantField != "" {
				var fields []string
				for _, ve := range model.ValidationErrors(err) {
					fields = append(fields, ve.Field)
				}
				if !strings.Contains(strings.Join(fields, ","), tt.wantField) {
					t.Errorf("invalid fields %v (err %v), want %s", fields, err, tt.wantField)
				}
			}
			if after, _ := st.Count(ctx, tt.obj.Kind()); after != before {
				t.Errorf("%s count went from %d to %d", tt.obj.Kind(), before, after)
			}
		})
	}
	var ce *model.ConflictError
	err := svc.Create(ctx, &model.Machine{Name: "n9", HardwareAddrs: []string{"52:54:00:12:34:56"}})
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "mac") {
		t.Errorf("duplicate MAC error %v does not name the index", err)
	}
}

func TestTemplateParseErrorHasLineAndColumn(t *testing.T) {
	svc, _, _ := newService(t)
	err := svc.Create(context.Background(), &model.Template{ID: "t", Contents: "ok\nok\n  {{.Machine.Name | nosuchfunc}}\n"})
	if err == nil || !strings.Contains(err.Error(), "t:3:") {
		t.Errorf("err = %v, want line 3 named", err)
	}
}

func TestSecureParams(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t)
	mustCreate(t, svc, &model.Param{Name: "root-password", Secure: true, Schema: json.RawMessage(`{"type":"string","minLength":8}`)})
	m := &model.Machine{Name: "n1", Params: map[string]any{"root-password": "correct horse battery"}}
	mustCreate(t, svc, m)

	raw, err := st.Get(ctx, model.KindMachines, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value, []byte("correct horse")) {
		t.Fatal("secure param stored in plaintext")
	}
	got, err := svc.Get(ctx, model.KindMachines, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if v := got.(*model.Machine).Params["root-password"]; !secrets.IsSealed(v) {
		t.Errorf("Get returned %v, want sealed", v)
	}
	shown, err := svc.Reveal(got)
	if err != nil {
		t.Fatal(err)
	}
	if v := shown.(*model.Machine).Params["root-password"]; v != "correct horse battery" {
		t.Errorf("Reveal = %v", v)
	}
	// A client that writes back the sealed value keeps the secret.
	if err := svc.Update(ctx, got, got.GetMeta().Revision); err != nil {
		t.Fatal(err)
	}
	again, _ := svc.Get(ctx, model.KindMachines, m.UUID)
	shown, _ = svc.Reveal(again)
	if v := shown.(*model.Machine).Params["root-password"]; v != "correct horse battery" {
		t.Errorf("after write-back Reveal = %v", v)
	}
	// A plaintext value that fails the schema is refused before sealing.
	bad := &model.Machine{Name: "n2", Params: map[string]any{"root-password": "short"}}
	if err := svc.Create(ctx, bad); len(model.ValidationErrors(err)) == 0 {
		t.Errorf("short secure value: err = %v, want validation error", err)
	}
}

func TestUsersPasswordsAreHashed(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t)
	mustCreate(t, svc, &model.User{Name: "ops", Role: model.RoleOperator, Password: "s3cret-pass"})
	raw, _ := st.Get(ctx, model.KindUsers, "ops")
	if bytes.Contains(raw.Value, []byte("s3cret-pass")) || !bytes.Contains(raw.Value, []byte("$2a$")) {
		t.Fatalf("stored user %s: want a bcrypt hash and no password", raw.Value)
	}
	u, _ := svc.Get(ctx, model.KindUsers, "ops")
	hash := u.(*model.User).PasswordHash
	u.(*model.User).Description = "changed"
	if err := svc.Update(ctx, u, store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	u2, _ := svc.Get(ctx, model.KindUsers, "ops")
	if u2.(*model.User).PasswordHash != hash {
		t.Error("an update without a password changed the hash")
	}
}

func TestBuiltinsAreReadOnlyAndOverridable(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	b, err := svc.Get(ctx, model.KindBootEnvs, "local")
	if err != nil {
		t.Fatal(err)
	}
	if !b.(*model.BootEnv).ReadOnly {
		t.Error("built-in local is not read-only")
	}
	if _, err := svc.Delete(ctx, model.KindBootEnvs, "local", store.AnyRevision); !errors.Is(err, model.ErrReadOnly) {
		t.Errorf("delete built-in: %v, want ErrReadOnly", err)
	}
	over := b.(*model.BootEnv)
	over.Description = "site override"
	if err := svc.Update(ctx, over, store.AnyRevision); err != nil {
		t.Fatalf("override built-in: %v", err)
	}
	got, _ := svc.Get(ctx, model.KindBootEnvs, "local")
	if got.(*model.BootEnv).ReadOnly || got.(*model.BootEnv).Description != "site override" {
		t.Errorf("override not served: %+v", got)
	}
	list, _ := svc.List(ctx, model.KindBootEnvs)
	n := 0
	for _, o := range list {
		if o.Key() == "local" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("local listed %d times", n)
	}
	if _, err := svc.Delete(ctx, model.KindBootEnvs, "local", store.AnyRevision); err != nil {
		t.Errorf("delete override: %v", err)
	}
	got, _ = svc.Get(ctx, model.KindBootEnvs, "local")
	if !got.(*model.BootEnv).ReadOnly {
		t.Error("built-in did not come back after deleting the override")
	}
}

func TestDeleteInUse(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	mustCreate(t, svc, &model.Profile{Name: "rack1"})
	mustCreate(t, svc, &model.Machine{Name: "n1", Profiles: []string{"rack1"}})
	if _, err := svc.Delete(ctx, model.KindProfiles, "rack1", store.AnyRevision); !errors.Is(err, model.ErrConflict) {
		t.Errorf("delete used profile: %v, want conflict", err)
	}
	if _, err := svc.Delete(ctx, model.KindProfiles, model.GlobalProfile, store.AnyRevision); !errors.Is(err, model.ErrReadOnly) {
		t.Errorf("delete global: %v, want read-only", err)
	}
}

func TestAggregateParams(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	mustCreate(t, svc, &model.Param{Name: "ntp", Default: "pool.ntp.org"})
	mustCreate(t, svc, &model.Profile{Name: "rack1", Params: map[string]any{"console": "ttyS1", "dns": "10.0.0.53"}})
	g, _ := store.Get[model.Profile](ctx, svc.st, model.GlobalProfile)
	g.Params = map[string]any{"dns": "8.8.8.8", "tz": "UTC"}
	if err := svc.Update(ctx, g, g.Revision); err != nil {
		t.Fatal(err)
	}
	m := &model.Machine{Name: "n1", Profiles: []string{"rack1"}, Params: map[string]any{"console": "ttyS0"}}
	mustCreate(t, svc, m)
	got, err := svc.AggregateParams(ctx, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.ResolvedParam{
		{Name: "console", Value: "ttyS0", Source: model.ParamSource{Kind: "machine"}},
		{Name: "dns", Value: "10.0.0.53", Source: model.ParamSource{Kind: "profile", Name: "rack1"}},
		{Name: "ntp", Value: "pool.ntp.org", Source: model.ParamSource{Kind: "default"}},
		{Name: "tz", Value: "UTC", Source: model.ParamSource{Kind: "global", Name: "global"}},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("aggregate (-got +want):\n%s", diff)
	}
}
