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
/// runs would leave threads idle in the last round ([`balance`]) or load
/// them unevenly ([`even_out`]: then a chunk may take part of a row group).
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
        let mut run: Vec<usize> = Vec::new();
        let (mut rows, mut bytes) = (0usize, 0u64);
        for (g, &n) in file.row_groups.iter().enumerate() {
            let b = group_bytes(file, g);
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
        (files[f].row_groups.get(g).copied().unwrap_or(0), group_bytes(&files[f], g))
    });
    let mut parts: Vec<Part> = match even_out(&runs, files, ctx.opts.parallelism, budget) {
        Some(parts) => parts,
        None => runs.into_iter().map(|(file, groups, rows)| Part { file, groups, rows, range: None }).collect(),
    };
    if parts.is_empty() {
        // no row groups at all: one empty chunk keeps the schema
        parts.push(Part { file: 0, groups: vec![], rows: 0, range: None });
    }
    ctx.check_grid(&[parts.len()], 1)?;
    let (mut chunks, mut nsplit) = (Vec::with_capacity(parts.len()), Vec::with_capacity(parts.len()));
    for (i, part) in parts.into_iter().enumerate() {
        let file = Box::new(files[part.file].clone());
        let filter = filter.map(|f| Box::new(f.clone()));
        // a filtered read's rows are known once read
        let rows = if filter.is_some() { Dim::Unknown } else { Dim::Known(part.rows) };
        let op = ChunkOp::Frame(FrameChunkOp::ReadParquet {
            file,
            row_groups: part.groups,
            rows: part.range,
            columns: columns.to_vec(),
            filter,
        });
        chunks.push(ctx.add(op, ChunkInputs::new(), vec![rows, width], None, vec![i, 0]));
        nsplit.push(rows);
    }
    Ok(Tiled::Done(Layout { nsplits: vec![nsplit, vec![width]], chunks }))
}

/// A row group's uncompressed bytes (all columns), or, in a graph from
/// before sizes were kept, its rows' share of the file's length.
fn group_bytes(file: &mars_ir::SourceFile, g: usize) -> u64 {
    let n = file.row_groups.get(g).copied().unwrap_or(0);
    match file.row_group_bytes.get(g) {
        Some(&b) => b,
        None => (file.len / file.rows().max(1) as u64).saturating_mul(n as u64),
    }
}

/// A parquet read's chunk: row groups of one file and, with `range`, only
/// the file's rows `start..end` of them; `rows` in all.
#[derive(Debug, PartialEq)]
struct Part {
    file: usize,
    groups: Vec<usize>,
    rows: usize,
    range: Option<(usize, usize)>,
}

/// When `runs` would load `parallelism` threads unevenly (the busiest of a
/// longest-first assignment over 10% above an even share of the bytes),
/// each file is cut instead into pieces of about equal bytes, as many in
/// all as there are runs or the next multiple of `parallelism` (each file in
/// no fewer pieces than it had runs, each piece within the chunk `budget`
/// and one row at least), a cut within 10% of a piece from a row group's
/// edge moved onto it. A file whose pieces would be under an eighth of the
/// budget keeps its runs.
///
/// TPC-H's orders at SF 1 has row groups of 1M and 0.45M rows: two threads
/// reading one each finish 2.2x apart; cut into two pieces of 0.73M rows,
/// they finish together. `None` when the runs stay.
fn even_out(
    runs: &[(usize, Vec<usize>, usize)],
    files: &[mars_ir::SourceFile],
    parallelism: usize,
    budget: u64,
) -> Option<Vec<Part>> {
    if parallelism < 2 || runs.is_empty() {
        return None;
    }
    // sizes from a graph file may be anything: sums saturate
    let add = |a: u64, b: u64| a.saturating_add(b);
    let bytes: Vec<u64> =
        runs.iter().map(|(f, gs, _)| gs.iter().map(|&g| group_bytes(&files[*f], g)).fold(0, add)).collect();
    let total: u64 = bytes.iter().copied().fold(0, add);
    // the busiest thread when the biggest runs go first, each to the least loaded thread
    let mut sorted = bytes.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut load = vec![0u64; parallelism];
    for b in sorted {
        let least = load.iter_mut().min().expect("parallelism >= 2");
        *least = least.saturating_add(b);
    }
    let busiest = load.into_iter().max().unwrap_or(0);
    let even = total.div_ceil(parallelism as u64);
    if total == 0 || busiest.saturating_mul(10) <= even.saturating_mul(11) {
        return None;
    }
    let pieces = runs.len().next_multiple_of(parallelism);
    let share = (total / pieces as u64).max(1);
    let min_bytes = budget / 8;
    let file_bytes: Vec<u64> =
        files.iter().map(|file| (0..file.row_groups.len()).map(|g| group_bytes(file, g)).fold(0, add)).collect();
    // pieces per file: about its bytes in shares, never fewer than the file
    // had runs nor any over the budget; `None` keeps its runs, as pieces this
    // small would cost more than they even out
    let mut runs_of: Vec<Vec<&(usize, Vec<usize>, usize)>> = vec![Vec::new(); files.len()];
    for r in runs {
        runs_of[r.0].push(r);
    }
    let mut counts: Vec<Option<usize>> = files
        .iter()
        .enumerate()
        .map(|(f, file)| {
            let had = runs_of[f].len() as u64;
            let k =
                (file_bytes[f].saturating_add(share / 2) / share).max(file_bytes[f].div_ceil(budget.max(1))).max(had);
            let k = k.clamp(1, file.rows().max(1) as u64);
            (file.rows() > 0 && file_bytes[f] / k >= min_bytes).then_some(k as usize)
        })
        .collect();
    // then one more piece at a time for the file of the biggest pieces, until
    // every thread has one in the last round (or no file can be cut finer)
    let kept_runs: usize = (0..files.len()).filter(|&f| counts[f].is_none()).map(|f| runs_of[f].len()).sum();
    while !(counts.iter().flatten().sum::<usize>() + kept_runs).is_multiple_of(parallelism) {
        let finer = (0..files.len())
            .filter_map(|f| Some((f, counts[f]?)))
            .filter(|&(f, k)| k < files[f].rows() && file_bytes[f] / (k as u64 + 1) >= min_bytes)
            .max_by_key(|&(f, k)| (file_bytes[f] / k as u64, std::cmp::Reverse(f)));
        let Some((f, k)) = finer else { break };
        counts[f] = Some(k + 1);
    }
    let mut parts = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let rows = file.rows();
        let Some(k) = counts[f] else {
            let mine = runs_of[f].iter();
            parts.extend(mine.map(|(file, groups, rows)| Part {
                file: *file,
                groups: groups.clone(),
                rows: *rows,
                range: None,
            }));
            continue;
        };
        let file_bytes = file_bytes[f];
        // the rows and bytes before each group (and in all, last)
        let (mut edges, mut before) = (vec![0usize; file.row_groups.len() + 1], vec![0u64; file.row_groups.len() + 1]);
        for (g, &n) in file.row_groups.iter().enumerate() {
            edges[g + 1] = edges[g].saturating_add(n);
            before[g + 1] = before[g].saturating_add(group_bytes(file, g));
        }
        let mut cuts = vec![0usize];
        for j in 1..k {
            let want = (file_bytes as u128 * j as u128 / k as u128) as u64;
            cuts.push(row_at(&edges, &before, want, share / 10).max(cuts[j - 1]));
        }
        cuts.push(rows);
        cuts.dedup();
        for w in cuts.windows(2) {
            let (start, end) = (w[0], w[1]);
            // the groups with rows in start..end
            let (from, to) = (edges.partition_point(|&e| e <= start), edges.partition_point(|&e| e < end));
            let groups: Vec<usize> = (from.saturating_sub(1)..to)
                .filter(|&g| edges[g] < end && edges[g + 1] > start.max(edges[g]))
                .collect();
            let whole = groups.first().is_some_and(|&g| edges[g] == start)
                && groups.last().is_some_and(|&g| edges[g + 1] == end);
            parts.push(Part { file: f, groups, rows: end - start, range: (!whole).then_some((start, end)) });
        }
    }
    Some(parts)
}

/// The file's row where its first `bytes` end, each row group's bytes
/// spread evenly over its rows (`edges` and `before`: the rows and bytes
/// before each group, and in all); on a row group's edge when one is
/// within `snap` bytes.
fn row_at(edges: &[usize], before: &[u64], bytes: u64, snap: u64) -> usize {
    // the group where the bytes end: the last that starts at or before them
    // and has any (an empty group ends where it starts)
    let g = before.partition_point(|&b| b <= bytes).saturating_sub(1);
    if g + 1 >= before.len() {
        return edges.last().copied().unwrap_or(0);
    }
    let (into, b, n) = (bytes - before[g], before[g + 1] - before[g], edges[g + 1] - edges[g]);
    if into <= snap {
        return edges[g];
    }
    if b - into <= snap {
        return edges[g + 1];
    }
    edges[g].saturating_add((into as u128 * n as u128 / b.max(1) as u128) as usize)
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
        let bytes = |r: &(usize, Vec<usize>, usize)| r.1.iter().fold(0u64, |a, &g| a.saturating_add(size(r.0, g).1));
        let Some(at) = (0..runs.len())
            .filter(|&i| runs[i].1.len() > 1 && bytes(&runs[i]) >= min_bytes)
            .max_by_key(|&i| (runs[i].1.len(), std::cmp::Reverse(i)))
        else {
            return;
        };
        let (f, mut first, _) = runs[at].clone();
        let second = first.split_off(first.len() / 2);
        let rows = |groups: &[usize]| groups.iter().fold(0usize, |a, &g| a.saturating_add(size(f, g).0));
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
    use super::{balance, even_out, Part};

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

    fn file(groups: &[usize], bytes: &[u64]) -> mars_ir::SourceFile {
        mars_ir::SourceFile {
            path: "t.parquet".into(),
            len: 1,
            modified_ns: 0,
            row_groups: groups.to_vec(),
            row_group_bytes: bytes.to_vec(),
        }
    }

    /// Whole-group runs of each file, one group a run.
    fn group_runs(files: &[mars_ir::SourceFile]) -> Vec<(usize, Vec<usize>, usize)> {
        let mut runs = Vec::new();
        for (f, file) in files.iter().enumerate() {
            for (g, &n) in file.row_groups.iter().enumerate() {
                runs.push((f, vec![g], n));
            }
        }
        runs
    }

    #[test]
    fn uneven_row_groups_are_cut_into_even_pieces() {
        // TPC-H orders at SF 1: groups of 1M and 0.45M rows, 79 and 35 MB
        let orders = [file(&[1_048_576, 451_424], &[79_000_000, 35_000_000])];
        let parts = even_out(&group_runs(&orders), &orders, 2, 128 << 20).expect("cut");
        let split = 1_048_576 * 57 / 79; // about half the bytes, within group 0
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0].groups, vec![0]);
        assert_eq!(parts[1].groups, vec![0, 1]);
        let (a, b) = (parts[0].range.expect("part of group 0"), parts[1].range.expect("part of group 0"));
        assert_eq!((a.0, a.1, b.0, b.1), (0, a.1, a.1, 1_500_000));
        assert!(a.1.abs_diff(split) < 1000, "cut at row {}", a.1);
        assert_eq!(parts[0].rows + parts[1].rows, 1_500_000);
        // even enough already (lineitem: five groups of 65 MB, one of 46), or one thread: kept
        let lineitem = [file(&[1_048_576; 6], &[65, 65, 65, 65, 65, 46].map(|b| b * 1_000_000))];
        assert_eq!(even_out(&group_runs(&lineitem), &lineitem, 2, 128 << 20), None);
        assert_eq!(even_out(&group_runs(&orders), &orders, 1, 128 << 20), None);
        // pieces of at least an eighth of the budget: 40 bytes in two 20-byte
        // pieces under a budget of 128, but not of 512 (the runs stay)
        let small = [file(&[30, 10], &[30, 10])];
        let parts = even_out(&group_runs(&small), &small, 2, 128).expect("uneven");
        let piece = |groups: Vec<usize>, range| Part { file: 0, groups, rows: 20, range: Some(range) };
        assert_eq!(parts, vec![piece(vec![0], (0, 20)), piece(vec![0, 1], (20, 40))]);
        let parts = even_out(&group_runs(&small), &small, 2, 512).expect("uneven");
        let run = |g: usize, rows| Part { file: 0, groups: vec![g], rows, range: None };
        assert_eq!(parts, vec![run(0, 30), run(1, 10)]);
    }

    /// Over many files and row groups, the pieces cover every row of every
    /// file once, in order, each naming exactly the groups its rows are in.
    #[test]
    fn even_pieces_cover_every_row_once() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let files: Vec<mars_ir::SourceFile> = (0..1 + next(3))
                .map(|_| {
                    let groups: Vec<usize> = (0..1 + next(5)).map(|_| next(2000) as usize).collect();
                    let bytes: Vec<u64> = groups.iter().map(|&n| n as u64 * (1 + next(20))).collect();
                    file(&groups, &bytes)
                })
                .collect();
            let (threads, budget) = (1 + next(4) as usize, 1 + next(40_000));
            let Some(parts) = even_out(&group_runs(&files), &files, threads, budget) else { continue };
            for (f, file) in files.iter().enumerate() {
                let start_of = |g: usize| file.row_groups[..g].iter().sum::<usize>();
                let mut at = 0;
                for p in parts.iter().filter(|p| p.file == f) {
                    let (start, end) = p.range.unwrap_or((start_of(p.groups[0]), at + p.rows));
                    assert_eq!(start, at, "{files:?} {parts:?}");
                    assert!(end > start && p.rows == end - start);
                    let overlapping: Vec<usize> = (0..file.row_groups.len())
                        .filter(|&g| {
                            let s = start_of(g);
                            file.row_groups[g] > 0 && s < end && s + file.row_groups[g] > start
                        })
                        .collect();
                    assert_eq!(p.groups, overlapping);
                    assert_eq!(file.rows_of(&p.groups, p.range), p.rows);
                    at = end;
                }
                assert_eq!(at, file.rows(), "{files:?} {parts:?}");
            }
        }
    }

    /// A file of 100k one-row groups of uneven bytes, cut into many pieces: every row once (each cut found by a search, each piece's
    /// groups too, not by a walk over all the groups per piece).
    #[test]
    fn a_file_of_many_row_groups_is_cut_in_one_pass() {
        let n = 100_000;
        // one big group, then 99,999 of a few bytes
        let bytes: Vec<u64> = (0..n).map(|g| if g == 0 { 1 << 20 } else { 1 + g as u64 % 3 }).collect();
        let files = [file(&vec![1; n], &bytes)];
        let parts = even_out(&group_runs(&files), &files, 2, 64).expect("uneven");
        assert!(parts.len() > 1000, "{} pieces", parts.len());
        let mut at = 0;
        for p in &parts {
            assert_eq!(p.groups.first().copied(), Some(at), "{p:?}");
            at += p.rows;
        }
        assert_eq!(at, n);
        assert_eq!(files[0].rows_of(&(0..n).collect::<Vec<_>>(), Some((10, n - 10))), n - 20);
    }

    /// Sizes from a graph file may be anything: row groups of u64::MAX bytes
    /// and of near usize::MAX rows tile (into pieces that cover the rows)
    /// without overflowing.
    #[test]
    fn absurd_row_group_sizes_do_not_overflow() {
        let files =
            [file(&[usize::MAX / 2, 3, usize::MAX / 2], &[u64::MAX, 1, u64::MAX]), file(&[5, 7], &[u64::MAX - 1, 2])];
        for threads in [2, 3, 7] {
            let mut runs = vec![(0, vec![0, 1, 2], usize::MAX), (1, vec![0, 1], 12)];
            let size = |f: usize, g: usize| (files[f].row_groups[g], files[f].row_group_bytes[g]);
            balance(&mut runs, threads, 0, size);
            assert_eq!(runs.iter().map(|r| r.1.len()).sum::<usize>(), 5, "every group in a run once: {runs:?}");
            if let Some(parts) = even_out(&group_runs(&files), &files, threads, 1 << 20) {
                for (f, file) in files.iter().enumerate() {
                    let rows: usize = parts.iter().filter(|p| p.file == f).fold(0, |a, p| a.saturating_add(p.rows));
                    assert_eq!(rows, file.rows(), "{threads} threads: {parts:?}");
                }
            }
        }
    }
}
