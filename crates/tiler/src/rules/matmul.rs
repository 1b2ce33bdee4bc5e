//! `dot`: per output block, `MatMul` chunks each sum up to `combine_size`
//! block products over the inner dimension (inputs `a_0, b_0, a_1, b_1, …`);
//! when there are more, a tree of element-wise adds (same fan-in) sums them.

use super::rechunk::rechunk_to;
use super::{Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{grid_indices, refine, Layout};
use mars_ir::{BinaryFn, ChunkId, ChunkOp, DType, Dim, Expr, Meta};

pub(super) fn dot(ctx: &mut Ctx, inputs: &[Layout], metas: &[&Meta], dtype: DType) -> TileResult<Tiled> {
    let (a, b) = (&inputs[0], &inputs[1]);
    let (ka, kb) = (a.ndim() - 1, 0);
    let (da, db) = (super::tensor_dtype(metas[0]), super::tensor_dtype(metas[1]));
    let (a, b) = if a.nsplits[ka] == b.nsplits[kb] && a.nsplits[ka].iter().all(|d| d.is_known()) {
        (a.clone(), b.clone())
    } else {
        let (ak, bk) = match (a.known(), b.known()) {
            (Ok(x), Ok(y)) => (x, y),
            (x, y) => {
                let mut need = x.err().unwrap_or_default();
                need.extend(y.err().unwrap_or_default());
                return Ok(Tiled::Need(need));
            }
        };
        let inner = refine(&[&ak[ka], &bk[kb]]);
        let mut at = ak.clone();
        at[ka] = inner.clone();
        let mut bt = bk.clone();
        bt[kb] = inner;
        (rechunk_to(ctx, a, &ak, &at, da)?, rechunk_to(ctx, b, &bk, &bt, db)?)
    };
    let a_outer: Vec<usize> = a.grid()[..ka].to_vec();
    let b_outer: Vec<usize> = b.grid()[1..].to_vec();
    let inner_n = a.grid()[ka];
    let mut out_grid = a_outer.clone();
    out_grid.extend(&b_outer);
    let mut nsplits: Vec<Vec<Dim>> = a.nsplits[..ka].to_vec();
    nsplits.extend(b.nsplits[1..].iter().cloned());
    let cs = ctx.opts.combine_size.max(2);
    ctx.check_grid(&out_grid, inner_n.div_ceil(cs) * 2)?;
    let mut chunks = Vec::with_capacity(out_grid.iter().product());
    let matmul = std::sync::Arc::new(ChunkOp::MatMul);
    for idx in grid_indices(&out_grid) {
        let (ia, ib) = idx.split_at(a_outer.len());
        let shape: Vec<Dim> = idx.iter().enumerate().map(|(ax, &i)| nsplits[ax][i]).collect();
        let inner: Vec<usize> = (0..inner_n).collect();
        let mut level: Vec<ChunkId> = inner
            .chunks(cs)
            .map(|ls| {
                let mut pairs = Vec::with_capacity(2 * ls.len());
                for &l in ls {
                    let mut ai = ia.to_vec();
                    ai.push(l);
                    let mut bi = vec![l];
                    bi.extend_from_slice(ib);
                    pairs.extend([a.at(&ai), b.at(&bi)]);
                }
                ctx.add(matmul.clone(), pairs, shape.clone(), Some(dtype), idx.clone())
            })
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(cs)
                .map(|group| {
                    if group.len() == 1 {
                        return group[0];
                    }
                    let expr =
                        (1..group.len()).fold(Expr::Input(0), |e, i| Expr::binary(BinaryFn::Add, e, Expr::Input(i)));
                    ctx.add(
                        ChunkOp::Map { expr: expr.into(), dtype },
                        group.to_vec(),
                        shape.clone(),
                        Some(dtype),
                        idx.clone(),
                    )
                })
                .collect();
        }
        chunks.push(level[0]);
    }
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}
