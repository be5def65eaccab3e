package bootfiles

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/ironcast/ironcast/model"
)

// Bounds on what one ISO may extract to, against images built to explode
// (directories that contain their ancestors, files sharing one extent).
const (
	maxDepth   = 64
	maxEntries = 200_000
	maxSkipped = 20
)

// maxExtractBytes bounds the bytes extracted from an image of isoSize
// bytes, per tree: real images hold their files once, so four times the
// image plus 1 GiB leaves room for hard-linked duplicates.
func maxExtractBytes(isoSize int64) int64 { return 4*isoSize + 1<<30 }

// Expect is what an uploaded ISO must be and where it goes.
type Expect struct {
	// Sha256 is the expected hex checksum; empty means any.
	Sha256 string
	// Dirs are the directories (relative to the root, e.g.
	// "ubuntu-24.04-install/amd64") to extract the ISO into, replacing
	// what is there.
	Dirs []string
}

// ExpectFor collects what the bootenvs say about the ISO called name:
// every architecture whose IsoFile is name adds the directory
// "<bootenv>/<arch>" and its IsoSha256. Bootenvs that expect different
// checksums for one ISO are an error (a *model.ValidationError for
// "sha256"), since no upload can satisfy both; the Expect returned with it
// still lists every directory, for a caller that overrides the checksum.
func ExpectFor(name string, envs []*model.BootEnv) (Expect, error) {
	var e Expect
	var from string
	var errs []error
	for _, be := range envs {
		if be == nil {
			continue
		}
		arches := make([]string, 0, len(be.Arches))
		for arch := range be.Arches {
			arches = append(arches, arch)
		}
		sort.Strings(arches)
		for _, arch := range arches {
			ai := be.Arches[arch]
			if ai.IsoFile != name {
				continue
			}
			e.Dirs = append(e.Dirs, be.Name+"/"+arch)
			sum := strings.ToLower(ai.IsoSha256)
			switch {
			case sum == "":
			case e.Sha256 == "":
				e.Sha256, from = sum, be.Name+"/"+arch
			case e.Sha256 != sum:
				errs = append(errs, model.Invalid("sha256", "bootenvs disagree on the sha256 of %s: %s expects %s, %s/%s expects %s",
					name, from, e.Sha256, be.Name, arch, sum))
			}
		}
	}
	sort.Strings(e.Dirs)
	return e, errors.Join(errs...)
}

// PutISO stores the ISO image read from r as isos/<name> and extracts
// its contents into each of want.Dirs.
//
// The image streams to a temporary file in the root, hashed on the way.
// If want.Sha256 is set and differs, nothing is kept and the error (a
// *model.ValidationError for "sha256") names both sums. Otherwise each
// directory is extracted into a temporary directory beside it, the
// filesystem is synced, each old tree is exchanged with its new one (one
// rename; removed after), and the image is renamed into isos/ last. If r
// fails, ctx ends, the image is not ISO 9660 (a *model.ValidationError
// for "iso") or the disk fills (ErrNoSpace) before that, every temporary
// file and directory is removed and the old ISO and trees are untouched.
func (s *Store) PutISO(ctx context.Context, name string, r io.Reader, want Expect) (*Result, error) {
	if err := CleanName(name); err != nil {
		return nil, err
	}
	want.Sha256 = strings.ToLower(want.Sha256)
	if want.Sha256 != "" && !isHex64(want.Sha256) {
		return nil, model.Invalid("sha256", "%q is not a hex sha256", want.Sha256)
	}
	dirs := make([]string, 0, len(want.Dirs))
	for _, d := range want.Dirs {
		clean, err := CleanPath(d)
		if err != nil {
			return nil, fmt.Errorf("extraction directory: %w", err)
		}
		if clean == isoDir || strings.HasPrefix(clean, isoDir+"/") {
			return nil, model.Invalid("path", "cannot extract into %s", clean)
		}
		dirs = append(dirs, clean)
	}
	if err := s.mkdirAll(isoDir); err != nil {
		return nil, err
	}
	tmp, size, sum, err := s.receive(ctx, isoDir, r)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", name, err)
	}
	trees := map[string]string{} // target dir → temporary tree
	keep := false
	defer func() {
		if keep {
			return
		}
		_ = s.root.Remove(tmp)
		for _, t := range trees {
			_ = s.root.RemoveAll(t)
		}
	}()
	if want.Sha256 != "" && sum != want.Sha256 {
		return nil, model.Invalid("sha256", "ISO %s has sha256 %s, expected %s", name, sum, want.Sha256)
	}
	res := &Result{Path: isoDir + "/" + name, Size: size, Sha256: sum}
	f, err := s.root.Open(tmp)
	if err != nil {
		return nil, fmt.Errorf("reopen upload of %s: %w", name, err)
	}
	defer f.Close()
	img, err := openImage(f)
	if err != nil {
		return nil, model.Invalid("iso", "%s is not an ISO 9660 image: %v", name, err)
	}
	for i, d := range dirs {
		if i > 0 {
			// A fresh tree per extraction: a Joliet tree remembers the
			// directories it listed, against loops.
			if img, err = openImage(f); err != nil {
				return nil, fmt.Errorf("reopen %s: %w", name, err)
			}
		}
		parent := path.Dir(d)
		if err := s.mkdirAll(parent); err != nil {
			return nil, err
		}
		t := path.Join(parent, tempPrefix+"new-"+path.Base(d)+"-"+rand.Text())
		if err := s.root.Mkdir(t, 0o755); err != nil {
			return nil, fmt.Errorf("make %s: %w", t, mapErr(err))
		}
		trees[d] = t
		x := &extractor{s: s, limit: maxExtractBytes(size), tree: Tree{Dir: d}}
		if err := x.run(ctx, img, t); err != nil {
			return nil, fmt.Errorf("extract %s into %s: %w", name, d, err)
		}
		res.Extracted = append(res.Extracted, x.tree)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Make the new files durable before any rename can publish them.
	if err := s.syncFS(); err != nil {
		return nil, fmt.Errorf("sync boot root: %w", mapErr(err))
	}

	// Publish: from here on ctx is no longer consulted, so that a
	// cancelled request cannot stop half way through the renames.
	s.mu.Lock()
	defer s.mu.Unlock()
	var olds []string
	for _, d := range dirs {
		old, err := s.swap(trees[d], d)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", d, err)
		}
		delete(trees, d)
		if old != "" {
			olds = append(olds, old)
		}
	}
	if err := s.root.Rename(tmp, res.Path); err != nil {
		return nil, fmt.Errorf("publish %s: %w", res.Path, err)
	}
	keep = true
	if err := s.syncDir(isoDir); err != nil {
		return nil, fmt.Errorf("sync %s: %w", isoDir, err)
	}
	for _, old := range olds {
		if err := s.root.RemoveAll(old); err != nil {
			s.log.Warn("remove replaced tree", "path", old, "err", err)
		}
	}
	s.log.Info("ISO stored", "path", res.Path, "bytes", size, "sha256", sum, "trees", len(res.Extracted))
	return res, nil
}

// swap puts the directory tree at tmp in place of target, replacing an old
// tree in one rename where the filesystem can exchange entries. It
// returns the temporary path now holding the old tree ("" when there was
// none), for the caller to remove, and syncs the parent directory.
func (s *Store) swap(tmp, target string) (old string, err error) {
	parent := path.Dir(target)
	fi, err := s.root.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := s.root.Rename(tmp, target); err != nil {
			return "", err
		}
		return "", s.syncDir(parent)
	case err != nil:
		return "", err
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory: %w", target, model.ErrConflict)
	}
	switch err := s.exchange(parent, path.Base(tmp), path.Base(target)); {
	case err == nil:
		return tmp, s.syncDir(parent)
	case !errors.Is(err, errNoExchange):
		return "", err
	}
	// No atomic exchange here: rename the old tree away, then the new one
	// in. A crash between the two leaves target missing, never half.
	old = path.Join(parent, tempPrefix+"old-"+rand.Text())
	if err := s.root.Rename(target, old); err != nil {
		return "", err
	}
	if err := s.root.Rename(tmp, target); err != nil {
		_ = s.root.Rename(old, target)
		return "", err
	}
	return old, s.syncDir(parent)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func recoverTo(err *error) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("malformed image: %v", v)
	}
}

// extractor writes one tree.
type extractor struct {
	s       *Store
	limit   int64
	entries int
	tree    Tree
}

func (x *extractor) run(ctx context.Context, img node, dst string) (err error) {
	defer recoverTo(&err)
	return x.dir(ctx, img, dst, "", 0)
}

func (x *extractor) skip(rel, why string) {
	if len(x.tree.Skipped) < maxSkipped {
		x.tree.Skipped = append(x.tree.Skipped, rel+": "+why)
	}
}

// dir extracts the children of d into dst/rel.
func (x *extractor) dir(ctx context.Context, d node, dst, rel string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: directories nest deeper than %d", rel, maxDepth)
	}
	kids, err := d.children()
	if err != nil {
		return fmt.Errorf("read directory %s: %w", rel, err)
	}
	for _, k := range kids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if x.entries++; x.entries > maxEntries {
			return fmt.Errorf("more than %d entries", maxEntries)
		}
		name := k.name()
		p := path.Join(rel, name)
		if !imageName(name) {
			x.skip(p, "name cannot be written")
			continue
		}
		if k.symlink() {
			x.skip(p, "symlink")
			continue
		}
		full := path.Join(dst, p)
		if k.isDir() {
			if err := x.s.root.Mkdir(full, 0o755); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%s appears twice in the image", p)
				}
				return fmt.Errorf("make %s: %w", p, mapErr(err))
			}
			if err := x.dir(ctx, k, dst, p, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := x.file(ctx, k, full, p); err != nil {
			return err
		}
		if x.s.afterFile != nil {
			x.s.afterFile(p)
		}
	}
	return nil
}

// file writes one regular file.
func (x *extractor) file(ctx context.Context, k node, full, rel string) error {
	size := k.size()
	if x.tree.Bytes+size > x.limit {
		return fmt.Errorf("%s: the image extracts to more than %d bytes", rel, x.limit)
	}
	out, err := x.s.root.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s appears twice in the image", rel)
		}
		return fmt.Errorf("create %s: %w", rel, mapErr(err))
	}
	n, err := copyCtx(ctx, out, k.reader())
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", mapErr(cerr))
	}
	if err != nil {
		var re *ReadError
		if errors.As(err, &re) {
			err = fmt.Errorf("read from image: %w", re.Err)
		}
		return fmt.Errorf("%s: %w", rel, err)
	}
	if n != size {
		return fmt.Errorf("%s: %d of %d bytes: the file extends beyond the image", rel, n, size)
	}
	x.tree.Files++
	x.tree.Bytes += n
	return nil
}
