//! The one driver every backend shares: resumable tiling → chunk passes →
//! run the needed chunk subgraph on an executor → feed chunk shapes back →
//! resume, until the kept tileables are computed.

use crate::error::{BackendError, BackendResult};
use crate::store::ChunkStore;
use crate::TileableResult;
use mars_ir::fast::{FastMap as HashMap, FastSet as HashSet};
use mars_ir::{ChunkGraph, ChunkId, ChunkNode, ChunkOp, Dim, Key, TileableGraph};
use mars_tiler::passes::PassCtx;
use mars_tiler::{PassManager, TileOptions, TileStatus, Tiler};

/// Runs a chunk graph whose every node must execute (`Fetch` nodes read held data).
pub trait ChunkExecutor {
    fn execute(&self, graph: &ChunkGraph, keep: &HashSet<Key>) -> BackendResult<HashMap<Key, Vec<usize>>>;
    /// The chunks the backend holds, as the driver sees them.
    fn store(&self) -> &dyn ChunkStore;
}

/// Tile and execute `graph`, returning a result (chunks pinned in the store) per kept key.
pub fn run(
    graph: TileableGraph,
    keep: &[Key],
    opts: &TileOptions,
    passes: &PassManager,
    exec: &dyn ChunkExecutor,
) -> BackendResult<std::collections::HashMap<Key, TileableResult>> {
    for k in keep {
        if graph.get(k).is_none() {
            return Err(BackendError::Other(format!("kept key {k} is not in the graph")));
        }
    }
    let mut tiler = {
        let _s = tracing::debug_span!("tile_init").entered();
        Tiler::for_keys(graph, opts.clone(), keep)?
    };
    let mut stage_pins: Vec<Key> = Vec::new();
    let result = (|| {
        loop {
            let status = {
                let _s = tracing::debug_span!("tile").entered();
                tiler.step()?
            };
            match status {
                TileStatus::Done => break,
                TileStatus::NeedMeta(ids) => {
                    let targets: Vec<Key> = ids.iter().map(|&c| tiler.chunks.node(c).key).collect();
                    let shapes = run_stage(&tiler.chunks, &targets, passes, exec)?;
                    for (k, s) in &shapes {
                        tiler.set_chunk_shape(*k, s);
                    }
                    // every asked-for length must now be known, or tiling would ask forever
                    if let Some(k) = targets.iter().find(|k| !shapes.contains_key(k)) {
                        return Err(BackendError::Other(format!("chunk {k} ran but its shape was not reported")));
                    }
                    for k in targets {
                        if exec.store().pin(&k) {
                            stage_pins.push(k);
                        }
                    }
                }
            }
        }
        // the final stage: every chunk of every kept tileable
        let mut targets = Vec::new();
        for k in keep {
            targets.extend(result_chunks(&mut tiler, k)?.1);
        }
        // nothing is tiled after it, so it runs on the tiler's own graph, cut
        // down in place to what the targets need (no copy of the chunk graph)
        let mut graph = std::mem::take(&mut tiler.chunks);
        prune_to_needed(&mut graph, &targets, exec.store());
        let shapes = run_graph(&mut graph, &targets, passes, exec);
        tiler.chunks = graph;
        for (k, s) in &shapes? {
            tiler.set_chunk_shape(*k, s);
        }
        let mut out = std::collections::HashMap::new();
        for k in keep {
            let (nsplits, chunks) = result_chunks(&mut tiler, k)?;
            let meta = tiler.meta_of(k).ok_or_else(|| BackendError::Other(format!("no meta for {k}")))?;
            for c in &chunks {
                exec.store().pin(c);
            }
            out.insert(*k, TileableResult { key: *k, chunks, nsplits, meta });
        }
        Ok(out)
    })();
    for k in stage_pins {
        exec.store().unpin(&k);
    }
    if result.is_err() {
        // kept chunks of a failed run that no held result pins are dropped
        for k in keep {
            if let Ok((_, chunks)) = result_chunks(&mut tiler, k) {
                for c in chunks {
                    exec.store().discard(&c);
                }
            }
        }
    }
    result
}

/// A kept tileable's nsplits and chunk keys.
fn result_chunks(tiler: &mut Tiler, k: &Key) -> BackendResult<(Vec<Vec<Dim>>, Vec<Key>)> {
    let layout =
        tiler.layout_of(k).cloned().ok_or_else(|| BackendError::Other(format!("tileable {k} was not tiled")))?;
    Ok((layout.nsplits, layout.chunks.iter().map(|&c| tiler.chunks.node(c).key).collect()))
}

/// Cut `graph` down, in place, to what producing `targets` needs: chunks
/// already in the store become `Fetch` leaves, and what no target needs goes.
fn prune_to_needed(graph: &mut ChunkGraph, targets: &[Key], store: &dyn ChunkStore) {
    let ids: Vec<ChunkId> = graph.ids().collect();
    let mut held = vec![false; graph.id_bound()];
    for (id, h) in ids.iter().zip(store.contains_each(&mut ids.iter().map(|&id| graph.node(id).key))) {
        held[id.0 as usize] = h;
    }
    let mut needed = vec![false; graph.id_bound()];
    let mut count = 0;
    let mut stack: Vec<ChunkId> = targets.iter().filter_map(|k| graph.get(k)).collect();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut needed[id.0 as usize], true) {
            continue;
        }
        count += 1;
        if held[id.0 as usize] {
            if !matches!(*graph.node(id).op, ChunkOp::Fetch) {
                graph.node_mut(id).op = ChunkOp::Fetch.into();
                graph.set_inputs(id, Vec::new());
            }
            continue;
        }
        stack.extend(graph.node(id).inputs.iter().copied());
    }
    if count < graph.len() {
        for id in ids.into_iter().filter(|id| !needed[id.0 as usize]) {
            graph.remove(id);
        }
    }
}

/// Build the subgraph producing `targets` (chunks already in the store become
/// `Fetch` leaves), run the passes on it, execute it. The tiler's graph is
/// left as it was, for tiling to go on.
fn run_stage(
    chunks: &ChunkGraph,
    targets: &[Key],
    passes: &PassManager,
    exec: &dyn ChunkExecutor,
) -> BackendResult<HashMap<Key, Vec<usize>>> {
    let store = exec.store();
    let mut sub = ChunkGraph::new();
    let mut done: HashMap<ChunkId, ChunkId> = HashMap::default();
    // iterative post-order over the needed part of the graph
    let mut stack: Vec<(ChunkId, bool)> = targets.iter().filter_map(|k| chunks.get(k)).map(|c| (c, false)).collect();
    while let Some((id, expanded)) = stack.pop() {
        if done.contains_key(&id) {
            continue;
        }
        let node = chunks.node(id);
        if store.contains(&node.key) {
            let fetch = ChunkNode {
                key: node.key,
                op: ChunkOp::Fetch.into(),
                inputs: Default::default(),
                shape: node.shape.clone(),
                dtype: node.dtype,
                index: node.index.clone(),
            };
            done.insert(id, sub.insert(fetch));
            continue;
        }
        if !expanded {
            stack.push((id, true));
            stack.extend(node.inputs.iter().filter(|i| !done.contains_key(i)).map(|&i| (i, false)));
            continue;
        }
        let mut n = node.clone();
        n.inputs = node.inputs.iter().map(|i| done[i]).collect();
        done.insert(id, sub.insert(n));
    }
    run_graph(&mut sub, targets, passes, exec)
}

/// Run the passes on a stage's graph and execute it; targets already held
/// report their stored shapes.
fn run_graph(
    sub: &mut ChunkGraph,
    targets: &[Key],
    passes: &PassManager,
    exec: &dyn ChunkExecutor,
) -> BackendResult<HashMap<Key, Vec<usize>>> {
    let store = exec.store();
    // targets already held (by another result or an earlier stage) report their stored shapes
    let mut held_shapes: HashMap<Key, Vec<usize>> = HashMap::default();
    for k in targets {
        if let Some(s) = store.shape(k) {
            held_shapes.insert(*k, s);
        }
    }
    if sub.is_empty() {
        return Ok(held_shapes);
    }
    let keep: HashSet<Key> = targets.iter().copied().collect();
    {
        let _s = tracing::debug_span!("passes").entered();
        passes.run(sub, &PassCtx { keep: keep.clone() })?;
    }
    if let Some(limit) = store.limit() {
        check_fits(sub, limit)?;
    }
    let _s = tracing::debug_span!("execute", chunks = sub.len()).entered();
    let mut shapes = exec.execute(sub, &keep)?;
    shapes.extend(held_shapes);
    Ok(shapes)
}

/// Refuse, before running anything, a chunk that alone would pass the memory limit.
fn check_fits(graph: &ChunkGraph, limit: usize) -> BackendResult<()> {
    for id in graph.ids() {
        let n = graph.node(id);
        let (Some(dtype), Some(dims)) = (n.dtype, n.shape.iter().map(|d| d.known()).collect::<Option<Vec<_>>>()) else {
            continue;
        };
        let bytes = dims.iter().product::<usize>() * dtype.itemsize();
        if bytes > limit && !matches!(*n.op, ChunkOp::Fetch) {
            return Err(BackendError::Memory(format!(
                "chunk {} ({} of shape {}) needs {bytes} bytes, more than the memory limit of {limit} bytes; \
                 use smaller chunks (rechunk, or a smaller chunk_bytes)",
                n.key.short(),
                n.op,
                mars_ir::fmt_shape(&n.shape),
            )));
        }
    }
    Ok(())
}
