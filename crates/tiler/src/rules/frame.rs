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
    let per = rows_per_chunk.unwrap_or_else(|| (ctx.opts.chunk_bytes / super::row_bytes(schema)).max(1));
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

/// `df.head(n)`: the leading chunks that hold the first `n` rows, the last
/// of them cut (row lengths must be known: after a filter they are asked for).
pub(super) fn head(ctx: &mut Ctx, n: usize, input: &Layout) -> TileResult<Tiled> {
    let rows = match input.nsplits.first() {
        Some(r) => r,
        None => return Err(mars_ir::IrError::Invalid("head needs a dataframe input".into()).into()),
    };
    // only the lengths of the chunks up to the n-th row are needed
    let mut need = Vec::new();
    let (mut seen, mut upto) = (0usize, 0usize);
    for (i, d) in rows.iter().enumerate() {
        if seen >= n {
            break;
        }
        upto = i + 1;
        match d.known() {
            Some(len) => seen += len,
            None => need.push(input.chunks[i]),
        }
    }
    if !need.is_empty() {
        return Ok(Tiled::Need(need));
    }
    let ncols = input.nsplits.get(1).cloned().unwrap_or_default();
    let (mut chunks, mut splits, mut left) = (Vec::new(), Vec::new(), n);
    for (i, d) in rows.iter().take(upto).enumerate() {
        let len = d.known().unwrap_or(0);
        let c = input.chunks[i];
        let id = if len <= left {
            c
        } else {
            let op = ChunkOp::Frame(FrameChunkOp::SliceRows { offset: 0, len: left });
            let shape = vec![Dim::Known(left), ncols.first().copied().unwrap_or(Dim::Unknown)];
            ctx.add(op, &[c][..], shape, None, vec![i, 0])
        };
        let took = len.min(left);
        chunks.push(id);
        splits.push(Dim::Known(took));
        left -= took;
    }
    if chunks.is_empty() {
        // no rows: one empty slice of the first chunk keeps the schema
        let Some(&c) = input.chunks.first() else {
            return Ok(Tiled::Done(Layout { nsplits: vec![vec![], ncols], chunks }));
        };
        let op = ChunkOp::Frame(FrameChunkOp::SliceRows { offset: 0, len: 0 });
        let shape = vec![Dim::Known(0), ncols.first().copied().unwrap_or(Dim::Unknown)];
        chunks.push(ctx.add(op, &[c][..], shape, None, vec![0, 0]));
        splits.push(Dim::Known(0));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![splits, ncols], chunks }))
}

/// The row chunks of frames read together, which must line up chunk for
/// chunk (Series of one frame do; differently chunked ones must be rechunked
/// alike first).
fn aligned_rows(inputs: &[Layout]) -> TileResult<Vec<Dim>> {
    let rows = inputs.first().and_then(|l| l.nsplits.first()).cloned().unwrap_or_default();
    for l in inputs.iter().skip(1) {
        let other = l.nsplits.first().cloned().unwrap_or_default();
        let lined_up = other.len() == rows.len()
            && other.iter().zip(&rows).all(|(a, b)| a.known().zip(b.known()).is_none_or(|(a, b)| a == b));
        if !lined_up {
            return Err(mars_ir::IrError::Invalid(format!(
                "Series with row chunks {} and {} do not line up; rechunk them alike",
                mars_ir::fmt_shape(&rows),
                mars_ir::fmt_shape(&other)
            ))
            .into());
        }
    }
    Ok(rows)
}

/// A Series expression: one `Eval` per row chunk over the inputs' chunks.
pub(super) fn eval(
    ctx: &mut Ctx,
    expr: &mars_ir::colexpr::ColExpr,
    name: &str,
    inputs: &[Layout],
) -> TileResult<Tiled> {
    let rows = aligned_rows(inputs)?;
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::Eval { expr: expr.clone(), name: name.to_string() }));
    let mut chunks = Vec::with_capacity(rows.len());
    for (i, &r) in rows.iter().enumerate() {
        let ins: ChunkInputs = inputs.iter().map(|l| l.chunks[i]).collect();
        chunks.push(ctx.add(op.clone(), ins, vec![r, Dim::Known(1)], None, vec![i, 0]));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![rows, vec![Dim::Known(1)]], chunks }))
}

/// `df[mask]`: each row chunk filtered by its mask chunk; the lengths are
/// known only once run.
pub(super) fn filter(ctx: &mut Ctx, frame: &Layout, mask: &Layout) -> TileResult<Tiled> {
    let rows = aligned_rows(&[frame.clone(), mask.clone()])?;
    let ncols = frame.nsplits.get(1).cloned().unwrap_or_default();
    let width = ncols.first().copied().unwrap_or(Dim::Unknown);
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::Filter));
    let mut chunks = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        chunks.push(ctx.add(
            op.clone(),
            &[frame.chunks[i], mask.chunks[i]][..],
            vec![Dim::Unknown, width],
            None,
            vec![i, 0],
        ));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; rows.len()], ncols], chunks }))
}

/// `df[name] = s`: each row chunk with its Series chunk as the column.
pub(super) fn with_column(
    ctx: &mut Ctx,
    name: &str,
    frame: &Layout,
    col: &Layout,
    in_meta: &Meta,
) -> TileResult<Tiled> {
    let rows = aligned_rows(&[frame.clone(), col.clone()])?;
    let Meta::Frame { schema, .. } = in_meta else {
        return Err(mars_ir::IrError::Invalid("with_column needs a dataframe input".into()).into());
    };
    let (fields, (at, replace)) = mars_ir::frame::with_column(
        schema,
        name,
        &mars_ir::arrow_schema::Field::new(name, mars_ir::arrow_schema::DataType::Null, true),
    );
    let width = Dim::Known(fields.len());
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::WithColumn { name: name.to_string(), at, replace }));
    let mut chunks = Vec::with_capacity(rows.len());
    for (i, &r) in rows.iter().enumerate() {
        chunks.push(ctx.add(op.clone(), &[frame.chunks[i], col.chunks[i]][..], vec![r, width], None, vec![i, 0]));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![rows, vec![width]], chunks }))
}

/// Parquet files: a chunk per run of whole row groups of one file, as many
/// rows as the chunk budget holds (at least one group), cut finer when the
/// runs would leave threads idle in the last round ([`balance`]).
pub(super) fn read_parquet(
    ctx: &mut Ctx,
    files: &[mars_ir::SourceFile],
    columns: &[String],
    filter: Option<&mars_ir::ReadFilter>,
) -> TileResult<Tiled> {
    let width = Dim::Known(columns.len());
    // (file, its row groups, rows) per chunk: runs of whole row groups whose
    // uncompressed bytes (all columns) fit the chunk budget. The runs do not
    // depend on the columns read, so `df.col(a)` and `df` of one read line
    // up chunk for chunk.
    let budget = ctx.opts.chunk_bytes.max(1) as u64;
    let mut runs: Vec<(usize, Vec<usize>, usize)> = Vec::new();
    for (f, file) in files.iter().enumerate() {
        // a graph from before sizes were kept: the file's length per row
        let per_row = file.len / file.rows().max(1) as u64;
        let mut run: Vec<usize> = Vec::new();
        let (mut rows, mut bytes) = (0usize, 0u64);
        for (g, &n) in file.row_groups.iter().enumerate() {
            let b = file.row_group_bytes.get(g).copied().unwrap_or(per_row.saturating_mul(n as u64));
            if !run.is_empty() && bytes.saturating_add(b) > budget {
                runs.push((f, std::mem::take(&mut run), rows));
                (rows, bytes) = (0, 0);
            }
            run.push(g);
            rows = rows.saturating_add(n);
            bytes = bytes.saturating_add(b);
        }
        if !run.is_empty() {
            runs.push((f, run, rows));
        }
    }
    balance(&mut runs, ctx.opts.parallelism, budget / 8, |f, g| {
        let file = &files[f];
        let per_row = file.len / file.rows().max(1) as u64;
        let n = file.row_groups.get(g).copied().unwrap_or(0);
        (n, file.row_group_bytes.get(g).copied().unwrap_or(per_row.saturating_mul(n as u64)))
    });
    if runs.is_empty() {
        runs.push((0, vec![], 0)); // no row groups at all: one empty chunk keeps the schema
    }
    ctx.check_grid(&[runs.len()], 1)?;
    let (mut chunks, mut nsplit) = (Vec::with_capacity(runs.len()), Vec::with_capacity(runs.len()));
    for (i, (f, row_groups, rows)) in runs.into_iter().enumerate() {
        let file = Box::new(files[f].clone());
        let filter = filter.map(|f| Box::new(f.clone()));
        // a filtered read's rows are known once read
        let rows = if filter.is_some() { Dim::Unknown } else { Dim::Known(rows) };
        let op = ChunkOp::Frame(FrameChunkOp::ReadParquet { file, row_groups, columns: columns.to_vec(), filter });
        chunks.push(ctx.add(op, ChunkInputs::new(), vec![rows, width], None, vec![i, 0]));
        nsplit.push(rows);
    }
    Ok(Tiled::Done(Layout { nsplits: vec![nsplit, vec![width]], chunks }))
}

/// Runs of row groups cut until their number is a multiple of `parallelism`
/// (every thread has a chunk in the last round), halving the run of most row
/// groups each time; runs smaller than `min_bytes` or of one row group are
/// not cut. `size(file, group)` gives a row group's rows and bytes.
///
/// Three runs of two row groups on two threads take four rounds of one run;
/// cut into 2, 2, 1 and 1 row groups, they take three.
fn balance(
    runs: &mut Vec<(usize, Vec<usize>, usize)>,
    parallelism: usize,
    min_bytes: u64,
    size: impl Fn(usize, usize) -> (usize, u64),
) {
    if parallelism < 2 {
        return;
    }
    while !runs.len().is_multiple_of(parallelism) {
        let bytes = |r: &(usize, Vec<usize>, usize)| r.1.iter().map(|&g| size(r.0, g).1).sum::<u64>();
        let Some(at) = (0..runs.len())
            .filter(|&i| runs[i].1.len() > 1 && bytes(&runs[i]) >= min_bytes)
            .max_by_key(|&i| (runs[i].1.len(), std::cmp::Reverse(i)))
        else {
            return;
        };
        let (f, mut first, _) = runs[at].clone();
        let second = first.split_off(first.len() / 2);
        let rows = |groups: &[usize]| groups.iter().map(|&g| size(f, g).0).sum::<usize>();
        let (a, b) = (rows(&first), rows(&second));
        runs[at] = (f, first, a);
        runs.insert(at + 1, (f, second, b));
    }
}

/// CSV files: a chunk per byte range of about the chunk budget (the kernel
/// moves each range to line boundaries), or per file when not split; row
/// counts are known once read.
pub(super) fn read_csv(
    ctx: &mut Ctx,
    files: &[mars_ir::SourceFile],
    format: &mars_ir::CsvFormat,
    file_schema: &mars_ir::arrow_schema::SchemaRef,
    columns: &[String],
) -> TileResult<Tiled> {
    let indices = mars_ir::frame::column_indices(file_schema, columns)?;
    let width = Dim::Known(columns.len());
    let budget = ctx.opts.chunk_bytes.max(1) as u64;
    let mut ranges: Vec<(usize, u64, u64)> = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let step = if format.split { budget } else { file.len.max(1) };
        let mut start = 0u64;
        loop {
            let end = start.saturating_add(step).min(file.len);
            ranges.push((f, start, end));
            if end >= file.len {
                break;
            }
            start = end;
        }
    }
    ctx.check_grid(&[ranges.len()], 1)?;
    let mut chunks = Vec::with_capacity(ranges.len());
    for (i, (f, start, end)) in ranges.into_iter().enumerate() {
        let op = ChunkOp::Frame(FrameChunkOp::ReadCsv(Box::new(mars_ir::CsvChunk {
            file: files[f].clone(),
            start,
            end,
            format: format.clone(),
            schema: file_schema.clone(),
            columns: indices.clone(),
        })));
        chunks.push(ctx.add(op, ChunkInputs::new(), vec![Dim::Unknown, width], None, vec![i, 0]));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; chunks.len()], vec![width]], chunks }))
}

/// The `parts - 1` pivots that split the rows of `input` into `parts`
/// ranges of about equal size by the key columns `by`: a regular sample of
/// each chunk, then pivots evenly spaced through all the samples (one chunk).
pub(super) fn sampled_pivots(
    ctx: &mut Ctx,
    input: &Layout,
    by: &[usize],
    descending: &[bool],
    parts: usize,
) -> mars_ir::ChunkId {
    let per = (32 * parts).min(4096);
    let width = Dim::Known(by.len() + 2);
    let samples: ChunkInputs = input
        .chunks
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let op = ChunkOp::Frame(FrameChunkOp::SortSample { by: by.to_vec(), per, chunk: i });
            ctx.add(op, &[c][..], vec![Dim::Unknown, width], None, vec![i, 0])
        })
        .collect();
    let op = ChunkOp::Frame(FrameChunkOp::SortPivots { descending: descending.to_vec(), parts });
    ctx.add(op, samples, vec![Dim::Known(parts.saturating_sub(1)), width], None, vec![0, 0])
}

/// `sort_values`: one chunk sorts alone; several sort by regular sampling:
/// a sample of each chunk, pivots from all samples, each chunk split by the
/// pivots into ranges, and range `p` of every chunk sorted together into
/// output chunk `p` (so the chunks are in order).
pub(super) fn sort(ctx: &mut Ctx, by: &[(String, bool)], input: &Layout, in_meta: &Meta) -> TileResult<Tiled> {
    let (cols, descending) = sort_keys(by, in_meta)?;
    let width = input.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
    let local = |by: Vec<usize>, part: Option<usize>| {
        ChunkOp::Frame(FrameChunkOp::SortLocal { by, descending: descending.clone(), part })
    };
    let n = input.chunks.len();
    if n <= 1 {
        let chunks: Vec<_> = input
            .chunks
            .iter()
            .map(|&c| ctx.add(local(cols.clone(), None), &[c][..], ctx_shape(ctx, c), None, vec![0, 0]))
            .collect();
        return Ok(Tiled::Done(Layout { nsplits: input.nsplits.clone(), chunks }));
    }
    ctx.check_grid(&[4 * n + 1], 1)?;
    let pivots = sampled_pivots(ctx, input, &cols, &descending, n);
    let maps: ChunkInputs = input
        .chunks
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let op = ChunkOp::Frame(FrameChunkOp::RangePartition {
                by: cols.clone(),
                descending: descending.clone(),
                chunk: Some(i),
            });
            ctx.add(op, &[c, pivots][..], vec![Dim::Unknown, width], None, vec![i, 0])
        })
        .collect();
    // range `p`: piece `p` of every map, sorted together
    let chunks = (0..n)
        .map(|p| ctx.add(local(cols.clone(), Some(p)), maps.clone(), vec![Dim::Unknown, width], None, vec![p, 0]))
        .collect();
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; n], vec![width]], chunks }))
}

fn ctx_shape(ctx: &Ctx, c: mars_ir::ChunkId) -> Vec<Dim> {
    ctx.shape(c).to_vec()
}

/// `sort_values(..).head(n)`: the top `n` rows of each chunk, then the top
/// `n` of those, in one chunk (ties keep chunk, then row order).
pub(super) fn sort_head(
    ctx: &mut Ctx,
    by: &[(String, bool)],
    n: usize,
    input: &Layout,
    in_meta: &Meta,
) -> TileResult<Tiled> {
    let (cols, descending) = sort_keys(by, in_meta)?;
    let width = input.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::TopK { by: cols, descending, n }));
    let tops: ChunkInputs = if input.chunks.len() == 1 {
        input.chunks.iter().copied().collect()
    } else {
        let mut tops = ChunkInputs::new();
        for (i, &c) in input.chunks.iter().enumerate() {
            tops.push(ctx.add(op.clone(), &[c][..], vec![Dim::Unknown, width], None, vec![i, 0]));
        }
        tops
    };
    let out = ctx.add(op, tops, vec![Dim::Unknown, width], None, vec![0, 0]);
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown], vec![width]], chunks: vec![out] }))
}

/// `drop_duplicates`: each chunk's distinct rows, then rounds of fan-in
/// `combine_size` over those (in chunk order, so first occurrences stay
/// first) down to one chunk.
pub(super) fn drop_duplicates(ctx: &mut Ctx, input: &Layout) -> TileResult<Tiled> {
    let width = input.nsplits.get(1).and_then(|s| s.first()).copied().unwrap_or(Dim::Unknown);
    let op = Arc::new(ChunkOp::Frame(FrameChunkOp::Distinct));
    let cs = ctx.opts.combine_size.max(2);
    let mut level: Vec<mars_ir::ChunkId> = Vec::with_capacity(input.chunks.len());
    for (i, &c) in input.chunks.iter().enumerate() {
        level.push(ctx.add(op.clone(), &[c][..], vec![Dim::Unknown, width], None, vec![i, 0]));
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(cs));
        for (i, group) in level.chunks(cs).enumerate() {
            let id = match group {
                [one] => *one, // already distinct
                _ => ctx.add(
                    op.clone(),
                    group.iter().copied().collect::<ChunkInputs>(),
                    vec![Dim::Unknown, width],
                    None,
                    vec![i, 0],
                ),
            };
            next.push(id);
        }
        level = next;
    }
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; level.len()], vec![width]], chunks: level }))
}

/// The positions and directions of a sort's key columns.
fn sort_keys(by: &[(String, bool)], in_meta: &Meta) -> TileResult<(Vec<usize>, Vec<bool>)> {
    let Meta::Frame { schema, .. } = in_meta else {
        return Err(mars_ir::IrError::Invalid("sort_values needs a dataframe input".into()).into());
    };
    let names: Vec<String> = by.iter().map(|(c, _)| c.clone()).collect();
    let cols = mars_ir::frame::column_indices(schema, &names)?;
    Ok((cols, by.iter().map(|(_, asc)| !asc).collect()))
}

/// Quantiles of a sorted column: once its chunks' lengths are known, the
/// rows at the ranks the quantiles need are taken from the chunks holding
/// them, and one chunk interpolates.
pub(super) fn quantiles(ctx: &mut Ctx, qs: &[f64], input: &Layout, in_meta: &Meta) -> TileResult<Tiled> {
    let need: Vec<mars_ir::ChunkId> =
        input.chunks.iter().copied().filter(|&c| !ctx.shape(c).first().is_some_and(|d| d.is_known())).collect();
    if !need.is_empty() {
        return Ok(Tiled::Need(need));
    }
    let name = match in_meta {
        Meta::Frame { schema, .. } => schema.fields().first().map(|f| f.name().clone()).unwrap_or_default(),
        Meta::Tensor { .. } => String::new(),
    };
    let lens: Vec<usize> = input.chunks.iter().map(|&c| ctx.shape(c)[0].known().unwrap_or(0)).collect();
    let n: usize = lens.iter().sum();
    let ranks = mars_ir::quantile_ranks(qs, n);
    let (mut takes, mut start) = (ChunkInputs::new(), 0usize);
    for (i, (&c, &len)) in input.chunks.iter().zip(&lens).enumerate() {
        let rows: Vec<usize> = ranks.iter().filter(|&&r| r >= start && r < start + len).map(|&r| r - start).collect();
        start += len;
        if !rows.is_empty() {
            let k = rows.len();
            let op = ChunkOp::Frame(FrameChunkOp::TakeRows { rows });
            takes.push(ctx.add(op, &[c][..], vec![Dim::Known(k), Dim::Known(1)], None, vec![i, 0]));
        }
    }
    let op = ChunkOp::Frame(FrameChunkOp::Quantiles { qs: qs.to_vec(), n, name });
    let out = ctx.add(op, takes, vec![Dim::Known(qs.len()), Dim::Known(1)], None, vec![0, 0]);
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Known(qs.len())], vec![Dim::Known(1)]], chunks: vec![out] }))
}

/// `describe()`: its inputs (a stats row and a quantile column per column)
/// are one chunk each; one chunk lays them out as the table.
pub(super) fn describe(ctx: &mut Ctx, columns: &[String], inputs: &[Layout]) -> TileResult<Tiled> {
    let mut ins = ChunkInputs::new();
    for l in inputs {
        match l.chunks.as_slice() {
            [c] => ins.push(*c),
            other => {
                return Err(mars_ir::IrError::Invalid(format!(
                    "describe's inputs are one chunk each, got {}",
                    other.len()
                ))
                .into())
            }
        }
    }
    let width = Dim::Known(columns.len() + 1);
    let op = ChunkOp::Frame(FrameChunkOp::Describe { columns: columns.to_vec() });
    let out = ctx.add(op, ins, vec![Dim::Known(8), width], None, vec![0, 0]);
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Known(8)], vec![width]], chunks: vec![out] }))
}

#[cfg(test)]
mod tests {
    use super::balance;

    /// Runs of (file, row groups, rows) from row group lists, 10 rows and
    /// 100 bytes a group.
    fn runs(groups: &[&[usize]]) -> Vec<(usize, Vec<usize>, usize)> {
        groups.iter().map(|g| (0, g.to_vec(), g.len() * 10)).collect()
    }

    fn groups(runs: &[(usize, Vec<usize>, usize)]) -> Vec<Vec<usize>> {
        runs.iter().map(|r| r.1.clone()).collect()
    }

    #[test]
    fn runs_are_cut_until_every_thread_has_one_in_the_last_round() {
        let size = |_: usize, _: usize| (10, 100);
        // three runs of two groups on two threads: the first is halved
        let mut r = runs(&[&[0, 1], &[2, 3], &[4, 5]]);
        balance(&mut r, 2, 0, size);
        assert_eq!(groups(&r), vec![vec![0], vec![1], vec![2, 3], vec![4, 5]]);
        assert_eq!(r.iter().map(|x| x.2).collect::<Vec<_>>(), vec![10, 10, 20, 20]);
        // the run of most groups goes first; three threads
        let mut r = runs(&[&[0], &[1, 2, 3, 4]]);
        balance(&mut r, 3, 0, size);
        assert_eq!(groups(&r), vec![vec![0], vec![1, 2], vec![3, 4]]);
        // one thread, a multiple already, single groups, or runs too small: unchanged
        for (p, min, rs) in [
            (1, 0, runs(&[&[0, 1], &[2, 3], &[4, 5]])),
            (2, 0, runs(&[&[0, 1], &[2, 3]])),
            (2, 0, runs(&[&[0], &[1], &[2]])),
            (2, 1000, runs(&[&[0, 1], &[2, 3], &[4, 5]])),
        ] {
            let mut r = rs.clone();
            balance(&mut r, p, min, size);
            assert_eq!(r, rs, "{p} threads, runs of at least {min} bytes cut");
        }
    }
}
