//! Groupby rules. `GroupPartial` reduces each row chunk to its groups' partial
//! states; `GroupAgg` merges the partials, in one of two shapes:
//!
//! - **tree**: rounds of `GroupCombine` with fan-in `combine_size`, the last
//!   one finalizing into one chunk sorted by key (few groups);
//! - **shuffle**: each partial split by a hash of its keys (`HashPartition`,
//!   one piece per reducer); reducer `p` gathers piece `p` of every partial
//!   and finalizes it (many groups: no chunk holds them all).
//!
//! `auto` runs the partials first and picks from their sizes: a tree when all
//! partial rows fit one chunk's budget, else a shuffle sized to the budget;
//! and a shuffle with a reducer per thread when they fit but are many (one
//! merge would leave the other threads idle).

use super::{row_bytes, Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::Layout;
use mars_ir::agg::Agg;
use mars_ir::{ChunkId, ChunkInputs, ChunkOp, Dim, FrameChunkOp, GroupMethod, IrError, Meta};
use std::sync::Arc;

/// Partial rows from which `auto` shuffles even when they fit one chunk,
/// so that the merge runs on every thread (a merge of this many groups
/// takes some 15 ms on this machine's cores).
const PARALLEL_COMBINE_ROWS: usize = 1 << 18;

fn schema_of(meta: &Meta) -> TileResult<&mars_ir::arrow_schema::SchemaRef> {
    match meta {
        Meta::Frame { schema, .. } => Ok(schema),
        Meta::Tensor { .. } => Err(IrError::Invalid("groupby needs a dataframe input".into()).into()),
    }
}

/// One partial per row chunk.
pub(super) fn partial(
    ctx: &mut Ctx,
    keys: &[String],
    aggs: &[Agg],
    input: &Layout,
    in_meta: &Meta,
) -> TileResult<Tiled> {
    let (keys, aggs, schema) = mars_ir::agg::partial_schema(schema_of(in_meta)?, keys, aggs)?;
    let width = Dim::Known(schema.fields().len());
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::GroupPartial { keys, aggs }));
    let mut chunks = Vec::with_capacity(input.chunks.len());
    for (i, &c) in input.chunks.iter().enumerate() {
        chunks.push(ctx.add(op.clone(), &[c][..], vec![Dim::Unknown, width], None, vec![i, 0]));
    }
    let nsplits = vec![vec![Dim::Unknown; chunks.len()], vec![width]];
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}

/// Bytes of one row of partial states, for the chunk budget (variable-width
/// columns count 16).
/// Merge the partials (`input`, a `GroupPartial` layout) by `method`.
pub(super) fn agg(
    ctx: &mut Ctx,
    nkeys: usize,
    aggs: &[Agg],
    method: GroupMethod,
    input: &Layout,
    in_meta: &Meta,
) -> TileResult<Tiled> {
    let schema = schema_of(in_meta)?;
    if input.chunks.is_empty() {
        return Err(IrError::Invalid("a groupby over a frame of no chunks".into()).into());
    }
    let width = Dim::Known(mars_ir::agg::result_schema(schema, nkeys, aggs)?.fields().len());
    let funcs: Vec<_> = aggs.iter().map(|a| a.func).collect();
    let names: Vec<String> = aggs.iter().map(|a| a.name.clone()).collect();
    let parts = match method {
        // no keys: one group, whose partials are one row each
        _ if nkeys == 0 => None,
        GroupMethod::Tree => None,
        GroupMethod::Shuffle => Some(input.chunks.len().max(1)),
        GroupMethod::Auto => {
            let need: Vec<ChunkId> =
                input.chunks.iter().copied().filter(|&c| !ctx.shape(c).first().is_some_and(|d| d.is_known())).collect();
            if !need.is_empty() {
                return Ok(Tiled::Need(need));
            }
            let rows: usize = input.chunks.iter().filter_map(|&c| ctx.shape(c).first().and_then(|d| d.known())).sum();
            let bytes = rows.saturating_mul(row_bytes(schema));
            let budget = ctx.opts.chunk_bytes.max(1);
            if bytes > budget {
                Some(bytes.div_ceil(budget).clamp(2, input.chunks.len().max(2)))
            } else if rows >= PARALLEL_COMBINE_ROWS && ctx.opts.parallelism > 1 && input.chunks.len() > 1 {
                // one chunk would hold them, but its merge would keep one
                // thread busy while the others wait: a reducer per thread
                Some(ctx.opts.parallelism.min(input.chunks.len()))
            } else {
                None
            }
        }
    };
    match parts {
        None => tree(ctx, nkeys, funcs, names, width, input),
        Some(parts) => shuffle(ctx, nkeys, funcs, names, width, parts, input),
    }
}

fn tree(
    ctx: &mut Ctx,
    nkeys: usize,
    funcs: Vec<mars_ir::agg::AggFn>,
    names: Vec<String>,
    width: Dim,
    input: &Layout,
) -> TileResult<Tiled> {
    let cs = ctx.opts.combine_size.max(2);
    let state_width = input.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
    let combine = Arc::new(ChunkOp::Frame(FrameChunkOp::GroupCombine { nkeys, aggs: funcs.clone(), finalize: None }));
    let mut level: Vec<ChunkId> = input.chunks.clone();
    while level.len() > cs {
        let mut next = Vec::with_capacity(level.len().div_ceil(cs));
        for (i, group) in level.chunks(cs).enumerate() {
            let ins: ChunkInputs = group.iter().copied().collect();
            next.push(ctx.add(combine.clone(), ins, vec![Dim::Unknown, state_width], None, vec![i, 0]));
        }
        level = next;
    }
    let last = ChunkOp::Frame(FrameChunkOp::GroupCombine { nkeys, aggs: funcs, finalize: Some(names) });
    let ins: ChunkInputs = level.into_iter().collect();
    let out = ctx.add(last, ins, vec![Dim::Unknown, width], None, vec![0, 0]);
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown], vec![width]], chunks: vec![out] }))
}

fn shuffle(
    ctx: &mut Ctx,
    nkeys: usize,
    funcs: Vec<mars_ir::agg::AggFn>,
    names: Vec<String>,
    width: Dim,
    parts: usize,
    input: &Layout,
) -> TileResult<Tiled> {
    ctx.check_grid(&[2 * input.chunks.len() + 2 * parts + 1], 1)?;
    let state_width = input.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
    // partitions by key range (pivots sampled from the partials' keys, equal
    // keys kept together), so the partitions, each finalized sorted, are
    // the groups in key order, as pandas gives them
    let keys: Vec<usize> = (0..nkeys).collect();
    let pivots = super::frame::sampled_pivots(ctx, input, &keys, &vec![false; nkeys], parts);
    let split = Arc::new(ChunkOp::Frame(FrameChunkOp::RangePartition {
        by: keys.clone(),
        descending: vec![false; nkeys],
        chunk: None,
    }));
    let mut maps: ChunkInputs = ChunkInputs::new();
    for (i, &c) in input.chunks.iter().enumerate() {
        maps.push(ctx.add(split.clone(), &[c, pivots][..], vec![Dim::Unknown, state_width], None, vec![i, 0]));
    }
    let finalize = Arc::new(ChunkOp::Frame(FrameChunkOp::GroupCombine { nkeys, aggs: funcs, finalize: Some(names) }));
    let mut chunks = Vec::with_capacity(parts);
    for p in 0..parts {
        let gather = ChunkOp::Frame(FrameChunkOp::GatherPart { part: p });
        let g = ctx.add(gather, maps.clone(), vec![Dim::Unknown, state_width], None, vec![p, 0]);
        chunks.push(ctx.add(finalize.clone(), &[g][..], vec![Dim::Unknown, width], None, vec![p, 0]));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; parts], vec![width]], chunks }))
}
