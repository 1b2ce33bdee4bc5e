#!/usr/bin/env python3
"""Run the tensor anchor workloads in numpy, dask and mars-rs in one go and
print one table with ratios (mars-rs speed-up over each tool; > 1 is faster).

    python3 -m venv .venv && .venv/bin/pip install numpy "dask[array]"
    .venv/bin/python bench/compare.py [--scale 1.0] [--repeats 3]

Each tool runs in its own process, one after another; times are medians of
--repeats runs after one warm-up, measured inside the process.

mars-rs runs as the `bench_workloads` example, taken from where cargo puts it:
$CARGO_TARGET_DIR/release/examples/ (default: target/ in the repository). It is
built with `cargo build --release` when missing; --rebuild builds it anyway
(a no-op when it is up to date).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P = argparse.ArgumentParser()
P.add_argument("--scale", type=float, default=1.0)
P.add_argument("--repeats", type=int, default=3)
P.add_argument("--rebuild", action="store_true", help="run cargo build even if the mars-rs example exists")
P.add_argument("--tool", help=argparse.SUPPRESS)
ARGS = P.parse_args()
# cargo resolves a relative CARGO_TARGET_DIR against the directory it runs in
TARGET_DIR = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
EXE = ".exe" if os.name == "nt" else ""


def timed(name, tool, fn):
    times = []
    for i in range(ARGS.repeats + 1):
        t0 = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - t0)
    print(f"{name} {tool} {statistics.median(times):.4f}", flush=True)


def run_numpy():
    import numpy as np
    rows = max(10, int(20000 * ARGS.scale))
    timed("W1_gen+compute", "numpy", lambda: ((np.random.RandomState(0).rand(rows, 5000) + 1) * 2).sum())
    x = np.random.RandomState(0).rand(rows, 5000)
    timed("W1_compute", "numpy", lambda: ((x + 1) * 2).sum())
    timed("W3_mean0", "numpy", lambda: x.mean(axis=0))
    timed("W3_std1", "numpy", lambda: x.std(axis=1))
    timed("W3_both", "numpy", lambda: (x.mean(axis=0), x.std(axis=1)))
    del x
    rs = np.random.RandomState(1)
    a, b = rs.rand(4096, 4096), rs.rand(4096, 4096)
    timed("W2", "numpy", lambda: (a @ b).sum())


def run_dask():
    import dask
    import dask.array as da
    dask.config.set(scheduler="threads", num_workers=os.cpu_count())
    rows = max(10, int(20000 * ARGS.scale))
    ch = (min(2000, rows), 5000)
    timed("W1_gen+compute", "dask", lambda: ((da.random.RandomState(0).random_sample((rows, 5000), chunks=ch) + 1) * 2).sum().compute())
    x = da.random.RandomState(0).random_sample((rows, 5000), chunks=ch).persist()
    timed("W1_compute", "dask", lambda: ((x + 1) * 2).sum().compute())
    timed("W3_mean0", "dask", lambda: x.mean(axis=0).compute())
    timed("W3_std1", "dask", lambda: x.std(axis=1).compute())
    timed("W3_both", "dask", lambda: dask.compute(x.mean(axis=0), x.std(axis=1)))
    del x
    rs = da.random.RandomState(1)
    a = rs.random_sample((4096, 4096), chunks=1024).persist()
    b = rs.random_sample((4096, 4096), chunks=1024).persist()
    timed("W2", "dask", lambda: (a @ b).sum().compute())
    timed("W7", "dask", lambda: (da.ones((1000, 1000), chunks=(10, 10)) + 1).sum().compute())


def collect(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("# peak_rss_mib"):
            rows[("peak_rss_mib", "mars-rs")] = float(line.split()[-1])
            continue
        if line.startswith("#") or not line.strip():
            continue
        name, tool, secs = line.split()
        rows[(name, tool)] = float(secs)
    return rows


def mars_binary():
    """The release build of the bench_workloads example, built if missing."""
    path = os.path.join(TARGET_DIR, "release", "examples", "bench_workloads" + EXE)
    if ARGS.rebuild or not os.path.exists(path):
        cmd = ["cargo", "build", "--release", "-q", "-p", "mars", "--example", "bench_workloads"]
        print(f"building {path}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        env = dict(os.environ, CARGO_TARGET_DIR=TARGET_DIR)
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        if not os.path.exists(path):
            sys.exit(f"cargo build succeeded but {path} is missing (is CARGO_TARGET_DIR set the same for cargo?)")
    else:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))
        print(f"using {path} (built {built}; --rebuild to rebuild)", file=sys.stderr, flush=True)
    return path


def main():
    if ARGS.tool == "numpy":
        return run_numpy()
    if ARGS.tool == "dask":
        return run_dask()
    common = ["--scale", str(ARGS.scale), "--repeats", str(ARGS.repeats)]
    binary = mars_binary()
    rows = {}
    rows.update(collect([binary] + common))
    for tool in ("numpy", "dask"):
        rows.update(collect([sys.executable, os.path.abspath(__file__), "--tool", tool] + common))
    names = []
    for (name, _tool) in rows:
        if name not in names and name != "peak_rss_mib":
            names.append(name)
    print(f"| workload | mars-rs (s) | numpy (s) | dask (s) | vs numpy | vs dask |")
    print("|---|---|---|---|---|---|")
    for n in names:
        m, npy, dk = rows.get((n, "mars-rs")), rows.get((n, "numpy")), rows.get((n, "dask"))
        fmt = lambda v: f"{v:.3f}" if v is not None else ""
        ratio = lambda o: f"{o / m:.2f}x" if (o is not None and m) else ""
        print(f"| {n} | {fmt(m)} | {fmt(npy)} | {fmt(dk)} | {ratio(npy)} | {ratio(dk)} |")
    # peak memory of mars-rs, one workload per process
    for only in ("W1_gen", "tiling"):
        peak = collect([binary, "--only", only] + common).get(("peak_rss_mib", "mars-rs"))
        print(f"peak RSS of mars-rs running only {only}: {peak} MiB")


if __name__ == "__main__":
    main()
