package bootfiles

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

const isoName = "ubuntu-24.04.1-live-server-amd64.iso"

// ubuntuLike is an image shaped like the Ubuntu live server ISO: casper
// kernel and initrd, a .disk directory, a deeper tree, and a symlink.
func ubuntuLike(seed uint64) isoSpec {
	return isoSpec{
		files: map[string]string{
			"casper/vmlinuz": payload(seed, 3<<20+17),
			"casper/initrd":  payload(seed+1, 1<<20+5),
			".disk/info":     "Ubuntu-Server 24.04.1 LTS \"Noble Numbat\"",
			"boot/grub/x86_64-efi/a-long-module-name-over-31-characters.mod": payload(seed+2, 100),
			"pool/main/l/linux/linux-image_6.8.0+1~a_amd64.deb":              payload(seed+3, 4096),
			"empty": "",
		},
		symlinks: map[string]string{"ubuntu": "."},
	}
}

func TestPutISOExtracts(t *testing.T) {
	spec := ubuntuLike(1)
	isoPath := buildISO(t, spec)
	root := t.TempDir()
	s := newStore(t, root)
	want := Expect{Sha256: fileSum(t, isoPath), Dirs: []string{"ubuntu-24.04-install/amd64", "copy/amd64"}}

	res, err := s.PutISO(context.Background(), isoName, openISO(t, isoPath), want)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(isoPath)
	if res.Path != "isos/"+isoName || res.Size != fi.Size() || res.Sha256 != want.Sha256 {
		t.Errorf("result %+v, want isos/%s, %d bytes, sha256 %s", res, isoName, fi.Size(), want.Sha256)
	}
	if got := fileSum(t, filepath.Join(root, "isos", isoName)); got != want.Sha256 {
		t.Errorf("stored ISO has sha256 %s, want %s", got, want.Sha256)
	}
	for _, d := range want.Dirs {
		if diff := cmp.Diff(short(tree(t, filepath.Join(root, d))), short(spec.files)); diff != "" {
			t.Errorf("tree %s (-got +want):\n%s", d, diff)
		}
	}
	if len(res.Extracted) != 2 || res.Extracted[0].Files != len(spec.files) {
		t.Errorf("extracted %+v, want 2 trees of %d files", res.Extracted, len(spec.files))
	}
	if got := res.Extracted[0].Skipped; len(got) != 1 || !strings.HasPrefix(got[0], "ubuntu: symlink") {
		t.Errorf("skipped %q, want the symlink", got)
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Errorf("temporary entries left: %q", l)
	}
}

func TestPutISOPlainNames(t *testing.T) {
	// ISO 9660 level 1 names: upper case, "_" for "-", and ";1" versions.
	spec := isoSpec{files: map[string]string{"casper/vmlinuz": "kernel", "boot/grub-x.cfg": "cfg"}, plain: true}
	isoPath := buildISO(t, spec)
	root := t.TempDir()
	s := newStore(t, root)
	if _, err := s.PutISO(context.Background(), "plain.iso", openISO(t, isoPath), Expect{Dirs: []string{"plain/amd64"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"casper/vmlinuz": "kernel", "boot/grub_x.cfg": "cfg"}
	if diff := cmp.Diff(tree(t, filepath.Join(root, "plain/amd64")), want); diff != "" {
		t.Errorf("tree without Rock Ridge (-got +want):\n%s", diff)
	}
}

func TestPutISOJolietNames(t *testing.T) {
	files := map[string]string{
		"Casper/VmLinuz-A-Long-Name-Over-31-Characters.efi": "kernel",
		"EFI/BOOT/BOOTx64.EFI":                              "loader",
		"boot/grub-x.cfg":                                   "cfg",
		"README.diskdefines":                                "readme",
	}
	isoPath := buildISO(t, isoSpec{files: files, joliet: true})
	root := t.TempDir()
	s := newStore(t, root)
	res, err := s.PutISO(context.Background(), "joliet.iso", openISO(t, isoPath), Expect{Dirs: []string{"j/amd64", "j/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"j/amd64", "j/arm64"} {
		if diff := cmp.Diff(tree(t, filepath.Join(root, d)), files); diff != "" {
			t.Errorf("tree %s from Joliet names (-got +want):\n%s", d, diff)
		}
	}
	if len(res.Extracted) != 2 || res.Extracted[1].Files != len(files) {
		t.Errorf("extracted %+v", res.Extracted)
	}
}

// seedOld stores a first ISO and its tree, returning the tree's files.
func seedOld(t *testing.T, s *Store, root string) map[string]string {
	t.Helper()
	spec := isoSpec{files: map[string]string{"casper/vmlinuz": "old kernel", "casper/old-only": "old"}}
	isoPath := buildISO(t, spec)
	if _, err := s.PutISO(context.Background(), isoName, openISO(t, isoPath), Expect{Dirs: []string{"ubuntu-24.04-install/amd64"}}); err != nil {
		t.Fatal(err)
	}
	return spec.files
}

func TestPutISOReplacesTree(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	seedOld(t, s, root)
	spec := ubuntuLike(7)
	isoPath := buildISO(t, spec)
	if _, err := s.PutISO(context.Background(), isoName, openISO(t, isoPath), Expect{Dirs: []string{"ubuntu-24.04-install/amd64"}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(short(tree(t, filepath.Join(root, "ubuntu-24.04-install/amd64"))), short(spec.files)); diff != "" {
		t.Errorf("replaced tree (-got +want):\n%s", diff)
	}
	if got, want := fileSum(t, filepath.Join(root, "isos", isoName)), fileSum(t, isoPath); got != want {
		t.Errorf("ISO sha256 %s, want the new %s", got, want)
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Errorf("temporary entries left: %q", l)
	}
}

// failingReader returns its data, then err.
func failingReader(data io.Reader, n int64, err error) io.Reader {
	return io.MultiReader(io.LimitReader(data, n), iotest.ErrReader(err))
}

// TestPutISORefusals checks that every failed upload leaves the old ISO
// and tree exactly as they were and no temporary entry.
func TestPutISORefusals(t *testing.T) {
	newSpec := ubuntuLike(3)
	newISO := buildISO(t, newSpec)
	newSum := fileSum(t, newISO)
	wrongSum := strings.Repeat("ab", 32)
	fi, _ := os.Stat(newISO)
	errBroken := errors.New("connection reset by peer")

	tests := []struct {
		name string
		iso  string
		// upload returns the reader; cancel is called by the hook
		reader   func(f *os.File) io.Reader
		want     Expect
		hook     bool // cancel the context after the first extracted file
		field    string
		contains []string
		is       error
	}{
		{
			name: "wrong checksum", iso: isoName,
			reader:   func(f *os.File) io.Reader { return f },
			want:     Expect{Sha256: wrongSum, Dirs: []string{"ubuntu-24.04-install/amd64"}},
			field:    "sha256",
			contains: []string{newSum, wrongSum},
		},
		{
			name: "reader fails half way", iso: isoName,
			reader: func(f *os.File) io.Reader { return failingReader(f, fi.Size()/2, errBroken) },
			want:   Expect{Sha256: newSum, Dirs: []string{"ubuntu-24.04-install/amd64"}},
			is:     errBroken,
		},
		{
			name: "context cancelled during extraction", iso: isoName,
			reader: func(f *os.File) io.Reader { return f },
			want:   Expect{Sha256: newSum, Dirs: []string{"ubuntu-24.04-install/amd64"}},
			hook:   true,
			is:     context.Canceled,
		},
		{
			name: "not an ISO", iso: isoName,
			reader: func(*os.File) io.Reader { return strings.NewReader(payload(9, 40000)) },
			want:   Expect{Dirs: []string{"ubuntu-24.04-install/amd64"}},
			field:  "iso",
		},
		{
			name: "truncated ISO", iso: isoName,
			reader: func(f *os.File) io.Reader { return io.LimitReader(f, fi.Size()/2) },
			want:   Expect{Dirs: []string{"ubuntu-24.04-install/amd64"}},
		},
		{
			name: "bad expected sum", iso: isoName,
			reader: func(f *os.File) io.Reader { return f },
			want:   Expect{Sha256: "123"},
			field:  "sha256",
		},
		{name: "name with slash", iso: "../x.iso", reader: func(f *os.File) io.Reader { return f }, field: "name"},
		{name: "dot name", iso: ".hidden.iso", reader: func(f *os.File) io.Reader { return f }, field: "name"},
		{name: "dot dot", iso: "..", reader: func(f *os.File) io.Reader { return f }, field: "name"},
		{
			name: "extract into isos", iso: isoName,
			reader: func(f *os.File) io.Reader { return f },
			want:   Expect{Dirs: []string{"isos/x"}},
			field:  "path",
		},
		{
			name: "extract outside", iso: isoName,
			reader: func(f *os.File) io.Reader { return f },
			want:   Expect{Dirs: []string{"../../etc"}},
			field:  "path",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := newStore(t, root)
			oldFiles := seedOld(t, s, root)
			oldSum := fileSum(t, filepath.Join(root, "isos", isoName))

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			files := 0
			if tt.hook {
				s.afterFile = func(string) {
					if files++; files == 1 {
						cancel()
					}
				}
			}
			res, err := s.PutISO(ctx, tt.iso, tt.reader(openISO(t, newISO)), tt.want)
			if err == nil {
				t.Fatalf("PutISO succeeded: %+v", res)
			}
			if tt.field != "" {
				ves := model.ValidationErrors(err)
				if len(ves) != 1 || ves[0].Field != tt.field {
					t.Errorf("err = %v, want a validation error for %q", err, tt.field)
				}
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("err = %q, want it to name %s", err, c)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if tt.hook && files != 1 {
				t.Errorf("%d files extracted after the cancel, want the extraction to stop", files-1)
			}
			if diff := cmp.Diff(tree(t, filepath.Join(root, "ubuntu-24.04-install/amd64")), oldFiles); diff != "" {
				t.Errorf("old tree changed (-got +want):\n%s", diff)
			}
			if got := fileSum(t, filepath.Join(root, "isos", isoName)); got != oldSum {
				t.Errorf("old ISO changed: sha256 %s, want %s", got, oldSum)
			}
			if l := leftovers(t, root); len(l) != 0 {
				t.Errorf("temporary entries left: %q", l)
			}
			if got := tree(t, root); len(got) != len(oldFiles)+1 {
				t.Errorf("root holds %d files, want the %d old ones: %v", len(got), len(oldFiles)+1, keys(got))
			}
		})
	}
}

// TestPutISOInterruptedFirstUpload: with nothing there before, a failed
// upload leaves no isos/<name> and no tree at all.
func TestPutISOInterruptedFirstUpload(t *testing.T) {
	isoPath := buildISO(t, ubuntuLike(4))
	fi, _ := os.Stat(isoPath)
	for _, tt := range []struct {
		name string
		hook bool
	}{{"reader fails", false}, {"cancel during extraction", true}} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := newStore(t, root)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var r io.Reader = openISO(t, isoPath)
			if tt.hook {
				s.afterFile = func(string) { cancel() }
			} else {
				r = failingReader(r, fi.Size()*3/4, io.ErrUnexpectedEOF)
			}
			if _, err := s.PutISO(ctx, isoName, r, Expect{Dirs: []string{"ubuntu-24.04-install/amd64"}}); err == nil {
				t.Fatal("PutISO succeeded")
			}
			for _, p := range []string{"isos/" + isoName, "ubuntu-24.04-install/amd64"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a failed upload (err %v)", p, err)
				}
			}
			if l := leftovers(t, root); len(l) != 0 {
				t.Errorf("temporary entries left: %q", l)
			}
		})
	}
}

func TestExpectFor(t *testing.T) {
	sumA, sumB := strings.Repeat("a", 64), strings.Repeat("B", 64)
	env := func(name string, arches map[string]model.ArchInfo) *model.BootEnv {
		return &model.BootEnv{Name: name, Arches: arches}
	}
	tests := []struct {
		name    string
		envs    []*model.BootEnv
		want    Expect
		wantErr bool
	}{
		{name: "none", envs: []*model.BootEnv{env("x", map[string]model.ArchInfo{"amd64": {IsoFile: "other.iso"}})}},
		{
			name: "one arch with sum",
			envs: []*model.BootEnv{env("u", map[string]model.ArchInfo{"amd64": {IsoFile: "a.iso", IsoSha256: sumA}, "arm64": {IsoFile: "b.iso"}})},
			want: Expect{Sha256: sumA, Dirs: []string{"u/amd64"}},
		},
		{
			name: "two bootenvs, one sum, case folded",
			envs: []*model.BootEnv{
				env("u", map[string]model.ArchInfo{"amd64": {IsoFile: "a.iso"}}),
				env("v", map[string]model.ArchInfo{"amd64": {IsoFile: "a.iso", IsoSha256: strings.ToUpper(sumA)}}),
				nil,
			},
			want: Expect{Sha256: sumA, Dirs: []string{"u/amd64", "v/amd64"}},
		},
		{
			name: "disagreeing sums",
			envs: []*model.BootEnv{
				env("u", map[string]model.ArchInfo{"amd64": {IsoFile: "a.iso", IsoSha256: sumA}}),
				env("v", map[string]model.ArchInfo{"amd64": {IsoFile: "a.iso", IsoSha256: sumB}}),
			},
			want:    Expect{Sha256: sumA, Dirs: []string{"u/amd64", "v/amd64"}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpectFor("a.iso", tt.envs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
