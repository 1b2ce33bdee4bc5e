//! What the `mars` binary does, as functions: load a saved graph, inspect it
//! (explain, tile, passes, stats, JSON, DOT, SVG), run it and write results.

use crate::error::{Error, Result};
use mars_backends::{Backend, ChunkData, LocalBackend, LocalOptions, TileableResult};
use mars_ir::{FrameOp, GraphNode, Key, Meta, Op, TensorOp, TileableGraph, TileableId};
use mars_tiler::{plan, Plan, TileOptions, Tiler};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A tileable graph read from a file, with the keys that were saved.
#[derive(Debug, Clone)]
pub struct SavedGraph {
    /// The graph, validated (keys recomputed, metas re-inferred).
    pub graph: TileableGraph,
    /// The keys `save_graph` was asked for (the sinks when the file names none).
    pub roots: Vec<Key>,
    /// The user data the graph refers to, read from beside it
    /// ([`crate::data_dir`]), each checked against its key and its op.
    pub data: Vec<(Key, Arc<ChunkData>)>,
    /// Data keys the graph refers to with no file beside it (only running needs them).
    pub missing: Vec<PathBuf>,
}

impl SavedGraph {
    /// The roots as node ids of [`SavedGraph::graph`].
    pub fn root_ids(&self) -> Vec<TileableId> {
        self.roots.iter().filter_map(|k| self.graph.get(k)).collect()
    }
}

/// Read a graph written by [`crate::save_graph`].
pub fn load_graph(path: impl AsRef<Path>) -> Result<SavedGraph> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    let (graph, roots) =
        TileableGraph::from_json_with_roots(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let (mut data, mut missing) = (Vec::new(), Vec::new());
    let dir = crate::data_dir(path);
    for id in graph.ids() {
        let node = graph.node(id);
        let key = match &node.op {
            Op::Tensor(TensorOp::Literal { data, .. }) | Op::Frame(FrameOp::FromBatch { data, .. }) => *data,
            _ => continue,
        };
        let file = dir.join(format!("{key}.chunk"));
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(file);
                continue;
            }
            Err(e) => return Err(Error::Io(format!("cannot read {}: {e}", file.display()))),
        };
        let bad = |msg: String| Error::Invalid(format!("{}: {msg}", file.display()));
        let value = mars_backends::codec::decode(&bytes).map_err(bad)?;
        if crate::node::data_key(&value)? != key {
            return Err(bad(format!("the data does not hash to its key {key}")));
        }
        let held = TileableResult::of_data(key, &value)?;
        if held.meta != node.meta {
            return Err(bad(format!("the data is {} but node {} says {}", held.meta, node.key.short(), node.meta)));
        }
        data.push((key, Arc::new(value)));
    }
    Ok(SavedGraph { graph, roots, data, missing })
}

/// What `mars inspect --format` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The indented `explain()` text.
    Text,
    /// The versioned JSON of the graph.
    Json,
    /// Graphviz DOT.
    Dot,
    /// SVG, rendered from the DOT by Graphviz's `dot` program.
    Svg,
}

/// The options of `mars inspect`.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Show the chunk graph (after the chunk passes) instead of the tileable graph.
    pub tile: bool,
    /// Byte budget of one chunk for tiling (default 128 MiB).
    pub chunk_size: Option<usize>,
    /// How to print the graph.
    pub format: Format,
    /// Show the chunk graph after each pass (or that it left the graph unchanged).
    pub passes: bool,
    /// Append op counts, estimated bytes, chunk counts, depth and width.
    pub stats: bool,
}

/// Graphs with more chunks than this draw one box per tileable.
const DOT_CHUNK_LIMIT: usize = 500;

fn tile(saved: &SavedGraph, opts: &InspectOptions) -> Result<Plan> {
    if opts.chunk_size == Some(0) {
        return Err(Error::Invalid("--chunk-size must be positive".into()));
    }
    // `--tile` shows the graph that would run: after the passes
    Ok(plan(saved.graph.clone(), &saved.roots, TileOptions::for_budget(opts.chunk_size, None)?, true)?)
}

/// The text `mars inspect` prints.
pub fn inspect(saved: &SavedGraph, opts: &InspectOptions) -> Result<String> {
    let roots = saved.root_ids();
    let mut out = String::new();
    if !opts.tile && !opts.passes {
        match opts.format {
            Format::Text => out.push_str(&saved.graph.explain(&roots)),
            Format::Json => out.push_str(&saved.graph.to_json_with_roots(&saved.roots)?),
            Format::Dot => out.push_str(&saved.graph.to_dot()),
            Format::Svg => out.push_str(&render_svg(&saved.graph.to_dot())?),
        }
        if opts.stats {
            out.push_str(&stats(saved, None));
        }
        return Ok(out);
    }
    let mut plan = tile(saved, opts)?;
    if let Some(n) = plan.paused {
        let _ = writeln!(out, "tiling paused: {n} chunks must run before the rest can be tiled (lengths are unknown until run; `mars run` executes it)");
    }
    if opts.passes {
        for step in &plan.passes {
            match &step.explain {
                Some(text) => {
                    let _ = write!(out, "== after pass {} ({} chunks)\n{text}", step.name, plan.chunks.len());
                }
                None => {
                    let _ = writeln!(out, "== pass {}: unchanged", step.name);
                }
            }
        }
        return Ok(out);
    }
    match opts.format {
        Format::Text => out.push_str(&plan.chunks.explain(&plan.roots)),
        Format::Json => out.push_str(&plan.chunks.to_json()?),
        Format::Dot | Format::Svg => {
            let dot = if plan.chunks.len() > DOT_CHUNK_LIMIT {
                collapsed_dot(saved, &mut plan.tiler)
            } else {
                plan.chunks.to_dot()
            };
            out.push_str(&if opts.format == Format::Svg { render_svg(&dot)? } else { dot });
        }
    }
    if opts.stats {
        out.push_str(&stats(saved, Some(&mut plan)));
    }
    Ok(out)
}

/// One box per tileable with its chunk count, so huge plans still draw.
fn collapsed_dot(saved: &SavedGraph, tiler: &mut Tiler) -> String {
    saved.graph.to_dot_with(|id, n| match tiler.is_fused(id) {
        true => format!("{} key={}\nfolded into its reduction", n.op, n.key.short()),
        false => format!("{} key={}\n{} chunks", n.op, n.key.short(), tiler.layout(id).map_or(0, |l| l.len())),
    })
}

fn render_svg(dot: &str) -> Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Unsupported(format!(
                "--format svg needs Graphviz's `dot` program ({e}); install it (Debian: apt-get install graphviz) or use --format dot"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(|e| Error::Io(format!("writing to dot: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Io(format!("running dot: {e}")))?;
    if !out.status.success() {
        return Err(Error::Io(format!("dot failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn estimated_bytes(meta: &Meta) -> String {
    match meta {
        Meta::Tensor { shape, dtype } => match mars_ir::shape::known_shape(shape) {
            Some(s) => (s.iter().product::<usize>() * dtype.itemsize()).to_string(),
            None => "?".into(),
        },
        Meta::Frame { schema, nrows } => match nrows.known() {
            Some(n) => {
                (n * schema.fields().iter().map(|f| f.data_type().primitive_width().unwrap_or(16)).sum::<usize>())
                    .to_string()
            }
            None => "?".into(),
        },
    }
}

/// Depth (longest input chain) and widest level of a DAG.
fn depth_width<N: GraphNode>(g: &mars_ir::graph::Dag<N>) -> (usize, usize) {
    let Ok(order) = g.topo_order() else {
        return (0, 0);
    };
    let mut level: HashMap<N::Id, usize> = HashMap::new();
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for id in order {
        let l = g.node(id).inputs().iter().map(|i| level[i] + 1).max().unwrap_or(0);
        level.insert(id, l);
        *counts.entry(l).or_default() += 1;
    }
    (counts.len(), counts.values().copied().max().unwrap_or(0))
}

fn stats(saved: &SavedGraph, tiled: Option<&mut Plan>) -> String {
    let mut out = String::from("\nstats:\n");
    let mut by_op: std::collections::BTreeMap<&str, usize> = Default::default();
    for id in saved.graph.ids() {
        *by_op.entry(saved.graph.node(id).op.name()).or_default() += 1;
    }
    let (depth, width) = depth_width(&saved.graph);
    let _ = writeln!(out, "  tileables: {} (depth {depth}, widest level {width})", saved.graph.len());
    for (k, n) in &by_op {
        let _ = writeln!(out, "    {k}: {n}");
    }
    let order = saved.graph.topo_order().unwrap_or_default();
    let _ =
        writeln!(out, "  per tileable (key, op, estimated bytes{}):", if tiled.is_some() { ", chunks" } else { "" });
    let mut tiled = tiled;
    for id in order {
        let n = saved.graph.node(id);
        let chunks = tiled.as_mut().map(|t| match t.tiler.is_fused(id) {
            true => "folded".to_string(),
            false => t.tiler.layout(id).map_or("?".to_string(), |l| l.len().to_string()),
        });
        let _ = writeln!(
            out,
            "    {} {} {}{}",
            n.key.short(),
            n.op.name(),
            estimated_bytes(&n.meta),
            chunks.map(|c| format!(" {c}")).unwrap_or_default()
        );
    }
    if let Some(t) = tiled {
        let mut by_chunk_op: std::collections::BTreeMap<&str, usize> = Default::default();
        for id in t.chunks.ids() {
            *by_chunk_op.entry(t.chunks.node(id).op.name()).or_default() += 1;
        }
        let (d, w) = depth_width(&t.chunks);
        let _ = writeln!(out, "  chunks: {} (depth {d}, widest level {w})", t.chunks.len());
        for (k, n) in &by_chunk_op {
            let _ = writeln!(out, "    {k}: {n}");
        }
    }
    out
}

/// Execute a saved graph on the local backend; write each root's value under
/// `out` (a file for one root, a folder for several). Returns a summary.
pub fn run(saved: &SavedGraph, out: Option<&Path>) -> Result<String> {
    let backend = LocalBackend::new(LocalOptions::default())?;
    if let Some(file) = saved.missing.first() {
        return Err(Error::Io(format!("the graph's user data {} is missing (save_graph writes it)", file.display())));
    }
    for (key, value) in &saved.data {
        backend.put(*key, value.clone())?;
    }
    let start = Instant::now();
    let task = backend.submit(saved.graph.clone(), saved.roots.clone())?;
    let results =
        crate::session::wait_with_progress(&backend, task, std::env::var("MARS_PROGRESS").map_or(true, |v| v != "0"))?;
    let secs = start.elapsed().as_secs_f64();
    let mut summary = String::new();
    if let (Some(dir), true) = (out, saved.roots.len() > 1) {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    for k in &saved.roots {
        let meta = results.get(k).map(|r| r.meta.clone());
        let frame = matches!(meta, Some(Meta::Frame { .. }));
        let _ = write!(summary, "{} {}", k.short(), meta.map(|m| m.to_string()).unwrap_or_default());
        if let Some(o) = out {
            let path: PathBuf = if saved.roots.len() > 1 {
                o.join(format!("{}.{}", k, if frame { "parquet" } else { "npy" }))
            } else {
                o.to_path_buf()
            };
            if frame {
                write_parquet(&backend, k, &path)?;
            } else {
                write_value(&backend.fetch(k)?, &path)?;
            }
            let _ = write!(summary, " -> {}", path.display());
        }
        summary.push('\n');
    }
    let stats = backend.stats()?;
    let _ = writeln!(summary, "ran {} chunks in {secs:.3} s", stats.chunks_run);
    Ok(summary)
}

/// A frame result as one parquet file, a row group per chunk, fetched one
/// chunk at a time.
fn write_parquet(backend: &LocalBackend, key: &Key, path: &Path) -> Result<()> {
    let io = |e: mars_backends::error::KernelError| Error::Io(e.0);
    let mut sink: Option<mars_backends::io::ParquetSink> = None;
    for i in 0..backend.meta(key)?.chunks.len() {
        let ChunkData::Frame(b) = backend.fetch_chunk(key, i)? else {
            return Err(Error::Invalid(format!("{key}: a frame result with a chunk that is not a batch")));
        };
        if sink.is_none() {
            sink = Some(mars_backends::io::ParquetSink::create(path, b.schema()).map_err(io)?);
        }
        sink.as_mut().map_or(Ok(()), |s| s.write(&b)).map_err(io)?;
    }
    sink.ok_or_else(|| Error::Invalid(format!("{key}: a frame result of no chunks")))?.finish().map_err(io)
}

fn write_value(data: &ChunkData, path: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Io(format!("cannot write {}: {e}", path.display()));
    match data {
        ChunkData::Tensor(t) => std::fs::write(path, mars_ir::npy::to_npy(t)).map_err(io),
        _ => Err(Error::Invalid(format!("{}: only tensors are written as .npy", path.display()))),
    }
}
