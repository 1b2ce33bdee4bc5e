//! Dataframe sources: an in-memory batch split into row chunks.

use super::{Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{offsets, splits, Layout};
use mars_ir::frame::{batch_to_ipc, ipc_to_batch};
use mars_ir::{ChunkOp, Dim, FrameChunkOp};

pub(super) fn from_batch(ctx: &mut Ctx, ipc: &[u8], rows_per_chunk: Option<usize>) -> TileResult<Tiled> {
    let batch = ipc_to_batch(ipc)?;
    let rows = batch.num_rows();
    let row_bytes = (batch.get_array_memory_size() / rows.max(1)).max(1);
    let per = rows_per_chunk.unwrap_or_else(|| (ctx.opts.chunk_bytes / row_bytes).max(1));
    let nsplit = splits(rows, per);
    let ncols = batch.num_columns();
    let mut chunks = Vec::with_capacity(nsplit.len());
    for (i, (&off, &len)) in offsets(&nsplit).iter().zip(&nsplit).enumerate() {
        let part = batch_to_ipc(&batch.slice(off, len))?;
        let shape = vec![Dim::Known(len), Dim::Known(ncols)];
        chunks.push(ctx.add(ChunkOp::Frame(FrameChunkOp::Literal { ipc: part }), vec![], shape, None, vec![i, 0]));
    }
    let nsplits = vec![nsplit.into_iter().map(Dim::Known).collect(), vec![Dim::Known(ncols)]];
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}
