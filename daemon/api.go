package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/api"
	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
)

// info is what the daemon reports about itself on /api/v1/info.
type info struct {
	Version                     string
	APIPort, HTTPPort, TFTPPort int
	TFTP                        bool
	DHCP                        []string
}

func (i info) api() api.Info {
	ports := map[string]int{"api": i.APIPort, "http": i.HTTPPort}
	features := []string{"api", "httpboot", "templates", "bootenvs"}
	if i.TFTP {
		ports["tftp"] = i.TFTPPort
		features = append(features, "tftp")
	}
	if len(i.DHCP) > 0 {
		ports["dhcp"] = 67
		ports["proxydhcp"] = 4011
		features = append(features, "dhcp", "proxydhcp")
	}
	return api.Info{Version: i.Version, Ports: ports, Features: features, ServerTime: time.Now().UTC()}
}

type apiDeps struct {
	svc       *provision.Service
	auth      *auth.Authenticator
	bus       *events.Bus
	reg       *prometheus.Registry
	log       *slog.Logger
	version   string
	info      info
	timelines *provision.Timelines // fed by Run; read through svc
	files     api.BootFiles        // uploads into the boot root; nil: no routes
}

func newAPIServer(d apiDeps) (*api.Server, error) {
	if d.svc == nil || d.auth == nil {
		return nil, errors.New("api wiring: service and authenticator are required")
	}
	s, err := api.New(api.Config{
		Backend:    d.svc,
		Lifecycle:  d.svc,
		Pools:      d.svc,
		Files:      d.files,
		Auth:       d.auth,
		Bus:        d.bus,
		Info:       d.info.api,
		Logger:     d.log,
		Registerer: d.reg,
		Version:    d.version,
	})
	if err != nil {
		return nil, fmt.Errorf("api server: %w", err)
	}
	return s, nil
}

// machineRoutes serves, on the plain HTTP boot port, the few API routes a
// booted machine needs (registration, its own record, callbacks, metadata)
// next to the boot files. Firmware and installers speak plain HTTP, and
// those routes accept only machine-scoped and registration tokens, which
// the API's policy already confines to the machine itself. Everything
// else is a boot file.
func machineRoutes(a *auth.Authenticator, apiHandler, files http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// machines/UUID/metadata.json is the metadata document, which
		// holds secure params in clear: it is the API's metadata route,
		// behind the machine's own token, not a boot file.
		if uuid, ok := metadataPath(r.URL.Path); ok {
			r = r.Clone(r.Context())
			r.URL.Path = "/api/v1/machines/" + uuid + "/metadata"
			r.URL.RawPath = ""
		} else if !strings.HasPrefix(r.URL.Path, "/api/") {
			files.ServeHTTP(w, r)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/api/v1/machines/") {
			http.Error(w, "the API is served over HTTPS on the API port", http.StatusNotFound)
			return
		}
		tok, ok := auth.BearerToken(r)
		if !ok {
			http.Error(w, "a machine or registration token is required", http.StatusUnauthorized)
			return
		}
		p, err := a.Verify(r.Context(), tok)
		if err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		if p.Scope == "" {
			// User tokens must never cross the network in clear.
			http.Error(w, "user tokens are accepted only over HTTPS on the API port", http.StatusForbidden)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// metadataPath matches /machines/UUID/metadata.json.
func metadataPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/machines/")
	if !ok {
		return "", false
	}
	uuid, file, ok := strings.Cut(rest, "/")
	if !ok || file != "metadata.json" || !model.ValidUUID(uuid) {
		return "", false
	}
	return uuid, true
}
