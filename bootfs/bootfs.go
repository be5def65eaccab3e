package bootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ironcast/ironcast/model"
)

// Error kinds returned by Open. Callers decide with errors.Is; every error
// Open returns wraps at most one of them, or a render error.
var (
	// ErrNotFound means no file, virtual or real, answers the path; it is
	// also returned for directories and special files. It wraps
	// fs.ErrNotExist. TFTP answers "file not found", HTTP 404.
	ErrNotFound = fmt.Errorf("boot file not found: %w", fs.ErrNotExist)
	// ErrAccess means the path was refused: NUL bytes, backslashes, ".."
	// components, a symlink leaving the root, or a file the server may not
	// read. It wraps fs.ErrPermission. TFTP answers "access violation",
	// HTTP 404 (so that a prober learns nothing).
	ErrAccess = fmt.Errorf("boot path refused: %w", fs.ErrPermission)
)

// Renderer produces virtual per-machine files. Render is given the
// request with its Path already cleaned (relative, slash-separated, no
// leading slash). It returns ok=false when the path is not a virtual file,
// in which case the disk is tried; a non-nil err means the file is virtual
// but could not be rendered, and nothing is served. Render must be safe for
// concurrent use.
type Renderer interface {
	Render(ctx context.Context, req model.FileRequest) (content []byte, ok bool, err error)
}

// RendererFunc adapts a function to Renderer.
type RendererFunc func(ctx context.Context, req model.FileRequest) ([]byte, bool, error)

// Render calls f.
func (f RendererFunc) Render(ctx context.Context, req model.FileRequest) ([]byte, bool, error) {
	return f(ctx, req)
}

// Config configures a Source.
type Config struct {
	// Root is the boot root directory. Empty means no disk files: only
	// rendered ones are served.
	Root string
	// Renderer serves virtual files; nil means disk files only.
	Renderer Renderer
	// Logger receives debug lines for refused paths; nil discards.
	Logger *slog.Logger
}

// File is an open boot file. Read, Seek and ReadAt follow the io
// contracts; ReadAt may be used concurrently with itself. Close must be
// called.
//
// A file from disk also implements syscall.Conn through its embedded
// *os.File, so http.ServeContent given the File itself copies it with
// sendfile(2). Rendered files are held in memory.
type File interface {
	io.ReadSeekCloser
	io.ReaderAt
	// Size is the exact length of the file in bytes.
	Size() int64
	// ModTime is the disk file's modification time, or the render time
	// for a virtual file.
	ModTime() time.Time
	// Rendered reports whether the file is virtual (made by the Renderer).
	Rendered() bool
}

// Source opens boot files. It is safe for concurrent use.
type Source struct {
	root     *os.Root // nil when Config.Root is empty
	renderer Renderer
	log      *slog.Logger
}

// New opens the boot root. The root directory must exist; it is held open
// until Close, so renaming it away does not change what is served.
func New(cfg Config) (*Source, error) {
	s := &Source{renderer: cfg.Renderer, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Root != "" {
		r, err := os.OpenRoot(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("open boot root %s: %w", cfg.Root, err)
		}
		s.root = r
	}
	return s, nil
}

// Close releases the boot root. Files already open stay readable.
func (s *Source) Close() error {
	if s.root == nil {
		return nil
	}
	return s.root.Close()
}

// Clean returns the confined, root-relative form of a requested path, or
// an error wrapping ErrAccess for a hostile one. Leading slashes are
// stripped; "" and "/" clean to ".", the root itself (which is a directory,
// so Open reports ErrNotFound).
func Clean(p string) (string, error) {
	if strings.ContainsAny(p, "\x00\\") {
		return "", fmt.Errorf("path %q: NUL or backslash: %w", p, ErrAccess)
	}
	p = strings.TrimLeft(p, "/")
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "..":
			return "", fmt.Errorf("path %q: parent reference: %w", p, ErrAccess)
		case "", ".":
			continue
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

// Open returns the file that answers req: the rendered file when the
// Renderer claims the path, else the regular file under the root. Errors
// wrap ErrNotFound, ErrAccess, or (for a render failure) the renderer's
// error; ctx is passed to the Renderer.
func (s *Source) Open(ctx context.Context, req model.FileRequest) (File, error) {
	clean, err := Clean(req.Path)
	if err != nil {
		s.log.Debug("boot path refused", "path", req.Path, "client", req.Remote, "err", err)
		return nil, err
	}
	if s.renderer != nil && clean != "." {
		r := req
		r.Path = clean
		content, ok, err := s.renderer.Render(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", clean, err)
		}
		if ok {
			return &memFile{Reader: bytes.NewReader(content), size: int64(len(content)), mod: time.Now()}, nil
		}
	}
	if s.root == nil {
		return nil, fmt.Errorf("open %s: %w", clean, ErrNotFound)
	}
	// O_NONBLOCK: opening a FIFO planted in the root must not hang the
	// server; it is harmless for regular files.
	f, err := s.root.OpenFile(clean, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		err = classify(err)
		if errors.Is(err, ErrAccess) {
			s.log.Debug("boot path refused", "path", req.Path, "client", req.Remote, "err", err)
		}
		return nil, fmt.Errorf("open %s: %w", clean, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", clean, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: not a regular file: %w", clean, ErrNotFound)
	}
	return &diskFile{File: f, size: fi.Size(), mod: fi.ModTime()}, nil
}

// classify maps an os.Root open error to ErrNotFound or ErrAccess where it
// is one. os.Root reports a symlink or path that leaves the root with an
// unexported error that is not a syscall.Errno; anything of that shape is a
// confinement refusal.
func classify(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	var errno syscall.Errno
	if !errors.As(pe.Err, &errno) {
		return fmt.Errorf("%v: %w", pe.Err, ErrAccess)
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR, syscall.ENAMETOOLONG:
		return fmt.Errorf("%v: %w", errno, ErrNotFound)
	case syscall.EACCES, syscall.EPERM, syscall.ELOOP:
		return fmt.Errorf("%v: %w", errno, ErrAccess)
	}
	return err
}

// diskFile is a regular file under the root. Embedding *os.File keeps
// SyscallConn, which is what net's sendfile path looks for.
type diskFile struct {
	*os.File
	size int64
	mod  time.Time
}

func (f *diskFile) Size() int64        { return f.size }
func (f *diskFile) ModTime() time.Time { return f.mod }
func (f *diskFile) Rendered() bool     { return false }

// memFile is a rendered file.
type memFile struct {
	*bytes.Reader
	size int64
	mod  time.Time
}

func (f *memFile) Size() int64        { return f.size }
func (f *memFile) ModTime() time.Time { return f.mod }
func (f *memFile) Rendered() bool     { return true }
func (f *memFile) Close() error       { return nil }
