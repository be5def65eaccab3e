package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// paramRoutes adds a machine's params below /api/v1/machines/{key}.
func (s *Server) paramRoutes(r chi.Router) {
	r.Get("/params", s.h(s.getMachineParams))
	r.Put("/params/{name}", s.h(s.setMachineParam))
	r.Delete("/params/{name}", s.h(s.deleteMachineParam))
}

// getMachineParams returns a machine's own params, or with aggregate=true
// every param that applies to it with its source.
//
//	@Summary		Get a machine's params
//	@Description	Without aggregate: the machine's own param values. With aggregate=true: every param that applies, resolved in the order machine → its profiles in order → its bootenv → the global profile → the param's default, with where each value came from. Secure values stay sealed unless decode=true (admin, operator).
//	@Tags			machines
//	@Produce		json
//	@Param			uuid		path		string	true	"machine UUID"
//	@Param			aggregate	query		bool	false	"resolve every param with its source"
//	@Param			decode		query		bool	false	"show secure values in clear (admin, operator)"
//	@Success		200			{object}	map[string]any	"own params; with aggregate=true an array of model.ResolvedParam"
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/params [get]
func (s *Server) getMachineParams(w http.ResponseWriter, r *http.Request) error {
	decode, err := wantDecode(r)
	if err != nil {
		return err
	}
	aggregate := false
	if v := r.URL.Query().Get("aggregate"); v != "" {
		if aggregate, err = strconv.ParseBool(v); err != nil {
			return badRequest("aggregate", "aggregate: %q is not true or false", v)
		}
	}
	uuid := pathKey(r)
	if aggregate {
		rps, err := s.backend.AggregateParams(r.Context(), uuid)
		if err != nil {
			return err
		}
		if decode {
			if rps, err = s.revealResolved(rps); err != nil {
				return err
			}
		}
		if rps == nil {
			rps = []model.ResolvedParam{}
		}
		writeJSON(w, http.StatusOK, rps)
		return nil
	}
	obj, err := s.backend.Get(r.Context(), model.KindMachines, uuid)
	if err != nil {
		return err
	}
	if decode {
		if obj, err = s.backend.Reveal(obj); err != nil {
			return err
		}
	}
	m := obj.(*model.Machine)
	w.Header().Set("ETag", etag(m))
	writeJSON(w, http.StatusOK, paramsOf(m))
	return nil
}

func paramsOf(m *model.Machine) map[string]any {
	if m.Params == nil {
		return map[string]any{}
	}
	return m.Params
}

// revealResolved decrypts the secure values of resolved params, through
// Backend.Reveal on a throw-away machine holding them.
func (s *Server) revealResolved(rps []model.ResolvedParam) ([]model.ResolvedParam, error) {
	tmp := &model.Machine{Params: map[string]any{}}
	for _, rp := range rps {
		if rp.Secure {
			tmp.Params[rp.Name] = rp.Value
		}
	}
	if len(tmp.Params) == 0 {
		return rps, nil
	}
	obj, err := s.backend.Reveal(tmp)
	if err != nil {
		return nil, err
	}
	open := obj.(*model.Machine).Params
	out := make([]model.ResolvedParam, len(rps))
	copy(out, rps)
	for i := range out {
		if v, ok := open[out[i].Name]; ok && out[i].Secure {
			out[i].Value = v
		}
	}
	return out, nil
}

// setMachineParam sets one of a machine's own params.
//
//	@Summary		Set a machine param
//	@Description	Sets the machine's own value of param NAME to the JSON value in the body (checked against the param's schema, sealed if secure) and returns the machine's params. With If-Match the write fails with 409 if the machine changed; without it, concurrent writes are retried.
//	@Tags			machines
//	@Accept			json
//	@Produce		json
//	@Param			uuid		path		string	true	"machine UUID"
//	@Param			name		path		string	true	"param name"
//	@Param			If-Match	header		string	false	"ETag of the machine"
//	@Param			value		body		object	true	"any JSON value"
//	@Success		200			{object}	map[string]any
//	@Failure		400			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		409			{object}	ErrorResponse
//	@Failure		422			{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/params/{name} [put]
func (s *Server) setMachineParam(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var v any
	if err := decodeStrict(r.Body, &v); err != nil {
		return err
	}
	return s.mutateParams(w, r, func(p map[string]any, name string) { p[name] = v })
}

// deleteMachineParam removes one of a machine's own params.
//
//	@Summary	Remove a machine param
//	@Tags		machines
//	@Produce	json
//	@Param		uuid		path		string	true	"machine UUID"
//	@Param		name		path		string	true	"param name"
//	@Param		If-Match	header		string	false	"ETag of the machine"
//	@Success	200			{object}	map[string]any
//	@Failure	404			{object}	ErrorResponse
//	@Failure	409			{object}	ErrorResponse
//	@Security	Bearer
//	@Router		/machines/{uuid}/params/{name} [delete]
func (s *Server) deleteMachineParam(w http.ResponseWriter, r *http.Request) error {
	return s.mutateParams(w, r, func(p map[string]any, name string) { delete(p, name) })
}

func (s *Server) mutateParams(w http.ResponseWriter, r *http.Request, fn func(map[string]any, string)) error {
	want, explicit, err := ifMatch(r)
	if err != nil {
		return err
	}
	uuid, name := pathKey(r), chi.URLParam(r, "name")
	for attempt := 0; ; attempt++ {
		obj, err := s.backend.Get(r.Context(), model.KindMachines, uuid)
		if err != nil {
			return err
		}
		m := obj.(*model.Machine)
		rev := m.Revision
		if explicit && want != store.AnyRevision && want != rev {
			return fmt.Errorf("machine %s: revision is %d, If-Match wants %d: %w", uuid, rev, want, model.ErrConflict)
		}
		if m.Params == nil {
			m.Params = map[string]any{}
		}
		fn(m.Params, name)
		err = s.backend.Update(r.Context(), m, rev)
		var ce *model.ConflictError
		if err == nil {
			w.Header().Set("ETag", etag(m))
			writeJSON(w, http.StatusOK, paramsOf(m))
			return nil
		}
		if explicit || !errors.Is(err, model.ErrConflict) || errors.As(err, &ce) || attempt >= 10 {
			return err
		}
	}
}
