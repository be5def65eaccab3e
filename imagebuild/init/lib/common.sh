# common.sh: logging, kernel command line, HTTP and JSON helpers.
# Sourced by /init; every function is safe to call again after a failure.

# log prints one progress line on the console. Every line the image prints
# starts with "ironcast:" so that it stands out in a serial log.
log() {
	echo "ironcast: $*"
}

# read_cmdline sets the ironcast.* settings from the kernel command line
# (or from $CMDLINE_FILE in tests). Unknown words are ignored.
read_cmdline() {
	URL="" TOKEN="" UUID="" PARAM="" WIPE="" BOOTENV="" MODE="" POLL=""
	set -f
	for word in $(cat "${CMDLINE_FILE:-/proc/cmdline}"); do
		case "$word" in
		ironcast.url=*) URL=${word#*=} ;;
		ironcast.token=*) TOKEN=${word#*=} ;;
		ironcast.mode=*) MODE=${word#*=} ;;
		ironcast.uuid=*) UUID=${word#*=} ;;
		ironcast.param=*) PARAM=${word#*=} ;;
		ironcast.wipe=*) WIPE=${word#*=} ;;
		ironcast.bootenv=*) BOOTENV=${word#*=} ;;
		ironcast.poll=*) POLL=${word#*=} ;;
		esac
	done
	set +f
	URL=${URL%/}
	# The image's own default mode (discover for the discovery image, run
	# for the test image) comes from /etc/ironcast/image.
	[ -n "$MODE" ] || MODE=${IMAGE_MODE:-discover}
	if [ -z "$BOOTENV" ]; then
		case "$MODE" in
		discover) BOOTENV=discovery ;;
		wipe) BOOTENV=wipe ;;
		run) BOOTENV=linuxkit ;;
		esac
	fi
	case "$POLL" in
	'' | *[!0-9]* | 0) POLL=5 ;;
	esac
	# The token used for machine-scoped calls; discover mode replaces it
	# with the one the registration returns.
	MTOKEN=$TOKEN
}

# fail records why the current step failed (for the failed callback) and
# returns 1, so that callers can write: step || fail "what went wrong".
fail() {
	FAIL_REASON="$*"
	log "ERROR: $*"
	return 1
}

# HTTP calls: busybox wget, always bounded by timeout(1), because busybox
# wget -T crashes (busybox 1.35). The body goes to $HTTP_OUT, wget's error
# message to $HTTP_ERR.
HTTP_TIMEOUT=${HTTP_TIMEOUT:-20}
HTTP_OUT=/tmp/ironcast.http.out
HTTP_ERR=/tmp/ironcast.http.err

# http_get URL TOKEN
http_get() {
	rm -f "$HTTP_OUT"
	timeout "$HTTP_TIMEOUT" wget -q -O "$HTTP_OUT" \
		--header "Authorization: Bearer $2" "$1" 2>"$HTTP_ERR"
}

# http_post URL TOKEN JSON
http_post() {
	rm -f "$HTTP_OUT"
	timeout "$HTTP_TIMEOUT" wget -q -O "$HTTP_OUT" \
		--header "Authorization: Bearer $2" \
		--header "Content-Type: application/json" \
		--post-data "$3" "$1" 2>"$HTTP_ERR"
}

# http_error prints the last wget error on one line.
http_error() {
	tr '\n' ' ' <"$HTTP_ERR" 2>/dev/null | sed 's/ *$//'
}

# json_get PATH [FILE]: print the value at PATH (e.g. Params.name) of a
# JSON document; see /etc/ironcast/json.awk.
json_get() {
	awk -v path="$1" -f "${JSON_AWK:-/etc/ironcast/json.awk}" "${2:-/dev/stdin}"
}

# json_str VALUE: print VALUE as a JSON string (quotes included), with
# control characters dropped and quotes and backslashes escaped.
json_str() {
	printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# callback EVENT [JSON]: post a lifecycle callback for this machine.
callback() {
	[ -n "$UUID" ] || return 1
	body=$2
	[ -n "$body" ] || body='{}'
	http_post "$URL/api/v1/machines/$UUID/callbacks/$1" "$MTOKEN" "$body"
}

# report_failure REASON: tell ironcast this machine failed, if it knows
# which machine it is. A failure to report is only logged.
report_failure() {
	log "FAILED: $1"
	if [ -z "$UUID" ] || [ -z "$URL" ]; then
		log "cannot report the failure: machine not registered yet"
		return 0
	fi
	if callback failed "{\"Reason\":$(json_str "$1")}"; then
		log "reported failure to $URL"
	else
		log "could not report the failure: $(http_error)"
	fi
}

# reboot_into BOOTENV: the machine has been given another bootenv.
reboot_into() {
	log "rebooting into $1"
	sync
	reboot -f
	# reboot -f does not return; if it ever does, do not run on.
	sleep 3600
}
