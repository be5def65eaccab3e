# inventory.sh: what the machine is, from /sys and /proc, as the JSON body
# of POST /api/v1/machines/register (field names of provision.Registration
# and model.Inventory). SYSFS and PROCFS point elsewhere in tests.

# read_trim FILE prints the first line of FILE without surrounding spaces;
# nothing when FILE cannot be read.
read_trim() {
	[ -r "$1" ] || return 0
	head -n 1 "$1" 2>/dev/null | sed 's/^[[:space:]]*//; s/[[:space:]]*$//'
}

# go_arch prints the Go name of this machine's architecture.
go_arch() {
	case "$(uname -m)" in
	x86_64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) uname -m ;;
	esac
}

# cpu_model prints the CPU model: x86 "model name", else the arm64
# implementer and part numbers.
cpu_model() {
	m=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' "$1" | head -n 1)
	if [ -z "$m" ]; then
		impl=$(sed -n 's/^CPU implementer[[:space:]]*:[[:space:]]*//p' "$1" | head -n 1)
		part=$(sed -n 's/^CPU part[[:space:]]*:[[:space:]]*//p' "$1" | head -n 1)
		[ -n "$impl" ] && m="implementer $impl part $part"
	fi
	echo "$m"
}

# dmi_memory_mib prints the sum of the memory devices in the SMBIOS tables
# (type 17, what dmidecode shows as installed DIMMs); nothing when there
# are none. Size is the word at offset 0x0C: 0 empty, 0xFFFF unknown,
# 0x7FFF "see the extended size" (dword at 0x1C, MiB), bit 15 set KiB.
dmi_memory_mib() {
	total=0
	for e in "${SYSFS:-/sys}"/firmware/dmi/entries/17-*/raw; do
		[ -r "$e" ] || continue
		mib=$(od -A n -t u1 -v "$e" | awk '
			{ for (i = 1; i <= NF; i++) b[n++] = $i }
			END {
				if (n < 0x0E) { print 0; exit }
				size = b[0x0C] + 256 * b[0x0D]
				if (size == 0 || size == 65535) print 0
				else if (size == 32767 && n >= 0x20) print b[0x1C] + 256 * b[0x1D] + 65536 * b[0x1E] + 16777216 * b[0x1F]
				else if (size >= 32768) print int((size - 32768) / 1024)
				else print size
			}')
		total=$((total + ${mib:-0}))
	done
	[ $total -gt 0 ] && echo $total
}

# memory_mib prints the installed memory: the SMBIOS memory devices when
# firmware lists them, else the online memory blocks (x86 without SMBIOS;
# unreliable under arm64 UEFI, which maps firmware regions as memory),
# else MemTotal (which is short by what firmware and kernel reserve).
memory_mib() {
	m=$(dmi_memory_mib)
	if [ -n "$m" ]; then
		echo "$m"
		return
	fi
	mem=${SYSFS:-/sys}/devices/system/memory
	if [ -r "$mem/block_size_bytes" ]; then
		bs=$((0x$(cat "$mem/block_size_bytes")))
		blocks=0
		for b in "$mem"/memory*; do
			[ "$(cat "$b/online" 2>/dev/null)" = 1 ] && blocks=$((blocks + 1))
		done
		if [ $blocks -gt 0 ]; then
			echo $((blocks * bs / 1048576))
			return
		fi
	fi
	kb=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' "${PROCFS:-/proc}/meminfo")
	echo $((${kb:-0} / 1024))
}

# disk_list prints the whole disks (no partitions, RAM disks, loop devices
# or CD drives) that have a size.
disk_list() {
	for d in "${SYSFS:-/sys}"/block/*; do
		name=${d##*/}
		case "$name" in
		loop* | ram* | sr* | zram* | fd* | nbd* | dm-* | md*) continue ;;
		esac
		[ "$(cat "$d/size" 2>/dev/null || echo 0)" -gt 0 ] && echo "$name"
	done
}

# inventory_json prints the registration document on one line.
inventory_json() {
	sys=${SYSFS:-/sys} proc=${PROCFS:-/proc} dmi=${SYSFS:-/sys}/class/dmi/id
	macs="" nics="" disks=""
	for d in "$sys"/class/net/*; do
		[ -e "$d/device" ] || continue
		name=${d##*/}
		mac=$(read_trim "$d/address")
		case "$mac" in "" | 00:00:00:00:00:00) continue ;; esac
		macs="$macs${macs:+,}$(json_str "$mac")"
		nics="$nics${nics:+,}{\"Name\":$(json_str "$name"),\"MAC\":$(json_str "$mac"),\"Driver\":$(json_str "$(nic_driver "$name")")}"
	done
	for name in $(disk_list); do
		d=$sys/block/$name
		size=$(($(cat "$d/size") * 512))
		model=$(read_trim "$d/device/model")
		serial=$(read_trim "$d/device/serial")
		[ -n "$serial" ] || serial=$(read_trim "$d/serial")
		disks="$disks${disks:+,}{\"Name\":$(json_str "$name"),\"SizeBytes\":$size,\"Model\":$(json_str "$model"),\"Serial\":$(json_str "$serial")}"
	done
	cpus=$(grep -c '^processor' "$proc/cpuinfo")
	printf '{"HardwareAddrs":[%s],"Arch":%s,"Inventory":{' "$macs" "$(json_str "$(go_arch)")"
	printf '"SerialNumber":%s,' "$(json_str "$(read_trim "$dmi/product_serial")")"
	printf '"SystemUUID":%s,' "$(json_str "$(read_trim "$dmi/product_uuid")")"
	printf '"Manufacturer":%s,' "$(json_str "$(read_trim "$dmi/sys_vendor")")"
	printf '"ProductName":%s,' "$(json_str "$(read_trim "$dmi/product_name")")"
	printf '"CPUs":%d,"CPUModel":%s,' "${cpus:-0}" "$(json_str "$(cpu_model "$proc/cpuinfo")")"
	printf '"MemoryMiB":%d,' "$(memory_mib)"
	printf '"Disks":[%s],"NICs":[%s]}}\n' "$disks" "$nics"
}
