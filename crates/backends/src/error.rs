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

pub use mars_exec::KernelError;

/// Running chunks failed: the same error, as a backend reports it.
impl From<mars_exec::ExecError> for BackendError {
    fn from(e: mars_exec::ExecError) -> Self {
        use mars_exec::ExecError as E;
        match e {
            E::Ir(e) => BackendError::Ir(e),
            E::Kernel { op, chunk, msg } => BackendError::Kernel { op, chunk, msg },
            E::Cancelled(t) => BackendError::Cancelled(t),
            E::Memory(m) => BackendError::Memory(m),
            E::Other(m) => BackendError::Other(m),
        }
    }
}
