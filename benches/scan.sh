#!/usr/bin/env bash
# Reading history, side by side in one run (BENCHMARKS.md "Reading history"):
# - whole-file statistics of 2 M lines: iotitan-stats (1 and 2 threads, RFC 3339 and
#   traditional timestamps) next to `wc -l` and the original pipeline
#   (benches/old-stats-pipeline.sh, needs python3-pandas);
# - a catch-up of twelve 5-minute windows next to one hour-long window over the same hour;
# - `query --format csv` of the day, from the plain file and from its gzipped copy.
# Every command runs RUNS times (default 5; the old pipeline 3); the median and the range
# are printed, with the load average before each group.
#
# Usage: benches/scan.sh [LINES [RUNS]]   (after `cargo build --release --bin iotitan-stats`)
# Env: DIR (default /tmp/iotitan-scan; the files are written once and reused, never commit
# them), BIN (default target/release/iotitan-stats), PYTHON (a python3 with pandas),
# BATCH_ANALYSIS (a copy of IoTitan's batch_analysis.py, to compare `query` with).
set -euo pipefail
LINES=${1:-2000000} RUNS=${2:-5}
DIR=${DIR:-/tmp/iotitan-scan} BIN=${BIN:-target/release/iotitan-stats}
export LC_ALL=C TZ=UTC
mkdir -p "$DIR"

# One day of records, LINES of them, 12 rooms; the same records in both timestamp formats.
START=1795046400 # 2026-11-19T00:00:00Z
if [ ! -s "$DIR/rfc-$LINES.log" ]; then
  python3 - "$DIR" "$LINES" "$START" <<'EOF'
import sys, datetime
d, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
step = 86400 / n
with open(f"{d}/rfc-{n}.log", "w") as r, open(f"{d}/trad-{n}.log", "w") as t:
    for i in range(n):
        us = int(start * 1_000_000 + i * step * 1_000_000)
        ts = datetime.datetime.fromtimestamp(us // 1_000_000, datetime.timezone.utc)
        rec = f"pi iotitan-logger[812]: iotitan/home/room{i % 12}/dht22/temperature {15 + i % 15}.{i % 10}\n"
        r.write(f"{ts.strftime('%Y-%m-%dT%H:%M:%S')}.{us % 1_000_000:06d}+00:00 {rec}")
        t.write(f"{ts.strftime('%b %e %H:%M:%S')} {rec}")
EOF
  gzip -c "$DIR/rfc-$LINES.log" > "$DIR/rfc-$LINES.log.gz"
  # The year of a traditional line comes from the file's modification time.
  touch -d @$((START + 86400)) "$DIR/trad-$LINES.log"
fi
RFC=$DIR/rfc-$LINES.log TRAD=$DIR/trad-$LINES.log GZ=$DIR/rfc-$LINES.log.gz
SINCE=2026-11-19T00:00:00Z UNTIL=2026-11-20T00:00:00Z
printf '[stats]\nstatistics = ["count","mean","min","max"]\ncatch_up = 12\nstate_file = "%s/state.json"\n' \
  "$DIR" > "$DIR/cfg.toml"

# median and range of RUNS timings of a command (stdout to /dev/null): elapsed, and CPU
# (user + system, all threads), which other builds on a shared machine disturb less
measure() {
  local name=$1 runs=$2; shift 2
  local out=$DIR/time.txt
  : > "$out"
  for _ in $(seq "$runs"); do
    /usr/bin/time -a -o "$out" -f "%e %U %S" "$@" > /dev/null 2> "$DIR/stderr.txt" \
      || { cat "$DIR/stderr.txt" >&2; return 1; }
  done
  local e c
  e=$(cut -d' ' -f1 "$out" | sort -n | tr '\n' ' ')
  c=$(awk '{ print $2 + $3 }' "$out" | sort -n | tr '\n' ' ')
  echo "$e" "|" "$c" | awk -v name="$name" '
    function med(a, n) { return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    { n = 0; for (i = 1; $i != "|"; i++) e[++n] = $i; m = 0; for (i++; i <= NF; i++) c[++m] = $i
      printf "%-40s median %.3f s (%.3f-%.3f), CPU %.3f s (%.3f-%.3f), %d runs\n",
             name, med(e, n), e[1], e[n], med(c, m), c[1], c[m], n }'
}
load() { echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

cat "$RFC" "$TRAD" "$GZ" > /dev/null # into the page cache
echo "# $LINES lines, $(du -h "$RFC" | cut -f1) RFC 3339, $(du -h "$GZ" | cut -f1) gzipped"
load
measure "wc -l" "$RUNS" wc -l "$RFC"
for th in 1 2; do
  measure "iotitan-stats, RFC 3339, $th thread(s)" "$RUNS" \
    "$BIN" -c "$DIR/cfg.toml" --input "$RFC" --dry-run --since $SINCE --until $UNTIL --threads $th
  measure "iotitan-stats, traditional, $th thread(s)" "$RUNS" \
    "$BIN" -c "$DIR/cfg.toml" --input "$TRAD" --dry-run --since $SINCE --until $UNTIL --threads $th
done
load
# Catch-up: the last hour of the day as twelve missed 5-minute windows, and as one window.
# (--dry-run leaves the state file as it is.)
printf '{"schedule":"*/5 * * * *","done_until":"2026-11-19T23:00:00Z"}\n' > "$DIR/state.json"
catch_up() { "$BIN" -c "$DIR/cfg.toml" --input "$1" --dry-run --now 2026-11-20T00:00:00Z --threads "$2"; }
[ "$(catch_up "$RFC" 1 2> /dev/null | grep -c '^# window')" = 12 ] || { echo "catch-up: not 12 windows" >&2; exit 1; }
for th in 1 2; do
  measure "catch-up, 12 windows, $th thread(s)" "$RUNS" \
    "$BIN" -c "$DIR/cfg.toml" --input "$RFC" --dry-run --now 2026-11-20T00:00:00Z --threads $th
  measure "one hour-long window, $th thread(s)" "$RUNS" \
    "$BIN" -c "$DIR/cfg.toml" --input "$RFC" --dry-run --since 2026-11-19T23:00:00Z --until $UNTIL --threads $th
done
load
measure "query --format csv, plain file" "$RUNS" \
  "$BIN" -c "$DIR/cfg.toml" query --topics '#' --input "$RFC" --since $SINCE --until $UNTIL
measure "query --format csv, gzipped" "$RUNS" \
  "$BIN" -c "$DIR/cfg.toml" query --topics '#' --input "$GZ" --since $SINCE --until $UNTIL
measure "gzip -dc (the decompression alone)" "$RUNS" gzip -dc "$GZ"
# The day as four gzipped rotations (syslog.4.gz oldest … syslog.1.gz), as logrotate leaves a
# week: archives are read side by side, one per thread.
ROT=$DIR/rot-$LINES
if [ ! -s "$ROT/syslog.1.gz" ]; then
  mkdir -p "$ROT"
  split -n l/4 -d -a 1 "$RFC" "$ROT/part."
  for k in 0 1 2 3; do gzip -c "$ROT/part.$k" > "$ROT/syslog.$((4 - k)).gz"; rm "$ROT/part.$k"; done
fi
cat "$ROT"/syslog.*.gz > /dev/null
for th in 1 2; do
  measure "iotitan-stats, 4 gzipped rotations, $th thread(s)" "$RUNS" \
    "$BIN" -c "$DIR/cfg.toml" --input "$ROT/syslog" --dry-run --since $SINCE --until $UNTIL --threads $th
done
# The original IoTitan's export, batch_analysis.py, is not ours to commit: BATCH_ANALYSIS
# names a copy. It reads every `syslog*` file under the current directory (the year from the
# directory's name) and takes lines tagged `mqtt_logger` with traditional timestamps, so it
# gets the traditional day gzipped with that tag; ours exports the same day gzipped.
if [ -n "${BATCH_ANALYSIS:-}" ]; then
  mkdir -p "$DIR/batch/2026"
  [ -s "$DIR/batch/2026/syslog.1.gz" ] \
    || sed 's/ iotitan-logger\[/ mqtt_logger[/' "$TRAD" | gzip > "$DIR/batch/2026/syslog.1.gz"
  [ -s "$TRAD.gz" ] || { gzip -c "$TRAD" > "$TRAD.gz"; touch -r "$TRAD" "$TRAD.gz"; }
  cat "$DIR/batch/2026/syslog.1.gz" "$TRAD.gz" > /dev/null
  # The same rows: (unix time, topic, value) as a multiset, ours' RFC 3339 times converted.
  (cd "$DIR/batch" && python3 "$BATCH_ANALYSIS") > "$DIR/theirs.csv"
  "$BIN" -c "$DIR/cfg.toml" query --topics '#' --input "$TRAD.gz" --since $SINCE --until $UNTIL \
    > "$DIR/ours.csv" 2> /dev/null
  python3 - "$DIR/theirs.csv" "$DIR/ours.csv" <<'EOF'
import sys, collections, datetime
theirs = collections.Counter()
for l in open(sys.argv[1]):
    if l[:1].isdigit():
        t, topic, v = l.rstrip("\n").split(",", 2)
        theirs[(int(t), topic, float(v))] += 1
ours = collections.Counter()
for l in list(open(sys.argv[2]))[1:]:
    t, topic, v = l.rstrip("\n").split(",", 2)
    ours[(int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()), topic, float(v))] += 1
same = "the same rows" if theirs == ours else "DIFFERENT rows"
print(f"# rows: batch_analysis.py {sum(theirs.values())}, iotitan-stats query {sum(ours.values())}: {same}")
EOF
  measure "query --format csv, traditional, gzipped" "$RUNS" \
    "$BIN" -c "$DIR/cfg.toml" query --topics '#' --input "$TRAD.gz" --since $SINCE --until $UNTIL
  measure "IoTitan batch_analysis.py, same day gzipped" 3 \
    sh -c 'cd "$1/batch" && exec python3 "$2"' sh "$DIR" "$BATCH_ANALYSIS"
else
  echo "# BATCH_ANALYSIS unset: the export is not compared with IoTitan's batch_analysis.py"
fi
load
if [ -n "${PYTHON:-}" ] || /usr/bin/python3 -c 'import pandas' 2>/dev/null; then
  export PYTHON=${PYTHON:-/usr/bin/python3}
  measure "old pipeline (grep|cut|perl|pandas)" 3 benches/old-stats-pipeline.sh "$RFC" $SINCE $UNTIL
  # Both compute the same numbers: compare the means of the old pipeline's CSV with ours.
  benches/old-stats-pipeline.sh "$RFC" $SINCE $UNTIL | tail -n +2 | cut -d, -f1,3 | sort > "$DIR/old.txt"
  "$BIN" -c "$DIR/cfg.toml" --input "$RFC" --dry-run --since $SINCE --until $UNTIL \
    | awk '/_mean /{ sub(/_mean$/, "", $1); print $1 "," $2 }' | sort > "$DIR/new.txt"
  join -t, "$DIR/old.txt" "$DIR/new.txt" | awk -F, -v n="$(wc -l < "$DIR/old.txt")" '
    { d = $2 - $3; if (d < 0) d = -d; if (d > 1e-9 * ($2 < 0 ? -$2 : $2)) bad++; k++ }
    END { if (k == n && k > 0 && !bad) print "# same means as the old pipeline (" k " topics)";
          else print "# the means differ from the old pipeline: " k " of " n " topics, " bad + 0 " differ" }'
else
  echo "# no python3 with pandas: the old pipeline is not measured"
fi
load
