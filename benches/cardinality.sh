#!/usr/bin/env bash
# Many distinct series in one window (BENCHMARKS.md "Cardinality"): a device that puts a
# counter in its topic, and a reader who asks for everything.
# - `iotitan-stats --dry-run` over one five-minute window of N distinct series (one reading
#   each), N = 10^3 … 10^6: wall time and peak RSS, with the default `stats.max_series`
#   (100 000) and with `max_series` above N; beside it, N readings of one series;
# - the 10^6 window published for real (mosquitto on loopback): wall time and peak RSS;
# - `iotitan-http` over the 10^6 file: `/topics` (a page and its `rel="next"`), `/aggregate`
#   of every series (400 too_many_series), of one series (200), eight of those at once; the
#   daemon's peak RSS (VmHWM) after all of them.
#
# Usage: benches/cardinality.sh   (after `cargo build --release --bin iotitan-stats --bin iotitan-http`)
# Env: DIR (default /tmp/iotitan-cardinality), BIN (default target/release)
set -euo pipefail
DIR=${DIR:-/tmp/iotitan-cardinality} BIN=${BIN:-target/release}
ID=iotitan-logger
export LC_ALL=C TZ=UTC
mkdir -p "$DIR"

# One window, 05:00–05:05, N lines spread over it, in time order.
gen() { # gen N FILE SAME: SAME=1 gives N readings of one series
  [ -s "$2" ] && return
  python3 - "$1" "$2" "$3" <<'PY'
import sys
n, path, same = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
with open(path, "w") as f:
    for i in range(n):
        us = 300_000_000 * i // n
        t = f"2026-11-22T05:{us // 60_000_000:02}:{us // 1_000_000 % 60:02}.{us % 1_000_000:06}Z"
        dev = 0 if same else i
        f.write(f"{t} pi iotitan-logger[812]: iotitan/card/dev{dev:07}/temperature {i % 30}.5\n")
PY
}

stats_run() { # stats_run FILE MAX_SERIES
  printf '[syslog]\nidentifier = "%s"\n[stats]\ntopics = ["iotitan/#"]\nstatistics = ["mean", "min", "max", "count"]\nmax_series = %s\n' \
    "$ID" "$2" > "$DIR/stats.toml"
  /usr/bin/time -f '%e s %M KB' "$BIN/iotitan-stats" -c "$DIR/stats.toml" --dry-run --no-progress \
    --input "$1" --since 2026-11-22T05:00:00Z --until 2026-11-22T05:05:00Z 2> "$DIR/time" > "$DIR/out"
  local series; series=$(grep -c '_count ' "$DIR/out" || true)
  printf '%s computed, %s\n' "$series" "$(tail -1 "$DIR/time")"
}

echo "## stats: one window, N distinct series (one reading each)"
for n in 1000 10000 100000 1000000; do
  gen $n "$DIR/series-$n" 0
  printf 'N=%-8s default max_series: ' $n; stats_run "$DIR/series-$n" 100000
  printf 'N=%-8s max_series=N:         ' $n; stats_run "$DIR/series-$n" $((n > 100000 ? n : 100000))
done
gen 1000000 "$DIR/one-series" 1
printf '1000000 readings of one series:      '; stats_run "$DIR/one-series" 100000

echo "## stats: the 10^6 window published (max_series 10^6) to a mosquitto on loopback"
MQPORT=$((20000 + RANDOM % 20000))
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQPORT" > "$DIR/mosquitto.conf"
mosquitto -c "$DIR/mosquitto.conf" > "$DIR/mosquitto.log" 2>&1 &
MPID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MQPORT") 2>/dev/null && break; sleep 0.1; done
printf '[syslog]\nidentifier = "%s"\n[mqtt]\nhost = "127.0.0.1"\nport = %s\n[stats]\ntopics = ["iotitan/#"]\nstatistics = ["mean", "min", "max", "count"]\nmax_series = 1000000\n' \
  "$ID" "$MQPORT" > "$DIR/publish.toml"
/usr/bin/time -f '%e s %M KB' "$BIN/iotitan-stats" -c "$DIR/publish.toml" --no-progress \
  --input "$DIR/series-1000000" --since 2026-11-22T05:00:00Z --until 2026-11-22T05:05:00Z 2>&1 | tail -2
kill $MPID; wait $MPID 2>/dev/null || true

echo "## iotitan-http over the 10^6 file"
PORT=$((20000 + RANDOM % 20000))
printf '[syslog]\nidentifier = "%s"\nsources = ["%s"]\n[http]\nlisten = "127.0.0.1:%s"\n[[http.token]]\nname = "bench"\nscopes = ["read"]\n' \
  "$ID" "$DIR/series-1000000" "$PORT" > "$DIR/http.toml"
IOTITAN_HTTP_TOKEN_BENCH=0123456789abcdef0123456789abcdef "$BIN/iotitan-http" -c "$DIR/http.toml" > "$DIR/http.log" 2>&1 &
HPID=$!
trap 'kill $HPID 2>/dev/null; wait $HPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$PORT/api/v1"
range="since=2026-11-22T04:00:00Z&until=2026-11-22T06:00:00Z"
ask() { # ask NAME PATH
  curl -s -o "$DIR/body" -D "$DIR/headers" -w '%{http_code} %{size_download} B %{time_total} s' \
    -H 'Authorization: Bearer 0123456789abcdef0123456789abcdef' "$base$2"
  printf '  %s\n' "$1"
}
rss() { awk '/VmHWM/ { print $2 " KB peak RSS" }' "/proc/$HPID/status"; }
echo "started: $(rss)"
ask "/topics, first page" "/topics?$range"
grep -i '^link:' "$DIR/headers" | cut -c1-120
next=$(grep -i '^link:' "$DIR/headers" | sed 's/^[Ll]ink: <\/api\/v1\(.*\)>; rel="next".*/\1/' | tr -d '\r')
ask "/topics, the next page" "$next"
ask "/aggregate of every series" "/aggregate?topics=iotitan/%23&$range&every=1h"
head -c 200 "$DIR/body"; echo
ask "/aggregate of one series" "/aggregate?topics=iotitan/card/dev0500000/temperature&$range&every=1h"
ask "/history of every series" "/history?topics=iotitan/%23&$range"
pids=()
for _ in $(seq 8); do ask "/aggregate of one series, 8 at once" \
  "/aggregate?topics=iotitan/card/dev0700000/temperature&$range&every=5m" & pids+=($!); done
wait "${pids[@]}"
echo "after all: $(rss)"
