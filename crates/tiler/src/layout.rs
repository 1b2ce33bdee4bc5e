//! Chunk grids ([`Layout`]), chunk sizing, and the shared rechunk step.

use crate::error::TileResult;
use crate::rules::Ctx;
use mars_ir::op::Piece;
use mars_ir::shape::checked_size;
pub use mars_ir::shape::{grid_indices, GridIter};
use mars_ir::{ChunkGraph, ChunkId, ChunkOp, DType, Dim, IrError};

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
                if let Some(d) = graph.node(self.at(&idx)).shape.get(axis) {
                    self.nsplits[axis][i] = *d;
                }
            }
        }
    }
}

pub fn flat_index(idx: &[usize], grid: &[usize]) -> usize {
    idx.iter().zip(grid).fold(0, |acc, (&i, &g)| acc * g + i)
}

/// Refuse a grid whose chunks (times `per_cell`), added to `have`, pass `max`.
pub fn check_chunk_count(grid: &[usize], per_cell: usize, have: usize, max: usize) -> TileResult<()> {
    let total = checked_size(grid).and_then(|n| n.checked_mul(per_cell.max(1))).and_then(|n| n.checked_add(have));
    match total {
        Some(n) if n <= max => Ok(()),
        _ => Err(IrError::Invalid(format!(
            "tiling would make {} chunks (grid {grid:?}), more than the limit of {max}; use bigger chunks \
             (rechunk, or a larger chunk budget) or raise TileOptions::max_chunks",
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

/// Split `shape` by `sizes`, after checking the grid against the chunk limit.
pub fn nsplits_for(ctx: &Ctx, shape: &[usize], sizes: &[usize]) -> TileResult<Vec<Vec<usize>>> {
    ctx.check_grid(&grid_for(shape, sizes), 1)?;
    Ok(shape.iter().zip(sizes).map(|(&n, &s)| splits(n, s)).collect())
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

/// One output chunk along one axis: the pieces `(input chunk, src range, dst offset)`.
fn axis_plan(from: &[usize], to: &[usize]) -> Vec<Vec<(usize, (usize, usize), usize)>> {
    let from_off = offsets(from);
    let mut out = Vec::with_capacity(to.len());
    let mut start = 0;
    for &len in to {
        let end = start + len;
        let mut pieces = Vec::new();
        for (c, (&o, &n)) in from_off.iter().zip(from).enumerate() {
            let (lo, hi) = (start.max(o), end.min(o + n));
            if lo < hi || (len == 0 && n == 0 && o == start) {
                pieces.push((c, (lo - o, hi.max(lo) - o), lo - start));
            }
        }
        if pieces.is_empty() {
            // an empty output chunk still needs an input for its dtype
            pieces.push((0, (0, 0), 0));
        }
        out.push(pieces);
        start = end;
    }
    out
}

/// Rechunk `layout` (known nsplits `from`) to `to`, reusing chunks whose
/// extent does not change and assembling the others from pieces.
pub fn rechunk_to(
    ctx: &mut Ctx,
    layout: &Layout,
    from: &[Vec<usize>],
    to: &[Vec<usize>],
    dtype: DType,
) -> TileResult<Layout> {
    if from == to {
        return Ok(layout.clone());
    }
    for (a, (f, t)) in from.iter().zip(to).enumerate() {
        if f.iter().sum::<usize>() != t.iter().sum::<usize>() {
            return Err(
                IrError::Invalid(format!("rechunk of axis {a}: {f:?} and {t:?} cover different lengths")).into()
            );
        }
    }
    let plans: Vec<_> = from.iter().zip(to).map(|(f, t)| axis_plan(f, t)).collect();
    let out_grid: Vec<usize> = to.iter().map(|t| t.len()).collect();
    let mut chunks = Vec::with_capacity(out_grid.iter().product());
    for idx in grid_indices(&out_grid) {
        let per_axis: Vec<&Vec<(usize, (usize, usize), usize)>> =
            idx.iter().enumerate().map(|(a, &i)| &plans[a][i]).collect();
        let shape: Vec<usize> = idx.iter().enumerate().map(|(a, &i)| to[a][i]).collect();
        // a single piece covering a whole input chunk: reuse it
        if per_axis.iter().all(|p| p.len() == 1) {
            let in_idx: Vec<usize> = per_axis.iter().map(|p| p[0].0).collect();
            let whole = per_axis.iter().enumerate().all(|(a, p)| p[0].1 == (0, from[a][p[0].0]));
            if whole {
                chunks.push(layout.at(&in_idx));
                continue;
            }
        }
        let counts: Vec<usize> = per_axis.iter().map(|p| p.len()).collect();
        let mut inputs = Vec::new();
        let mut pieces = Vec::new();
        for combo in grid_indices(&counts) {
            let in_idx: Vec<usize> = combo.iter().enumerate().map(|(a, &k)| per_axis[a][k].0).collect();
            let src = combo.iter().enumerate().map(|(a, &k)| per_axis[a][k].1).collect();
            let dst = combo.iter().enumerate().map(|(a, &k)| per_axis[a][k].2).collect();
            let id = layout.at(&in_idx);
            let pos = inputs.iter().position(|&x| x == id).unwrap_or_else(|| {
                inputs.push(id);
                inputs.len() - 1
            });
            pieces.push(Piece { input: pos, src, dst });
        }
        let op = ChunkOp::Assemble { shape: shape.clone(), dtype, pieces };
        chunks.push(ctx.add(op, inputs, mars_ir::shape::dims(&shape), Some(dtype), idx));
    }
    Ok(Layout { nsplits: to_dims(to), chunks })
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
