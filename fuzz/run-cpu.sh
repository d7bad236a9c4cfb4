#!/bin/sh
# Run one fuzz target until it has used CPU_SECONDS of CPU time (not wall time: the machine
# may be shared), then stop it with SIGINT so libFuzzer prints its final statistics.
#
#   fuzz/run-cpu.sh TARGET [CPU_SECONDS]      (from the repository root; default 600)
#
# The target must be built (`cargo +nightly fuzz build -s none -a`, in fuzz/). New inputs go
# to fuzz/work/TARGET (not committed); crashes to fuzz/artifacts/TARGET. The local zone is
# Europe/Berlin, so the syslog and query targets see DST changes. The log ends up in
# fuzz/work/TARGET.log.
set -eu
target=$1
limit=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/target/x86_64-unknown-linux-gnu/release/$target
mkdir -p "$here/work/$target" "$here/artifacts/$target"
cd "$here"
RUST_BACKTRACE=0 TZ=Europe/Berlin nice -n 10 "$bin" "work/$target" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" -rss_limit_mb=256 -timeout=1 \
    -max_total_time=$((limit * 4)) -print_final_stats=1 >"work/$target.log" 2>&1 &
pid=$!
tick=$(getconf CLK_TCK)
used=0
while kill -0 "$pid" 2>/dev/null; do
    # utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat).
    used=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo "$used")
    if [ "$used" -ge $((limit * tick)) ]; then
        kill -INT "$pid"
        break
    fi
    sleep 2
done
wait "$pid" || true
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|Done|interrupted|ERROR|SUMMARY|Test unit written' \
    "work/$target.log" || true
echo "cpu_seconds=$(awk "BEGIN{print $used / $tick}")"
