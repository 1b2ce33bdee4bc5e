//! Errors raised while building or validating IR: they name shapes, axes and dtypes.

use thiserror::Error;

/// An invalid operation caught at graph construction (shape inference) or while
/// reading a graph.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum IrError {
    /// numpy's wording, so users recognise it.
    #[error("operands could not be broadcast together with shapes {0}")]
    Broadcast(String),
    #[error("shapes {lhs} and {rhs} not aligned: {lhs_dim} (dim {lhs_axis}) != {rhs_dim} (dim {rhs_axis})")]
    DotMismatch { lhs: String, rhs: String, lhs_dim: usize, lhs_axis: usize, rhs_dim: usize, rhs_axis: usize },
    #[error("cannot reshape array of size {size} into shape {shape}")]
    Reshape { size: usize, shape: String },
    #[error("axis {axis} is out of bounds for array of dimension {ndim}")]
    Axis { axis: usize, ndim: usize },
    #[error("{0}")]
    Slice(String),
    #[error("dtype error: {0}")]
    DType(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("malformed graph: {0}")]
    Graph(String),
    #[error("serialisation error: {0}")]
    Serde(String),
}

pub type IrResult<T> = Result<T, IrError>;
