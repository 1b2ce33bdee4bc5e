//! Creation ops (full, arange, random, literal) and fetches of held results.
//! Chunk sizes come from the op (a `rechunk` folded into it) or the byte budget.

use super::rechunk::nsplits_for;
use super::{Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{auto_chunk_sizes, grid_indices, offsets, to_dims, GridIter, Layout};
use mars_ir::smallvec::SmallVec;
use mars_ir::{
    ChunkInputs, ChunkNode, ChunkOp, ChunkShape, DType, Dim, IrError, Key, Meta, RandomChunk, SliceElem, TensorOp,
};

pub(super) fn tile(ctx: &mut Ctx, op: &TensorOp, dtype: DType) -> TileResult<Tiled> {
    let (shape, chunks): (Vec<usize>, &Option<Vec<usize>>) = match op {
        TensorOp::Full { shape, chunks, .. } | TensorOp::Random { shape, chunks, .. } => (shape.clone(), chunks),
        TensorOp::Arange { n, chunks, .. } => (vec![*n], chunks),
        TensorOp::Literal { shape, chunks, .. } => (shape.clone(), chunks),
        _ => return Err(IrError::Graph(format!("{op:?} is not a creation op")).into()),
    };
    let sizes = chunks.clone().unwrap_or_else(|| auto_chunk_sizes(&shape, dtype.itemsize(), ctx.opts.chunk_bytes));
    let nsplits = nsplits_for(ctx, &shape, &sizes)?;
    let offs: Vec<Vec<usize>> = nsplits.iter().map(|s| offsets(s)).collect();
    let grid: Vec<usize> = nsplits.iter().map(|s| s.len()).collect();
    let mut out = Vec::with_capacity(grid.iter().product());
    // user data is held by the backend under its key: chunks slice it
    let held = match op {
        TensorOp::Literal { data, .. } => Some(ctx.chunks.insert(ChunkNode {
            key: *data,
            op: std::sync::Arc::new(ChunkOp::Fetch),
            inputs: ChunkInputs::new(),
            shape: shape.iter().map(|&n| Dim::Known(n)).collect(),
            dtype: Some(dtype),
            index: shape.iter().map(|_| 0).collect(),
        })),
        _ => None,
    };
    let mut cells = GridIter::new(&grid);
    while let Some(idx) = cells.next_index() {
        let cshape: SmallVec<[usize; 3]> = idx.iter().enumerate().map(|(a, &i)| nsplits[a][i]).collect();
        let offset: SmallVec<[usize; 3]> = idx.iter().enumerate().map(|(a, &i)| offs[a][i]).collect();
        let cop = match op {
            TensorOp::Full { value, dtype, .. } => {
                ChunkOp::Full { shape: cshape.to_vec(), value: *value, dtype: *dtype }
            }
            TensorOp::Arange { start, step, .. } => {
                ChunkOp::Arange { start: start + step * offset[0] as f64, step: *step, n: cshape[0] }
            }
            TensorOp::Random { seed, dist, .. } => ChunkOp::Random(Box::new(RandomChunk {
                seed: *seed,
                dist: *dist,
                global_shape: shape.clone(),
                offset: offset.to_vec(),
                shape: cshape.to_vec(),
            })),
            TensorOp::Literal { .. } => {
                let (Some(held), true) = (held, cshape.as_slice() != shape.as_slice()) else {
                    // one chunk: the held data itself
                    out.extend(held);
                    continue;
                };
                let elems = offset
                    .iter()
                    .zip(&cshape)
                    .map(|(&o, &n)| SliceElem::Slice { start: o as isize, end: Some((o + n) as isize), step: 1 })
                    .collect();
                let cdims: ChunkShape = cshape.iter().map(|&n| Dim::Known(n)).collect();
                out.push(ctx.add(ChunkOp::Slice { elems }, &[held][..], cdims, Some(dtype), idx));
                continue;
            }
            _ => unreachable_op(op)?,
        };
        let cdims: ChunkShape = cshape.iter().map(|&n| Dim::Known(n)).collect();
        out.push(ctx.add(cop, ChunkInputs::new(), cdims, Some(dtype), idx));
    }
    Ok(Tiled::Done(Layout { nsplits: to_dims(&nsplits), chunks: out }))
}

fn unreachable_op(op: &TensorOp) -> TileResult<ChunkOp> {
    Err(IrError::Graph(format!("{op:?} is not a creation op")).into())
}

/// A held result: its chunks are already in the store, under their keys.
pub(super) fn fetch(ctx: &mut Ctx, keys: &[Key], nsplits: &[Vec<Dim>], meta: &Meta) -> TileResult<Tiled> {
    let grid: Vec<usize> = nsplits.iter().map(|s| s.len()).collect();
    if grid.iter().product::<usize>() != keys.len() {
        return Err(IrError::Graph(format!("fetch of {} chunks does not fill a grid of {grid:?}", keys.len())).into());
    }
    let dtype = meta.dtype();
    let fetch_op = std::sync::Arc::new(ChunkOp::Fetch);
    let mut chunks = Vec::with_capacity(keys.len());
    for (idx, key) in grid_indices(&grid).into_iter().zip(keys) {
        let shape = idx.iter().enumerate().map(|(a, &i)| nsplits[a][i]).collect();
        chunks.push(ctx.chunks.insert(ChunkNode {
            key: *key,
            op: fetch_op.clone(),
            inputs: Default::default(),
            shape,
            dtype,
            index: idx.into(),
        }));
    }
    Ok(Tiled::Done(Layout { nsplits: nsplits.to_vec(), chunks }))
}
