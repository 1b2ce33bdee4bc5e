//! `mars::Error`: one enum for everything the API can report.

use mars_backends::BackendError;
use mars_ir::IrError;
use mars_tiler::TileError;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum Error {
    /// Invalid operation (shapes, axes, dtypes …), caught when the graph was built.
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Fetching a tileable the session never executed (Mars's ValueError).
    #[error("tileable {key} must be executed first in this session before it can be fetched")]
    NotExecuted { key: String },
    #[error("session {0} is closed")]
    Closed(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, Error>;
