package imagebuild

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseControl(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"apt-cache show", "Package: linux-image-arm64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-arm64 (= 6.1.192-2)\nDescription: Linux for 64-bit ARMv8 machines (meta-package)\n This package depends on the latest Linux kernel.\n\nPackage: second\n",
			map[string]string{"Package": "linux-image-arm64", "Version": "6.1.192-2", "Depends": "linux-image-6.1.0-56-arm64 (= 6.1.192-2)",
				"Description": "Linux for 64-bit ARMv8 machines (meta-package)\nThis package depends on the latest Linux kernel."}, false},
		{"leading blank lines", "\n\nPackage: a\nSHA256: 00ff\n", map[string]string{"Package": "a", "SHA256": "00ff"}, false},
		{"continuation first", " oops\nPackage: a\n", nil, true},
		{"no colon", "Package a\n", nil, true},
		{"empty", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseControl([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add("Package: a\nVersion: 1\n")
	f.Add("Package: linux-image-arm64\nDescription: x\n more\n\nPackage: b\n")
	f.Add(" x\n")
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := parseControl([]byte(s))
		if err == nil && len(fields) == 0 {
			t.Fatal("no error and no fields")
		}
		for k := range fields {
			if k == "" || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("bad field name %q", k)
			}
		}
	})
}

func TestParseDepends(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"kernel metapackage", "linux-image-6.1.0-56-arm64 (= 6.1.192-2)", []string{"linux-image-6.1.0-56-arm64"}},
		{"alternatives and arch qualifiers", "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any, foo [amd64]", []string{"libc6", "debconf", "debconf-2.0", "perl", "foo"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(parseDepends(tt.in), tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func FuzzParseDepends(f *testing.F) {
	f.Add("linux-image-6.1.0-56-arm64 (= 6.1.192-2)")
	f.Add("a | b, c:any [amd64]")
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range parseDepends(s) {
			if n == "" || strings.ContainsAny(n, " ,|(:[") {
				t.Fatalf("bad package name %q from %q", n, s)
			}
		}
	})
}

func TestParseModinfoDepends(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"virtio_net", "license=GPL\x00depends=net_failover,virtio-ring,virtio\x00retpoline=Y\x00", []string{"net_failover", "virtio_ring", "virtio"}},
		{"no dependencies", "depends=\x00intree=Y\x00", nil},
		{"no depends entry", "license=GPL\x00", nil},
		{"not at start of entry", "xdepends=a\x00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(parseModinfoDepends([]byte(tt.in)), tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func FuzzParseModinfoDepends(f *testing.F) {
	f.Add([]byte("depends=a,b-c\x00"))
	f.Add([]byte("license=GPL\x00depends=\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range parseModinfoDepends(b) {
			if d == "" || strings.ContainsAny(d, ",-\x00") {
				t.Fatalf("bad module name %q", d)
			}
		}
	})
}

func TestModuleDependsELF(t *testing.T) {
	got, err := moduleDepends(fakeModule("virtio_net", "net_failover", "virtio"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, []string{"net_failover", "virtio"}); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	if _, err := moduleDepends([]byte("not an ELF file")); err == nil {
		t.Error("garbage accepted as a module")
	}
}

func TestBusyboxApplets(t *testing.T) {
	full := fixtureApplets()
	tests := []struct {
		name    string
		bin     []byte
		want    int
		wantErr string
	}{
		{"table found", fakeBusybox(full...), len(full), ""},
		{"no table", []byte("\x7fELF just code"), 0, "applet table not found"},
		{"missing applets", fakeBusybox("[", "[[", "ash", "cat"), 0, "busybox lacks applets"},
		{"unsorted", fakeBusybox(append([]string{"[", "[[", "zzz"}, full[2:]...)...), 0, "not sorted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := busyboxApplets(tt.bin)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("got %d applets, want %d: %v", len(got), tt.want, got)
			}
		})
	}
}

func FuzzBusyboxApplets(f *testing.F) {
	f.Add(fakeBusybox(fixtureApplets()...))
	f.Add([]byte("\x00[\x00[[\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := busyboxApplets(b)
		if err != nil {
			return
		}
		for _, n := range names {
			if !validApplet(n) {
				t.Fatalf("invalid applet %q", n)
			}
		}
	})
}

func TestKernelImage(t *testing.T) {
	arm := make([]byte, 0x100)
	copy(arm, "MZ")
	copy(arm[0x38:], "ARM\x64")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(arm)
	zw.Close()
	noStub := bytes.Clone(arm)
	copy(noStub, "\x00\x00")
	tests := []struct {
		name    string
		arch    string
		in      []byte
		want    []byte
		wantErr string
	}{
		{"amd64 bzImage as is", "amd64", fakeBzImage(), fakeBzImage(), ""},
		{"amd64 not a bzImage", "amd64", arm, nil, "not an x86 bzImage"},
		{"arm64 Image as is", "arm64", arm, arm, ""},
		{"arm64 gzip inflated", "arm64", gz.Bytes(), arm, ""},
		{"arm64 without EFI stub", "arm64", noStub, nil, "no EFI stub"},
		{"arm64 given x86", "arm64", fakeBzImage(), nil, "not an arm64 Image"},
		{"unknown arch", "riscv64", arm, nil, "unsupported architecture"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kernelImage(tt.arch, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("kernel changed unexpectedly")
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	o := Options{OutDir: "out", CacheDir: "cache"}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.Arch != "amd64" || o.Mode != ModeDiscovery || o.SourceDateEpoch != 1700000000 || o.Name != "ironcast-test-amd64" || o.Logger == nil {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range []Options{
		{OutDir: "out", Arch: "riscv64"},
		{OutDir: "out", Mode: "bogus"},
		{Arch: "amd64"},
		{OutDir: "out", Name: "a/b"},
	} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
