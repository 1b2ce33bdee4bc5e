//! The main job: the seed's examples, then a computation on 800 MB of random
//! numbers (generated chunk by chunk, never materialised whole), with
//! timings; dataframes; and a cluster of a supervisor and two worker
//! processes on 127.0.0.1 (this program run again as `supervisor` /
//! `worker`).
//!
//! `cargo run --release -p mars --example quickstart`

use mars::dataframe as md;
use mars::prelude::*;
use mars::tensor as mt;
use std::process::ExitCode;
use std::time::Instant;

/// mimalloc, freed pages kept a while: see [`mars::alloc`]
#[global_allocator]
static GLOBAL: mars::alloc::MiMalloc = mars::alloc::MiMalloc;

fn main() -> ExitCode {
    mars::alloc::keep_freed_pages();
    // the cluster below starts this program again as its supervisor and workers
    if let Some(code) = mars::serve::serve_from_args() {
        return code;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> mars::Result<()> {
    // md.DataFrame([[1, 2], [3, 4]]).execute()
    let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?;
    println!(">>> md.DataFrame([[1, 2], [3, 4]]).execute().fetch()\n{}\n", df.execute()?.fetch()?);

    // an explicit session, as with new_session() in Mars
    let sess = mars::new_session()?;
    let t = mt::random::RandomState::new(0).rand(&[3, 2]);
    println!(
        ">>> mt.random.RandomState(0).rand(3, 2).execute(session=sess)\n{}\n",
        t.execute_in(&sess)?.fetch_in(&sess)?
    );

    let other = mars::new_session()?;
    println!(">>> t.fetch(session=other)\nError: {}\n", t.fetch_in(&other).unwrap_err());

    // the plan is explicit: the tileable graph, lazily built
    let x = mt::random::RandomState::new(0).rand(&[20_000, 5_000]).rechunk(&[2_000, 5_000]);
    let y = ((&x + 1.0) * 2.0).sum();
    println!(">>> y.explain()\n{}", y.explain());

    let start = Instant::now();
    let v = y.execute_in(&sess)?.fetch_in(&sess)?;
    let secs = start.elapsed().as_secs_f64();
    println!("((x + 1) * 2).sum() over 20000x5000 float64 (800 MB, 10 chunks) = {v}");
    println!("  generated and reduced in {secs:.3} s ({:.2} GB/s of float64)\n", 0.8 / secs);

    // hold x, then compute over it: x's chunks are reused, not regenerated
    let start = Instant::now();
    x.execute_in(&sess)?;
    let gen = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let m = x.mean_axis(0).execute_in(&sess)?.fetch_in(&sess)?;
    let s = x.std_axis(1).execute_in(&sess)?.fetch_in(&sess)?;
    let over_held = start.elapsed().as_secs_f64();
    println!("x held in {gen:.3} s; mean(axis 0) and std(axis 1) over held x in {over_held:.3} s");
    println!("  mean[..3] = {:?}, std[..3] = {:?}", &m.to_f64_vec()[..3], &s.to_f64_vec()[..3]);
    let stats = sess.stats()?;
    println!(
        "  session: {} chunks run, {} chunks ({} MB) held",
        stats.chunks_run,
        stats.chunks_held,
        stats.bytes_held >> 20
    );
    drop(x);

    // under a memory limit the coldest chunks spill to disk and come back on demand
    let small = Session::builder().memory_limit(64 << 20).progress(false).build()?;
    let z = mt::random::RandomState::new(1).rand(&[5_000, 5_000]);
    let start = Instant::now();
    z.execute_in(&small)?;
    let total = z.sum().execute_in(&small)?.fetch_in(&small)?;
    let st = small.stats()?;
    println!(
        "\n200 MB held under a 64 MB limit: sum = {total} in {:.3} s; {} chunks ({} MB) spilled, {} read back, {} MB in memory",
        start.elapsed().as_secs_f64(),
        st.spill.chunks_spilled,
        st.spill.bytes_spilled >> 20,
        st.spill.chunks_restored,
        st.bytes_held >> 20
    );
    frames()?;
    cluster()
}

/// A supervisor and two one-thread worker processes on 127.0.0.1: the same
/// computation as above, the same number, and a worker-to-worker move.
fn cluster() -> mars::Result<()> {
    let opts = mars_cluster::LocalClusterOptions {
        threads: Some(1),
        binary: Some(std::env::current_exe()?),
        ..Default::default()
    };
    let start = Instant::now();
    let c = mars::LocalCluster::start(2, &opts)?;
    let (sup, workers) = c.pids();
    println!(
        "\ncluster: supervisor (pid {sup}) and 2 workers (pids {workers:?}) at {} in {:.3} s; dashboard: {}/?token=<token>",
        c.address(),
        start.elapsed().as_secs_f64(),
        c.address()
    );
    let remote = c.session()?;
    let local = mars::new_session()?;
    let x = mt::random::RandomState::new(0).rand(&[20_000, 5_000]).rechunk(&[2_000, 5_000]);
    let y = ((&x + 1.0) * 2.0).sum();
    let start = Instant::now();
    let on_cluster = y.execute_in(&remote)?.fetch_in(&remote)?;
    let secs = start.elapsed().as_secs_f64();
    let here = y.execute_in(&local)?.fetch_in(&local)?;
    println!(
        ">>> ((x + 1) * 2).sum() on the cluster = {on_cluster} in {secs:.3} s (locally {here}: {})",
        if on_cluster.to_f64_vec() == here.to_f64_vec() { "the same number" } else { "DIFFERENT" }
    );
    // x held on both workers; x + x[::-1] reads half its chunks from the other worker
    x.execute_in(&remote)?;
    let z = (&x + &x.slice(mars::ndarray::s![..;-1, ..])).sum();
    let start = Instant::now();
    let v = z.execute_in(&remote)?.fetch_in(&remote)?;
    let secs = start.elapsed().as_secs_f64();
    // (workers report their counters with each heartbeat, every 0.5 s)
    std::thread::sleep(std::time::Duration::from_millis(700));
    let st = mars_cluster::client::cluster_stats(c.address(), c.token())?;
    let moved: u64 = st.workers.iter().map(|w| w.bytes_fetched).sum();
    println!(
        ">>> (x + x[::-1]).sum() = {v} in {secs:.3} s; {} chunks run on the cluster so far, {} MB moved between workers",
        st.chunks_run,
        moved >> 20
    );
    Ok(())
}

/// Dataframes: 5M sales rows to parquet and back, a groupby, a join with a
/// small table and a sort, each timed.
fn frames() -> mars::Result<()> {
    use mars::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let n = 5_000_000usize;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let store: Vec<i64> = (0..n).map(|_| (next() % 500) as i64).collect();
    let amount: Vec<f64> = (0..n).map(|_| (next() % 100_000) as f64 / 100.0).collect();
    let sales = md::DataFrame::from_columns(vec![
        ("store", Arc::new(Int64Array::from(store)) as ArrayRef),
        ("amount", Arc::new(Float64Array::from(amount))),
    ])?
    .rechunk(n / 8);
    let dir = std::env::temp_dir().join(format!("mars-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sales.parquet");
    let start = Instant::now();
    sales.to_parquet(&path)?;
    println!(
        "
5M sales rows written to {} in {:.3} s",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    let df = md::read_parquet(&path)?;
    let start = Instant::now();
    let per_store = df.groupby(&["store"])?.agg(&[("amount", "sum"), ("amount", "mean"), ("amount", "count")])?;
    let top = per_store.sort_values(&["amount_sum"], false)?.head(3);
    let shown = top.execute()?.fetch()?;
    println!(
        ">>> read_parquet(path).groupby(\"store\").agg(...).sort_values(\"amount_sum\", ascending=False).head(3)\n{shown}"
    );
    println!("  in {:.3} s", start.elapsed().as_secs_f64());
    let regions = md::DataFrame::from_columns(vec![
        ("store", Arc::new(Int64Array::from((0..500i64).collect::<Vec<_>>())) as ArrayRef),
        (
            "region",
            Arc::new(StringArray::from(
                (0..500).map(|i| ["north", "south", "east", "west"][i % 4]).collect::<Vec<_>>(),
            )),
        ),
    ])?;
    let start = Instant::now();
    let joined = df.merge(&regions, &["store"], md::How::Inner)?;
    let by_region = joined.groupby(&["region"])?.agg(&[("amount", "sum"), ("amount", "std")])?;
    println!(">>> df.merge(regions, on=\"store\").groupby(\"region\").agg(...)\n{}", by_region.execute()?.fetch()?);
    println!("  in {:.3} s", start.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
