package imagebuild

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"debug/pe"
	"io"
	"os"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// TestARM64Image builds the arm64 discovery image twice from the real
// Debian packages (fetched without touching the host's dpkg
// architectures) and checks that both builds are identical, that the
// kernel is an arm64 EFI PE Image and that the initramfs carries an
// aarch64 busybox and arm64 modules.
func TestARM64Image(t *testing.T) {
	a := realBuild(t, "arm64", ModeDiscovery)
	b := realBuild(t, "arm64", ModeDiscovery)
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		if a.Files[f] == "" || a.Files[f] != b.Files[f] {
			t.Errorf("%s: sha256 %s then %s; want two equal builds", f, a.Files[f], b.Files[f])
		}
	}
	t.Logf("arm64 %s: vmlinuz %s initrd.img %s", a.KernelRelease, a.Files["vmlinuz"], a.Files["initrd.img"])

	kernel, err := os.ReadFile(a.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkARM64Image(kernel); err != nil {
		t.Error(err)
	}
	pf, err := pe.NewFile(bytes.NewReader(kernel))
	if err != nil {
		t.Fatalf("kernel is not a PE file: %v", err)
	}
	if pf.Machine != pe.IMAGE_FILE_MACHINE_ARM64 {
		t.Errorf("kernel PE machine %#x, want arm64 (%#x)", pf.Machine, pe.IMAGE_FILE_MACHINE_ARM64)
	}

	initrd, err := os.ReadFile(a.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(initrd))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	machines := map[string]elf.Machine{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT != cpio.S_IFREG || (r.Name != "bin/busybox" && !bytes.HasSuffix([]byte(r.Name), []byte("virtio_net.ko"))) {
			continue
		}
		f, err := elf.NewFile(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		machines[r.Name] = f.Machine
	}
	if len(machines) != 2 {
		t.Fatalf("found %v in the initramfs; want bin/busybox and virtio_net.ko", machines)
	}
	for name, m := range machines {
		if m != elf.EM_AARCH64 {
			t.Errorf("%s is %v, want EM_AARCH64", name, m)
		}
	}
}
