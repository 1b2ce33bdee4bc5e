//! Chunk-graph passes and the one manager that runs them.
//!
//! A pass is a struct with `name()` and `run()`, one a file. The manager opens a
//! tracing span per pass and checks invariants after each (every kept chunk still
//! produced once, with the same shape and dtype; the graph acyclic), naming the
//! pass in any error.

mod frame_pipeline;
mod fusion;

pub use frame_pipeline::{FramePipeline, PIPELINE_BATCH_ROWS};
pub use fusion::Fusion;

use crate::error::{TileError, TileResult};
use mars_ir::fast::FastSet as HashSet;
use mars_ir::{ChunkGraph, ChunkShape, DType, Key};

/// What passes may rely on.
#[derive(Debug, Default)]
pub struct PassCtx {
    /// Chunks whose values must be produced (results and chunks other stages need).
    pub keep: HashSet<Key>,
}

pub trait Pass: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Rewrite the graph; `Ok(true)` when something changed.
    fn run(&self, graph: &mut ChunkGraph, ctx: &PassCtx) -> TileResult<bool>;
}

/// The default pass list, in order.
pub fn default_passes() -> Vec<Box<dyn Pass>> {
    vec![
        // element-wise chains (and a trailing reduction) become one chunk op
        Box::new(Fusion),
        // row-wise frame ops over one chunk run batch by batch
        Box::new(FramePipeline::default()),
    ]
}

#[derive(Debug)]
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl Default for PassManager {
    fn default() -> Self {
        PassManager { passes: default_passes() }
    }
}

/// One pass's outcome, for `--passes` style reports.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub name: &'static str,
    pub changed: bool,
    pub nodes_after: usize,
}

impl PassManager {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Self {
        PassManager { passes }
    }

    pub fn run(&self, graph: &mut ChunkGraph, ctx: &PassCtx) -> TileResult<Vec<PassReport>> {
        let mut reports = Vec::with_capacity(self.passes.len());
        for pass in &self.passes {
            let _span = tracing::debug_span!("pass", name = pass.name()).entered();
            let before = snapshot(graph, ctx);
            let changed = pass.run(graph, ctx)?;
            let after = snapshot(graph, ctx);
            if before != after {
                return Err(TileError::Pass {
                    pass: pass.name(),
                    msg: format!("kept chunks changed: {before:?} -> {after:?}"),
                });
            }
            graph.topo_order().map_err(|e| TileError::Pass { pass: pass.name(), msg: e.to_string() })?;
            reports.push(PassReport { name: pass.name(), changed, nodes_after: graph.len() });
        }
        Ok(reports)
    }
}

fn snapshot(graph: &ChunkGraph, ctx: &PassCtx) -> Vec<(Key, Option<(ChunkShape, Option<DType>)>)> {
    let mut v: Vec<_> = ctx
        .keep
        .iter()
        .map(|k| (*k, graph.get(k).map(|id| (graph.node(id).shape.clone(), graph.node(id).dtype))))
        .collect();
    v.sort_by_key(|(k, _)| *k);
    v
}
