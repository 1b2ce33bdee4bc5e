//! Dataframe rules: sources (a batch the backend holds, split into row
//! chunks) and column selection.

use super::{Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{offsets, splits, Layout};
use mars_ir::{ChunkInputs, ChunkNode, ChunkOp, Dim, FrameChunkOp, Key, Meta};
use std::sync::Arc;

/// User data: the backend holds the batch under `data`; each chunk is a
/// zero-copy slice of its rows.
pub(super) fn from_batch(
    ctx: &mut Ctx,
    data: Key,
    schema: &mars_ir::arrow_schema::Schema,
    rows: usize,
    rows_per_chunk: Option<usize>,
) -> TileResult<Tiled> {
    let ncols = schema.fields().len();
    // bytes a row, for the chunk budget (variable-width columns count 16)
    let row_bytes = schema.fields().iter().map(|f| f.data_type().primitive_width().unwrap_or(16)).sum::<usize>().max(1);
    let per = rows_per_chunk.unwrap_or_else(|| (ctx.opts.chunk_bytes / row_bytes).max(1));
    let nsplit = splits(rows, per);
    ctx.check_grid(&[nsplit.len()], 1)?;
    let held = ctx.chunks.insert(ChunkNode {
        key: data,
        op: Arc::new(ChunkOp::Fetch),
        inputs: ChunkInputs::new(),
        shape: [Dim::Known(rows), Dim::Known(ncols)].into_iter().collect(),
        dtype: None,
        index: [0, 0].into_iter().collect(),
    });
    let mut chunks = Vec::with_capacity(nsplit.len());
    if nsplit.len() == 1 {
        chunks.push(held);
    } else {
        for (i, (&offset, &len)) in offsets(&nsplit).iter().zip(&nsplit).enumerate() {
            let op = ChunkOp::Frame(FrameChunkOp::SliceRows { offset, len });
            let shape = vec![Dim::Known(len), Dim::Known(ncols)];
            chunks.push(ctx.add(op, &[held][..], shape, None, vec![i, 0]));
        }
    }
    let nsplits = vec![nsplit.into_iter().map(Dim::Known).collect(), vec![Dim::Known(ncols)]];
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}

/// `df[columns]`: each row chunk projected (no data moves between chunks).
pub(super) fn select(ctx: &mut Ctx, columns: &[String], input: &Layout, in_meta: &Meta) -> TileResult<Tiled> {
    let Meta::Frame { schema, .. } = in_meta else {
        return Err(mars_ir::IrError::Invalid("selecting columns needs a dataframe input".into()).into());
    };
    let indices = mars_ir::frame::column_indices(schema, columns)?;
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::Project { columns: indices }));
    let mut chunks = Vec::with_capacity(input.chunks.len());
    for (i, &c) in input.chunks.iter().enumerate() {
        let rows = ctx.shape(c).first().copied().unwrap_or(Dim::Unknown);
        chunks.push(ctx.add(op.clone(), &[c][..], vec![rows, Dim::Known(columns.len())], None, vec![i, 0]));
    }
    let nsplits = vec![input.nsplits.first().cloned().unwrap_or_default(), vec![Dim::Known(columns.len())]];
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}
