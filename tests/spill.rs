//! The memory limit: a session whose data is about 3x its limit spills the
//! coldest chunks to disk, reads them back on demand, gets the same answers as
//! an unlimited session, deletes the files on release and the folder on close;
//! a chunk bigger than the limit is a clear error that loses nothing.

use mars::dataframe as md;
use mars::ndarray::{s, ArrayD, Axis, Ix2};
use mars::prelude::*;
use mars::tensor as mt;

const LIMIT: usize = 256 * 1024;

fn f64s(d: mt::TensorData) -> ArrayD<f64> {
    ArrayD::<f64>::try_from(d).expect("a float64 tensor")
}

fn limited(threads: usize) -> Result<Session> {
    Session::builder().threads(threads).memory_limit(LIMIT).progress(false).build()
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())), "{x} != {y}");
    }
}

#[test]
fn data_three_times_the_limit_gives_the_same_answers() -> Result<()> {
    let free = Session::builder().progress(false).build()?;
    // 330 x 330 f64 = 871 KB, 3.3x the limit; chunks that don't divide the shape
    for (threads, chunk) in [(1, 40), (2, 47), (2, 64)] {
        let sess = limited(threads)?;
        let x = mt::random::RandomState::new(7).rand(&[330, 330]).rechunk(chunk);
        x.execute_in(&sess)?;
        let st = sess.stats().unwrap();
        assert!(st.spill.bytes_spilled > 0, "nothing was spilled: {st:?}");
        assert!(st.bytes_held <= LIMIT, "{} bytes in memory over a limit of {LIMIT}", st.bytes_held);
        let want_x = f64s(x.execute_in(&free)?.fetch_in(&free)?);
        let w1 = ((&x + 1.0) * 2.0).sum();
        let mean0 = x.mean_axis(0);
        let std1 = x.std_axis(1);
        let gram = x.t().dot(&x.slice(s![.., 0..5]));
        sess.execute(&[&w1, &mean0, &std1, &gram])?;
        let got: Vec<ArrayD<f64>> =
            [&w1, &mean0, &std1, &gram].iter().map(|t| t.fetch_in(&sess).map(f64s)).collect::<Result<_>>()?;
        let want_sum = ((&want_x + 1.0) * 2.0).sum();
        assert!((got[0].sum() - want_sum).abs() <= 1e-9 * want_sum, "{} != {want_sum}", got[0]);
        close(&got[1], &want_x.mean_axis(Axis(0)).expect("rows"));
        close(&got[2], &want_x.std_axis(Axis(1), 0.0));
        let x2 = want_x.clone().into_dimensionality::<Ix2>().expect("2-d");
        let want_gram = x2.t().dot(&x2.slice(s![.., 0..5]));
        close(&got[3], &want_gram.into_dyn());
        // the held x, partly on disk, comes back whole
        close(&f64s(x.fetch_in(&sess)?), &want_x);
        let st = sess.stats().unwrap();
        assert!(st.spill.chunks_restored > 0, "{st:?}");
        assert!(st.bytes_held <= LIMIT, "{st:?}");
    }
    Ok(())
}

#[test]
fn release_deletes_spilled_files_and_close_the_folder() -> Result<()> {
    // the spill folder is the local backend's own detail (stats carry no paths)
    let tile = mars_tiler::TileOptions::for_budget(None, Some(LIMIT))?;
    let opts = mars_backends::LocalOptions { threads: Some(2), memory_limit: Some(LIMIT), tile };
    let backend = std::sync::Arc::new(mars_backends::LocalBackend::new(opts)?);
    let sess = Session::with_backend(backend.clone());
    let x = mt::random::RandomState::new(3).rand(&[300, 300]).rechunk(50);
    x.execute_in(&sess)?;
    let st = sess.stats().unwrap();
    assert!(st.spill.chunks_on_disk > 0);
    let folder = backend.spill_folder().expect("a spill folder");
    let files = std::fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, st.spill.chunks_on_disk);
    drop(x);
    let st = sess.stats().unwrap();
    assert_eq!((st.chunks_held, st.spill.chunks_on_disk), (0, 0), "{st:?}");
    assert_eq!(std::fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0), 0);
    // held again, then the session closes: the folder goes
    let y = mt::random::RandomState::new(4).rand(&[300, 300]).rechunk(50);
    y.execute_in(&sess)?;
    assert!(folder.exists());
    sess.close()?;
    drop((y, backend));
    assert!(!folder.exists(), "{} is still there", folder.display());
    Ok(())
}

#[test]
fn a_chunk_bigger_than_the_limit_is_a_clear_error_and_loses_nothing() -> Result<()> {
    let sess = limited(2)?;
    let small = mt::arange(0.0, 100.0, 1.0).rechunk(10);
    small.execute_in(&sess)?;
    // one 400 x 400 f64 chunk is 1.28 MB
    let big = mt::ones(&[400, 400]).rechunk(400) * 2.0;
    let e = big.execute_in(&sess).unwrap_err().to_string();
    assert!(e.contains("more than the memory limit of 262144 bytes"), "{e}");
    assert!(e.contains("1280000 bytes") && e.contains("(400, 400)"), "{e}");
    let v = f64s(small.fetch_in(&sess)?);
    assert_eq!(v.sum(), 4950.0);
    // without explicit chunks, chunks default to a quarter of the limit and fit
    let auto = mt::ones(&[400, 400]) * 2.0;
    assert_eq!(f64s(auto.sum().execute_in(&sess)?.fetch_in(&sess)?).sum(), 320000.0);
    Ok(())
}

#[test]
fn frames_spill_as_arrow_ipc_and_come_back() -> Result<()> {
    let sess = Session::builder().memory_limit(64 * 1024).progress(false).build()?;
    let rows: Vec<Vec<i64>> = (0..3000).map(|i| vec![i, i * i, -i]).collect();
    let df = md::DataFrame::from_rows(rows.clone())?.rechunk(250);
    df.execute_in(&sess)?;
    assert!(sess.stats().unwrap().spill.chunks_spilled > 0, "{:?}", sess.stats().unwrap());
    let back = df.fetch_in(&sess)?;
    assert_eq!(back.num_rows(), 3000);
    let want = md::DataFrame::from_rows(rows)?;
    let free = Session::builder().progress(false).build()?;
    assert_eq!(back.to_string(), want.execute_in(&free)?.fetch_in(&free)?.to_string());
    Ok(())
}

#[test]
fn a_zero_limit_is_refused() {
    let e = Session::builder().memory_limit(0).build().unwrap_err().to_string();
    assert!(e.contains("memory_limit must be positive"), "{e}");
}

/// Frames spill too: held frames, hash-shuffle pieces (several outputs in
/// one chunk), join tables and sort ranges go to disk under the limit and
/// come back, and groupby, merge and sort give the same answers as an
/// unlimited session.
#[test]
fn frame_chunks_and_shuffle_pieces_spill_and_come_back() -> Result<()> {
    use mars::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let free = Session::builder().progress(false).build()?;
    let n = 12_000usize;
    let cols = || -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("k", Arc::new(Int64Array::from((0..n as i64).map(|i| (i * 7919) % 3001).collect::<Vec<_>>()))),
            ("s", Arc::new(StringArray::from((0..n).map(|i| format!("name-{}", i % 977)).collect::<Vec<_>>()))),
            ("v", Arc::new(Float64Array::from((0..n).map(|i| (i as f64).sin()).collect::<Vec<_>>()))),
        ]
    };
    let right = || -> Result<md::DataFrame> {
        md::DataFrame::from_columns(vec![
            ("k", Arc::new(Int64Array::from((0..3001i64).collect::<Vec<_>>())) as ArrayRef),
            ("w", Arc::new(Float64Array::from((0..3001).map(|i| i as f64).collect::<Vec<_>>()))),
        ])
    };
    let run = |sess: &Session| -> Result<Vec<mars::arrow::record_batch::RecordBatch>> {
        let df = md::DataFrame::from_columns(cols())?.rechunk(1000);
        df.execute_in(sess)?;
        let by_key = df.groupby(&["k"])?.method(md::GroupMethod::Shuffle).agg(&[("v", "sum"), ("s", "nunique")])?;
        let joined = df.merge(&right()?.rechunk(500), &["k"], md::How::Outer)?.sort_values(&["k", "s"], true)?;
        let sorted = df.sort_values(&["v"], false)?;
        sess.execute(&[&by_key, &joined, &sorted])?;
        Ok(vec![
            by_key.fetch_in(sess)?.record_batch().clone(),
            joined.fetch_in(sess)?.record_batch().clone(),
            sorted.fetch_in(sess)?.record_batch().clone(),
        ])
    };
    let sess = limited(2)?;
    let got = run(&sess)?;
    let st = sess.stats().unwrap();
    assert!(st.spill.bytes_spilled > 0 && st.spill.chunks_restored > 0, "nothing spilled and came back: {st:?}");
    assert!(st.bytes_held <= LIMIT, "{st:?}");
    let want = run(&free)?;
    // a shuffled groupby's chunks are each sorted, in partition order: the same in both sessions
    assert_eq!(got, want);
    Ok(())
}
