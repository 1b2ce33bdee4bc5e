//! The merge rule. A side small enough for one chunk (its rows known, or
//! run first to learn them) is *broadcast*: indexed once (`JoinBuild`) and
//! probed by every chunk of the other side, which never moves. Otherwise
//! both sides are hash-partitioned on their keys and each partition joined
//! alone (a *shuffle* join), which also serves right and outer merges:
//! a partition sees every row that could match its build rows.
//!
//! Learning both sides' sizes runs both before the merge can tile, so the
//! big side is read whole and held before anything probes it. When the
//! sides' sizes are not all known, the rule learns first the side that
//! looks smaller (rows of its files through row-wise ops, every filter
//! assumed to keep all), and broadcasts a side once it is known to be
//! *small* (an eighth of the chunk budget) without learning the other: the
//! other side's chunks then probe as they are made (a read, a filter, the
//! probe and what follows run as one pipeline). A small side that turns out
//! bigger than the other costs at most a small table's build.

use super::{row_bytes, Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::Layout;
use mars_ir::arrow_schema::Schema;
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
fn bytes(ctx: &Ctx, l: &Layout, s: &Schema) -> Option<usize> {
    let rows = l.chunks.iter().map(|&c| ctx.shape(c).first().and_then(|d| d.known())).sum::<Option<usize>>()?;
    Some(rows.saturating_mul(row_bytes(s)))
}

fn unknown(ctx: &Ctx, l: &Layout) -> Vec<ChunkId> {
    l.chunks.iter().copied().filter(|&c| !ctx.shape(c).first().is_some_and(|d| d.is_known())).collect()
}

/// A side's rows as far as can be told before running it: known counts,
/// else the rows of the parquet row groups it reads through row-wise ops
/// (a filter assumed to keep all, a probe its probe side's); `None` when
/// something else lies in between.
fn guess_rows(ctx: &Ctx, l: &Layout) -> Option<usize> {
    fn chunk(ctx: &Ctx, c: ChunkId, depth: usize) -> Option<usize> {
        let node = ctx.chunks.node(c);
        if let Some(n) = node.shape.first().and_then(|d| d.known()) {
            return Some(n);
        }
        match &*node.op {
            ChunkOp::Frame(FrameChunkOp::ReadParquet { file, row_groups, rows, .. }) => {
                Some(file.rows_of(row_groups, *rows))
            }
            ChunkOp::Frame(
                FrameChunkOp::Filter
                | FrameChunkOp::Project { .. }
                | FrameChunkOp::Eval { .. }
                | FrameChunkOp::WithColumn { .. }
                | FrameChunkOp::JoinProbe(_),
            ) if depth < 64 => chunk(ctx, *node.inputs.first()?, depth + 1),
            _ => None,
        }
    }
    l.chunks.iter().map(|&c| chunk(ctx, c, 0)).sum()
}

/// Which side to broadcast, `Ok(None)` for a shuffle, or the chunks to run
/// first (see the module's doc).
fn choose_build(ctx: &Ctx, may: &[Side], sides: [(&Layout, &Schema); 2]) -> Result<Option<Side>, Vec<ChunkId>> {
    let side = |s: Side| if s == Side::Left { sides[0] } else { sides[1] };
    let budget = ctx.opts.chunk_bytes;
    let known: Vec<(usize, Side)> = may.iter().filter_map(|&s| Some((bytes(ctx, side(s).0, side(s).1)?, s))).collect();
    let smallest = known.iter().min_by_key(|(b, _)| *b).copied();
    if known.len() == may.len() {
        return Ok(smallest.filter(|(b, _)| *b <= budget).map(|(_, s)| s));
    }
    if let Some((_, s)) = smallest.filter(|(b, _)| *b <= budget / 8) {
        return Ok(Some(s));
    }
    // learn the unknown side that looks smallest first, the others after
    let open: Vec<Side> = may.iter().copied().filter(|&s| !known.iter().any(|(_, k)| *k == s)).collect();
    let guess = |s: Side| guess_rows(ctx, side(s).0).map(|r| r.saturating_mul(row_bytes(side(s).1)));
    let first = open.iter().map(|&s| guess(s).map(|g| (g, s))).collect::<Option<Vec<_>>>();
    let first = first.and_then(|g| g.into_iter().min_by_key(|(g, _)| *g)).map(|(_, s)| vec![s]);
    Err(first.unwrap_or(open).into_iter().flat_map(|s| unknown(ctx, side(s).0)).collect())
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
    let broadcast = match choose_build(ctx, &may, [(left, ls), (right, rs)]) {
        Ok(side) => side,
        Err(need) => return Ok(Tiled::Need(need)),
    };
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
