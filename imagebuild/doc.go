// Package imagebuild builds the small Linux systems that netbooted
// machines run: the discovery image (which also wipes disks) and a
// LinuxKit-style test image.
//
// # Where the packages come from
//
// Build uses only Debian packages from the host's configured archive (its
// sources.list), fetched with apt-get: the linux-image-<arch> metapackage
// is resolved with apt-cache to the exact kernel package it depends on
// (linux-image-6.1.0-N-<arch> on bookworm), and busybox-static is fetched
// for the same architecture. apt runs against private state under
// CacheDir/apt/<arch> (APT::Architecture, its own lists, an empty dpkg
// status, its own cache), so fetching arm64 packages on an amd64 host
// never touches the host's dpkg database or architecture list. apt checks
// each .deb against the signed archive index; Build checks the cached file
// against the index's SHA256 again before every use. Downloaded .debs stay
// in CacheDir/debs/<arch> and are unpacked once, with dpkg -x, into
// CacheDir/unpacked/<package>_<version>_<arch>; everything after that is Go.
//
// # What is in the image
//
// The kernel is the package's vmlinuz: a bzImage on amd64; on arm64 the
// uncompressed Image (a PE/COFF EFI stub, which GRUB's arm64 loader
// requires), inflated here if the package ships it gzip-compressed. The
// initramfs (initrd.img) is a gzip-compressed newc cpio archive holding
// busybox-static with a symlink per applet (the applet names are read from
// the binary's applet table, so no foreign-architecture emulator is
// needed), /dev/console, the kernel modules of DefaultModules with their
// dependencies in load order (from each module's .modinfo "depends=",
// because the package ships no modules.dep), and the scripts in init/:
// /init, /etc/ironcast/lib/*.sh, the udhcpc event script and json.awk.
// /etc/ironcast/image records the image's default mode and the package
// versions; manifest.json and SHA256SUMS next to the image say the same
// for operators.
//
// # Reproducibility
//
// Two builds from the same packages give byte-identical files: archive
// entries are sorted by path, owners are 0:0, every timestamp is
// Options.SourceDateEpoch (else $SOURCE_DATE_EPOCH, else 0), inode numbers
// follow the sorted order, the gzip header has no name and no time, and
// the manifest holds no build time. The kernel is copied (or inflated)
// unchanged. The packages themselves are whatever the archive's candidate
// version is when the lists were last refreshed (at most a day old unless
// RefreshLists); the manifest records the exact versions and checksums.
//
// # The kernel command line
//
// /init (busybox sh, PID 1) reads:
//
//	ironcast.url=http://SERVER:8091   ironcast's plain HTTP boot port; all calls go there
//	ironcast.token=TOKEN              discover: the registration token; wipe, run: the machine token
//	ironcast.mode=discover|wipe|run   default: discover (discovery image), run (test image)
//	ironcast.uuid=UUID                the machine (required for wipe and run)
//	ironcast.wipe=full                wipe: zero whole disks, not only their ends
//	ironcast.param=NAME               run: print this param from the metadata
//	ironcast.bootenv=NAME             the bootenv being booted (default discovery, wipe, linuxkit)
//	ironcast.poll=SECONDS             poll interval (default 5)
//	console=ttyS0 | console=ttyAMA0   where the progress lines go
//
// Every mode mounts /proc, /sys and /dev, loads the modules, brings up
// every NIC with udhcpc, and prints progress lines starting "ironcast:".
//
// discover posts the inventory (MACs, DMI serial, UUID, vendor and
// product, CPUs, memory, disks, NICs with drivers) to
// POST /api/v1/machines/register with the registration token, takes the
// UUID and machine Token from the answer, then polls
// GET /api/v1/machines/UUID and reboots (reboot -f) once the machine's
// BootEnv is no longer its own or its State is provisioning.
//
// wipe posts callbacks/wiping, zeroes the first and last MiB of every
// partition and every disk (not RAM disks, loop devices or CD drives):
// MBR, both GPT copies and most filesystem, LVM and RAID signatures; with
// ironcast.wipe=full the whole disk. It then syncs, posts callbacks/wiped
// and polls like discover until the machine leaves releasing/wiping.
//
// run (the test image) reads GET /machines/UUID/metadata.json (or
// cloud-init user-data), prints IRONCAST-LINUXKIT-OK and
// "ironcast: param NAME=VALUE", posts callbacks/running and stays up,
// rebooting if its record is given another bootenv.
//
// On any failure /init posts callbacks/failed with {"Reason": ...} (when
// it knows its UUID), starts a shell on the console and tries again with a
// growing delay. It never exits.
//
// Build is safe to call concurrently: builds sharing a CacheDir take a
// lock per architecture.
package imagebuild
