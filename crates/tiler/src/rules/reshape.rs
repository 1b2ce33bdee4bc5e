//! Layout changes: transpose (permute the grid), reshape (across chunk
//! boundaries, via row blocks that line up with both shapes) and rechunk.

use super::rechunk::{nsplits_for, rechunk_to};
use super::{known_or_need, Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{grid_indices, splits, to_dims, Layout};
use mars_ir::shape::dims;
use mars_ir::{ChunkOp, DType, Dim};

pub(super) fn transpose(ctx: &mut Ctx, axes: &[usize], input: &Layout, dtype: DType) -> TileResult<Tiled> {
    let nsplits: Vec<Vec<Dim>> = axes.iter().map(|&a| input.nsplits[a].clone()).collect();
    let grid: Vec<usize> = nsplits.iter().map(|s| s.len()).collect();
    let mut chunks = Vec::with_capacity(input.len());
    for idx in grid_indices(&grid) {
        let mut src = vec![0; axes.len()];
        for (o, &a) in axes.iter().enumerate() {
            src[a] = idx[o];
        }
        let c = input.at(&src);
        let shape: Vec<Dim> = axes.iter().map(|&a| ctx.shape(c)[a]).collect();
        chunks.push(ctx.add(ChunkOp::Transpose { axes: axes.to_vec() }, vec![c], shape, Some(dtype), idx));
    }
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

pub(super) fn reshape(ctx: &mut Ctx, shape: &[usize], input: &Layout, dtype: DType) -> TileResult<Tiled> {
    let known = known_or_need!(input);
    let in_shape: Vec<usize> = known.iter().map(|s| s.iter().sum()).collect();
    if in_shape == shape {
        return Ok(Tiled::Done(input.clone()));
    }
    let size: usize = shape.iter().product();
    // lengths unknown when the graph was built (after a filter) are checked here
    let in_size: usize = in_shape.iter().product();
    if in_size != size {
        return Err(mars_ir::IrError::Reshape { size: in_size, shape: mars_ir::fmt_shape(shape) }.into());
    }
    let in_row: usize = in_shape.iter().skip(1).product();
    let out_row: usize = shape.iter().skip(1).product();
    // row blocks whose element counts are multiples of both row lengths
    let single = in_shape.is_empty() || shape.is_empty() || size == 0;
    // (an lcm past usize means one block: the whole array)
    let block = if single { size.max(1) } else { (in_row / gcd(in_row, out_row)).checked_mul(out_row).unwrap_or(size) };
    let largest = input
        .chunks
        .iter()
        .map(|&c| ctx.shape(c).iter().filter_map(|d| d.known()).product::<usize>())
        .max()
        .unwrap_or(1);
    let elems = if single || block >= size { size.max(1) } else { (largest / block).max(1) * block };
    let (in_target, out_nsplits): (Vec<Vec<usize>>, Vec<Vec<usize>>) = if single || elems >= size {
        (in_shape.iter().map(|&n| vec![n]).collect(), shape.iter().map(|&n| vec![n]).collect())
    } else {
        let mut it: Vec<Vec<usize>> = in_shape.iter().map(|&n| vec![n]).collect();
        ctx.check_grid(&[in_shape[0].div_ceil(elems / in_row)], 2)?;
        it[0] = splits(in_shape[0], elems / in_row);
        let mut ot: Vec<Vec<usize>> = shape.iter().map(|&n| vec![n]).collect();
        ot[0] = splits(shape[0], elems / out_row);
        (it, ot)
    };
    let aligned = rechunk_to(ctx, input, &known, &in_target, dtype)?;
    let grid: Vec<usize> = out_nsplits.iter().map(|s| s.len()).collect();
    let mut chunks = Vec::with_capacity(aligned.len());
    for (i, idx) in grid_indices(&grid).into_iter().enumerate() {
        let cshape: Vec<usize> = idx.iter().enumerate().map(|(a, &j)| out_nsplits[a][j]).collect();
        let src = aligned.chunks[i];
        chunks.push(ctx.add(ChunkOp::Reshape { shape: cshape.clone() }, vec![src], dims(&cshape), Some(dtype), idx));
    }
    Ok(Tiled::Done(Layout { nsplits: to_dims(&out_nsplits), chunks }))
}

pub(super) fn rechunk(ctx: &mut Ctx, sizes: &[usize], input: &Layout, dtype: DType) -> TileResult<Tiled> {
    let known = known_or_need!(input);
    let shape: Vec<usize> = known.iter().map(|s| s.iter().sum()).collect();
    let to = nsplits_for(ctx, &shape, sizes)?;
    Ok(Tiled::Done(rechunk_to(ctx, input, &known, &to, dtype)?))
}
