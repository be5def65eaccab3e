#!/usr/bin/env bash
# Benchmarks the ironcast server holding a large inventory: RSS, the time
# to list every machine over the API, get-by-MAC, and create rate.
#
#   test/bench/core/run.sh            # 100,000 machines
#   N=5000 test/bench/core/run.sh     # quick (CI) size
#
# The server listens on 127.0.0.1 only and is stopped (by PID) at the end.
set -euo pipefail
N=${N:-100000}
REPS=${REPS:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cd "$root"
go build -o "$tmp/ironcast" ./cmd/ironcast
go build -o "$tmp/seed" ./test/bench/core/seed
go build -o "$tmp/apibench" ./test/bench/core/apibench

data="$tmp/data"
start=$(date +%s.%N)
"$tmp/seed" --data-dir "$data" -n "$N"
echo "seed: $(echo "$(date +%s.%N) - $start" | bc) s"

port=$((20000 + RANDOM % 20000)); hport=$((port + 1))
XDG_CONFIG_HOME="$tmp/cfg" "$tmp/ironcast" serve --data-dir "$data" --listen 127.0.0.1 \
  --api-port "$port" --http-port "$hport" --log-level warn >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -skf "https://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }
echo "RSS after start with $N machines: $(rss) MiB"
"$tmp/apibench" -endpoint "https://127.0.0.1:$port" -ca "$data/tls.crt" -password-file "$data/admin-password" \
  -n "$N" -reps "$REPS" -pid "$pid"
echo "RSS at the end: $(rss) MiB (peak $(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status") MiB)"
