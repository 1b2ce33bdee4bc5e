//! Tree reductions: a `ReduceMap` per chunk (a partial that keeps reduced axes
//! as length 1), then rounds of `ReduceCombine` with fan-in `combine_size` per
//! reduced axis, the last of which finalises (removing the reduced axes).
//! Mean/var/std partials carry (count, mean, M2), merged with Chan's formula.
//! A reduction of a folded element-wise tileable evaluates its expression in
//! the partials (`ReduceMap`'s `expr`), over the source's chunks.

use super::{known_or_need, Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{offsets, GridIter, Layout};
use mars_ir::smallvec::SmallVec;
use mars_ir::{ChunkId, ChunkIndex, ChunkInputs, ChunkOp, ChunkShape, DType, Dim, ReduceFn, ReduceMapChunk};
use std::sync::Arc;

pub(super) fn reduce(
    ctx: &mut Ctx,
    func: ReduceFn,
    axes: &[usize],
    input: &Layout,
    expr: Option<&mars_ir::Expr>,
    in_dtype: DType,
    out_dtype: DType,
) -> TileResult<Tiled> {
    let mut axes = axes.to_vec();
    axes.sort_unstable();
    axes.dedup();
    // arg-reductions report global positions, so they need chunk offsets
    let offs: Option<Vec<Vec<usize>>> = if func.is_arg() {
        let k = known_or_need!(input);
        Some(k.iter().map(|s| offsets(s)).collect())
    } else {
        None
    };
    let global_shape: Vec<usize> =
        if func.is_arg() { input.shape().iter().filter_map(|d| d.known()).collect() } else { vec![] };
    let grid = input.grid();
    let ndim = grid.len();
    let partial_shape = |shape: &[Dim]| -> ChunkShape {
        shape.iter().enumerate().map(|(a, &d)| if axes.contains(&a) { Dim::Known(1) } else { d }).collect()
    };
    let make = |offset: Vec<usize>| {
        Arc::new(ChunkOp::ReduceMap(Box::new(ReduceMapChunk {
            func,
            axes: axes.clone(),
            expr: expr.cloned(),
            in_dtype,
            offset,
            global_shape: global_shape.clone(),
        })))
    };
    // one op for every chunk, but for arg-reductions, whose chunks carry their offsets
    let shared = make(vec![]);
    let cs = ctx.opts.combine_size.max(2);
    // room in the key index for every chunk this adds: a partial per input
    // chunk, and the combine levels
    let mut adding = input.len();
    let mut g = grid.clone();
    while axes.iter().any(|&a| g[a] > 1) {
        g = g.iter().enumerate().map(|(a, &n)| if axes.contains(&a) { n.div_ceil(cs) } else { n }).collect();
        adding += g.iter().product::<usize>();
    }
    ctx.reserve(adding + 1);
    // map stage (no allocation per chunk)
    let mut level: Vec<ChunkId> = Vec::with_capacity(input.len());
    let mut cells = GridIter::new(&grid);
    for &c in &input.chunks {
        let Some(idx) = cells.next_index() else { break };
        let op = match &offs {
            None => shared.clone(),
            Some(o) => make(idx.iter().enumerate().map(|(a, &i)| o[a][i]).collect()),
        };
        let shape = partial_shape(ctx.shape(c));
        level.push(ctx.add(op, &[c][..], shape, None, idx));
    }
    let mut cur_grid = grid.clone();
    loop {
        let next_grid: Vec<usize> =
            cur_grid.iter().enumerate().map(|(a, &g)| if axes.contains(&a) { g.div_ceil(cs) } else { g }).collect();
        let finalize = axes.iter().all(|&a| next_grid[a] == 1);
        let mut next = Vec::with_capacity(next_grid.iter().product());
        let op = Arc::new(ChunkOp::ReduceCombine { func, axes: axes.clone(), finalize, out_dtype });
        let mut cells = GridIter::new(&next_grid);
        while let Some(idx) = cells.next_index() {
            // the block of the current level this output combines
            let ranges: SmallVec<[(usize, usize); 4]> = idx
                .iter()
                .enumerate()
                .map(|(a, &i)| if axes.contains(&a) { (i * cs, ((i + 1) * cs).min(cur_grid[a])) } else { (i, i + 1) })
                .collect();
            let counts: SmallVec<[usize; 4]> = ranges.iter().map(|(s, e)| e - s).collect();
            let mut ins = ChunkInputs::new();
            let mut block = GridIter::new(&counts);
            while let Some(off) = block.next_index() {
                let src: SmallVec<[usize; 4]> = off.iter().zip(&ranges).map(|(o, r)| o + r.0).collect();
                ins.push(level[crate::layout::flat_index(&src, &cur_grid)]);
            }
            let first_shape: ChunkShape = ctx.shape(ins[0]).into();
            let (shape, out_idx, dtype): (ChunkShape, ChunkIndex, _) = if finalize {
                let s = (0..ndim).filter(|a| !axes.contains(a)).map(|a| first_shape[a]).collect();
                let i = (0..ndim).filter(|a| !axes.contains(a)).map(|a| idx[a]).collect();
                (s, i, Some(out_dtype))
            } else {
                (first_shape, idx.into(), None)
            };
            next.push(ctx.add(op.clone(), ins, shape, dtype, out_idx));
        }
        level = next;
        cur_grid = next_grid;
        if finalize {
            break;
        }
    }
    let nsplits: Vec<Vec<Dim>> = (0..ndim).filter(|a| !axes.contains(a)).map(|a| input.nsplits[a].clone()).collect();
    Ok(Tiled::Done(Layout { nsplits, chunks: level }))
}
