package httpboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/model"
)

// FileSource opens boot files by request. *bootfs.Source implements it.
// Errors wrapping fs.ErrNotExist or fs.ErrPermission (bootfs.ErrNotFound,
// bootfs.ErrAccess) become 404; any other error, a failed render
// included, becomes 500.
type FileSource interface {
	Open(ctx context.Context, req model.FileRequest) (bootfs.File, error)
}

var _ FileSource = (*bootfs.Source)(nil)

// Config configures a Server. The zero value (plus a Source) is valid.
type Config struct {
	// Source provides the files. Required.
	Source FileSource
	// Logger receives a line per failed request (render errors at error
	// level, refusals at debug); nil discards.
	Logger *slog.Logger
	// Registerer, if not nil, gets the server's Prometheus metrics:
	// ironcast_httpboot_requests_total{code,kind} and
	// ironcast_httpboot_bytes_total{kind}, kind being "file", "rendered" or
	// "none" (nothing was opened).
	Registerer prometheus.Registerer
	// OnServed, if not nil, is called after every request with the request
	// as the file source saw it, the status sent, the body bytes written,
	// the time taken, and the error (open, render or write) if any. It runs
	// on the request's goroutine and should return quickly. The daemon uses
	// it for events and machine timelines.
	OnServed func(req model.FileRequest, status int, bytes int64, dur time.Duration, err error)
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (default 10s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds how long an idle keep-alive connection stays open
	// (default 60s).
	IdleTimeout time.Duration
	// ShutdownTimeout is how long Serve waits for requests in flight once
	// its context ends before it closes their connections (default 10s).
	ShutdownTimeout time.Duration
}

// Server serves boot files over HTTP. Create it with New. It is safe for
// concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

// New returns a Server for cfg, registering its metrics on cfg.Registerer.
// Metrics already registered there by an earlier Server are reused.
func New(cfg Config) *Server {
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ironcast", Subsystem: "httpboot", Name: "requests_total",
		Help: "HTTP boot requests by status code and kind of file (file, rendered, none).",
	}, []string{"code", "kind"})
	s.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ironcast", Subsystem: "httpboot", Name: "bytes_total",
		Help: "HTTP boot response body bytes by kind of file (file, rendered).",
	}, []string{"kind"})
	if cfg.Registerer != nil {
		s.requests = register(cfg.Registerer, s.requests, s.log)
		s.bytes = register(cfg.Registerer, s.bytes, s.log)
	}
	return s
}

func register(r prometheus.Registerer, c *prometheus.CounterVec, log *slog.Logger) *prometheus.CounterVec {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		log.Warn("register http boot metrics", "err", err)
	}
	return c
}

// Serve answers HTTP on ln until ctx ends, then shuts down: requests in
// flight get ShutdownTimeout (a fresh deadline, not ctx) to finish before
// their connections are closed. It returns nil after ctx ends, or the error
// that stopped the listener. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// Requests keep ctx's values but not its cancellation: shutdown
		// lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http boot serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http boot shutdown: closing connections still in flight", "err", err)
		srv.Close()
	}
	<-errc
	return nil
}

// Handler returns the HTTP handler that serves boot files, for use with a
// listener the caller serves itself (tests, or another http.Server).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// errBody is the whole body of a 500: short, and nothing of the file.
const errBody = "internal server error: the file could not be produced"

func (s *Server) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &countingWriter{ResponseWriter: rw}
	req := fileRequest(r)
	kind := "none"
	var served error
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving boot file", "path", req.Path, "client", req.Remote, "panic", p)
			if !w.wroteHeader {
				http.Error(w, errBody, http.StatusInternalServerError)
			} else {
				// The body is already cut short; drop the connection so
				// the client sees a broken transfer, not a short file.
				defer panic(http.ErrAbortHandler)
			}
			if served == nil {
				served = fmt.Errorf("panic: %v", p)
			}
		}
		status := w.status
		if status == 0 {
			status = http.StatusOK
		}
		if served == nil {
			served = w.err
		}
		s.requests.WithLabelValues(codeLabel(status), kind).Inc()
		if kind != "none" {
			s.bytes.WithLabelValues(kind).Add(float64(w.n))
		}
		if s.cfg.OnServed != nil {
			s.cfg.OnServed(req, status, w.n, time.Since(start), served)
		}
	}()

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, err := s.cfg.Source.Open(r.Context(), req)
	if err != nil {
		served = err
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			s.log.Debug("boot file not served", "path", req.Path, "client", req.Remote, "err", err)
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		s.log.Error("boot file failed", "path", req.Path, "client", req.Remote, "err", err)
		http.Error(w, errBody, http.StatusInternalServerError)
		return
	}
	defer f.Close()

	h := w.Header()
	mod := f.ModTime()
	rendered := f.Rendered()
	if rendered {
		kind = "rendered"
		h["Cache-Control"] = noStore
		mod = time.Time{} // no Last-Modified: it differs on every render
	} else {
		kind = "file"
	}
	h["Content-Type"] = contentType(req.Path, rendered)
	if rendered && !conditional(r.Header) {
		// A whole rendered file: no Last-Modified or ETag to compare and
		// no range to cut, so the headers ServeContent would set are
		// known. Writing them here saves its precondition checks, seeks
		// and per-request allocations on the busiest path (every
		// machine's boot script).
		h["Accept-Ranges"] = acceptRanges
		h["Content-Length"] = []string{strconv.FormatInt(f.Size(), 10)}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.ReadFrom(f) // a failed write is in w.err, as with ServeContent
		}
		return
	}
	// ServeContent sets the exact Content-Length, answers Range and
	// If-Modified-Since, and skips the body for HEAD. It copies through
	// w.ReadFrom, which hands the file to the connection's sendfile path.
	http.ServeContent(w, r, "", mod, f)
}

// fileRequest describes r to the file source.
func fileRequest(r *http.Request) model.FileRequest {
	req := model.FileRequest{Path: r.URL.Path, Protocol: "http"}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		req.Remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			req.Local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		} else if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			req.Local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if q := r.URL.Query(); len(q) > 0 {
		req.Query = make(map[string]string, len(q))
		for k, v := range q {
			if len(v) > 0 {
				req.Query[k] = v[0]
			}
		}
	}
	return req
}

// Header values shared by every response. A header map holds them
// without copying (saving an allocation per header per request); nothing
// appends to them in place (Header.Add on a full slice copies it), and
// net/http copies them when it snapshots the headers.
var (
	noStore      = []string{"no-store"}
	acceptRanges = []string{"bytes"}
	textPlain    = []string{"text/plain; charset=utf-8"}
	octetStream  = []string{"application/octet-stream"}
)

// conditionalHeaders are the request headers that ServeContent acts on
// for a file with no Last-Modified or ETag.
var conditionalHeaders = []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}

func conditional(h http.Header) bool {
	for _, k := range conditionalHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// contentType names the type by extension; boot scripts and configs
// rendered per machine are text, everything else is bytes.
func contentType(p string, rendered bool) []string {
	switch ext := strings.ToLower(path.Ext(p)); ext {
	case ".ipxe", ".cfg", ".conf", ".ks", ".sh", ".txt", ".yaml", ".yml", ".seed", ".preseed":
		return textPlain
	case "", ".0", ".efi", ".kpxe", ".img", ".iso", ".cpio", ".gz", ".xz":
		if rendered {
			return textPlain
		}
		return octetStream
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return []string{t}
		}
	}
	if rendered {
		return textPlain
	}
	return octetStream
}

var codeLabels = map[int]string{200: "200", 206: "206", 304: "304", 404: "404", 405: "405", 416: "416", 500: "500"}

func codeLabel(code int) string {
	if s, ok := codeLabels[code]; ok {
		return s
	}
	return fmt.Sprint(code)
}

// countingWriter records the status and body bytes of a response. It
// implements io.ReaderFrom by handing the reader to the underlying
// writer's ReadFrom, which for a TCP connection and an *os.File underneath
// is sendfile(2); without it every file would be copied through user space.
type countingWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	n           int64
	err         error
}

func (w *countingWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("write response: %w", err)
	}
	return n, err
}

func (w *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok && sendfileWorthIt(src) {
		n, err = rf.ReadFrom(src)
	} else {
		// Small or in-memory bodies go through the response's buffer, so
		// headers and body leave in one write.
		bp := copyBufs.Get().(*[]byte)
		n, err = io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, src, *bp)
		copyBufs.Put(bp)
	}
	w.n += n
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("write response: %w", err)
	}
	return n, err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// sendfileMin is the body size from which a disk file is handed to
// sendfile(2). Below it, net/http would write the headers and the first
// 512 bytes, then call sendfile for the rest: three system calls and two
// segments where one buffered write does (2 KiB files: ~25% more requests/s).
const sendfileMin = 64 << 10

// sendfileWorthIt reports whether src (as http.ServeContent passes it: an
// *io.LimitedReader over the file) is a file big enough for sendfile.
func sendfileWorthIt(src io.Reader) bool {
	n := int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		n, src = lr.N, lr.R
	}
	if _, ok := src.(syscall.Conn); !ok {
		return false
	}
	if n >= 0 && n < sendfileMin {
		return false
	}
	if f, ok := src.(interface{ Size() int64 }); ok && n < 0 && f.Size() < sendfileMin {
		return false
	}
	return true
}

// Unwrap lets http.ResponseController reach the connection.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
