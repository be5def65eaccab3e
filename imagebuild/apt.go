package imagebuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Package is one Debian package the image was built from.
type Package struct {
	Name         string
	Version      string
	Architecture string
	// SHA256 is the .deb's checksum as listed in the archive's (signed)
	// Packages index, and checked against the downloaded file.
	SHA256 string
	// Deb is the file name of the cached .deb.
	Deb string
}

// aptRepo runs apt-get and apt-cache for one architecture against private
// state under dir: its own package lists, an empty dpkg status and its own
// cache. The host's sources.list is used, the host's dpkg database and
// architecture list are never touched, so arm64 packages can be fetched on
// an amd64 host without `dpkg --add-architecture`.
type aptRepo struct {
	arch    string
	dir     string // CacheDir/apt/<arch>
	debDir  string // CacheDir/debs/<arch>
	refresh bool
	maxAge  time.Duration
	log     *slog.Logger
}

func (a *aptRepo) options() []string {
	return []string{
		"-o", "APT::Architecture=" + a.arch,
		"-o", "APT::Architectures=" + a.arch,
		"-o", "Dir::State=" + filepath.Join(a.dir, "state"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::State::Status=" + filepath.Join(a.dir, "status"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
		// The private directories belong to root; apt's _apt sandbox user
		// could not write them.
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
	}
}

// lock serialises builds sharing a cache directory for one architecture.
func (a *aptRepo) lock() (unlock func(), err error) {
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create apt dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(a.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open apt lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// update refreshes the private package lists unless they are younger than
// maxAge (and refresh is off).
func (a *aptRepo) update(ctx context.Context) error {
	for _, d := range []string{"lists/partial", "cache/archives/partial", "state"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return fmt.Errorf("create apt dir: %w", err)
		}
	}
	status := filepath.Join(a.dir, "status")
	if _, err := os.Stat(status); err != nil {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return fmt.Errorf("create empty dpkg status: %w", err)
		}
	}
	stamp := filepath.Join(a.dir, "updated")
	if st, err := os.Stat(stamp); err == nil && !a.refresh && time.Since(st.ModTime()) < a.maxAge {
		a.log.Debug("package lists are fresh", "arch", a.arch, "updated", st.ModTime())
		return nil
	}
	a.log.Info("updating package lists", "arch", a.arch)
	if _, err := a.run(ctx, "", "apt-get", "-q", "update"); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// show returns the control fields of the version apt would install.
func (a *aptRepo) show(ctx context.Context, pkg string) (map[string]string, error) {
	out, err := a.run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return nil, err
	}
	fields, err := parseControl(out)
	if err != nil {
		return nil, fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	if fields["Package"] != pkg || fields["Version"] == "" {
		return nil, fmt.Errorf("apt-cache show %s: unexpected stanza for %q", pkg, fields["Package"])
	}
	return fields, nil
}

// kernelPackage resolves the linux-image-<arch> metapackage to the exact
// linux-image-6.1.0-N-<arch> package it depends on.
func (a *aptRepo) kernelPackage(ctx context.Context) (string, error) {
	meta := "linux-image-" + a.arch
	f, err := a.show(ctx, meta)
	if err != nil {
		return "", err
	}
	for _, d := range parseDepends(f["Depends"]) {
		if strings.HasPrefix(d, "linux-image-") && strings.HasSuffix(d, "-"+a.arch) && d != meta {
			return d, nil
		}
	}
	return "", fmt.Errorf("%s %s depends on no linux-image package: %q", meta, f["Version"], f["Depends"])
}

// fetch returns the cached .deb of pkg's candidate version, downloading it
// with apt-get download when it is missing or its checksum does not match.
func (a *aptRepo) fetch(ctx context.Context, pkg string) (Package, string, error) {
	f, err := a.show(ctx, pkg)
	if err != nil {
		return Package{}, "", err
	}
	p := Package{Name: pkg, Version: f["Version"], Architecture: f["Architecture"], SHA256: f["SHA256"]}
	if p.SHA256 == "" {
		return Package{}, "", fmt.Errorf("%s %s: the package index lists no SHA256", pkg, p.Version)
	}
	// apt-get download names files like dpkg: name_version_arch.deb with
	// the epoch colon escaped as %3a.
	p.Deb = fmt.Sprintf("%s_%s_%s.deb", pkg, strings.ReplaceAll(p.Version, ":", "%3a"), p.Architecture)
	path := filepath.Join(a.debDir, p.Deb)
	if sum, err := fileSHA256(path); err == nil && sum == p.SHA256 {
		a.log.Debug("using cached package", "deb", p.Deb)
		return p, path, nil
	}
	if err := os.MkdirAll(a.debDir, 0o755); err != nil {
		return Package{}, "", fmt.Errorf("create deb cache: %w", err)
	}
	a.log.Info("downloading package", "package", pkg, "version", p.Version, "arch", a.arch)
	if _, err := a.run(ctx, a.debDir, "apt-get", "-q", "download", pkg+"="+p.Version); err != nil {
		return Package{}, "", err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		// apt may escape more than the epoch colon; find the file by sum.
		found, _ := filepath.Glob(filepath.Join(a.debDir, pkg+"_*_"+p.Architecture+".deb"))
		for _, f := range found {
			if s, _ := fileSHA256(f); s == p.SHA256 {
				p.Deb, path, sum, err = filepath.Base(f), f, s, nil
				break
			}
		}
	}
	if err != nil {
		return Package{}, "", fmt.Errorf("downloaded %s: %w", pkg, err)
	}
	if sum != p.SHA256 {
		return Package{}, "", fmt.Errorf("downloaded %s: sha256 %s, the package index says %s", p.Deb, sum, p.SHA256)
	}
	return p, path, nil
}

func (a *aptRepo) run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.options(), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// unpack extracts a .deb with dpkg -x into cacheDir/unpacked/<deb name>,
// once: the directory appears complete or not at all.
func unpack(ctx context.Context, deb, cacheDir string) (string, error) {
	dst := filepath.Join(cacheDir, "unpacked", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create unpack dir: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".unpack-")
	if err != nil {
		return "", fmt.Errorf("create unpack dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", deb, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg -x %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return dst, nil // another build won the race
		}
		return "", fmt.Errorf("unpack %s: %w", deb, err)
	}
	return dst, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseControl parses the first stanza of Debian control data (deb-control
// (5)): "Field: value" lines, continuation lines starting with a space or
// tab. Field names are kept as written.
func parseControl(data []byte) (map[string]string, error) {
	fields := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(fields) > 0 {
				break
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, errors.New("continuation line before any field")
			}
			fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("malformed control line %q", line)
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, errors.New("no control stanza")
	}
	return fields, nil
}

// parseDepends returns the package names of a Depends field, in order,
// taking every alternative of "a | b" and dropping version constraints
// and architecture qualifiers: "linux-image-6.1.0-56-arm64 (= 6.1.192-2)"
// gives "linux-image-6.1.0-56-arm64".
func parseDepends(s string) []string {
	var names []string
	for _, clause := range strings.Split(s, ",") {
		for _, alt := range strings.Split(clause, "|") {
			name := strings.TrimSpace(alt)
			if i := strings.IndexAny(name, " (["); i >= 0 {
				name = name[:i]
			}
			name, _, _ = strings.Cut(name, ":")
			if name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}
