#!/usr/bin/env bash
# The original IoTitan stats pipeline, rebuilt to compare with iotitan-stats (BENCHMARKS.md
# "Stats"). The original ran every 5 minutes as
#   journalctl -u mqtt_logger --since=-5min | grep -v '^--' | cut -d: -f4 \
#     | perl -nle 's/^\s//g; s/\s/, /g; print $_' | python3 mqtt_processor_stats.py   (pandas)
# Here the source is a syslog file, as iotitan-stats reads it, so no stage can seek to the
# window: grep keeps the logger's records, cut keeps time, topic and value, perl turns them into
# CSV, and python3 + pandas parses the times, keeps the window [SINCE, UNTIL) and computes
# count, mean, min and max per topic. Output: CSV `topic,count,mean,min,max`, one row per topic.
#
# Usage: benches/old-stats-pipeline.sh FILE SINCE UNTIL [TAG]
#   FILE   syslog with RFC 3339 timestamps (`TIME HOST TAG[PID]: TOPIC VALUE`, rsyslog's
#          RSYSLOG_FileFormat, and the files of `cargo bench --bench stats -- window`)
#   SINCE, UNTIL  RFC 3339, e.g. 2026-11-22T05:00:00Z
#   TAG    syslog identifier of the logger (default iotitan-logger)
# Env: PYTHON, a python3 that has pandas (default: the first of python3, /usr/bin/python3 that
# imports it; Debian: apt-get install python3-pandas).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }
FILE=$1 SINCE=$2 UNTIL=$3 TAG=${4:-iotitan-logger}
if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import pandas' 2>/dev/null; then PYTHON=$p; break; fi
  done
  [ -n "${PYTHON:-}" ] || { echo "no python3 with pandas (apt-get install python3-pandas)" >&2; exit 69; }
fi
export LC_ALL=C

grep -F " $TAG[" "$FILE" \
  | cut -d' ' -f1,4,5 \
  | perl -nle 's/ /,/g; print $_' \
  | "$PYTHON" -c '
import sys
import pandas as pd

since, until = pd.Timestamp(sys.argv[1]), pd.Timestamp(sys.argv[2])
df = pd.read_csv(sys.stdin, header=None, names=["time", "topic", "value"],
                 dtype={"time": str, "topic": "category", "value": str})
df["time"] = pd.to_datetime(df["time"], utc=True)
w = df[(df["time"] >= since) & (df["time"] < until)]
values = pd.to_numeric(w["value"], errors="coerce")
out = values.groupby(w["topic"], observed=True).agg(["count", "mean", "min", "max"])
out.index = out.index.astype(str).rename("topic")
out = out.sort_index()
sys.stdout.write(out.to_csv())
' "$SINCE" "$UNTIL"
