//! Running one stage's chunks on the workers, and remaking chunks lost with
//! a worker from their lineage.
//!
//! A chunk is sent once all its inputs exist, to the worker holding most of
//! its input bytes (ties: the fewest chunks queued). The stage pins what it
//! makes and what it reads until its last consumer ran, so stages of other
//! sessions that share a key (keys are content hashes) cannot free it under
//! it. When a worker is lost, what ran there is sent elsewhere, and every
//! chunk still needed that was held only there — made in this stage, or read
//! from an earlier one — is made again from its lineage (walking back to
//! chunks that still exist). A chunk lost with its worker [`LOSS_RETRIES`]
//! times fails the stage, naming its op.

use crate::proto;
use crate::supervisor::{lock, Outgoing, StageEvent, SupState};
use crate::wire::{self, Task};
use mars_backends::executor::Progress;
use mars_backends::store::ChunkStore;
use mars_backends::{BackendError, BackendResult};
use mars_ir::{ChunkGraph, ChunkIndex, ChunkOp, ChunkShape, DType, FastMap, FastSet, Key};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

/// How often a chunk may be lost with its worker before the stage fails.
pub const LOSS_RETRIES: u32 = 3;
/// How often a chunk may fail to read an input from a peer (the peer died;
/// its loss is noticed within the worker TTL) before the stage fails.
const INPUT_RETRIES: u32 = 50;

/// How a chunk was made: its op and its inputs' lineage (ops only, no data).
/// Kept while a held chunk descends from it, to make a lost chunk again.
#[derive(Debug)]
pub struct Lineage {
    key: Key,
    op: Arc<ChunkOp>,
    shape: ChunkShape,
    dtype: Option<DType>,
    index: ChunkIndex,
    inputs: Vec<Arc<Lineage>>,
}

impl Lineage {
    /// Data a client put: it has no lineage, it cannot be made again.
    pub fn data(key: Key) -> Arc<Lineage> {
        Arc::new(Lineage {
            key,
            op: Arc::new(ChunkOp::Fetch),
            shape: Default::default(),
            dtype: None,
            index: Default::default(),
            inputs: Vec::new(),
        })
    }
}

impl Drop for Lineage {
    /// Unlinks the ancestors one by one: a lineage thousands of ops deep (an
    /// iterative algorithm's) would otherwise drop recursively, one stack
    /// frame per op, and overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.inputs);
        while let Some(l) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(l) {
                stack.append(&mut inner.inputs);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    /// Waiting for inputs, or ready to send.
    Waiting,
    Running(u64),
    Done,
}

#[derive(Debug)]
struct Node {
    key: Key,
    op: Arc<ChunkOp>,
    shape: ChunkShape,
    dtype: Option<DType>,
    index: ChunkIndex,
    /// Input positions, in the op's order (one may repeat).
    inputs: Vec<usize>,
    /// For leaves read from the table, and for chunks once made.
    lineage: Option<Arc<Lineage>>,
}

impl Node {
    fn is_fetch(&self) -> bool {
        matches!(*self.op, ChunkOp::Fetch)
    }
}

/// One stage in flight.
pub(crate) struct Stage<'a> {
    sup: &'a SupState,
    id: u64,
    nodes: Vec<Node>,
    by_key: FastMap<Key, usize>,
    consumers: Vec<Vec<usize>>,
    st: Vec<St>,
    waiting: Vec<usize>,
    uses_left: Vec<usize>,
    attempts: Vec<u32>,
    /// This stage holds a pin on the node's chunk.
    pinned: Vec<bool>,
    keep: &'a FastSet<Key>,
    ready: Vec<usize>,
    retry: Vec<(Instant, usize)>,
    outstanding: usize,
    queued_on: FastMap<u64, Arc<AtomicUsize>>,
    shapes: FastMap<Key, Vec<usize>>,
    progress: &'a Progress,
    /// Workers a launch to failed: removed within their TTL if dead; if
    /// still registered well after, the stage fails.
    suspects: Vec<(Instant, u64, String)>,
}

fn distinct(v: &[usize]) -> Vec<usize> {
    let mut d = v.to_vec();
    d.sort_unstable();
    d.dedup();
    d
}

impl<'a> Stage<'a> {
    /// A stage running every node of `graph` (`Fetch` nodes read held chunks).
    pub fn of_graph(
        sup: &'a SupState,
        graph: &ChunkGraph,
        keep: &'a FastSet<Key>,
        progress: &'a Progress,
    ) -> BackendResult<Stage<'a>> {
        let ids = graph.topo_order()?;
        let mut pos = vec![usize::MAX; graph.id_bound()];
        for (i, id) in ids.iter().enumerate() {
            pos[id.0 as usize] = i;
        }
        let nodes = ids
            .iter()
            .map(|&id| {
                let n = graph.node(id);
                let fetch = matches!(*n.op, ChunkOp::Fetch);
                Node {
                    key: n.key,
                    op: n.op.clone(),
                    shape: n.shape.clone(),
                    dtype: n.dtype,
                    index: n.index.clone(),
                    inputs: n.inputs.iter().map(|c| pos[c.0 as usize]).collect(),
                    lineage: if fetch { sup.chunks.lineage(&n.key) } else { None },
                }
            })
            .collect();
        Stage::new(sup, nodes, keep, progress)
    }

    /// A stage making again the held chunks `keys` (lost with a worker).
    pub fn remake(
        sup: &'a SupState,
        keys: &[Key],
        keep: &'a FastSet<Key>,
        progress: &'a Progress,
    ) -> BackendResult<Stage<'a>> {
        let nodes = keys
            .iter()
            .map(|&k| Node {
                key: k,
                op: Arc::new(ChunkOp::Fetch),
                shape: Default::default(),
                dtype: None,
                index: Default::default(),
                inputs: Vec::new(),
                lineage: sup.chunks.lineage(&k),
            })
            .collect();
        Stage::new(sup, nodes, keep, progress)
    }

    fn new(
        sup: &'a SupState,
        nodes: Vec<Node>,
        keep: &'a FastSet<Key>,
        progress: &'a Progress,
    ) -> BackendResult<Stage<'a>> {
        let n = nodes.len();
        let mut stage = Stage {
            sup,
            id: sup.next_id(),
            by_key: nodes.iter().enumerate().map(|(i, n)| (n.key, i)).collect(),
            nodes,
            consumers: Vec::new(),
            st: vec![St::Waiting; n],
            waiting: vec![0; n],
            uses_left: vec![0; n],
            attempts: vec![0; n],
            pinned: vec![false; n],
            keep,
            ready: Vec::new(),
            retry: Vec::new(),
            outstanding: 0,
            queued_on: FastMap::default(),
            shapes: FastMap::default(),
            progress,
            suspects: Vec::new(),
        };
        progress.total.fetch_add(n as u64, Ordering::Relaxed);
        // leaves: held chunks are pinned for the stage; lost ones are made again
        for i in 0..n {
            if stage.nodes[i].is_fetch() {
                if sup.chunks.contains(&stage.nodes[i].key) && sup.chunks.pin(&stage.nodes[i].key) {
                    stage.pinned[i] = true;
                    stage.st[i] = St::Done;
                    progress.done.fetch_add(1, Ordering::Relaxed);
                } else {
                    stage.expand(i)?;
                }
            }
        }
        stage.recount();
        Ok(stage)
    }

    /// Leaf `i`'s chunk is gone: make it from its lineage (its inputs become
    /// nodes too: held ones as leaves, lost ones expanded in turn).
    fn expand(&mut self, i: usize) -> BackendResult<()> {
        let mut work = vec![i];
        while let Some(i) = work.pop() {
            let key = self.nodes[i].key;
            let Some(l) = self.nodes[i].lineage.clone() else {
                return Err(BackendError::Kernel {
                    op: "Fetch".into(),
                    chunk: key.short(),
                    msg: "the chunk is no longer held (was its tileable released?)".into(),
                });
            };
            if matches!(*l.op, ChunkOp::Fetch) {
                return Err(BackendError::Other(format!(
                    "chunk {} is data a client put, held only on a worker that was lost; it cannot be made again (put it again)",
                    key.short()
                )));
            }
            let mut inputs = Vec::with_capacity(l.inputs.len());
            for li in &l.inputs {
                let j = match self.by_key.get(&li.key) {
                    Some(&j) => j,
                    None => {
                        let j = self.nodes.len();
                        self.nodes.push(Node {
                            key: li.key,
                            op: Arc::new(ChunkOp::Fetch),
                            shape: li.shape.clone(),
                            dtype: li.dtype,
                            index: li.index.clone(),
                            inputs: Vec::new(),
                            lineage: Some(li.clone()),
                        });
                        self.by_key.insert(li.key, j);
                        self.st.push(St::Waiting);
                        self.waiting.push(0);
                        self.uses_left.push(0);
                        self.attempts.push(0);
                        self.pinned.push(false);
                        self.progress.total.fetch_add(1, Ordering::Relaxed);
                        if self.sup.chunks.contains(&li.key) && self.sup.chunks.pin(&li.key) {
                            self.pinned[j] = true;
                            self.st[j] = St::Done;
                            self.progress.done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            work.push(j);
                        }
                        j
                    }
                };
                inputs.push(j);
            }
            let n = &mut self.nodes[i];
            n.op = l.op.clone();
            n.shape = l.shape.clone();
            n.dtype = l.dtype;
            n.index = l.index.clone();
            n.inputs = inputs;
            self.st[i] = St::Waiting;
        }
        Ok(())
    }

    /// Rebuild consumers, waiting counts, uses left and the ready list from
    /// the nodes' states.
    fn recount(&mut self) {
        let n = self.nodes.len();
        self.consumers = vec![Vec::new(); n];
        for i in 0..n {
            for j in distinct(&self.nodes[i].inputs) {
                self.consumers[j].push(i);
            }
        }
        for i in 0..n {
            self.waiting[i] = distinct(&self.nodes[i].inputs).iter().filter(|&&j| self.st[j] != St::Done).count();
            self.uses_left[i] = self.consumers[i].iter().filter(|&&c| self.st[c] != St::Done).count();
        }
        self.ready = (0..n).filter(|&i| self.st[i] == St::Waiting && self.waiting[i] == 0).collect();
        self.ready.reverse();
    }

    /// A worker was lost: what ran there runs elsewhere, and what is still
    /// needed and was held only there is made again.
    fn worker_lost(&mut self, w: u64) -> BackendResult<()> {
        for i in 0..self.nodes.len() {
            if self.st[i] == St::Running(w) {
                self.st[i] = St::Waiting;
                self.outstanding -= 1;
                self.lost_once(i)?;
            }
        }
        // chunks needed by what is not done (or kept), no longer held anywhere
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..self.nodes.len() {
                if self.st[i] != St::Done {
                    continue;
                }
                let key = self.nodes[i].key;
                let needed = self.keep.contains(&key) || self.consumers[i].iter().any(|&c| self.st[c] != St::Done);
                if needed && !self.sup.chunks.contains(&key) {
                    self.progress.done.fetch_sub(1, Ordering::Relaxed);
                    if self.nodes[i].is_fetch() {
                        self.expand(i)?;
                    } else {
                        self.st[i] = St::Waiting;
                        self.lost_once(i)?;
                    }
                    changed = true;
                }
            }
            if changed {
                self.recount();
            }
        }
        self.recount();
        Ok(())
    }

    fn lost_once(&mut self, i: usize) -> BackendResult<()> {
        self.attempts[i] += 1;
        if self.attempts[i] > LOSS_RETRIES {
            return Err(BackendError::Kernel {
                op: self.nodes[i].op.to_string(),
                chunk: self.nodes[i].key.short(),
                msg: format!("lost with its worker {} times; giving up", self.attempts[i]),
            });
        }
        Ok(())
    }

    /// Send what is ready, one launch message per worker.
    fn dispatch(&mut self) -> BackendResult<()> {
        let now = Instant::now();
        let due: Vec<usize> = self.retry.iter().filter(|(t, _)| *t <= now).map(|&(_, i)| i).collect();
        self.retry.retain(|(t, _)| *t > now);
        self.ready.extend(due.into_iter().filter(|&i| self.st[i] == St::Waiting && self.waiting[i] == 0));
        let mut batches: FastMap<u64, Vec<Task>> = FastMap::default();
        while let Some(i) = self.ready.pop() {
            if self.st[i] != St::Waiting {
                continue;
            }
            let in_keys: Vec<Key> = self.nodes[i].inputs.iter().map(|&j| self.nodes[j].key).collect();
            let (w, queued) =
                self.sup.place(&in_keys).ok_or_else(|| BackendError::Other("no worker is alive".into()))?;
            let mut inputs = Vec::with_capacity(in_keys.len());
            let mut missing = false;
            for k in in_keys {
                if self.sup.chunks.held_by(&k, w) {
                    inputs.push((k, String::new()));
                } else if let Some((_, a)) = self.sup.chunks.holder_address(&k) {
                    inputs.push((k, a));
                } else {
                    missing = true;
                }
            }
            if missing {
                // an input was just lost: its worker's removal comes next
                self.retry.push((now + Duration::from_millis(50), i));
                continue;
            }
            queued.fetch_add(1, Ordering::Relaxed);
            self.queued_on.entry(w).or_insert(queued);
            self.st[i] = St::Running(w);
            self.outstanding += 1;
            let n = &self.nodes[i];
            batches.entry(w).or_default().push(Task {
                key: n.key,
                op: n.op.clone(),
                shape: n.shape.clone(),
                dtype: n.dtype,
                index: n.index.clone(),
                inputs,
            });
        }
        for (w, tasks) in batches {
            let outbox = lock(&self.sup.workers).get(&w).map(|e| e.outbox.clone());
            for part in tasks.chunks(4096) {
                let bytes = wire::encode_tasks(part).map_err(BackendError::Other)?;
                let sent =
                    outbox.as_ref().is_some_and(|o| o.send(Outgoing::Launch { stage: self.id, tasks: bytes }).is_ok());
                if !sent {
                    // gone already: its removal reassigns these
                    tracing::debug!("worker {w} went away before its chunks were sent");
                }
            }
        }
        Ok(())
    }

    /// A chunk finished on worker `w`.
    fn done(&mut self, w: u64, done: proto::ChunkDone) -> BackendResult<()> {
        let Ok(key) = wire::key_of(&done.key) else { return Ok(()) };
        let Some(&i) = self.by_key.get(&key) else { return Ok(()) };
        if self.st[i] != St::Running(w) {
            return Ok(());
        }
        self.outstanding -= 1;
        if let Some(q) = self.queued_on.get(&w) {
            q.fetch_sub(1, Ordering::Relaxed);
        }
        if !done.ok {
            let f = done.failure.unwrap_or_default();
            if f.kind == "input" {
                // a peer holding an input is gone or going: try again shortly
                self.attempts[i] += 1;
                if self.attempts[i] > INPUT_RETRIES {
                    return Err(wire::error_of(f));
                }
                self.st[i] = St::Waiting;
                self.retry.push((Instant::now() + Duration::from_millis(100), i));
                return Ok(());
            }
            return Err(wire::error_of(f));
        }
        let shape: Vec<usize> = done.shape.iter().map(|&d| d as usize).collect();
        let node = &self.nodes[i];
        let inputs: Vec<Arc<Lineage>> = node
            .inputs
            .iter()
            .map(|&j| self.nodes[j].lineage.clone().unwrap_or_else(|| Lineage::data(self.nodes[j].key)))
            .collect();
        let lineage = Arc::new(Lineage {
            key,
            op: node.op.clone(),
            shape: node.shape.clone(),
            dtype: node.dtype,
            index: node.index.clone(),
            inputs,
        });
        self.nodes[i].lineage = Some(lineage.clone());
        let chunks = &self.sup.chunks;
        chunks.add_holder(key, w, Some((shape.clone(), done.nbytes as usize, lineage)));
        if !self.pinned[i] {
            self.pinned[i] = chunks.pin(&key);
        }
        for f in &done.fetched {
            if let Ok(k) = wire::key_of(f) {
                if !chunks.add_holder(k, w, None) {
                    chunks.release_on(&[w], k);
                }
            }
        }
        if self.keep.contains(&key) {
            self.shapes.insert(key, shape);
        }
        self.st[i] = St::Done;
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        self.progress.chunks_run.fetch_add(1, Ordering::Relaxed);
        self.sup.count_run();
        for j in distinct(&self.nodes[i].inputs) {
            self.uses_left[j] = self.uses_left[j].saturating_sub(1);
            if self.uses_left[j] == 0 && self.pinned[j] && !self.keep.contains(&self.nodes[j].key) {
                self.pinned[j] = false;
                chunks.unpin(&self.nodes[j].key);
            }
        }
        for c in self.consumers[i].clone() {
            self.waiting[c] = self.waiting[c].saturating_sub(1);
            if self.waiting[c] == 0 && self.st[c] == St::Waiting {
                self.ready.push(c);
            }
        }
        Ok(())
    }

    fn all_done(&self) -> bool {
        self.outstanding == 0
            && self.ready.is_empty()
            && self.retry.is_empty()
            && self.st.iter().all(|&s| s == St::Done)
    }

    /// Run the stage to the end. On success, returns the kept chunks' shapes
    /// and the kept chunks this stage still pins (the caller unpins them once
    /// their results hold them).
    pub fn run(mut self) -> BackendResult<(FastMap<Key, Vec<usize>>, Vec<Key>)> {
        let (tx, rx) = std_mpsc::channel();
        lock(&self.sup.stages).insert(self.id, tx);
        let result = self.drive(&rx);
        lock(&self.sup.stages).remove(&self.id);
        for (w, q) in &self.queued_on {
            let left = self.st.iter().filter(|&&s| s == St::Running(*w)).count();
            q.fetch_sub(left.min(q.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        let mut kept = Vec::new();
        for i in 0..self.nodes.len() {
            if !self.pinned[i] {
                continue;
            }
            let key = self.nodes[i].key;
            if result.is_ok() && self.keep.contains(&key) {
                kept.push(key);
            } else {
                self.sup.chunks.unpin(&key);
            }
        }
        result.map(|()| (std::mem::take(&mut self.shapes), kept))
    }

    fn drive(&mut self, rx: &std_mpsc::Receiver<StageEvent>) -> BackendResult<()> {
        loop {
            self.dispatch()?;
            if self.all_done() {
                return Ok(());
            }
            let wait = self
                .retry
                .iter()
                .map(|(t, _)| t.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match rx.recv_timeout(wait) {
                Ok(StageEvent::Done(w, d)) => self.done(w, d)?,
                Ok(StageEvent::LaunchFailed(w, msg)) => {
                    tracing::debug!("cannot send chunks to worker {w}: {msg}");
                    // a dead worker's removal reassigns them; a live one that refuses fails the stage
                    self.suspects.push((Instant::now(), w, msg));
                }
                Ok(StageEvent::WorkerLost(w)) => self.worker_lost(w)?,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(BackendError::Other("the stage's status channel closed".into()))
                }
            }
            if self.progress.cancelled.load(Ordering::Relaxed) {
                return Err(BackendError::Cancelled(0));
            }
            let grace = self.sup.timing.worker_ttl + Duration::from_secs(1);
            let workers = lock(&self.sup.workers);
            self.suspects.retain(|(_, w, _)| workers.contains_key(w));
            if let Some((_, w, msg)) = self.suspects.iter().find(|(t, _, _)| t.elapsed() > grace) {
                return Err(BackendError::Other(format!("cannot send chunks to worker {w}: {msg}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_very_deep_lineage_drops_without_recursion() {
        let mut l = Lineage::data(Key::of(&0u64, &[]));
        for i in 1..1_000_000u64 {
            l = Arc::new(Lineage {
                key: Key::of(&i, &[]),
                op: Arc::new(ChunkOp::Fetch),
                shape: Default::default(),
                dtype: None,
                index: Default::default(),
                inputs: vec![l],
            });
        }
        // a shared ancestor stays alive for whoever else holds it
        let mid = l.inputs[0].inputs[0].clone();
        drop(l);
        assert_eq!(Arc::strong_count(&mid), 1);
        assert_eq!(mid.inputs.len(), 1);
    }
}
