#!/usr/bin/env bash
# Logger load procedure (BENCHMARKS.md "Logger"): the same broker, rsyslogd and 200 000 QoS 0
# messages from `mosquitto_pub -l`, consumed in turn by
#   (a) mosquitto_sub -v -t '#' > file            — the broker's fan-out limit here
#   (b) mosquitto_sub -v -t '#' | logger --socket — the original IoTitan logger
#   (c) iotitan-logger
# For each: messages/s from the first publish to the last record, records lost, CPU seconds
# per message of the consumer processes, and their peak RSS.
# Usage: benches/logger-load.sh [COUNT]   (needs mosquitto, mosquitto-clients, rsyslog, bsdutils)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
cargo build --release --quiet --bin iotitan-logger
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/iotitan-logger
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$D"' EXIT
PORT=$((20000 + RANDOM % 20000))
cat > "$D/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
set_tcp_nodelay true
$( [ "$(id -u)" = 0 ] && echo "user root" )
CONF
mosquitto -c "$D/mosquitto.conf" >/dev/null 2>&1 &
cat > "$D/rsyslog.conf" <<CONF
global(workDirectory="$D" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$D/log.sock" RateLimit.Interval="0")
action(type="omfile" file="$D/syslog" template="RSYSLOG_FileFormat" asyncWriting="on" ioBufferSize="256k")
CONF
rsyslogd -n -f "$D/rsyslog.conf" -i "$D/rsyslogd.pid" &
for _ in $(seq 100); do [ -S "$D/log.sock" ] && (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
seq 1 "$N" | sed 's/^/value /' > "$D/lines"
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
count() { grep -c "load/x" "$1" 2>/dev/null || true; }

# run NAME OUTFILE PID...: publish, wait until all records arrived (or 5 s without progress).
run() {
  local name=$1 out=$2; shift 2
  local pids=("$@")
  sleep 1   # subscriptions settle (startup, not measured)
  local t0; t0=$(date +%s.%N)
  local c0=0; for p in "${pids[@]}"; do c0=$((c0 + $(cpu_ticks "$p"))); done
  mosquitto_pub -p $PORT -t load/x -q 0 -l < "$D/lines"
  local last=-1 got=0 still=0 tlast=$t0
  while :; do
    got=$(count "$out")
    if [ "$got" -ge "$N" ]; then tlast=$(date +%s.%N); break; fi
    if [ "$got" = "$last" ]; then still=$((still + 1)); [ $still -ge 50 ] && break; else still=0; tlast=$(date +%s.%N); fi
    last=$got; sleep 0.1
  done
  local c1=0 rss=0; for p in "${pids[@]}"; do c1=$((c1 + $(cpu_ticks "$p"))); rss=$((rss + $(peak_rss_kb "$p"))); done
  python3 - "$name" "$N" "$got" "$t0" "$tlast" "$c0" "$c1" "$HZ" "$rss" <<'PY'
import sys
name, n, got, t0, t1, c0, c1, hz, rss = sys.argv[1:]
n, got = int(n), int(got)
el = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(hz)
print(f"{name:<44} {got/el:>10.0f} msg/s  lost {n-got:>6}  {cpu/max(got,1)*1e6:>6.2f} µs CPU/msg  RSS {int(rss)/1024:>6.1f} MiB")
PY
}

# (a) raw fan-out
mosquitto_sub -p $PORT -v -t 'load/#' > "$D/a.out" & A=$!
run "(a) mosquitto_sub -v > file" "$D/a.out" $A; kill $A
# (b) the original pipeline
: > "$D/syslog"
mosquitto_sub -p $PORT -v -t 'load/#' | logger --socket "$D/log.sock" --socket-errors=off -t iotitan-old &
sleep 0.5; B1=$(pgrep -n -f "mosquitto_sub -p $PORT"); B2=$(pgrep -n -f "logger --socket $D/log.sock")
run "(b) mosquitto_sub -v | logger --socket" "$D/syslog" "$B1" "$B2"; kill "$B1" "$B2" 2>/dev/null || true
# (c) iotitan-logger
: > "$D/syslog"
cat > "$D/iotitan.toml" <<CONF
[mqtt]
host = "127.0.0.1"
port = $PORT
client_id = "bench$RANDOM"
[logger]
subscribe = ["load/#"]
qos = 0
[syslog]
target = "unix:$D/log.sock"
CONF
"$BIN" --config "$D/iotitan.toml" 2>"$D/c.err" & C=$!
run "(c) iotitan-logger" "$D/syslog" $C; kill $C
