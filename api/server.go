package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	httpSwagger "github.com/swaggo/http-swagger/v2"

	"github.com/ironcast/ironcast/auth"
	_ "github.com/ironcast/ironcast/docs" // registers the generated spec with swag
	"github.com/ironcast/ironcast/events"
)

// MaxBodyBytes bounds a request body; larger bodies get 413.
const MaxBodyBytes = 16 << 20

// DefaultKeepAlive is how often the event stream sends a comment when idle.
const DefaultKeepAlive = 15 * time.Second

// Info is what GET /api/v1/info says about the server.
type Info struct {
	Version string
	// Ports maps a service ("api", "dhcp", "tftp", "http") to its port.
	Ports map[string]int
	// Features lists what this server does, e.g. "dhcp", "proxydhcp".
	Features   []string
	ServerTime time.Time
}

// Config wires a Server. Backend and Auth are required.
type Config struct {
	Backend Backend
	// Lifecycle serves registration, actions, callbacks, timelines,
	// metadata, explain and render; nil leaves those routes out.
	Lifecycle Lifecycle
	// Files serves /api/v1/isos and /api/v1/files (uploads into the boot
	// root); nil leaves those routes out.
	Files BootFiles
	// Pools serves allocate, release and status below /api/v1/pools/NAME;
	// nil leaves those routes out.
	Pools Pools
	Auth  *auth.Authenticator
	// Bus feeds /api/v1/events; nil means a stream that only keeps alive.
	Bus *events.Bus
	// Info describes the server (nil: just the version).
	Info func() Info
	// Logger receives one access log line per request ("api request":
	// successful reads at DEBUG, writes and client errors at INFO, server
	// errors at WARN) and every server error (nil: discard). Headers, query
	// strings and bodies are never logged, so neither are tokens and
	// passwords.
	Logger *slog.Logger
	// Registerer receives the API's metrics; if it is also a
	// prometheus.Gatherer (a *prometheus.Registry) /metrics serves it.
	// Nil means a private registry.
	Registerer prometheus.Registerer
	// MetricsAuth makes /metrics require a user's bearer token (any role;
	// scoped machine and registration tokens are refused).
	MetricsAuth bool
	// Version is reported by /api/v1/info when Info is nil.
	Version string
	// KeepAlive is the idle interval of the event stream (0: DefaultKeepAlive).
	KeepAlive time.Duration
}

// Server is the API. It is safe for concurrent use.
type Server struct {
	backend     Backend
	lifecycle   Lifecycle
	files       BootFiles
	pools       Pools
	auth        *auth.Authenticator
	bus         *events.Bus
	info        func() Info
	log         *slog.Logger
	version     string
	keepAlive   time.Duration
	gatherer    prometheus.Gatherer
	metricsAuth bool
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	handler     http.Handler
	done        chan struct{}
	closeOnce   sync.Once
}

// Close ends every event stream (which http.Server.Shutdown would wait
// for) and makes new ones end at once. Other requests are unaffected.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// New returns a Server for cfg. It returns an error, and no Server, when
// Backend or Auth is nil or when the metrics cannot be registered with
// cfg.Registerer (a collector of another type under the same name).
func New(cfg Config) (*Server, error) {
	var missing []error
	if cfg.Backend == nil {
		missing = append(missing, errors.New("api: Config.Backend is required"))
	}
	if cfg.Auth == nil {
		missing = append(missing, errors.New("api: Config.Auth is required"))
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	s := &Server{
		backend: cfg.Backend, lifecycle: cfg.Lifecycle, files: cfg.Files, pools: cfg.Pools, auth: cfg.Auth, bus: cfg.Bus, info: cfg.Info,
		log: cfg.Logger, version: cfg.Version, keepAlive: cfg.KeepAlive,
		metricsAuth: cfg.MetricsAuth, done: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keepAlive <= 0 {
		s.keepAlive = DefaultKeepAlive
	}
	reg := cfg.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	} else {
		s.gatherer = prometheus.DefaultGatherer
	}
	var err error
	s.requests, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ironcast_api_requests_total",
		Help: "API requests by method, route pattern and status code.",
	}, []string{"method", "route", "code"}))
	if err != nil {
		return nil, err
	}
	s.latency, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ironcast_api_request_duration_seconds",
		Help:    "API request latency by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"}))
	if err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// register registers c, or returns the collector already registered under
// the same name (a second Server on one registry shares the metrics). Any
// other registration failure is returned.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, fmt.Errorf("api: register metrics: %w", err)
	}
	return c, nil
}

// Handler returns the HTTP handler for every route.
func (s *Server) Handler() http.Handler { return s.handler }

// handlerFunc is a handler that returns its error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// h adapts a handlerFunc.
func (s *Server) h(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.instrument, s.recoverer, limitBody)
	r.NotFound(s.h(func(w http.ResponseWriter, r *http.Request) error {
		return badRequestStatus(http.StatusNotFound, "no route for %s", r.URL.Path)
	}))
	r.MethodNotAllowed(s.h(func(w http.ResponseWriter, r *http.Request) error {
		return badRequestStatus(http.StatusMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path)
	}))
	r.Get("/healthz", s.h(s.healthz))
	metrics := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
	if s.metricsAuth {
		r.With(s.auth.Middleware(s.writeError), logUser).Handle("/metrics", metrics)
	} else {
		r.Handle("/metrics", metrics)
	}
	r.Get("/swagger", http.RedirectHandler("/swagger/index.html", http.StatusMovedPermanently).ServeHTTP)
	r.Get("/swagger/*", httpSwagger.Handler(httpSwagger.URL("/swagger/doc.json")))
	r.Route("/api/v1", func(r chi.Router) {
		// The token route authenticates itself (HTTP Basic or bearer).
		r.Post("/users/{key}/token", s.h(s.issueToken))
		r.Group(func(r chi.Router) {
			r.Use(s.auth.Middleware(s.writeError), logUser)
			s.systemRoutes(r)
			s.fileRoutes(r)
			for _, k := range kindTable {
				r.Mount("/"+k.kind, s.kindRoutes(k))
			}
		})
	})
	return r
}

func badRequestStatus(status int, format string, args ...any) error {
	e := badRequest("", format, args...).(*requestError)
	e.status = status
	return e
}

// limitBody caps request bodies at MaxBodyBytes, except uploads into the
// boot root (ISOs are gigabytes), which stream to disk.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isUpload(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > MaxBodyBytes {
			writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{Message: "request body is larger than " + strconv.Itoa(MaxBodyBytes) + " bytes"})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a handler panic into a logged 500.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "route", routePattern(r), "panic", v)
				writeJSON(w, http.StatusInternalServerError, ErrorResponse{Message: "internal server error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status code and size of an answer.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routePattern is the chi route pattern of r, "unmatched" when none.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// requestInfo is what instrument logs about a request that only handlers
// further down learn: the authenticated user. It travels in the request
// context under infoKey.
type requestInfo struct{ user string }

type infoKey struct{}

// noteUser records name as the user of r for its access log line.
func noteUser(r *http.Request, name string) {
	if ri, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		ri.user = name
	}
}

// logUser records the principal that auth.Middleware put in the context;
// it runs right after that middleware.
func logUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := auth.FromContext(r.Context()); ok {
			noteUser(r, p.Name)
		}
		next.ServeHTTP(w, r)
	})
}

// accessLevel is the level of a request's access log line: server errors
// at WARN; client errors and writes (any method but GET, HEAD and OPTIONS,
// logins included) at INFO; successful reads, such as /metrics scrapes,
// health checks, polling and event streams, at DEBUG.
func accessLevel(method string, code int) slog.Level {
	switch {
	case code >= 500:
		return slog.LevelWarn
	case code >= 400:
		return slog.LevelInfo
	case method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// instrument counts and times every request by route pattern and writes
// its access log line (see accessLevel) with the method, the path without
// its query (which could hold a secret; headers are never logged either),
// the route pattern, status, bytes, duration, the authenticated user when
// there is one, and the client's address.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		ri := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		defer func() {
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			route := routePattern(r)
			d := time.Since(start)
			s.requests.WithLabelValues(r.Method, route, strconv.Itoa(sw.code)).Inc()
			s.latency.WithLabelValues(route).Observe(d.Seconds())
			level := accessLevel(r.Method, sw.code)
			if !s.log.Enabled(r.Context(), level) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
				slog.Int("status", sw.code), slog.Int64("bytes", sw.bytes), slog.Duration("duration", d),
			}
			if ri.user != "" {
				attrs = append(attrs, slog.String("user", ri.user))
			}
			attrs = append(attrs, slog.String("remote", r.RemoteAddr))
			s.log.LogAttrs(r.Context(), level, "api request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}
