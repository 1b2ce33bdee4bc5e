//! The dataframe differential corpus: each chunked operation against the
//! same computation done plainly on one unchunked batch, under several
//! chunkings (1-row chunks, keys spanning chunks, chunks a filter left
//! empty), with nulls and NaNs, by every merge method.

use mars::arrow::array::{Array, ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, StringArray};
use mars::arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use mars::arrow::record_batch::RecordBatch;
use mars::arrow::util::display::array_value_to_string;
use mars::dataframe as md;
use mars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A small frame with every kind of key and value: ints, strings (one of
/// them empty) and dates, with nulls; floats with nulls and a NaN.
fn sample(n: usize) -> Vec<(&'static str, ArrayRef)> {
    let k: Vec<Option<i64>> = (0..n).map(|i| (i % 7 != 3).then_some(((i * 5) % 4) as i64 - 1)).collect();
    let s: Vec<Option<&str>> = (0..n).map(|i| (i % 6 != 5).then_some(["b", "a", "cc", ""][(i * 3 / 2) % 4])).collect();
    let v: Vec<Option<f64>> = (0..n)
        .map(|i| match i % 9 {
            4 => None,
            7 => Some(f64::NAN),
            _ => Some((i as f64 * 1.7).sin() * 10.0),
        })
        .collect();
    let iv: Vec<Option<i32>> = (0..n).map(|i| (i % 5 != 2).then_some((i as i32 * 37) % 23 - 11)).collect();
    let d: Vec<Option<i32>> = (0..n).map(|i| (i % 8 != 6).then_some(18_000 + ((i * 13) % 10) as i32)).collect();
    vec![
        ("k", Arc::new(Int64Array::from(k))),
        ("s", Arc::new(StringArray::from(s))),
        ("v", Arc::new(Float64Array::from(v))),
        ("i", Arc::new(Int32Array::from(iv))),
        ("d", Arc::new(Date32Array::from(d))),
    ]
}

/// A session: local, or (when this file is `frame_ops_cluster`'s module) one
/// on a supervisor and two worker processes shared by the tests, so the
/// frame corpus also runs on the cluster.
fn session() -> Result<mars::Session> {
    if module_path!().starts_with("frame_ops_cluster") {
        static CLUSTER: std::sync::OnceLock<mars::LocalCluster> = std::sync::OnceLock::new();
        let c = CLUSTER.get_or_init(|| mars::new_cluster(2).expect("a local cluster"));
        return c.session();
    }
    mars::new_session()
}

/// A local backend tiling with this chunk budget (the default without one),
/// and a session on it.
fn session_with(chunk_bytes: Option<usize>) -> Result<(Arc<mars_backends::LocalBackend>, mars::Session)> {
    let mut opts = mars_backends::LocalOptions::default();
    if let Some(b) = chunk_bytes {
        opts.tile.chunk_bytes = b;
    }
    let backend = Arc::new(mars_backends::LocalBackend::new(opts)?);
    Ok((backend.clone(), mars::Session::with_backend(backend)))
}

/// A reference value: a float (compared with a tolerance), text (exact), or missing.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    F(f64),
    S(String),
    Null,
}

fn close(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::F(x), Val::F(y)) => (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
        _ => a == b,
    }
}

/// A column's values for comparison: floats as floats, the rest as text.
fn vals(a: &ArrayRef) -> Vec<Val> {
    let floats = a.as_any().downcast_ref::<Float64Array>();
    (0..a.len())
        .map(|i| match (a.is_null(i), floats) {
            (true, _) => Val::Null,
            (false, Some(f)) => Val::F(f.value(i)),
            (false, None) => Val::S(array_value_to_string(a, i).unwrap()),
        })
        .collect()
}

/// `groupby(keys).agg(aggs)` computed row by row on the one batch.
fn reference(batch: &RecordBatch, keys: &[&str], aggs: &[(&str, &str)]) -> Vec<Vec<Val>> {
    let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
    // groups in key order: ints by value, strings by bytes (as Arrow sorts)
    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum K {
        I(i64),
        S(String),
    }
    let key_of = |a: &ArrayRef, r: usize| -> Option<K> {
        if a.is_null(r) {
            return None;
        }
        let text = array_value_to_string(a, r).unwrap();
        Some(match a.data_type() {
            mars::arrow::datatypes::DataType::Utf8 => K::S(text),
            mars::arrow::datatypes::DataType::Date32 => {
                K::I(a.as_any().downcast_ref::<Date32Array>().unwrap().value(r).into())
            }
            _ => K::I(text.parse().unwrap()),
        })
    };
    let key_cols: Vec<ArrayRef> = keys.iter().map(|k| col(k)).collect();
    let mut groups: BTreeMap<Vec<K>, Vec<usize>> = BTreeMap::new();
    for r in 0..batch.num_rows() {
        if let Some(key) = key_cols.iter().map(|a| key_of(a, r)).collect::<Option<Vec<K>>>() {
            groups.entry(key).or_default().push(r);
        }
    }
    let first_rows: Vec<usize> = groups.values().map(|rows| rows[0]).collect();
    let mut out: Vec<Vec<Val>> =
        key_cols.iter().map(|a| first_rows.iter().map(|&r| vals(a)[r].clone()).collect()).collect();
    for (c, func) in aggs {
        let a = col(c);
        let text = vals(&a);
        let is_float = matches!(a.data_type(), mars::arrow::datatypes::DataType::Float64);
        let is_str = matches!(a.data_type(), mars::arrow::datatypes::DataType::Utf8);
        // a present value: not null, not NaN; numbers as f64 (dates as days)
        let num = |r: usize| -> Option<f64> {
            match &text[r] {
                Val::Null => None,
                Val::F(x) if x.is_nan() => None,
                Val::F(x) => Some(*x),
                Val::S(_) if is_str => None,
                Val::S(_) => Some(match a.as_any().downcast_ref::<Date32Array>() {
                    Some(d) => d.value(r).into(),
                    None => mars::arrow::compute::cast(&a, &mars::arrow::datatypes::DataType::Float64)
                        .unwrap()
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .unwrap()
                        .value(r),
                }),
            }
        };
        let present = |r: usize| if is_str { text[r] != Val::Null } else { num(r).is_some() };
        let col_out = groups
            .values()
            .map(|rows| {
                let p: Vec<usize> = rows.iter().copied().filter(|&r| present(r)).collect();
                let xs: Vec<f64> = p.iter().filter_map(|&r| num(r)).collect();
                let n = p.len() as f64;
                let mean = xs.iter().sum::<f64>() / n;
                let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
                let best = |less: bool| {
                    p.iter().copied().reduce(|b, r| {
                        let better = if is_str {
                            let (Val::S(x), Val::S(y)) = (&text[r], &text[b]) else { unreachable!() };
                            if less {
                                x < y
                            } else {
                                x > y
                            }
                        } else if less {
                            num(r) < num(b)
                        } else {
                            num(r) > num(b)
                        };
                        if better {
                            r
                        } else {
                            b
                        }
                    })
                };
                let at = |r: Option<usize>| r.map_or(Val::Null, |r| text[r].clone());
                match *func {
                    "sum" if is_float => Val::F(xs.iter().sum()),
                    "sum" => Val::S((xs.iter().sum::<f64>() as i64).to_string()),
                    "mean" if p.is_empty() => Val::Null,
                    "mean" => Val::F(mean),
                    "var" | "std" if p.len() < 2 => Val::Null,
                    "var" => Val::F(var),
                    "std" => Val::F(var.sqrt()),
                    "count" => Val::S(p.len().to_string()),
                    "size" => Val::S(rows.len().to_string()),
                    "min" => at(best(true)),
                    "max" => at(best(false)),
                    "first" => at(p.first().copied()),
                    "nunique" => {
                        let distinct: BTreeSet<String> = p.iter().map(|&r| format!("{:?}", text[r])).collect();
                        Val::S(distinct.len().to_string())
                    }
                    other => panic!("no reference for {other}"),
                }
            })
            .collect();
        out.push(col_out);
    }
    out
}

/// `batch` sorted by its first `nkeys` columns (a shuffle's chunks are each sorted, not all together).
fn sorted(batch: &RecordBatch, nkeys: usize) -> RecordBatch {
    let cols: Vec<SortColumn> =
        (0..nkeys).map(|i| SortColumn { values: batch.column(i).clone(), options: None }).collect();
    take_record_batch(batch, &lexsort_to_indices(&cols, None).unwrap()).unwrap()
}

fn check_against(got: &RecordBatch, want: &[Vec<Val>], what: &str) {
    assert_eq!(got.num_columns(), want.len(), "{what}: columns");
    for (c, w) in want.iter().enumerate() {
        let g = vals(got.column(c));
        assert_eq!(g.len(), w.len(), "{what}: rows of column {}", got.schema().field(c).name());
        for (r, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(close(a, b), "{what}: column {} row {r}: got {a:?}, want {b:?}", got.schema().field(c).name());
        }
    }
}

/// Every aggregation by int, string, date and two-column keys, against the
/// row-by-row reference, under 1-, 4-, 9- and 37-row chunks and each merge
/// method; then over a filter that leaves chunks empty.
#[test]
fn groupby_agg_matches_one_batch() -> Result<()> {
    let sess = session()?;
    let n = 37;
    let cols = sample(n);
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    let all_v = ["sum", "mean", "min", "max", "count", "size", "std", "var", "first", "nunique"];
    let mut aggs: Vec<(&str, &str)> = all_v.iter().map(|f| ("v", *f)).collect();
    aggs.extend([("i", "sum"), ("i", "min"), ("i", "max"), ("i", "first"), ("i", "nunique"), ("i", "var")]);
    aggs.extend([("d", "min"), ("d", "max"), ("d", "count")]);
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>)> = vec![
        (vec!["k"], [aggs.clone(), vec![("s", "min"), ("s", "max"), ("s", "first"), ("s", "nunique")]].concat()),
        (vec!["s"], [aggs.clone(), vec![("k", "sum"), ("k", "count")]].concat()),
        (vec!["k", "s"], aggs.clone()),
        (vec!["d"], vec![("v", "sum"), ("k", "max"), ("s", "nunique")]),
    ];
    for (keys, aggs) in &cases {
        let want = reference(&batch, keys, aggs);
        for rows in [1, 4, 9, 37] {
            for method in [md::GroupMethod::Tree, md::GroupMethod::Shuffle, md::GroupMethod::Auto] {
                let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
                let g = df.groupby(keys)?.method(method).agg(aggs)?;
                let data = g.execute_in(&sess)?.fetch_in(&sess)?;
                assert_eq!(data.index_columns(), keys.len());
                let what = format!("by {keys:?}, {rows}-row chunks, {method:?}");
                let got = data.record_batch();
                if method != md::GroupMethod::Shuffle {
                    assert_eq!(got, &sorted(got, keys.len()), "{what}: sorted by key");
                }
                check_against(&sorted(got, keys.len()), &want, &what);
            }
        }
    }
    // after a filter: whole chunks are left empty, and one group vanishes
    let keep = Arc::new(mars::arrow::array::BooleanArray::from(
        (0..n).map(|i| (i / 4) % 3 != 1 && i % 4 != 0).collect::<Vec<_>>(),
    ));
    let filtered = mars::arrow::compute::filter_record_batch(&batch, &keep)?;
    let want = reference(&filtered, &["k"], &[("v", "mean"), ("i", "sum"), ("s", "nunique")]);
    for rows in [1, 4] {
        let with_mask = RecordBatch::try_from_iter(
            cols.iter().cloned().chain([("m", keep.clone() as ArrayRef)]).collect::<Vec<_>>(),
        )?;
        let df = md::DataFrame::from_record_batch(with_mask).rechunk(rows);
        let df = df.filter(&df.col("m")?)?;
        for method in [md::GroupMethod::Tree, md::GroupMethod::Shuffle] {
            let g = df.groupby(&["k"])?.method(method).agg(&[("v", "mean"), ("i", "sum"), ("s", "nunique")])?;
            let got = g.execute_in(&sess)?.fetch_in(&sess)?;
            check_against(&sorted(got.record_batch(), 1), &want, &format!("filtered, {rows}-row chunks, {method:?}"));
        }
    }
    Ok(())
}

/// `.sum()`, `.mean()` … aggregate every other column under its own name;
/// `.size()` is one column named `size`; the result prints like pandas.
#[test]
fn groupby_shorthands_keep_column_names() -> Result<()> {
    let sess = session()?;
    let df = md::DataFrame::from_columns(vec![
        ("k", Arc::new(StringArray::from(vec!["x", "y", "x", "x"])) as ArrayRef),
        ("a", Arc::new(Int64Array::from(vec![1, 2, 3, 4]))),
        ("b", Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5]))),
    ])?
    .rechunk(3);
    let g = df.groupby(&["k"])?;
    let sum = g.sum()?.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(sum.to_string(), "   a    b\nk        \nx  8  6.5\ny  2  1.5");
    let mean = g.mean()?.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(
        mean.to_string(),
        "          a         b\nk                    \nx  2.666667  2.166667\ny  2.000000  1.500000"
    );
    let size = g.size()?.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(size.record_batch().schema().field(1).name(), "size");
    assert_eq!(vals(size.record_batch().column(1)), vec![Val::S("3".into()), Val::S("1".into())]);
    for (f, want) in [(g.count()?, "1"), (g.nunique()?, "1"), (g.first()?, "2"), (g.max()?, "2")] {
        let d = f.execute_in(&sess)?.fetch_in(&sess)?;
        assert_eq!(d.num_rows(), 2);
        assert_eq!(vals(d.record_batch().column(1))[1], Val::S(want.into()));
    }
    Ok(())
}

/// Bad groupbys are clear errors naming what is wrong, and the session keeps
/// what it holds.
#[test]
fn groupby_errors_name_the_problem() -> Result<()> {
    let sess = session()?;
    let df = md::DataFrame::from_columns(sample(10))?;
    df.execute_in(&sess)?;
    let err = |r: Result<md::DataFrame>| r.unwrap_err().to_string();
    let e = df.groupby(&["nope"]).unwrap_err().to_string();
    assert!(e.contains(r#"column "nope" is not in the frame; its columns are ["k", "s", "v", "i", "d"]"#), "{e}");
    let e = err(df.groupby(&["k"])?.agg(&[("v", "median")]));
    assert!(e.contains(r#"unknown aggregation "median""#) && e.contains("nunique"), "{e}");
    let e = err(df.groupby(&["k"])?.agg(&[("s", "mean")]));
    assert!(e.contains(r#"cannot take the mean of column "s" of type utf8"#), "{e}");
    let e = err(df.groupby(&["k"])?.sum());
    assert!(e.contains(r#"cannot take the sum of column "s""#), "{e}");
    let e = err(df.groupby(&["k"])?.agg(&[("zz", "sum")]));
    assert!(e.contains(r#"column "zz" is not in the frame"#), "{e}");
    let e = err(df.groupby(&["k"])?.agg(&[("v", "sum"), ("v", "sum")]));
    assert!(e.contains(r#"two columns named "v_sum""#), "{e}");
    assert_eq!(df.fetch_in(&sess)?.num_rows(), 10);
    Ok(())
}

/// `Auto` runs the partials, then merges them in a tree (one chunk) when
/// they fit one chunk's budget and by a hash shuffle (several chunks) when
/// they do not; both give the exact answer.
#[test]
fn groupby_auto_picks_tree_or_shuffle_from_partial_sizes() -> Result<()> {
    use mars_backends::Backend;
    let n = 4000;
    let k: Vec<i64> = (0..n).map(|i| (i * 7919) % 1500).collect();
    let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let cols =
        vec![("k", Arc::new(Int64Array::from(k)) as ArrayRef), ("v", Arc::new(Float64Array::from(v)) as ArrayRef)];
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    let want = reference(&batch, &["k"], &[("v", "sum"), ("v", "count")]);
    for (chunk_bytes, chunks) in [(None, 1usize), (Some(8 << 10), 4)] {
        let (backend, sess) = session_with(chunk_bytes)?;
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(1000);
        let g = df.groupby(&["k"])?.agg(&[("v", "sum"), ("v", "count")])?;
        let got = g.execute_in(&sess)?.fetch_in(&sess)?;
        // 1500 groups of 24 state bytes: one chunk's budget by default, ~4.4 budgets of 8 KiB
        assert_eq!(backend.meta(&g.key())?.nsplits[0].len(), chunks, "chunk_bytes {chunk_bytes:?}");
        check_against(&sorted(got.record_batch(), 1), &want, &format!("chunk_bytes {chunk_bytes:?}"));
    }
    Ok(())
}

/// Partials of many groups that fit one chunk still merge on every thread:
/// a reducer per thread (and one with a single thread).
#[test]
fn groupby_auto_merges_many_groups_on_every_thread() -> Result<()> {
    use mars::arrow::array::AsArray;
    use mars_backends::Backend;
    let n = 300_001i64;
    let k: Vec<i64> = (0..n).map(|i| (i * 7919) % (n - 7)).collect();
    let v: Vec<f64> = (0..n).map(|i| (i % 101) as f64).collect();
    let cols = vec![
        ("k", Arc::new(Int64Array::from(k.clone())) as ArrayRef),
        ("v", Arc::new(Float64Array::from(v.clone())) as ArrayRef),
    ];
    // per key in order: (sum, count)
    let mut want: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for (&k, &v) in k.iter().zip(&v) {
        let e = want.entry(k).or_default();
        *e = (e.0 + v, e.1 + 1.0);
    }
    for threads in [1usize, 2] {
        let opts = mars_backends::LocalOptions { threads: Some(threads), ..Default::default() };
        let backend = Arc::new(mars_backends::LocalBackend::new(opts)?);
        let sess = mars::Session::with_backend(backend.clone());
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(100_000);
        let g = df.groupby(&["k"])?.agg(&[("v", "sum"), ("v", "mean")])?;
        let got = g.execute_in(&sess)?.fetch_in(&sess)?;
        assert_eq!(backend.meta(&g.key())?.nsplits[0].len(), threads, "{threads} threads");
        // reducers by key range: the groups come out in key order, as one merge gives them
        let b = got.record_batch();
        let keys = b.column(0).as_primitive::<mars::arrow::datatypes::Int64Type>().values();
        let sums = b.column(1).as_primitive::<mars::arrow::datatypes::Float64Type>().values();
        let means = b.column(2).as_primitive::<mars::arrow::datatypes::Float64Type>().values();
        assert_eq!(keys.len(), want.len(), "{threads} threads: groups");
        for (i, (&k, &(sum, count))) in want.iter().enumerate() {
            assert_eq!((keys[i], sums[i], means[i]), (k, sum, sum / count), "{threads} threads: group {i}");
        }
    }
    Ok(())
}

/// Series reductions against the row-by-row reference (one group of all
/// rows), under several chunkings; over no rows: sum 0, count 0, mean missing.
#[test]
fn series_reductions_match_one_batch() -> Result<()> {
    let sess = session()?;
    let cols = sample(23);
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    let funcs = ["sum", "mean", "min", "max", "count", "std", "var", "nunique"];
    for column in ["v", "i", "k"] {
        let aggs: Vec<(&str, &str)> = funcs.iter().map(|f| (column, *f)).collect();
        let want = reference(&batch, &[], &aggs);
        for rows in [1, 5, 23] {
            let s = md::DataFrame::from_columns(cols.clone())?.rechunk(rows).col(column)?;
            let reductions = [s.sum(), s.mean(), s.min(), s.max(), s.count(), s.std(), s.var(), s.nunique()];
            for ((f, r), w) in funcs.iter().zip(&reductions).zip(&want) {
                let got = r.execute_in(&sess)?.fetch_in(&sess)?;
                let got = vals(got.array());
                assert!(close(&got[0], &w[0]), "{f}({column}), {rows}-row chunks: got {:?}, want {:?}", got[0], w[0]);
            }
        }
    }
    let s = md::DataFrame::from_columns(vec![("s", Arc::new(StringArray::from(vec!["b", "a", "c"])) as ArrayRef)])?
        .rechunk(2)
        .col("s")?;
    assert_eq!(s.min().execute_in(&sess)?.fetch_in(&sess)?.to_string(), "a");
    assert_eq!(s.max().execute_in(&sess)?.fetch_in(&sess)?.to_string(), "c");
    // no rows: a filter that keeps none
    let df = md::DataFrame::from_columns(sample(9))?.rechunk(4);
    let none = df.filter(&df.col("k")?.gt(100i64))?.col("v")?;
    let value = |s: md::Scalar| s.execute_in(&sess).and_then(|s| s.fetch_in(&sess));
    assert_eq!(value(none.sum())?.as_f64(), Some(0.0));
    assert_eq!(value(none.count())?.as_i64(), Some(0));
    let mean = value(none.mean())?;
    assert!(mean.is_null() && mean.as_f64().is_none());
    assert_eq!(mean.to_string(), "nan");
    let e = md::DataFrame::from_columns(sample(3))?.col("s")?.sum().execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains(r#"cannot take the sum of column "s" of type utf8"#), "{e}");
    Ok(())
}

/// A temporary folder removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("mars-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parquet round trip: `to_parquet` writes a row group per chunk and
/// `read_parquet` reads them back exactly (nulls, dates, strings), as one
/// file or a folder, whole or chunk per row group, all columns or some, or
/// the head; bad files are errors naming the file, and nothing held is lost.
#[test]
fn parquet_round_trips_and_bad_files_are_clear_errors() -> Result<()> {
    use mars_backends::Backend;
    let dir = TempDir::new("parquet");
    let sess = session()?;
    let batch = RecordBatch::try_from_iter(sample(37))?;
    let one = dir.0.join("one.parquet");
    md::DataFrame::from_record_batch(batch.clone()).rechunk(5).to_parquet_in(&sess, &one)?;
    // a folder of two files (and a marker file that is not data)
    let folder = dir.0.join("folder");
    std::fs::create_dir_all(&folder)?;
    md::DataFrame::from_record_batch(batch.slice(0, 20)).rechunk(7).to_parquet_in(&sess, folder.join("a.parquet"))?;
    md::DataFrame::from_record_batch(batch.slice(20, 17)).to_parquet_in(&sess, folder.join("b.parquet"))?;
    std::fs::write(folder.join("_SUCCESS"), b"")?;
    for chunk_bytes in [None, Some(64)] {
        let (backend, sess) = session_with(chunk_bytes)?;
        for path in [&one, &folder] {
            let df = md::read_parquet(path)?;
            assert_eq!(df.columns(), ["k", "s", "v", "i", "d"]);
            let got = df.execute_in(&sess)?.fetch_in(&sess)?;
            assert_eq!(got.record_batch(), &batch, "{path:?}, chunk_bytes {chunk_bytes:?}");
            let chunks = backend.meta(&df.key())?.nsplits[0].len();
            let want_chunks = match (chunk_bytes, path == &one) {
                (None, true) => 1,
                (None, false) => 2,
                (Some(_), true) => 8,
                (Some(_), false) => 4,
            };
            assert_eq!(chunks, want_chunks, "{path:?}, chunk_bytes {chunk_bytes:?}");
            let some = df.select(&["d", "k"])?.execute_in(&sess)?.fetch_in(&sess)?;
            assert_eq!(some.record_batch(), &batch.project(&[4, 0])?);
            let head = md::read_parquet(path)?.head(6).execute_in(&sess)?.fetch_in(&sess)?;
            assert_eq!(head.record_batch(), &batch.slice(0, 6));
        }
    }
    // only the row groups holding the head are read: a 1-row-group head runs one chunk
    let (_, sess2) = session_with(Some(64))?;
    let before = sess2.stats()?.chunks_run;
    md::read_parquet(&one)?.head(3).execute_in(&sess2)?;
    assert_eq!(sess2.stats()?.chunks_run - before, 2, "one row group read, then cut");

    // bad files
    let held = md::read_parquet(&one)?;
    held.execute_in(&sess)?;
    let e = md::read_parquet(dir.0.join("missing.parquet")).unwrap_err().to_string();
    assert!(e.contains("missing.parquet") && e.contains("No such file"), "{e}");
    let corrupt = dir.0.join("corrupt.parquet");
    let mut bytes = std::fs::read(&one)?;
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&corrupt, &bytes)?;
    let e = md::read_parquet(&corrupt).unwrap_err().to_string();
    assert!(e.contains("corrupt.parquet"), "{e}");
    // a file rewritten after it was read into a graph is refused when read
    let changing = dir.0.join("changing.parquet");
    std::fs::copy(&one, &changing)?;
    let df = md::read_parquet(&changing)?;
    md::DataFrame::from_record_batch(batch.slice(0, 3)).to_parquet_in(&sess, &changing)?;
    let e = df.execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("changing.parquet changed since it was read"), "{e}");
    // also when the read is pruned and filtered in the reader
    let pushed = df.filter(&df.col("k")?.gt(0i64))?.col("v")?;
    assert!(mars::explain_tiled(&pushed, None, false)?.contains("where"));
    let e = pushed.execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("changing.parquet changed since it was read"), "{e}");
    // a quantile of strings is refused up front, naming the column and type
    let e = md::read_parquet(&one)?.col("s")?.quantile(0.5).execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains(r#"quantiles need a numeric column; "s" is"#), "{e}");
    // a folder whose files disagree
    let mixed = dir.0.join("mixed");
    std::fs::create_dir_all(&mixed)?;
    std::fs::copy(&one, mixed.join("a.parquet"))?;
    md::DataFrame::from_rows(vec![vec![1]])?.to_parquet_in(&sess, mixed.join("b.parquet"))?;
    let e = md::read_parquet(&mixed).unwrap_err().to_string();
    assert!(e.contains("b.parquet has columns [0: Int64]") && e.contains("must match"), "{e}");
    let e = md::read_parquet(&one)?.select(&["nope"]).unwrap_err().to_string();
    assert!(e.contains(r#"column "nope" is not in the frame"#), "{e}");
    assert_eq!(held.fetch_in(&sess)?.record_batch(), &batch);
    Ok(())
}

/// CSV: read back what `to_csv` wrote and what pandas would read from hand
/// written text (header or not, another delimiter, pandas' missing values,
/// dates), split into byte ranges of every size (so lines straddle the
/// boundaries) and as one chunk per file; a bad value or a short line names
/// the file and the line; a folder of files reads in name order.
#[test]
fn csv_reads_by_byte_ranges_and_errors_name_file_and_line() -> Result<()> {
    use mars::arrow::datatypes::DataType;
    let dir = TempDir::new("csv");
    let sess = session()?;
    let batch = RecordBatch::try_from_iter(sample(37))?;
    let path = dir.0.join("t.csv");
    md::DataFrame::from_record_batch(batch.clone()).rechunk(6).to_csv_in(&sess, &path)?;
    let text = std::fs::read_to_string(&path)?;
    assert!(text.starts_with("k,s,v,i,d\n"), "{text}");
    let len = text.len();
    for chunk_bytes in [None, Some(1), Some(7), Some(64), Some(len - 1)] {
        let (_, sess) = session_with(chunk_bytes)?;
        let df = md::read_csv(&path)?;
        let got = df.execute_in(&sess)?.fetch_in(&sess)?;
        let got = got.record_batch();
        // what CSV keeps: ints as int64, dates as dates; an empty string and NaN read as missing (pandas)
        assert_eq!(got.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(got.schema().field(4).data_type(), &DataType::Date32);
        for c in 0..5 {
            let (g, w) = (vals(got.column(c)), vals(batch.column(c)));
            for (r, (a, b)) in g.iter().zip(&w).enumerate() {
                let b = match b {
                    Val::F(x) if x.is_nan() => &Val::Null,
                    Val::S(s) if s.is_empty() => &Val::Null,
                    b => b,
                };
                assert!(close(a, b), "chunk_bytes {chunk_bytes:?}, column {c} row {r}: {a:?} vs {b:?}");
            }
            assert_eq!(g.len(), 37);
        }
        // column pruning reads the same values
        let some = md::read_csv(&path)?.select(&["d", "k"])?.execute_in(&sess)?.fetch_in(&sess)?;
        assert_eq!(some.record_batch().column(0), got.column(4));
        // a computed column, a filter on it and sums per key read the CSV
        // ranges inside one pipeline per chunk; the same as over the batch
        let sums = |df: &md::DataFrame| -> Result<String> {
            let df = df.with_column("j", &(&df.col("i")? * 2i64))?;
            let df = df.filter(&df.col("j")?.gt(-4i64))?;
            let g = df.groupby(&["k"])?.agg(&[("j", "sum"), ("i", "count")])?;
            Ok(g.execute_in(&sess)?.fetch_in(&sess)?.to_string())
        };
        let want = sums(&md::DataFrame::from_record_batch(batch.clone()).rechunk(6))?;
        assert_eq!(sums(&md::read_csv(&path)?)?, want, "chunk_bytes {chunk_bytes:?}");
    }
    // no header, another delimiter, given types and null markers (dates print as pandas' datetime64)
    let tbl = dir.0.join("t.tbl");
    std::fs::write(&tbl, "1|BUILDING|1998-09-02|-\n2|AUTO|1995-01-01|3.5\n")?;
    let opts = md::CsvOptions::new().header(false).delimiter(b'|').nulls(&["-"]).dtype("0", DataType::Int32);
    let df = md::read_csv_with(&tbl, &opts)?;
    assert_eq!(df.columns(), ["0", "1", "2", "3"]);
    let got = df.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(
        got.to_string(),
        "   0         1          2    3\n0  1  BUILDING 1998-09-02  NaN\n1  2      AUTO 1995-01-01  3.5"
    );
    assert_eq!(got.record_batch().schema().field(0).data_type(), &DataType::Int32);
    // a folder reads its .csv files in name order
    let folder = dir.0.join("parts");
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("b.csv"), "a,b\n3,4\n")?;
    std::fs::write(folder.join("a.csv"), "a,b\n1,2\n")?;
    std::fs::write(folder.join("notes.txt"), "not data")?;
    let got = md::read_csv(&folder)?.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(got.to_string(), "   a  b\n0  1  2\n1  3  4");
    // errors: the file and the line (counted from 1, the header is line 1)
    let bad = dir.0.join("bad.csv");
    let mut lines = vec!["a,b".to_string()];
    lines.extend((0..1500).map(|i| format!("{i},{}", i * 2)));
    lines[1203] = "1202,oops".into();
    std::fs::write(&bad, lines.join("\n") + "\n")?;
    for chunk_bytes in [None, Some(100)] {
        let (_, sess) = session_with(chunk_bytes)?;
        let e = md::read_csv(&bad)?.execute_in(&sess).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("'oops'") && e.contains("line 1204"), "{chunk_bytes:?}: {e}");
    }
    // a short line among the rows types are inferred from fails read_csv; a later one the execute
    let short = dir.0.join("short.csv");
    std::fs::write(&short, "a,b\n1,2\n3\n5,6\n")?;
    let e = md::read_csv(&short).unwrap_err().to_string();
    assert!(e.contains("short.csv") && e.contains("line 3"), "{e}");
    lines[1203] = "1202,2404".into();
    lines[1299] = "1298".into();
    std::fs::write(&short, lines.join("\n") + "\n")?;
    for chunk_bytes in [None, Some(100)] {
        let (_, sess) = session_with(chunk_bytes)?;
        let e = md::read_csv(&short)?.execute_in(&sess).unwrap_err().to_string();
        assert!(e.contains("short.csv") && e.contains("line 1300"), "{chunk_bytes:?}: {e}");
    }
    let e = md::read_csv(dir.0.join("nope.csv")).unwrap_err().to_string();
    assert!(e.contains("nope.csv"), "{e}");
    let e = md::read_csv_with(&path, &md::CsvOptions::new().dtype("zz", DataType::Int64)).unwrap_err().to_string();
    assert!(e.contains(r#"a type for column "zz", which is not in the file"#), "{e}");
    Ok(())
}

/// The rows of `b` as values, in a canonical order (a merge's rows come in
/// chunk order).
fn row_set(cols: &[Vec<Val>]) -> Vec<Vec<Val>> {
    let n = cols.first().map_or(0, |c| c.len());
    let mut rows: Vec<Vec<Val>> = (0..n).map(|r| cols.iter().map(|c| c[r].clone()).collect()).collect();
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

/// `merge` computed by a nested loop over the two batches.
fn merge_reference(l: &RecordBatch, r: &RecordBatch, lk: &[&str], rk: &[&str], how: md::How) -> Vec<Vec<Val>> {
    let lv: Vec<Vec<Val>> = l.columns().iter().map(vals).collect();
    let rv: Vec<Vec<Val>> = r.columns().iter().map(vals).collect();
    let li: Vec<usize> = lk.iter().map(|k| l.schema().index_of(k).unwrap()).collect();
    let ri: Vec<usize> = rk.iter().map(|k| r.schema().index_of(k).unwrap()).collect();
    let key = |v: &[Vec<Val>], at: &[usize], row: usize| -> Option<Vec<Val>> {
        at.iter().map(|&c| if v[c][row] == Val::Null { None } else { Some(v[c][row].clone()) }).collect()
    };
    let shared: Vec<(usize, usize)> = li
        .iter()
        .zip(&ri)
        .filter(|(a, b)| lk[li.iter().position(|x| x == *a).unwrap()] == rk[ri.iter().position(|x| x == *b).unwrap()])
        .map(|(a, b)| (*a, *b))
        .collect();
    let row = |a: Option<usize>, b: Option<usize>| -> Vec<Val> {
        let mut out = Vec::new();
        for (c, col) in lv.iter().enumerate() {
            out.push(match (a, shared.iter().find(|s| s.0 == c), b) {
                (Some(a), _, _) => col[a].clone(),
                (None, Some(s), Some(b)) => rv[s.1][b].clone(),
                _ => Val::Null,
            });
        }
        for c in (0..rv.len()).filter(|c| !shared.iter().any(|s| s.1 == *c)) {
            out.push(b.map_or(Val::Null, |b| rv[c][b].clone()));
        }
        out
    };
    let mut rows = Vec::new();
    let mut right_hit = vec![false; r.num_rows()];
    for a in 0..l.num_rows() {
        let mut hit = false;
        for (b, right_hit) in right_hit.iter_mut().enumerate() {
            if let (Some(x), Some(y)) = (key(&lv, &li, a), key(&rv, &ri, b)) {
                if x == y {
                    rows.push(row(Some(a), Some(b)));
                    hit = true;
                    *right_hit = true;
                }
            }
        }
        if !hit && matches!(how, md::How::Left | md::How::Outer) {
            rows.push(row(Some(a), None));
        }
    }
    if matches!(how, md::How::Right | md::How::Outer) {
        for (b, hit) in right_hit.iter().enumerate() {
            if !hit {
                rows.push(row(None, Some(b)));
            }
        }
    }
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

/// Every `how`, on one key (of two int types), two keys, and keys named
/// differently, with duplicate and missing keys on both sides, against a
/// nested-loop reference; broadcast (default budget) and shuffle (tiny
/// budget) joins, under several chunkings of each side.
#[test]
fn merge_matches_nested_loop() -> Result<()> {
    let n = 23;
    let left = RecordBatch::try_from_iter(vec![
        (
            "k",
            Arc::new(Int64Array::from((0..n).map(|i| (i % 6 != 5).then_some((i * 7 % 9) as i64)).collect::<Vec<_>>()))
                as ArrayRef,
        ),
        ("s", Arc::new(StringArray::from((0..n).map(|i| Some(["a", "b"][i % 2])).collect::<Vec<_>>()))),
        ("v", Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>()))),
    ])?;
    let m = 11;
    let right = RecordBatch::try_from_iter(vec![
        (
            "k",
            Arc::new(Int32Array::from((0..m).map(|i| (i != 4).then_some((i * 5 % 12) as i32)).collect::<Vec<_>>()))
                as ArrayRef,
        ),
        ("s", Arc::new(StringArray::from((0..m).map(|i| Some(["a", "b", "c"][i % 3])).collect::<Vec<_>>()))),
        ("v", Arc::new(Float64Array::from((0..m).map(|i| -(i as f64)).collect::<Vec<_>>()))),
        ("kk", Arc::new(Int64Array::from((0..m).map(|i| (i * 3 % 10) as i64).collect::<Vec<_>>()))),
    ])?;
    // the two-key merge needs equal key types: the right's k as int64
    let right64 = RecordBatch::try_new(
        Arc::new(mars::arrow::datatypes::Schema::new(vec![
            mars::arrow::datatypes::Field::new("k", mars::arrow::datatypes::DataType::Int64, true),
            right.schema().field(1).clone(),
            right.schema().field(2).clone(),
            right.schema().field(3).clone(),
        ])),
        vec![
            mars::arrow::compute::cast(right.column(0), &mars::arrow::datatypes::DataType::Int64)?,
            right.column(1).clone(),
            right.column(2).clone(),
            right.column(3).clone(),
        ],
    )?;
    let hows = [md::How::Inner, md::How::Left, md::How::Right, md::How::Outer];
    for chunk_bytes in [None, Some(64)] {
        let (_, sess) = session_with(chunk_bytes)?;
        for (lr, rr) in [(1, 1), (4, 3), (23, 11)] {
            for how in hows {
                let cases: Vec<(&RecordBatch, Vec<&str>, Vec<&str>)> = vec![
                    (&right, vec!["k"], vec!["k"]),
                    (&right64, vec!["k", "s"], vec!["k", "s"]),
                    (&right, vec!["k"], vec!["kk"]),
                ];
                for (rb, lk, rk) in cases {
                    let ldf = md::DataFrame::from_record_batch(left.clone()).rechunk(lr);
                    let rdf = md::DataFrame::from_record_batch(rb.clone()).rechunk(rr);
                    let merged = ldf.merge_on(&rdf, &lk, &rk, how)?;
                    let got = merged.execute_in(&sess)?.fetch_in(&sess)?;
                    let got_cols: Vec<Vec<Val>> = got.record_batch().columns().iter().map(vals).collect();
                    let want = merge_reference(&left, rb, &lk, &rk, how);
                    let got = row_set(&got_cols);
                    let what = format!("{how:?} on {lk:?}={rk:?}, chunks {lr}/{rr}, budget {chunk_bytes:?}");
                    assert_eq!(got.len(), want.len(), "{what}: rows");
                    for (g, w) in got.iter().zip(&want) {
                        assert!(g.iter().zip(w).all(|(a, b)| close(a, b)), "{what}: {g:?} vs {w:?}");
                    }
                }
            }
        }
    }
    // every left key found once on the right (a dimension table): the probe's direct path
    let full_left = RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int64Array::from((0..n as i64).map(|i| i * 7 % 9).collect::<Vec<_>>())) as ArrayRef),
        ("v", Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>()))),
    ])?;
    let dim = RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int64Array::from(vec![3i64, 0, 8, 1, 7, 2, 6, 4, 5])) as ArrayRef),
        ("w", Arc::new(Float64Array::from((0..9).map(|i| 10.0 * i as f64).collect::<Vec<_>>()))),
    ])?;
    // ... and a dimension table that lacks some keys, probed by keys with
    // missing ones (the direct path keeps only the rows it finds)
    let gappy_left = RecordBatch::try_from_iter(vec![
        (
            "k",
            Arc::new(Int64Array::from((0..n as i64).map(|i| (i % 11 != 4).then_some(i * 7 % 9)).collect::<Vec<_>>()))
                as ArrayRef,
        ),
        ("v", Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>()))),
    ])?;
    let gappy_dim = RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int64Array::from(vec![3i64, 0, 1, 7, 2, 6, 5])) as ArrayRef),
        ("w", Arc::new(Float64Array::from((0..7).map(|i| 10.0 * i as f64).collect::<Vec<_>>()))),
    ])?;
    for (lr, rr) in [(1, 1), (5, 4), (23, 9)] {
        let (_, sess) = session_with(None)?;
        for how in [md::How::Inner, md::How::Left] {
            for (left, dim) in [(&full_left, &dim), (&gappy_left, &gappy_dim)] {
                let l = md::DataFrame::from_record_batch(left.clone()).rechunk(lr);
                let r = md::DataFrame::from_record_batch(dim.clone()).rechunk(rr);
                let got = l.merge(&r, &["k"], how)?.execute_in(&sess)?.fetch_in(&sess)?;
                let got_cols: Vec<Vec<Val>> = got.record_batch().columns().iter().map(vals).collect();
                let want = merge_reference(left, dim, &["k"], &["k"], how);
                assert_eq!(row_set(&got_cols), want, "{how:?} {lr}/{rr}");
            }
        }
    }
    // names: shared keys once, other clashes suffixed; differently named keys both kept
    let (ldf, rdf) = (md::DataFrame::from_record_batch(left.clone()), md::DataFrame::from_record_batch(right.clone()));
    assert_eq!(ldf.merge(&rdf, &["k"], md::How::Inner)?.columns(), ["k", "s_x", "v_x", "s_y", "v_y", "kk"]);
    assert_eq!(
        ldf.merge_on(&rdf, &["k"], &["kk"], md::How::Inner)?.columns(),
        ["k_x", "s_x", "v_x", "k_y", "s_y", "v_y", "kk"]
    );
    // bad input
    let e = ldf.merge_on(&rdf, &["k"], &["s"], md::How::Inner).unwrap_err().to_string();
    assert!(e.contains(r#"cannot merge left key "k" of type int64 with right key "s" of type utf8"#), "{e}");
    let e = ldf.merge(&rdf, &["zz"], md::How::Left).unwrap_err().to_string();
    assert!(e.contains(r#"column "zz" is not in the frame"#), "{e}");
    let e = ldf.merge_on(&rdf, &["k", "s"], &["k"], md::How::Left).unwrap_err().to_string();
    assert!(e.contains("as many left keys as right keys"), "{e}");
    Ok(())
}

/// between, isin, the string tests, dates, where_, fillna and astype against
/// the same computed row by row, under several chunkings; bad uses are errors.
#[test]
fn series_predicates_and_casts_match_one_batch() -> Result<()> {
    use mars::arrow::array::BooleanArray;
    use mars::arrow::datatypes::DataType;
    let sess = session()?;
    let n = 29;
    let cols = sample(n);
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    let col = |name: &str| vals(batch.column(batch.schema().index_of(name).unwrap()));
    let (k, s, v, iv) = (col("k"), col("s"), col("v"), col("i"));
    let int = |x: &Val| match x {
        Val::S(t) => t.parse::<i64>().ok(),
        _ => None,
    };
    let text = |x: &Val| match x {
        Val::S(t) => Some(t.clone()),
        _ => None,
    };
    let float = |x: &Val| match x {
        Val::F(f) if !f.is_nan() => Some(*f),
        _ => None,
    };
    let days = batch.column(4).as_any().downcast_ref::<Date32Array>().unwrap();
    let bools = |f: &dyn Fn(usize) -> bool| BooleanArray::from((0..n).map(f).collect::<Vec<_>>());
    let cutoff = md::Date::parse("2019-04-17")?;
    assert_eq!(md::Date::from_ymd(1998, 9, 2)?.days(), 10471);
    assert_eq!(md::Date::from_ymd(1900, 3, 1)?.days(), -25508);
    assert_eq!(md::Date::parse("2000-02-29")?.days(), 11016);
    for rows in [1, 6, 29] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        let (ck, cs, cv, ci, cd) = (df.col("k")?, df.col("s")?, df.col("v")?, df.col("i")?, df.col("d")?);
        let fetch = |x: &md::Series| -> Result<ArrayRef> { Ok(x.execute_in(&sess)?.fetch_in(&sess)?.array().clone()) };
        let check = |got: ArrayRef, want: BooleanArray, what: &str| {
            assert_eq!(got.to_data(), want.to_data(), "{what}, {rows}-row chunks");
        };
        check(fetch(&ck.between(0i64, 1i64))?, bools(&|r| int(&k[r]).is_some_and(|x| (0..=1).contains(&x))), "between");
        check(
            fetch(&ck.isin(&[0i64.into(), 2i64.into()]))?,
            bools(&|r| matches!(int(&k[r]), Some(0 | 2))),
            "isin ints",
        );
        let in_s = |r: usize| matches!(text(&s[r]).as_deref(), Some("a" | "cc"));
        check(fetch(&cs.isin(&["a".into(), "cc".into()]))?, bools(&in_s), "isin strings");
        check(
            fetch(&cs.str_starts_with("c"))?,
            bools(&|r| text(&s[r]).is_some_and(|t| t.starts_with('c'))),
            "startswith",
        );
        check(fetch(&cs.str_contains(""))?, bools(&|r| text(&s[r]).is_some()), "contains nothing");
        check(fetch(&cs.str_contains("b"))?, bools(&|r| text(&s[r]).is_some_and(|t| t.contains('b'))), "contains");
        let before = |r: usize| days.is_valid(r) && days.value(r) < cutoff.days();
        check(fetch(&cd.lt(cutoff))?, bools(&before), "date <");
        // where_: v where k > 0, else 0.0 (a missing v stays missing)
        let w = fetch(&md::where_(&ck.gt(0i64), &cv, 0.0))?;
        let want: Vec<Val> =
            (0..n).map(|r| if int(&k[r]).is_some_and(|x| x > 0) { v[r].clone() } else { Val::F(0.0) }).collect();
        let got = vals(&w);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| close(a, b) || matches!((a, b), (Val::F(x), Val::F(y)) if x.is_nan() && y.is_nan())),
            "where_: {got:?}"
        );
        let filled = vals(&fetch(&cv.fillna(-1.0))?);
        let want: Vec<Val> = v.iter().map(|x| Val::F(float(x).unwrap_or(-1.0))).collect();
        assert_eq!(filled, want, "fillna");
        let as_f = vals(&fetch(&ci.astype(DataType::Float64))?);
        let want: Vec<Val> = iv.iter().map(|x| int(x).map_or(Val::Null, |i| Val::F(i as f64))).collect();
        assert_eq!(as_f, want, "astype float64");
        let as_s = vals(&fetch(&ck.astype(DataType::Utf8))?);
        assert_eq!(as_s, k, "astype utf8");
    }
    let df = md::DataFrame::from_columns(cols)?;
    let e = df.col("i")?.astype(DataType::UInt8).execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("astype(UInt8)"), "{e}");
    let e = df.col("k")?.str_contains("x").execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("str.contains needs a string Series, got Int64"), "{e}");
    let e = df.col("d")?.lt(3i64).execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("operator < is not defined for Date32 and Int64"), "{e}");
    let e = md::where_(&df.col("k")?, 1.0, 2.0).execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("where needs a bool condition"), "{e}");
    for bad in ["1998-13-01", "98-01-01", "1998-02-30", "x"] {
        let e = md::Date::parse(bad).unwrap_err().to_string();
        assert!(e.contains("is not a date"), "{bad}: {e}");
    }
    Ok(())
}

/// `sort_values_by` against a stable sort of the one batch's rows (missing
/// values and NaN last in either direction), by one numeric key (the radix
/// path), strings, and several keys of mixed directions, under 1-, 4-, 9-
/// and 37-row chunks (many equal keys span chunks: ties must keep row order).
#[test]
fn sort_values_matches_a_stable_sort() -> Result<()> {
    use std::cmp::Ordering;
    let sess = session()?;
    let n = 37;
    let cols = sample(n);
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    let all: Vec<Vec<Val>> = batch.columns().iter().map(vals).collect();
    let days = batch.column(4).as_any().downcast_ref::<Date32Array>().unwrap().clone();
    // a comparable form of one value: missing (or NaN) is None
    let key = |c: usize, r: usize| -> Option<(f64, String)> {
        match (&all[c][r], c) {
            (Val::Null, _) => None,
            (Val::F(x), _) if x.is_nan() => None,
            (Val::F(x), _) => Some((*x, String::new())),
            (Val::S(_), 4) => Some((days.value(r) as f64, String::new())),
            (Val::S(t), 1) => Some((0.0, t.clone())),
            (Val::S(t), _) => Some((t.parse::<f64>().unwrap(), String::new())),
        }
    };
    let names = ["k", "s", "v", "i", "d"];
    let cases: Vec<Vec<(&str, bool)>> = vec![
        vec![("v", true)],
        vec![("v", false)],
        vec![("i", true)],
        vec![("s", true)],
        vec![("k", true), ("s", false)],
        vec![("d", false), ("i", true)],
    ];
    for by in &cases {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| {
            for (c, asc) in by {
                let c = names.iter().position(|x| x == c).unwrap();
                let o = match (key(c, a), key(c, b)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) => {
                        let o = x.0.partial_cmp(&y.0).unwrap().then(x.1.cmp(&y.1));
                        if *asc {
                            o
                        } else {
                            o.reverse()
                        }
                    }
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        let want: Vec<String> =
            idx.iter().map(|&r| format!("{:?}", all.iter().map(|c| &c[r]).collect::<Vec<_>>())).collect();
        for rows in [1, 4, 9, 37] {
            let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
            let sorted = df.sort_values_by(by)?;
            let got = sorted.execute_in(&sess)?.fetch_in(&sess)?;
            let gc: Vec<Vec<Val>> = got.record_batch().columns().iter().map(vals).collect();
            let got: Vec<String> =
                (0..gc[0].len()).map(|r| format!("{:?}", gc.iter().map(|c| &c[r]).collect::<Vec<_>>())).collect();
            assert_eq!(got, want, "by {by:?}, {rows}-row chunks");
            // head after a sort: each chunk's top rows, then the top of those
            for k in [0, 1, 5, 100] {
                let top = df.sort_values_by(by)?.head(k).execute_in(&sess)?.fetch_in(&sess)?;
                let tc: Vec<Vec<Val>> = top.record_batch().columns().iter().map(vals).collect();
                let got: Vec<String> = (0..top.num_rows())
                    .map(|r| format!("{:?}", tc.iter().map(|c| &c[r]).collect::<Vec<_>>()))
                    .collect();
                assert_eq!(got, want[..k.min(n)].to_vec(), "head({k}) by {by:?}, {rows}-row chunks");
            }
        }
    }
    let df = md::DataFrame::from_columns(cols)?;
    let e = df.sort_values(&["zz"], true).unwrap_err().to_string();
    assert!(e.contains(r#"column "zz" is not in the frame"#), "{e}");
    Ok(())
}

/// The bucket-sort path (chunks of thousands of rows) against a stable
/// sort: many duplicate keys, missing ones, NaN, negative and huge values.
#[test]
fn sort_values_large_chunks_match_a_stable_sort() -> Result<()> {
    let sess = session()?;
    let n = 20_000usize;
    let a: Vec<Option<f64>> = (0..n)
        .map(|i| match i % 97 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(-1e300),
            3 => Some(f64::INFINITY),
            _ => Some(((i * 7919) % 1000) as f64 - 500.5),
        })
        .collect();
    let t: Vec<i64> = (0..n).map(|i| ((i * 31) % 5000) as i64 - 2500).collect();
    // floats with none missing (the sort that decodes its key column)
    let f: Vec<f64> = (0..n).map(|i| ((i * 613) % 3001) as f64 / 4.0 - 300.0).collect();
    let cols = vec![
        ("a", Arc::new(Float64Array::from(a.clone())) as ArrayRef),
        ("t", Arc::new(Int64Array::from(t.clone())) as ArrayRef),
        ("f", Arc::new(Float64Array::from(f.clone())) as ArrayRef),
        ("row", Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())) as ArrayRef),
    ];
    let present = |x: Option<f64>| x.filter(|v| !v.is_nan());
    for (by, asc) in [("a", true), ("a", false), ("t", true), ("t", false), ("f", true), ("f", false)] {
        let mut idx: Vec<usize> = (0..n).collect();
        if by == "a" {
            idx.sort_by(|&x, &y| match (present(a[x]), present(a[y])) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Greater,
                (_, None) => std::cmp::Ordering::Less,
                (Some(p), Some(q)) if asc => p.partial_cmp(&q).unwrap(),
                (Some(p), Some(q)) => q.partial_cmp(&p).unwrap(),
            });
        } else if by == "f" {
            idx.sort_by(|&x, &y| if asc { f[x].total_cmp(&f[y]) } else { f[y].total_cmp(&f[x]) });
        } else if asc {
            idx.sort_by_key(|&x| t[x]);
        } else {
            idx.sort_by_key(|&x| std::cmp::Reverse(t[x]));
        }
        let want: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        for rows in [3000, 20_000] {
            let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
            let got = df.sort_values(&[by], asc)?.execute_in(&sess)?.fetch_in(&sess)?;
            let order = got.record_batch().column(3).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
            assert_eq!(order, want, "by {by} ascending {asc}, {rows}-row chunks");
            let top = df.sort_values(&[by], asc)?.head(10).execute_in(&sess)?.fetch_in(&sess)?;
            let top = top.record_batch().column(3).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
            assert_eq!(top, want[..10].to_vec(), "head(10) by {by} ascending {asc}, {rows}-row chunks");
        }
    }
    Ok(())
}

/// value_counts and unique against counting the one batch's values, under
/// several chunkings (strings with an empty one, ints, with missing values).
#[test]
fn value_counts_and_unique_match_one_batch() -> Result<()> {
    let sess = session()?;
    let n = 41;
    let cols = sample(n);
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    for (c, name) in [(0usize, "k"), (1, "s")] {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for v in vals(batch.column(c)) {
            if let Val::S(t) = v {
                *counts.entry(t).or_default() += 1;
            }
        }
        let mut want: Vec<(String, i64)> = counts.clone().into_iter().collect();
        // most frequent first, ties by value (ints by number)
        let num = |t: &String| t.parse::<i64>().ok();
        want.sort_by(|a, b| {
            b.1.cmp(&a.1).then(match (num(&a.0), num(&b.0)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => a.0.cmp(&b.0),
            })
        });
        let mut distinct: Vec<String> = counts.keys().cloned().collect();
        distinct.sort_by(|a, b| match (num(a), num(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
        for rows in [1, 7, 41] {
            let s = md::DataFrame::from_columns(cols.clone())?.rechunk(rows).col(name)?;
            let got = s.value_counts()?.execute_in(&sess)?.fetch_in(&sess)?;
            assert_eq!(got.index_columns(), 1);
            let b = got.record_batch();
            let pairs: Vec<(String, i64)> = vals(b.column(0))
                .into_iter()
                .zip(vals(b.column(1)))
                .map(|(v, c)| match (v, c) {
                    (Val::S(v), Val::S(c)) => (v, c.parse().unwrap()),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(pairs, want, "value_counts of {name}, {rows}-row chunks");
            let u = s.unique()?.execute_in(&sess)?.fetch_in(&sess)?;
            let got: Vec<String> = vals(u.array())
                .into_iter()
                .map(|v| match v {
                    Val::S(t) => t,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got, distinct, "unique of {name}, {rows}-row chunks");
        }
    }
    Ok(())
}

/// drop_duplicates against keeping the first of each distinct row of the one
/// batch (missing values and NaN equal each other), on all columns and on a
/// selection with many repeats, under several chunkings.
#[test]
fn drop_duplicates_keeps_first_occurrences() -> Result<()> {
    let sess = session()?;
    let n = 60;
    let cols = sample(n);
    let batch = RecordBatch::try_from_iter(cols.clone())?;
    for names in [vec!["k", "s", "v", "i", "d"], vec!["k", "s"], vec!["d"]] {
        let idx: Vec<usize> = names.iter().map(|c| batch.schema().index_of(c).unwrap()).collect();
        let sub = batch.project(&idx)?;
        let all: Vec<Vec<Val>> = sub.columns().iter().map(vals).collect();
        let mut seen = std::collections::HashSet::new();
        let want: Vec<String> = (0..n)
            .map(|r| format!("{:?}", all.iter().map(|c| &c[r]).collect::<Vec<_>>()))
            .filter(|row| seen.insert(row.clone()))
            .collect();
        for rows in [1, 7, 60] {
            let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows).select(&names)?;
            let got = df.drop_duplicates().execute_in(&sess)?.fetch_in(&sess)?;
            let gc: Vec<Vec<Val>> = got.record_batch().columns().iter().map(vals).collect();
            let got: Vec<String> =
                (0..got.num_rows()).map(|r| format!("{:?}", gc.iter().map(|c| &c[r]).collect::<Vec<_>>())).collect();
            assert_eq!(got, want, "{names:?}, {rows}-row chunks");
        }
    }
    Ok(())
}

/// [`sample`]'s columns and `r`, the row's number (sorted, so a file's
/// statistics can rule row groups out).
fn sample_with_row_numbers(n: usize) -> Result<RecordBatch> {
    let mut cols = sample(n);
    cols.push(("r", Arc::new(Int64Array::from((0..n as i64).collect::<Vec<i64>>()))));
    Ok(RecordBatch::try_from_iter(cols)?)
}

/// Filters of a parquet read by its own columns are pushed into the reader
/// (row groups ruled out by their statistics skipped, the rest filtered while
/// decoding): the rows equal the same filter over the frame in memory, for
/// masks that rule out some, all or no row groups, over nulls, NaN, strings
/// and dates, whole or with other columns selected.
#[test]
fn parquet_filters_pushed_into_the_reader_match_the_filter_in_memory() -> Result<()> {
    let dir = TempDir::new("pushdown");
    let batch = sample_with_row_numbers(300)?;
    let path = dir.0.join("t.parquet");
    let sess = session()?;
    // 8 row groups of 40 rows: `r` is sorted, so its statistics rule groups out
    md::DataFrame::from_record_batch(batch.clone()).rechunk(40).to_parquet_in(&sess, &path)?;
    type Mask = fn(&md::DataFrame) -> Result<md::Series>;
    let masks: Vec<(&str, Mask)> = vec![
        ("r > 250", |df| Ok(df.col("r")?.gt(250i64))),
        ("50 <= r < 90", |df| Ok(&df.col("r")?.ge(50i64) & &df.col("r")?.lt(90i64))),
        ("r < 20 | r > 280", |df| Ok(&df.col("r")?.lt(20i64) | &df.col("r")?.gt(280i64))),
        ("r == 1000", |df| Ok(df.col("r")?.eq(1000i64))),
        ("k == 2", |df| Ok(df.col("k")?.eq(2i64))),
        ("s isin", |df| Ok(df.col("s")?.isin(&["a".into(), "".into()]))),
        ("s startswith c & v > 0", |df| Ok(&df.col("s")?.str_starts_with("c") & &df.col("v")?.gt(0.0))),
        ("d between", |df| Ok(df.col("d")?.between(md::Date::parse("2019-04-14")?, md::Date::parse("2019-04-17")?))),
        ("!(r > 10) & i < 0", |df| Ok(&!&df.col("r")?.gt(10i64) & &df.col("i")?.lt(0i64))),
    ];
    let mem = md::DataFrame::from_record_batch(batch).rechunk(40);
    for chunk_bytes in [None, Some(64)] {
        let (_backend, sess) = session_with(chunk_bytes)?;
        let file = md::read_parquet(&path)?;
        for (what, mask) in &masks {
            let got = file.filter(&mask(&file)?)?;
            let want = mem.filter(&mask(&mem)?)?;
            let plan = mars::explain_tiled(&got, chunk_bytes, false)?;
            assert!(plan.contains("where") && !plan.contains("FrameFilter"), "{what}: not pushed down:\n{plan}");
            let (g, w) = (got.execute_in(&sess)?.fetch_in(&sess)?, want.execute_in(&sess)?.fetch_in(&sess)?);
            assert_eq!(g.record_batch(), w.record_batch(), "{what}, chunk_bytes {chunk_bytes:?}");
            let (g, w) = (got.select(&["v", "s"])?, want.select(&["v", "s"])?);
            let (g, w) = (g.execute_in(&sess)?.fetch_in(&sess)?, w.execute_in(&sess)?.fetch_in(&sess)?);
            assert_eq!(g.record_batch(), w.record_batch(), "{what} then v, s; chunk_bytes {chunk_bytes:?}");
        }
    }
    Ok(())
}

/// Row groups of uneven sizes read by two and three threads are cut into
/// even pieces, some taking part of a row group: the rows, filtered reads
/// (the filter's column read or not) and a groupby over them equal the same
/// over the frame in memory, under budgets that cut nothing, a little, and
/// into pieces of a few rows.
#[test]
fn parquet_row_groups_cut_for_threads_read_as_in_memory() -> Result<()> {
    let dir = TempDir::new("even");
    let batch = sample_with_row_numbers(300)?;
    let path = dir.0.join("t.parquet");
    let mem = md::DataFrame::from_record_batch(batch.clone());
    // row groups of 200 and 100 rows
    mem.rechunk(200).to_parquet_in(&session()?, &path)?;
    for threads in [2, 3] {
        for chunk_bytes in [None, Some(16 << 10), Some(4 << 10), Some(64)] {
            let mut opts = mars_backends::LocalOptions { threads: Some(threads), ..Default::default() };
            if let Some(b) = chunk_bytes {
                opts.tile.chunk_bytes = b;
            }
            let sess = mars::Session::with_backend(Arc::new(mars_backends::LocalBackend::new(opts)?));
            let file = md::read_parquet(&path)?;
            let what = format!("{threads} threads, chunk_bytes {chunk_bytes:?}");
            let plan = mars::explain_tiled_for(&file, chunk_bytes, threads, false)?;
            if chunk_bytes == Some(16 << 10) {
                assert!(plan.contains(" rows "), "{what}: no row group cut:\n{plan}");
            }
            let fetch = |df: &md::DataFrame| -> Result<RecordBatch> {
                Ok(df.execute_in(&sess)?.fetch_in(&sess)?.record_batch().clone())
            };
            assert_eq!(fetch(&file)?, batch, "{what}");
            type Query = fn(&md::DataFrame) -> Result<md::DataFrame>;
            let queries: Vec<(&str, Query)> = vec![
                ("r between 150 and 260", |df| df.filter(&df.col("r")?.between(150i64, 260i64))),
                ("k == 2, v and s", |df| df.filter(&df.col("k")?.eq(2i64))?.select(&["v", "s"])),
                ("sums by k", |df| df.groupby(&["k"])?.agg(&[("r", "sum"), ("i", "sum"), ("v", "count")])),
                ("head 7 of r > 190", |df| Ok(df.filter(&df.col("r")?.gt(190i64))?.head(7))),
            ];
            for (name, q) in &queries {
                assert_eq!(fetch(&q(&file)?)?, fetch(&q(&mem)?)?, "{name}, {what}");
            }
        }
    }
    Ok(())
}

/// numpy's linear quantile of sorted values (NaN with none).
fn ref_quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b, t) = (sorted[lo], sorted[hi], pos - lo as f64);
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// The present (not missing, not NaN) values of a numeric column as f64.
fn present(a: &ArrayRef) -> Vec<f64> {
    let f = mars::arrow::compute::cast(a, &mars::arrow::datatypes::DataType::Float64).unwrap();
    let f = f.as_any().downcast_ref::<Float64Array>().unwrap();
    f.iter().flatten().filter(|v| !v.is_nan()).collect()
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// describe() and quantile(q) against numpy's definitions on the whole
/// columns: ints with nulls, floats with NaN and nulls, under chunkings of
/// 1 row, uneven and whole, and on a filtered frame whose chunks are
/// mostly empty; strings and dates are left out, as pandas does.
#[test]
fn describe_and_quantiles_are_exact() -> Result<()> {
    let cols = sample(61);
    let sess = session()?;
    for rows in [1, 7, 61] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        for (what, df, n) in [("all", df.clone(), 61), ("k == 2", df.filter(&df.col("k")?.eq(2i64))?, 0)] {
            let d = df.describe()?;
            assert_eq!(d.columns(), ["", "k", "v", "i"], "{what}");
            let got = d.execute_in(&sess)?.fetch_in(&sess)?;
            let batch = got.record_batch();
            assert_eq!(got.index_columns(), 1);
            // the reference: the same rows, in memory
            let want_batch = df.execute_in(&sess)?.fetch_in(&sess)?.record_batch().clone();
            if n > 0 {
                assert_eq!(want_batch.num_rows(), n);
            }
            for (c, name) in ["k", "v", "i"].iter().enumerate() {
                let mut v = present(want_batch.column_by_name(name).unwrap());
                v.sort_by(f64::total_cmp);
                let count = v.len() as f64;
                let mean = v.iter().sum::<f64>() / count;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1.0);
                let want = [
                    count,
                    mean,
                    var.sqrt(),
                    v.first().copied().unwrap_or(f64::NAN),
                    ref_quantile(&v, 0.25),
                    ref_quantile(&v, 0.5),
                    ref_quantile(&v, 0.75),
                    v.last().copied().unwrap_or(f64::NAN),
                ];
                let col = batch.column(c + 1).as_any().downcast_ref::<Float64Array>().unwrap();
                for (r, w) in want.iter().enumerate() {
                    let g = if col.is_valid(r) { col.value(r) } else { f64::NAN };
                    let w = if count < 2.0 && r == 2 { f64::NAN } else { *w };
                    assert!(same_f64(g, w), "{what}, rows {rows}, {name} stat {r}: {g} want {w}");
                }
                for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    let g = df.col(name)?.quantile(q).execute_in(&sess)?.fetch_in(&sess)?.as_f64().unwrap_or(f64::NAN);
                    assert!(same_f64(g, ref_quantile(&v, q)), "{what}, rows {rows}, {name} q {q}: {g}");
                }
            }
        }
    }
    let strings = md::DataFrame::from_columns(vec![("s", sample(3)[1].1.clone())])?;
    let e = strings.describe().unwrap_err().to_string();
    assert!(e.contains("describe needs a numeric column; the frame has [s: "), "{e}");
    Ok(())
}

/// Comparisons as pandas makes them: a missing or NaN operand compares
/// false, except for `!=`, where it is true (so `s == s` is false exactly
/// at missing values and NaN).
#[test]
fn comparisons_with_missing_and_nan_follow_pandas() -> Result<()> {
    use mars::arrow::array::BooleanArray;
    let sess = session()?;
    let cols = sample(29);
    let v = cols[2].1.as_any().downcast_ref::<Float64Array>().unwrap().clone();
    let absent = |r: usize| v.is_null(r) || v.value(r).is_nan();
    for rows in [1, 29] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        let cv = df.col("v")?;
        let fetch = |x: &md::Series| -> Result<ArrayRef> { Ok(x.execute_in(&sess)?.fetch_in(&sess)?.array().clone()) };
        let want = |f: &dyn Fn(usize) -> bool| BooleanArray::from((0..29).map(f).collect::<Vec<_>>()).to_data();
        assert_eq!(fetch(&cv.eq(&cv))?.to_data(), want(&|r| !absent(r)), "v == v");
        assert_eq!(fetch(&cv.ne(&cv))?.to_data(), want(&|r| absent(r)), "v != v");
        assert_eq!(fetch(&cv.lt(100.0))?.to_data(), want(&|r| !absent(r)), "v < 100");
        assert_eq!(fetch(&cv.ne(0.5))?.to_data(), want(&|_| true), "v != 0.5");
        assert_eq!(fetch(&cv.ge(f64::NAN))?.to_data(), want(&|_| false), "v >= NaN");
    }
    Ok(())
}

/// The rows of a batch as values (floats compared with a tolerance).
fn rows_of(b: &RecordBatch) -> Vec<Vec<Val>> {
    let cols: Vec<Vec<Val>> = b.columns().iter().map(vals).collect();
    (0..b.num_rows()).map(|r| cols.iter().map(|c| c[r].clone()).collect()).collect()
}

fn same_rows(got: &[Vec<Val>], want: &[Vec<Val>]) -> bool {
    let same = |a: &Val, b: &Val| matches!((a, b), (Val::F(x), Val::F(y)) if x.is_nan() && y.is_nan()) || close(a, b);
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same(a, b)))
}

/// Rows in a canonical order, for results whose row order is not defined.
fn canonical(mut rows: Vec<Vec<Val>>) -> Vec<Vec<Val>> {
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

mod chunking_properties {
    use super::*;
    use proptest::prelude::*;

    fn frame_of(rows: &[(Option<i64>, Option<f64>, Option<u8>)]) -> RecordBatch {
        let names = ["a", "bb", "", "long string value"];
        let k: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
        let v: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
        let s: Vec<Option<&str>> = rows.iter().map(|r| r.2.map(|i| names[i as usize % 4])).collect();
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(k)) as ArrayRef),
            ("v", Arc::new(Float64Array::from(v)) as ArrayRef),
            ("s", Arc::new(StringArray::from(s)) as ArrayRef),
        ])
        .unwrap()
    }

    fn row() -> impl Strategy<Value = (Option<i64>, Option<f64>, Option<u8>)> {
        let v = prop_oneof![8 => (-50i32..50).prop_map(|x| Some(x as f64 / 4.0)), 1 => Just(None), 1 => Just(Some(f64::NAN))];
        (proptest::option::weighted(0.9, -2i64..4), v, proptest::option::weighted(0.9, 0u8..4))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Any chunking (and a budget that forces shuffles) gives the
        /// one-chunk result of groupby, sort, merge, drop_duplicates,
        /// value_counts and a filter.
        #[test]
        fn any_chunking_gives_the_one_chunk_result(
            left in proptest::collection::vec(row(), 0..40),
            right in proptest::collection::vec(row(), 0..12),
            chunk in 1usize..41,
            small_budget in any::<bool>(),
        ) {
            let (lb, rb) = (frame_of(&left), frame_of(&right));
            let (_b1, whole_sess) = session_with(None).unwrap();
            let (_b2, sess) = session_with(small_budget.then_some(256)).unwrap();
            let run = |f: &dyn Fn(&md::DataFrame, &md::DataFrame) -> Result<md::DataFrame>, ordered: bool| -> std::result::Result<(), TestCaseError> {
                let whole = f(&md::DataFrame::from_record_batch(lb.clone()), &md::DataFrame::from_record_batch(rb.clone())).unwrap();
                let chunked = f(
                    &md::DataFrame::from_record_batch(lb.clone()).rechunk(chunk),
                    &md::DataFrame::from_record_batch(rb.clone()).rechunk(chunk.div_ceil(3)),
                ).unwrap();
                let want = rows_of(whole.execute_in(&whole_sess).unwrap().fetch_in(&whole_sess).unwrap().record_batch());
                let got = rows_of(chunked.execute_in(&sess).unwrap().fetch_in(&sess).unwrap().record_batch());
                let (got, want) = if ordered { (got, want) } else { (canonical(got), canonical(want)) };
                prop_assert!(same_rows(&got, &want), "chunk {chunk}, small budget {small_budget}:\n got {got:?}\nwant {want:?}");
                Ok(())
            };
            run(&|l, _| l.groupby(&["k"])?.agg(&[("v", "sum"), ("v", "mean"), ("v", "std"), ("s", "nunique"), ("v", "count"), ("s", "first")]), true)?;
            run(&|l, _| l.groupby(&["s", "k"])?.agg(&[("v", "max"), ("v", "size")]), true)?;
            run(&|l, _| l.sort_values_by(&[("k", true), ("v", false)]), true)?;
            run(&|l, _| Ok(l.sort_values(&["v"], true)?.head(5)), true)?;
            run(&|l, r| l.merge(r, &["k"], md::How::Inner), false)?;
            run(&|l, r| l.merge(r, &["k"], md::How::Outer), false)?;
            run(&|l, _| Ok(l.drop_duplicates()), true)?;
            run(&|l, _| l.col("k")?.value_counts(), true)?;
            run(&|l, _| l.filter(&l.col("v")?.gt(0.0)), true)?;
        }
    }
}

/// Decimals stored as 64-bit integers read back as Decimal64 (the stored
/// integers, not widened), and they sum, compare, group, sort and describe
/// as the Decimal128 they were written from.
#[test]
fn parquet_int64_decimals_read_as_decimal64() -> Result<()> {
    use mars::arrow::array::Decimal128Array;
    use mars::arrow::datatypes::DataType;
    let dir = TempDir::new("decimal64");
    let cents: Vec<Option<i128>> = (0..50).map(|i| (i % 11 != 3).then_some((i * 37 % 101) as i128 - 40)).collect();
    let price: ArrayRef = Arc::new(Decimal128Array::from(cents.clone()).with_precision_and_scale(12, 2)?);
    let key: ArrayRef = Arc::new(Int64Array::from((0..50).map(|i| i % 3).collect::<Vec<i64>>()));
    let mem = md::DataFrame::from_columns(vec![("k", key), ("p", price)])?.rechunk(7);
    let path = dir.0.join("d.parquet");
    let sess = session()?;
    mem.to_parquet_in(&sess, &path)?;
    let file = md::read_parquet(&path)?;
    let got = file.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(got.record_batch().schema().field(1).data_type(), &DataType::Decimal64(12, 2));
    let both = |f: &dyn Fn(&md::DataFrame) -> Result<md::DataFrame>| -> Result<()> {
        let (a, b) = (f(&file)?, f(&mem)?);
        let (a, b) = (a.execute_in(&sess)?.fetch_in(&sess)?, b.execute_in(&sess)?.fetch_in(&sess)?);
        let (a, b) = (rows_of(a.record_batch()), rows_of(b.record_batch()));
        assert!(same_rows(&a, &b), "{a:?}\n{b:?}");
        Ok(())
    };
    both(&|df| df.groupby(&["k"])?.agg(&[("p", "sum"), ("p", "mean"), ("p", "min"), ("p", "max")]))?;
    both(&|df| df.filter(&df.col("p")?.gt(0.25)))?;
    both(&|df| df.with_column("q", &(&df.col("p")? * 2.0))?.select(&["q"]))?;
    both(&|df| df.describe())?;
    let total = |df: &md::DataFrame| -> Result<f64> {
        Ok(df.col("p")?.sum().execute_in(&sess)?.fetch_in(&sess)?.as_f64().unwrap())
    };
    let want: f64 = cents.iter().flatten().map(|&c| c as f64 / 100.0).sum();
    assert!((total(&file)? - want).abs() < 1e-9 && (total(&mem)? - want).abs() < 1e-9);
    Ok(())
}
