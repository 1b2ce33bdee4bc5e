//! Element-wise ops with numpy broadcasting across chunk grids: operands are
//! unified to the common refinement of their chunk boundaries (axes where an
//! operand has length 1 are broadcast from its single chunk).

use super::rechunk::rechunk_to;
use super::{Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{grid_indices, refine, GridIter, Layout};
use mars_ir::smallvec::SmallVec;
use mars_ir::{ChunkId, ChunkInputs, ChunkOp, ChunkShape, DType, Dim, Expr, Meta};

/// Line up `inputs` (right-aligned, broadcasting) on one output grid. Returns the
/// output nsplits and, per input, its layout rechunked to match.
pub(crate) fn unify(
    ctx: &mut Ctx,
    inputs: &[Layout],
    dtypes: &[DType],
) -> TileResult<Result<(Vec<Vec<Dim>>, Vec<Layout>), Vec<ChunkId>>> {
    let ndim = inputs.iter().map(|l| l.ndim()).max().unwrap_or(0);
    let mut out_nsplits: Vec<Vec<Dim>> = vec![vec![Dim::Known(1)]; ndim];
    // per output axis: the target splits for non-broadcast operands
    let mut targets: Vec<Option<Vec<usize>>> = vec![None; ndim];
    let mut need = Vec::new();
    for a in 0..ndim {
        let members: Vec<usize> = (0..inputs.len())
            .filter(|&k| {
                let pad = ndim - inputs[k].ndim();
                a >= pad && inputs[k].nsplits[a - pad] != [Dim::Known(1)]
            })
            .collect();
        let Some(&first) = members.first() else {
            continue;
        };
        let pad0 = ndim - inputs[first].ndim();
        let s0 = &inputs[first].nsplits[a - pad0];
        let identical = members.iter().all(|&k| inputs[k].nsplits[a - (ndim - inputs[k].ndim())] == *s0);
        let all_known =
            members.iter().all(|&k| inputs[k].nsplits[a - (ndim - inputs[k].ndim())].iter().all(|d| d.is_known()));
        let same_source = members.iter().all(|&k| inputs[k].chunks == inputs[first].chunks);
        if identical && (all_known || same_source) {
            out_nsplits[a] = s0.clone();
            continue;
        }
        if !all_known {
            for &k in &members {
                if let Err(n) = inputs[k].known() {
                    need.extend(n);
                }
            }
            continue;
        }
        let known: Vec<Vec<usize>> = members
            .iter()
            .map(|&k| inputs[k].nsplits[a - (ndim - inputs[k].ndim())].iter().filter_map(|d| d.known()).collect())
            .collect();
        let lens: Vec<usize> = known.iter().map(|s| s.iter().sum()).collect();
        if lens.iter().any(|&l| l != lens[0]) {
            return Err(mars_ir::IrError::Broadcast(format!("along axis {a} lengths {lens:?} differ")).into());
        }
        let refs: Vec<&[usize]> = known.iter().map(|s| s.as_slice()).collect();
        let r = refine(&refs);
        out_nsplits[a] = r.iter().map(|&n| Dim::Known(n)).collect();
        targets[a] = Some(r);
    }
    if !need.is_empty() {
        return Ok(Err(need));
    }
    let mut aligned = Vec::with_capacity(inputs.len());
    for (k, l) in inputs.iter().enumerate() {
        let pad = ndim - l.ndim();
        let wants_change = (0..l.ndim()).any(|i| targets[pad + i].is_some() && l.nsplits[i] != [Dim::Known(1)]);
        if !wants_change {
            aligned.push(l.clone());
            continue;
        }
        let from: Vec<Vec<usize>> = l.nsplits.iter().map(|s| s.iter().filter_map(|d| d.known()).collect()).collect();
        let to: Vec<Vec<usize>> = (0..l.ndim())
            .map(|i| match &targets[pad + i] {
                Some(t) if l.nsplits[i] != [Dim::Known(1)] => t.clone(),
                _ => from[i].clone(),
            })
            .collect();
        aligned.push(rechunk_to(ctx, l, &from, &to, dtypes[k])?);
    }
    Ok(Ok((out_nsplits, aligned)))
}

/// The chunk of `layout` feeding output chunk `out_idx` (broadcast axes use chunk 0).
pub(crate) fn source_chunk(layout: &Layout, out_idx: &[usize]) -> ChunkId {
    let pad = out_idx.len() - layout.ndim();
    let idx: SmallVec<[usize; 4]> =
        (0..layout.ndim()).map(|i| if layout.nsplits[i].len() == 1 { 0 } else { out_idx[pad + i] }).collect();
    layout.at(&idx)
}

pub(super) fn map(ctx: &mut Ctx, expr: &Expr, dtype: DType, inputs: &[Layout], metas: &[&Meta]) -> TileResult<Tiled> {
    let dtypes: Vec<DType> = metas.iter().map(|m| super::tensor_dtype(m)).collect();
    let (nsplits, aligned) = match unify(ctx, inputs, &dtypes)? {
        Ok(x) => x,
        Err(need) => return Ok(Tiled::Need(need)),
    };
    let grid: Vec<usize> = nsplits.iter().map(|s| s.len()).collect();
    ctx.check_grid(&grid, 1)?;
    // one op for every chunk
    let op = std::sync::Arc::new(ChunkOp::Map { expr: std::sync::Arc::new(expr.clone()), dtype });
    let mut chunks = Vec::with_capacity(grid.iter().product());
    let mut cells = GridIter::new(&grid);
    while let Some(idx) = cells.next_index() {
        let ins: ChunkInputs = aligned.iter().map(|l| source_chunk(l, idx)).collect();
        let shape: ChunkShape = idx.iter().enumerate().map(|(a, &i)| nsplits[a][i]).collect();
        chunks.push(ctx.add(op.clone(), ins, shape, Some(dtype), idx));
    }
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}

/// Cast every chunk of a layout (used where inputs of mixed dtypes meet).
pub(crate) fn cast(ctx: &mut Ctx, layout: &Layout, from: DType, to: DType) -> Layout {
    if from == to {
        return layout.clone();
    }
    let op = std::sync::Arc::new(ChunkOp::Map {
        expr: std::sync::Arc::new(Expr::Cast(to, Box::new(Expr::Input(0)))),
        dtype: to,
    });
    let grid = layout.grid();
    let chunks = grid_indices(&grid)
        .into_iter()
        .zip(&layout.chunks)
        .map(|(idx, &c)| {
            let shape = ctx.shape(c).to_vec();
            ctx.add(op.clone(), vec![c], shape, Some(to), idx)
        })
        .collect();
    Layout { nsplits: layout.nsplits.clone(), chunks }
}
