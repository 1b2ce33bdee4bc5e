//! Cross-crate tests of the public API: the seed document's examples
//! (API.md's session table), session semantics (reuse, shared execution,
//! release), unknown shapes, and bad input reported as clear errors.

use mars::dataframe as md;
use mars::ndarray::{arr1, arr2, s, ArrayD};
use mars::prelude::*;
use mars::tensor as mt;

/// Tests that use or change the process-wide default session run one at a time.
static DEFAULT_SESSION: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn default_session_lock() -> std::sync::MutexGuard<'static, ()> {
    DEFAULT_SESSION.lock().unwrap_or_else(|p| p.into_inner())
}

fn f64s(d: mt::TensorData) -> ArrayD<f64> {
    ArrayD::<f64>::try_from(d).expect("a float64 tensor")
}

// ---- the seed's examples -------------------------------------------------

#[test]
fn seed_dataframe_prints_like_pandas() -> Result<()> {
    let sess = mars::new_session()?;
    let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?;
    let data = df.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(data.to_string(), "   0  1\n0  1  2\n1  3  4");
    assert_eq!(data.num_rows(), 2);
    assert_eq!(df.columns(), vec!["0", "1"]);
    Ok(())
}

#[test]
fn seed_default_session_execute_and_fetch() -> Result<()> {
    let _guard = default_session_lock();
    let t = mt::ones(&[3, 2]).rechunk(2) + 1.0;
    let v = t.execute()?.fetch()?;
    assert_eq!(v.to_string(), "array([[2., 2.],\n       [2., 2.],\n       [2., 2.]])");
    // the default session holds it; a fresh session does not
    let other = mars::new_session()?;
    let err = t.fetch_in(&other).unwrap_err();
    assert!(matches!(err, Error::NotExecuted { .. }), "{err:?}");
    assert!(err.to_string().contains("must be executed first"), "{err}");
    Ok(())
}

#[test]
fn seed_as_default_routes_execute() -> Result<()> {
    let _guard = default_session_lock();
    let sess = mars::new_session()?.as_default();
    let t = mt::arange(0.0, 5.0, 1.0);
    t.execute()?;
    assert!(sess.holds(&t));
    assert_eq!(f64s(t.fetch_in(&sess)?), arr1(&[0.0, 1.0, 2.0, 3.0, 4.0]).into_dyn());
    assert_eq!(Session::default_or_local()?.id(), sess.id());
    Ok(())
}

#[test]
fn seed_random_tensor_prints_like_numpy() -> Result<()> {
    let sess = mars::new_session()?;
    let t = mt::random::RandomState::new(0).rand(&[2, 2]);
    let text = t.execute_in(&sess)?.fetch_in(&sess)?.to_string();
    assert!(text.starts_with("array([[0.") && text.ends_with("]])") && text.contains(",\n       [0."), "{text}");
    Ok(())
}

#[test]
fn a_cluster_address_nobody_listens_on_is_a_clear_error() {
    let err = mars::Session::builder().address("http://127.0.0.1:1").token("t").build().unwrap_err();
    assert!(err.to_string().contains("http://127.0.0.1:1"), "{err}");
    assert!(matches!(mars::new_cluster(0), Err(Error::Invalid(_))));
}

// ---- session semantics ---------------------------------------------------

#[test]
fn executing_over_held_results_reuses_them() -> Result<()> {
    // literal chunks (random ones would fuse into the sum and run no separate chunks)
    let x = mt::tensor(ArrayD::from_shape_fn(vec![40, 10], |i| (i[0] * 10 + i[1]) as f64 * 0.5)).rechunk(&[10, 10]);
    let y = ((&x + 1.0) * 2.0).sum();

    let fresh = mars::new_session()?;
    y.execute_in(&fresh)?;
    let cold = fresh.stats().unwrap().chunks_run;

    let warm_sess = mars::new_session()?;
    x.execute_in(&warm_sess)?;
    let before = warm_sess.stats().unwrap().chunks_run;
    y.execute_in(&warm_sess)?;
    let warm = warm_sess.stats().unwrap().chunks_run - before;
    assert!(warm < cold, "over held x ran {warm} chunks, from scratch {cold}");
    assert_eq!(f64s(y.fetch_in(&fresh)?), f64s(y.fetch_in(&warm_sess)?));
    // executing again is free
    let again = warm_sess.stats().unwrap().chunks_run;
    y.execute_in(&warm_sess)?;
    assert_eq!(warm_sess.stats().unwrap().chunks_run, again);
    Ok(())
}

#[test]
fn session_execute_runs_shared_parts_once() -> Result<()> {
    let x = mt::tensor(ArrayD::from_shape_fn(vec![30, 4], |i| (i[0] * 4 + i[1]) as f64 - 7.0)).rechunk(&[10, 4]);
    let (a, b) = (x.sum(), x.mean_axis(0));
    let together = mars::new_session()?;
    together.execute(&[&a, &b])?;
    let apart = mars::new_session()?;
    a.execute_in(&apart)?;
    b.execute_in(&apart)?;
    assert!(together.stats().unwrap().chunks_run < apart.stats().unwrap().chunks_run);
    assert_eq!(f64s(a.fetch_in(&together)?), f64s(a.fetch_in(&apart)?));
    Ok(())
}

#[test]
fn dropping_the_last_handle_releases_chunks() -> Result<()> {
    let sess = mars::new_session()?;
    let x = mt::random::RandomState::new(3).rand(&[100, 10]).rechunk(&[10, 10]) * 3.0;
    x.execute_in(&sess)?;
    assert_eq!(sess.stats().unwrap().chunks_held, 10);
    // identical chunks share one key and one copy
    let same = mars::new_session()?;
    (mt::ones(&[100, 10]).rechunk(&[10, 10]) * 3.0).execute_in(&same)?;
    assert_eq!(same.stats().unwrap().chunks_held, 0, "a temporary's result is released when its handle drops");
    assert_eq!(sess.stats().unwrap().bytes_held, 100 * 10 * 8);
    let y = x.sum();
    y.execute_in(&sess)?;
    // intermediates of y are gone: x's chunks plus y's one chunk
    assert_eq!(sess.stats().unwrap().chunks_held, 11);
    let x2 = x.clone();
    drop(x);
    assert_eq!(sess.stats().unwrap().chunks_held, 11, "a clone still holds x");
    drop(x2);
    assert_eq!(sess.stats().unwrap().chunks_held, 11, "y's expression still references x");
    drop(y);
    assert_eq!(sess.stats().unwrap().chunks_held, 0);
    assert_eq!(sess.stats().unwrap().results_held, 0);
    Ok(())
}

#[test]
fn close_releases_everything() -> Result<()> {
    let sess = mars::new_session()?;
    let x = mt::ones(&[10]).rechunk(3);
    x.execute_in(&sess)?;
    let probe = sess.clone();
    sess.close()?;
    assert_eq!(probe.stats().unwrap().chunks_held, 0);
    assert!(matches!(x.execute_in(&probe), Err(Error::Closed(_))));
    Ok(())
}

#[test]
fn unknown_lengths_become_known_by_executing() -> Result<()> {
    let sess = mars::new_session()?;
    let a = mt::arange(0.0, 10.0, 1.0).rechunk(3);
    let f = a.filter(&a.gt(4.5));
    assert_eq!(f.shape(), vec![None]);
    // ops that need lengths resume tiling after the filter ran
    let g = f.reshape(&[5, 1]).sum_axis(1);
    assert_eq!(f64s(g.execute_in(&sess)?.fetch_in(&sess)?), arr1(&[5.0, 6.0, 7.0, 8.0, 9.0]).into_dyn());
    f.execute_in(&sess)?;
    assert_eq!(f.shape(), vec![Some(5)]);
    Ok(())
}

#[test]
fn keys_are_content_addressed() {
    let a = (mt::ones(&[4, 4]) + 1.0).sum();
    let b = (mt::ones(&[4, 4]) + 1.0).sum();
    assert_eq!(a.key(), b.key());
    assert_eq!(a.key().to_string().len(), 32);
    assert_ne!(a.key(), (mt::ones(&[4, 4]) + 2.0).sum().key());
    assert_ne!(mt::random::rand(&[3]).key(), mt::random::rand(&[3]).key());
    let rs = mt::random::RandomState::new(5);
    assert_ne!(rs.rand(&[3]).key(), rs.rand(&[3]).key());
    assert_eq!(mt::random::RandomState::new(5).rand(&[3]).key(), mt::random::RandomState::new(5).rand(&[3]).key());
}

// ---- bad input -------------------------------------------------------------

fn exec_err(t: &mt::Tensor) -> String {
    let sess = mars::new_session().expect("session");
    t.execute_in(&sess).expect_err("must fail").to_string()
}

#[test]
fn bad_shapes_are_clear_errors() {
    assert_eq!(
        exec_err(&(mt::ones(&[3, 2]) + mt::ones(&[4]))),
        "operands could not be broadcast together with shapes (3, 2) (4,)"
    );
    assert_eq!(
        exec_err(&mt::ones(&[3, 4]).dot(&mt::ones(&[5, 2]))),
        "shapes (3, 4) and (5, 2) not aligned: 4 (dim 1) != 5 (dim 0)"
    );
    assert_eq!(exec_err(&mt::ones(&[3, 4]).reshape(&[5])), "cannot reshape array of size 12 into shape (5,)");
    assert_eq!(exec_err(&mt::ones(&[3, 4]).sum_axis(2)), "axis 2 is out of bounds for array of dimension 2");
    assert_eq!(exec_err(&mt::ones(&[5]).slice(s![..10])), "slice end 10 is out of bounds for axis 0 with size 5");
    assert_eq!(exec_err(&mt::ones(&[5, 2]).slice(s![7, ..])), "index 7 is out of bounds for axis 0 with size 5");
    assert!(exec_err(&mt::ones(&[4]).filter(&mt::ones(&[4]))).contains("bool mask, got float64"));
    assert!(exec_err(&mt::concatenate(&[&mt::ones(&[2, 3]), &mt::ones(&[2, 4])], 0)).contains("(2, 3) and (2, 4)"));
    // errors propagate through later ops
    assert!(exec_err(&(mt::ones(&[3, 2]) + mt::ones(&[4])).sum()).contains("(3, 2) (4,)"));
}

#[test]
fn ragged_rows_and_wrong_dtypes_are_errors() -> Result<()> {
    let err = md::DataFrame::from_rows(vec![vec![1, 2], vec![3]]).unwrap_err();
    assert!(err.to_string().contains("row 1 has 1 values but row 0 has 2"), "{err}");
    let sess = mars::new_session()?;
    let t = mt::tensor(arr2(&[[1i64, 2], [3, 4]]));
    let data = t.execute_in(&sess)?.fetch_in(&sess)?;
    let err = ArrayD::<f64>::try_from(data.clone()).unwrap_err();
    assert!(err.to_string().contains("int64") && err.to_string().contains("float64"), "{err}");
    assert_eq!(ArrayD::<i64>::try_from(data).map_err(Error::Ir)?, arr2(&[[1i64, 2], [3, 4]]).into_dyn());
    Ok(())
}

#[test]
fn kernel_errors_name_the_op_and_keep_what_is_held() -> Result<()> {
    let sess = mars::new_session()?;
    let held = mt::ones(&[6]).rechunk(2) * 5.0;
    held.execute_in(&sess)?;
    let err = mt::zeros(&[0]).min().execute_in(&sess).unwrap_err().to_string();
    assert!(
        err.contains("ReduceCombine min") && err.contains("zero-size array to reduction operation minimum"),
        "{err}"
    );
    let a = mt::arange(0.0, 6.0, 1.0).rechunk(2);
    let empty = a.filter(&a.gt(100.0));
    let err = empty.argmax().execute_in(&sess).unwrap_err().to_string();
    assert!(err.contains("argmax of an empty sequence"), "{err}");
    // nothing already held is lost
    assert_eq!(f64s(held.fetch_in(&sess)?), arr1(&[5.0; 6]).into_dyn());
    Ok(())
}

#[test]
fn frame_rechunk_zero_is_refused_like_tensor_rechunk_zero() -> Result<()> {
    let sess = mars::new_session()?;
    assert!(mt::ones(&[4]).rechunk(0).execute_in(&sess).is_err());
    let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?;
    let bad = df.rechunk(0);
    let err = bad.execute_in(&sess).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("rechunk: rows_per_chunk must be positive, got 0"), "{err}");
    // the source stays usable
    assert_eq!(df.rechunk(1).execute_in(&sess)?.fetch_in(&sess)?.to_string(), "   0  1\n0  1  2\n1  3  4");
    Ok(())
}

#[test]
fn empty_rows_make_an_empty_frame_like_pandas() -> Result<()> {
    let sess = mars::new_session()?;
    // pd.DataFrame([]): no rows, no columns
    let df = md::DataFrame::from_rows(vec![])?;
    assert!(df.columns().is_empty());
    let data = df.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(data.num_rows(), 0);
    assert_eq!(data.record_batch().num_columns(), 0);
    assert_eq!(data.to_string(), "Empty DataFrame\nColumns: []\nIndex: []");
    // pd.DataFrame([[], []]): two rows, no columns
    let rows = md::DataFrame::from_rows(vec![vec![], vec![]])?;
    let data = rows.execute_in(&sess)?.fetch_in(&sess)?;
    assert_eq!(data.num_rows(), 2);
    assert_eq!(data.to_string(), "Empty DataFrame\nColumns: []\nIndex: [0, 1]");
    assert_eq!(rows.rechunk(1).execute_in(&sess)?.fetch_in(&sess)?.num_rows(), 2);
    // pd.DataFrame({}) likewise
    let cols = md::DataFrame::from_columns(vec![])?;
    assert_eq!(cols.execute_in(&sess)?.fetch_in(&sess)?.num_rows(), 0);
    Ok(())
}

#[test]
fn invalid_tensors_report_their_error_instead_of_a_shape() -> Result<()> {
    let bad = mt::ones(&[3, 2]) + mt::ones(&[4]);
    // shape() cannot fail: an invalid tensor reads as 0-d ...
    assert_eq!(bad.shape(), Vec::<Option<usize>>::new());
    // ... so try_shape() and error() tell it apart from a real 0-d tensor
    let err = bad.try_shape().unwrap_err();
    assert_eq!(err.to_string(), "operands could not be broadcast together with shapes (3, 2) (4,)");
    assert_eq!(bad.error(), Some(err.clone()));
    assert_eq!(bad.sum().error(), Some(err), "errors propagate to later ops");
    assert_eq!(mt::ones(&[3]).sum().try_shape()?, Vec::<Option<usize>>::new());
    assert_eq!(mt::ones(&[3]).sum().error(), None);
    let a = mt::arange(0.0, 4.0, 1.0);
    assert_eq!(a.filter(&a.gt(1.0)).try_shape()?, vec![None]);
    assert!(mt::arange(0.0, 1.0, 0.0).try_shape().unwrap_err().to_string().contains("step must be finite"));
    // frames keep construction errors the same way
    assert!(md::DataFrame::from_rows(vec![vec![1]])?.rechunk(0).error().is_some());
    assert_eq!(md::DataFrame::from_rows(vec![vec![1]])?.error(), None);
    Ok(())
}

/// Frames carry the column types real files bring (string views, decimals,
/// dates, timestamps of every unit, nulls everywhere) through chunking and
/// execution unchanged, and print them as pandas does; a type frames do not
/// carry is an error naming the column.
#[test]
fn frames_carry_file_column_types() -> Result<()> {
    use mars::arrow::array::{
        ArrayRef, Date32Array, Date64Array, Decimal128Array, Int32Array, ListArray, StringViewArray,
        TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
    };
    use mars::arrow::datatypes::Int32Type;
    use std::sync::Arc;
    let sess = mars::new_session()?;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("s", Arc::new(StringViewArray::from(vec![Some("a"), None, Some("ccc")]))),
        ("d", Arc::new(Decimal128Array::from(vec![Some(150), None, Some(-2025)]).with_precision_and_scale(7, 2)?)),
        ("day", Arc::new(Date32Array::from(vec![Some(0), Some(19000), None]))),
        ("d64", Arc::new(Date64Array::from(vec![Some(86_400_000), None, Some(0)]))),
        ("ts_ms", Arc::new(TimestampMillisecondArray::from(vec![Some(1_000), None, Some(1_700_000_000_000)]))),
        ("ts_s", Arc::new(TimestampSecondArray::from(vec![Some(1), Some(2), None]))),
        ("ts_ns", Arc::new(TimestampNanosecondArray::from(vec![None, Some(5), Some(1_700_000_000_123_456_789)]))),
        ("i", Arc::new(Int32Array::from(vec![Some(1), None, Some(3)]))),
    ];
    let types: Vec<_> = cols.iter().map(|(_, a)| a.data_type().clone()).collect();
    // the meta is the Arrow schema; explain names the types
    let explained = md::DataFrame::from_columns(cols.clone())?.explain();
    assert!(explained.contains("rows=3 schema=[s:Utf8View, d:Decimal128(7, 2), day:date32, d64:Date64"), "{explained}");
    assert!(explained.contains("ts_ns:Timestamp(ns), i:int32]"), "{explained}");
    for rows in [1, 2, 3] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        let data = df.execute_in(&sess)?.fetch_in(&sess)?;
        let got: Vec<_> = data.record_batch().schema().fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(got, types, "{rows} rows a chunk");
        // pandas' repr of the same table (`to_pandas(date_as_object=False)`), 80 columns wide
        assert_eq!(
            data.to_string(),
            "     s       d  ...                         ts_ns    i\n\
             0    a    1.50  ...                           NaT  1.0\n\
             1  NaN    None  ... 1970-01-01 00:00:00.000000005  NaN\n\
             2  ccc  -20.25  ... 2023-11-14 22:13:20.123456789  3.0\n\n[3 rows x 8 columns]"
        );
    }
    // and each half whole
    let half = |range: std::ops::Range<usize>| -> Result<String> {
        let df = md::DataFrame::from_columns(cols[range].to_vec())?.rechunk(2);
        Ok(df.execute_in(&sess)?.fetch_in(&sess)?.to_string())
    };
    assert_eq!(
        half(0..4)?,
        "     s       d        day        d64\n\
         0    a    1.50 1970-01-01 1970-01-02\n\
         1  NaN    None 2022-01-08        NaT\n\
         2  ccc  -20.25        NaT 1970-01-01"
    );
    assert_eq!(
        half(4..8)?,
        "                ts_ms                ts_s                         ts_ns    i\n\
         0 1970-01-01 00:00:01 1970-01-01 00:00:01                           NaT  1.0\n\
         1                 NaT 1970-01-01 00:00:02 1970-01-01 00:00:00.000000005  NaN\n\
         2 2023-11-14 22:13:20                 NaT 2023-11-14 22:13:20.123456789  3.0"
    );
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
    let err = md::DataFrame::from_columns(vec![("tags", Arc::new(list) as ArrayRef)]).unwrap_err();
    assert!(err.to_string().contains("column \"tags\" has unsupported Arrow type List"), "{err}");
    Ok(())
}

/// User data is put into a session's backend once (equal data built twice is
/// one key), read by reference, and released when the last handle carrying it
/// goes; a graph referring to data the backend does not hold is refused.
#[test]
fn user_data_is_put_once_and_released_with_its_handles() -> Result<()> {
    let sess = mars::Session::builder().progress(false).build()?;
    let data = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let a = mt::tensor(data.clone()).rechunk(&[1, 2]);
    let b = mt::tensor(data.clone());
    let (sa, sb) = ((&a * 2.0).sum(), (&b + 1.0).sum());
    sess.execute(&[&sa, &sb])?;
    assert_eq!(sa.fetch_in(&sess)?.to_string(), "array(42.)");
    assert_eq!(sb.fetch_in(&sess)?.to_string(), "array(27.)");
    // two results and the data, held once
    assert_eq!(sess.stats().unwrap().results_held, 3, "{:?}", sess.stats().unwrap());
    drop((sa, sb));
    assert_eq!(sess.stats().unwrap().results_held, 1, "the data stays while a handle carries it");
    drop(a);
    assert_eq!(sess.stats().unwrap().results_held, 1, "b carries the same data");
    drop(b);
    assert_eq!(sess.stats().unwrap().results_held, 0);
    assert_eq!(sess.stats().unwrap().chunks_held, 0);
    // a saved graph run on a backend that was never given its data
    let dir = std::env::temp_dir().join(format!("mars-data-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("g.json");
    mars::save_graph(&[&(mt::tensor(data) * 3.0)], &path)?;
    let saved = mars::load_graph(&path)?;
    let backend = mars_backends::LocalBackend::new(Default::default())?;
    let err = mars_backends::Backend::submit(&backend, saved.graph.clone(), saved.roots.clone()).unwrap_err();
    assert!(err.to_string().contains("is not held here (put it first)"), "{err}");
    Ok(())
}

/// A held result can be read chunk by chunk (as a client streams a big one):
/// the chunks, in grid order, are the whole value; a position past the grid
/// is an error naming the count.
#[test]
fn results_can_be_fetched_chunk_by_chunk() -> Result<()> {
    use mars_backends::Backend;
    let backend = std::sync::Arc::new(mars_backends::LocalBackend::new(Default::default())?);
    let sess = mars::Session::with_backend(backend.clone());
    let t = mt::arange(0.0, 35.0, 1.0).reshape(&[5, 7]).rechunk(&[2, 3]) * 2.0;
    t.execute_in(&sess)?;
    let whole: Vec<f64> = t.fetch_in(&sess)?.to_f64_vec();
    let res = backend.meta(&t.key())?;
    let grid: Vec<usize> = res.nsplits.iter().map(|s| s.len()).collect();
    assert_eq!(grid, [3, 3]);
    let mut rebuilt = vec![f64::NAN; 35];
    let (mut row0, mut k) = (0, 0);
    for rows in &res.nsplits[0] {
        let mut col0 = 0;
        for cols in &res.nsplits[1] {
            let (r, c) = (rows.known().unwrap(), cols.known().unwrap());
            let chunk = backend.fetch_chunk(&t.key(), k)?;
            let values = chunk.tensor().expect("a tensor chunk").cast(mt::DType::Float64);
            let values: ArrayD<f64> = values.try_into().expect("f64");
            assert_eq!(values.shape(), [r, c]);
            for (i, v) in values.iter().enumerate() {
                rebuilt[(row0 + i / c) * 7 + col0 + i % c] = *v;
            }
            col0 += c;
            k += 1;
        }
        row0 += rows.known().unwrap();
    }
    assert_eq!(rebuilt, whole);
    let err = backend.fetch_chunk(&t.key(), 9).unwrap_err();
    assert!(err.to_string().contains("has 9 chunks, there is no chunk 9"), "{err}");
    Ok(())
}

/// `select` and `col` against Arrow's own projection of the one batch, under
/// chunkings of 1 row, uneven ones and one chunk, with nulls; unknown names
/// are errors listing the columns there are, and the frame stays usable.
#[test]
fn select_and_col_match_arrow_projection() -> Result<()> {
    use mars::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let sess = mars::new_session()?;
    let n = 11;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("k", Arc::new(Int64Array::from((0..n).map(|i| (i % 3 != 0).then_some(i)).collect::<Vec<_>>()))),
        ("v", Arc::new(Float64Array::from((0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>()))),
        ("s", Arc::new(StringArray::from((0..n).map(|i| format!("s{i}")).collect::<Vec<_>>()))),
    ];
    let batch = mars::arrow::record_batch::RecordBatch::try_from_iter(cols.clone())?;
    for rows in [1, 4, 11] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        let got = df.select(&["s", "k"])?.execute_in(&sess)?.fetch_in(&sess)?;
        assert_eq!(got.record_batch(), &batch.project(&[2, 0])?, "{rows} rows a chunk");
        let v = df.col("v")?;
        assert_eq!(v.name(), "v");
        let data = v.execute_in(&sess)?.fetch_in(&sess)?;
        assert_eq!(data.name(), "v");
        assert_eq!(data.array().as_ref(), batch.column(1).as_ref(), "{rows} rows a chunk");
        // a column selected twice, as pandas allows
        let twice = df.select(&["k", "k"])?.execute_in(&sess)?.fetch_in(&sess)?;
        assert_eq!(twice.record_batch(), &batch.project(&[0, 0])?);
    }
    let df = md::DataFrame::from_columns(cols)?;
    let err = df.col("w").unwrap_err().to_string();
    assert!(err.contains(r#"column "w" is not in the frame; its columns are ["k", "v", "s"]"#), "{err}");
    assert!(df.select(&["v", "nope"]).is_err());
    assert_eq!(df.select(&["v"])?.execute_in(&sess)?.fetch_in(&sess)?.num_rows(), n as usize);
    Ok(())
}

/// `head(n)` against Arrow's slice of the one batch, for every n around the
/// chunk boundaries and past the end; only the chunks holding the rows run.
#[test]
fn head_matches_arrow_slice_and_runs_only_leading_chunks() -> Result<()> {
    use mars::arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;
    let n = 11;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("k", Arc::new(Int64Array::from((0..n).map(|i| (i % 4 != 0).then_some(i)).collect::<Vec<_>>()))),
        ("s", Arc::new(StringArray::from((0..n).map(|i| format!("s{i}")).collect::<Vec<_>>()))),
    ];
    let batch = mars::arrow::record_batch::RecordBatch::try_from_iter(cols.clone())?;
    for rows in [1, 4, 11] {
        for take in [0, 1, 3, 4, 5, 11, 20] {
            let sess = mars::Session::builder().progress(false).build()?;
            let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows).head(take);
            let got = df.execute_in(&sess)?.fetch_in(&sess)?;
            let want = batch.slice(0, take.min(n as usize));
            assert_eq!(got.record_batch(), &want, "head({take}) of {rows}-row chunks");
            // a slice per chunk at most, and none past the rows asked for
            let ran = sess.stats()?.chunks_run as usize;
            assert!(
                ran <= take.min(n as usize).div_ceil(rows).max(1) + 1,
                "head({take}) of {rows}-row chunks ran {ran}"
            );
        }
    }
    Ok(())
}

/// Series comparisons, arithmetic and logic against the same computation on
/// the one batch, and `filter` (then `head`, which must first learn the
/// filtered lengths) against Arrow's filter, under several chunkings; type
/// errors name the types; nothing already held is lost.
#[test]
fn series_ops_and_filter_match_one_batch() -> Result<()> {
    use mars::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let sess = mars::new_session()?;
    let n = 13usize;
    let a: Vec<Option<i64>> = (0..n as i64).map(|i| (i % 5 != 4).then_some((i * 7) % 11)).collect();
    let v: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 2.0).collect();
    let s: Vec<String> = (0..n).map(|i| ["x", "yy", "x", "z"][i % 4].to_string()).collect();
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("a", Arc::new(Int64Array::from(a.clone()))),
        ("v", Arc::new(Float64Array::from(v.clone()))),
        ("s", Arc::new(StringArray::from(s.clone()))),
    ];
    let batch = mars::arrow::record_batch::RecordBatch::try_from_iter(cols.clone())?;
    let bools = |f: &dyn Fn(usize) -> bool| BooleanArray::from((0..n).map(f).collect::<Vec<_>>());
    // pandas: a missing value compares false
    let want_gt = bools(&|i| a[i].is_some_and(|x| x > 3));
    let want_mask = bools(&|i| a[i].is_some_and(|x| x > 3) && v[i] < 3.0 || s[i] == "z");
    for rows in [1, 4, 13] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        let (ca, cv, cs) = (df.col("a")?, df.col("v")?, df.col("s")?);
        let fetch = |x: &md::Series| -> Result<ArrayRef> { Ok(x.execute_in(&sess)?.fetch_in(&sess)?.array().clone()) };
        assert_eq!(fetch(&ca.gt(3))?.to_data(), want_gt.to_data(), "a > 3, {rows}-row chunks");
        let mask = &(&ca.gt(3i64) & &cv.lt(3.0)) | &cs.eq("z");
        assert_eq!(fetch(&mask)?.to_data(), want_mask.to_data(), "mask, {rows}-row chunks");
        let not = fetch(&!&cs.eq("x"))?;
        assert_eq!(not.to_data(), bools(&|i| s[i] != "x").to_data());
        // arithmetic: int * int stays int64 (nulls stay), with a float it is float64
        let sum = fetch(&(&(&ca * 2i64) + &ca))?;
        assert_eq!(sum.to_data(), Int64Array::from(a.iter().map(|x| x.map(|x| x * 3)).collect::<Vec<_>>()).to_data());
        let mixed = fetch(&(&ca + &cv))?;
        let want_mixed: Vec<Option<f64>> = (0..n).map(|i| a[i].map(|x| x as f64 + v[i])).collect();
        assert_eq!(mixed.to_data(), Float64Array::from(want_mixed).to_data());
        let rdiv = fetch(&(1.0 / &cv))?;
        assert_eq!(rdiv.to_data(), Float64Array::from(v.iter().map(|x| 1.0 / x).collect::<Vec<_>>()).to_data());
        // filter, and head over its lengths (unknown until the filter ran)
        let kept = df.filter(&mask)?;
        let want = mars::arrow::compute::filter_record_batch(&batch, &want_mask)?;
        assert_eq!(kept.execute_in(&sess)?.fetch_in(&sess)?.record_batch(), &want, "{rows}-row chunks");
        let first = df.filter(&mask)?.head(2);
        assert_eq!(first.execute_in(&sess)?.fetch_in(&sess)?.record_batch(), &want.slice(0, 2));
    }
    let df = md::DataFrame::from_columns(cols)?;
    let err = (&df.col("s")? + 1i64).execute_in(&sess).unwrap_err().to_string();
    assert!(err.contains("operator + is not defined for Utf8 and Int64"), "{err}");
    let err = df.filter(&df.col("a")?).unwrap_err().to_string();
    assert!(err.contains("a filter mask must be one bool column"), "{err}");
    Ok(())
}

/// `with_column` adds a Series last or replaces a column in place, under
/// several chunkings; a Series of another length is an error.
#[test]
fn with_column_adds_or_replaces_like_pandas() -> Result<()> {
    use mars::arrow::array::{ArrayRef, Float64Array, Int64Array};
    use std::sync::Arc;
    let sess = mars::new_session()?;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("a", Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]))),
        ("b", Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5, 4.5]))),
    ];
    for rows in [1, 2, 5] {
        let df = md::DataFrame::from_columns(cols.clone())?.rechunk(rows);
        let added = df.with_column("c", &(&df.col("a")? * 10i64))?;
        assert_eq!(added.columns(), ["a", "b", "c"]);
        assert_eq!(
            added.execute_in(&sess)?.fetch_in(&sess)?.to_string(),
            "   a    b   c\n0  1  0.5  10\n1  2  1.5  20\n2  3  2.5  30\n3  4  3.5  40\n4  5  4.5  50",
            "{rows}-row chunks"
        );
        let replaced = df.with_column("a", &(&df.col("b")? + 1.0))?;
        assert_eq!(replaced.columns(), ["a", "b"]);
        assert_eq!(
            replaced.execute_in(&sess)?.fetch_in(&sess)?.to_string(),
            "     a    b\n0  1.5  0.5\n1  2.5  1.5\n2  3.5  2.5\n3  4.5  3.5\n4  5.5  4.5"
        );
    }
    let df = md::DataFrame::from_columns(cols.clone())?;
    let short = md::DataFrame::from_columns(vec![("x", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)])?;
    let err = df.with_column("x", &short.col("x")?).unwrap_err().to_string();
    assert!(err.contains("a Series of 2 rows for a frame of 5 rows"), "{err}");
    Ok(())
}
