#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md on this machine: baseline vs footfall single-event ingest
# (wrk, and footfall-loadgen at fixed rates), event -> SSE latency, realistic traffic and batch
# ingest (footfall-loadgen), live read latency and RSS with many active visitors, and restart
# time after SIGKILL (log replay) and SIGTERM (snapshots). Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/footfall-target}"
cargo build --release -q -p footfall
BIN="$CARGO_TARGET_DIR/release"
DATA="$(mktemp -d)"
PORT=18080
BASE_PORT=18090
DUR="${DUR:-10}"
cleanup() { kill "${SERVER:-0}" "${BASELINE:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

start_server() {
    "$BIN/footfall" serve --data-dir "$DATA" --site example.com --site probe.example --admin-token T --listen "127.0.0.1:$PORT" >"$DATA.log" 2>&1 &
    SERVER=$!
    until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.1; done
}

"$BIN/footfall-loadgen" --mode baseline --url "127.0.0.1:$BASE_PORT" >/dev/null &
BASELINE=$!
start_server
sleep 0.5

echo "## single event, wrk -t1 -c64 -d${DUR}s"
echo "### bare axum 202 handler"
wrk -t1 -c64 -d"${DUR}s" --latency -s benches/event.lua "http://127.0.0.1:$BASE_PORT/api/event" | grep -E "Requests/sec|  50%|  99%"
echo "### footfall (durable)"
wrk -t1 -c64 -d"${DUR}s" --latency -s benches/event.lua "http://127.0.0.1:$PORT/api/event" | grep -E "Requests/sec|  50%|  99%"
echo "### footfall at a fixed lower load: wrk -c8"
wrk -t1 -c8 -d"${DUR}s" --latency -s benches/event.lua "http://127.0.0.1:$PORT/api/event" | grep -E "Requests/sec|  50%|  99%"

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
echo "storage applier after the burst: log at $(metric footfall_log_position), applied $(metric footfall_applied_position)"

echo "## single event at a fixed rate (footfall-loadgen --rate, latency from each request's due time)"
for RATE in ${RATES:-8000 16000}; do
    echo "### $RATE req/s"
    "$BIN/footfall-loadgen" --mode single --url "http://127.0.0.1:$PORT" --concurrency 64 --duration "$DUR" --rate "$RATE" | grep -E "requests|latency"
done

echo "## event accepted -> SSE update (probe site), idle and beside a realistic load on another site"
"$BIN/footfall-loadgen" --mode sse-latency --url "http://127.0.0.1:$PORT" --site probe.example --token T --duration "$DUR" | grep -E "latency|probes"
"$BIN/footfall-loadgen" --mode realistic --url "http://127.0.0.1:$PORT" --concurrency 32 --duration "$((DUR + 4))" > "$DATA.realistic" &
LOAD=$!
sleep 2
"$BIN/footfall-loadgen" --mode sse-latency --url "http://127.0.0.1:$PORT" --site probe.example --token T --duration "$DUR" | grep -E "latency|probes"
wait "$LOAD"; grep -E "requests" "$DATA.realistic"

echo "## realistic visitors (footfall-loadgen, 64 concurrent)"
"$BIN/footfall-loadgen" --mode realistic --url "http://127.0.0.1:$PORT" --concurrency 64 --duration "$DUR"
echo "## batch ingest (footfall-loadgen, 4 concurrent x 1000 events)"
"$BIN/footfall-loadgen" --mode batch --url "http://127.0.0.1:$PORT" --token T --concurrency 4 --duration "$((DUR * 3))" --batch-size 1000

echo "## live read"
ACTIVE=$(curl -s -H 'Authorization: Bearer T' "http://127.0.0.1:$PORT/api/stats/example.com/live?limit=20" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["activeVisitors"], d["totalPageViews"])')
echo "active visitors, total page views: $ACTIVE"
echo "RSS kB: $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)"
wrk -t1 -c8 -d"${DUR}s" --latency -H 'Authorization: Bearer T' "http://127.0.0.1:$PORT/api/stats/example.com/live?limit=20" | grep -E "Requests/sec|  50%|  99%"

echo "## restart after SIGKILL: no snapshot yet, so the whole log is replayed"
echo "log at $(metric footfall_log_position), applied $(metric footfall_applied_position), log bytes $(metric footfall_log_bytes)"
kill -KILL "$SERVER"; wait "$SERVER" || true
EVENTS=$(du -sh "$DATA" | cut -f1)
T0=$(date +%s.%N)
start_server
T1=$(date +%s.%N)
echo "data dir $EVENTS; start-up to healthy: $(python3 -c "print(round($T1-$T0,2))") s"
grep -oE '(sequencer state recovered|live state recovered|state recovered).*' "$DATA.log" | tail -3
echo "RSS kB after start: $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)"

echo "## restart after SIGTERM: snapshots at the end of the log, nothing to replay"
kill -TERM "$SERVER"; wait "$SERVER" || true
T0=$(date +%s.%N)
start_server
T1=$(date +%s.%N)
echo "start-up to healthy: $(python3 -c "print(round($T1-$T0,2))") s"
grep -oE '(sequencer state recovered|live state recovered).*' "$DATA.log" | tail -2
