package cli

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/test/e2e/harness"
)

// selftestCmd boots one QEMU machine against an ironcast binary in a
// private network namespace (see package harness).
func (a *app) selftestCmd() *cobra.Command {
	var o harness.SelftestOptions
	var firmware string
	names := make([]string, len(harness.Firmwares))
	for i, f := range harness.Firmwares {
		names[i] = string(f)
	}
	cmd := &cobra.Command{
		Use:   "selftest",
		Short: "Boot one QEMU machine from an ironcast binary in a private network and print its boot timeline",
		Long: `Check an ironcast build before trusting it with a rack: in a private network
namespace (10.77.0.0/24; nothing touches the host's interfaces) run
"BINARY serve" with DHCP on a bridge, boot one QEMU machine from it and follow
it from power-on through DHCP, the boot program, the iPXE script (GRUB config
on arm64), the discovery kernel and initrd to the machine registering with its
inventory. Prints the server's events for the machine and the time per phase,
then tears everything down. Exits non-zero, with the machine's serial console
and the server's log, when the chain breaks.

Needs root and the Debian packages iproute2, qemu-system-x86, ipxe-qemu, ipxe
and ovmf (qemu-system-arm and qemu-efi-aarch64 for arm64). Without --boot-dir
the discovery image is built with "BINARY bootenvs build discovery" (apt-get
download of a Debian kernel and busybox-static).`,
		Example: "  sudo ironcast selftest\n  sudo ironcast selftest --binary ./ironcast --firmware uefi-http",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Firmware = harness.Firmware(firmware)
			if o.Binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return usageErrorf("--binary not given and this executable's path is unknown: %v", err)
				}
				o.Binary = exe
			}
			o.Out = a.out
			return harness.Selftest(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Binary, "binary", "", "ironcast binary to test (default: this one)")
	f.StringVar(&firmware, "firmware", string(harness.BIOS), "machine to boot: "+strings.Join(names, ", "))
	f.StringVar(&o.BootDir, "boot-dir", "", "directory with discovery/ARCH/{vmlinuz,initrd.img} (default: build it)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "package cache for building the discovery image")
	f.StringVar(&o.Accel, "accel", "", "QEMU accelerator: kvm or tcg (default: KVM when it works)")
	f.StringVar(&o.WorkDir, "work-dir", "", "keep the data dir, disks and logs here (default: a temporary dir, removed)")
	return cmd
}
