// Package bootenvs is ironcast's built-in content: bootenvs and the
// templates they render, embedded in the binary and read-only. A stored
// bootenv or template with the same name overrides a built-in one.
//
// Each bootenv is a YAML file in content/ (a model.BootEnv); each
// template is a file in templates/ named <ID>.tmpl. The built-ins are:
//
//   - discovery: the default for unknown machines. Boots the discovery
//     image (built by `ironcast bootenvs build discovery`), which registers
//     the machine and its inventory and waits for instructions.
//   - local: boots from the machine's own disk; DHCP gives no boot file.
//   - wipe: the discovery image erasing the disks, then reporting wiped.
//   - linuxkit: an immutable image uploaded as kernel + initrd (+ cmdline),
//     LinuxKit's kernel+initrd output.
//   - debian-12-install, ubuntu-24.04-install, alma-9-install,
//     flatcar-install: OS installers with preseed, autoinstall,
//     kickstart and Ignition templates.
//
// Boot loader templates: BIOS and UEFI x86-64 machines (PXE or UEFI HTTP
// boot) run iPXE and get the "ipxe" template; arm64 UEFI machines boot
// GRUB (Debian ships no arm64 iPXE) and get the "grub" template;
// "pxelinux" is there for racks that chain pxelinux.
package bootenvs
