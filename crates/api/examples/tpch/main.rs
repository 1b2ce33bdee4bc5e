//! TPC-H with mars-rs: generate the tables as parquet files, run the eight
//! queries on them, time each, and write the answers for
//! `bench/tpch.py` to check against DuckDB's on the same files.
//!
//! ```text
//! cargo run --release --example tpch -- gen --sf 1 --dir /tmp/tpch-sf1
//! cargo run --release --example tpch -- run --dir /tmp/tpch-sf1 [--repeat 3] [--queries q1,q6] [--answers a.json] [--phases|--chunks]
//! cargo run --release --example tpch -- explain --dir /tmp/tpch-sf1 --query q1
//! ```

#[allow(dead_code)] // in_memory and check serve tests/tpch.rs
mod queries;

use mars::dataframe::DataFrame;
use queries::{Answer, Cell, Tables, QUERIES};
use std::path::PathBuf;
use std::time::Instant;

/// mimalloc, freed pages kept a while: see [`mars::alloc`]
#[global_allocator]
static GLOBAL: mars::alloc::MiMalloc = mars::alloc::MiMalloc;

fn main() {
    mars::alloc::keep_freed_pages();
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(level) = args.iter().find_map(|a| match a.as_str() {
        "--phases" => Some(tracing::Level::DEBUG),
        "--chunks" => Some(tracing::Level::TRACE),
        _ => None,
    }) {
        // the driver's spans (tile, passes, execute per stage) with their
        // times; `--chunks` adds the executor's span of every chunk
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = PathBuf::from(arg(&args, "--dir").ok_or("--dir DIR is required")?);
    match args.first().map(String::as_str) {
        Some("gen") => {
            let sf: f64 = arg(&args, "--sf").unwrap_or_else(|| "1".into()).parse()?;
            // row groups of about 1M rows, as DuckDB and Spark write them
            let rows: usize = arg(&args, "--row-group").unwrap_or_else(|| "1048576".into()).parse()?;
            std::fs::create_dir_all(&dir)?;
            let t0 = Instant::now();
            for (name, batch) in queries::generate(sf) {
                let n = batch.num_rows();
                let path = dir.join(format!("{name}.parquet"));
                DataFrame::from_record_batch(batch).rechunk(rows).to_parquet(&path)?;
                println!("{name}: {n} rows -> {}", path.display());
            }
            println!("generated SF {sf} in {:.1} s", t0.elapsed().as_secs_f64());
        }
        Some("run") => {
            let repeat: usize = arg(&args, "--repeat").unwrap_or_else(|| "3".into()).parse()?;
            let wanted = arg(&args, "--queries");
            let mut builder = mars::Session::builder().progress(false);
            if let Some(b) = arg(&args, "--chunk-bytes") {
                builder = builder.chunk_bytes(b.parse()?);
            }
            let session = builder.build()?;
            let tables = Tables::parquet(&dir)?;
            let mut answers = serde_json::Map::new();
            for q in QUERIES {
                if wanted.as_ref().is_some_and(|w| !w.split(',').any(|x| x == q)) {
                    continue;
                }
                let mut best = f64::INFINITY;
                let mut answer = None;
                for _ in 0..repeat.max(1) {
                    let t0 = Instant::now();
                    let a = queries::run(q, &tables, &session)?;
                    // the query's tileables are dropped here, so the next
                    // run computes it again rather than reusing held results
                    best = best.min(t0.elapsed().as_secs_f64());
                    answer = Some(a);
                }
                let answer = answer.expect("ran at least once");
                println!("{q}: {best:.3} s ({} rows)", answer.rows.len());
                answers.insert(q.into(), to_json(&answer, best));
            }
            if let Some(path) = arg(&args, "--answers") {
                std::fs::write(&path, serde_json::to_string_pretty(&answers)?)?;
                println!("answers -> {path}");
            }
        }
        Some("explain") => {
            let tables = Tables::parquet(&dir)?;
            let q = arg(&args, "--query").unwrap_or_else(|| "q1".into());
            let text = match q.as_str() {
                "q1" => mars::explain_tiled(&queries::q1(&tables)?, None, true)?,
                "q3" => mars::explain_tiled(&queries::q3(&tables)?, None, true)?,
                "q6" => mars::explain_tiled(&queries::q6_revenue(&tables)?, None, true)?,
                other => return Err(format!("explain knows q1, q3 and q6, not {other:?}").into()),
            };
            println!("{text}");
        }
        _ => return Err(
            "usage: tpch gen --sf SF --dir DIR | tpch run --dir DIR [--repeat N] [--queries q1,..] [--answers FILE] | tpch explain --dir DIR --query q1"
                .into(),
        ),
    }
    Ok(())
}

fn to_json(a: &Answer, seconds: f64) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = a
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Cell::Num(x) => serde_json::json!(x),
                    Cell::Text(s) => serde_json::json!(s),
                    Cell::Null => serde_json::Value::Null,
                })
                .collect()
        })
        .collect();
    serde_json::json!({ "seconds": seconds, "columns": a.columns, "rows": rows })
}
