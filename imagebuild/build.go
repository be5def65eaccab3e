package imagebuild

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// initFiles are the scripts the image runs; see init/init.
//
//go:embed init
var initFiles embed.FS

// Mode selects which image Build makes.
type Mode string

const (
	// ModeDiscovery builds the discovery image: vmlinuz and initrd.img under
	// OutDir/discovery/<arch>/. Its /init registers the machine
	// (ironcast.mode=discover, the default) or wipes its disks
	// (ironcast.mode=wipe).
	ModeDiscovery Mode = "discovery"
	// ModeTest builds a LinuxKit-style test image (kernel+initrd output:
	// <name>-kernel, <name>-initrd.img, <name>-cmdline under
	// OutDir/linuxkit/). Its /init runs in run mode: it reads its metadata,
	// prints IRONCAST-LINUXKIT-OK and a param, and posts "running".
	ModeTest Mode = "test"
)

// DefaultModules are the kernel modules put into every image (with their
// dependencies), when the kernel has them as modules: NIC drivers for
// QEMU and common server NICs, and disk controllers for inventory and
// wiping. Drivers built into the kernel are skipped.
var DefaultModules = []string{
	// QEMU / virtio.
	"virtio_pci", "virtio_mmio", "virtio_net", "virtio_blk", "virtio_scsi",
	// NICs.
	"e1000", "e1000e", "igb", "ixgbe", "tg3", "bnxt_en", "r8169",
	// Disks.
	"sd_mod", "ahci", "nvme",
	// udhcpc's raw sockets (built in on Debian, a module elsewhere).
	"af_packet",
}

// Options says what to build. The zero value, with OutDir set, builds the
// amd64 discovery image.
type Options struct {
	// Arch is "amd64" (default) or "arm64".
	Arch string
	// OutDir is where the image goes; required.
	OutDir string
	// CacheDir keeps package lists, downloaded .debs and unpacked packages
	// between builds. Default: $XDG_CACHE_HOME/ironcast/imagebuild.
	CacheDir string
	// Mode is ModeDiscovery (default) or ModeTest.
	Mode Mode
	// Name names the test image's files (ModeTest only). Default:
	// "ironcast-test-<arch>".
	Name string
	// Cmdline is appended to the test image's cmdline file (ModeTest
	// only), after the console LinuxKit would put there.
	Cmdline string
	// Modules replaces DefaultModules when non-nil.
	Modules []string
	// SourceDateEpoch is the timestamp of every file in the initramfs.
	// Zero means $SOURCE_DATE_EPOCH, or 0 when that is unset.
	SourceDateEpoch int64
	// RefreshLists forces apt-get update; otherwise package lists younger
	// than a day are reused.
	RefreshLists bool
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Result describes a finished build. Paths are absolute or relative as
// OutDir was given.
type Result struct {
	Manifest
	// Dir is the directory holding the files.
	Dir string
	// Kernel and Initrd are the paths of the kernel and initramfs.
	Kernel, Initrd string
	// Cmdline is the path of the test image's cmdline file; "" for discovery.
	Cmdline string
}

// Manifest is written next to the image as JSON: what it was built from
// and the sha256 of every file. It holds no build time, so two builds
// from the same packages give identical manifests.
type Manifest struct {
	Mode            Mode
	Arch            string
	KernelRelease   string
	Packages        []Package
	Modules         []string          // load order
	MissingModules  []string          `json:",omitempty"` // wanted but not in this kernel
	SourceDateEpoch int64             //
	Files           map[string]string // file name → sha256
}

// Build fetches the Debian packages for opts.Arch and writes the image
// described by opts.Mode. It shells out to apt-get, apt-cache and dpkg -x
// (which must be installed) and does everything else in Go.
func Build(ctx context.Context, opts Options) (Result, error) {
	if err := opts.setDefaults(); err != nil {
		return Result{}, err
	}
	log := opts.Logger.With("arch", opts.Arch, "mode", opts.Mode)
	repo := &aptRepo{
		arch:    opts.Arch,
		dir:     filepath.Join(opts.CacheDir, "apt", opts.Arch),
		debDir:  filepath.Join(opts.CacheDir, "debs", opts.Arch),
		refresh: opts.RefreshLists,
		maxAge:  24 * time.Hour,
		log:     log,
	}
	unlock, err := repo.lock()
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if err := repo.update(ctx); err != nil {
		return Result{}, err
	}
	kname, err := repo.kernelPackage(ctx)
	if err != nil {
		return Result{}, err
	}
	kpkg, kdeb, err := repo.fetch(ctx, kname)
	if err != nil {
		return Result{}, err
	}
	bpkg, bdeb, err := repo.fetch(ctx, "busybox-static")
	if err != nil {
		return Result{}, err
	}
	log.Info("unpacking packages", "kernel", kpkg.Name+"="+kpkg.Version, "busybox", bpkg.Version)
	kdir, err := unpack(ctx, kdeb, opts.CacheDir)
	if err != nil {
		return Result{}, err
	}
	bdir, err := unpack(ctx, bdeb, opts.CacheDir)
	if err != nil {
		return Result{}, err
	}
	in, err := loadInputs(opts, kdir, bdir)
	if err != nil {
		return Result{}, err
	}
	in.packages = []Package{kpkg, bpkg}
	res, err := write(opts, in)
	if err != nil {
		return Result{}, err
	}
	log.Info("image built", "dir", res.Dir, "kernel", res.Files[filepath.Base(res.Kernel)], "initrd", res.Files[filepath.Base(res.Initrd)], "modules", len(res.Modules))
	return res, nil
}

// BuildTestImage builds the LinuxKit-style test image: Build with
// opts.Mode set to ModeTest.
func BuildTestImage(ctx context.Context, opts Options) (Result, error) {
	opts.Mode = ModeTest
	return Build(ctx, opts)
}

func (o *Options) setDefaults() error {
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.Arch != "amd64" && o.Arch != "arm64" {
		return fmt.Errorf("imagebuild: arch %q is not one of amd64, arm64", o.Arch)
	}
	if o.Mode == "" {
		o.Mode = ModeDiscovery
	}
	if o.Mode != ModeDiscovery && o.Mode != ModeTest {
		return fmt.Errorf("imagebuild: mode %q is not one of discovery, test", o.Mode)
	}
	if o.OutDir == "" {
		return errors.New("imagebuild: OutDir is required")
	}
	if o.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("imagebuild: no CacheDir and no user cache dir: %w", err)
		}
		o.CacheDir = filepath.Join(d, "ironcast", "imagebuild")
	}
	if o.Name == "" {
		o.Name = "ironcast-test-" + o.Arch
	}
	if strings.ContainsAny(o.Name, "/ \n") {
		return fmt.Errorf("imagebuild: image name %q must not contain slashes or spaces", o.Name)
	}
	if o.Modules == nil {
		o.Modules = DefaultModules
	}
	if o.SourceDateEpoch == 0 {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return fmt.Errorf("imagebuild: SOURCE_DATE_EPOCH=%q is not a non-negative integer", s)
			}
			o.SourceDateEpoch = v
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// inputs is everything the image is assembled from, read from the
// unpacked packages.
type inputs struct {
	arch, release string
	kernel        []byte
	busybox       []byte
	applets       []string
	modules       []Module
	missing       []string
	packages      []Package
}

func loadInputs(opts Options, kdir, bdir string) (*inputs, error) {
	kt, err := openKernelTree(kdir)
	if err != nil {
		return nil, err
	}
	vmlinuz, err := os.ReadFile(filepath.Join(kdir, "boot", "vmlinuz-"+kt.release))
	if err != nil {
		return nil, fmt.Errorf("read kernel: %w", err)
	}
	kernel, err := kernelImage(opts.Arch, vmlinuz)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kt.release, err)
	}
	bb, err := os.ReadFile(filepath.Join(bdir, "bin", "busybox"))
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	applets, err := busyboxApplets(bb)
	if err != nil {
		return nil, err
	}
	mods, missing, err := kt.resolveModules(opts.Modules)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		opts.Logger.Warn("kernel lacks wanted modules", "release", kt.release, "modules", missing)
	}
	return &inputs{arch: opts.Arch, release: kt.release, kernel: kernel, busybox: bb, applets: applets, modules: mods, missing: missing}, nil
}

// imageMode is the default ironcast.mode of each image.
func (m Mode) imageMode() string {
	if m == ModeTest {
		return "run"
	}
	return "discover"
}

// assemble lays out the initramfs:
//
//	/init                         the boot script (init/init)
//	/bin/busybox, /bin/<applet>   busybox-static and a symlink per applet
//	/sbin, /usr/bin, /usr/sbin    symlinks to /bin
//	/dev/console                  character device 5:1, for init's stdio
//	/etc/ironcast/                the other scripts, image facts, module list
//	/lib/modules/<release>/...    the modules, loaded in /etc/ironcast/modules order
func assemble(mode Mode, in *inputs) (*Tree, error) {
	t := NewTree()
	t.File("bin/busybox", in.busybox, 0o755)
	for _, a := range in.applets {
		if a != "busybox" {
			t.Symlink("bin/"+a, "busybox")
		}
	}
	t.Symlink("sbin", "bin")
	t.Symlink("usr/bin", "../bin")
	t.Symlink("usr/sbin", "../bin")
	t.Dir("dev", 0o755)
	t.CharDev("dev/console", 0o600, 5, 1)
	t.CharDev("dev/null", 0o666, 1, 3)
	for _, d := range []string{"proc", "sys", "run", "mnt", "root"} {
		t.Dir(d, 0o755)
	}
	t.Dir("tmp", 0o1777)
	t.File("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	t.File("etc/group", []byte("root:x:0:\n"), 0o644)

	err := fs.WalkDir(initFiles, "init", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := initFiles.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "init/")
		switch {
		case rel == "init":
			t.File("init", b, 0o755)
		case strings.HasSuffix(rel, ".script"):
			t.File("etc/ironcast/"+rel, b, 0o755)
		default:
			t.File("etc/ironcast/"+rel, b, 0o644)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded init files: %w", err)
	}
	if !t.Has("init") {
		return nil, errors.New("embedded init files have no init/init")
	}

	var modList strings.Builder
	for _, m := range in.modules {
		t.File(m.Path, m.data, 0o644)
		fmt.Fprintf(&modList, "%s /%s\n", m.Name, m.Path)
	}
	t.File("etc/ironcast/modules", []byte(modList.String()), 0o644)

	var facts strings.Builder
	fmt.Fprintf(&facts, "IMAGE_MODE=%s\nIMAGE_ARCH=%s\nKERNEL_RELEASE=%s\n", mode.imageMode(), in.arch, in.release)
	for _, p := range in.packages {
		fmt.Fprintf(&facts, "# %s %s %s\n", p.Name, p.Version, p.Architecture)
	}
	t.File("etc/ironcast/image", []byte(facts.String()), 0o644)
	return t, nil
}

// write assembles the image and writes its files, SHA256SUMS and the
// manifest. Each file is written to a temporary name and renamed, so a
// reader never sees half a kernel.
func write(opts Options, in *inputs) (Result, error) {
	tree, err := assemble(opts.Mode, in)
	if err != nil {
		return Result{}, err
	}
	initrd, err := tree.Initramfs(opts.SourceDateEpoch)
	if err != nil {
		return Result{}, err
	}
	res := Result{Manifest: Manifest{
		Mode: opts.Mode, Arch: opts.Arch, KernelRelease: in.release,
		Packages: in.packages, MissingModules: in.missing,
		SourceDateEpoch: opts.SourceDateEpoch, Files: map[string]string{},
	}}
	for _, m := range in.modules {
		res.Modules = append(res.Modules, m.Name)
	}
	files := map[string][]byte{}
	var sumsName, manifestName string
	switch opts.Mode {
	case ModeDiscovery:
		res.Dir = filepath.Join(opts.OutDir, "discovery", opts.Arch)
		files["vmlinuz"], files["initrd.img"] = in.kernel, initrd
		res.Kernel, res.Initrd = filepath.Join(res.Dir, "vmlinuz"), filepath.Join(res.Dir, "initrd.img")
		sumsName, manifestName = "SHA256SUMS", "manifest.json"
	case ModeTest:
		res.Dir = filepath.Join(opts.OutDir, "linuxkit")
		n := opts.Name
		files[n+"-kernel"], files[n+"-initrd.img"] = in.kernel, initrd
		files[n+"-cmdline"] = []byte(strings.TrimSpace(testCmdline(opts.Arch)+" "+opts.Cmdline) + "\n")
		res.Kernel = filepath.Join(res.Dir, n+"-kernel")
		res.Initrd = filepath.Join(res.Dir, n+"-initrd.img")
		res.Cmdline = filepath.Join(res.Dir, n+"-cmdline")
		sumsName, manifestName = n+"-SHA256SUMS", n+"-manifest.json"
	}
	if err := os.MkdirAll(res.Dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create %s: %w", res.Dir, err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var sums strings.Builder
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		res.Files[n] = hex.EncodeToString(sum[:])
		fmt.Fprintf(&sums, "%s  %s\n", res.Files[n], n)
		if err := writeFileAtomic(filepath.Join(res.Dir, n), files[n]); err != nil {
			return Result{}, err
		}
	}
	if err := writeFileAtomic(filepath.Join(res.Dir, sumsName), []byte(sums.String())); err != nil {
		return Result{}, err
	}
	mj, err := json.MarshalIndent(res.Manifest, "", "  ")
	if err != nil {
		return Result{}, err
	}
	if err := writeFileAtomic(filepath.Join(res.Dir, manifestName), append(mj, '\n')); err != nil {
		return Result{}, err
	}
	return res, nil
}

// testCmdline is the <name>-cmdline of the test image: what LinuxKit puts
// there, the console. The linuxkit bootenv adds ironcast.url and the rest.
func testCmdline(arch string) string {
	if arch == "arm64" {
		return "console=ttyAMA0"
	}
	return "console=ttyS0"
}

func writeFileAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+path.Base(p)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
