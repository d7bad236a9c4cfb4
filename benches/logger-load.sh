#!/usr/bin/env bash
# Logger load procedure (BENCHMARKS.md "Logger"). One private mosquitto and one private rsyslogd
# serve the whole run; COUNT QoS 0 messages are published (in one burst, or paced with SIM_RATE)
# and consumed in turn by
#   (a) mosquitto_sub -v -t '#' > file            — the broker's fan-out limit here
#   (b) mosquitto_sub -v -t '#' | logger --socket — the original IoTitan logger
#   (c) iotitan-logger (subscribe = ["#"], qos = 0)
# once with each load generator:
#   pub  mosquitto_pub -l (one connection, lines from a file; the issue's reference generator)
#   sim  iotitan-sim load --rate SIM_RATE --qos 0 (the project's load generator; 0 = unpaced)
# Every consumer is started fresh for its run and proven subscribed by a readiness probe:
# probe messages on bench/probe are published until one shows in the consumer's output file
# (for (b) and (c) the syslog file: the whole chain is up); the load is on bench/load/..., and
# only those records are counted. For each run the script prints messages/s from the first
# publish to the last record seen, records lost, CPU seconds per message of the consumer
# processes (utime + stime, all threads), their peak RSS (VmHWM, summed for the two processes
# of (b)), and for context the CPU per message of the broker and rsyslogd, how fast the
# generator sent, and how long after it finished the last record arrived. The whole set is
# repeated RUNS times; with RUNS > 1 it ends with the median (min–max) of each row.
#
# The syslog socket's queue: the kernel lets a unix datagram socket queue
# net.unix.max_dgram_qlen + 1 datagrams, 11 by the kernel's default. systemd raises it to 512
# early at boot, so every systemd host (a Raspberry Pi with Debian included) runs with 512;
# containers and machines not booted by systemd keep the default. The script measures with
# QLEN (default 512): it sets the sysctl for the run if it may (root) and restores it at
# exit; otherwise it measures with what it finds. The header line says which it used.
#
# SYSLOG=tcp sends (c)'s records over TCP (RFC 6587 octet counting) to rsyslogd's imtcp input
# on loopback instead of its unix socket: the central rsyslog's ingest from one logger
# (docs/SCALING.md). SYSLOG=relp sends them with RELP to rsyslogd's imrelp input (package
# rsyslog-relp): each record answered by the daemon before its message counts as handled.
# (b) always uses the unix socket. LOGGERS=N runs (c) as N loggers on one
# shared subscription ($share/bench/#), all writing to the one rsyslogd (CPU and RSS summed).
#
# Usage: benches/logger-load.sh [COUNT [RUNS]]      (default 200000 1)
# Env:   GENERATORS="pub sim"  CONSUMERS="a b c"  SIM_RATE=0  QLEN=512  SYSLOG=unix|tcp|relp  LOGGERS=1
# Needs: mosquitto, mosquitto-clients, rsyslog, bsdutils (logger), python3, cargo; root or a
# user allowed to run mosquitto and rsyslogd on private files and a loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-1}
GENERATORS=${GENERATORS:-pub sim}
CONSUMERS=${CONSUMERS:-a b c}
SIM_RATE=${SIM_RATE:-0}
SYSLOG=${SYSLOG:-unix}
LOGGERS=${LOGGERS:-1}

cargo build --release --quiet --bin iotitan-logger --bin iotitan-sim
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
LOGGER=$TARGET/release/iotitan-logger
SIM=$TARGET/release/iotitan-sim

QLEN=${QLEN:-512}
QLEN_FILE=/proc/sys/net/unix/max_dgram_qlen
QLEN_WAS=$(cat "$QLEN_FILE")
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D";
      [ "$(cat "$QLEN_FILE")" = "$QLEN_WAS" ] || echo "$QLEN_WAS" > "$QLEN_FILE"' EXIT
# Before rsyslogd starts: a socket keeps the queue length it was created with.
if [ "$QLEN" != "$QLEN_WAS" ] && ! { echo "$QLEN" > "$QLEN_FILE"; } 2>/dev/null; then
  echo "# cannot set net.unix.max_dgram_qlen to $QLEN (not root?): measuring with $QLEN_WAS" >&2
fi
PORT=$((20000 + RANDOM % 20000))
SYSLOG_PORT=$((PORT + 1))
RELP_PORT=$((PORT + 2))
cat > "$D/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
set_tcp_nodelay true
$( [ "$(id -u)" = 0 ] && echo "user root" )
CONF
mosquitto -c "$D/mosquitto.conf" >"$D/mosquitto.log" 2>&1 &
BROKER=$!
# One file per program name (= syslog tag), so each run reads only its own records.
# Synchronous writes, flushed at the end of every batch: a record is in the file when it is
# written, so the time of the last record is not hidden behind a write-behind buffer.
cat > "$D/rsyslog.conf" <<CONF
global(workDirectory="$D" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$D/log.sock" RateLimit.Interval="0")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$SYSLOG_PORT")
$( [ "$SYSLOG" = relp ] && printf 'module(load="imrelp")\ninput(type="imrelp" address="127.0.0.1" port="%s")' "$RELP_PORT" )
template(name="perTag" type="string" string="$D/syslog-%programname%")
action(type="omfile" dynaFile="perTag" template="RSYSLOG_FileFormat" ioBufferSize="256k" flushOnTXEnd="on")
CONF
rsyslogd -n -f "$D/rsyslog.conf" -i "$D/rsyslogd.pid" &
RSYSLOGD=$!
for _ in $(seq 100); do
  [ -S "$D/log.sock" ] && mosquitto_pub -p "$PORT" -t bench/up -n 2>/dev/null && break
  sleep 0.1
done
seq 1 "$N" > "$D/lines"
HZ=$(getconf CLK_TCK)

cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
peak_rss_kb() { local k=0 p; for p in "$@"; do k=$((k + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $k; }

# Readiness probe: publish on bench/probe until the consumer's output shows one (10 s at most).
probe() {
  local out=$1 i
  for i in $(seq 200); do
    mosquitto_pub -p "$PORT" -t bench/probe -m "probe $i"
    sleep 0.05
    grep -q -F bench/probe "$out" 2>/dev/null && return 0
  done
  echo "consumer writing $out never became ready" >&2
  return 1
}

# Counts records of bench/load/ appended to FILE after OFFSET, reading only new bytes every
# 5 ms; stops at N records or after 5 s without a new one; prints count and the time the last
# one was seen.
cat > "$D/watch.py" <<'PY'
import os, sys, time
path, offset, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got, last_t, rest = 0, time.time(), b""
with open(path, "rb") as f:
    f.seek(offset)
    while got < n and time.time() - last_t < 5:
        data = f.read(1 << 20)
        if not data:
            time.sleep(0.005)
            continue
        data = rest + data
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        k = data.count(b"bench/load/")
        if k:
            got += k
            last_t = time.time()
print(got, f"{last_t:.6f}")
PY

publish() {  # GENERATOR → runs the burst, prints how fast the broker took it
  local t0 t1
  t0=$(date +%s.%N)
  case $1 in
    pub) mosquitto_pub -p "$PORT" -t bench/load/x -q 0 -l < "$D/lines" ;;
    sim) "$SIM" load --broker "127.0.0.1:$PORT" --rate "$SIM_RATE" --count "$N" --qos 0 \
           --topics 10 --prefix bench/load > "$D/sim.out" ;;
  esac
  t1=$(date +%s.%N)
  echo "$t0 $t1" > "$D/pub.times"
}

# measure LABEL OUTFILE PID... : probe, publish, count, report.
measure() {
  local label=$1 out=$2 gen=$3; shift 3
  local pids=("$@")
  probe "$out"
  local off c0 b0 r0 t0
  off=$(stat -c %s "$out")
  c0=$(cpu_ticks "${pids[@]}"); b0=$(cpu_ticks $BROKER); r0=$(cpu_ticks $RSYSLOGD)
  t0=$(date +%s.%N)
  publish "$gen" &
  local pub=$!
  local res; res=$(python3 "$D/watch.py" "$out" "$off" "$N")
  wait $pub
  local c1 b1 r1 rss
  c1=$(cpu_ticks "${pids[@]}"); b1=$(cpu_ticks $BROKER); r1=$(cpu_ticks $RSYSLOGD)
  rss=$(peak_rss_kb "${pids[@]}")
  python3 - "$label" "$N" $res "$t0" $(cat "$D/pub.times") "$HZ" $((c1 - c0)) $((b1 - b0)) $((r1 - r0)) "$rss" <<'PY'
import sys
label, n, got, tlast, t0, p0, p1, hz, c, b, r, rss = sys.argv[1:]
n, got, hz = int(n), int(got), int(hz)
el = float(tlast) - float(t0)
per = lambda ticks: int(ticks) / hz / max(got, 1) * 1e6
print(f"{label:<40} {got/el:>8.0f} msg/s {n-got:>7} lost {per(c):>6.2f} µs/msg {int(rss)/1024:>5.1f} MiB"
      f" | broker {per(b):>4.1f} µs/msg, rsyslogd {per(r):>4.1f} µs/msg; generator sent at {n/(float(p1)-float(p0)):>6.0f} msg/s,"
      f" last record {max(float(tlast)-float(p1), 0)*1e3:>5.0f} ms after it finished",
      flush=True)
PY
}

gen_label() { if [ "$1" = sim ] && [ "$SIM_RATE" != 0 ]; then echo "sim@$SIM_RATE/s"; else echo "$1"; fi; }

run_a() {
  local gen=$1 out="$D/a-$gen.out"
  : > "$out"
  mosquitto_sub -p "$PORT" -v -t '#' > "$out" & local a=$!
  measure "$(gen_label "$gen") (a) mosquitto_sub -v > file" "$out" "$gen" $a
  kill $a; wait $a 2>/dev/null || true
}
run_b() {
  local gen=$1 tag="old-$gen-$RANDOM"
  rm -f "$D/fifo"; mkfifo "$D/fifo"
  logger --socket "$D/log.sock" --socket-errors=off -t "$tag" < "$D/fifo" & local b2=$!
  mosquitto_sub -p "$PORT" -v -t '#' > "$D/fifo" & local b1=$!
  measure "$(gen_label "$gen") (b) mosquitto_sub -v | logger" "$D/syslog-$tag" "$gen" $b1 $b2
  kill $b1 $b2 2>/dev/null || true; wait $b1 $b2 2>/dev/null || true
}
run_c() {
  local gen=$1 tag="new-$gen-$RANDOM" pids=() i filter='#'
  [ "$LOGGERS" -gt 1 ] && filter='$share/bench/#'
  for i in $(seq "$LOGGERS"); do
    cat > "$D/iotitan-$i.toml" <<CONF
[mqtt]
host = "127.0.0.1"
port = $PORT
client_id = "$tag-$i"
[logger]
subscribe = ["$filter"]
qos = 0
# A clean session ends with the run: a persistent one would stay in the shared group after
# the process is gone, and mosquitto would go on dealing it its share (dropped at QoS 0).
clean_session = true
[syslog]
target = "$(case $SYSLOG in tcp) echo "tcp:127.0.0.1:$SYSLOG_PORT" ;; relp) echo "relp:127.0.0.1:$RELP_PORT" ;; *) echo "unix:$D/log.sock" ;; esac)"
identifier = "$tag"
CONF
    RUST_LOG=info "$LOGGER" --config "$D/iotitan-$i.toml" 2>"$D/c-$i.err" & pids+=($!)
  done
  # Every member of a shared subscription holds it before the probe (which reaches only one).
  for i in $(seq "$LOGGERS"); do
    for _ in $(seq 200); do grep -q "subscribed" "$D/c-$i.err" 2>/dev/null && break; sleep 0.05; done
  done
  local label="(c) iotitan-logger"
  [ "$LOGGERS" -gt 1 ] && label="(c) $LOGGERS iotitan-loggers, \$share"
  [ "$SYSLOG" = unix ] || label="$label over $SYSLOG"
  measure "$(gen_label "$gen") $label" "$D/syslog-$tag" "$gen" "${pids[@]}"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
}

echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores; $N QoS 0 messages; syslog over $SYSLOG; net.unix.max_dgram_qlen $(cat /proc/sys/net/unix/max_dgram_qlen);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$RUNS"); do
  for gen in $GENERATORS; do
    for c in $CONSUMERS; do "run_$c" "$gen"; done
  done
  echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
done | tee "$D/results"
[ "$RUNS" -gt 1 ] || exit 0
echo "# median of $RUNS runs (min–max)"
python3 - "$D/results" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("#"):
        continue
    label = line[:40].rstrip()
    m = re.search(r"(\d+) msg/s +(\d+) lost +([\d.]+) µs/msg +([\d.]+) MiB", line)
    rows.setdefault(label, []).append([float(x) for x in m.groups()])
for label, rs in rows.items():
    cols = list(zip(*rs))
    f = lambda i, fmt: f"{statistics.median(cols[i]):{fmt}} ({min(cols[i]):{fmt}}–{max(cols[i]):{fmt}})"
    print(f"{label:<40} {f(0, '.0f')} msg/s, lost {int(max(cols[1]))} at most, "
          f"{f(2, '.2f')} µs/msg, {f(3, '.1f')} MiB")
PY
