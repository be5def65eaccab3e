package harness

import (
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/ironcast/ironcast/test/testenv"
)

// TestFirmwareStartsNetboot starts each kind of machine on a bridge with no
// server and checks from its console that the firmware starts the network
// boot it is configured for, and not another.
func TestFirmwareStartsNetboot(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "qemu-system-x86_64", "qemu-system-aarch64"} {
		testenv.RequireTool(t, tool)
	}
	e := &Env{workDir: t.TempDir(), opts: Options{Logf: t.Logf}}
	e.artifacts = e.workDir
	if err := e.opts.defaults2(); err != nil {
		t.Fatal(err)
	}
	e.kvm = kvmUsable(e.opts.OVMFCode, e.opts.OVMFVars, e.workDir)
	t.Logf("KVM usable: %v", e.kvm)
	for _, f := range []string{e.opts.OVMFCode, e.opts.OVMFVars, e.opts.AAVMFCode, e.opts.AAVMFVars} {
		if _, err := os.Stat(f); err != nil {
			testenv.RequireTool(t, f) // skips, or fails in strict mode
		}
	}
	var err error
	if e.ns, err = newNetns(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if e.bridge, err = e.ns.bridge(serverCIDR); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fw        Firmware
		want, not string
	}{
		{BIOS, `iPXE \(http://ipxe\.org\)`, `Start PXE`},
		{UEFIPXE, `Start PXE over IPv4`, `Start HTTP Boot`},
		{UEFIHTTP, `Start HTTP Boot over IPv4`, `Start PXE`},
		{ARM64, `Start PXE over IPv4`, `Start HTTP Boot`},
	}
	for _, tt := range tests {
		t.Run(string(tt.fw), func(t *testing.T) {
			t.Parallel()
			vm, err := e.StartVM(context.Background(), string(tt.fw), tt.fw)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			_, line, err := vm.serial.wait(ctx, 0, regexp.MustCompile(tt.want), []match{{regexp.MustCompile(tt.not), "wrong boot path"}}, nil)
			if err != nil {
				t.Fatalf("console never showed %q: %v\n%s", tt.want, err, vm.SerialTail(30))
			}
			t.Logf("%s: %q", tt.fw, line)
			vm.stop()
		})
	}
}
