#!/usr/bin/env python3
"""Cut a fuzz corpus down to a few dozen small files that keep most of its coverage.

    fuzz/pick-corpus.py TARGET [MAX_FILES]     (default 40; the target must be built)

`-set_cover_merge` (what `cargo fuzz cmin` does, with a set cover) of fuzz/corpus/TARGET and
fuzz/work/TARGET still leaves hundreds of inputs, each adding some rare feature. This keeps
the hand-written seeds (files in corpus/TARGET whose names are not hashes), times every other
input of the set cover alone for the code edges it reaches, and adds inputs greedily, the one
reaching most edges not yet reached first (the smaller on a tie), up to MAX_FILES in all. The
result replaces corpus/TARGET; what it leaves out stays in work/TARGET.
"""
import os, re, shutil, subprocess, sys, tempfile

target = sys.argv[1]
max_files = int(sys.argv[2]) if len(sys.argv) > 2 else 40
here = os.path.dirname(os.path.abspath(__file__))
binary = os.path.join(here, "target/x86_64-unknown-linux-gnu/release", target)
corpus = os.path.join(here, "corpus", target)
work = os.path.join(here, "work", target)
env = dict(os.environ, TZ="Europe/Berlin", RUST_BACKTRACE="0")
flags = ["-rss_limit_mb=256", "-timeout=5"]


def run(args):
    subprocess.run(["nice", "-n", "10", binary, *flags, *args], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def edges(path):
    """The code edges one input reaches (from a merge control file of that input alone)."""
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "in")); os.mkdir(os.path.join(d, "out"))
        shutil.copy(path, os.path.join(d, "in", "x"))
        ctl = os.path.join(d, "ctl")
        run(["-merge=1", f"-merge_control_file={ctl}", os.path.join(d, "out"), os.path.join(d, "in")])
        got = set()
        for line in open(ctl).read().splitlines():
            if line.startswith("COV "):
                got.update(line.split()[2:])
        return got


seeds = [f for f in sorted(os.listdir(corpus)) if not re.fullmatch(r"[0-9a-f]{40}", f)]
with tempfile.TemporaryDirectory() as cover:
    dirs = [corpus] + ([work] if os.path.isdir(work) else [])
    run(["-set_cover_merge=1", cover, *dirs])
    candidates = {f: os.path.join(cover, f) for f in os.listdir(cover)}
    covered = set()
    for s in seeds:
        covered |= edges(os.path.join(corpus, s))
    cov = {f: edges(p) for f, p in candidates.items()}
    total = covered.union(*cov.values())
    chosen = []
    while len(seeds) + len(chosen) < max_files and cov:
        best = max(cov, key=lambda f: (len(cov[f] - covered), -os.path.getsize(candidates[f])))
        if not cov[best] - covered:
            break
        chosen.append(best)
        covered |= cov.pop(best)
    keep = {s: open(os.path.join(corpus, s), "rb").read() for s in seeds}
    keep.update({f: open(candidates[f], "rb").read() for f in chosen})
shutil.rmtree(corpus)
os.makedirs(corpus)
for name, data in keep.items():
    with open(os.path.join(corpus, name), "wb") as out:
        out.write(data)
print(f"{target}: {len(keep)} files ({len(seeds)} seeds), {sum(map(len, keep.values()))} bytes, "
      f"{len(covered)} of {len(total)} edges of the set cover")
