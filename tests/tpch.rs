//! TPC-H Q1 Q3 Q5 Q6 Q10 Q12 Q14 Q18 at SF 0.01 (data from `tpchgen-arrow`
//! at test time), written with the dataframe API in
//! crates/api/examples/tpch/queries.rs, against DuckDB's answers on the same
//! data (tests/tpch_answers/sf0.01.json, made by bench/tpch.py): in memory
//! under several chunkings, with joins and groupbys forced to shuffle, and
//! from parquet files.

#[path = "../crates/api/examples/tpch/queries.rs"]
#[allow(dead_code)]
mod queries;

use mars::arrow::array::RecordBatch;
use mars::Result;
use queries::{Answer, Cell, Tables, QUERIES};
use std::sync::OnceLock;

fn data() -> &'static Vec<(&'static str, RecordBatch)> {
    static DATA: OnceLock<Vec<(&'static str, RecordBatch)>> = OnceLock::new();
    DATA.get_or_init(|| queries::generate(0.01))
}

/// DuckDB's answer to query `q`.
fn want(q: &str) -> Answer {
    static JSON: OnceLock<serde_json::Value> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        let text = include_str!("tpch_answers/sf0.01.json");
        serde_json::from_str(text).expect("tests/tpch_answers/sf0.01.json is JSON")
    });
    let a = &json[q];
    let columns = a["columns"].as_array().expect("columns").iter().map(|c| c.as_str().unwrap().to_string()).collect();
    let rows = a["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("a row")
                .iter()
                .map(|v| match v {
                    serde_json::Value::Number(n) => Cell::Num(n.as_f64().unwrap()),
                    serde_json::Value::String(s) => Cell::Text(s.clone()),
                    serde_json::Value::Null => Cell::Null,
                    other => panic!("unexpected answer cell {other}"),
                })
                .collect()
        })
        .collect();
    Answer { columns, rows }
}

fn session(chunk_bytes: Option<usize>) -> Result<mars::Session> {
    let mut b = mars::Session::builder().progress(false);
    if let Some(n) = chunk_bytes {
        b = b.chunk_bytes(n);
    }
    b.build()
}

/// Every query on `tables` in `session`, checked; the failures listed.
fn check_all(what: &str, tables: &Tables, session: &mars::Session) -> Result<()> {
    let mut failures = vec![];
    for q in QUERIES {
        let got = queries::run(q, tables, session)?;
        if let Err(e) = queries::check(q, &got, &want(q)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{what}: {failures:#?}");
    Ok(())
}

#[test]
fn the_answers_are_nonempty_and_match_the_queries_columns() {
    // a guard on the committed answers themselves: an empty reference
    // would let a query that returns nothing pass
    for q in QUERIES {
        let a = want(q);
        assert!(!a.rows.is_empty(), "{q} has no rows");
        assert!(a.rows.iter().all(|r| r.len() == a.columns.len()), "{q}: ragged rows");
    }
    assert_eq!(want("q1").rows.len(), 4);
    assert_eq!(want("q3").rows.len(), 10);
    assert_eq!(want("q10").rows.len(), 20);
}

#[test]
fn tpch_in_memory_whole_and_in_uneven_chunks() -> Result<()> {
    let s = session(None)?;
    check_all("one chunk per table", &Tables::in_memory(data(), usize::MAX), &s)?;
    check_all("7919-row chunks", &Tables::in_memory(data(), 7919), &s)
}

#[test]
fn tpch_with_every_join_and_groupby_shuffled() -> Result<()> {
    // 64 KiB chunks: no side of a join fits, so each shuffles, and the
    // groupbys' partials are split into many partitions
    let s = session(Some(64 << 10))?;
    check_all("64 KiB chunks", &Tables::in_memory(data(), 3001), &s)
}

#[test]
fn tpch_from_parquet_files() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("mars-tpch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let s = session(None)?;
    for (name, batch) in data() {
        // row groups of 10,000 rows: lineitem is seven row groups
        let df = mars::dataframe::DataFrame::from_record_batch(batch.clone()).rechunk(10_000);
        df.to_parquet_in(&s, dir.join(format!("{name}.parquet")))?;
    }
    let result = check_all("parquet", &Tables::parquet(&dir)?, &s);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn a_wrong_answer_is_caught() {
    // the checker itself must fail on a changed number or row
    let mut a = want("q1");
    assert!(queries::check("q1", &a, &want("q1")).is_ok());
    if let Cell::Num(x) = &mut a.rows[2][2] {
        *x *= 1.000001;
    }
    let err = queries::check("q1", &a, &want("q1")).unwrap_err();
    assert!(err.contains("row 2 column \"sum_qty\""), "{err}");
    a.rows.pop();
    assert!(queries::check("q1", &a, &want("q1")).unwrap_err().contains("3 rows, want 4"));
}
