//! Runs a chunk graph on a rayon pool: a chunk is spawned as soon as its last
//! input completes; an intermediate is freed right after its last consumer ran.
//! A kernel error (or panic) stops new work, lets running chunks finish, and
//! comes back naming the op and the chunk — never a hang.

use crate::data::ChunkData;
use crate::error::{BackendError, BackendResult};
use crate::kernels;
use crate::store::Store;
use mars_ir::fast::{FastMap as HashMap, FastSet as HashSet};
use mars_ir::{ChunkGraph, ChunkId, ChunkOp, Key};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Shared counters for progress and stats.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub chunks_run: AtomicU64,
    pub cancelled: AtomicBool,
}

struct Run<'a> {
    graph: &'a ChunkGraph,
    ids: Vec<ChunkId>,
    /// Inputs and consumers of the node at position `i` of `ids`, as positions:
    /// `inputs[input_at[i]..input_at[i + 1]]` (flat, so a million chunks cost
    /// two allocations, not two million).
    input_at: Vec<usize>,
    inputs: Vec<usize>,
    consumer_at: Vec<usize>,
    consumers: Vec<usize>,
    waiting: Vec<AtomicUsize>,
    uses_left: Vec<AtomicUsize>,
    keep: &'a HashSet<Key>,
    store: &'a Store,
    error: Mutex<Option<BackendError>>,
    shapes: Mutex<HashMap<Key, Vec<usize>>>,
    progress: &'a Progress,
}

impl Run<'_> {
    fn inputs_of(&self, i: usize) -> &[usize] {
        &self.inputs[self.input_at[i]..self.input_at[i + 1]]
    }
    fn consumers_of(&self, i: usize) -> &[usize] {
        &self.consumers[self.consumer_at[i]..self.consumer_at[i + 1]]
    }
}

/// Execute every node of `graph`; `keep` chunks stay in the store, `Fetch`
/// nodes must already be there. Returns the shapes of the `keep` chunks produced.
pub fn execute(
    pool: &rayon::ThreadPool,
    graph: &ChunkGraph,
    keep: &HashSet<Key>,
    store: &Store,
    progress: &Progress,
) -> BackendResult<HashMap<Key, Vec<usize>>> {
    let ids: Vec<ChunkId> = graph.topo_order()?;
    let mut pos = vec![u32::MAX; graph.id_bound()];
    for (i, id) in ids.iter().enumerate() {
        pos[id.0 as usize] = i as u32;
    }
    // distinct inputs per node (a node may read one input twice)
    let mut input_at = Vec::with_capacity(ids.len() + 1);
    let mut inputs: Vec<usize> = Vec::with_capacity(ids.len() * 2);
    input_at.push(0);
    for &id in &ids {
        let start = inputs.len();
        inputs.extend(graph.node(id).inputs.iter().map(|i| pos[i.0 as usize] as usize));
        inputs[start..].sort_unstable();
        let mut w = start;
        for r in start..inputs.len() {
            if w == start || inputs[r] != inputs[w - 1] {
                inputs[w] = inputs[r];
                w += 1;
            }
        }
        inputs.truncate(w);
        input_at.push(inputs.len());
    }
    // consumers: the transpose of inputs
    let mut consumer_at = vec![0usize; ids.len() + 1];
    for &j in &inputs {
        consumer_at[j + 1] += 1;
    }
    for i in 0..ids.len() {
        consumer_at[i + 1] += consumer_at[i];
    }
    let mut fill = consumer_at.clone();
    let mut consumers = vec![0usize; inputs.len()];
    for i in 0..ids.len() {
        for &j in &inputs[input_at[i]..input_at[i + 1]] {
            consumers[fill[j]] = i;
            fill[j] += 1;
        }
    }
    let run = Run {
        graph,
        waiting: (0..ids.len()).map(|i| AtomicUsize::new(input_at[i + 1] - input_at[i])).collect(),
        uses_left: (0..ids.len()).map(|i| AtomicUsize::new(consumer_at[i + 1] - consumer_at[i])).collect(),
        ids,
        input_at,
        inputs,
        consumer_at,
        consumers,
        keep,
        store,
        error: Mutex::new(None),
        shapes: Mutex::new(HashMap::default()),
        progress,
    };
    progress.total.fetch_add(run.ids.len() as u64, Ordering::Relaxed);
    let ready: Vec<usize> = (0..run.ids.len()).filter(|&i| run.inputs_of(i).is_empty()).collect();
    pool.scope(|s| {
        for i in ready {
            let run = &run;
            s.spawn(move |s| run_one(run, i, s));
        }
    });
    if let Some(e) = run.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        // what this run stored is of no use now (unless a held result pins it)
        for &id in &run.ids {
            let n = graph.node(id);
            if !matches!(*n.op, ChunkOp::Fetch) {
                store.discard(&n.key);
            }
        }
        return Err(e);
    }
    if progress.cancelled.load(Ordering::Relaxed) {
        return Err(BackendError::Cancelled(0));
    }
    Ok(run.shapes.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn fail(run: &Run, e: BackendError) {
    let mut slot = run.error.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(e);
    }
}

fn stopped(run: &Run) -> bool {
    run.progress.cancelled.load(Ordering::Relaxed) || run.error.lock().map(|e| e.is_some()).unwrap_or(true)
}

fn run_one<'s>(run: &'s Run<'s>, i: usize, scope: &rayon::Scope<'s>) {
    if stopped(run) {
        return;
    }
    let node = run.graph.node(run.ids[i]);
    let chunk_name = || format!("{} index={:?}", node.key.short(), node.index);
    // a `Fetch` only checks its chunk is held: consumers read it (maybe from disk) when they run
    let result: BackendResult<Option<Arc<ChunkData>>> = if matches!(*node.op, ChunkOp::Fetch) {
        match run.store.contains(&node.key) {
            true => Ok(None),
            false => Err(BackendError::Kernel {
                op: "Fetch".into(),
                chunk: chunk_name(),
                msg: "the chunk is no longer held (was its tileable released?)".into(),
            }),
        }
    } else {
        let ins: BackendResult<Option<Vec<Arc<ChunkData>>>> =
            node.inputs.iter().map(|&c| run.store.get(&run.graph.node(c).key)).collect();
        match ins {
            Err(e) => Err(e),
            Ok(None) => Err(BackendError::Kernel {
                op: node.op.to_string(),
                chunk: chunk_name(),
                msg: "an input chunk is missing".into(),
            }),
            Ok(Some(ins)) => {
                let _span = tracing::trace_span!("chunk", op = %node.op, key = %node.key.short()).entered();
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kernels::run(node, &ins))) {
                    Ok(Ok(d)) => {
                        run.progress.chunks_run.fetch_add(1, Ordering::Relaxed);
                        Ok(Some(Arc::new(d)))
                    }
                    Ok(Err(e)) => Err(BackendError::Kernel { op: node.op.to_string(), chunk: chunk_name(), msg: e.0 }),
                    Err(p) => {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .map(|m| format!("panicked: {m}"))
                            .unwrap_or_else(|| "panicked".into());
                        Err(BackendError::Kernel { op: node.op.to_string(), chunk: chunk_name(), msg })
                    }
                }
            }
        }
    };
    let data = match result {
        Ok(d) => d,
        Err(e) => return fail(run, e),
    };
    if let Some(data) = data {
        if run.keep.contains(&node.key) {
            run.shapes.lock().unwrap_or_else(|p| p.into_inner()).insert(node.key, data.shape());
        }
        if let Err(e) = run.store.put(node.key, data) {
            return fail(run, e);
        }
    }
    run.progress.done.fetch_add(1, Ordering::Relaxed);
    // inputs whose last consumer this was can go (unless kept or fetched)
    for &j in run.inputs_of(i) {
        if run.uses_left[j].fetch_sub(1, Ordering::AcqRel) == 1 {
            let n = run.graph.node(run.ids[j]);
            if !run.keep.contains(&n.key) && !matches!(*n.op, ChunkOp::Fetch) {
                run.store.discard(&n.key);
            }
        }
    }
    // rayon's local deque is LIFO, so consumers run next on this thread:
    // depth-first, which frees memory early
    for &c in run.consumers_of(i) {
        if run.waiting[c].fetch_sub(1, Ordering::AcqRel) == 1 {
            scope.spawn(move |s| run_one(run, c, s));
        }
    }
}
