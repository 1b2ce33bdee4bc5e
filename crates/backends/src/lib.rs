//! `mars-backends`: executing tileable graphs.
//!
//! - [`Backend`]: the small trait sessions hold as `Arc<dyn Backend>`: submit a
//!   tileable graph with the keys to keep, follow progress, wait, cancel, fetch,
//!   read metas, release.
//! - [`driver`]: the one driver every backend shares: resumable tiling → chunk
//!   passes → run a chunk graph on an executor → feed chunk shapes back → resume.
//! - [`kernels`]: what one chunk op does to chunk data (ndarray / Arrow).
//! - [`executor`]: runs a chunk graph on a rayon pool as inputs complete,
//!   freeing intermediates after their last consumer.
//! - [`local`]: the threaded local backend (the default).
//!
//! This crate knows nothing of the user API.

pub mod data;
pub mod driver;
pub mod error;
pub mod executor;
pub mod kernels;
pub mod local;
pub mod store;

pub use data::ChunkData;
pub use error::{BackendError, BackendResult};
pub use local::{LocalBackend, LocalOptions};
pub use store::SpillStats;

use mars_ir::{Dim, Key, Meta, TileableGraph};
use std::collections::HashMap;
use std::time::Duration;

/// What a backend holds for one executed tileable.
#[derive(Clone, Debug, PartialEq)]
pub struct TileableResult {
    pub key: Key,
    /// Chunk keys, row-major over the chunk grid.
    pub chunks: Vec<Key>,
    pub nsplits: Vec<Vec<Dim>>,
    /// The meta with every length known.
    pub meta: Meta,
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
    /// Results (tileables) currently held.
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
    /// A held tileable's whole value.
    fn fetch(&self, key: &Key) -> BackendResult<ChunkData>;
    fn meta(&self, key: &Key) -> BackendResult<TileableResult>;
    /// Drop one hold on each result; chunks no result needs are freed.
    fn release(&self, keys: &[Key]) -> BackendResult<()>;
    fn stats(&self) -> Stats;
}
