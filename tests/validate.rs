//! Graphs from outside can't crash the process: absurd shapes and chunk
//! counts are refused before anything is allocated; a saved graph that parses
//! but lies (keys, metas, parameters, duplicates) is refused on load, naming
//! the node; and thousands of mutated saved graphs end in an error or a
//! correct run, never a panic.

use mars::tensor as mt;
use mars::Tileable;
use mars_backends::{Backend, ChunkData, LocalBackend, LocalOptions};
use mars_ir::{infer, Key, Meta, Op, TileableGraph};
use mars_tiler::TileOptions;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

fn err_of<T: std::fmt::Debug>(r: mars::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn absurd_shapes_are_errors_not_aborts() {
    let e = err_of(mt::ones(&[usize::MAX, 2]).sum().execute().map(|_| ()));
    assert!(e.contains("array is too big") && e.contains("(18446744073709551615, 2)"), "{e}");
    let e = err_of(mt::ones(&[1 << 40, 1 << 40]).execute().map(|_| ()));
    assert!(e.contains("array is too big"), "{e}");
    let e = err_of(mt::zeros(&[1 << 31, 1 << 31, 4]).reshape(&[1 << 62, 2, 2]).execute().map(|_| ()));
    assert!(e.contains("array is too big"), "{e}");
    // big but addressable: refused for its chunk count, before tiling allocates
    let e = err_of(mt::ones(&[1 << 40]).rechunk(1).sum().execute().map(|_| ()));
    assert!(e.contains("1099511627776 chunks") && e.contains("more than the limit"), "{e}");
    let e = err_of(mt::ones(&[1 << 25, 4]).rechunk(&[1, 4]).execute().map(|_| ()));
    assert!(e.contains("more than the limit"), "{e}");
    // a broadcast that multiplies two chunk grids
    let a = mt::ones(&[1 << 14, 1]).rechunk(&[1, 1]);
    let b = mt::ones(&[1, 1 << 14]).rechunk(&[1, 1]);
    let e = err_of((&a + &b).sum().execute().map(|_| ()));
    assert!(e.contains("grid [16384, 16384]") && e.contains("more than the limit"), "{e}");
    // the session still works
    assert_eq!(mt::ones(&[3]).sum().execute().unwrap().fetch().unwrap().to_string(), "array(3.)");
    // the limit is the session's to set
    let small = mars::Session::builder().max_chunks(100).build().unwrap();
    let x = mt::arange(0.0, 1000.0, 1.0).rechunk(5);
    let e = err_of(x.sum().execute_in(&small).map(|_| ()));
    assert!(e.contains("200 chunks (grid [200])") && e.contains("more than the limit of 100"), "{e}");
    assert_eq!(x.rechunk(50).sum().execute_in(&small).unwrap().fetch_in(&small).unwrap().to_string(), "array(499500.)");
}

/// A saved graph of a few ops, as JSON.
fn saved_json(t: &dyn Tileable) -> Value {
    saved(t).0
}

/// A saved graph as JSON, and the user data saved beside it.
fn saved(t: &dyn Tileable) -> (Value, Vec<(Key, std::sync::Arc<ChunkData>)>) {
    let dir = std::env::temp_dir().join(format!("mars-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", t.key()));
    mars::save_graph(&[t], &path).unwrap();
    let data = mars::load_graph(&path).unwrap().data;
    (serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap(), data)
}

fn load(v: &Value) -> Result<TileableGraph, String> {
    TileableGraph::from_json_with_roots(&v.to_string()).map(|(g, _)| g).map_err(|e| e.to_string())
}

/// Recompute keys (and, with `metas`, metas) after an edit, so that the edit
/// reaches the checks behind the key check.
fn fix_up(v: &mut Value, metas: bool) {
    let Some(nodes) = v["nodes"].as_array_mut() else { return };
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut keys: Vec<Key> = Vec::new();
    let mut all_metas: Vec<Option<Meta>> = Vec::new();
    for node in nodes.iter_mut() {
        if !node.is_object() {
            keys.push(Key(0));
            all_metas.push(None);
            continue;
        }
        let op: Option<Op> = serde_json::from_value(node["op"].clone()).ok();
        let inputs: Option<Vec<usize>> = serde_json::from_value(node["inputs"].clone()).ok();
        let in_keys: Option<Vec<Key>> =
            inputs.as_ref().and_then(|ins| ins.iter().map(|&i| keys.get(i).copied()).collect());
        let old: Option<Key> = serde_json::from_value(node["key"].clone()).ok();
        let (Some(op), Some(in_keys), Some(old)) = (op, in_keys, old) else {
            keys.push(Key(0));
            all_metas.push(None);
            continue;
        };
        let key = if matches!(op, Op::Fetch { .. }) { old } else { op.key(&in_keys) };
        renamed.insert(old.to_string(), key.to_string());
        node["key"] = Value::String(key.to_string());
        keys.push(key);
        let in_metas: Option<Vec<&Meta>> =
            inputs.unwrap_or_default().iter().map(|&i| all_metas.get(i).and_then(|m| m.as_ref())).collect();
        let meta = match (&op, in_metas) {
            (Op::Fetch { .. }, _) | (_, None) => None,
            (op, Some(ms)) => infer::infer(op, &ms).ok(),
        };
        if let (true, Some(m)) = (metas, &meta) {
            node["meta"] = serde_json::to_value(m).unwrap();
        }
        all_metas.push(meta.or_else(|| serde_json::from_value(node["meta"].clone()).ok()));
    }
    if let Some(roots) = v.get_mut("roots").and_then(Value::as_array_mut) {
        for r in roots {
            if let Some(new) = r.as_str().and_then(|s| renamed.get(s)) {
                *r = Value::String(new.clone());
            }
        }
    }
}

fn node_mut(v: &mut Value, i: usize) -> &mut Value {
    &mut v["nodes"][i]
}

#[test]
fn graphs_that_lie_are_refused_naming_the_node() {
    let x = mt::random::RandomState::new(1).rand(&[4, 6]).rechunk(&[3, 4]);
    let y = (&x * 2.0).sum_axis(1);
    let base = saved_json(&y);
    assert!(load(&base).is_ok());
    let check = |what: &str, v: Value, want: &[&str]| {
        let e = load(&v).expect_err(what);
        for w in want {
            assert!(e.contains(w), "{what}: {e:?} lacks {w:?}");
        }
    };
    // the reduction's axis out of range (keys fixed up: the parameter check must catch it)
    let mut v = base.clone();
    node_mut(&mut v, 2)["op"]["Tensor"]["Reduce"]["axes"] = serde_json::json!([5]);
    fix_up(&mut v, false);
    check("axis", v, &["node 2", "Reduce sum", "axis 5 is out of bounds for array of dimension 2"]);
    // an expression input out of range
    let mut v = base.clone();
    node_mut(&mut v, 1)["op"]["Tensor"]["Map"]["expr"]["Binary"][1] = serde_json::json!({"Input": 3});
    fix_up(&mut v, false);
    check("input", v, &["node 1", "input #3 of 1"]);
    // a Map with no inputs
    let mut v = base.clone();
    node_mut(&mut v, 1)["inputs"] = serde_json::json!([]);
    fix_up(&mut v, false);
    check("no inputs", v, &["node 1", "needs at least one input"]);
    // the root's dtype tampered to int8 (its key unchanged: keys hash ops, not metas)
    let mut v = base.clone();
    node_mut(&mut v, 2)["meta"]["Tensor"]["dtype"] = "Int8".into();
    check("dtype", v, &["node 2", "the file says shape=(4,) dtype=int8", "give shape=(4,) dtype=float64"]);
    // a tampered shape
    let mut v = base.clone();
    node_mut(&mut v, 0)["meta"]["Tensor"]["shape"][0] = serde_json::json!({"Known": 40});
    check("shape", v, &["node 0", "(40, 6)"]);
    // a duplicated node
    let mut v = base.clone();
    let dup = node_mut(&mut v, 0).clone();
    v["nodes"].as_array_mut().unwrap().insert(1, dup);
    for n in v["nodes"].as_array_mut().unwrap().iter_mut().skip(2) {
        let ins: Vec<u64> = n["inputs"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() + 1).collect();
        n["inputs"] = serde_json::json!(ins);
    }
    check("duplicate", v, &["node 1", "duplicates the key of node 0"]);
    // a tampered key
    let mut v = base.clone();
    node_mut(&mut v, 1)["key"] = "0123456789abcdef0123456789abcdef".into();
    check("key", v, &["node 1", "does not match its op and inputs"]);
    // parameters the API refuses
    let mut v = base.clone();
    node_mut(&mut v, 0)["op"]["Tensor"]["Random"]["dist"] = serde_json::json!({"RandInt": {"low": 5, "high": 5}});
    fix_up(&mut v, true);
    check("randint", v, &["node 0", "low (5) must be below high (5)"]);
    let mut v = base.clone();
    node_mut(&mut v, 0)["op"]["Tensor"]["Random"]["chunks"] = serde_json::json!([0, 1000]);
    fix_up(&mut v, true);
    check("chunks", v, &["node 0", "chunk sizes [0, 1000]"]);
    let mut v = base.clone();
    node_mut(&mut v, 0)["op"]["Tensor"]["Random"]["shape"] = serde_json::json!([u64::MAX, 2]);
    fix_up(&mut v, true);
    check("huge", v, &["node 0", "array is too big"]);
}

/// A small deterministic generator (splitmix64), so a failing case names its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_value(rng: &mut Rng) -> Value {
    let words = [
        "Sum", "ArgMax", "Float64", "Int8", "Bool", "Utf8", "Known", "Unknown", "Uniform", "Normal", "Add", "Div",
        "Input", "Const", "Neg", "Not", "Fetch", "Map", "x",
    ];
    match rng.below(12) {
        0 => Value::from(rng.below(8) as u64),
        1 => Value::from(rng.below(8) as i64 - 4),
        2 => Value::from(1u64 << (20 + rng.below(44))),
        3 => Value::from(u64::MAX),
        4 => Value::from(-1.5e300),
        5 => Value::from(0.5),
        6 => Value::Bool(rng.below(2) == 0),
        7 => Value::String(words[rng.below(words.len())].into()),
        8 => Value::Null,
        9 => serde_json::json!([]),
        10 => serde_json::json!([rng.below(5), rng.below(5)]),
        _ => serde_json::json!({ words[rng.below(words.len())]: rng.below(4) }),
    }
}

/// Every path to a value inside `v` (object keys and array positions).
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                prefix.push(Value::String(k.clone()));
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate().take(8) {
                prefix.push(Value::from(i));
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, p| match p {
        Value::String(k) => v.get_mut(k.as_str()),
        p => v.get_mut(p.as_u64().unwrap_or(0) as usize),
    })
}

/// One random edit: a field changed, an array grown or shrunk, nodes swapped,
/// duplicated or dropped, an op moved to another node, or the roots changed.
fn mutate(v: &mut Value, rng: &mut Rng) {
    let Some(nodes) = v.get_mut("nodes").and_then(Value::as_array_mut).filter(|n| !n.is_empty()) else {
        v["roots"] = random_value(rng);
        return;
    };
    let n = nodes.len();
    match rng.below(10) {
        0..=4 => {
            let node = &mut nodes[rng.below(n)];
            let mut all = Vec::new();
            paths(node, &mut Vec::new(), &mut all);
            let path = all[rng.below(all.len())].clone();
            let Some(target) = at(node, &path) else { return };
            match (rng.below(4), target.as_array_mut()) {
                (0, Some(a)) if !a.is_empty() => {
                    let k = rng.below(a.len());
                    a.remove(k);
                }
                (1, Some(a)) if !a.is_empty() => {
                    let c = a[rng.below(a.len())].clone();
                    a.push(c);
                }
                _ => *target = random_value(rng),
            }
        }
        5 => nodes.swap(rng.below(n), rng.below(n)),
        6 => {
            let c = nodes[rng.below(n)].clone();
            nodes.insert(rng.below(n + 1), c);
        }
        7 => {
            nodes.remove(rng.below(n));
        }
        8 => {
            let op = nodes[rng.below(n)].get("op").cloned().unwrap_or(Value::Null);
            if let Some(node) = nodes[rng.below(n)].as_object_mut() {
                node.insert("op".into(), op);
            }
        }
        _ => {
            let k = nodes[rng.below(n)].get("key").cloned().unwrap_or(Value::Null);
            v["roots"] = serde_json::json!([k]);
        }
    }
}

/// Values compared bit for bit (NaN equals NaN).
fn same(a: &ChunkData, b: &ChunkData) -> bool {
    match (a, b) {
        (ChunkData::Tensor(x), ChunkData::Tensor(y)) => mars_ir::npy::to_npy(x) == mars_ir::npy::to_npy(y),
        (a, b) => a == b,
    }
}

fn small_enough(g: &TileableGraph) -> bool {
    g.ids().all(|id| {
        let shape = g.node(id).meta.shape();
        shape
            .iter()
            .map(|d| d.known().unwrap_or(1))
            .try_fold(1usize, |a, n| a.checked_mul(n))
            .is_some_and(|n| n <= 1 << 16)
    })
}

fn backend() -> LocalBackend {
    let tile = TileOptions { chunk_bytes: 4096, max_chunks: 20_000, ..TileOptions::default() };
    LocalBackend::new(LocalOptions { threads: Some(2), tile, ..LocalOptions::default() }).unwrap()
}

/// Run a validated graph's roots; every result is kept until released.
fn run(b: &LocalBackend, g: &TileableGraph, roots: &[Key]) -> Result<HashMap<Key, ChunkData>, String> {
    let task = b.submit(g.clone(), roots.to_vec()).map_err(|e| e.to_string())?;
    let res = b.wait(task, Some(Duration::from_secs(60))).map_err(|e| e.to_string())?.expect("finishes in time");
    let mut out = HashMap::new();
    for k in res.keys() {
        out.insert(*k, b.fetch(k).map_err(|e| e.to_string())?);
    }
    b.release(&res.keys().copied().collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    Ok(out)
}

fn corpus() -> Vec<Box<dyn Tileable>> {
    let rs = mt::random::RandomState::new(3);
    let x = rs.rand(&[5, 7]).rechunk(&[2, 3]);
    let ints = rs.randint(0, 9, &[7, 4]).rechunk(&[3, 4]);
    let lit = mt::tensor(ndarray::array![[1.0, -2.0, 3.5], [0.0, 4.0, -1.0]]).rechunk(&[1, 2]);
    let mask = x.slice(ndarray::s![.., 0]).gt(0.3);
    let frame = mars::dataframe::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4], vec![5, 6]]).unwrap().rechunk(2);
    vec![
        Box::new(((&x + 1.0) * 2.0).sum_axis(1)),
        Box::new(x.dot(&ints.astype(mt::DType::Float64)).argmax_axis(0)),
        Box::new(x.t().reshape(&[35]).slice(ndarray::s![3..30;4])),
        Box::new(mt::concatenate(&[&lit, &(&lit * -1.0)], 0).std_axis(1)),
        Box::new(x.filter(&mask).mean_axis(0)),
        Box::new(mt::where_(&x.gt(0.5), &x, &mt::arange(0.0, 7.0, 1.0).rechunk(3)).max()),
        Box::new((mt::full(&[4, 3], 2.5).rechunk(&[3, 2]) - mt::zeros(&[3])).exp().var()),
        Box::new(frame.select(&["1"]).unwrap()),
        Box::new(frame.filter(&(&frame.col("0").unwrap() * 2i64).gt(3i64)).unwrap().head(1)),
        Box::new(frame),
    ]
}

#[test]
fn mutated_graphs_give_errors_or_correct_runs_never_panics() {
    let b = backend();
    let cases: u64 = std::env::var("MARS_MUTATION_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for (ci, t) in corpus().iter().enumerate() {
        let (base, data) = saved(t.as_ref());
        let g = load(&base).unwrap_or_else(|e| panic!("corpus graph {ci} does not load: {e}"));
        // the user data the graph refers to is held while its cases run
        for (k, d) in &data {
            b.put(*k, d.clone()).unwrap();
        }
        // the reference: every node's value in the unmutated graph
        let all: Vec<Key> = g.ids().map(|id| g.node(id).key).collect();
        let reference = run(&b, &g, &all).unwrap_or_else(|e| panic!("corpus graph {ci} does not run: {e}"));
        for seed in 0..cases / 8 {
            let mut rng = Rng(seed * 1000 + ci as u64);
            let mut v = base.clone();
            let text = match rng.below(12) {
                0 => {
                    // a truncated file
                    let s = v.to_string();
                    let cut = rng.below(s.len());
                    s[..cut].to_string()
                }
                level => {
                    for _ in 0..1 + rng.below(3) {
                        mutate(&mut v, &mut rng);
                    }
                    if level >= 4 {
                        fix_up(&mut v, level >= 8);
                    }
                    v.to_string()
                }
            };
            let ctx = || format!("corpus graph {ci}, seed {seed}:\n{text}");
            let (g, roots) = match TileableGraph::from_json_with_roots(&text) {
                Err(e) => {
                    assert!(!e.to_string().is_empty(), "{}", ctx());
                    *outcomes.entry("refused on load").or_default() += 1;
                    continue;
                }
                Ok(x) => x,
            };
            if !small_enough(&g) {
                *outcomes.entry("valid, too big to run here").or_default() += 1;
                continue;
            }
            match run(&b, &g, &roots) {
                Err(e) => {
                    assert!(!e.contains("panicked"), "a valid graph made a kernel panic: {e}\n{}", ctx());
                    *outcomes.entry("valid, run failed cleanly").or_default() += 1;
                    if std::env::var("MARS_MUTATION_VERBOSE").is_ok() {
                        eprintln!("{e}\n{}\nheld after: {}", ctx(), b.stats().unwrap().chunks_held);
                    }
                }
                Ok(values) => {
                    for (k, value) in &values {
                        let meta = &g.node(g.get(k).unwrap()).meta;
                        let want = meta.shape();
                        let got = value.shape();
                        assert!(
                            want.len() == got.len()
                                && want.iter().zip(&got).all(|(w, g)| w.known().is_none_or(|w| w == *g)),
                            "result {k} has shape {got:?}, its meta says {meta}\n{}",
                            ctx()
                        );
                        if let Some(r) = reference.get(k) {
                            assert!(same(r, value), "result {k} differs from the unmutated graph's\n{}", ctx());
                        }
                    }
                    *outcomes.entry("valid, ran").or_default() += 1;
                }
            }
        }
        b.release(&data.iter().map(|(k, _)| *k).collect::<Vec<_>>()).unwrap();
    }
    eprintln!("mutation outcomes: {outcomes:?}");
    // the mutations reach every stage
    assert!(outcomes.get("refused on load").copied().unwrap_or(0) > 0, "{outcomes:?}");
    assert!(outcomes.get("valid, ran").copied().unwrap_or(0) > 0, "{outcomes:?}");
    // nothing is left held
    assert_eq!(b.stats().unwrap().chunks_held, 0);
}
