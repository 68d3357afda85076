#!/usr/bin/env bash
# Batch ingest with rollups on and off, same realistic history, fresh data directory each:
# prints the acknowledged rate (loadgen), the time until storage caught up, the storage
# applier's busy time, and the database size.
#
#   scripts/bench/ingest-rollups.sh [EVENTS]        (default 3000000)
#
# FOOTFALL_BIN / LOADGEN_BIN default to the release build; FOOTFALL_GEOIP_DB is passed on.
set -euo pipefail
EVENTS=${1:-3000000}
T=${CARGO_TARGET_DIR:-$HOME/.cache/footfall-target}/release
BIN=${FOOTFALL_BIN:-$T/footfall}
LOADGEN=${LOADGEN_BIN:-$T/footfall-loadgen}
PORT=${PORT:-8093}
geo=()
[ -n "${FOOTFALL_GEOIP_DB:-}" ] && geo=(--geoip-db "$FOOTFALL_GEOIP_DB")
metric() { curl -s "localhost:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
for mode in on off; do
  d=$(mktemp -d)
  extra=()
  [ "$mode" = off ] && extra=(--no-rollups)
  "$BIN" serve --data-dir "$d/data" --admin-token T --listen "127.0.0.1:$PORT" \
    --db-memory-limit 512MB "${geo[@]}" "${extra[@]}" > "$d/server.log" 2>&1 &
  pid=$!
  until curl -sf "localhost:$PORT/healthz" > /dev/null; do sleep 0.2; done
  start=$(date +%s.%N)
  FOOTFALL_ADMIN_TOKEN=T "$LOADGEN" --mode history --url "http://127.0.0.1:$PORT" \
    --events "$EVENTS" --days 30 --sites 20 --seed 2 --concurrency 4 --batch-size 1000 > "$d/load.log" 2>&1
  until [ "$(metric footfall_applier_lag_records)" = "0" ]; do sleep 0.5; done
  stored=$(date +%s.%N)
  echo "rollups $mode: $(grep 'events accepted' "$d/load.log")"
  echo "  stored after $(echo "$stored - $start" | bc) s; applier busy $(metric footfall_apply_seconds_sum) s"
  kill -TERM "$pid"; wait "$pid" || true
  echo "  database $(du -h "$d/data/footfall.duckdb" | cut -f1)"
  rm -rf "$d"
done
