//! The merge rule. A side small enough for one chunk (its rows known, or
//! run first to learn them) is *broadcast*: indexed once (`JoinBuild`) and
//! probed by every chunk of the other side, which never moves. Otherwise
//! both sides are hash-partitioned on their keys and each partition joined
//! alone (a *shuffle* join), which also serves right and outer merges:
//! a partition sees every row that could match its build rows.

use super::{Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::Layout;
use mars_ir::join::{How, Side};
use mars_ir::{ChunkId, ChunkInputs, ChunkOp, Dim, FrameChunkOp, IrError, JoinProbeChunk, Meta};
use std::sync::Arc;

fn schema(meta: &Meta) -> TileResult<&mars_ir::arrow_schema::SchemaRef> {
    match meta {
        Meta::Frame { schema, .. } => Ok(schema),
        Meta::Tensor { .. } => Err(IrError::Invalid("merge takes two dataframes".into()).into()),
    }
}

/// Bytes of a side, when its row counts are known.
fn bytes(ctx: &Ctx, l: &Layout, s: &mars_ir::arrow_schema::Schema) -> Option<usize> {
    let row = s.fields().iter().map(|f| f.data_type().primitive_width().unwrap_or(16)).sum::<usize>().max(1);
    let rows = l.chunks.iter().map(|&c| ctx.shape(c).first().and_then(|d| d.known())).sum::<Option<usize>>()?;
    Some(rows.saturating_mul(row))
}

fn unknown(ctx: &Ctx, l: &Layout) -> Vec<ChunkId> {
    l.chunks.iter().copied().filter(|&c| !ctx.shape(c).first().is_some_and(|d| d.is_known())).collect()
}

pub(super) fn merge(
    ctx: &mut Ctx,
    how: How,
    left_on: &[String],
    right_on: &[String],
    inputs: &[Layout],
    metas: &[&Meta],
) -> TileResult<Tiled> {
    let (left, right) = (&inputs[0], &inputs[1]);
    let (ls, rs) = (schema(metas[0])?, schema(metas[1])?);
    let (lk, rk, cols, out) = mars_ir::join::merge_schema(ls, rs, left_on, right_on)?;
    let names: Vec<String> = out.fields().iter().map(|f| f.name().clone()).collect();
    let width = Dim::Known(names.len());
    // the sides that may be broadcast: the build side of a join that keeps
    // no unmatched rows of its own
    let mut may = Vec::new();
    if matches!(how, How::Inner | How::Left) {
        may.push(Side::Right);
    }
    if matches!(how, How::Inner | How::Right) {
        may.push(Side::Left);
    }
    let need: Vec<ChunkId> =
        may.iter().flat_map(|s| unknown(ctx, if *s == Side::Left { left } else { right })).collect();
    if !need.is_empty() {
        return Ok(Tiled::Need(need));
    }
    let budget = ctx.opts.chunk_bytes;
    let broadcast = may
        .iter()
        .filter_map(|&s| {
            let b = if s == Side::Left { bytes(ctx, left, ls) } else { bytes(ctx, right, rs) }?;
            (b <= budget).then_some((b, s))
        })
        .min_by_key(|(b, _)| *b)
        .map(|(_, s)| s);
    let probe_op = |probe: Side, keep_probe: bool, keep_build: bool| {
        let keys = if probe == Side::Left { lk.clone() } else { rk.clone() };
        Arc::new(ChunkOp::Frame(FrameChunkOp::JoinProbe(Box::new(JoinProbeChunk {
            keys,
            probe,
            keep_probe,
            keep_build,
            cols: cols.clone(),
            names: names.clone(),
        }))))
    };
    let mut chunks = Vec::new();
    match broadcast {
        Some(build) => {
            let (b, p, bk) = if build == Side::Right { (right, left, &rk) } else { (left, right, &lk) };
            ctx.check_grid(&[p.chunks.len() + 1], 1)?;
            let bw = b.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
            let table_op = ChunkOp::Frame(FrameChunkOp::JoinBuild { keys: bk.clone() });
            let ins: ChunkInputs = b.chunks.iter().copied().collect();
            let table = ctx.add(table_op, ins, vec![Dim::Unknown, bw], None, vec![0, 0]);
            let probe = if build == Side::Right { Side::Left } else { Side::Right };
            let op = probe_op(probe, how != How::Inner, false);
            for (i, &c) in p.chunks.iter().enumerate() {
                chunks.push(ctx.add(op.clone(), &[c, table][..], vec![Dim::Unknown, width], None, vec![i, 0]));
            }
        }
        None => {
            let parts = left.chunks.len().max(right.chunks.len()).max(1);
            ctx.check_grid(&[left.chunks.len() + right.chunks.len() + 4 * parts], 1)?;
            let split = |ctx: &mut Ctx, l: &Layout, keys: &[usize]| -> ChunkInputs {
                let op = Arc::new(ChunkOp::Frame(FrameChunkOp::HashPartition { keys: keys.to_vec(), parts }));
                let w = l.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
                l.chunks
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| ctx.add(op.clone(), &[c][..], vec![Dim::Unknown, w], None, vec![i, 0]))
                    .collect()
            };
            let (lmaps, rmaps) = (split(ctx, left, &lk), split(ctx, right, &rk));
            let build_op = Arc::new(ChunkOp::Frame(FrameChunkOp::JoinBuild { keys: rk.clone() }));
            let op =
                probe_op(Side::Left, matches!(how, How::Left | How::Outer), matches!(how, How::Right | How::Outer));
            for p in 0..parts {
                let gather = |ctx: &mut Ctx, maps: &ChunkInputs, w: Dim| {
                    let op = ChunkOp::Frame(FrameChunkOp::GatherPart { part: p });
                    ctx.add(op, maps.clone(), vec![Dim::Unknown, w], None, vec![p, 0])
                };
                let (lw, rw) = (Dim::Known(ls.fields().len()), Dim::Known(rs.fields().len()));
                let (lg, rg) = (gather(ctx, &lmaps, lw), gather(ctx, &rmaps, rw));
                let table = ctx.add(build_op.clone(), &[rg][..], vec![Dim::Unknown, rw], None, vec![p, 0]);
                chunks.push(ctx.add(op.clone(), &[lg, table][..], vec![Dim::Unknown, width], None, vec![p, 0]));
            }
        }
    }
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; chunks.len()], vec![width]], chunks }))
}
