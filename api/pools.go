package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
)

// Pools is what the pool routes need from the provisioning core.
// provision.Service implements it.
type Pools interface {
	Allocate(ctx context.Context, pool string, req model.AllocateRequest) ([]*model.Machine, error)
	ReleaseMachines(ctx context.Context, pool string, uuids []string) ([]*model.Machine, error)
	PoolStatus(ctx context.Context, pool string) (*model.PoolStatus, error)
}

var _ Pools = (*provision.Service)(nil)

// poolRoutes adds the scaling routes below /api/v1/pools/{key}.
func (s *Server) poolRoutes(r chi.Router) {
	if s.pools == nil {
		return
	}
	r.Post("/allocate", s.h(s.poolAllocate))
	r.Post("/release", s.h(s.poolRelease))
	r.Get("/status", s.h(s.poolStatus))
}

// noScopedTokens refuses machine and registration tokens: pools are for
// people and their automation.
func noScopedTokens(r *http.Request) error {
	if p, ok := auth.FromContext(r.Context()); ok && p.Scope != "" {
		return auth.ErrForbidden
	}
	return nil
}

// poolAllocate provisions ready machines of a pool.
//
//	@Summary		Allocate machines from a pool
//	@Description	Takes Count (default 1) ready machines of the pool, longest-ready first, adds the pool's profiles and params (the request's params on top), records the allocation (Owner, TTL in seconds, default the pool's AllocationTTL) and provisions them with BootEnv (default the pool's). All or nothing: with fewer ready machines than Count, nothing is allocated and the answer is 409 saying how many are ready. Concurrent requests never get the same machine. Operators and admins.
//	@Tags			pools
//	@Accept			json
//	@Produce		json
//	@Param			name	path		string					true	"pool name"
//	@Param			request	body		model.AllocateRequest	false	"count, owner, bootenv, params, TTL"
//	@Success		200		{array}		model.Machine
//	@Failure		400		{object}	ErrorResponse
//	@Failure		403		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Failure		409		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/pools/{name}/allocate [post]
func (s *Server) poolAllocate(w http.ResponseWriter, r *http.Request) error {
	if err := noScopedTokens(r); err != nil {
		return err
	}
	var req model.AllocateRequest
	if r.ContentLength != 0 && r.Body != nil {
		if err := decodeStrict(r.Body, &req); err != nil && !isEmptyBody(err) {
			return err
		}
	}
	ms, err := s.pools.Allocate(r.Context(), pathKey(r), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ms)
	return nil
}

// poolRelease releases machines of a pool.
//
//	@Summary		Release machines of a pool
//	@Description	Releases each named machine: it boots wipe (or, with the pool's SkipWipe, is ready at once), loses the profiles and params its allocation added, and its allocation. Every machine is checked first: one that is unknown (404), of another pool or in a state that cannot be released (409) fails the request and none is released. Operators and admins.
//	@Tags			pools
//	@Accept			json
//	@Produce		json
//	@Param			name	path		string					true	"pool name"
//	@Param			request	body		model.ReleaseRequest	true	"machine UUIDs"
//	@Success		200		{array}		model.Machine
//	@Failure		400		{object}	ErrorResponse
//	@Failure		403		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Failure		409		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/pools/{name}/release [post]
func (s *Server) poolRelease(w http.ResponseWriter, r *http.Request) error {
	if err := noScopedTokens(r); err != nil {
		return err
	}
	var req model.ReleaseRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return err
	}
	ms, err := s.pools.ReleaseMachines(r.Context(), pathKey(r), req.Machines)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ms)
	return nil
}

// poolStatus counts a pool's machines.
//
//	@Summary		A pool's status
//	@Description	The pool's machines counted by state, how many are ready to allocate, returning (releasing or wiping), allocated, with an expiry, and expired.
//	@Tags			pools
//	@Produce		json
//	@Param			name	path		string	true	"pool name"
//	@Success		200		{object}	model.PoolStatus
//	@Failure		404		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/pools/{name}/status [get]
func (s *Server) poolStatus(w http.ResponseWriter, r *http.Request) error {
	if err := noScopedTokens(r); err != nil {
		return err
	}
	st, err := s.pools.PoolStatus(r.Context(), pathKey(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
