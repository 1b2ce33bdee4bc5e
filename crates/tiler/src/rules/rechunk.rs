//! The one shared rechunk step: rules call it to line their inputs up (and the
//! `rechunk` op is nothing else). Whole chunks are reused; the others are
//! assembled from pieces.

use super::Ctx;
use crate::error::TileResult;
use crate::layout::{grid_for, grid_indices, offsets, splits, to_dims, Layout};
use mars_ir::op::Piece;
use mars_ir::{AssembleChunk, ChunkOp, DType, IrError};

/// Split `shape` by `sizes`, after checking the grid against the chunk limit.
pub fn nsplits_for(ctx: &mut Ctx, shape: &[usize], sizes: &[usize]) -> TileResult<Vec<Vec<usize>>> {
    ctx.check_grid(&grid_for(shape, sizes), 1)?;
    Ok(shape.iter().zip(sizes).map(|(&n, &s)| splits(n, s)).collect())
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
        let op = ChunkOp::Assemble(Box::new(AssembleChunk { shape: shape.clone(), dtype, pieces }));
        chunks.push(ctx.add(op, inputs, mars_ir::shape::dims(&shape), Some(dtype), idx));
    }
    Ok(Layout { nsplits: to_dims(to), chunks })
}
