#!/usr/bin/env bash
# Where one hot path's server CPU goes: `node --cpu-prof` on the shared harness's server, under
# wrk from the other core, then the top functions by self time (see bench/README.md).
#
#   npm run build && bash bench/profile.sh p_rateLimit [f_phys ...]
#
# Each scenario (the project's from bench/peer-scenarios.cjs, or a peer's by name) runs in turn
# on a redis-server of its own (port REDIS_PORT, default 6391) with the same shape as
# ../shared/peer-bench: server pinned to cpu 0, wrk -t1 -c50 and Redis pinned to cpu 1.
# PROFILE=0 measures without the profiler (server CPU µs/req from /proc, for A/B runs).
# Env: DURATION=8 (seconds profiled, after 2 s of warm-up), TOP=25, PEERBENCH=../shared/peer-bench,
# WORKDIR=${TMPDIR:-/tmp}/peerbench (shared with run.sh), OUT=bench/results/profile-<stamp>.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERBENCH=$(cd "${PEERBENCH:-$ROOT/../shared/peer-bench}" && pwd)
WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/peerbench}
REDIS_PORT=${REDIS_PORT:-6391}
PORT=${PORT:-3101}
DURATION=${DURATION:-8}
TOP=${TOP:-25}
OUT=${OUT:-$ROOT/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)}
[ $# -gt 0 ] || { echo "usage: bash bench/profile.sh <scenario> [...]" >&2; exit 2; }
for t in node wrk redis-server redis-cli taskset; do
  command -v "$t" >/dev/null || { echo "missing $t (Debian: apt-get install -y redis-server wrk util-linux)" >&2; exit 1; }
done
[ -d "$ROOT/dist" ] || { echo "no dist/: run npm run build first" >&2; exit 1; }

mkdir -p "$WORKDIR" "$OUT"
cp "$PEERBENCH"/{package.json,package-lock.json,server.js,runner.js,wrk-report.lua} "$WORKDIR"/
rm -rf "$WORKDIR/scenarios" && cp -r "$PEERBENCH/scenarios" "$WORKDIR/"
(cd "$WORKDIR" && { npm ls --depth=0 >/dev/null 2>&1 || npm ci --no-audit --no-fund >/dev/null; })

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "something already listens on redis port $REDIS_PORT; set REDIS_PORT" >&2; exit 1
fi
# The daemon must not inherit a lock fd of the caller (flock): closed fds 3-9.
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$OUT/redis.pid" >/dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

export PROJECT_DIR=$ROOT EXTRA_SCENARIOS=$ROOT/bench/peer-scenarios.cjs REDIS_PORT PORT
for scenario in "$@"; do
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
  prof=(--cpu-prof --cpu-prof-dir="$OUT/$scenario")
  [ "${PROFILE:-1}" = 1 ] || prof=()
  (cd "$WORKDIR" && exec taskset -c 0 node "${prof[@]}" server.js "$scenario") &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/__stats" >/dev/null 2>&1 && break; sleep 0.1; done
  kill -0 "$server" 2>/dev/null || { echo "$scenario: the server did not start" >&2; exit 1; }
  prime=$(curl -s "http://127.0.0.1:$PORT/__prime" || true)
  header=()
  cookie=$(node -e 'try{for(const h of JSON.parse(process.argv[1]).headers||[])console.log(h)}catch{}' "$prime")
  while IFS= read -r line; do [ -n "$line" ] && header+=(-H "$line"); done <<<"$cookie"
  taskset -c 1 wrk -t1 -c50 -d2s "${header[@]}" "http://127.0.0.1:$PORT/api" >/dev/null
  ticks0=$(awk '{print $14 + $15}' "/proc/$server/stat")
  taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" "${header[@]}" "http://127.0.0.1:$PORT/api" >"$OUT/wrk.txt"
  ticks1=$(awk '{print $14 + $15}' "/proc/$server/stat")
  requests=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt")
  hz=$(getconf CLK_TCK)
  echo "$scenario: $rps req/s, server CPU $(((ticks1 - ticks0) * 1000000 / hz / requests)) us/req$(grep -o 'Non-2xx.*' "$OUT/wrk.txt" | sed 's/^/, /')"
  redis-cli -p "$REDIS_PORT" info commandstats | grep -o '^cmdstat_[a-z]*:calls=[0-9]*' |
    tr '\n' ' ' | sed "s/^/$scenario redis: /" || true # none: a scenario without Redis
  echo
  kill -INT "$server"
  for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server" 2>/dev/null || true # a scenario whose close() hangs
  wait "$server" 2>/dev/null || true
  [ "${PROFILE:-1}" = 1 ] && node "$ROOT/bench/profile-top.cjs" "$OUT/$scenario" "$TOP"
done
echo "profiles: $OUT"
