package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
)

// Lifecycle is what the machine lifecycle routes need from the
// provisioning core. provision.Service implements it.
type Lifecycle interface {
	Register(ctx context.Context, reg provision.Registration) (*model.Machine, error)
	Act(ctx context.Context, uuid, event string, opts provision.ActionOptions) (*model.Machine, error)
	Metadata(ctx context.Context, m *model.Machine) (*provision.MetadataDoc, error)
	RenderPath(ctx context.Context, uuid, path string, server netip.Addr) ([]byte, error)
	Explain(ctx context.Context, uuid string, server netip.Addr) (*provision.Explanation, error)
	Timeline(ctx context.Context, uuid string) ([]provision.TimelineEntry, error)
}

var _ Lifecycle = (*provision.Service)(nil)

// machineTokenTTL is the lifetime of the token a registering machine gets.
const machineTokenTTL = 24 * time.Hour

// RegisterResponse is what a registering discovery image gets back.
type RegisterResponse struct {
	UUID string
	// Token is scoped to the machine: its own record, params, metadata and
	// callbacks.
	Token   string
	Machine *model.Machine
}

// CallbackRequest optionally explains a callback.
type CallbackRequest struct {
	Reason string `json:",omitempty"`
}

// lifecycleKindRoutes adds /api/v1/machines/register.
func (s *Server) lifecycleKindRoutes(r chi.Router) {
	if s.lifecycle == nil {
		return
	}
	r.Post("/register", s.h(s.registerMachine))
}

// lifecycleRoutes adds the per-machine lifecycle routes below
// /api/v1/machines/{key}.
func (s *Server) lifecycleRoutes(r chi.Router) {
	if s.lifecycle == nil {
		return
	}
	r.Post("/actions/{action}", s.h(s.machineAction))
	r.Post("/callbacks/{event}", s.h(s.machineCallback))
	r.Get("/timeline", s.h(s.machineTimeline))
	r.Get("/metadata", s.h(s.machineMetadata))
	r.Get("/explain", s.h(s.machineExplain))
	r.Get("/render/*", s.h(s.machineRender))
}

// registerMachine creates or updates the machine owning the posted MACs.
//
//	@Summary		Register a machine (discovery image)
//	@Description	Creates the machine that owns any of the posted MACs, or updates it, records its inventory and moves it to ready. Needs a registration token (rendered into the discovery bootenv for unknown machines), the machine's own token (rendered into it for known machines; it registers only that machine, 409 if a posted MAC belongs to another) or an operator token. Returns a token scoped to the machine.
//	@Tags			machines
//	@Accept			json
//	@Produce		json
//	@Param			registration	body		provision.Registration	true	"MACs, arch and inventory"
//	@Success		200				{object}	RegisterResponse
//	@Failure		400				{object}	ErrorResponse
//	@Failure		401				{object}	ErrorResponse
//	@Failure		403				{object}	ErrorResponse
//	@Failure		409				{object}	ErrorResponse
//	@Failure		422				{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/register [post]
func (s *Server) registerMachine(w http.ResponseWriter, r *http.Request) error {
	var reg provision.Registration
	if err := decodeStrict(r.Body, &reg); err != nil {
		return err
	}
	if p, ok := auth.FromContext(r.Context()); ok {
		// A machine's own token (rendered into discovery for a known
		// machine) registers that machine and no other.
		if uuid, ok := p.Machine(); ok {
			reg.UUID = uuid
		}
	}
	m, err := s.lifecycle.Register(r.Context(), reg)
	if err != nil {
		return err
	}
	tok, _, err := s.auth.Issue(auth.Principal{Name: "machine:" + m.UUID, Role: model.RoleReadOnly, Scope: auth.MachineScope(m.UUID)}, machineTokenTTL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RegisterResponse{UUID: m.UUID, Token: tok, Machine: m})
	return nil
}

var actions = map[string]bool{model.EventProvision: true, model.EventRelease: true, model.EventReboot: true}

// machineAction applies an operator action.
//
//	@Summary		Provision, release or reboot a machine
//	@Description	provision (ready → provisioning, with BootEnv from the body or the machine's pool), release (running/installed/failed → releasing, booting wipe), reboot (no state change). An action not allowed in the machine's state is refused with 409 and the current state.
//	@Tags			machines
//	@Accept			json
//	@Produce		json
//	@Param			uuid	path		string					true	"machine UUID"
//	@Param			action	path		string					true	"provision, release or reboot"
//	@Param			options	body		provision.ActionOptions	false	"BootEnv for provision"
//	@Success		200		{object}	model.Machine
//	@Failure		400		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Failure		409		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/actions/{action} [post]
func (s *Server) machineAction(w http.ResponseWriter, r *http.Request) error {
	action := chi.URLParam(r, "action")
	if !actions[action] {
		return badRequestStatus(http.StatusNotFound, "action %q is not one of provision, release, reboot", action)
	}
	if p, ok := auth.FromContext(r.Context()); ok && p.Scope != "" {
		return auth.ErrForbidden
	}
	var opts provision.ActionOptions
	if r.ContentLength != 0 && r.Body != nil {
		if err := decodeStrict(r.Body, &opts); err != nil && !isEmptyBody(err) {
			return err
		}
	}
	m, err := s.lifecycle.Act(r.Context(), pathKey(r), action, opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

var callbacks = map[string]bool{model.EventRunning: true, model.EventInstalled: true, model.EventWiping: true, model.EventWiped: true, model.EventFailed: true}

// machineCallback records what the booted OS reports.
//
//	@Summary		Report from the booted OS
//	@Description	running, installed (switches the machine to the local bootenv), wiping, wiped (back to ready) or failed (with a Reason). Needs the machine's own token (rendered into its templates) or an operator token.
//	@Tags			machines
//	@Accept			json
//	@Produce		json
//	@Param			uuid	path		string			true	"machine UUID"
//	@Param			event	path		string			true	"running, installed, wiping, wiped or failed"
//	@Param			body	body		CallbackRequest	false	"reason for failed"
//	@Success		200		{object}	model.Machine
//	@Failure		404		{object}	ErrorResponse
//	@Failure		409		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/callbacks/{event} [post]
func (s *Server) machineCallback(w http.ResponseWriter, r *http.Request) error {
	event := chi.URLParam(r, "event")
	if !callbacks[event] {
		return badRequestStatus(http.StatusNotFound, "callback %q is not one of running, installed, wiping, wiped, failed", event)
	}
	var req CallbackRequest
	if r.ContentLength != 0 && r.Body != nil {
		if err := decodeStrict(r.Body, &req); err != nil && !isEmptyBody(err) {
			return err
		}
	}
	m, err := s.lifecycle.Act(r.Context(), pathKey(r), event, provision.ActionOptions{Reason: req.Reason})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// machineTimeline returns what happened to a machine.
//
//	@Summary		A machine's boot timeline
//	@Description	DHCP offers and acks, files served over TFTP and HTTP (bytes, duration), templates rendered, transitions and callbacks, oldest first; the last 200.
//	@Tags			machines
//	@Produce		json
//	@Param			uuid	path		string	true	"machine UUID"
//	@Success		200		{array}		provision.TimelineEntry
//	@Failure		404		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/timeline [get]
func (s *Server) machineTimeline(w http.ResponseWriter, r *http.Request) error {
	tl, err := s.lifecycle.Timeline(r.Context(), pathKey(r))
	if err != nil {
		return err
	}
	if tl == nil {
		tl = []provision.TimelineEntry{}
	}
	writeJSON(w, http.StatusOK, tl)
	return nil
}

// machineMetadata returns the machine's metadata document.
//
//	@Summary		A machine's metadata
//	@Description	The JSON metadata a booted machine reads about itself, with its resolved params (secure ones in clear: only the machine's own token, admins and operators may read it).
//	@Tags			machines
//	@Produce		json
//	@Param			uuid	path		string	true	"machine UUID"
//	@Success		200		{object}	provision.MetadataDoc
//	@Failure		403		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/metadata [get]
func (s *Server) machineMetadata(w http.ResponseWriter, r *http.Request) error {
	if p, ok := auth.FromContext(r.Context()); ok && p.Scope == "" && p.Role == model.RoleReadOnly {
		return errors.Join(auth.ErrForbidden, errors.New("metadata holds secure params in clear"))
	}
	obj, err := s.backend.Get(r.Context(), model.KindMachines, pathKey(r))
	if err != nil {
		return err
	}
	doc, err := s.lifecycle.Metadata(r.Context(), obj.(*model.Machine))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// machineExplain says why a machine boots what it boots.
//
//	@Summary		Explain a machine's boot
//	@Description	Its bootenv, every resolved param with where its value came from (machine, which profile, bootenv, global, default), the files it would be served and anything that would stop it booting.
//	@Tags			machines
//	@Produce		json
//	@Param			uuid	path		string	true	"machine UUID"
//	@Success		200		{object}	provision.Explanation
//	@Failure		404		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/explain [get]
func (s *Server) machineExplain(w http.ResponseWriter, r *http.Request) error {
	ex, err := s.lifecycle.Explain(r.Context(), pathKey(r), localAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ex)
	return nil
}

// machineRender shows exactly what a machine would be served at a path.
//
//	@Summary		Render a machine's file
//	@Description	What the machine would be served at PATH: ipxe, pxelinux, grub (its boot loader config), or a bootenv file such as preseed.cfg or user-data. A template that fails to render answers 422 with the error.
//	@Tags			machines
//	@Produce		plain
//	@Param			uuid	path		string	true	"machine UUID"
//	@Param			path	path		string	true	"ipxe, pxelinux, grub or a file path"
//	@Success		200		{string}	string
//	@Failure		404		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/machines/{uuid}/render/{path} [get]
func (s *Server) machineRender(w http.ResponseWriter, r *http.Request) error {
	path := chi.URLParam(r, "*")
	out, err := s.lifecycle.RenderPath(r.Context(), pathKey(r), path, localAddr(r))
	if err != nil {
		if errors.Is(err, model.ErrNotFound) {
			return err
		}
		return &model.ValidationError{Field: "render", Message: oneLine(err.Error())}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(out)
	return err
}

// localAddr is our address as the client reached it.
func localAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
		host, _, _ := strings.Cut(a.String(), ":")
		if ip, err := netip.ParseAddr(host); err == nil {
			return ip
		}
	}
	return netip.Addr{}
}
