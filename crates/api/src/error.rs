//! `mars::Error`: one enum for everything the API can report.

use mars_backends::BackendError;
use mars_ir::IrError;
use mars_tiler::TileError;
use thiserror::Error;

/// Everything the `mars` API can report. Errors in building an expression
/// (shapes, axes, dtypes) are kept in the node and returned by `execute`, so
/// operators chain without `?`; `Display` gives a numpy/pandas-style message.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Error {
    /// Invalid operation (shapes, axes, dtypes …), caught when the graph was built.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// Splitting the graph into chunks failed: a tile rule rejected its inputs.
    #[error(transparent)]
    Tile(#[from] TileError),
    /// Running the chunks failed: a kernel error (naming the op and chunk), the
    /// memory limit or spilling, a cancelled task.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Fetching a tileable the session never executed (Mars's ValueError).
    #[error("tileable {key} must be executed first in this session before it can be fetched")]
    NotExecuted {
        /// The tileable's key (32 hex digits).
        key: String,
    },
    /// The session (named by its id) was closed; it cannot execute or fetch.
    #[error("session {0} is closed")]
    Closed(String),
    /// Bad arguments or data given to the API (ragged rows, a zero size …).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// An I/O failure: reading or writing a file (the message names it), or
    /// talking to a helper program.
    #[error("{0}")]
    Io(String),
    /// Not available: not built yet (the cluster backend) or missing from this
    /// machine (Graphviz for `--format svg`).
    #[error("{0}")]
    Unsupported(String),
}

/// `Result<T, mars::Error>`: what every fallible call returns.
pub type Result<T> = std::result::Result<T, Error>;

/// Running chunks failed (reading a chunk's bytes …): as the backend reports it.
impl From<mars_backends::ExecError> for Error {
    fn from(e: mars_backends::ExecError) -> Self {
        Error::Backend(e.into())
    }
}

/// Arrow's errors (building arrays and batches to hand to `md`) read as
/// invalid input, so a caller can use `?` on both.
impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Invalid(e.to_string())
    }
}

/// File errors of the caller's own (creating a folder for `to_parquet` …),
/// so a caller can use `?` on them too.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
