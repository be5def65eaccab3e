package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-chi/chi/v5"

	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

//go:generate go run ./internal/genkinds

// kindHandlers are the annotated per-kind wrappers of kinds_gen.go.
type kindHandlers struct {
	kind                                            string
	list, get, head, create, replace, patch, delete func(*Server, http.ResponseWriter, *http.Request) error
}

// kindRoutes is the resource router of one kind, mounted at /api/v1/KIND.
func (s *Server) kindRoutes(k kindHandlers) chi.Router {
	bind := func(fn func(*Server, http.ResponseWriter, *http.Request) error) http.HandlerFunc {
		return s.h(func(w http.ResponseWriter, r *http.Request) error { return fn(s, w, r) })
	}
	r := chi.NewRouter()
	r.Get("/", bind(k.list))
	r.Post("/", bind(k.create))
	if k.kind == model.KindMachines {
		s.lifecycleKindRoutes(r)
	}
	r.Route("/{key}", func(r chi.Router) {
		r.Get("/", bind(k.get))
		r.Head("/", bind(k.head))
		r.Put("/", bind(k.replace))
		r.Patch("/", bind(k.patch))
		r.Delete("/", bind(k.delete))
		if k.kind == model.KindMachines {
			s.paramRoutes(r)
			s.lifecycleRoutes(r)
		}
		if k.kind == model.KindPools {
			s.poolRoutes(r)
		}
	})
	return r
}

// pathKey returns the {key} URL parameter, unescaped.
func pathKey(r *http.Request) string {
	k := chi.URLParam(r, "key")
	if u, err := url.PathUnescape(k); err == nil {
		return u
	}
	return k
}

// wantDecode reports whether the request asks for secure values in clear
// (auth.Authorize has already refused it for roles that may not).
func wantDecode(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("decode")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("decode", "decode: %q is not true or false", v)
	}
	if p, _ := auth.FromContext(r.Context()); b && !auth.MayDecode(p) {
		// auth.Authorize refuses this already; checked again here because
		// showing a secret is not a mistake to make twice.
		return false, fmt.Errorf("secure values are shown to admins and operators only: %w", auth.ErrForbidden)
	}
	return b, nil
}

// present prepares an object for output: users lose their password and
// hash; with decode, secure values are revealed.
func (s *Server) present(obj model.Object, decode bool) (model.Object, error) {
	if u, ok := obj.(*model.User); ok {
		return u.Sanitized(), nil
	}
	if decode {
		return s.backend.Reveal(obj)
	}
	return obj, nil
}

func etag(obj model.Object) string {
	return `"` + strconv.FormatInt(obj.GetMeta().Revision, 10) + `"`
}

// ifMatch parses an If-Match header: "" or "*" give store.AnyRevision.
func ifMatch(r *http.Request) (int64, bool, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return store.AnyRevision, false, nil
	}
	if h == "*" {
		return store.AnyRevision, true, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	rev, err := strconv.ParseInt(v, 10, 64)
	if err != nil || rev <= 0 {
		return 0, false, badRequest("If-Match", "If-Match: %q is not an ETag of this API (a quoted revision such as \"12\")", h)
	}
	return rev, true, nil
}

func (s *Server) writeObject(w http.ResponseWriter, code int, obj model.Object, decode bool) error {
	out, err := s.present(obj, decode)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(obj))
	writeJSON(w, code, out)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, kind string) error {
	lq, err := parseListQuery(kind, r.URL.Query())
	if err != nil {
		return err
	}
	decode, err := wantDecode(r)
	if err != nil {
		return err
	}
	if done, err := s.listStored(w, r, kind, lq, decode); done {
		return err
	}
	objs, err := s.candidates(r.Context(), kind, lq)
	if err != nil {
		return err
	}
	page, total := lq.apply(objs)
	for i, o := range page {
		if page[i], err = s.present(o, decode); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	bw.WriteByte('[')
	for i, o := range page {
		if i > 0 {
			bw.WriteByte(',')
		}
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("encode %s %q: %w", kind, o.Key(), err)
		}
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, kind string) error {
	decode, err := wantDecode(r)
	if err != nil {
		return err
	}
	obj, err := s.backend.Get(r.Context(), kind, pathKey(r))
	if err != nil {
		return err
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag(obj) && !decode {
		w.Header().Set("ETag", etag(obj))
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return s.writeObject(w, http.StatusOK, obj, decode)
}

func (s *Server) head(w http.ResponseWriter, r *http.Request, kind string) error {
	obj, err := s.backend.Get(r.Context(), kind, pathKey(r))
	if err != nil {
		code, _ := statusOf(err)
		w.WriteHeader(code)
		return nil
	}
	w.Header().Set("ETag", etag(obj))
	w.WriteHeader(http.StatusOK)
	return nil
}

// decodeObject strictly decodes a request body into a new object of kind.
func decodeObject(r io.Reader, kind string) (model.Object, error) {
	obj := model.New(kind)
	if err := decodeStrict(r, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, kind string) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	obj, err := decodeObject(r.Body, kind)
	if err != nil {
		return err
	}
	obj.GetMeta().Revision = 0
	if err := s.backend.Create(r.Context(), obj); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/"+kind+"/"+url.PathEscape(obj.Key()))
	return s.writeObject(w, http.StatusCreated, obj, false)
}

// checkKey makes the key in the body agree with the path; an empty key in
// the body takes the path's.
func checkKey(obj model.Object, key string) error {
	field := keyField(obj.Kind())
	got := obj.Key()
	if got == "" {
		setKey(obj, key)
		return nil
	}
	if got == key || obj.Kind() == model.KindMachines && strings.EqualFold(strings.TrimSpace(got), key) {
		return nil
	}
	return model.Invalid(field, "%q does not match %q in the path", got, key)
}

func (s *Server) replace(w http.ResponseWriter, r *http.Request, kind string) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	want, _, err := ifMatch(r)
	if err != nil {
		return err
	}
	obj, err := decodeObject(r.Body, kind)
	if err != nil {
		return err
	}
	if err := checkKey(obj, pathKey(r)); err != nil {
		return err
	}
	if err := s.backend.Update(r.Context(), obj, want); err != nil {
		return err
	}
	return s.writeObject(w, http.StatusOK, obj, false)
}

// Patch media types.
const (
	jsonPatchType  = "application/json-patch+json"
	mergePatchType = "application/merge-patch+json"
)

func (s *Server) patch(w http.ResponseWriter, r *http.Request, kind string) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != jsonPatchType && ct != mergePatchType {
		return badRequestStatus(http.StatusUnsupportedMediaType, "PATCH takes %s (RFC 6902) or %s (RFC 7396), not %q", jsonPatchType, mergePatchType, ct)
	}
	want, explicit, err := ifMatch(r)
	if err != nil {
		return err
	}
	key := pathKey(r)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	cur, err := s.backend.Get(r.Context(), kind, key)
	if err != nil {
		return err
	}
	if explicit && want != store.AnyRevision && want != cur.GetMeta().Revision {
		return fmt.Errorf("patch %s %q: revision is %d, If-Match wants %d: %w", kind, key, cur.GetMeta().Revision, want, model.ErrConflict)
	}
	if !explicit {
		want = cur.GetMeta().Revision
		if want == 0 {
			want = store.AnyRevision // a built-in: the first write stores an override
		}
	}
	// Patch what the caller could read: users without password or hash.
	base, err := s.present(cur, false)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(base)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", kind, key, err)
	}
	var patched []byte
	if ct == jsonPatchType {
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			return badRequest("", "invalid JSON Patch: %v", err)
		}
		patched, err = p.ApplyWithOptions(doc, &jsonpatch.ApplyOptions{EnsurePathExistsOnAdd: true})
		if err != nil {
			if errors.Is(err, jsonpatch.ErrTestFailed) {
				return err
			}
			return model.Invalid("", "patch does not apply: %v", err)
		}
	} else {
		if !json.Valid(body) {
			return badRequest("", "invalid merge patch: not JSON")
		}
		if patched, err = jsonpatch.MergePatch(doc, body); err != nil {
			return badRequest("", "invalid merge patch: %v", err)
		}
	}
	obj, err := decodeObject(strings.NewReader(string(patched)), kind)
	if err != nil {
		return err
	}
	if err := checkKey(obj, key); err != nil {
		return err
	}
	if err := s.backend.Update(r.Context(), obj, want); err != nil {
		return err
	}
	return s.writeObject(w, http.StatusOK, obj, false)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, kind string) error {
	want, _, err := ifMatch(r)
	if err != nil {
		return err
	}
	obj, err := s.backend.Delete(r.Context(), kind, pathKey(r), want)
	if err != nil {
		return err
	}
	return s.writeObject(w, http.StatusOK, obj, false)
}

// requireJSON refuses bodies declared as something other than JSON.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return badRequestStatus(http.StatusUnsupportedMediaType, "the body must be application/json, not %q", ct)
	}
	return nil
}

// keyField names the key field of kind.
func keyField(kind string) string {
	switch kind {
	case model.KindMachines:
		return "UUID"
	case model.KindTemplates:
		return "ID"
	case model.KindReservations, model.KindLeases:
		return "Addr"
	}
	return "Name"
}

// setKey sets obj's key field.
func setKey(obj model.Object, key string) {
	switch o := obj.(type) {
	case *model.Machine:
		o.UUID = key
	case *model.BootEnv:
		o.Name = key
	case *model.Template:
		o.ID = key
	case *model.Param:
		o.Name = key
	case *model.Profile:
		o.Name = key
	case *model.Subnet:
		o.Name = key
	case *model.Reservation:
		o.Addr = key
	case *model.Lease:
		o.Addr = key
	case *model.Pool:
		o.Name = key
	case *model.User:
		o.Name = key
	}
}
