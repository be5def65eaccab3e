# net.sh: kernel modules and DHCP on every NIC.

# load_modules loads the drivers listed in /etc/ironcast/modules, which the
# builder wrote in dependency order ("name /path/to/module.ko" per line).
# A driver whose hardware is absent loads and stays idle; a module that is
# already loaded ("File exists") is not an error.
load_modules() {
	loaded=0 failed=""
	while read -r name file; do
		[ -n "$name" ] || continue
		grep -q "^$name " /proc/modules 2>/dev/null && continue
		if insmod "$file" 2>/tmp/insmod.err; then
			loaded=$((loaded + 1))
		elif ! grep -q "File exists" /tmp/insmod.err; then
			failed="$failed $name"
		fi
	done </etc/ironcast/modules
	log "loaded $loaded kernel modules${failed:+; could not load:$failed}"
}

# nic_list prints the names of the physical NICs (those with a device).
nic_list() {
	for d in /sys/class/net/*; do
		[ -e "$d/device" ] && echo "${d##*/}"
	done
}

# have_address succeeds when some NIC has a global IPv4 address.
have_address() {
	ip -4 addr show 2>/dev/null | grep 'inet ' | grep -qv ' 127\.'
}

# network_up brings every NIC up and runs udhcpc on each; udhcpc stays in
# the background to renew its lease. It waits (bounded) for the first
# address. Calling it again once an address is there does nothing.
network_up() {
	have_address && return 0
	waited=0
	while [ -z "$(nic_list)" ] && [ $waited -lt 10 ]; do
		sleep 1
		waited=$((waited + 1))
	done
	nics=$(nic_list)
	[ -n "$nics" ] || fail "no network interface found (no driver for this NIC?)" || return 1
	for nic in $nics; do
		ip link set "$nic" up
		if [ -e "/run/udhcpc.$nic.pid" ] && kill -0 "$(cat "/run/udhcpc.$nic.pid")" 2>/dev/null; then
			continue
		fi
		log "DHCP on $nic ($(cat "/sys/class/net/$nic/address"), $(nic_driver "$nic"))"
		# -b: keep trying in the background when no lease comes; without
		# -f, udhcpc forks into the background once it has a lease too.
		udhcpc -i "$nic" -s /etc/ironcast/udhcpc.script -p "/run/udhcpc.$nic.pid" \
			-t 4 -T 3 -b -x hostname:ironcast -V ironcast >/dev/null 2>&1 &
	done
	waited=0
	until have_address; do
		[ $waited -lt 60 ] || fail "no DHCP lease on any of: $nics" || return 1
		sleep 1
		waited=$((waited + 1))
	done
	return 0
}

# nic_driver NIC prints the name of the NIC's kernel driver.
nic_driver() {
	drv=""
	if [ -L "${SYSFS:-/sys}/class/net/$1/device/driver" ]; then
		drv=$(readlink "${SYSFS:-/sys}/class/net/$1/device/driver")
		drv=${drv##*/}
	fi
	echo "$drv"
}
