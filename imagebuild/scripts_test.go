package imagebuild

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/test/testenv"
)

// The init scripts run here under the real busybox-static (the host
// architecture's build, from the same package the image carries), with a
// PATH of busybox applets only, against fixture /sys and /proc trees.

var (
	busyboxOnce sync.Once
	busyboxBin  string // a directory of applet symlinks
	busyboxErr  error
)

func hostBusybox(t *testing.T) string {
	t.Helper()
	testenv.RequireTool(t, "apt-get")
	testenv.RequireTool(t, "dpkg")
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("no busybox-static for %s here", runtime.GOARCH)
	}
	busyboxOnce.Do(func() {
		buildMu.Lock()
		defer buildMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cache := testCacheDir()
		repo := &aptRepo{arch: runtime.GOARCH, dir: filepath.Join(cache, "apt", runtime.GOARCH),
			debDir: filepath.Join(cache, "debs", runtime.GOARCH), maxAge: 24 * time.Hour, log: slog.New(slog.DiscardHandler)}
		unlock, err := repo.lock()
		if err != nil {
			busyboxErr = err
			return
		}
		defer unlock()
		if busyboxErr = repo.update(ctx); busyboxErr != nil {
			return
		}
		_, deb, err := repo.fetch(ctx, "busybox-static")
		if err != nil {
			busyboxErr = err
			return
		}
		dir, err := unpack(ctx, deb, cache)
		if err != nil {
			busyboxErr = err
			return
		}
		bb, err := os.ReadFile(filepath.Join(dir, "bin", "busybox"))
		if err != nil {
			busyboxErr = err
			return
		}
		applets, err := busyboxApplets(bb)
		if err != nil {
			busyboxErr = err
			return
		}
		// One directory of applet symlinks per busybox version, kept in
		// the shared cache and made complete before it gets its name.
		bin := filepath.Join(cache, "busybox-applets", filepath.Base(dir))
		if _, err := os.Stat(bin); err != nil {
			tmp, err := os.MkdirTemp(filepath.Dir(dir), ".applets-")
			if err != nil {
				busyboxErr = err
				return
			}
			defer os.RemoveAll(tmp)
			for _, a := range applets {
				if err := os.Symlink(filepath.Join(dir, "bin", "busybox"), filepath.Join(tmp, a)); err != nil {
					busyboxErr = err
					return
				}
			}
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
				busyboxErr = err
				return
			}
			if err := os.Rename(tmp, bin); err != nil {
				if _, serr := os.Stat(bin); serr != nil {
					busyboxErr = err
					return
				}
			}
		}
		busyboxBin = bin
	})
	if busyboxErr != nil {
		t.Fatalf("busybox for script tests: %v", busyboxErr)
	}
	return busyboxBin
}

// runScript runs a busybox sh script that may source the init libraries
// ($LIB) and json.awk ($JSON_AWK) from the source tree.
func runScript(t *testing.T, script string, env ...string) (string, error) {
	t.Helper()
	bin := hostBusybox(t)
	lib, err := filepath.Abs("init/lib")
	if err != nil {
		t.Fatal(err)
	}
	awk, _ := filepath.Abs("init/json.awk")
	cmd := exec.Command(filepath.Join(bin, "sh"), "-c", script)
	cmd.Env = append([]string{"PATH=" + bin, "LIB=" + lib, "JSON_AWK=" + awk, "HOME=/"}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return string(out), err
}

func TestScriptsParse(t *testing.T) {
	bin := hostBusybox(t)
	err := fs.WalkDir(initFiles, "init", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".awk") {
			return err
		}
		out, err := exec.Command(filepath.Join(bin, "sh"), "-n", p).CombinedOutput()
		if err != nil {
			t.Errorf("sh -n %s: %v: %s", p, err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// awk parses json.awk only when it runs it.
	if out, err := exec.Command(filepath.Join(bin, "awk"), "-v", "path=a", "-f", "init/json.awk", "/dev/null").CombinedOutput(); err != nil && len(out) > 0 {
		t.Errorf("awk json.awk: %v: %s", err, out)
	}
}

func TestJSONAwk(t *testing.T) {
	doc := `{
  "UUID": "6f1c",
  "Inventory": {"SystemUUID": "not-this", "UUID": "nested"},
  "Note": "a \"quoted\" \\ \"UUID\": \"fake\" with \u0041",
  "Params": {"greeting": "hello from ironcast", "n": 42, "flag": true, "obj": {"a": [1, {"b": "}"}]}, "nothing": null, "empty": ""},
  "Token": "tok",
  "BootEnv":"linuxkit","State" : "provisioning"
}`
	tests := []struct {
		path     string
		want     string
		wantExit int
	}{
		{"UUID", "6f1c", 0},
		{"Token", "tok", 0},
		{"BootEnv", "linuxkit", 0},
		{"State", "provisioning", 0},
		{"Inventory.UUID", "nested", 0},
		{"Note", `a "quoted" \ "UUID": "fake" with A`, 0},
		{"Params.greeting", "hello from ironcast", 0},
		{"Params.n", "42", 0},
		{"Params.flag", "true", 0},
		{"Params.obj", `{"a": [1, {"b": "}"}]}`, 0},
		{"Params.empty", "", 0},
		{"Params.nothing", "", 1},
		{"Params.missing", "", 1},
		{"Missing.deeper", "", 1},
		{"UUID.deeper", "", 1},
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "doc.json")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			out, err := runScript(t, `. "$LIB/common.sh"; json_get "$P" "$F"`, "P="+tt.path, "F="+f)
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantExit {
				t.Errorf("exit %d, want %d", code, tt.wantExit)
			}
			if got := strings.TrimSuffix(out, "\n"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJSONStr(t *testing.T) {
	out, err := runScript(t, `. "$LIB/common.sh"; json_str "$V"`, "V=Box \"9000\" \\ tab\there")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("json_str output %q is not a JSON string: %v", out, err)
	}
	if want := "Box \"9000\" \\ tabhere"; s != want {
		t.Errorf("got %q, want %q", s, want)
	}
}

// writeTree creates files (content) and symlinks ("-> target") under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// dimm is the raw SMBIOS type 17 (memory device) structure with a size.
func dimm(size uint16, extended uint32) string {
	b := make([]byte, 0x28)
	b[0], b[1] = 17, 0x28
	binary.LittleEndian.PutUint16(b[0x0C:], size)
	binary.LittleEndian.PutUint32(b[0x1C:], extended)
	return string(b)
}

func TestInventoryJSON(t *testing.T) {
	root := t.TempDir()
	sys, proc := filepath.Join(root, "sys"), filepath.Join(root, "proc")
	writeTree(t, root, map[string]string{
		"sys/devices/pci0000:00/0000:00:03.0/virtio0/driver": "-> ../../../../bus/virtio/drivers/virtio_net",
		"sys/devices/pci0000:00/0000:00:04.0/driver":         "-> ../../../bus/pci/drivers/e1000e",
		"sys/class/net/eth0/address":                         "52:54:00:12:34:56\n",
		"sys/class/net/eth0/device":                          "-> ../../../devices/pci0000:00/0000:00:03.0/virtio0",
		"sys/class/net/eno1/address":                         "3c:ec:ef:00:00:01\n",
		"sys/class/net/eno1/device":                          "-> ../../../devices/pci0000:00/0000:00:04.0",
		"sys/class/net/lo/address":                           "00:00:00:00:00:00\n",
		"sys/class/net/bond0/address":                        "52:54:00:99:99:99\n", // virtual: no device
		"sys/block/vda/size":                                 "196608\n",
		"sys/block/vda/serial":                               "disk-serial-1\n",
		"sys/block/sda/size":                                 "1953525168\n",
		"sys/block/sda/device/model":                         "Samsung SSD 870 \n",
		"sys/block/sda/device/serial":                        "S1234\n",
		"sys/block/loop0/size":                               "2048\n",
		"sys/block/sr0/size":                                 "2048\n",
		"sys/block/nvme0n1/size":                             "0\n", // no medium: skipped
		"sys/class/dmi/id/product_serial":                    "SN-42\n",
		"sys/class/dmi/id/product_uuid":                      "4c4c4544-0042-3510-8052-b4c04f4e3332\n",
		"sys/class/dmi/id/sys_vendor":                        "Dell Inc.\n",
		"sys/class/dmi/id/product_name":                      "PowerEdge \"R640\"\n",
		"sys/devices/system/memory/block_size_bytes":         "8000000\n",
		"sys/devices/system/memory/memory0/online":           "1\n",
		"sys/devices/system/memory/memory1/online":           "1\n",
		"sys/devices/system/memory/memory2/online":           "0\n",
		"proc/cpuinfo":                                       "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n\nprocessor\t: 2\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n",
		"proc/meminfo":                                       "MemTotal:        1000000 kB\n",
		"sys/firmware/dmi/entries/17-0/raw":                  dimm(8192, 0),        // 8 GiB
		"sys/firmware/dmi/entries/17-1/raw":                  dimm(0x7FFF, 32768),  // 32 GiB, extended size
		"sys/firmware/dmi/entries/17-2/raw":                  dimm(0, 0),           // empty slot
		"sys/firmware/dmi/entries/17-3/raw":                  dimm(0x8000|2048, 0), // 2048 KiB
		"sys/firmware/dmi/entries/16-0/raw":                  "not a memory device",
	})
	script := `. "$LIB/common.sh"; . "$LIB/net.sh"; . "$LIB/inventory.sh"; inventory_json`
	out, err := runScript(t, script, "SYSFS="+sys, "PROCFS="+proc)
	if err != nil {
		t.Fatalf("inventory_json: %v\n%s", err, out)
	}
	var got registration
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("inventory is not the registration JSON: %v\n%s", err, out)
	}
	arch := map[string]string{"amd64": "amd64", "arm64": "arm64"}[runtime.GOARCH]
	want := registration{
		HardwareAddrs: []string{"3c:ec:ef:00:00:01", "52:54:00:12:34:56"},
		Arch:          arch,
		Inventory: &model.Inventory{
			SerialNumber: "SN-42", SystemUUID: "4c4c4544-0042-3510-8052-b4c04f4e3332",
			Manufacturer: "Dell Inc.", ProductName: `PowerEdge "R640"`,
			CPUs: 3, CPUModel: "Intel(R) Xeon(R) Gold 6130",
			MemoryMiB: 8192 + 32768 + 2, // the SMBIOS memory devices
			Disks: []model.Disk{
				{Name: "sda", SizeBytes: 1953525168 * 512, Model: "Samsung SSD 870", Serial: "S1234"},
				{Name: "vda", SizeBytes: 196608 * 512, Serial: "disk-serial-1"},
			},
			NICs: []model.NIC{
				{Name: "eno1", MAC: "3c:ec:ef:00:00:01", Driver: "e1000e"},
				{Name: "eth0", MAC: "52:54:00:12:34:56", Driver: "virtio_net"},
			},
		},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("inventory (-got +want):\n%s\n%s", diff, out)
	}

	// Without SMBIOS memory devices, the online memory blocks count;
	// without those, MemTotal is what there is.
	for _, step := range []struct{ remove, want string }{
		{"firmware/dmi", "256"},
		{"devices/system/memory", "976"},
	} {
		if err := os.RemoveAll(filepath.Join(sys, step.remove)); err != nil {
			t.Fatal(err)
		}
		out, err = runScript(t, `. "$LIB/common.sh"; . "$LIB/inventory.sh"; memory_mib`, "SYSFS="+sys, "PROCFS="+proc)
		if err != nil || strings.TrimSpace(out) != step.want {
			t.Errorf("memory_mib without %s = %q (%v), want %s", step.remove, out, err, step.want)
		}
	}
}

func TestReadCmdline(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		image   string
		want    string
	}{
		{"discovery image defaults", "console=ttyS0 ironcast.url=http://10.0.0.1:8091/ ironcast.token=abc", "discover",
			"url=http://10.0.0.1:8091 token=abc mode=discover bootenv=discovery uuid= poll=5 mtoken=abc"},
		{"wipe", "ironcast.mode=wipe ironcast.uuid=u-1 ironcast.token=t ironcast.wipe=full ironcast.poll=2", "discover",
			"url= token=t mode=wipe bootenv=wipe uuid=u-1 poll=2 mtoken=t"},
		{"test image runs; bad poll ignored; glob not expanded", "ironcast.poll=x* * ds=nocloud-net;s=http://x/", "run",
			"url= token= mode=run bootenv=linuxkit uuid= poll=5 mtoken="},
		{"explicit bootenv", "ironcast.mode=discover ironcast.bootenv=custom-discovery", "run",
			"url= token= mode=discover bootenv=custom-discovery uuid= poll=5 mtoken="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "cmdline")
			if err := os.WriteFile(f, []byte(tt.cmdline+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runScript(t, `. "$LIB/common.sh"; read_cmdline; echo "url=$URL token=$TOKEN mode=$MODE bootenv=$BOOTENV uuid=$UUID poll=$POLL mtoken=$MTOKEN"`,
				"CMDLINE_FILE="+f, "IMAGE_MODE="+tt.image)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestShouldReboot(t *testing.T) {
	tests := []struct {
		mode, bootenv, state, env string
		want                      bool
	}{
		{"discover", "discovery", "ready", "discovery", false},
		{"discover", "discovery", "provisioning", "discovery", true},
		{"discover", "discovery", "provisioning", "linuxkit", true},
		{"discover", "discovery", "ready", "", false},
		{"wipe", "wipe", "releasing", "wipe", false},
		{"wipe", "wipe", "wiping", "wipe", false},
		{"wipe", "wipe", "ready", "wipe", true},
		{"wipe", "wipe", "ready", "discovery", true},
		{"run", "linuxkit", "running", "linuxkit", false},
		{"run", "linuxkit", "releasing", "wipe", true},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.state+"/"+tt.env, func(t *testing.T) {
			out, err := runScript(t, `. "$LIB/common.sh"; . "$LIB/modes.sh"; if should_reboot "$S" "$E"; then echo yes; else echo no; fi`,
				"MODE="+tt.mode, "BOOTENV="+tt.bootenv, "S="+tt.state, "E="+tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out) == "yes"; got != tt.want {
				t.Errorf("should_reboot = %v, want %v", got, tt.want)
			}
		})
	}
}
