package imagebuild

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// fakeBusybox is a "binary" with a busybox applet table in it.
func fakeBusybox(applets ...string) []byte {
	return []byte("\x7fELF...code...\x00" + strings.Join(applets, "\x00") + "\x00\x00more code")
}

func fixtureApplets() []string {
	return append([]string{"[", "[["}, requiredApplets...)
}

// fakeModule is a minimal ELF relocatable file with a .modinfo section,
// as much of a kernel module as moduleDepends reads.
func fakeModule(name string, depends ...string) []byte {
	modinfo := []byte("license=GPL\x00depends=" + strings.Join(depends, ",") + "\x00name=" + name + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const hdr = 64
	modOff := uint64(hdr)
	strOff := modOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: hdr, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstr)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	for _, s := range sections {
		binary.Write(&b, binary.LittleEndian, s)
	}
	return b.Bytes()
}

// fixtureKernelTree writes an unpacked "linux-image" package: a vmlinuz,
// modules.builtin and modules with dependencies.
func fixtureKernelTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	rel := "6.1.0-99-amd64"
	files := map[string][]byte{
		"boot/vmlinuz-" + rel:                                           fakeBzImage(),
		"lib/modules/" + rel + "/modules.builtin":                       []byte("kernel/net/packet/af_packet.ko\n"),
		"lib/modules/" + rel + "/kernel/drivers/virtio/virtio_ring.ko":  fakeModule("virtio_ring"),
		"lib/modules/" + rel + "/kernel/drivers/virtio/virtio.ko":       fakeModule("virtio", "virtio_ring"),
		"lib/modules/" + rel + "/kernel/net/core/failover.ko":           fakeModule("failover"),
		"lib/modules/" + rel + "/kernel/drivers/net/net_failover.ko":    fakeModule("net_failover", "failover"),
		"lib/modules/" + rel + "/kernel/drivers/net/virtio_net.ko":      fakeModule("virtio_net", "net_failover", "virtio", "virtio_ring"),
		"lib/modules/" + rel + "/kernel/drivers/virtio/virtio_pci.ko":   fakeModule("virtio_pci", "virtio-ring", "virtio"),
		"lib/modules/" + rel + "/kernel/drivers/net/ethernet/e1000.ko":  fakeModule("e1000"),
		"lib/modules/" + rel + "/kernel/drivers/block/broken_dep.ko":    fakeModule("broken_dep", "not_there"),
		"lib/modules/" + rel + "/kernel/drivers/block/unused_module.ko": fakeModule("unused_module"),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func fakeBzImage() []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	return b
}

func TestResolveModules(t *testing.T) {
	kt, err := openKernelTree(fixtureKernelTree(t))
	if err != nil {
		t.Fatal(err)
	}
	if kt.release != "6.1.0-99-amd64" {
		t.Errorf("release = %q", kt.release)
	}
	tests := []struct {
		name        string
		wanted      []string
		wantMods    []string
		wantMissing []string
		wantErr     string
	}{
		{"deps first, each once", []string{"virtio_pci", "virtio-net", "e1000"},
			[]string{"virtio_ring", "virtio", "virtio_pci", "failover", "net_failover", "virtio_net", "e1000"}, nil, ""},
		{"builtin skipped, absent reported", []string{"af_packet", "nvme", "e1000"},
			[]string{"e1000"}, []string{"nvme"}, ""},
		{"missing dependency is an error", []string{"broken_dep"}, nil, nil, "module not_there (needed by broken_dep)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mods, missing, err := kt.resolveModules(tt.wanted)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range mods {
				names = append(names, m.Name)
				if !strings.HasPrefix(m.Path, "lib/modules/6.1.0-99-amd64/kernel/") || len(m.data) == 0 {
					t.Errorf("module %s: path %q, %d bytes", m.Name, m.Path, len(m.data))
				}
			}
			if diff := cmp.Diff(names, tt.wantMods); diff != "" {
				t.Errorf("modules (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(missing, tt.wantMissing); diff != "" {
				t.Errorf("missing (-got +want):\n%s", diff)
			}
		})
	}
}

// fixtureInputs is what loadInputs reads from the fixture packages.
func fixtureInputs(t *testing.T) *inputs {
	t.Helper()
	root := fixtureKernelTree(t)
	bb := fakeBusybox(fixtureApplets()...)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{Arch: "amd64", OutDir: t.TempDir(), Modules: []string{"virtio_net", "e1000", "nvme"}}
	if err := opts.setDefaults(); err != nil {
		t.Fatal(err)
	}
	in, err := loadInputs(opts, root, dir)
	if err != nil {
		t.Fatal(err)
	}
	in.packages = []Package{{Name: "linux-image-6.1.0-99-amd64", Version: "6.1.999-1", Architecture: "amd64"}}
	return in
}

// listing describes an archive one entry per line, for the golden file.
func listing(t *testing.T, initrd []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(initrd))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, mtime %v; want neither", zr.Name, zr.ModTime)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		extra := ""
		switch r.Mode & cpio.S_IFMT {
		case cpio.S_IFLNK:
			target, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			extra = " -> " + string(target)
		case cpio.S_IFCHR:
			extra = fmt.Sprintf(" char %d:%d", r.Rmajor, r.Rminor)
		case cpio.S_IFREG:
			extra = fmt.Sprintf(" %d bytes", r.FileSize)
		}
		fmt.Fprintf(&b, "%06o %d:%d mtime=%d %s%s\n", r.Mode, r.UID, r.GID, r.MTime, r.Name, extra)
	}
	return b.String()
}

func TestInitramfsReproducible(t *testing.T) {
	in := fixtureInputs(t)
	build := func(mtime int64) []byte {
		tree, err := assemble(ModeDiscovery, in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tree.Initramfs(mtime)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := build(1700000000), build(1700000000)
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatalf("two builds of the same tree differ")
	}
	if bytes.Equal(a, build(1700000001)) {
		t.Errorf("SOURCE_DATE_EPOCH has no effect on the archive")
	}
	got := listing(t, a)
	golden := filepath.Join("testdata", "initramfs.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(got, string(want)); diff != "" {
		t.Errorf("initramfs listing (-got +want):\n%s", diff)
	}
}

func TestWriteReproducible(t *testing.T) {
	in := fixtureInputs(t)
	var sums []string
	for i := 0; i < 2; i++ {
		opts := Options{Arch: "amd64", OutDir: t.TempDir(), Mode: ModeTest}
		if err := opts.setDefaults(); err != nil {
			t.Fatal(err)
		}
		res, err := write(opts, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{res.Kernel, res.Initrd, res.Cmdline} {
			if _, err := os.Stat(f); err != nil {
				t.Error(err)
			}
		}
		b, err := os.ReadFile(filepath.Join(res.Dir, "ironcast-test-amd64-SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := os.ReadFile(filepath.Join(res.Dir, "ironcast-test-amd64-manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, string(b)+string(m))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ:\n%s\n%s", sums[0], sums[1])
	}
	if !strings.Contains(sums[0], "  ironcast-test-amd64-initrd.img\n") {
		t.Errorf("SHA256SUMS lacks the initrd:\n%s", sums[0])
	}
}

func TestTreeRejectsFileAsParent(t *testing.T) {
	tree := NewTree()
	tree.File("etc", []byte("x"), 0o644)
	tree.File("etc/passwd", []byte("root"), 0o644)
	if err := tree.WriteCPIO(io.Discard, 0); err == nil {
		t.Fatal("a file used as a directory was accepted")
	}
}
