package imagebuild

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// kernelTree is an unpacked linux-image package: /boot/vmlinuz-RELEASE and
// /lib/modules/RELEASE/.
type kernelTree struct {
	root    string
	release string            // e.g. 6.1.0-56-amd64
	modules map[string]string // module name (underscores) → path relative to root
	builtin map[string]bool   // modules compiled into the kernel
}

// openKernelTree indexes the modules of the unpacked package under root.
// Debian's package ships modules.builtin but no modules.dep (depmod writes
// that at install time), so dependencies are read from each module's
// .modinfo section instead (see moduleDepends).
func openKernelTree(root string) (*kernelTree, error) {
	boots, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil || len(boots) != 1 {
		return nil, fmt.Errorf("find kernel in %s: want one boot/vmlinuz-*, found %d", root, len(boots))
	}
	k := &kernelTree{
		root:    root,
		release: strings.TrimPrefix(filepath.Base(boots[0]), "vmlinuz-"),
		modules: map[string]string{},
		builtin: map[string]bool{},
	}
	modDir := filepath.Join(root, "lib", "modules", k.release)
	if _, err := os.Stat(modDir); err != nil {
		// usrmerge layouts (trixie and later) ship /usr/lib/modules.
		modDir = filepath.Join(root, "usr", "lib", "modules", k.release)
	}
	err = filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		name, ok := moduleName(d.Name())
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		k.modules[name] = rel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules in %s: %w", modDir, err)
	}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := moduleName(filepath.Base(strings.TrimSpace(line))); ok {
				k.builtin[name] = true
			}
		}
	}
	return k, nil
}

// moduleName turns "virtio-net.ko" (or .ko.xz, .ko.zst) into "virtio_net".
func moduleName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(file, ext) {
			return normModule(strings.TrimSuffix(file, ext)), true
		}
	}
	return "", false
}

func normModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Module is one kernel module put into the initramfs.
type Module struct {
	Name string // e.g. virtio_net
	Path string // inside the initramfs, e.g. lib/modules/6.1.0-56-amd64/kernel/drivers/net/virtio_net.ko
	data []byte
}

// resolveModules returns the wanted modules and everything they depend on,
// each after its dependencies (the order insmod needs). Wanted modules that
// are built into the kernel are skipped; wanted modules the kernel does not
// have at all are returned in missing (the discovery image carries drivers
// for hardware a given kernel may not support). A missing dependency is an
// error. Compressed modules are refused: Debian 12 ships plain .ko files,
// and busybox insmod loads only those.
func (k *kernelTree) resolveModules(wanted []string) (mods []Module, missing []string, err error) {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " → "))
		case 2:
			return nil
		}
		if k.builtin[name] {
			state[name] = 2
			return nil
		}
		rel, ok := k.modules[name]
		if !ok {
			return fmt.Errorf("module %s (needed by %s) is not in %s: %w", name, strings.Join(chain, " → "), k.release, fs.ErrNotExist)
		}
		if !strings.HasSuffix(rel, ".ko") {
			return fmt.Errorf("module %s is compressed (%s); only plain .ko modules are supported", name, rel)
		}
		state[name] = 1
		data, err := os.ReadFile(filepath.Join(k.root, rel))
		if err != nil {
			return fmt.Errorf("read module %s: %w", name, err)
		}
		deps, err := moduleDepends(data)
		if err != nil {
			return fmt.Errorf("module %s: %w", rel, err)
		}
		sort.Strings(deps)
		next := append(chain[:len(chain):len(chain)], name)
		for _, d := range deps {
			if err := visit(d, next); err != nil {
				return err
			}
		}
		state[name] = 2
		mods = append(mods, Module{Name: name, Path: filepath.ToSlash(initramfsModulePath(rel)), data: data})
		return nil
	}
	for _, w := range wanted {
		w = normModule(w)
		if _, ok := k.modules[w]; !ok && !k.builtin[w] {
			missing = append(missing, w)
			continue
		}
		if err := visit(w, nil); err != nil {
			return nil, nil, err
		}
	}
	return mods, missing, nil
}

// initramfsModulePath maps usr/lib/modules/... to lib/modules/... so the
// image has one layout whatever the package uses.
func initramfsModulePath(rel string) string {
	return strings.TrimPrefix(filepath.ToSlash(rel), "usr/")
}

// moduleDepends returns the "depends=" list of a kernel module's .modinfo
// section: the modules that must be loaded first.
func moduleDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("parse module ELF: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("module has no .modinfo section")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	return parseModinfoDepends(b), nil
}

// parseModinfoDepends reads the NUL-separated key=value strings of a
// .modinfo section and returns the names in its depends= entry, normalised
// to underscores. An empty or absent entry gives no names.
func parseModinfoDepends(modinfo []byte) []string {
	var deps []string
	for _, kv := range bytes.Split(modinfo, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, normModule(d))
			}
		}
	}
	return deps
}

// kernelImage returns the kernel to boot for arch from the package's
// vmlinuz. On amd64 that is the bzImage as shipped. On arm64 GRUB and the
// EFI stub need the uncompressed Image (a PE/COFF file with the arm64
// magic); Debian has shipped it both uncompressed and gzip-compressed, so
// a gzip stream is inflated here.
func kernelImage(arch string, vmlinuz []byte) ([]byte, error) {
	switch arch {
	case "amd64":
		if err := checkBzImage(vmlinuz); err != nil {
			return nil, err
		}
		return vmlinuz, nil
	case "arm64":
		img := vmlinuz
		if len(img) > 2 && img[0] == 0x1f && img[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(img))
			if err != nil {
				return nil, fmt.Errorf("gunzip arm64 kernel: %w", err)
			}
			if img, err = io.ReadAll(zr); err != nil {
				return nil, fmt.Errorf("gunzip arm64 kernel: %w", err)
			}
		}
		if err := checkARM64Image(img); err != nil {
			return nil, err
		}
		return img, nil
	}
	return nil, fmt.Errorf("unsupported architecture %q", arch)
}

// checkBzImage checks the x86 boot protocol header: "HdrS" at 0x202.
func checkBzImage(b []byte) error {
	if len(b) < 0x206 || string(b[0x202:0x206]) != "HdrS" {
		return errors.New("kernel is not an x86 bzImage (no HdrS boot header)")
	}
	return nil
}

// checkARM64Image checks the arm64 Image header (Documentation/arch/arm64/
// booting.rst): magic "ARM\x64" at 0x38, and "MZ" at 0 for the EFI stub
// that GRUB's arm64 linux loader requires.
func checkARM64Image(b []byte) error {
	if len(b) < 0x40 || string(b[0x38:0x3c]) != "ARM\x64" {
		return errors.New("kernel is not an arm64 Image (no ARM\\x64 magic at 0x38)")
	}
	if string(b[0:2]) != "MZ" {
		return errors.New("arm64 kernel has no EFI stub (no MZ header); GRUB cannot boot it")
	}
	return nil
}
