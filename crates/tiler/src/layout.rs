//! Chunk grids ([`Layout`]) and chunk sizing: plain data and arithmetic (the
//! rechunk step that emits chunk nodes lives with the rules, in `rules::rechunk`).

use crate::error::TileResult;
use mars_ir::shape::checked_size;
pub use mars_ir::shape::{grid_indices, GridIter};
use mars_ir::{ChunkGraph, ChunkId, Dim, IrError};

/// How a tileable is split: per-axis chunk lengths and the chunk ids, row-major
/// over the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub nsplits: Vec<Vec<Dim>>,
    pub chunks: Vec<ChunkId>,
}

impl Layout {
    pub fn grid(&self) -> Vec<usize> {
        self.nsplits.iter().map(|s| s.len()).collect()
    }
    pub fn ndim(&self) -> usize {
        self.nsplits.len()
    }
    pub fn len(&self) -> usize {
        self.chunks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
    pub fn at(&self, idx: &[usize]) -> ChunkId {
        self.chunks[flat_index(idx, &self.grid())]
    }
    /// Known nsplits, or the ids of chunks whose lengths must be learnt first.
    pub fn known(&self) -> Result<Vec<Vec<usize>>, Vec<ChunkId>> {
        let known: Option<Vec<Vec<usize>>> =
            self.nsplits.iter().map(|s| s.iter().map(|d| d.known()).collect()).collect();
        known.ok_or_else(|| self.chunks.clone())
    }
    pub fn shape(&self) -> Vec<Dim> {
        self.nsplits
            .iter()
            .map(|s| s.iter().try_fold(0usize, |acc, d| d.known().map(|n| acc + n)).map_or(Dim::Unknown, Dim::Known))
            .collect()
    }
    /// Refresh unknown lengths from the chunk graph's (now known) chunk shapes.
    pub fn refresh(&mut self, graph: &ChunkGraph) {
        let grid = self.grid();
        for axis in 0..self.ndim() {
            for i in 0..grid[axis] {
                if self.nsplits[axis][i].is_known() {
                    continue;
                }
                let mut idx = vec![0; grid.len()];
                idx[axis] = i;
                // (a chunk the driver pruned after the last stage keeps its length unknown)
                if let Some(d) = graph.try_node(self.at(&idx)).and_then(|n| n.shape.get(axis)) {
                    self.nsplits[axis][i] = *d;
                }
            }
        }
    }
}

pub fn flat_index(idx: &[usize], grid: &[usize]) -> usize {
    idx.iter().zip(grid).fold(0, |acc, (&i, &g)| acc * g + i)
}

/// Refuse a grid whose chunks (times `per_cell`), added to `have`, pass `max`;
/// otherwise the number of chunks it adds.
pub fn check_chunk_count(grid: &[usize], per_cell: usize, have: usize, max: usize) -> TileResult<usize> {
    let adds = checked_size(grid).and_then(|n| n.checked_mul(per_cell.max(1)));
    let total = adds.and_then(|n| n.checked_add(have));
    match (adds, total) {
        (Some(adds), Some(n)) if n <= max => Ok(adds),
        (_, total) => Err(IrError::Invalid(format!(
            "tiling would make {} chunks (grid {grid:?}), more than the limit of {max}; use bigger chunks \
             (rechunk, or a larger chunk budget) or raise the limit (max_chunks)",
            total.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
        ))
        .into()),
    }
}

/// Split `len` into chunks of `size` (the last one shorter); an empty axis is one empty chunk.
pub fn splits(len: usize, size: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    let size = size.max(1);
    let mut v = vec![size; len / size];
    if !len.is_multiple_of(size) {
        v.push(len % size);
    }
    v
}

/// Chunk sizes for a byte budget: split the leading axis first, keeping trailing
/// axes whole (C-order friendly); split further axes only when one row is too big.
pub fn auto_chunk_sizes(shape: &[usize], itemsize: usize, budget: usize) -> Vec<usize> {
    let max_elems = (budget / itemsize.max(1)).max(1);
    let mut sizes = shape.iter().map(|&n| n.max(1)).collect::<Vec<_>>();
    for k in 0..shape.len() {
        let trailing: usize = shape[k + 1..].iter().fold(1usize, |acc, &n| acc.saturating_mul(n.max(1)));
        if trailing <= max_elems {
            sizes[k] = (max_elems / trailing).clamp(1, shape[k].max(1));
            return sizes;
        }
        sizes[k] = 1;
    }
    sizes
}

/// The chunk grid of `shape` cut by `sizes`: the count per axis, without
/// allocating anything.
pub fn grid_for(shape: &[usize], sizes: &[usize]) -> Vec<usize> {
    shape.iter().zip(sizes).map(|(&n, &s)| n.div_ceil(s.max(1)).max(1)).collect()
}

pub fn offsets(splits: &[usize]) -> Vec<usize> {
    let mut acc = 0;
    splits
        .iter()
        .map(|&s| {
            let o = acc;
            acc += s;
            o
        })
        .collect()
}

pub fn to_dims(nsplits: &[Vec<usize>]) -> Vec<Vec<Dim>> {
    nsplits.iter().map(|s| s.iter().map(|&n| Dim::Known(n)).collect()).collect()
}

/// Union of the boundaries of several splittings of the same length.
pub fn refine(all: &[&[usize]]) -> Vec<usize> {
    let mut bounds: Vec<usize> = Vec::new();
    for s in all {
        let mut acc = 0;
        for &n in s.iter() {
            acc += n;
            bounds.push(acc);
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    let mut prev = 0;
    let out: Vec<usize> = bounds
        .into_iter()
        .map(|b| {
            let n = b - prev;
            prev = b;
            n
        })
        .filter(|&n| n > 0)
        .collect();
    if out.is_empty() {
        vec![0]
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing() {
        assert_eq!(splits(10, 4), vec![4, 4, 2]);
        assert_eq!(splits(0, 4), vec![0]);
        // 20000x5000 f64 = 800 MB, 128 MiB budget: row blocks of 3355 rows
        assert_eq!(auto_chunk_sizes(&[20000, 5000], 8, 128 << 20), vec![3355, 5000]);
        assert_eq!(auto_chunk_sizes(&[10, 10], 8, 80), vec![1, 10]);
        assert_eq!(auto_chunk_sizes(&[10, 10], 8, 40), vec![1, 5]);
        assert_eq!(refine(&[&[4, 4, 2], &[3, 3, 3, 1]]), vec![3, 1, 2, 2, 1, 1]);
    }
}
