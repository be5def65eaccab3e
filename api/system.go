package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
)

// systemRoutes adds the routes that are not about one kind of object.
func (s *Server) systemRoutes(r chi.Router) {
	r.Get("/info", s.h(s.getInfo))
	r.Get("/whoami", s.h(s.whoami))
	r.Get("/events", s.h(s.streamEvents))
	r.Get("/backup", s.h(s.backup))
}

// healthz answers 200 while the server runs. It needs no token (and is
// outside /api/v1, so it is not in the spec).
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("ok\n"))
	return err
}

// getInfo describes the server.
//
//	@Summary	Server information
//	@Tags		system
//	@Produce	json
//	@Success	200	{object}	Info
//	@Failure	401	{object}	ErrorResponse
//	@Security	Bearer
//	@Router		/info [get]
func (s *Server) getInfo(w http.ResponseWriter, _ *http.Request) error {
	info := Info{Version: s.version}
	if s.info != nil {
		info = s.info()
	}
	if info.Ports == nil {
		info.Ports = map[string]int{}
	}
	if info.Features == nil {
		info.Features = []string{}
	}
	info.ServerTime = time.Now().UTC()
	writeJSON(w, http.StatusOK, info)
	return nil
}

// Whoami is the caller as the server sees it.
type Whoami struct {
	Name      string
	Role      model.Role
	Scope     string `json:",omitempty"`
	ExpiresAt time.Time
}

// whoami returns the caller's name, role, scope and token expiry.
//
//	@Summary	Who am I
//	@Tags		system
//	@Produce	json
//	@Success	200	{object}	Whoami
//	@Failure	401	{object}	ErrorResponse
//	@Security	Bearer
//	@Router		/whoami [get]
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		return fmt.Errorf("no principal: %w", auth.ErrUnauthenticated)
	}
	writeJSON(w, http.StatusOK, Whoami{Name: p.Name, Role: p.Role, Scope: p.Scope, ExpiresAt: p.ExpiresAt})
	return nil
}

// backup streams a consistent snapshot of the store (admin only).
//
//	@Summary		Backup
//	@Description	Streams a consistent snapshot of the store, which `ironcast serve --restore FILE` starts from. Admin only.
//	@Tags			system
//	@Produce		octet-stream
//	@Success		200	{file}		file
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/backup [get]
func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a large store takes longer than the server's write timeout
	name := "ironcast-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	n, err := s.backend.Backup(r.Context(), w)
	if err != nil {
		if n == 0 {
			w.Header().Del("Content-Disposition")
			return fmt.Errorf("backup: %w", err)
		}
		// The status is sent: break the connection so the client sees a
		// truncated body rather than a short, valid-looking file.
		s.log.Error("backup interrupted", "bytes", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("backup sent", "bytes", n)
	return nil
}

// TokenRequest asks for a token with a lifetime.
type TokenRequest struct {
	// TTL is a Go duration such as "1h" (empty: the server's default; capped at its maximum).
	TTL string `json:",omitempty"`
}

// TokenResponse is a bearer token and when it expires.
type TokenResponse struct {
	Token     string
	ExpiresAt time.Time
}

// issueToken issues a bearer token for user {name}.
//
//	@Summary		Get a token
//	@Description	Authenticate with HTTP Basic as the user named in the path, or with a bearer token: an admin's (for any user) or the user's own (to renew it). Scoped (machine, register) tokens cannot get user tokens.
//	@Tags			users
//	@Accept			json
//	@Produce		json
//	@Param			name	path		string			true	"user name"
//	@Param			request	body		TokenRequest	false	"lifetime"
//	@Success		200		{object}	TokenResponse
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Failure		403		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Security		Basic
//	@Security		Bearer
//	@Router			/users/{name}/token [post]
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) error {
	name := pathKey(r)
	var req TokenRequest
	if r.ContentLength != 0 && r.Body != nil {
		if err := decodeStrict(r.Body, &req); err != nil && !isEmptyBody(err) {
			return err
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return badRequest("TTL", "TTL: %q is not a positive duration such as 1h", req.TTL)
		}
		ttl = d
	}
	var role model.Role
	if user, pw, ok := r.BasicAuth(); ok {
		if !auth.Equal(user, name) {
			return fmt.Errorf("basic credentials are for %s, not %s: %w", user, name, auth.ErrForbidden)
		}
		u, err := s.auth.CheckPassword(r.Context(), user, pw)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="ironcast"`)
			return err
		}
		role = u.Role
		noteUser(r, u.Name)
	} else if tok, ok := auth.BearerToken(r); ok {
		p, err := s.auth.Verify(r.Context(), tok)
		if err != nil {
			return err
		}
		noteUser(r, p.Name)
		switch {
		case p.Scope != "":
			return fmt.Errorf("a %s token cannot get user tokens: %w", p.Scope, auth.ErrForbidden)
		case p.Name == name:
			role = p.Role
		case p.Role == model.RoleAdmin:
			obj, err := s.backend.Get(r.Context(), model.KindUsers, name)
			if err != nil {
				return err
			}
			role = obj.(*model.User).Role
		default:
			return fmt.Errorf("%s may not get a token for %s: %w", p.Name, name, auth.ErrForbidden)
		}
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="ironcast"`)
		return fmt.Errorf("HTTP Basic credentials or a bearer token are required: %w", auth.ErrUnauthenticated)
	}
	tok, exp, err := s.auth.Issue(auth.Principal{Name: name, Role: role}, ttl)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, TokenResponse{Token: tok, ExpiresAt: exp})
	return nil
}

func isEmptyBody(err error) bool {
	var re *requestError
	return errors.As(err, &re) && strings.Contains(re.message, "the body is empty")
}

// streamEvents streams events as Server-Sent Events.
//
//	@Summary		Event stream
//	@Description	Server-Sent Events: each event's `event:` is the model.Event Type ("created", "updated", "deleted", or a server event such as "dhcp.ack") and its `data:` the JSON model.Event. Comments are sent as keepalives. ?kind=machines keeps only one kind. The stream ends when the token expires.
//	@Tags			system
//	@Produce		text/event-stream
//	@Param			kind	query		string	false	"only events about this kind"
//	@Success		200		{object}	model.Event
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/events [get]
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	kind := r.URL.Query().Get("kind")
	if kind != "" && model.New(kind) == nil {
		return badRequest("kind", "kind: %q is not one of %s", kind, strings.Join(model.Kinds, ", "))
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	var c <-chan model.Event
	if s.bus != nil {
		sub := s.bus.Subscribe(256, func(ev model.Event) bool { return kind == "" || ev.Kind == kind })
		defer sub.Close()
		c = sub.C
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": connected\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	tick := time.NewTicker(s.keepAlive)
	defer tick.Stop()
	// The stream ends when the caller's token expires.
	var expired <-chan time.Time
	if p, ok := auth.FromContext(r.Context()); ok && !p.ExpiresAt.IsZero() {
		t := time.NewTimer(time.Until(p.ExpiresAt))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-expired:
			return nil
		case <-r.Context().Done():
			return nil
		case <-s.done:
			return nil
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
		case ev, ok := <-c:
			if !ok {
				return nil
			}
			b, err := json.Marshal(sanitizeEvent(ev))
			if err != nil {
				s.log.Warn("event does not encode", "type", ev.Type, "err", err)
				continue
			}
			typ := strings.Map(func(r rune) rune {
				if r == '\n' || r == '\r' {
					return -1
				}
				return r
			}, ev.Type)
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b); err != nil {
				return nil
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// sanitizeEvent strips the password hash from user objects in events.
func sanitizeEvent(ev model.Event) model.Event {
	if ev.Kind != model.KindUsers || len(ev.Object) == 0 {
		return ev
	}
	var u model.User
	if json.Unmarshal(ev.Object, &u) != nil {
		ev.Object = nil
		return ev
	}
	b, err := json.Marshal(u.Sanitized())
	if err != nil {
		ev.Object = nil
		return ev
	}
	ev.Object = b
	return ev
}
