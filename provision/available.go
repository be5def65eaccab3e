package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ironcast/ironcast/model"
)

// fileSums caches sha256 sums of boot files by path, size and mtime, so
// that listing bootenvs does not re-read gigabytes of ISOs each time.
type fileSums struct {
	mu sync.Mutex
	m  map[string]fileSum
}

type fileSum struct {
	size int64
	mod  time.Time
	sum  string
}

func (c *fileSums) sum(path string, fi os.FileInfo) (string, error) {
	c.mu.Lock()
	if s, ok := c.m[path]; ok && s.size == fi.Size() && s.mod.Equal(fi.ModTime()) {
		c.mu.Unlock()
		return s.sum, nil
	}
	c.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]fileSum{}
	}
	c.m[path] = fileSum{size: fi.Size(), mod: fi.ModTime(), sum: sum}
	c.mu.Unlock()
	return sum, nil
}

// checkAvailable fills be.Available and be.Errors from the boot root: a
// bootenv is available when every file of at least one architecture is
// present (with the expected sha256 where one is given); Errors names each
// missing or mismatched file with its architecture, the expected and the
// actual checksum, and how to get it. Paths that are templates (they
// depend on a machine's params) are not checked. Local bootenvs need no
// files.
func (s *Service) checkAvailable(be *model.BootEnv) {
	be.Available, be.Errors = false, nil
	if be.Local {
		be.Available = true
		return
	}
	if s.bootRoot == "" {
		return
	}
	arches := make([]string, 0, len(be.Arches))
	for a := range be.Arches {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	for _, arch := range arches {
		ai := be.Arches[arch]
		want := map[string]model.BootFile{}
		for _, f := range ai.Files {
			want[f.Path] = f
		}
		for _, p := range append([]string{ai.Kernel}, ai.Initrds...) {
			if _, ok := want[p]; !ok && p != "" {
				want[p] = model.BootFile{Path: p}
			}
		}
		if ai.IsoFile != "" {
			want["isos/"+ai.IsoFile] = model.BootFile{Path: "isos/" + ai.IsoFile, Sha256: ai.IsoSha256, Source: "ironcast isos upload " + ai.IsoFile}
		}
		paths := make([]string, 0, len(want))
		for p := range want {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		ok := true
		for _, p := range paths {
			if strings.Contains(p, "{{") {
				continue
			}
			bf := want[p]
			if msg := s.checkFile(bf); msg != "" {
				ok = false
				be.Errors = append(be.Errors, arch+": "+msg)
			}
		}
		if ok {
			be.Available = true
		}
	}
}

func (s *Service) checkFile(bf model.BootFile) string {
	full := filepath.Join(s.bootRoot, filepath.FromSlash(bf.Path))
	hint := ""
	if bf.Source != "" {
		hint = " (get it with: " + bf.Source + ")"
	}
	fi, err := os.Stat(full)
	if err != nil {
		return fmt.Sprintf("%s is missing%s", bf.Path, hint)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a regular file", bf.Path)
	}
	if bf.Sha256 == "" {
		return ""
	}
	sum, err := s.sums.sum(full, fi)
	if err != nil {
		return fmt.Sprintf("%s cannot be read: %v", bf.Path, err)
	}
	if !strings.EqualFold(sum, bf.Sha256) {
		return fmt.Sprintf("%s has sha256 %s, expected %s", bf.Path, sum, bf.Sha256)
	}
	return ""
}
