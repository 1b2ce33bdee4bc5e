//! Streamed frame pipelines: a chain of row-wise ops run over cache-sized
//! batches of one source, so no intermediate column of the whole chunk is
//! ever made (see [`PipelineChunk`]).
//!
//! Each batch runs through every stage with the ordinary kernels. The last
//! stage's outputs are concatenated; a last `GroupPartial` instead merges
//! the batches' partial states, unless the first batch shows about as many
//! groups as rows (then per-batch partials would only add work, and its
//! input rows are gathered for one partial at the end).

use super::frame;
use crate::data::ChunkData;
use crate::error::KernelError;
use arrow::record_batch::RecordBatch;
use mars_ir::agg::AggFn;
use mars_ir::{FrameChunkOp, PipeArg, PipelineChunk};
use std::sync::Arc;

fn err(msg: impl Into<String>) -> KernelError {
    KernelError(msg.into())
}

type Batches<'a> = Box<dyn Iterator<Item = Result<RecordBatch, KernelError>> + 'a>;

/// `batch` cut into slices of `rows` (one empty slice when it has no rows,
/// so the stages still give their output's columns).
fn slices(batch: RecordBatch, rows: usize) -> Batches<'static> {
    let n = batch.num_rows();
    let starts = (0..n.max(1)).step_by(rows);
    Box::new(starts.map(move |s| Ok(batch.slice(s, rows.min(n - s.min(n))))))
}

/// The source's rows in batches of about `rows`.
fn source<'a>(p: &PipelineChunk, inputs: &'a [Arc<ChunkData>], rows: usize) -> Result<Batches<'a>, KernelError> {
    match &p.source {
        Some(FrameChunkOp::ReadParquet { file, row_groups, rows: range, columns, filter }) => {
            let scan =
                crate::io::ParquetBatches::open(file, row_groups, *range, columns, filter.as_deref(), Some(rows))?;
            // a read with no rows left still gives the columns
            let empty = RecordBatch::new_empty(scan.schema().clone());
            let mut scan = scan.peekable();
            Ok(match scan.peek() {
                Some(_) => Box::new(scan),
                None => Box::new(std::iter::once(Ok(empty))),
            })
        }
        Some(FrameChunkOp::ReadCsv(c)) => Ok(slices(crate::io::read_csv(c)?, rows)),
        Some(other) => Err(err(format!("a pipeline cannot read from {}", other.name()))),
        None => match inputs.first().map(|d| &**d) {
            Some(ChunkData::Frame(b)) => Ok(slices(b.clone(), rows)),
            _ => Err(err("a pipeline without a reader reads a frame as its input 0")),
        },
    }
}

/// What the last stage's outputs become.
enum Sink<'a> {
    /// Concatenated.
    Rows(Vec<RecordBatch>),
    /// A `GroupPartial`'s input, as the columns it reads: see [`Groups`].
    Group(Groups<'a>),
}

/// The rows a last `GroupPartial` reads (its keys, then each aggregation's
/// column) gathered to at least a batch, then reduced to partial states
/// that are merged at the end. When the first such partial has about as
/// many groups as rows, per-batch partials would only add work: the rows
/// are then all gathered for one partial at the end.
struct Groups<'a> {
    keys: &'a [usize],
    aggs: &'a [(usize, AggFn)],
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    states: Vec<RecordBatch>,
    /// Many groups: every row is gathered.
    gather: bool,
}

impl<'a> Groups<'a> {
    fn new(keys: &'a [usize], aggs: &'a [(usize, AggFn)]) -> Self {
        Groups { keys, aggs, pending: Vec::new(), pending_rows: 0, states: Vec::new(), gather: false }
    }

    /// The partial's keys and aggregations over the gathered columns.
    fn renumbered(&self) -> (Vec<usize>, Vec<(usize, AggFn)>) {
        let n = self.keys.len();
        ((0..n).collect(), self.aggs.iter().enumerate().map(|(i, a)| (n + i, a.1)).collect())
    }

    fn push(&mut self, rows: &RecordBatch, batch_rows: usize) -> Result<(), KernelError> {
        let at: Vec<usize> = self.keys.iter().copied().chain(self.aggs.iter().map(|a| a.0)).collect();
        self.pending.push(rows.project(&at)?);
        self.pending_rows += rows.num_rows();
        if !self.gather && self.pending_rows >= batch_rows {
            self.reduce()?;
        }
        Ok(())
    }

    /// The pending rows as one partial state (or, when it shows about as
    /// many groups as rows, kept for the end).
    fn reduce(&mut self) -> Result<(), KernelError> {
        let rows = concat(std::mem::take(&mut self.pending))?;
        self.pending_rows = 0;
        let (keys, aggs) = self.renumbered();
        let state = super::groupby::partial(&rows, &keys, &aggs)?;
        if self.states.is_empty() && rows.num_rows() >= PROBE_ROWS && state.num_rows() * 8 > rows.num_rows() {
            self.gather = true;
            self.pending = vec![rows];
        } else {
            self.states.push(state);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, KernelError> {
        if !self.gather && !self.pending.is_empty() {
            self.reduce()?;
        }
        let (keys, aggs) = self.renumbered();
        if self.gather {
            return super::groupby::partial(&concat(self.pending)?, &keys, &aggs);
        }
        match <[RecordBatch; 1]>::try_from(self.states) {
            Ok([one]) => Ok(one),
            Err(states) => {
                let refs: Vec<&RecordBatch> = states.iter().collect();
                let funcs: Vec<AggFn> = aggs.iter().map(|a| a.1).collect();
                super::groupby::combine(&refs, keys.len(), &funcs, None)
            }
        }
    }
}

/// Below this many rows a first partial says little about the groups.
const PROBE_ROWS: usize = 4096;

/// Run a pipeline chunk.
pub fn run(p: &PipelineChunk, inputs: &[Arc<ChunkData>]) -> Result<ChunkData, KernelError> {
    let Some((last, body)) = p.stages.split_last() else {
        return Err(err("a pipeline needs at least one stage"));
    };
    let batch_rows = p.batch_rows.max(1);
    let mut sink = match &last.op {
        FrameChunkOp::GroupPartial { keys, aggs } => Sink::Group(Groups::new(keys, aggs)),
        _ => Sink::Rows(Vec::new()),
    };
    let mut outs: Vec<Arc<ChunkData>> = Vec::with_capacity(p.stages.len());
    for batch in source(p, inputs, batch_rows)? {
        let batch = Arc::new(ChunkData::Frame(batch?));
        outs.clear();
        for stage in body {
            let args = args(&stage.args, &batch, &outs, inputs)?;
            outs.push(Arc::new(frame::run(&stage.op, &args)?));
        }
        let args = args(&last.args, &batch, &outs, inputs)?;
        match &mut sink {
            Sink::Rows(rows) => rows.push(frame_of(frame::run(&last.op, &args)?)?),
            Sink::Group(groups) => groups.push(&one_frame(&args)?, batch_rows)?,
        }
    }
    Ok(ChunkData::Frame(match sink {
        Sink::Rows(rows) => concat(rows)?,
        Sink::Group(groups) => groups.finish()?,
    }))
}

/// The one frame a `GroupPartial` stage reads.
fn one_frame(args: &[Arc<ChunkData>]) -> Result<RecordBatch, KernelError> {
    match args {
        [one] => frame_of((**one).clone()),
        _ => Err(err(format!("GroupPartial takes 1 input, got {}", args.len()))),
    }
}

/// A stage's arguments for the current batch.
fn args(
    args: &[PipeArg],
    batch: &Arc<ChunkData>,
    outs: &[Arc<ChunkData>],
    inputs: &[Arc<ChunkData>],
) -> Result<Vec<Arc<ChunkData>>, KernelError> {
    args.iter()
        .map(|a| match *a {
            PipeArg::Source => Ok(batch.clone()),
            PipeArg::Stage(i) => outs.get(i).cloned().ok_or_else(|| err(format!("pipeline stage {i} has not run yet"))),
            PipeArg::Input(i) => {
                inputs.get(i).cloned().ok_or_else(|| err(format!("pipeline input {i} of {}", inputs.len())))
            }
        })
        .collect()
}

fn frame_of(d: ChunkData) -> Result<RecordBatch, KernelError> {
    match d {
        ChunkData::Frame(b) => Ok(b),
        _ => Err(err("a pipeline stage gave something other than rows")),
    }
}

fn concat(rows: Vec<RecordBatch>) -> Result<RecordBatch, KernelError> {
    match <[RecordBatch; 1]>::try_from(rows) {
        Ok([one]) => Ok(one),
        Err(rows) => match rows.first() {
            Some(first) => Ok(arrow::compute::concat_batches(&first.schema(), &rows)?),
            None => Err(err("a pipeline's source gave no batch")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use mars_ir::colexpr::{ColExpr, Lit};
    use mars_ir::{BinaryFn, PipeStage};

    fn stage(op: FrameChunkOp, args: &[PipeArg]) -> PipeStage {
        PipeStage { op, args: args.to_vec() }
    }

    fn frame(d: ChunkData) -> RecordBatch {
        frame_of(d).expect("a frame")
    }

    /// The stages run one after the other over whole chunks, as they would unfused.
    fn whole(p: &PipelineChunk, src: RecordBatch, inputs: &[Arc<ChunkData>]) -> RecordBatch {
        let src = Arc::new(ChunkData::Frame(src));
        let mut outs: Vec<Arc<ChunkData>> = Vec::new();
        for s in &p.stages {
            let a = args(&s.args, &src, &outs, inputs).expect("args");
            outs.push(Arc::new(frame::run(&s.op, &a).expect("stage")));
        }
        frame((*outs.pop().expect("a stage")).clone())
    }

    /// 3000 rows: `a` Int64 with nulls, `b` whole floats, `k` five strings and nulls.
    fn rows(n: usize) -> RecordBatch {
        let a: Int64Array = (0..n as i64).map(|i| (i % 11 != 3).then_some(i % 200)).collect();
        let b: Float64Array = (0..n).map(|i| Some(((i * 7) % 13) as f64)).collect();
        let k: StringArray = (0..n).map(|i| (i % 17 != 5).then(|| ["p", "q", "r", "s", "t"][i % 5])).collect();
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("k", DataType::Utf8, true),
        ]);
        let cols: Vec<ArrayRef> = vec![Arc::new(a), Arc::new(b), Arc::new(k)];
        RecordBatch::try_new(Arc::new(schema), cols).expect("batch")
    }

    /// `c = b * 2` added, rows where `a > 100` kept, then (optionally) sums,
    /// means and counts per `k`.
    fn stages(group: bool) -> Vec<PipeStage> {
        use PipeArg::*;
        let bin = |f, l, r| ColExpr::Binary(f, Box::new(l), Box::new(r));
        let mut s = vec![
            stage(FrameChunkOp::Project { columns: vec![1] }, &[Source]),
            stage(
                FrameChunkOp::Eval {
                    expr: bin(BinaryFn::Mul, ColExpr::Input(0), ColExpr::Lit(Lit::F64(2.0))),
                    name: "c".into(),
                },
                &[Stage(0)],
            ),
            stage(FrameChunkOp::WithColumn { name: "c".into(), at: 3, replace: false }, &[Source, Stage(1)]),
            stage(FrameChunkOp::Project { columns: vec![0] }, &[Stage(2)]),
            stage(
                FrameChunkOp::Eval {
                    expr: bin(BinaryFn::Gt, ColExpr::Input(0), ColExpr::Lit(Lit::I64(100))),
                    name: "m".into(),
                },
                &[Stage(3)],
            ),
            stage(FrameChunkOp::Filter, &[Stage(2), Stage(4)]),
        ];
        if group {
            let aggs = vec![(3, AggFn::Sum), (0, AggFn::Mean), (1, AggFn::Count), (1, AggFn::Size)];
            s.push(stage(FrameChunkOp::GroupPartial { keys: vec![2], aggs }, &[Stage(5)]));
        }
        s
    }

    #[test]
    fn batches_give_what_whole_chunks_give() {
        for group in [false, true] {
            for n in [0, 1, 3000] {
                let src = rows(n);
                for batch_rows in [1, 7, 1000, 2999, 3000, 5000] {
                    let p = PipelineChunk { source: None, stages: stages(group), batch_rows };
                    let inputs = [Arc::new(ChunkData::Frame(src.clone()))];
                    let got = frame(run(&p, &inputs).expect("pipeline"));
                    let want = whole(&p, src.clone(), &inputs);
                    assert_eq!(got, want, "group {group}, {n} rows by {batch_rows}");
                }
            }
        }
    }

    #[test]
    fn many_groups_gather_their_rows_for_one_partial() {
        // every key distinct: the first batch's partial is as long as the
        // batch, so the rows are gathered (the columns the partial reads)
        let n = 10_000;
        let keys: Int64Array = (0..n as i64).map(|i| Some(i * 3 % n as i64)).collect();
        let vals: Float64Array = (0..n).map(|i| Some(i as f64)).collect();
        let extra: StringArray = (0..n).map(|i| Some(if i % 2 == 0 { "even" } else { "odd" })).collect();
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
            Field::new("key", DataType::Int64, true),
        ]);
        let cols: Vec<ArrayRef> = vec![Arc::new(extra), Arc::new(vals), Arc::new(keys)];
        let src = RecordBatch::try_new(Arc::new(schema), cols).expect("batch");
        let bin = |l, r| ColExpr::Binary(BinaryFn::Add, Box::new(l), Box::new(r));
        // found by the first partial of a batch, or of all the rows at the end
        for batch_rows in [PROBE_ROWS, 2 * n] {
            let p = PipelineChunk {
                source: None,
                stages: vec![
                    stage(FrameChunkOp::Project { columns: vec![1] }, &[PipeArg::Source]),
                    stage(
                        FrameChunkOp::Eval {
                            expr: bin(ColExpr::Input(0), ColExpr::Lit(Lit::F64(1.0))),
                            name: "w".into(),
                        },
                        &[PipeArg::Stage(0)],
                    ),
                    stage(
                        FrameChunkOp::WithColumn { name: "w".into(), at: 3, replace: false },
                        &[PipeArg::Source, PipeArg::Stage(1)],
                    ),
                    stage(
                        FrameChunkOp::GroupPartial { keys: vec![2], aggs: vec![(3, AggFn::Sum), (0, AggFn::First)] },
                        &[PipeArg::Stage(2)],
                    ),
                ],
                batch_rows,
            };
            let inputs = [Arc::new(ChunkData::Frame(src.clone()))];
            let got = frame(run(&p, &inputs).expect("pipeline"));
            assert_eq!(got.num_rows(), n);
            assert_eq!(got, whole(&p, src.clone(), &inputs), "by {batch_rows}");
        }
    }

    #[test]
    fn a_probe_stage_reads_its_table_whole() {
        use mars_ir::join::{JoinCol, Side};
        let src = rows(500);
        let dim: Int64Array = (0..150).map(Some).collect();
        let name: StringArray = (0..150).map(|i| Some(format!("n{i}"))).collect();
        let schema =
            Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]);
        let cols: Vec<ArrayRef> = vec![Arc::new(dim), Arc::new(name)];
        let table =
            super::super::join::JoinTable::build(RecordBatch::try_new(Arc::new(schema), cols).expect("batch"), &[0])
                .expect("table");
        let table = Arc::new(ChunkData::Table(Arc::new(table)));
        let col = |side, col| JoinCol { side, col, or: None };
        for keep_probe in [false, true] {
            let probe = mars_ir::JoinProbeChunk {
                keys: vec![0],
                probe: Side::Left,
                keep_probe,
                keep_build: false,
                cols: vec![col(Side::Left, 0), col(Side::Left, 2), col(Side::Right, 1)],
                names: vec!["a".into(), "k".into(), "name".into()],
            };
            let p = PipelineChunk {
                source: None,
                stages: vec![
                    stage(FrameChunkOp::JoinProbe(Box::new(probe)), &[PipeArg::Source, PipeArg::Input(1)]),
                    stage(
                        FrameChunkOp::GroupPartial { keys: vec![1], aggs: vec![(0, AggFn::Sum)] },
                        &[PipeArg::Stage(0)],
                    ),
                ],
                batch_rows: 33,
            };
            let inputs = [Arc::new(ChunkData::Frame(src.clone())), table.clone()];
            let got = frame(run(&p, &inputs).expect("pipeline"));
            assert_eq!(got, whole(&p, src.clone(), &inputs), "keep_probe {keep_probe}");
        }
    }

    #[test]
    fn a_parquet_source_is_read_in_batches_with_its_filter() {
        let dir = std::env::temp_dir().join(format!("mars-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.parquet");
        let src = rows(105);
        let mut sink = crate::io::ParquetSink::create(&path, src.schema()).expect("sink");
        // row groups of 40, 40 and 25 rows
        for (at, len) in [(0, 40), (40, 40), (80, 25)] {
            sink.write(&src.slice(at, len)).expect("write");
        }
        sink.finish().expect("finish");
        let file = crate::io::source_file(&path).expect("source file");
        let gt = |v| ColExpr::Binary(BinaryFn::Gt, Box::new(ColExpr::Input(0)), Box::new(ColExpr::Lit(Lit::I64(v))));
        // the filter's column read too (filtered batch by batch), or not
        // (the reader's row selection); all rows, or the rows 30..95 (in all
        // three groups) or 45..50 (in one)
        let cases =
            [(50, vec!["k", "b", "a"]), (1000, vec!["b", "k", "a"]), (50, vec!["k", "b"]), (1000, vec!["b", "k"])];
        for ((limit, columns), range) in
            cases.into_iter().flat_map(|c| [None, Some((30, 95)), Some((45, 50))].map(move |r| (c.clone(), r)))
        {
            let filter = mars_ir::ReadFilter {
                columns: vec!["a".into()],
                schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
                expr: gt(limit),
            };
            let groups = match range {
                Some((45, 50)) => vec![1],
                _ => vec![0, 1, 2],
            };
            let read = FrameChunkOp::ReadParquet {
                file: Box::new(file.clone()),
                row_groups: groups,
                rows: range,
                columns: columns.iter().map(|c| c.to_string()).collect(),
                filter: Some(Box::new(filter)),
            };
            let k = columns.iter().position(|c| *c == "k").expect("k read");
            let b = columns.iter().position(|c| *c == "b").expect("b read");
            let p = PipelineChunk {
                source: Some(read.clone()),
                stages: vec![stage(
                    FrameChunkOp::GroupPartial { keys: vec![k], aggs: vec![(b, AggFn::Sum), (b, AggFn::Size)] },
                    &[PipeArg::Source],
                )],
                batch_rows: 9,
            };
            let got = frame(run(&p, &[]).expect("pipeline"));
            let read_whole = frame(frame::run(&read, &[]).expect("read"));
            // the read is the rows of the range where a > limit, in memory
            let (start, end) = range.unwrap_or((0, 105));
            let want = src.slice(start, end - start);
            let keep = arrow::compute::kernels::cmp::gt(want.column(0), &Int64Array::new_scalar(limit)).expect("cmp");
            let want = arrow::compute::filter_record_batch(&want, &keep).expect("filter");
            let at: Vec<usize> = columns.iter().map(|c| want.schema().index_of(c).expect("column")).collect();
            assert_eq!(read_whole, want.project(&at).expect("project"), "a > {limit}, rows {range:?}");
            assert_eq!(got, whole(&p, read_whole, &[]), "a > {limit}, rows {range:?}");
            // nothing passes a > 1000: no group, the columns kept
            // (a > 50 keeps rows in all three groups, none of 45..50)
            assert_eq!(got.num_rows() == 0, limit == 1000 || range == Some((45, 50)));
        }
        // a range read without a filter, in one batch or in batches
        let read = FrameChunkOp::ReadParquet {
            file: Box::new(file.clone()),
            row_groups: vec![0, 1],
            rows: Some((39, 41)),
            columns: vec!["a".into()],
            filter: None,
        };
        let got = frame(frame::run(&read, &[]).expect("read"));
        assert_eq!(got, src.slice(39, 2).project(&[0]).expect("project"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
