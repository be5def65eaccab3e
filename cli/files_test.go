package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironcast/ironcast/bootfiles/bootfilestest"
)

// TestISOsAndFilesCLI runs ironcast serve in-process and drives the isos
// and files commands against it: an ISO named by a bootenv uploads from
// disk, is checked and extracted into the server's DATA/boot, and makes
// the bootenv available; a wrong checksum is refused with both sums.
func TestISOsAndFilesCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	cfgDir := isolate(t)
	isoPath := bootfilestest.BuildISO(t, map[string]string{"casper/vmlinuz": "kernel", "casper/initrd": "initrd"})
	img, err := os.ReadFile(isoPath)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(img)
	sum := hex.EncodeToString(h[:])
	dataDir := filepath.Join(t.TempDir(), "data")
	stop := startServe(t, dataDir)
	defer func() { stop() }()
	boot := filepath.Join(dataDir, "boot")

	be := `{"Name":"isotest","Arches":{"amd64":{"IsoFile":"isotest.iso","IsoSha256":"` + sum + `",` +
		`"Kernel":"isotest/amd64/casper/vmlinuz","Initrds":["isotest/amd64/casper/initrd"]}}}`
	step{args: []string{"bootenvs", "create", be}, wantOut: []string{`"Name": "isotest"`}}.check(t)
	step{args: []string{"bootenvs", "show", "isotest"}, wantOut: []string{"isos/isotest.iso is missing"}}.check(t)

	wrongSum := strings.Repeat("0", 64)
	step{name: "wrong checksum", args: []string{"isos", "upload", isoPath, "--name", "isotest.iso", "--sha256", wrongSum},
		wantCode: 1, wantErr: []string{sum, wrongSum}}.check(t)
	if _, err := os.Stat(filepath.Join(boot, "isos", "isotest.iso")); !os.IsNotExist(err) {
		t.Errorf("refused ISO is on disk: %v", err)
	}

	step{args: []string{"isos", "upload", isoPath, "--name", "isotest.iso"},
		wantOut: []string{"Stored isos/isotest.iso: " + itoa(len(img)) + " bytes, sha256 " + sum, "Extracted 2 files (12 bytes) into isotest/amd64"}}.check(t)
	out := step{args: []string{"bootenvs", "show", "isotest", "-o", "json"}}.check(t)
	var shown struct {
		Available bool
		Errors    []string
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || !shown.Available {
		t.Errorf("bootenv after the upload: %+v (%v)", shown, err)
	}
	if b, err := os.ReadFile(filepath.Join(boot, "isotest/amd64/casper/vmlinuz")); err != nil || string(b) != "kernel" {
		t.Errorf("extracted kernel: %q, %v", b, err)
	}
	step{args: []string{"isos", "list", "--sha256"}, wantOut: []string{"isos/isotest.iso", sum}}.check(t)

	local := writeFile(t, cfgDir, "demo-kernel", "linuxkit kernel")
	step{args: []string{"files", "upload", local, "linuxkit/demo-kernel"}, wantOut: []string{"Stored linuxkit/demo-kernel: 15 bytes"}}.check(t)
	step{args: []string{"files", "list", "linuxkit"}, wantOut: []string{"linuxkit/demo-kernel", "15"}}.check(t)
	step{args: []string{"files", "list", "-o", "json"}, wantOut: []string{`"Path": "isotest/amd64/casper/initrd"`}}.check(t)
	step{args: []string{"files", "upload", local, "../escape"}, wantCode: 1, wantErr: []string{`component ".." is a relative reference`}}.check(t)
	step{args: []string{"files", "destroy", "linuxkit/demo-kernel"}, wantOut: []string{"Deleted linuxkit/demo-kernel"}}.check(t)
	step{args: []string{"files", "destroy", "linuxkit/demo-kernel"}, wantCode: 1, wantErr: []string{"not found"}}.check(t)
	step{args: []string{"isos", "destroy", "isotest.iso"}, wantOut: []string{"Deleted isos/isotest.iso"}}.check(t)
	if _, err := os.Stat(filepath.Join(boot, "isos", "isotest.iso")); !os.IsNotExist(err) {
		t.Errorf("destroyed ISO is on disk: %v", err)
	}
	step{args: []string{"isos", "upload", filepath.Join(cfgDir, "missing.iso")}, wantCode: 1, wantErr: []string{"missing.iso"}}.check(t)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
