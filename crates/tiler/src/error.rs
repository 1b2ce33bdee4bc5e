//! Tiling errors: they name the op and the tileable.

use mars_ir::IrError;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum TileError {
    #[error(transparent)]
    Ir(#[from] IrError),
    /// A tile rule rejected its inputs.
    #[error("cannot tile {op} (tileable {key}): {msg}")]
    Rule { op: String, key: String, msg: String },
    /// A tiling option the user gave is out of range.
    #[error("invalid option: {0}")]
    Options(String),
    /// A pass broke an invariant; names the pass.
    #[error("pass {pass} broke an invariant: {msg}")]
    Pass { pass: &'static str, msg: String },
}

pub type TileResult<T> = Result<T, TileError>;
