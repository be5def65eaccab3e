#!/usr/bin/env bash
# TFTP benchmark: ironcast's tftp package side by side with tftpd-hpa,
# dnsmasq and atftpd, all on 127.0.0.1 (never on the host's interfaces).
#
# Method (../../../../shared/FIELD.md): server pinned to CPU0, client to CPU1,
# a fresh server process per measurement, the order of servers rotated each
# repetition, REPS repetitions (>= 3), medians. Server CPU is read from a
# cpuacct cgroup made for the server (nanoseconds, and tftpd-hpa's forked
# children included); without cgroup v1 cpuacct, from /proc/PID/stat
# (10 ms ticks, forked children missed). Every fetched file is checked with
# sha256: a fast wrong answer fails the run.
#
# Env: REPS (default 3), TFTP_BENCH_QUICK=1 (CI: small files, 1 repetition,
# fewer clients), BENCH_BASE_PORT (default 16900), BENCH_CASES and
# BENCH_SERVERS (space-separated subsets; the table needs all four servers
# for its ratios).
# Needs: go, atftp, taskset, apt-get (to download tftpd-hpa and atftpd
# without installing them), /usr/sbin/dnsmasq (dnsmasq-base).
set -euo pipefail

cd "$(dirname "$0")/../../.."
QUICK=${TFTP_BENCH_QUICK:-0}
REPS=${REPS:-3}
PORT0=${BENCH_BASE_PORT:-16900}
if [ "$QUICK" = 1 ]; then
	REPS=1
	BIG=$((4 << 20)); BIG_NAME=4M
	SMALL_COUNT=4; CONC=10
else
	BIG=$((32 << 20)); BIG_NAME=32M
	SMALL_COUNT=32; CONC=50
fi
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/tftp-bench.XXXXXX)
PIDS=()
CG=""
if [ -w /sys/fs/cgroup/cpuacct ] && mkdir "/sys/fs/cgroup/cpuacct/tftp-bench.$$" 2>/dev/null; then
	CG="/sys/fs/cgroup/cpuacct/tftp-bench.$$"
fi
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "run.sh: $1 is required" >&2; exit 1; }; }
need go; need atftp; need taskset; need sha256sum
DNSMASQ=/usr/sbin/dnsmasq
[ -x "$DNSMASQ" ] || { echo "run.sh: $DNSMASQ (dnsmasq-base) is required" >&2; exit 1; }

# Peers: downloaded and extracted, never installed (no service can start).
mkdir -p "$WORK/debs" "$WORK/x"
(cd "$WORK/debs" && apt-get download tftpd-hpa atftpd libwrap0 >/dev/null 2>&1) ||
	{ echo "run.sh: apt-get download tftpd-hpa atftpd libwrap0 failed (run apt-get update)" >&2; exit 1; }
for d in "$WORK"/debs/*.deb; do dpkg -x "$d" "$WORK/x"; done
export LD_LIBRARY_PATH="$WORK/x/usr/lib/x86_64-linux-gnu:$WORK/x/lib/x86_64-linux-gnu"
TFTPD_HPA="$WORK/x/usr/sbin/in.tftpd"
ATFTPD="$WORK/x/usr/sbin/atftpd"

go build -o "$WORK/ironcast-tftp" ./test/bench/tftp

ROOT="$WORK/root"
mkdir -p "$ROOT" "$WORK/out"
chmod 777 "$WORK" "$ROOT" # atftpd and tftpd-hpa drop to nobody
"$WORK/ironcast-tftp" -gen "$ROOT/f1M" -size $((1 << 20)) -seed 1
"$WORK/ironcast-tftp" -gen "$ROOT/f$BIG_NAME" -size "$BIG" -seed 2
chmod 644 "$ROOT"/*
declare -A SUM
for f in "$ROOT"/*; do SUM[$(basename "$f")]=$(sha256sum "$f" | cut -d' ' -f1); done

SERVERS=(ironcast tftpd-hpa dnsmasq atftpd)
read -r -a SERVERS <<<"${BENCH_SERVERS:-${SERVERS[*]}}"

# in_cg CMD...: runs CMD inside the accounting cgroup, pinned to CPU0.
in_cg() {
	if [ -n "$CG" ]; then
		exec sh -c 'echo $$ >"$0/tasks" && exec "$@"' "$CG" taskset -c 0 "$@"
	else
		exec taskset -c 0 "$@"
	fi
}

# start_server NAME PORT: starts it on CPU0 and sets SPID.
start_server() {
	local name=$1 port=$2
	case $name in
	ironcast) in_cg "$WORK/ironcast-tftp" -root "$ROOT" -addr "127.0.0.1:$port" & ;;
	tftpd-hpa) in_cg "$TFTPD_HPA" -L -u nobody -s "$ROOT" -a "127.0.0.1:$port" & ;;
	dnsmasq)
		# dnsmasq's TFTP server has no port option: it takes 69 on
		# 127.0.0.1 only (--bind-interfaces); DNS is off (--port=0).
		in_cg "$DNSMASQ" -k --conf-file=/dev/null --port=0 --enable-tftp --tftp-root="$ROOT" \
			--listen-address=127.0.0.1 --interface=lo --bind-interfaces --user=nobody \
			--pid-file="$WORK/dnsmasq.pid" --log-facility=/dev/null & ;;
	atftpd) in_cg "$ATFTPD" --daemon --no-fork --port "$port" --bind-address 127.0.0.1 \
		--user nobody --group nogroup --logfile /dev/null -m 200 "$ROOT" & ;;
	esac
	SPID=$!
	PIDS+=("$SPID")
	sleep 0.3
	kill -0 "$SPID" 2>/dev/null || { echo "run.sh: $name did not start" >&2; exit 1; }
}

stop_server() {
	kill "$SPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
}

server_port() {
	case $1 in
	ironcast) echo $((PORT0 + 1)) ;; tftpd-hpa) echo $((PORT0 + 2)) ;;
	dnsmasq) echo 69 ;; atftpd) echo $((PORT0 + 4)) ;;
	esac
}

# cpu_ns PID: server CPU time so far in nanoseconds.
cpu_ns() {
	if [ -n "$CG" ]; then
		cat "$CG/cpuacct.usage"
	else
		awk -v hz="$CLK_TCK" '{printf "%.0f\n", ($14 + $15 + $16 + $17) * 1e9 / hz}' "/proc/$1/stat"
	fi
}

# fetch PORT FILE OUT BLKSIZE WINDOW: one atftp transfer on CPU1.
fetch() {
	local port=$1 file=$2 out=$3 bs=$4 ws=$5
	local opts=(--option "blksize $bs")
	[ "$ws" -gt 1 ] && opts+=(--option "windowsize $ws")
	timeout 300 taskset -c 1 atftp "${opts[@]}" -g -r "$file" -l "$out" 127.0.0.1 "$port" >/dev/null 2>&1 || {
		echo "run.sh: atftp $file from port $port failed" >&2; return 1; }
}

# fetch_many PORT FILE COUNT BLKSIZE WINDOW: COUNT transfers of FILE by one
# atftp process on CPU1 (its interactive commands on stdin), into
# $WORK/out/s0 ... s(COUNT-1). One process for all of them keeps the
# client's own start-up out of the figure: fork, exec and dynamic linking
# cost about 9 ms per process on the PVM guest this was tuned on, nearly
# half of a 1 MiB windowed transfer. atftp exits 0 even when a get fails;
# verify catches that (a missing or short copy fails its sha256).
fetch_many() {
	local port=$1 file=$2 count=$3 bs=$4 ws=$5 i
	{
		echo "option blksize $bs"
		[ "$ws" -gt 1 ] && echo "option windowsize $ws"
		for ((i = 0; i < count; i++)); do echo "get $file $WORK/out/s$i"; done
		echo quit
	} >"$WORK/cmds"
	timeout 300 taskset -c 1 atftp 127.0.0.1 "$port" <"$WORK/cmds" >/dev/null 2>&1 || {
		echo "run.sh: atftp $file from port $port failed" >&2; return 1; }
}

# verify FILE OUT...: every fetched copy must match (after the timed part,
# so that hashing does not count as transfer time).
verify() {
	local file=$1 out got
	shift
	for out in "$@"; do
		got=$(sha256sum "$out" | cut -d' ' -f1)
		[ "$got" = "${SUM[$file]}" ] || { echo "run.sh: sha256 mismatch for $file ($out)" >&2; return 1; }
		rm -f "$out"
	done
}

# measure SERVER CASE: prints "MiB/s ms_per_MiB" for one fresh server.
measure() {
	local server=$1 case=$2 port file count bs ws conc mib
	port=$(server_port "$server")
	case $case in
	1M-bs512) file=f1M count=$SMALL_COUNT bs=512 ws=1 conc=1 ;;
	1M-bs1468) file=f1M count=$SMALL_COUNT bs=1468 ws=1 conc=1 ;;
	1M-ws8) file=f1M count=$SMALL_COUNT bs=1468 ws=8 conc=1 ;;
	1M-ws16) file=f1M count=$SMALL_COUNT bs=1468 ws=16 conc=1 ;;
	big-bs512) file=f$BIG_NAME count=1 bs=512 ws=1 conc=1 ;;
	big-bs1468) file=f$BIG_NAME count=1 bs=1468 ws=1 conc=1 ;;
	big-ws8) file=f$BIG_NAME count=1 bs=1468 ws=8 conc=1 ;;
	big-ws16) file=f$BIG_NAME count=1 bs=1468 ws=16 conc=1 ;;
	conc) file=f1M count=1 bs=1468 ws=1 conc=$CONC ;;
	esac
	start_server "$server" "$port"
	local c0 c1 t0 t1 i n fail=0
	c0=$(cpu_ns "$SPID")
	t0=$(date +%s.%N)
	if [ "$conc" -gt 1 ]; then
		local jobs=()
		for ((i = 0; i < conc; i++)); do
			fetch "$port" "$file" "$WORK/out/c$i" "$bs" "$ws" &
			jobs+=($!)
		done
		for j in "${jobs[@]}"; do wait "$j" || fail=1; done
		mib=$conc
	else
		fetch_many "$port" "$file" "$count" "$bs" "$ws" || fail=1
		mib=$(( count * $(stat -c %s "$ROOT/$file") / 1048576 ))
	fi
	t1=$(date +%s.%N)
	sleep 0.2 # let tftpd-hpa reap its children
	c1=$(cpu_ns "$SPID")
	stop_server
	if [ "$conc" -gt 1 ]; then n=$conc; else n=$count; fi
	local outs=()
	for ((i = 0; i < n; i++)); do
		if [ "$conc" -gt 1 ]; then outs+=("$WORK/out/c$i"); else outs+=("$WORK/out/s$i"); fi
	done
	[ $fail = 1 ] || verify "$file" "${outs[@]}" || fail=1
	[ $fail = 0 ] || { echo "run.sh: $case on $server failed" >&2; exit 1; }
	awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v mib="$mib" \
		'BEGIN { printf "%.1f %.2f\n", mib / (t1 - t0), (c1 - c0) / 1e6 / mib }'
}

read -r -a CASES <<<"${BENCH_CASES:-1M-bs512 1M-bs1468 1M-ws8 1M-ws16 big-bs512 big-bs1468 big-ws8 big-ws16 conc}"
RESULTS="$WORK/results"
: >"$RESULTS"
for ((rep = 0; rep < REPS; rep++)); do
	for case in "${CASES[@]}"; do
		# Rotate the order of servers each repetition.
		for ((k = 0; k < ${#SERVERS[@]}; k++)); do
			s=${SERVERS[$(((k + rep) % ${#SERVERS[@]}))]}
			# Not in $(...): a failure must exit this shell, whose trap
			# stops the servers it started.
			measure "$s" "$case" >"$WORK/m"
			echo "$case $s $(cat "$WORK/m")" >>"$RESULTS"
		done
	done
	echo "repetition $((rep + 1))/$REPS done" >&2
done

# Medians per (case, server), then ratios of ironcast against tftpd-hpa and
# atftpd (throughput: higher is better; CPU per MiB: lower is better).
echo
echo "TFTP benchmark: $REPS repetition(s), medians; server on CPU0, atftp client(s) on CPU1; 1M cases fetch ${SMALL_COUNT}x 1 MiB, conc = $CONC clients x 1 MiB at blksize 1468"
echo "single-client cases run one atftp process for all of their fetches (the client's process start-up is not timed); conc starts one atftp process per client"
echo "conc runs every server the same way ($CONC atftp processes at once on CPU1); its MiB/s is bound by that client core, so compare its ms/MiB (server CPU per MiB)"
awk -v order="${CASES[*]}" '
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ tp[$1 " " $2] = tp[$1 " " $2] " " $3; cpu[$1 " " $2] = cpu[$1 " " $2] " " $4 }
END {
	printf "%-11s %-10s %9s %9s   %s\n", "case", "server", "MiB/s", "ms/MiB", "ironcast vs peer (speed x, cpu x)"
	nc = split(order, cases, " ")
	split("ironcast tftpd-hpa dnsmasq atftpd", servers, " ")
	for (c = 1; c <= nc; c++) {
		for (s = 1; s <= 4; s++) {
			k = cases[c] " " servers[s]
			T[s] = median(tp[k]); C[s] = median(cpu[k])
		}
		for (s = 1; s <= 4; s++) {
			note = ""
			if (s > 1 && T[s] > 0) note = sprintf("%.2fx, %.2fx", T[1] / T[s], (C[s] > 0 ? C[1] / C[s] : 0))
			printf "%-11s %-10s %9.1f %9.2f   %s\n", cases[c], servers[s], T[s], C[s], note
		}
	}
}' "$RESULTS"
