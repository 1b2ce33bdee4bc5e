//! Backend errors: a kernel failure names the op and the chunk.

use mars_ir::IrError;
use mars_tiler::TileError;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum BackendError {
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error("{op} failed on chunk {chunk}: {msg}")]
    Kernel { op: String, chunk: String, msg: String },
    #[error("no result is held for tileable {0}")]
    NotHeld(String),
    #[error("task {0} was cancelled")]
    Cancelled(u64),
    #[error("unknown task {0}")]
    UnknownTask(u64),
    /// Over the memory limit, or spilling failed.
    #[error("memory: {0}")]
    Memory(String),
    #[error("backend error: {0}")]
    Other(String),
}

pub type BackendResult<T> = Result<T, BackendError>;

/// A kernel-local error, given op and chunk context by the executor.
#[derive(Debug, Clone)]
pub struct KernelError(pub String);

impl<E: std::fmt::Display> From<E> for KernelError {
    fn from(e: E) -> Self {
        KernelError(e.to_string())
    }
}
