//! Times the anchor workloads on the local backend and prints
//! `workload mars-rs seconds` lines (median of `--repeats` after one warm-up;
//! the distinct-chunk `scale_*` rows: one cold run), for `bench/compare.py`. Sizes scale with `--scale`.
//!
//! `cargo run --release -p mars --example bench_workloads -- --scale 1.0 --repeats 3 [--only W1,W3] [--phases]`
//!
//! `--phases` prints, to stderr, how long each stage of every execution took
//! (the driver's `tile`, `passes` and `execute` spans, busy time).

use mars::arrow::array::{ArrayRef, Float64Array, Int64Array};
use mars::dataframe as md;
use mars::prelude::*;
use mars::tensor as mt;
use std::sync::Arc;
use std::time::Instant;

/// mimalloc, freed pages kept a while: see [`mars::alloc`]
#[global_allocator]
static GLOBAL: mars::alloc::MiMalloc = mars::alloc::MiMalloc;

/// A plain xorshift stream: the frame workloads' data (the same in every run).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn float(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Whether `--only A,B` (prefixes of workload names) selects `name`; all without it.
fn selected(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)) {
        None => true,
        Some(list) => list.split(',').any(|p| name.starts_with(p)),
    }
}

/// Whether `--only` names `name` (for workloads too big to run by default).
/// Whether `--only` lists `name` itself (for steps that run only on request).
fn exactly(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)) {
        None => false,
        Some(list) => list.split(',').any(|p| p == name),
    }
}

fn explicitly(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == "--only").is_some() && selected(name)
}

fn time(name: &str, repeats: usize, f: impl FnMut() -> Result<f64>) -> Result<()> {
    timed(name, repeats, true, f)
}

/// `time` with or without the warm-up run: the distinct-chunk scale rows are
/// cold (the first run of the process is the one timed, and its peak RSS is
/// the process's).
fn timed(name: &str, repeats: usize, warm_up: bool, mut f: impl FnMut() -> Result<f64>) -> Result<()> {
    if !selected(name) {
        return Ok(());
    }
    let mut times = Vec::new();
    let mut check = 0.0;
    for i in 0..repeats + usize::from(warm_up) {
        let t0 = Instant::now();
        check = f()?;
        if i > 0 || !warm_up {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    println!("{name} mars-rs {:.4}", median(times));
    println!("# check {name} {check}");
    Ok(())
}

/// W4's data: `n` rows of an int key over 1000 values and two floats.
fn w4_frame(n: usize) -> Result<md::DataFrame> {
    let mut r = Xorshift(42);
    let k: Vec<i64> = (0..n).map(|_| (r.next() % 1000) as i64).collect();
    let v1: Vec<f64> = (0..n).map(|_| r.float()).collect();
    let v2: Vec<f64> = (0..n).map(|_| r.float()).collect();
    md::DataFrame::from_columns(vec![
        ("k", Arc::new(Int64Array::from(k)) as ArrayRef),
        ("v1", Arc::new(Float64Array::from(v1))),
        ("v2", Arc::new(Float64Array::from(v2))),
    ])
}

fn value(t: &mt::Tensor, s: &Session) -> Result<f64> {
    Ok(t.execute_in(s)?.fetch_in(s)?.to_f64_vec()[0])
}

/// The cluster rows: a supervisor and two one-thread worker processes on
/// 127.0.0.1 (the `mars` binary beside this example, or `MARS_BIN`).
fn cluster_rows(rows: usize, repeats: usize) -> Result<()> {
    let opts = mars_cluster::LocalClusterOptions { threads: Some(1), ..Default::default() };
    let c = mars::LocalCluster::start(2, &opts)?;
    let s = c.session()?;
    // distinct chunks: W7 with random data (ones would share one key per chunk)
    time("W7_cluster", repeats, || {
        value(&(mt::random::RandomState::new(2).rand(&[1000, 1000]).rechunk(10) + 1.0).sum(), &s)
    })?;
    let x_of = || mt::random::RandomState::new(0).rand(&[rows, 5000]).rechunk(&[2000.min(rows), 5000]);
    time("W1_gen+compute_cluster", repeats, || value(&((&x_of() + 1.0) * 2.0).sum(), &s))?;
    let x = x_of();
    if selected("W1_compute_cluster") {
        x.execute_in(&s)?;
    }
    time("W1_compute_cluster", repeats, || value(&((&x + 1.0) * 2.0).sum(), &s))?;
    drop(x);
    if selected("flight_2GB") {
        use mars_backends::Backend;
        // 2 GiB held in 16 chunks of 128 MiB over both workers
        let remote = Arc::new(mars_cluster::RemoteBackend::connect(
            c.address(),
            c.token(),
            &mars_cluster::ClientTls::default(),
            &mars_tiler::TileOptions::default(),
            "bench",
        )?);
        let s2 = Session::with_backend(remote.clone());
        let x = mt::random::RandomState::new(3).rand(&[32768, 8192]).rechunk(&[2048, 8192]);
        x.execute_in(&s2)?;
        // worker -> client: each chunk read over Flight, one at a time
        let chunks = remote.meta(&x.key())?.chunks.len();
        let t0 = Instant::now();
        let mut bytes = 0;
        for i in 0..chunks {
            bytes += remote.fetch_chunk(&x.key(), i)?.nbytes();
        }
        let secs = t0.elapsed().as_secs_f64();
        println!("flight_2GB_to_client mars-rs {:.4}", secs * 2e9 / bytes as f64);
        println!("# check flight_2GB_to_client {bytes} bytes in {secs:.3} s: {:.2} GB/s", bytes as f64 / secs / 1e9);
        // worker -> worker: each chunk of x + x[::-1] reads two of x's, so
        // about half move between the workers; the rate is over the whole
        // execute (compute included), a lower bound
        let moved = || -> Result<(u64, u64)> {
            let st = mars_cluster::client::cluster_stats(c.address(), c.token())?;
            Ok((st.workers.iter().map(|w| w.bytes_fetched).sum(), st.workers.iter().map(|w| w.fetch_micros).sum()))
        };
        let (before, micros_before) = moved()?;
        let y = (&x + &x.slice(mars::ndarray::s![..;-1, ..])).sum();
        let t0 = Instant::now();
        let check = value(&y, &s2)?;
        let secs = t0.elapsed().as_secs_f64();
        // heartbeats carry the counters: wait for one
        std::thread::sleep(std::time::Duration::from_millis(1200));
        let (after, micros_after) = moved()?;
        // the same execute on the local backend (2 threads, as the 2
        // one-thread workers): what the cluster adds is the moves
        let local = mars::new_session()?;
        let xl = mt::random::RandomState::new(3).rand(&[32768, 8192]).rechunk(&[2048, 8192]);
        xl.execute_in(&local)?;
        let yl = (&xl + &xl.slice(mars::ndarray::s![..;-1, ..])).sum();
        let t0 = Instant::now();
        let check_local = value(&yl, &local)?;
        let local_secs = t0.elapsed().as_secs_f64();
        drop((xl, yl, local));
        println!(
            "# check flight_2GB_w2w local {check_local}: the same execute in {local_secs:.3} s on the local backend"
        );
        let (bytes, fetch_secs) = (after - before, (micros_after - micros_before) as f64 / 1e6);
        println!("flight_2GB_w2w mars-rs {:.4}", secs * 2e9 / bytes.max(1) as f64);
        println!("# check flight_2GB_w2w {check}: {bytes} bytes moved during an execute of {secs:.3} s");
        // the transfer alone: bytes over the time during which a worker was
        // reading (both workers' times added: a lower bound of the rate)
        println!("flight_w2w_transfer mars-rs {:.4}", fetch_secs * 2e9 / bytes.max(1) as f64);
        println!(
            "# check flight_w2w_transfer {bytes} bytes in {fetch_secs:.3} s of reads: {:.2} GB/s",
            bytes as f64 / fetch_secs.max(1e-9) / 1e9
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    mars::alloc::keep_freed_pages();
    if std::env::args().any(|a| a == "--phases") {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::stderr)
            .init();
    }
    let scale = arg("--scale", 1.0);
    let repeats = arg("--repeats", 3.0) as usize;
    let rows = ((20_000.0 * scale) as usize).max(10);
    let s = mars::new_session()?;
    let x_of = || mt::random::RandomState::new(0).rand(&[rows, 5000]).rechunk(&[2000.min(rows), 5000]);

    time("W1_gen+compute", repeats, || value(&((&x_of() + 1.0) * 2.0).sum(), &s))?;
    let x = x_of();
    if selected("W1_compute") || selected("W3") {
        x.execute_in(&s)?;
    }
    time("W1_compute", repeats, || value(&((&x + 1.0) * 2.0).sum(), &s))?;
    time("W3_mean0", repeats, || value(&x.mean_axis(0), &s))?;
    time("W3_std1", repeats, || value(&x.std_axis(1), &s))?;
    time("W3_both", repeats, || {
        let (m, d) = (x.mean_axis(0), x.std_axis(1));
        s.execute(&[&m, &d])?;
        Ok(m.fetch_in(&s)?.to_f64_vec()[0] + d.fetch_in(&s)?.to_f64_vec()[0])
    })?;
    drop(x);

    let rs = mt::random::RandomState::new(1);
    let (a, b) = (rs.rand(&[4096, 4096]).rechunk(1024), rs.rand(&[4096, 4096]).rechunk(1024));
    if selected("W2") {
        s.execute(&[&a, &b])?;
    }
    time("W2", repeats, || value(&a.dot(&b).sum(), &s))?;
    drop((a, b));

    // W4 out of core: the same groupby over a parquet file of W4's data, in a
    // session whose memory limit is a third of the data (`--only W4_limit`;
    // `--only W4_write` writes the file first, in its own process)
    let w4_file = std::env::temp_dir().join("mars-bench-w4.parquet");
    if exactly("W4_write") {
        let n = ((10_000_000.0 * scale) as usize).max(8);
        let df = w4_frame(n)?.rechunk(n.div_ceil(64));
        df.to_parquet_in(&s, &w4_file)?;
        println!("# wrote {} ({} rows, 64 row groups)", w4_file.display(), n);
    }
    if exactly("W4_limit") {
        let n = ((10_000_000.0 * scale) as usize).max(8);
        let limit = n * 24 / 3;
        let limited = Session::builder().memory_limit(limit).chunk_bytes(limit / 8).build()?;
        time("W4_limit", repeats, || {
            let df = md::read_parquet(&w4_file)?;
            let g = df.groupby(&["k"])?.agg(&[("v1", "sum"), ("v2", "mean"), ("k", "count")])?;
            Ok(g.execute_in(&limited)?.fetch_in(&limited)?.num_rows() as f64)
        })?;
        println!("# W4_limit memory_limit_mib {:.1}", limit as f64 / (1 << 20) as f64);
    }

    // W4: groupby over 10M rows held in 8 chunks (as Mars's and dask's 8 partitions)
    if selected("W4") {
        let n = ((10_000_000.0 * scale) as usize).max(8);
        let df = w4_frame(n)?.rechunk(n.div_ceil(8));
        df.execute_in(&s)?;
        time("W4", repeats, || {
            let g = df.groupby(&["k"])?.agg(&[("v1", "sum"), ("v2", "mean"), ("k", "count")])?;
            let out = g.execute_in(&s)?.fetch_in(&s)?;
            Ok(out.num_rows() as f64)
        })?;
    }

    // W5: inner join 10M x 1M rows on an int key, then sum(v * w); both sides held in 8 chunks
    if selected("W5") {
        let n = ((10_000_000.0 * scale) as usize).max(8);
        let m = (n / 10).max(1);
        let mut r = Xorshift(7);
        let lk: Vec<i64> = (0..n).map(|_| (r.next() % m as u64) as i64).collect();
        let v: Vec<f64> = (0..n).map(|_| r.float()).collect();
        // the right keys: a permutation of 0..m (Fisher-Yates)
        let mut rk: Vec<i64> = (0..m as i64).collect();
        for i in (1..m).rev() {
            rk.swap(i, (r.next() % (i as u64 + 1)) as usize);
        }
        let w: Vec<f64> = (0..m).map(|_| r.float()).collect();
        let left = md::DataFrame::from_columns(vec![
            ("k", Arc::new(Int64Array::from(lk)) as ArrayRef),
            ("v", Arc::new(Float64Array::from(v))),
        ])?
        .rechunk(n.div_ceil(8));
        let right = md::DataFrame::from_columns(vec![
            ("k", Arc::new(Int64Array::from(rk)) as ArrayRef),
            ("w", Arc::new(Float64Array::from(w))),
        ])?
        .rechunk(m.div_ceil(8));
        s.execute(&[&left, &right])?;
        time("W5", repeats, || {
            let j = left.merge(&right, &["k"], md::How::Inner)?;
            let total = (&j.col("v")? * &j.col("w")?).sum();
            total.execute_in(&s)?.fetch_in(&s)?.as_f64().ok_or_else(|| mars::Error::Invalid("no sum".into()))
        })?;
    }

    // W6: sort 10M rows (an f64 key and an i64 column) held in 8 chunks; the
    // sorted result is materialised (held in the session, as dask's persist)
    if selected("W6") {
        let n = ((10_000_000.0 * scale) as usize).max(8);
        let mut r = Xorshift(11);
        let a: Vec<f64> = (0..n).map(|_| r.float()).collect();
        let df = md::DataFrame::from_columns(vec![
            ("a", Arc::new(Float64Array::from(a)) as ArrayRef),
            ("b", Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()))),
        ])?
        .rechunk(n.div_ceil(8));
        df.execute_in(&s)?;
        time("W6", repeats, || {
            let sorted = df.sort_values(&["a"], true)?;
            sorted.execute_in(&s)?;
            Ok(n as f64)
        })?;
    }

    time("W7", repeats, || value(&(mt::ones(&[1000, 1000]).rechunk(10) + 1.0).sum(), &s))?;
    time("W7_random", repeats, || {
        value(&(mt::random::RandomState::new(2).rand(&[1000, 1000]).rechunk(10) + 1.0).sum(), &s)
    })?;
    time("tiling_1M_chunks", 1, || value(&(mt::ones(&[10_000_000]).rechunk(10) * 3.0).sum(), &s))?;
    // distinct chunks (no two share a key): what one chunk really costs end to end
    for (name, n) in [("scale_10k", 10_000), ("scale_100k", 100_000), ("scale_1M", 1_000_000), ("scale_4M", 4_000_000)]
    {
        if n > 1_000_000 && !explicitly(name) {
            continue;
        }
        timed(name, 1, false, || value(&(mt::arange(0.0, n as f64 * 10.0, 1.0).rechunk(10) * 3.0).sum(), &s))?;
    }
    if ["W7_cluster", "W1_gen+compute_cluster", "W1_compute_cluster", "flight_2GB"].iter().any(|n| selected(n)) {
        cluster_rows(rows, repeats)?;
    }
    // the process's peak resident memory (Linux), for single-workload runs (`--only`)
    if let Some(kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
    {
        println!("# peak_rss_mib {:.1}", kb / 1024.0);
    }
    Ok(())
}
