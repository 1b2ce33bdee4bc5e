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

/// A chunk's shape: inline up to 2 axes (no allocation per chunk node).
pub type ChunkShape = smallvec::SmallVec<[Dim; 2]>;
/// A chunk's position in its tileable's grid: inline up to 3 axes.
pub type ChunkIndex = smallvec::SmallVec<[usize; 3]>;

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
    Tensor {
        shape: Vec<Dim>,
        dtype: DType,
    },
    /// A frame: its Arrow schema (a Series is a one-field schema) and its
    /// row count, unknown until run after a filter.
    Frame {
        schema: arrow_schema::SchemaRef,
        nrows: Dim,
    },
}

impl Meta {
    pub fn tensor(shape: Vec<Dim>, dtype: DType) -> Meta {
        Meta::Tensor { shape, dtype }
    }
    pub fn shape(&self) -> Vec<Dim> {
        match self {
            Meta::Tensor { shape, .. } => shape.clone(),
            Meta::Frame { schema, nrows } => vec![*nrows, Dim::Known(schema.fields().len())],
        }
    }
    pub fn ndim(&self) -> usize {
        match self {
            Meta::Tensor { shape, .. } => shape.len(),
            Meta::Frame { .. } => 2,
        }
    }
    /// A frame's schema (`None` for a tensor).
    pub fn schema(&self) -> Option<&arrow_schema::SchemaRef> {
        match self {
            Meta::Frame { schema, .. } => Some(schema),
            Meta::Tensor { .. } => None,
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
            Meta::Frame { schema, nrows } => {
                let cols: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|c| format!("{}:{}", c.name(), crate::frame::type_name(c.data_type())))
                    .collect();
                write!(f, "rows={nrows} schema=[{}]", cols.join(", "))
            }
        }
    }
}

/// The number of elements of `shape`, or `None` when it overflows `usize`.
pub fn checked_size(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n))
}

/// The largest number of bytes one array may take (numpy's limit: `isize::MAX`).
pub const MAX_BYTES: usize = isize::MAX as usize;

/// Refuse a shape whose element count or byte size does not fit in memory
/// addresses, before anything is allocated for it (numpy: "array is too big").
pub fn check_size(shape: &[usize], itemsize: usize) -> crate::IrResult<usize> {
    checked_size(shape)
        .and_then(|n| n.checked_mul(itemsize.max(1)).map(|b| (n, b)))
        .filter(|&(_, bytes)| bytes <= MAX_BYTES)
        .map(|(n, _)| n)
        .ok_or_else(|| {
            crate::IrError::Invalid(format!(
                "array is too big: shape {} of {itemsize}-byte elements is more than {MAX_BYTES} bytes",
                fmt_shape(shape)
            ))
        })
}

/// Every index of a chunk grid, row-major, without allocating one `Vec` per index.
/// Call [`GridIter::next_index`] in a loop; an empty grid axis yields nothing, a
/// 0-d grid yields one empty index.
#[derive(Clone, Debug)]
pub struct GridIter {
    grid: Vec<usize>,
    idx: Vec<usize>,
    left: usize,
    started: bool,
}

impl GridIter {
    pub fn new(grid: &[usize]) -> GridIter {
        let left = checked_size(grid).unwrap_or(usize::MAX);
        GridIter { grid: grid.to_vec(), idx: vec![0; grid.len()], left, started: false }
    }

    /// The next index (a view valid until the next call), or `None` at the end.
    pub fn next_index(&mut self) -> Option<&[usize]> {
        if self.left == 0 {
            return None;
        }
        if std::mem::replace(&mut self.started, true) {
            for a in (0..self.grid.len()).rev() {
                self.idx[a] += 1;
                if self.idx[a] < self.grid[a] {
                    break;
                }
                self.idx[a] = 0;
            }
        }
        self.left -= 1;
        Some(&self.idx)
    }
}

/// Every grid index, row-major, as owned vectors (for small grids and tests;
/// hot paths use [`GridIter`]).
pub fn grid_indices(grid: &[usize]) -> Vec<Vec<usize>> {
    let mut it = GridIter::new(grid);
    let mut out = Vec::with_capacity(checked_size(grid).unwrap_or(0).min(1 << 20));
    while let Some(i) = it.next_index() {
        out.push(i.to_vec());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_walks_row_major() {
        assert_eq!(grid_indices(&[2, 3]), vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1], vec![1, 2]]);
        assert_eq!(grid_indices(&[]), vec![Vec::<usize>::new()]);
        assert!(grid_indices(&[2, 0]).is_empty());
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(check_size(&[3, 4], 8).unwrap(), 12);
        let err = check_size(&[usize::MAX, 2], 8).unwrap_err().to_string();
        assert!(err.contains("array is too big") && err.contains("(18446744073709551615, 2)"), "{err}");
        assert!(check_size(&[1 << 40, 1 << 40], 8).is_err());
        assert!(check_size(&[1 << 61], 8).is_err(), "2^64 bytes");
        assert!(check_size(&[1 << 40], 8).is_ok(), "8 TB is big but lazy tensors may be");
    }
}
