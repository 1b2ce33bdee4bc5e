#!/usr/bin/env python3
"""Run the anchor workloads in mars-rs and in numpy, dask, pandas, polars and
duckdb in one go and print one table with ratios (mars-rs speed-up over each
tool; > 1 is faster). Tensor workloads (W1-W3, W7) run in numpy and dask; the
dataframe ones (W4-W6) in pandas, polars, duckdb and dask.

    python3 -m venv .venv && .venv/bin/pip install numpy "dask[array,dataframe]" pandas polars duckdb
    .venv/bin/python bench/compare.py [--scale 1.0] [--repeats 3] [--tools numpy,dask,...]

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
P.add_argument("--tools", default="numpy,dask,pandas,polars,duckdb", help="anchor tools to run")
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


def df_w4():
    """W4's data as shared/bench/bench.py makes it: 10M rows, 1000 int keys."""
    import numpy as np
    n = max(8, int(10_000_000 * ARGS.scale))
    r = np.random.default_rng(42)
    return {"k": r.integers(0, 1000, n, dtype=np.int64), "v1": r.random(n), "v2": r.random(n)}


def df_w5():
    """W5's data as shared/bench/bench.py makes it: 10M left rows over 1M keys, 1M right rows."""
    import numpy as np
    n = max(8, int(10_000_000 * ARGS.scale))
    r = np.random.default_rng(42)
    m = max(1, n // 10)
    left = {"k": r.integers(0, m, n, dtype=np.int64), "v": r.random(n)}
    right = {"k": r.permutation(m).astype(np.int64), "w": r.random(m)}
    return left, right


def df_w6():
    """W6's data as shared/bench/bench.py makes it: an f64 key and an i64 payload, 10M rows."""
    import numpy as np
    n = max(8, int(10_000_000 * ARGS.scale))
    r = np.random.default_rng(42)
    return {"a": r.random(n), "b": np.arange(n, dtype=np.int64)}


def run_pandas():
    import pandas as pd
    df = pd.DataFrame(df_w4())
    timed("W4", "pandas", lambda: df.groupby("k").agg({"v1": "sum", "v2": "mean", "k": "count"}))
    del df
    l, r = df_w5()
    ldf, rdf = pd.DataFrame(l), pd.DataFrame(r)

    def w5():
        m = ldf.merge(rdf, on="k", how="inner")
        return (m["v"] * m["w"]).sum()
    timed("W5", "pandas", w5)
    del ldf, rdf
    df = pd.DataFrame(df_w6())
    timed("W6", "pandas", lambda: df.sort_values("a"))


def run_polars():
    import polars as pl
    df = pl.DataFrame(df_w4())
    timed("W4", "polars", lambda: df.group_by("k").agg(pl.col("v1").sum(), pl.col("v2").mean(), pl.len()))
    del df
    l, r = df_w5()
    ldf, rdf = pl.DataFrame(l), pl.DataFrame(r)
    timed("W5", "polars", lambda: ldf.lazy().join(rdf.lazy(), on="k", how="inner")
          .select((pl.col("v") * pl.col("w")).sum()).collect().item())
    del ldf, rdf
    df = pl.DataFrame(df_w6())
    timed("W6", "polars", lambda: df.sort("a"))


def run_duckdb():
    import duckdb
    import pandas as pd
    con = duckdb.connect()
    src = pd.DataFrame(df_w4())
    con.execute("CREATE TABLE t AS SELECT * FROM src")
    del src
    timed("W4", "duckdb", lambda: con.execute("SELECT k, sum(v1), avg(v2), count(*) FROM t GROUP BY k").fetchall())
    l, r = df_w5()
    ls, rs = pd.DataFrame(l), pd.DataFrame(r)
    con.execute("CREATE TABLE l AS SELECT * FROM ls")
    con.execute("CREATE TABLE r AS SELECT * FROM rs")
    del ls, rs
    timed("W5", "duckdb", lambda: con.execute("SELECT sum(v*w) FROM l JOIN r USING (k)").fetchone()[0])
    src = pd.DataFrame(df_w6())
    con.execute("CREATE TABLE s6 AS SELECT * FROM src")
    del src
    timed("W6", "duckdb", lambda: con.execute("CREATE OR REPLACE TABLE s6o AS SELECT * FROM s6 ORDER BY a"))


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
    import dask.dataframe as dd
    import pandas as pd
    ddf = dd.from_pandas(pd.DataFrame(df_w4()), npartitions=8).persist()
    timed("W4", "dask", lambda: ddf.groupby("k").agg({"v1": "sum", "v2": "mean", "k": "count"}).compute())
    l, r = df_w5()
    ldf = dd.from_pandas(pd.DataFrame(l), npartitions=8).persist()
    rdf = dd.from_pandas(pd.DataFrame(r), npartitions=8).persist()

    def w5():
        m = ldf.merge(rdf, on="k", how="inner")
        return (m["v"] * m["w"]).sum().compute()
    timed("W5", "dask", w5)
    del ldf, rdf
    ddf6 = dd.from_pandas(pd.DataFrame(df_w6()), npartitions=8).persist()
    timed("W6", "dask", lambda: ddf6.sort_values("a").persist())


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
        # the cluster rows start supervisor and worker processes of the mars binary beside it
        cmd = ["cargo", "build", "--release", "-q", "-p", "mars", "--example", "bench_workloads", "--bin", "mars"]
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
    runners = {"numpy": run_numpy, "dask": run_dask, "pandas": run_pandas, "polars": run_polars, "duckdb": run_duckdb}
    if ARGS.tool:
        return runners[ARGS.tool]()
    tools = [t for t in ARGS.tools.split(",") if t]
    common = ["--scale", str(ARGS.scale), "--repeats", str(ARGS.repeats)]
    binary = mars_binary()
    rows = {}
    rows.update(collect([binary] + common))
    for tool in tools:
        rows.update(collect([sys.executable, os.path.abspath(__file__), "--tool", tool] + common))
    names = []
    for (name, _tool) in rows:
        if name not in names and name != "peak_rss_mib":
            names.append(name)
    print("| workload | mars-rs (s) | " + " | ".join(f"{t} (s)" for t in tools) + " | "
          + " | ".join(f"vs {t}" for t in tools) + " |")
    print("|---" * (2 + 2 * len(tools)) + "|")
    fmt = lambda v: f"{v:.3f}" if v is not None else ""
    for n in names:
        m = rows.get((n, "mars-rs"))
        others = [rows.get((n, t)) for t in tools]
        ratio = lambda o: f"{o / m:.2f}x" if (o is not None and m) else ""
        print(f"| {n} | {fmt(m)} | " + " | ".join(fmt(o) for o in others) + " | "
              + " | ".join(ratio(o) for o in others) + " |")
    # peak memory of mars-rs, one workload per process
    for only in ("W1_gen", "tiling"):
        peak = collect([binary, "--only", only] + common).get(("peak_rss_mib", "mars-rs"))
        print(f"peak RSS of mars-rs running only {only}: {peak} MiB")


if __name__ == "__main__":
    main()
