//! Runs a chunk graph on a rayon pool: a chunk is spawned as soon as its last
//! input completes; an intermediate is freed right after its last consumer ran.
//! A kernel error (or panic) stops new work, lets running chunks finish, and
//! comes back naming the op and the chunk — never a hang.

use crate::data::ChunkData;
use crate::error::{ExecError, ExecResult};
use crate::kernels;
use crate::store::Store;
use mars_ir::fast::{FastMap as HashMap, FastSet as HashSet};
use mars_ir::{ChunkGraph, ChunkId, ChunkOp, Key};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
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
    /// two allocations, not two million; `u32`s, as a graph's chunk count is
    /// bounded well below that, halve them).
    input_at: Vec<u32>,
    inputs: Vec<u32>,
    consumer_at: Vec<u32>,
    consumers: Vec<u32>,
    waiting: Vec<AtomicU32>,
    uses_left: Vec<AtomicU32>,
    keep: &'a HashSet<Key>,
    store: &'a Store,
    error: Mutex<Option<ExecError>>,
    /// Set with `error` (read by every chunk, so not behind the lock).
    failed: AtomicBool,
    shapes: Mutex<HashMap<Key, Vec<usize>>>,
    progress: &'a Progress,
}

impl Run<'_> {
    fn inputs_of(&self, i: usize) -> &[u32] {
        &self.inputs[self.input_at[i] as usize..self.input_at[i + 1] as usize]
    }
    fn consumers_of(&self, i: usize) -> &[u32] {
        &self.consumers[self.consumer_at[i] as usize..self.consumer_at[i + 1] as usize]
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
) -> ExecResult<HashMap<Key, Vec<usize>>> {
    let ids: Vec<ChunkId> = graph.topo_order()?;
    let too_big = || ExecError::Other(format!("a graph of {} chunks is too big to run at once", ids.len()));
    if ids.len() >= u32::MAX as usize {
        return Err(too_big());
    }
    let mut pos = vec![u32::MAX; graph.id_bound()];
    for (i, id) in ids.iter().enumerate() {
        pos[id.0 as usize] = i as u32;
    }
    // distinct inputs per node (a node may read one input twice)
    let mut input_at: Vec<u32> = Vec::with_capacity(ids.len() + 1);
    let mut inputs: Vec<u32> = Vec::with_capacity(ids.len() * 2);
    input_at.push(0);
    for &id in &ids {
        let start = inputs.len();
        inputs.extend(graph.node(id).inputs.iter().map(|i| pos[i.0 as usize]));
        inputs[start..].sort_unstable();
        let mut w = start;
        for r in start..inputs.len() {
            if w == start || inputs[r] != inputs[w - 1] {
                inputs[w] = inputs[r];
                w += 1;
            }
        }
        inputs.truncate(w);
        input_at.push(u32::try_from(inputs.len()).map_err(|_| too_big())?);
    }
    // consumers: the transpose of inputs
    let mut consumer_at = vec![0u32; ids.len() + 1];
    for &j in &inputs {
        consumer_at[j as usize + 1] += 1;
    }
    for i in 0..ids.len() {
        consumer_at[i + 1] += consumer_at[i];
    }
    let mut fill = consumer_at.clone();
    let mut consumers = vec![0u32; inputs.len()];
    for i in 0..ids.len() {
        for &j in &inputs[input_at[i] as usize..input_at[i + 1] as usize] {
            consumers[fill[j as usize] as usize] = i as u32;
            fill[j as usize] += 1;
        }
    }
    let run = Run {
        graph,
        waiting: (0..ids.len()).map(|i| AtomicU32::new(input_at[i + 1] - input_at[i])).collect(),
        uses_left: (0..ids.len()).map(|i| AtomicU32::new(consumer_at[i + 1] - consumer_at[i])).collect(),
        ids,
        input_at,
        inputs,
        consumer_at,
        consumers,
        keep,
        store,
        error: Mutex::new(None),
        failed: AtomicBool::new(false),
        shapes: Mutex::new(HashMap::default()),
        progress,
    };
    progress.total.fetch_add(run.ids.len() as u64, Ordering::Relaxed);
    // the chunks with no inputs are handed out one at a time by a feeder task
    // per thread, so a million of them are not a million queued tasks
    let ready: Vec<u32> = (0..run.ids.len() as u32).filter(|&i| run.inputs_of(i as usize).is_empty()).collect();
    let next_ready = AtomicUsize::new(0);
    pool.scope(|s| {
        for _ in 0..pool.current_num_threads().min(ready.len()) {
            let (run, ready, next) = (&run, &ready, &next_ready);
            s.spawn(move |s| feed(run, ready, next, s));
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
        return Err(ExecError::Cancelled(0));
    }
    Ok(run.shapes.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn fail(run: &Run, e: ExecError) {
    let mut slot = run.error.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(e);
    }
    run.failed.store(true, Ordering::Release);
}

fn stopped(run: &Run) -> bool {
    run.progress.cancelled.load(Ordering::Relaxed) || run.failed.load(Ordering::Acquire)
}

/// Take the next ready chunk, queue the feeder again, then run the chunk:
/// its consumers are queued after the feeder, and rayon's LIFO deque runs
/// them first (depth-first, as everywhere in the executor).
fn feed<'s>(run: &'s Run<'s>, ready: &'s [u32], next: &'s AtomicUsize, scope: &rayon::Scope<'s>) {
    let k = next.fetch_add(1, Ordering::Relaxed);
    if k >= ready.len() || stopped(run) {
        return;
    }
    scope.spawn(move |s| feed(run, ready, next, s));
    run_one(run, ready[k] as usize, scope);
}

fn run_one<'s>(run: &'s Run<'s>, i: usize, scope: &rayon::Scope<'s>) {
    let (mut i, mut handed) = (i, None);
    // a chain hands its data on: a chunk whose one consumer reads nothing
    // else runs that consumer next, here, with the value in hand (no store
    // round trip, no task); the loop follows the chain
    while let Some(next) = run_chunk(run, i, handed.take(), scope) {
        (i, handed) = next;
    }
}

/// Run the chunk at position `i` (`handed`: its one input's value, from the
/// chunk before it in a chain). Returns the consumer to run next with this
/// chunk's value, when the chain goes on.
fn run_chunk<'s>(
    run: &'s Run<'s>,
    i: usize,
    handed: Option<Arc<ChunkData>>,
    scope: &rayon::Scope<'s>,
) -> Option<(usize, Option<Arc<ChunkData>>)> {
    if stopped(run) {
        return None;
    }
    let node = run.graph.node(run.ids[i]);
    let chunk_name = || format!("{} index={:?}", node.key.short(), node.index);
    let was_handed = handed.is_some();
    // a `Fetch` only checks its chunk is held: consumers read it (maybe from disk) when they run
    let result: ExecResult<Option<Arc<ChunkData>>> = if matches!(*node.op, ChunkOp::Fetch) {
        match run.store.contains(&node.key) {
            true => Ok(None),
            false => Err(ExecError::Kernel {
                op: "Fetch".into(),
                chunk: chunk_name(),
                msg: "the chunk is no longer held (was its tileable released?)".into(),
            }),
        }
    } else {
        let ins: ExecResult<Option<Vec<Arc<ChunkData>>>> = match handed {
            // (every input edge is the handing chunk: it may be read twice, as in x * x)
            Some(d) => Ok(Some(vec![d; node.inputs.len()])),
            None => node.inputs.iter().map(|&c| run.store.get(&run.graph.node(c).key)).collect(),
        };
        match ins {
            Err(e) => Err(e),
            Ok(None) => Err(ExecError::Kernel {
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
                    Ok(Err(e)) => Err(ExecError::Kernel { op: node.op.to_string(), chunk: chunk_name(), msg: e.0 }),
                    Err(p) => {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .map(|m| format!("panicked: {m}"))
                            .unwrap_or_else(|| "panicked".into());
                        Err(ExecError::Kernel { op: node.op.to_string(), chunk: chunk_name(), msg })
                    }
                }
            }
        }
    };
    let data = match result {
        Ok(d) => d,
        Err(e) => {
            fail(run, e);
            return None;
        }
    };
    let kept = run.keep.contains(&node.key);
    let hand_to = match (&data, run.consumers_of(i)) {
        (Some(_), &[c]) if !kept && run.inputs_of(c as usize) == [i as u32] => Some(c as usize),
        _ => None,
    };
    if let (Some(data), None) = (&data, hand_to) {
        if kept {
            run.shapes.lock().unwrap_or_else(|p| p.into_inner()).insert(node.key, data.shape());
        }
        if let Err(e) = run.store.put(node.key, data.clone()) {
            fail(run, e);
            return None;
        }
    }
    run.progress.done.fetch_add(1, Ordering::Relaxed);
    // inputs whose last consumer this was can go (unless kept or fetched;
    // a handed input was never stored)
    if !was_handed {
        for &j in run.inputs_of(i) {
            if run.uses_left[j as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                let n = run.graph.node(run.ids[j as usize]);
                if !run.keep.contains(&n.key) && !matches!(*n.op, ChunkOp::Fetch) {
                    run.store.discard(&n.key);
                }
            }
        }
    }
    if let Some(c) = hand_to {
        return Some((c, data));
    }
    // rayon's local deque is LIFO, so consumers run next on this thread:
    // depth-first, which frees memory early
    for &c in run.consumers_of(i) {
        if run.waiting[c as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
            scope.spawn(move |s| run_one(run, c as usize, s));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars_ir::{BinaryFn, ChunkNode, DType, Dim, Expr};

    fn node(graph: &mut ChunkGraph, op: ChunkOp, inputs: &[ChunkId], n: usize) -> ChunkId {
        let keys: Vec<Key> = inputs.iter().map(|&i| graph.node(i).key).collect();
        graph.insert(ChunkNode {
            key: Key::of(&op, &keys),
            op: op.into(),
            inputs: inputs.iter().copied().collect(),
            shape: [Dim::Known(n)].into_iter().collect(),
            dtype: Some(DType::Float64),
            index: [0].into_iter().collect(),
        })
    }

    fn map(expr: Expr) -> ChunkOp {
        ChunkOp::Map { expr: expr.into(), dtype: DType::Float64 }
    }

    fn values(store: &Store, key: &Key) -> Vec<f64> {
        let d = store.get(key).unwrap().expect("held");
        match d.tensor() {
            Some(mars_ir::TensorData::F64(a)) => a.iter().copied().collect(),
            other => panic!("not f64: {other:?}"),
        }
    }

    /// Chains hand values on without the store: a chunk read twice by its one
    /// consumer, a kept chunk in the middle of a chain (stored all the same),
    /// and a chunk with two consumers (stored, then freed); what is not kept
    /// is gone afterwards, and every chunk ran once.
    #[test]
    fn chains_hand_values_on_and_keep_only_what_is_kept() {
        let mut g = ChunkGraph::new();
        let a = node(&mut g, ChunkOp::Arange { start: 1.0, step: 1.0, n: 4 }, &[], 4);
        let sq = node(&mut g, map(Expr::binary(BinaryFn::Mul, Expr::Input(0), Expr::Input(0))), &[a, a], 4);
        let kept_mid = node(&mut g, map(Expr::binary(BinaryFn::Add, Expr::Input(0), Expr::Const(1.0))), &[sq], 4);
        let end = node(&mut g, map(Expr::binary(BinaryFn::Mul, Expr::Input(0), Expr::Const(2.0))), &[kept_mid], 4);
        let b = node(&mut g, ChunkOp::Arange { start: 0.0, step: 0.5, n: 4 }, &[], 4);
        let left = node(&mut g, map(Expr::binary(BinaryFn::Sub, Expr::Input(0), Expr::Const(1.0))), &[b], 4);
        let right = node(&mut g, map(Expr::binary(BinaryFn::Add, Expr::Input(0), Expr::Const(1.0))), &[b], 4);
        let both = node(&mut g, map(Expr::binary(BinaryFn::Mul, Expr::Input(0), Expr::Input(1))), &[left, right], 4);
        let key = |id: ChunkId| g.node(id).key;
        let keep: HashSet<Key> = [key(kept_mid), key(end), key(both)].into_iter().collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (store, progress) = (Store::default(), Progress::default());
        let shapes = execute(&pool, &g, &keep, &store, &progress).unwrap();
        assert_eq!(values(&store, &key(kept_mid)), [2.0, 5.0, 10.0, 17.0]);
        assert_eq!(values(&store, &key(end)), [4.0, 10.0, 20.0, 34.0]);
        assert_eq!(values(&store, &key(both)), [-1.0, -0.75, 0.0, 1.25]);
        for k in &keep {
            assert_eq!(shapes[k], vec![4]);
        }
        assert_eq!(store.len(), 3, "only the kept chunks stay held");
        assert_eq!(progress.chunks_run.load(Ordering::Relaxed), 8);
        assert_eq!(progress.done.load(Ordering::Relaxed), 8);
    }
}
