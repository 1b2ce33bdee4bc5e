//! The `mars` binary end to end: saved graphs inspected as text, DOT, JSON,
//! tiled, after passes, with stats; run with results written as .npy; every
//! bad input a clear error and a non-zero exit.

use mars::tensor as mt;
use mars::Tileable;
use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mars-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn mars(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mars")).args(args).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn saved(name: &str, t: &dyn Tileable) -> String {
    let path = tmp(name).join("graph.json");
    mars::save_graph(&[t], &path).expect("saves");
    path.to_string_lossy().into_owned()
}

fn sample() -> mt::Tensor {
    let x = mt::random::RandomState::new(7).rand(&[4, 4]).rechunk(&[2, 4]);
    ((&x + 1.0) * 2.0).sum_axis(1)
}

#[test]
fn save_and_load_round_trip() {
    let t = sample();
    let path = saved("roundtrip", &t);
    let g = mars::load_graph(&path).expect("loads");
    assert_eq!(g.roots, vec![t.key()]);
    assert_eq!(g.graph.explain(&g.root_ids()), t.explain());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"format\": \"mars-tileable-graph/1\""));
}

#[test]
fn inspect_text_tile_passes_dot_stats() {
    let path = saved("inspect", &sample());
    let (ok, text, _) = mars(&["inspect", &path]);
    assert!(ok);
    insta::assert_snapshot!("cli_inspect", text);
    let (ok, tiled, _) = mars(&["inspect", &path, "--tile"]);
    assert!(ok);
    insta::assert_snapshot!("cli_inspect_tile", tiled);
    let (ok, passes, _) = mars(&["inspect", &path, "--passes"]);
    assert!(ok);
    insta::assert_snapshot!("cli_inspect_passes", passes);
    let (ok, dot, _) = mars(&["inspect", &path, "--format", "dot"]);
    assert!(ok);
    insta::assert_snapshot!("cli_inspect_dot", dot);
    let (ok, stats, _) = mars(&["inspect", &path, "--tile", "--stats"]);
    assert!(ok);
    insta::assert_snapshot!("cli_inspect_stats", stats.split("\nstats:\n").nth(1).unwrap_or(""));
    let (ok, json, _) = mars(&["inspect", &path, "--tile", "--format", "json"]);
    assert!(ok && json.contains("\"format\": \"mars-chunk-graph/1\""), "{json}");
}

#[test]
fn chunk_size_changes_tiling_and_big_plans_collapse() {
    let path = saved("chunksize", &(mt::random::RandomState::new(1).rand(&[1000, 10]) * 2.0));
    let (ok, text, _) = mars(&["inspect", &path, "--tile", "--chunk-size", "800"]);
    assert!(ok);
    assert!(text.starts_with("Map (random(Uniform, seed="), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("Map")).count(), 100);
    let (ok, dot, _) = mars(&["inspect", &path, "--tile", "--chunk-size", "80", "--format", "dot"]);
    assert!(ok);
    assert!(dot.contains("\\n1000 chunks") && dot.lines().count() < 10, "{dot}");
}

#[test]
fn unknown_lengths_show_as_question_marks() {
    let a = mt::arange(0.0, 6.0, 1.0).rechunk(3);
    let f = a.filter(&a.gt(2.0)).reshape(&[3]);
    let path = saved("unknown", &f);
    let (ok, text, _) = mars(&["inspect", &path]);
    assert!(ok && text.contains("Filter key=") && text.contains("shape=(?,)"), "{text}");
    let (ok, tiled, _) = mars(&["inspect", &path, "--tile"]);
    assert!(ok && tiled.starts_with("tiling paused: 2 chunks must run"), "{tiled}");
}

#[test]
fn run_writes_npy() {
    let t = sample();
    let path = saved("run", &t);
    let out = tmp("run").join("out.npy");
    let (ok, summary, err) = mars(&["run", &path, "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        summary.contains("shape=(4,) dtype=float64") && summary.contains("out.npy") && summary.contains("ran "),
        "{summary}"
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f8'") && header.contains("'shape': (4,)"), "{header}");
    assert_eq!((10 + hlen) % 64, 0);
    let values: Vec<f64> = bytes[10 + hlen..].chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let sess = mars::new_session().unwrap();
    let expect = t.execute_in(&sess).unwrap().fetch_in(&sess).unwrap().to_f64_vec();
    assert_eq!(values, expect);
}

fn bad(name: &str, content: &str) -> String {
    let path = tmp(name).join("bad.json");
    std::fs::write(&path, content).unwrap();
    let (ok, _, err) = mars(&["inspect", path.to_str().unwrap()]);
    assert!(!ok, "must fail: {content}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_inputs_are_clear_errors() {
    let err = bad("malformed", "{\"format\": \"mars-tileable-graph/1\",\n  \"nodes\": [\n    {\"key\": }");
    assert!(err.contains("line 3 column"), "{err}");
    let err = bad("version", "{\"format\": \"mars-tileable-graph/9\", \"nodes\": []}");
    assert!(err.contains("unsupported graph format \"mars-tileable-graph/9\""), "{err}");

    // a real graph, then broken in different ways
    let path = saved("base", &sample());
    let good: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut unknown_op = good.clone();
    unknown_op["nodes"][0]["op"] = serde_json::json!({"Tensor": {"Frobnicate": {}}});
    let err = bad("unknown_op", &unknown_op.to_string());
    assert!(err.contains("unknown variant `Frobnicate`"), "{err}");
    let mut dangling = good.clone();
    dangling["nodes"][1]["inputs"] = serde_json::json!([42]);
    let err = bad("dangling", &dangling.to_string());
    assert!(err.contains("refers to input #42, which is missing"), "{err}");
    let mut cycle = good.clone();
    cycle["nodes"][0]["inputs"] = serde_json::json!([1]);
    let err = bad("cycle", &cycle.to_string());
    assert!(err.contains("a cycle"), "{err}");
    let mut root = good.clone();
    root["roots"] = serde_json::json!(["0123456789abcdef0123456789abcdef"]);
    let err = bad("root", &root.to_string());
    assert!(err.contains("is not a node of the graph"), "{err}");

    let (ok, _, err) = mars(&["inspect", "/nonexistent/graph.json"]);
    assert!(!ok && err.contains("cannot read /nonexistent/graph.json"), "{err}");
    let (ok, _, err) = mars(&["run", "/nonexistent/graph.json"]);
    assert!(!ok && err.contains("cannot read"), "{err}");
}

#[test]
fn svg_renders_with_graphviz_or_says_how_to_get_it() {
    let path = saved("svg", &sample());
    let (ok, svg, err) = mars(&["inspect", &path, "--tile", "--format", "svg"]);
    let have_dot = Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success());
    if have_dot {
        assert!(ok && svg.contains("<svg") && svg.contains("ReduceCombine"), "{err}");
    } else {
        assert!(!ok && err.contains("apt-get install graphviz"), "{err}");
    }
}

#[test]
fn run_shows_progress_only_on_a_terminal() {
    let x = mt::random::RandomState::new(3).rand(&[50_000, 1000]).rechunk(&[1000, 1000]);
    let path = saved("progress", &((&x + 1.0) * 2.0).sum_axis(1));
    let (ok, _, err) = mars(&["run", &path]);
    assert!(ok && !err.contains("% of chunks"), "no bar when stderr is not a terminal: {err}");
    // `script` gives the command a pseudo-terminal
    if Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let typescript = tmp("progress").join("typescript");
        let cmd = format!("{} run {path}", env!("CARGO_BIN_EXE_mars"));
        let status = Command::new("script")
            .env("MARS_PROGRESS", "now")
            .args(["-qec", &cmd])
            .arg(&typescript)
            .output()
            .expect("script runs");
        assert!(status.status.success());
        let text = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
        assert!(text.contains("% of chunks") && text.contains("ran 100 chunks"), "{text}");
    }
}

/// Frame graphs run from a file too: a groupby (whose method is chosen once
/// its partials ran) and a filter are written as parquet, a tensor as .npy;
/// `inspect` shows how far the frame graph tiles before it must run.
#[test]
fn run_writes_frames_as_parquet_and_several_roots_to_a_folder() {
    use mars::dataframe as md;
    let df = md::DataFrame::from_rows((0..30).map(|i| vec![i % 4, i]).collect()).unwrap().rechunk(7);
    let g = df.groupby(&["0"]).unwrap().agg(&[("1", "sum"), ("1", "count")]).unwrap();
    let kept = df.filter(&df.col("1").unwrap().gt(20i64)).unwrap();
    let t = mt::arange(0.0, 4.0, 1.0);
    let path = tmp("frames").join("graph.json");
    mars::save_graph(&[&g, &kept, &t], &path).unwrap();
    let (ok, text, err) = mars(&["inspect", path.to_str().unwrap(), "--tile"]);
    assert!(ok, "{err}");
    assert!(text.contains("tiling paused: 5 chunks must run") && text.contains("GroupPartial"), "{text}");
    let out = tmp("frames").join("out");
    let (ok, summary, err) = mars(&["run", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(summary.contains("schema=[0:int64, 1_sum:int64, 1_count:int64]"), "{summary}");
    let sess = mars::new_session().unwrap();
    let read = |k: mars::Key| {
        md::read_parquet(out.join(format!("{k}.parquet"))).unwrap().execute_in(&sess).unwrap().fetch_in(&sess).unwrap()
    };
    let groups = read(g.key());
    assert_eq!(groups.record_batch(), g.execute_in(&sess).unwrap().fetch_in(&sess).unwrap().record_batch());
    assert_eq!(groups.num_rows(), 4);
    assert_eq!(read(kept.key()).num_rows(), 9);
    assert!(out.join(format!("{}.npy", t.key())).exists());
}

/// User data goes beside a saved graph, not inside it: the JSON stays small
/// whatever the data's size, `mars run` puts the data into its backend, and
/// a missing or tampered data file is a clear error (inspecting needs none).
#[test]
fn user_data_is_saved_beside_the_graph_not_in_it() {
    let values: Vec<f64> = (0..100_000).map(|i| (i % 97) as f64).collect();
    let x = mt::tensor(mars::ndarray::Array1::from(values.clone())).rechunk(30_000);
    let t = (&x * 2.0).sum();
    let path = saved("data", &t);
    let json = std::fs::metadata(&path).unwrap().len();
    assert!(json < 8 * 1024, "the graph JSON is {json} bytes");
    let dir = mars::data_dir(std::path::Path::new(&path));
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(std::fs::metadata(&files[0]).unwrap().len() > 800_000);
    let want: f64 = values.iter().map(|v| v * 2.0).sum();
    let (ok, summary, err) = mars(&["run", &path]);
    assert!(ok, "{err}");
    assert!(summary.contains("shape=() dtype=float64"), "{summary}");
    let out = tmp("data").join("sum.npy");
    assert!(mars(&["run", &path, "--out", out.to_str().unwrap()]).0);
    let got = std::fs::read(&out).unwrap();
    assert_eq!(f64::from_le_bytes(got[got.len() - 8..].try_into().unwrap()), want);
    // a tampered data file is refused on load
    let bytes = std::fs::read(&files[0]).unwrap();
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    std::fs::write(&files[0], &tampered).unwrap();
    let (ok, _, err) = mars(&["run", &path]);
    assert!(!ok && err.contains("does not hash to its key"), "{err}");
    // a missing one: inspect still works, run says which file is missing
    std::fs::remove_file(&files[0]).unwrap();
    let (ok, text, err) = mars(&["inspect", &path, "--tile"]);
    assert!(ok, "{err}");
    assert!(text.contains("Fetch"), "{text}");
    let (ok, _, err) = mars(&["run", &path]);
    assert!(!ok && err.contains("is missing") && err.contains(".chunk"), "{err}");
}

#[test]
fn non_finite_constants_survive_a_saved_graph() {
    // JSON has no NaN or infinity: they are written as strings and read back
    let x = mt::arange(0.0, 6.0, 1.0).rechunk(4);
    // -inf, -inf, NaN, NaN, inf, inf
    let (neg, nan) = (mt::full(&[6], f64::NEG_INFINITY).rechunk(4), mt::full(&[6], f64::NAN).rechunk(4));
    let t = mt::where_(&x.gt(3.5), &((&x - 2.0) * f64::INFINITY), &mt::where_(&x.lt(1.5), &neg, &nan));
    let path = saved("nonfinite", &t);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"NaN\"") && text.contains("\"inf\"") && text.contains("\"-inf\""), "{text}");
    let g = mars::load_graph(&path).expect("loads");
    assert_eq!(g.roots, vec![t.key()], "the same keys after the round trip");
    let out = tmp("nonfinite").join("out.npy");
    let (ok, _, err) = mars(&["run", &path, "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let got: Vec<f64> = bytes[10 + hlen..].chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let sess = mars::new_session().unwrap();
    let want = t.execute_in(&sess).unwrap().fetch_in(&sess).unwrap().to_f64_vec();
    assert_eq!(got.len(), 6);
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
    assert_eq!((got[0], got[1], got[4], got[5]), (f64::NEG_INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::INFINITY));
    assert!(got[2].is_nan() && got[3].is_nan());
}
