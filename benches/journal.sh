#!/usr/bin/env bash
# The journal read from its files, side by side in one run with what it replaces
# (BENCHMARKS.md "Reading the journal"):
# - `query --format csv` of RECORDS records in a journald namespace, read directly
#   (`--input journal:NS`), through `journalctl -o json` (`--input journalctl:NS`, the way
#   before), and from a syslog file of the same records; the three CSVs must be identical;
# - `iotitan-stats --dry-run` (mean, min, max of every topic) over the same, both ways;
# - with PEERS=1, the readers not chosen (benches/journal-peers: the pure-Rust `sdjournal`
#   and libsystemd's sd-journal), reading the same entries with their time and MESSAGE.
# The namespace is served by a journald of the script's own (persistent storage, 64 MB
# files, so the records span rotated files; no rate limit) and kept for the next run.
#
# Usage: benches/journal.sh [RECORDS [RUNS]]   (after `cargo build --release --bin iotitan-stats`)
# Env: DIR (default /tmp/iotitan-journal: the file and CSVs), BIN, NS (default iotitanbench)
set -euo pipefail
RECORDS=${1:-1000000} RUNS=${2:-5}
DIR=${DIR:-/tmp/iotitan-journal} BIN=${BIN:-target/release/iotitan-stats} NS=${NS:-iotitanbench}
ID=iotitan-logger
export LC_ALL=C TZ=UTC
mkdir -p "$DIR"
JOURNALD=$(command -v systemd-journald || echo /lib/systemd/systemd-journald)

printf '[Journal]\nStorage=persistent\nRateLimitIntervalSec=0\nRateLimitBurst=0\nSystemMaxUse=4G\nSystemMaxFileSize=64M\n' \
  > "/etc/systemd/journald@$NS.conf"
"$JOURNALD" "$NS" < /dev/null > /dev/null 2>&1 &
JPID=$!
trap 'kill $JPID 2>/dev/null; wait $JPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "/run/systemd/journal.$NS/dev-log" ] && break; sleep 0.1; done

printf '[syslog]\nidentifier = "%s"\n' "$ID" > "$DIR/cfg.toml"
SINCE=2000-01-01T00:00:00Z
query() { "$BIN" -c "$DIR/cfg.toml" query --topics '#' --since $SINCE --input "$1"; }
have=$(query "journal:$NS" 2> /dev/null | tail -n +2 | wc -l)
if [ "$have" != "$RECORDS" ]; then
  echo "# writing $RECORDS records into journal:$NS (had $have)"
  journalctl --namespace "$NS" --rotate > /dev/null
  rm -f /var/log/journal/"$(cat /etc/machine-id).$NS"/*.journal
  kill $JPID; wait $JPID 2> /dev/null || true
  "$JOURNALD" "$NS" < /dev/null > /dev/null 2>&1 &
  JPID=$!
  for _ in $(seq 100); do [ -S "/run/systemd/journal.$NS/dev-log" ] && break; sleep 0.1; done
  python3 - "$DIR/lines" "$RECORDS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"iotitan/home/room{i % 12}/dht22/temperature {15 + i % 15}.{i % 10}\n")
PY
  logger --socket "/run/systemd/journal.$NS/dev-log" -t "$ID" -f "$DIR/lines"
  until [ "$(query "journal:$NS" 2> /dev/null | tail -n +2 | wc -l)" = "$RECORDS" ]; do sleep 1; done
fi
# The same records as a syslog file (RSYSLOG_FileFormat), from the direct reader's rows.
query "journal:$NS" 2> /dev/null > "$DIR/direct.csv"
awk -F, 'NR > 1 { sub(/Z$/, "+00:00", $1); print $1 " pi '"$ID"'[812]: " $2 " " $3 }' \
  "$DIR/direct.csv" > "$DIR/syslog"
query "journalctl:$NS" 2> /dev/null > "$DIR/journalctl.csv"
query "$DIR/syslog" 2> /dev/null > "$DIR/file.csv"
cmp "$DIR/direct.csv" "$DIR/journalctl.csv" && cmp "$DIR/direct.csv" "$DIR/file.csv" \
  && echo "# rows identical: journal, journalctl and file ($RECORDS rows)"
JDIR=/var/log/journal/$(cat /etc/machine-id).$NS
echo "# journal: $(ls "$JDIR" | wc -l) files, $(du -sh "$JDIR" | cut -f1); file: $(du -h "$DIR/syslog" | cut -f1)"

# median and range of RUNS timings of a command (stdout to /dev/null), with peak RSS
measure() {
  local name=$1 runs=$2; shift 2
  local out=$DIR/time.txt
  : > "$out"
  for _ in $(seq "$runs"); do
    /usr/bin/time -a -o "$out" -f "%e %U %S %M" "$@" > /dev/null 2> "$DIR/stderr.txt" \
      || { cat "$DIR/stderr.txt" >&2; return 1; }
  done
  sort -n "$out" | awk -v name="$name" -v n="$RECORDS" '
    { e[NR] = $1; c[NR] = $2 + $3; if ($4 > rss) rss = $4 }
    END { m = (NR % 2) ? e[(NR + 1) / 2] : (e[NR / 2] + e[NR / 2 + 1]) / 2
          printf "%-44s median %.3f s (%.3f-%.3f), %.2f M rows/s, CPU %.3f s, RSS %.0f MiB, %d runs\n",
                 name, m, e[1], e[NR], n / m / 1e6, c[(NR + 1) / 2], rss / 1024, NR }'
}
load() { echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }
cat "$JDIR"/* "$DIR/syslog" > /dev/null # into the page cache

Q=("$BIN" -c "$DIR/cfg.toml" query --topics '#' --since $SINCE --input)
S=("$BIN" -c "$DIR/cfg.toml" --dry-run --since $SINCE --until 2100-01-01T00:00:00Z --input)
load
measure "query, journal read directly" "$RUNS" "${Q[@]}" "journal:$NS"
measure "query, syslog file" "$RUNS" "${Q[@]}" "$DIR/syslog"
measure "query, journalctl -o json" 1 "${Q[@]}" "journalctl:$NS"
measure "stats, journal read directly" "$RUNS" "${S[@]}" "journal:$NS"
measure "stats, syslog file" "$RUNS" "${S[@]}" "$DIR/syslog"
measure "stats, journalctl -o json" 1 "${S[@]}" "journalctl:$NS"
if [ "${PEERS:-}" = 1 ]; then
  load
  (cd benches/journal-peers && cargo build --release -q)
  for p in libsystemd sdjournal; do
    measure "peer: $p (read only)" 3 benches/journal-peers/target/release/journal-peers $p "$NS" "$ID"
    benches/journal-peers/target/release/journal-peers $p "$NS" "$ID"
  done
fi
