# modes.sh: what the image does once it is up, per ironcast.mode.
# Each run_* function returns only on failure (having called fail); on
# success it reboots or, in run mode, stays up.

# need VAR...: fail unless the named cmdline settings are set.
need() {
	for v in "$@"; do
		eval "val=\$$v"
		if [ -z "$val" ]; then
			case "$v" in
			URL) fail "no ironcast.url on the kernel command line" ;;
			TOKEN) fail "no ironcast.token on the kernel command line" ;;
			UUID) fail "no ironcast.uuid on the kernel command line" ;;
			*) fail "no $v" ;;
			esac
			return 1
		fi
	done
}

# register posts the inventory until ironcast answers with the machine's
# UUID and its machine token, backing off 2, 4, 8, 16, 30, 30... seconds.
register() {
	body=$(inventory_json)
	log "inventory: $body"
	delay=2
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		if http_post "$URL/api/v1/machines/register" "$TOKEN" "$body"; then
			uuid=$(json_get UUID "$HTTP_OUT")
			mtoken=$(json_get Token "$HTTP_OUT")
			if [ -n "$uuid" ] && [ -n "$mtoken" ]; then
				UUID=$uuid MTOKEN=$mtoken
				log "registered as $UUID"
				return 0
			fi
			log "registration answer has no UUID and Token: $(head -c 300 "$HTTP_OUT")"
		else
			log "registration attempt $attempt failed: $(http_error)"
		fi
		sleep $delay
		delay=$((delay * 2))
		[ $delay -le 30 ] || delay=30
	done
	fail "could not register with $URL"
}

# wait_for_bootenv polls the machine record every $POLL seconds and reboots
# once should_reboot says so. It returns (failing) after a minute of
# errors, so that the main loop starts over (and registers again).
# $1 is the record's URL, "api" for /api/v1/machines/UUID or "metadata"
# for the metadata document (the test image).
wait_for_bootenv() {
	case "$1" in
	metadata) rec="$URL/machines/$UUID/metadata.json" ;;
	*) rec="$URL/api/v1/machines/$UUID" ;;
	esac
	errors=0 last=""
	log "waiting for instructions (polling $rec every ${POLL}s)"
	while :; do
		if http_get "$rec" "$MTOKEN"; then
			errors=0
			env=$(json_get BootEnv "$HTTP_OUT")
			state=$(json_get State "$HTTP_OUT")
			if [ "$state/$env" != "$last" ]; then
				log "machine $UUID is $state, bootenv $env"
				last="$state/$env"
			fi
			if should_reboot "$state" "$env"; then
				reboot_into "$env"
			fi
		else
			errors=$((errors + 1))
			log "polling $rec failed ($errors): $(http_error)"
			[ $errors -lt $((60 / POLL + 1)) ] || fail "lost contact with $URL" || return 1
		fi
		sleep "$POLL"
	done
}

# should_reboot STATE BOOTENV: has this machine been given something else
# to boot? Discovery leaves on a new bootenv or on provisioning; wipe once
# the machine is no longer being released; run mode on a new bootenv.
should_reboot() {
	[ -n "$2" ] || return 1
	[ "$2" != "$BOOTENV" ] && return 0
	case "$MODE" in
	discover) [ "$1" = provisioning ] ;;
	wipe) [ "$1" != releasing ] && [ "$1" != wiping ] && [ "$1" != failed ] ;;
	*) return 1 ;;
	esac
}

# run_discover: register the machine and wait for its next bootenv.
run_discover() {
	need URL TOKEN || return 1
	network_up || return 1
	register || return 1
	wait_for_bootenv api
}

# wipe_range DEV SEEK_SECTORS COUNT_SECTORS: zero part of a block device.
wipe_range() {
	dd if=/dev/zero of="$1" bs=512 seek="$2" count="$3" conv=notrunc,fsync 2>/tmp/dd.err ||
		fail "writing zeros to $1 at sector $2: $(tr '\n' ' ' </tmp/dd.err)"
}

# wipe_ends DEV: zero the first and last MiB (2048 sectors) of DEV: the
# MBR, both GPT copies, and the superblocks and labels of most
# filesystems, LVM and RAID.
wipe_ends() {
	sectors=$(cat "/sys/class/block/${1##*/}/size")
	n=2048
	[ "$sectors" -ge $n ] || n=$sectors
	[ "$n" -gt 0 ] || return 0
	wipe_range "$1" 0 "$n" || return 1
	wipe_range "$1" $((sectors - n)) "$n"
}

# wipe_disk NAME: wipe the partitions' ends first (so a filesystem inside
# a partition loses its superblock), then the disk's; with
# ironcast.wipe=full, zero the whole disk.
wipe_disk() {
	for p in /sys/block/"$1"/"$1"*; do
		[ -e "$p/partition" ] || continue
		wipe_ends "/dev/${p##*/}" || return 1
	done
	wipe_ends "/dev/$1" || return 1
	if [ "$WIPE" = full ]; then
		log "zeroing all of /dev/$1 ($(($(cat "/sys/block/$1/size") / 2048)) MiB)"
		# dd stops with "No space left on device" at the end of the disk.
		dd if=/dev/zero of="/dev/$1" bs=1M conv=fsync 2>/tmp/dd.err
		grep -q "No space left" /tmp/dd.err || fail "zeroing /dev/$1: $(tr '\n' ' ' </tmp/dd.err)" || return 1
	fi
}

# run_wipe: erase every disk, report wiped, wait for the next bootenv.
run_wipe() {
	need URL TOKEN UUID || return 1
	network_up || return 1
	callback wiping || log "could not report wiping: $(http_error)"
	disks=$(disk_list)
	for d in $disks; do
		log "wiping /dev/$d ($(($(cat "/sys/block/$d/size") / 2048)) MiB)${WIPE:+, mode $WIPE}"
		wipe_disk "$d" || return 1
	done
	sync
	callback wiped || fail "could not report wiped: $(http_error)" || return 1
	log "wiped ${disks:-no disks}"
	wait_for_bootenv api
}

# run_run (test image): read the metadata, print the marker and a param,
# report running, and stay up.
run_run() {
	need URL TOKEN UUID || return 1
	network_up || return 1
	if http_get "$URL/machines/$UUID/metadata.json" "$MTOKEN"; then
		cp "$HTTP_OUT" /run/metadata.json
		source=metadata.json
	elif http_get "$URL/machines/$UUID/user-data" "$MTOKEN"; then
		cp "$HTTP_OUT" /run/user-data
		source=user-data
	else
		fail "could not read metadata.json or user-data: $(http_error)" || return 1
	fi
	echo "IRONCAST-LINUXKIT-OK"
	log "read $source from $URL"
	if [ -n "$PARAM" ]; then
		if [ "$source" = metadata.json ]; then
			value=$(json_get "Params.$PARAM" /run/metadata.json)
		else
			# cloud-config style "NAME: value" line.
			value=$(sed -n "s/^[[:space:]]*$PARAM:[[:space:]]*//p" /run/user-data | head -n 1)
		fi
		log "param $PARAM=$value"
	fi
	callback running || fail "could not report running: $(http_error)" || return 1
	log "reported running"
	if [ "$source" = metadata.json ]; then
		wait_for_bootenv metadata
	fi
	# Without metadata there is nothing to poll: stay up.
	while :; do sleep 3600; done
}
