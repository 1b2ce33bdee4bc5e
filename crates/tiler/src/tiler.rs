//! The resumable tiler: tileable graph in, chunk graph and layouts out.

use crate::error::{TileError, TileResult};
use crate::layout::Layout;
use crate::rules::{self, Ctx, Tiled};
use mars_ir::fast::{FastMap as HashMap, FastSet as HashSet};
use mars_ir::{ChunkGraph, ChunkId, DType, Dim, Expr, Key, Meta, Op, TensorOp, TileableGraph, TileableId};

/// Knobs of tiling.
#[derive(Clone, Debug)]
pub struct TileOptions {
    /// Byte budget of one chunk when the user gave no chunk sizes (Mars's
    /// `chunk_store_limit`).
    pub chunk_bytes: usize,
    /// Fan-in of tree reductions.
    pub combine_size: usize,
    /// The most chunks one graph may tile into. A rule refuses, before
    /// allocating anything, a grid that would pass it: a graph that asks for
    /// more is almost surely a mistake (a chunk size of 1 on a huge axis), and
    /// each chunk costs memory in the graph itself.
    pub max_chunks: usize,
    /// Chunks the backend runs at once (its threads). Reads whose chunks
    /// would leave some of them idle in the last round are cut finer.
    pub parallelism: usize,
}

/// Default of [`TileOptions::max_chunks`]: 16 Mi chunks.
pub const DEFAULT_MAX_CHUNKS: usize = 1 << 24;

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions { chunk_bytes: 128 << 20, combine_size: 4, max_chunks: DEFAULT_MAX_CHUNKS, parallelism: 1 }
    }
}

impl TileOptions {
    /// The options every entry point (sessions, `explain_tiled`, the CLI) builds
    /// from what the user said. The chunk budget is `chunk_bytes` when given;
    /// otherwise, under a `memory_limit`, a quarter of the limit (so a few
    /// chunks fit in memory at once) when that is below the 128 MiB default.
    /// A zero `chunk_bytes` or `memory_limit` is an error.
    pub fn for_budget(chunk_bytes: Option<usize>, memory_limit: Option<usize>) -> TileResult<TileOptions> {
        let mut opts = TileOptions::default();
        if let Some(limit) = memory_limit {
            if limit == 0 {
                return Err(TileError::Options("memory_limit must be positive".into()));
            }
            opts.chunk_bytes = opts.chunk_bytes.min((limit / 4).max(1));
        }
        if let Some(b) = chunk_bytes {
            if b == 0 {
                return Err(TileError::Options("chunk_bytes must be positive".into()));
            }
            opts.chunk_bytes = b;
        }
        Ok(opts)
    }
}

/// Where tiling stands after [`Tiler::step`].
#[derive(Clone, Debug, PartialEq)]
pub enum TileStatus {
    /// Every tileable is tiled.
    Done,
    /// These chunks must run (and report their shapes) before tiling can go on.
    NeedMeta(Vec<ChunkId>),
}

/// Tiles a tileable graph into `chunks`, one tileable at a time in
/// topological order, pausing when a rule needs unknown lengths.
#[derive(Debug)]
pub struct Tiler {
    graph: TileableGraph,
    order: Vec<TileableId>,
    next: usize,
    opts: TileOptions,
    /// The chunk graph built so far.
    pub chunks: ChunkGraph,
    layouts: HashMap<TileableId, Layout>,
    /// Element-wise tileables folded into the reduction that consumes them
    /// (see [`Tiler::for_keys`]): they get no chunks of their own.
    folded: HashSet<TileableId>,
    /// The expression a reduction evaluates, by the map it reads (the top of
    /// its folded chain).
    fused: HashMap<TileableId, Fused>,
    stale: bool,
}

/// What a reduction of folded element-wise tileables evaluates in its
/// per-chunk partials.
#[derive(Clone, Debug)]
struct Fused {
    /// The tileable whose chunks the expression reads (`Input(0)`).
    source: TileableId,
    /// The chain's expression over `source`.
    expr: Expr,
    /// Its dtype: the reduction's input dtype.
    dtype: DType,
}

/// Largest expression folded at tiling time (as the chunk fusion pass's limit).
const MAX_FUSED_EXPR: usize = 64;

impl Tiler {
    pub fn new(graph: TileableGraph, opts: TileOptions) -> TileResult<Self> {
        let order = graph.topo_order()?;
        Ok(Tiler {
            graph,
            order,
            next: 0,
            opts,
            chunks: ChunkGraph::new(),
            layouts: HashMap::default(),
            folded: HashSet::default(),
            fused: HashMap::default(),
            stale: false,
        })
    }

    /// A tiler for computing `keep`: element-wise tileables with one input
    /// whose only consumer is a reduction (directly, or through more of them),
    /// and which are not kept, are folded into that reduction: its per-chunk
    /// partials evaluate their expression, so their chunks are never made.
    /// (The chunk fusion pass would fuse them after tiling all the same; doing
    /// it here saves a chunk node per chunk, which counts at millions.)
    /// Reads are first pruned to the columns used and shared
    /// ([`crate::optimize`]).
    pub fn for_keys(graph: TileableGraph, opts: TileOptions, keep: &[Key]) -> TileResult<Self> {
        let graph = crate::optimize::optimize_reads(graph, keep);
        let mut t = Tiler::new(graph, opts)?;
        let kept: Vec<TileableId> = keep.iter().filter_map(|k| t.graph.get(k)).collect();
        let reductions: Vec<TileableId> = t
            .order
            .iter()
            .copied()
            .filter(|&id| matches!(t.graph.node(id).op, Op::Tensor(TensorOp::Reduce { .. })))
            .collect();
        for r in reductions {
            // walk down the chain of maps the reduction reads, composing
            // their expressions, while each is a single-input map read only
            // by the node above it and the expression stays small
            let (top, mut above, mut expr) = (t.graph.node(r).inputs[0], r, Expr::Input(0));
            let mut source = top;
            let mut chain = Vec::new();
            loop {
                let n = t.graph.node(source);
                let Op::Tensor(TensorOp::Map { expr: inner }) = &n.op else { break };
                if n.inputs.len() != 1 || kept.contains(&source) || t.graph.consumers(source) != [above] {
                    break;
                }
                let composed = expr.substitute(&mut |_| inner.clone());
                if composed.size() > MAX_FUSED_EXPR {
                    break;
                }
                let next = n.inputs[0];
                chain.push(source);
                (expr, above, source) = (composed, source, next);
            }
            if chain.is_empty() {
                continue;
            }
            let dtype = t.graph.node(top).meta.dtype().unwrap_or(DType::Float64);
            t.folded.extend(chain);
            t.fused.insert(top, Fused { source, expr, dtype });
        }
        Ok(t)
    }

    /// Whether the tileable was folded into the reduction consuming it (it
    /// has no chunks of its own).
    pub fn is_fused(&self, id: TileableId) -> bool {
        self.folded.contains(&id)
    }

    pub fn graph(&self) -> &TileableGraph {
        &self.graph
    }

    /// Tile until done or blocked on unknown lengths.
    pub fn step(&mut self) -> TileResult<TileStatus> {
        self.refresh();
        while self.next < self.order.len() {
            let id = self.order[self.next];
            if self.folded.contains(&id) {
                self.next += 1;
                continue;
            }
            let _span = tracing::debug_span!("tile", op = %self.graph.node(id).op).entered();
            let node = self.graph.node(id).clone();
            // a reduction of a folded map reads the map's source, with its expression
            let folded = node.inputs.first().and_then(|i| self.fused.get(i));
            let inputs: Vec<Layout> = match folded {
                Some(f) => vec![self.layouts[&f.source].clone()],
                None => node.inputs.iter().map(|i| self.layouts[i].clone()).collect(),
            };
            let mut ctx = Ctx { chunks: &mut self.chunks, opts: &self.opts, last_op: None };
            let tiled = match folded {
                Some(f) => rules::tile_reduce_of_map(&mut ctx, &node, &inputs[0], &f.expr, f.dtype),
                None => rules::tile(&mut ctx, &node, &inputs, &self.graph),
            }
            .map_err(|e| match e {
                TileError::Ir(ir) => {
                    TileError::Rule { op: node.op.to_string(), key: node.key.short(), msg: ir.to_string() }
                }
                other => other,
            })?;
            match tiled {
                Tiled::Done(layout) => {
                    if self.chunks.len() > self.opts.max_chunks {
                        return Err(TileError::Rule {
                            op: node.op.to_string(),
                            key: node.key.short(),
                            msg: format!(
                                "the graph now has {} chunks, more than the limit of {}; use bigger chunks",
                                self.chunks.len(),
                                self.opts.max_chunks
                            ),
                        });
                    }
                    self.layouts.insert(id, layout);
                    self.next += 1;
                }
                Tiled::Need(chunks) => {
                    let mut need: Vec<ChunkId> = chunks.into_iter().filter(|&c| !known(&self.chunks, c)).collect();
                    need.sort();
                    need.dedup();
                    if need.is_empty() {
                        return Err(TileError::Rule {
                            op: node.op.to_string(),
                            key: node.key.short(),
                            msg: "asked for chunk metas that are already known".into(),
                        });
                    }
                    return Ok(TileStatus::NeedMeta(need));
                }
            }
        }
        Ok(TileStatus::Done)
    }

    /// Feed back the real shape of an executed chunk.
    pub fn set_chunk_shape(&mut self, key: Key, shape: &[usize]) {
        if let Some(id) = self.chunks.get(&key) {
            let node = self.chunks.node_mut(id);
            if node.shape.iter().zip(shape).all(|(d, &n)| *d == Dim::Known(n)) && node.shape.len() == shape.len() {
                return; // known already: nothing to refresh
            }
            node.shape = shape.iter().map(|&n| Dim::Known(n)).collect();
        }
        self.stale = true;
    }

    /// Fill unknown lengths of layouts from chunk shapes fed back since.
    fn refresh(&mut self) {
        if std::mem::take(&mut self.stale) {
            for layout in self.layouts.values_mut() {
                if layout.nsplits.iter().flatten().any(|d| !d.is_known()) {
                    layout.refresh(&self.chunks);
                }
            }
        }
    }

    /// The chunk layout of a tiled tileable.
    pub fn layout(&mut self, id: TileableId) -> Option<&Layout> {
        self.refresh();
        self.layouts.get(&id)
    }

    pub fn layout_of(&mut self, key: &Key) -> Option<&Layout> {
        self.refresh();
        self.graph.get(key).and_then(|id| self.layouts.get(&id))
    }

    /// The meta of a tileable with lengths learnt so far.
    pub fn meta_of(&mut self, key: &Key) -> Option<Meta> {
        self.refresh();
        let id = self.graph.get(key)?;
        let mut meta = self.graph.node(id).meta.clone();
        if let (Some(layout), Meta::Tensor { shape, .. }) = (self.layouts.get(&id), &mut meta) {
            *shape = layout.shape();
        }
        if let (Some(layout), Meta::Frame { nrows, .. }) = (self.layouts.get(&id), &mut meta) {
            *nrows = layout.shape()[0];
        }
        Some(meta)
    }
}

fn known(g: &ChunkGraph, c: ChunkId) -> bool {
    g.node(c).shape.iter().all(|d| d.is_known())
}

/// Tile a whole graph that needs no execution to tile (no unknown lengths).
pub fn tile_all(graph: TileableGraph, opts: TileOptions) -> TileResult<Tiler> {
    let mut t = Tiler::new(graph, opts)?;
    match t.step()? {
        TileStatus::Done => Ok(t),
        TileStatus::NeedMeta(c) => Err(TileError::Rule {
            op: "graph".into(),
            key: String::new(),
            msg: format!("{} chunks must execute before tiling can finish (lengths unknown until run)", c.len()),
        }),
    }
}

pub fn fmt_nsplits(nsplits: &[Vec<Dim>]) -> String {
    let axes: Vec<String> = nsplits.iter().map(|s| mars_ir::fmt_shape(s)).collect();
    mars_ir::fmt_shape(&axes)
}
