//! Dimensions that may be unknown until executed (Mars's NaN lengths), and tileable metas.

use crate::dtype::DType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A length along one axis: known, or unknown until the producing chunks ran.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    Known(usize),
    Unknown,
}

impl Dim {
    pub fn known(self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(n),
            Dim::Unknown => None,
        }
    }
    pub fn is_known(self) -> bool {
        matches!(self, Dim::Known(_))
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Known(n)
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// All lengths known?
pub fn known_shape(shape: &[Dim]) -> Option<Vec<usize>> {
    shape.iter().map(|d| d.known()).collect()
}

pub fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&n| Dim::Known(n)).collect()
}

/// numpy's tuple form: `(3, 2)`, `(4,)`, `()`.
pub fn fmt_shape<D: fmt::Display>(shape: &[D]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// What is statically known of a tileable's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Meta {
    Tensor { shape: Vec<Dim>, dtype: DType },
    Frame { columns: Vec<(String, DType)>, nrows: Dim },
}

impl Meta {
    pub fn tensor(shape: Vec<Dim>, dtype: DType) -> Meta {
        Meta::Tensor { shape, dtype }
    }
    pub fn shape(&self) -> Vec<Dim> {
        match self {
            Meta::Tensor { shape, .. } => shape.clone(),
            Meta::Frame { columns, nrows } => vec![*nrows, Dim::Known(columns.len())],
        }
    }
    pub fn ndim(&self) -> usize {
        match self {
            Meta::Tensor { shape, .. } => shape.len(),
            Meta::Frame { .. } => 2,
        }
    }
    pub fn dtype(&self) -> Option<DType> {
        match self {
            Meta::Tensor { dtype, .. } => Some(*dtype),
            Meta::Frame { .. } => None,
        }
    }
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Meta::Tensor { shape, dtype } => write!(f, "shape={} dtype={dtype}", fmt_shape(shape)),
            Meta::Frame { columns, nrows } => {
                let cols: Vec<String> = columns.iter().map(|(n, d)| format!("{n}:{d}")).collect();
                write!(f, "rows={nrows} schema=[{}]", cols.join(", "))
            }
        }
    }
}
