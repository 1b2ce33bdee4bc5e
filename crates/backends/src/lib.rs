//! `mars-backends`: executing tileable graphs.
//!
//! - [`Backend`]: the small trait sessions hold as `Arc<dyn Backend>`: submit a
//!   tileable graph with the keys to keep, follow progress, wait, cancel, fetch,
//!   read metas, release.
//! - [`driver`]: the one driver every backend shares: resumable tiling → chunk
//!   passes → run a chunk graph on an executor → feed chunk shapes back → resume.
//! - [`kernels`], [`executor`], [`store`], [`codec`], [`io`]: what runs
//!   chunks, from the `mars-exec` crate beneath this one (no tiler there:
//!   it is what a worker needs).
//! - [`local`]: the threaded local backend (the default).
//!
//! This crate knows nothing of the user API.

pub mod driver;
pub mod error;
pub mod local;
pub use mars_exec::{codec, data, executor, io, kernels, store, ExecError};

pub use data::ChunkData;
pub use error::{BackendError, BackendResult};
pub use local::{LocalBackend, LocalOptions};
pub use store::SpillStats;

use mars_ir::{Dim, Key, Meta, TileableGraph};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a backend holds for one executed tileable.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TileableResult {
    pub key: Key,
    /// Chunk keys, row-major over the chunk grid.
    pub chunks: Vec<Key>,
    pub nsplits: Vec<Vec<Dim>>,
    /// The meta with every length known.
    pub meta: Meta,
}

impl TileableResult {
    /// User data held as a result of one chunk under `key` (see [`Backend::put`]).
    pub fn of_data(key: Key, data: &ChunkData) -> BackendResult<TileableResult> {
        let (nsplits, meta) = match data {
            ChunkData::Tensor(t) => {
                let shape: Vec<Dim> = t.shape().iter().map(|&n| Dim::Known(n)).collect();
                (shape.iter().map(|&d| vec![d]).collect(), Meta::tensor(shape, t.dtype()))
            }
            ChunkData::Frame(b) => {
                let meta = mars_ir::frame::batch_meta(b)?;
                (vec![vec![Dim::Known(b.num_rows())], vec![Dim::Known(b.num_columns())]], meta)
            }
            ChunkData::Partial { .. } | ChunkData::Parts(_) | ChunkData::Table(_) => {
                return Err(BackendError::Other(format!("{key}: only arrays and batches can be put")));
            }
        };
        Ok(TileableResult { key, chunks: vec![key], nsplits, meta })
    }
}

/// Every user-data reference of `graph` (`Literal`, `FromBatch`) names data
/// the backend holds (`held` gives its meta), of the shape and type the node
/// says: the graph cannot check it (the data is not in it), so the backend
/// holding the data does, before anything runs.
pub fn check_data_refs(graph: &TileableGraph, held: impl Fn(&Key) -> Option<Meta>) -> BackendResult<()> {
    use mars_ir::{FrameOp, Op, TensorOp};
    for id in graph.ids() {
        let node = graph.node(id);
        let data = match &node.op {
            Op::Tensor(TensorOp::Literal { data, .. }) | Op::Frame(FrameOp::FromBatch { data, .. }) => data,
            _ => continue,
        };
        let at = |msg: String| BackendError::Other(format!("node {} ({}): {msg}", node.key.short(), node.op));
        match held(data) {
            None => return Err(at(format!("its data {data} is not held here (put it first)"))),
            Some(meta) if meta != node.meta => {
                return Err(at(format!("its data {} is {meta}, not {}", data.short(), node.meta)))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A submitted graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

/// Counters a backend reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Chunk kernels run since the backend started.
    pub chunks_run: u64,
    /// Chunks currently in the store.
    pub chunks_held: usize,
    /// Bytes of those chunks in memory (spilled ones not counted).
    pub bytes_held: usize,
    /// What was spilled to disk under the memory limit.
    pub spill: SpillStats,
    /// Results currently held: executed tileables and user data put by sessions.
    pub results_held: usize,
}

pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Start executing `graph`, keeping the results of `keep` (tileable keys).
    fn submit(&self, graph: TileableGraph, keep: Vec<Key>) -> BackendResult<TaskId>;
    /// Fraction of the task's chunks run so far (0..=1).
    fn progress(&self, task: TaskId) -> BackendResult<f64>;
    /// Wait for the task; `None` when `timeout` passed first.
    fn wait(&self, task: TaskId, timeout: Option<Duration>) -> BackendResult<Option<HashMap<Key, TileableResult>>>;
    fn cancel(&self, task: TaskId) -> BackendResult<()>;
    /// Hold user data (an array or a record batch) under `key`, as a result
    /// of one chunk: graphs refer to it by key (`TensorOp::Literal`,
    /// `FrameOp::FromBatch`), never carry its bytes. Putting a key already
    /// held adds a hold; [`release`](Backend::release) drops one.
    fn put(&self, key: Key, data: Arc<ChunkData>) -> BackendResult<()>;
    /// A held tileable's whole value.
    fn fetch(&self, key: &Key) -> BackendResult<ChunkData>;
    /// One chunk of a held tileable, by its position in the chunk grid
    /// (row-major, as [`TileableResult::chunks`]): a client reads a big
    /// result chunk by chunk, so it never sits whole anywhere but at the client.
    fn fetch_chunk(&self, key: &Key, index: usize) -> BackendResult<ChunkData>;
    fn meta(&self, key: &Key) -> BackendResult<TileableResult>;
    /// Drop one hold on each result; chunks no result needs are freed.
    fn release(&self, keys: &[Key]) -> BackendResult<()>;
    /// Counters; fallible, as a remote backend's are asked over the network.
    fn stats(&self) -> BackendResult<Stats>;
}
