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
#
# libFuzzer's -timeout is wall time: on a busy machine an input well under a second can be
# reported. So the fuzzing runs in a child (-fork=1) that is restarted after a timeout, which
# is kept in artifacts/ to be timed again alone; a crash or an out-of-memory stops the run.
set -eu
target=$1
limit=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/target/x86_64-unknown-linux-gnu/release/$target
mkdir -p "$here/work/$target" "$here/artifacts/$target"
cd "$here"
RUST_BACKTRACE=0 TZ=Europe/Berlin nice -n 10 "$bin" "work/$target" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" -rss_limit_mb=256 -timeout=1 \
    -fork=1 -ignore_timeouts=1 -ignore_crashes=0 -ignore_ooms=0 \
    -max_total_time=$((limit * 4)) -print_final_stats=1 >"work/$target.log" 2>&1 &
pid=$!
tick=$(getconf CLK_TCK)
used=0
while kill -0 "$pid" 2>/dev/null; do
    # utime + stime, with the finished children's, in clock ticks (fields 14 to 17 of
    # /proc/PID/stat). A job is counted once it ends, so a run may go over by part of one.
    used=$(cat "/proc/$pid/stat" "/proc/$pid/task/$pid/children" 2>/dev/null | awk '
        NR == 1 { t = $14 + $15 + $16 + $17; kids = "" }
        NR == 2 { kids = $0 }
        END { n = split(kids, k, " "); for (i = 1; i <= n; i++) {
                  if ((getline line < ("/proc/" k[i] "/stat")) > 0) { split(line, f, " "); t += f[14] + f[15] } }
              print t }' || echo "$used")
    if [ "$used" -ge $((limit * tick)) ]; then
        # libFuzzer's parent ignores SIGINT in the background and waits for its job: stop
        # the job's process (SIGTERM) until the parent is gone, in case it was between jobs.
        while kill -0 "$pid" 2>/dev/null; do
            for c in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
                for g in $(cat "/proc/$c/task/$c/children" 2>/dev/null); do kill -TERM "$g"; done
            done
            sleep 1
        done
        break
    fi
    sleep 2
done
wait "$pid" || true
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|Done|interrupted|ERROR|SUMMARY|Test unit written|oom/timeout/crash' \
    "work/$target.log" || true
echo "cpu_seconds=$(awk "BEGIN{print $used / $tick}")"
