#!/usr/bin/env bash
# HTTP boot benchmark: the real `ironcast serve` against nginx on 127.0.0.1.
#
#   test/bench/http/run.sh                 # 3 repetitions of 5 s runs
#   REPS=5 DUR=10 test/bench/http/run.sh   # longer
#   HTTPBENCH_QUICK=1 test/bench/http/run.sh   # CI: 1 repetition of 1 s runs
#   IRONCAST_BIN=/path/to/ironcast test/bench/http/run.sh  # another build
#                                          # (e.g. an older commit's) instead
#                                          # of this tree's
#
# ironcast runs as `ironcast serve --listen 127.0.0.1` on a data directory
# seeded (by ./main.go) with MACHINES machines booting discovery, so every
# rendered script goes the real way: bootfs -> provision.Service.Render
# (machine lookup by MAC in bbolt, params, profiles, bootenv, templates, a
# machine token) -> httpboot, with the daemon's events, timelines and
# metrics. Servers run pinned to CPU0 (Go then runs with GOMAXPROCS=1), wrk
# to CPU1 (FIELD.md's method). Every repetition starts both servers fresh
# and rotates the order of the runs. Measured:
#   large     32 MiB file, 4 connections: MiB/s and server CPU ms per MiB
#   rendered  per-machine iPXE scripts at /<mac>.ipxe, 50 connections, wrk
#             cycling through the machines' MACs:
#               hit   1,000 machines: after one unmeasured 1 s pass, every
#                     script comes from the render cache
#               miss  all MACHINES machines (default 20,000), more than the
#                     render cache holds (16,384 entries), in order: the LRU
#                     never hits and every request renders (what a
#                     machine's first boot, or its first after a change,
#                     costs)
#   static    a 2 KiB file, 50 connections, from nginx (the target's
#             reference) and from ironcast
# requests/s and server CPU µs per request (from /proc/PID/stat). Medians
# are printed, and the ratios against the targets (large >= 0.95x nginx,
# rendered >= 0.6x nginx static) as the median over repetitions of the
# ratio of two runs made back to back (the other ratios: of medians). Any non-2xx response or socket error fails the
# run. nginx runs from a private config in a temp dir (daemon off, pid file
# there); the system nginx service is never touched. Only the processes
# this script starts are stopped, by PID.
set -euo pipefail

cd "$(dirname "$0")/../../.."
REPS=${REPS:-3}
DUR=${DUR:-5}
MACHINES=${MACHINES:-20000}
HOT=1000
if [[ ${HTTPBENCH_QUICK:-0} == 1 ]]; then REPS=1; DUR=1; fi

for tool in nginx wrk curl taskset go python3; do
	command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "run.sh: needs $tool" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
TCK=$(getconf CLK_TCK)

tmp=$(mktemp -d /tmp/httpbench.XXXXXX)
chmod 755 "$tmp" # nginx's worker runs as nobody
declare -a PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The tree both servers serve.
root=$tmp/root
mkdir -p "$root"
head -c $((32 << 20)) /dev/urandom >"$root/big.img"
python3 - "$root/small.ipxe" <<'EOF'
import sys
line = "echo static script line padding padding padding padding padding\n"
body = "#!ipxe\n" + line * 40
open(sys.argv[1], "w").write(body[:2048])
EOF
BIGSHA=$(sha256sum "$root/big.img" | cut -d' ' -f1)

if [[ -n ${IRONCAST_BIN:-} ]]; then
	cp "$IRONCAST_BIN" "$tmp/ironcast"
else
	go build -o "$tmp/ironcast" ./cmd/ironcast
fi
go build -o "$tmp/httpbench" ./test/bench/http
# One seeded data directory, copied fresh for every start.
"$tmp/httpbench" -data-dir "$tmp/seed" -machines "$MACHINES"
mkdir -p "$tmp/seed/boot"
cp "$root/big.img" "$root/small.ipxe" "$tmp/seed/boot/"

cat >"$tmp/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d bytes=%d us=%d status=%d sock=%d\n",
    summary.requests, summary.bytes, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
# Rendered scripts: cycle through the first N machines' MACs (N: the
# script's argument), requests formatted once up front so the client
# spends little per request.
cat "$tmp/report.lua" - >"$tmp/machines.lua" <<'EOF'
local reqs = {}
local i = 0
init = function(args)
  local n = tonumber(args[1])
  for k = 0, n - 1 do
    reqs[k + 1] = wrk.format("GET", string.format("/52:54:02:%02x:%02x:%02x.ipxe", math.floor(k / 65536) % 256, math.floor(k / 256) % 256, k % 256))
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
EOF

# cpu_ticks PID: user+system ticks of PID and its child processes.
cpu_ticks() {
	local total=0 p
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		[[ -r /proc/$p/stat ]] || continue
		total=$((total + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
	done
	echo "$total"
}

wait_http() { # URL
	for _ in $(seq 100); do
		curl -sf -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "run.sh: $1 never answered" >&2
	return 1
}

start_ironcast() {
	GOPORT=$(freeport)
	local api
	api=$(freeport)
	rm -rf "$tmp/data"
	cp -a "$tmp/seed" "$tmp/data"
	XDG_CONFIG_HOME="$tmp/cfg" taskset -c 0 "$tmp/ironcast" serve --data-dir "$tmp/data" --listen 127.0.0.1 \
		--api-port "$api" --http-port "$GOPORT" --log-level warn >"$tmp/ironcast.log" 2>&1 &
	GOPID=$!
	PIDS+=("$GOPID")
	wait_http "http://127.0.0.1:$GOPORT/small.ipxe"
}

start_nginx() {
	NGPORT=$(freeport)
	local d=$tmp/nginx
	rm -rf "$d"
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    types { text/plain ipxe; application/octet-stream img; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGPORT;
        root $root;
        autoindex off;
    }
}
EOF
	taskset -c 0 "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stdout.log" 2>&1 &
	NGPID=$!
	PIDS+=("$NGPID")
	wait_http "http://127.0.0.1:$NGPORT/small.ipxe"
}

stop() { # PID
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# measure NAME PID URL CONNS SCRIPT [ARG]: one wrk run; appends to
# $tmp/results
measure() {
	local name=$1 pid=$2 url=$3 conns=$4 script=$5 arg=${6:-}
	local c0 c1 out
	if [[ $name == rendered-hit ]]; then # one unmeasured pass fills the cache
		taskset -c 1 wrk -t1 -c"$conns" -d1s --timeout 10s -s "$script" "$url" -- "$arg" >/dev/null
	fi
	c0=$(cpu_ticks "$pid")
	out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${DUR}s" --timeout 10s -s "$script" "$url" -- "$arg")
	c1=$(cpu_ticks "$pid")
	local line
	line=$(grep '^RESULT' <<<"$out") || { echo "run.sh: wrk gave no result:"; echo "$out"; exit 1; }
	echo "$name $line cpu_ticks=$((c1 - c0)) rep=$rep" >>"$tmp/results"
	echo "  $name: $line cpu_ms=$(((c1 - c0) * 1000 / TCK))"
}

# Correctness first: both servers give the same bytes, and ironcast
# renders the last machine's script with its name and token, the same on a
# second fetch (from the render cache).
start_ironcast
start_nginx
for port in "$GOPORT" "$NGPORT"; do
	got=$(curl -s "http://127.0.0.1:$port/big.img" | sha256sum | cut -d' ' -f1)
	[[ $got == "$BIGSHA" ]] || { echo "run.sh: big.img from port $port has sha256 $got, want $BIGSHA" >&2; exit 1; }
done
last=$((MACHINES - 1))
lastmac=$(printf '52:54:02:%02x:%02x:%02x' $((last >> 16 & 255)) $((last >> 8 & 255)) $((last & 255)))
check_script() {
	{ grep -q "^# ironcast: discovery for node-$(printf %06d "$last") " <<<"$1" &&
		grep -q '^kernel http://127.0.0.1:'"$GOPORT"'/discovery/amd64/vmlinuz .*ironcast.token=ey.*ironcast.uuid=' <<<"$1"; } ||
		{ echo "run.sh: rendered script is wrong:"; echo "$1"; exit 1; }
}
script=$(curl -sf "http://127.0.0.1:$GOPORT/$lastmac.ipxe")
check_script "$script"
again=$(curl -sf "http://127.0.0.1:$GOPORT/$lastmac.ipxe")
check_script "$again"
[[ $again == "$script" ]] || echo "note: a second fetch differs from the first (its token): this build renders every request"
echo "rendered script: $(wc -c <<<"$script") bytes; static small.ipxe: $(wc -c <"$root/small.ipxe") bytes; $MACHINES machines"

# sendfile check: strace ironcast while it serves the large file.
if command -v strace >/dev/null; then
	strace -f -qq -e trace=sendfile -o "$tmp/strace.txt" -p "$GOPID" 2>/dev/null &
	STPID=$!
	PIDS+=("$STPID")
	sleep 1
	curl -s -o /dev/null "http://127.0.0.1:$GOPORT/big.img"
	sleep 0.5
	stop "$STPID"
	calls=$(grep -c 'sendfile(' "$tmp/strace.txt" || true)
	bytes=$(grep -o '= [0-9]*$' "$tmp/strace.txt" | awk '{s += $2} END {print s + 0}')
	echo "sendfile: $calls calls moved $bytes of $((32 << 20)) bytes of big.img"
	[[ $calls -gt 0 ]] || { echo "run.sh: httpboot did not use sendfile" >&2; exit 1; }
fi
stop "$GOPID"
stop "$NGPID"

: >"$tmp/results"
for rep in $(seq "$REPS"); do
	echo "repetition $rep/$REPS"
	start_ironcast
	start_nginx
	# Each ratio's two runs go back to back (a pair), so that a change in
	# the machine's speed between them, which on a shared host moves a 5 s
	# run by 20 % or more, hits both alike. The order of the pairs rotates
	# and the order within a pair alternates with each repetition.
	pairs=(
		"large-ironcast $GOPID http://127.0.0.1:$GOPORT/big.img 4 $tmp/report.lua|large-nginx $NGPID http://127.0.0.1:$NGPORT/big.img 4 $tmp/report.lua"
		"rendered-hit $GOPID http://127.0.0.1:$GOPORT/ 50 $tmp/machines.lua $HOT|static-nginx $NGPID http://127.0.0.1:$NGPORT/small.ipxe 50 $tmp/report.lua"
		"rendered-miss $GOPID http://127.0.0.1:$GOPORT/ 50 $tmp/machines.lua $MACHINES|static-ironcast $GOPID http://127.0.0.1:$GOPORT/small.ipxe 50 $tmp/report.lua"
	)
	n=${#pairs[@]}
	for i in $(seq 0 $((n - 1))); do
		pair=${pairs[$(((i + rep - 1) % n))]}
		first=${pair%%|*} second=${pair#*|}
		if ((rep % 2 == 0)); then first=${pair#*|} second=${pair%%|*}; fi
		# shellcheck disable=SC2086
		measure $first
		# shellcheck disable=SC2086
		measure $second
	done
	stop "$GOPID"
	stop "$NGPID"
done

python3 - "$tmp/results" "$TCK" "$REPS" "$DUR" <<'EOF'
import sys, statistics, collections
path, tck, reps, dur = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = collections.defaultdict(list)
bad = []
for line in open(path):
    name, _, *kv = line.split()
    d = {k: int(v) for k, v in (x.split("=") for x in kv)}
    if d["status"] or d["sock"]:
        bad.append(f"{name}: {d['status']} non-2xx, {d['sock']} socket errors")
    if d["requests"] == 0:
        print(f"FAIL: {name} completed no request in a run (a stalled server, or a machine too busy to measure)")
        sys.exit(1)
    runs[name].append(d)

def med(name, f):
    return statistics.median(f(d) for d in runs[name])

mib = lambda d: d["bytes"] / 2**20
tput = lambda d: mib(d) / (d["us"] / 1e6)
ms_per_mib = lambda d: d["cpu_ticks"] * 1000 / tck / mib(d)
rps = lambda d: d["requests"] / (d["us"] / 1e6)
us_per_req = lambda d: d["cpu_ticks"] * 1e6 / tck / d["requests"]

print(f"\nHTTP boot, ironcast serve vs nginx, medians of {reps} x {dur}s (server CPU0, wrk CPU1)")
print(f"{'test':<34}{'throughput':>14}{'server CPU':>16}")
for name in ["large-ironcast", "large-nginx"]:
    print(f"{name + ' 32 MiB x4':<34}{med(name, tput):>9.0f} MiB/s{med(name, ms_per_mib):>10.2f} ms/MiB")
for name, what in [("rendered-hit", "iPXE, cache hits x50"), ("rendered-miss", "iPXE, cache misses x50"), ("static-nginx", "static 2 KiB x50"), ("static-ironcast", "static 2 KiB x50")]:
    print(f"{name + ' ' + what:<34}{med(name, rps):>10.0f} req/s{med(name, us_per_req):>11.1f} µs/req")
def paired(a, b, f):
    """Per-repetition ratios of two runs made back to back, and their median."""
    by_rep = {d["rep"]: d for d in runs[b]}
    rs = [f(d) / f(by_rep[d["rep"]]) for d in runs[a] if d["rep"] in by_rep]
    return statistics.median(rs), rs

r1, r1s = paired("large-ironcast", "large-nginx", tput)
r2, r2s = paired("rendered-hit", "static-nginx", rps)
r2m = med("rendered-miss", rps) / med("static-nginx", rps)
r3 = med("static-ironcast", rps) / med("static-nginx", rps)
each = lambda rs: ", ".join(f"{r:.2f}" for r in rs)
print("\nratios of runs made back to back, median over repetitions (each repetition's in brackets):")
print(f"ratio large files ironcast/nginx        {r1:.2f}  (target >= 0.95) {'ok' if r1 >= 0.95 else 'BELOW TARGET'}  [{each(r1s)}]")
print(f"ratio rendered (hits)/nginx static      {r2:.2f}  (target >= 0.60) {'ok' if r2 >= 0.6 else 'BELOW TARGET'}  [{each(r2s)}]")
print("ratios of medians:")
print(f"ratio rendered (misses)/nginx static    {r2m:.2f}  (reference: once per machine and change)")
print(f"ratio static 2 KiB ironcast/nginx       {r3:.2f}  (reference)")
if bad:
    print("\nFAIL: " + "; ".join(bad))
    sys.exit(1)
EOF
