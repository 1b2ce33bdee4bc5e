//! What running chunks can fail with: a kernel failure names the op and
//! the chunk.

use mars_ir::IrError;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum ExecError {
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error("{op} failed on chunk {chunk}: {msg}")]
    Kernel { op: String, chunk: String, msg: String },
    #[error("task {0} was cancelled")]
    Cancelled(u64),
    /// Over the memory limit, or spilling failed.
    #[error("memory: {0}")]
    Memory(String),
    #[error("backend error: {0}")]
    Other(String),
}

pub type ExecResult<T> = Result<T, ExecError>;

/// A kernel-local error, given op and chunk context by the executor.
#[derive(Debug, Clone)]
pub struct KernelError(pub String);

impl<E: std::fmt::Display> From<E> for KernelError {
    fn from(e: E) -> Self {
        KernelError(e.to_string())
    }
}
