//! Every operation of mars-rs, as explicit serialisable records.
//!
//! [`Op`] is what a tileable node does (one per user-level op); [`ChunkOp`] is
//! what one chunk node does after tiling. Both hash into keys with [`crate::Key::of`].

pub use crate::dist::Distribution;
use crate::dtype::DType;
use crate::error::{IrError, IrResult};
use crate::expr::Expr;
use crate::key::Key;
use crate::shape::Dim;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A tileable-level op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Tensor(TensorOp),
    Frame(FrameOp),
    /// A result the backend already holds: its chunk keys (row-major over the
    /// chunk grid) and nsplits. Executing over held results lowers them to this.
    Fetch {
        chunks: Vec<Key>,
        nsplits: Vec<Vec<Dim>>,
    },
}

impl Op {
    /// The op's kind, one word (`Map`, `Reduce`, `FromBatch`, `Fetch` …), for stats and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Tensor(t) => t.name(),
            Op::Frame(f) => f.name(),
            Op::Fetch { .. } => "Fetch",
        }
    }

    /// The key of a tileable computing this op from inputs with `inputs` keys.
    /// The one definition: the API computes keys with it and graph validation
    /// recomputes them with it. (User data is in the op by its key, so this
    /// hashes a few bytes whatever the data's size. A `Fetch` node keeps the
    /// key of the result it fetches, so it has none of its own.)
    pub fn key(&self, inputs: &[Key]) -> Key {
        Key::of(self, inputs)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceFn {
    Sum,
    Prod,
    Min,
    Max,
    Mean,
    /// Variance with `ddof` delta degrees of freedom (numpy default 0).
    Var {
        ddof: u32,
    },
    Std {
        ddof: u32,
    },
    ArgMin,
    ArgMax,
}

impl ReduceFn {
    pub fn name(self) -> &'static str {
        match self {
            ReduceFn::Sum => "sum",
            ReduceFn::Prod => "prod",
            ReduceFn::Min => "min",
            ReduceFn::Max => "max",
            ReduceFn::Mean => "mean",
            ReduceFn::Var { .. } => "var",
            ReduceFn::Std { .. } => "std",
            ReduceFn::ArgMin => "argmin",
            ReduceFn::ArgMax => "argmax",
        }
    }
    /// numpy's result dtype.
    pub fn out_dtype(self, input: DType) -> DType {
        match self {
            ReduceFn::Sum | ReduceFn::Prod => {
                if input.is_float() {
                    input
                } else if input.is_unsigned() {
                    DType::UInt64
                } else {
                    DType::Int64
                }
            }
            ReduceFn::Min | ReduceFn::Max => input,
            ReduceFn::Mean | ReduceFn::Var { .. } | ReduceFn::Std { .. } => {
                if input == DType::Float32 {
                    DType::Float32
                } else {
                    DType::Float64
                }
            }
            ReduceFn::ArgMin | ReduceFn::ArgMax => DType::Int64,
        }
    }
    pub fn is_arg(self) -> bool {
        matches!(self, ReduceFn::ArgMin | ReduceFn::ArgMax)
    }
}

/// One axis of a slice, with ndarray's `s![]` semantics (negative indices count
/// from the end; a negative step walks the selected range backwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SliceElem {
    Slice { start: isize, end: Option<isize>, step: isize },
    Index(isize),
    NewAxis,
}

impl From<&ndarray::SliceInfoElem> for SliceElem {
    fn from(e: &ndarray::SliceInfoElem) -> Self {
        match *e {
            ndarray::SliceInfoElem::Slice { start, end, step } => SliceElem::Slice { start, end, step },
            ndarray::SliceInfoElem::Index(i) => SliceElem::Index(i),
            ndarray::SliceInfoElem::NewAxis => SliceElem::NewAxis,
        }
    }
}

impl From<SliceElem> for ndarray::SliceInfoElem {
    fn from(e: SliceElem) -> Self {
        match e {
            SliceElem::Slice { start, end, step } => ndarray::SliceInfoElem::Slice { start, end, step },
            SliceElem::Index(i) => ndarray::SliceInfoElem::Index(i),
            SliceElem::NewAxis => ndarray::SliceInfoElem::NewAxis,
        }
    }
}

impl fmt::Display for SliceElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SliceElem::Index(i) => write!(f, "{i}"),
            SliceElem::NewAxis => f.write_str("newaxis"),
            SliceElem::Slice { start, end, step } => {
                if *start != 0 {
                    write!(f, "{start}")?;
                }
                f.write_str("..")?;
                if let Some(e) = end {
                    write!(f, "{e}")?;
                }
                if *step != 1 {
                    write!(f, ";{step}")?;
                }
                Ok(())
            }
        }
    }
}

/// Tensor ops at the tileable level. Creation ops carry optional chunk sizes
/// (per axis) so a `rechunk` right after them changes how they are generated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TensorOp {
    /// `ones`, `zeros`, `full`.
    Full {
        shape: Vec<usize>,
        #[serde(with = "crate::serde_f64")]
        value: f64,
        dtype: DType,
        chunks: Option<Vec<usize>>,
    },
    /// `arange(start, start + n*step, step)`, float64.
    Arange {
        start: f64,
        step: f64,
        n: usize,
        chunks: Option<Vec<usize>>,
    },
    /// Counter-based random numbers: element `i` depends only on `(seed, i)`.
    Random {
        seed: u64,
        dist: Distribution,
        shape: Vec<usize>,
        chunks: Option<Vec<usize>>,
    },
    /// User data (`mt::tensor`), by reference: the backend holds the array
    /// under the `data` key (put there before the graph runs); the op has its
    /// shape and dtype.
    Literal {
        data: Key,
        shape: Vec<usize>,
        dtype: DType,
        chunks: Option<Vec<usize>>,
    },
    /// Element-wise expression over the inputs, with numpy broadcasting.
    Map {
        expr: Expr,
    },
    /// Reduction over `axes` (all axes for a full reduction); axes are removed.
    Reduce {
        func: ReduceFn,
        axes: Vec<usize>,
    },
    /// `numpy.dot` for 1-D and 2-D operands.
    Dot,
    Transpose {
        axes: Vec<usize>,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Slice {
        elems: Vec<SliceElem>,
    },
    Concatenate {
        axis: usize,
    },
    /// Boolean mask: input 0 the data, input 1 the mask (same shape, or 1-D along axis 0).
    Filter,
    /// New chunk sizes per axis.
    Rechunk {
        chunks: Vec<usize>,
    },
}

impl TensorOp {
    /// The variant's name.
    pub fn name(&self) -> &'static str {
        match self {
            TensorOp::Full { .. } => "Full",
            TensorOp::Arange { .. } => "Arange",
            TensorOp::Random { .. } => "Random",
            TensorOp::Literal { .. } => "Literal",
            TensorOp::Map { .. } => "Map",
            TensorOp::Reduce { .. } => "Reduce",
            TensorOp::Dot => "Dot",
            TensorOp::Transpose { .. } => "Transpose",
            TensorOp::Reshape { .. } => "Reshape",
            TensorOp::Slice { .. } => "Slice",
            TensorOp::Concatenate { .. } => "Concatenate",
            TensorOp::Filter => "Filter",
            TensorOp::Rechunk { .. } => "Rechunk",
        }
    }
}

/// Dataframe ops at the tileable level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FrameOp {
    /// User data (a record batch), by reference: the backend holds the batch
    /// under the `data` key (put there before the graph runs); the op has its
    /// schema and row count.
    FromBatch { data: Key, schema: arrow_schema::SchemaRef, rows: usize, rows_per_chunk: Option<usize> },
    /// These columns of the input, in this order (`df[["a", "b"]]`; one
    /// column is a Series, `df["a"]`).
    Select { columns: Vec<String> },
    /// The first `n` rows (`df.head(n)`).
    Head { n: usize },
    /// A Series named `name` computed element-wise from the input Series
    /// (aligned by row chunks).
    Eval { expr: crate::colexpr::ColExpr, name: String },
    /// The rows of input 0 where the bool Series input 1 is true (`df[mask]`).
    Filter,
    /// Input 0 with the Series input 1 as column `name` (replacing a column
    /// of that name in place, else added last), as `df[name] = s`.
    WithColumn { name: String },
    /// The first step of `df.groupby(keys).agg(aggs)`: each row chunk reduced
    /// to one row per group of its rows, holding the key columns and each
    /// aggregation's state ([`crate::agg::state_fields`]). Rows with a missing
    /// key are dropped, as pandas does.
    GroupPartial { keys: Vec<String>, aggs: Vec<crate::agg::Agg> },
    /// The rest of the groupby: the partial states (its input, a
    /// `GroupPartial`) merged per group and finalized; keys first, sorted
    /// within each chunk. `method` says how the partials meet.
    GroupAgg { nkeys: usize, aggs: Vec<crate::agg::Agg>, method: GroupMethod },
    /// The `columns` (in this order) of parquet files, a chunk per run of
    /// whole row groups; `schema` is theirs.
    /// With a `filter`, only the rows it keeps (row counts unknown until read).
    ReadParquet {
        files: Vec<SourceFile>,
        columns: Vec<String>,
        schema: arrow_schema::SchemaRef,
        #[serde(default)]
        filter: Option<ReadFilter>,
    },
    /// The rows sorted by these columns, each ascending or not
    /// (`sort_values`); stable, missing values last.
    Sort { by: Vec<(String, bool)> },
    /// The first `n` rows of that order (`sort_values(..).head(n)`): each
    /// chunk's top `n`, then the top `n` of those.
    SortHead { by: Vec<(String, bool)>, n: usize },
    /// The rows, each distinct row once, first occurrences in order
    /// (`drop_duplicates`; missing values equal each other).
    DropDuplicates,
    /// Quantiles `qs` (pandas' linear interpolation) of a one-column frame
    /// sorted ascending with no missing values: one Float64 row per `q`
    /// (NaN when there are no values).
    Quantiles { qs: Vec<f64> },
    /// `describe()` of the numeric `columns`: input 0 holds each column's
    /// count, mean, std, min and max (one row, five columns per column, in
    /// order), then one [`FrameOp::Quantiles`] of 25%, 50% and 75% per column.
    /// The result has the statistic's name as its index column ("").
    Describe { columns: Vec<String> },
    /// `left.merge(right, left_on, right_on, how)` (inputs: left, right).
    Merge { how: crate::join::How, left_on: Vec<String>, right_on: Vec<String> },
    /// The `columns` of CSV files of the columns `file_schema` (as inferred or
    /// given), a chunk per byte range of about the chunk budget, split on
    /// line boundaries; `schema` is the read columns'.
    ReadCsv {
        files: Vec<SourceFile>,
        format: CsvFormat,
        file_schema: arrow_schema::SchemaRef,
        columns: Vec<String>,
        schema: arrow_schema::SchemaRef,
    },
}

/// How CSV files are laid out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CsvFormat {
    /// Whether the first line of each file names the columns.
    pub header: bool,
    pub delimiter: u8,
    /// Values read as missing (pandas' `na_values`), matched whole.
    pub nulls: Vec<String>,
    /// Whether files are split into byte ranges (no quoted field may then
    /// hold a line break); else a chunk per file.
    pub split: bool,
}

/// A file a reader found: where, how long and when last modified (so a
/// rewritten file is another input, under another key, and a file changed
/// after it was found is refused), and the rows and uncompressed bytes (all
/// columns) of each of its row groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub len: u64,
    pub modified_ns: u64,
    pub row_groups: Vec<usize>,
    #[serde(default)]
    pub row_group_bytes: Vec<u64>,
}

impl SourceFile {
    /// Rows in all its row groups (saturating: graphs from outside may lie).
    pub fn rows(&self) -> usize {
        self.row_groups.iter().fold(0usize, |a, &r| a.saturating_add(r))
    }

    /// Rows a read of `row_groups` (and of only the file's rows
    /// `start..end` of them, given `range`) holds, before any filter: a
    /// range lies within its row groups, as the tiler makes them (else this
    /// is at most the groups' rows).
    pub fn rows_of(&self, row_groups: &[usize], range: Option<(usize, usize)>) -> usize {
        let all =
            row_groups.iter().fold(0usize, |a, &g| a.saturating_add(self.row_groups.get(g).copied().unwrap_or(0)));
        match range {
            Some((start, end)) => end.saturating_sub(start).min(all),
            None => all,
        }
    }
}

/// A row filter pushed into a read (`df[mask]` over a file's own columns):
/// the rows where `expr` is true, `Input(i)` being column `columns[i]` (of
/// type `schema.field(i)`); missing counts as false. Readers also skip the
/// row groups whose statistics rule every row out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadFilter {
    pub columns: Vec<String>,
    pub schema: arrow_schema::SchemaRef,
    pub expr: crate::colexpr::ColExpr,
}

impl ReadFilter {
    /// Errors when `expr` is not a bool over these columns.
    pub fn check(&self) -> IrResult<()> {
        let names: Vec<&String> = self.schema.fields().iter().map(|f| f.name()).collect();
        if names.len() != self.columns.len() || names.iter().zip(&self.columns).any(|(a, b)| *a != b) {
            return Err(IrError::Invalid(format!(
                "a read filter on columns {:?} with a schema of {names:?}",
                self.columns
            )));
        }
        let types: Vec<arrow_schema::DataType> = self.schema.fields().iter().map(|f| f.data_type().clone()).collect();
        match self.expr.data_type(&types)? {
            arrow_schema::DataType::Boolean => Ok(()),
            other => Err(IrError::DType(format!("a read filter must be a bool expression, not {other}"))),
        }
    }
}

impl fmt::Display for ReadFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "where {} on {:?}", self.expr, self.columns)
    }
}

/// How a groupby's partial states are merged (Mars's `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupMethod {
    /// Decide from the partials' sizes once they ran: a tree when they all fit
    /// one chunk, else a hash shuffle.
    Auto,
    /// Combine partials in a tree into one chunk, the result sorted by key.
    Tree,
    /// Hash-partition the partials by key; each partition is merged alone, so
    /// the result has one chunk per partition (each sorted by key).
    Shuffle,
}

impl fmt::Display for GroupMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupMethod::Auto => "auto",
            GroupMethod::Tree => "tree",
            GroupMethod::Shuffle => "shuffle",
        })
    }
}

impl FrameOp {
    /// The variant's name.
    pub fn name(&self) -> &'static str {
        match self {
            FrameOp::FromBatch { .. } => "FromBatch",
            FrameOp::Select { .. } => "Select",
            FrameOp::Head { .. } => "Head",
            FrameOp::Eval { .. } => "Eval",
            FrameOp::Filter => "Filter",
            FrameOp::WithColumn { .. } => "WithColumn",
            FrameOp::GroupPartial { .. } => "GroupPartial",
            FrameOp::GroupAgg { .. } => "GroupAgg",
            FrameOp::ReadParquet { .. } => "ReadParquet",
            FrameOp::ReadCsv { .. } => "ReadCsv",
            FrameOp::Merge { .. } => "Merge",
            FrameOp::Sort { .. } => "Sort",
            FrameOp::SortHead { .. } => "SortHead",
            FrameOp::DropDuplicates => "DropDuplicates",
            FrameOp::Quantiles { .. } => "Quantiles",
            FrameOp::Describe { .. } => "Describe",
        }
    }
}

/// Chunk-level ops: what a kernel runs for one chunk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ChunkOp {
    /// A chunk already held in the backend's store (its key is the node's key).
    Fetch,
    Full {
        shape: Vec<usize>,
        #[serde(with = "crate::serde_f64")]
        value: f64,
        dtype: DType,
    },
    Arange {
        start: f64,
        step: f64,
        n: usize,
    },
    /// The block at `offset` of a `global_shape` random tensor.
    Random(Box<RandomChunk>),
    /// Element-wise expression over the inputs (broadcast within the chunk).
    /// The expression is shared by every chunk of its tileable.
    Map {
        expr: std::sync::Arc<Expr>,
        dtype: DType,
    },
    /// First stage of a tree reduction: an optional fused element-wise expression,
    /// then a partial aggregate keeping reduced axes as length 1. `offset` and
    /// `global_shape` locate the chunk, for arg-reductions.
    ReduceMap(Box<ReduceMapChunk>),
    /// Combines partials; with `finalize` it also produces the result (axes removed).
    ReduceCombine {
        func: ReduceFn,
        axes: Vec<usize>,
        finalize: bool,
        out_dtype: DType,
    },
    /// Sum of block products `a_0·b_0 + a_1·b_1 + …` over input pairs
    /// `[a_0, b_0, a_1, b_1, …]` (1-D/2-D blocks as numpy.dot).
    MatMul,
    Transpose {
        axes: Vec<usize>,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Slice {
        elems: Vec<SliceElem>,
    },
    /// Builds one output chunk from pieces of its inputs (rechunk).
    Assemble(Box<AssembleChunk>),
    /// Boolean mask; `rows` selects along axis 0 with a 1-D mask.
    Filter {
        rows: bool,
    },
    /// A dataframe chunk op (their own family).
    Frame(FrameChunkOp),
}

/// Chunk-level dataframe ops: what a kernel runs for one frame chunk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FrameChunkOp {
    /// Rows `offset..offset + len` of its one input (a held batch).
    SliceRows { offset: usize, len: usize },
    /// These columns of its one input, by position.
    Project { columns: Vec<usize> },
    /// A one-column batch named `name`: `expr` over the inputs' single columns.
    Eval { expr: crate::colexpr::ColExpr, name: String },
    /// The rows of input 0 where input 1's bool column is true.
    Filter,
    /// Input 0 with input 1's one column as column `at` (`replace`), or added last.
    WithColumn { name: String, at: usize, replace: bool },
    /// One row per group of its input's rows (keys at these positions, rows
    /// with a missing key dropped): the key columns, then each aggregation's
    /// state of the column at its position.
    GroupPartial { keys: Vec<usize>, aggs: Vec<(usize, crate::agg::AggFn)> },
    /// Partial states (the first `nkeys` columns are the keys) of all inputs
    /// merged per group; with `finalize`, the result columns with these names,
    /// sorted by key.
    GroupCombine { nkeys: usize, aggs: Vec<crate::agg::AggFn>, finalize: Option<Vec<String>> },
    /// Several outputs: the rows of its input split into `parts` pieces by a
    /// hash of the key columns at these positions (equal keys, same piece,
    /// in every chunk hashed alike).
    HashPartition { keys: Vec<usize>, parts: usize },
    /// Piece `part` of each input (`HashPartition` outputs), concatenated in
    /// input order.
    GatherPart { part: usize },
    /// These row groups of a parquet file, these columns in this order; with
    /// `rows`, only the file's rows `start..end` of them (a large row group
    /// cut so that threads get even shares).
    ReadParquet {
        file: Box<SourceFile>,
        row_groups: Vec<usize>,
        #[serde(default)]
        rows: Option<(usize, usize)>,
        columns: Vec<String>,
        filter: Option<Box<ReadFilter>>,
    },
    /// The lines of a CSV file starting in bytes `start..end`, parsed with
    /// `schema` (the file's columns), these columns kept.
    ReadCsv(Box<CsvChunk>),
    /// Its inputs' rows, concatenated and indexed by the key columns at
    /// these positions: a join's build side (a hash table value).
    JoinBuild { keys: Vec<usize> },
    /// Input 0's rows (the probe side) matched against input 1 (a `JoinBuild`).
    JoinProbe(Box<JoinProbeChunk>),
    /// Its inputs' rows, concatenated and sorted stably by the columns `by`;
    /// with `part`, piece `part` of each input (`RangePartition` outputs),
    /// sorted together without gathering them first.
    SortLocal {
        by: Vec<usize>,
        descending: Vec<bool>,
        #[serde(default)]
        part: Option<usize>,
    },
    /// `per` rows at regular positions of chunk `chunk`: the `by` columns and
    /// the chunk and row numbers (a sort's tie-breakers).
    SortSample { by: Vec<usize>, per: usize, chunk: usize },
    /// `parts - 1` pivots evenly spaced through all its inputs' samples.
    SortPivots { descending: Vec<bool>, parts: usize },
    /// Several outputs: chunk `chunk`'s rows (input 0) split by the pivots
    /// (input 1) into one piece per range.
    ///
    /// `chunk: Some(c)`: rows are ordered by (key, c, row), so equal keys
    /// split between pieces as a stable sort needs; `None`: equal keys all
    /// go to one piece (a groupby's range shuffle).
    RangePartition { by: Vec<usize>, descending: Vec<bool>, chunk: Option<usize> },
    /// The first `n` rows of its inputs' rows, concatenated and sorted stably.
    TopK { by: Vec<usize>, descending: Vec<bool>, n: usize },
    /// Its inputs' rows, concatenated, each distinct row once (first occurrences in order).
    Distinct,
    /// These rows of its input, in this order.
    TakeRows { rows: Vec<usize> },
    /// Quantiles `qs` of `n` sorted values, from its inputs: the values at
    /// [`quantile_ranks`]`(qs, n)`, in rank order; a Float64 column `name`.
    Quantiles { qs: Vec<f64>, n: usize, name: String },
    /// `describe()`'s table from a stats row and quantile columns (as
    /// [`FrameOp::Describe`]'s inputs).
    Describe { columns: Vec<String> },
    /// A chain of row-wise ops run over cache-sized batches of one source's
    /// rows (fused by the `frame_pipeline` pass); the result is the last
    /// stage's, over all the rows.
    Pipeline(Box<PipelineChunk>),
}

/// The parameters of [`FrameChunkOp::Pipeline`].
///
/// The source's rows are cut into batches of `batch_rows`; each batch runs
/// through the stages in order, each stage's arguments naming the source
/// batch, an earlier stage's output for that batch, or a whole input of the
/// chunk (a join's table). Row-wise stages (`Project`, `Eval`, `Filter`,
/// `WithColumn`, a `JoinProbe` that emits no unmatched build rows) give the
/// same rows as over the whole chunk, batch by batch. A last `GroupPartial`
/// keeps its groups across batches: the batches' partial states are merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineChunk {
    /// A reader (`ReadParquet`, `ReadCsv`) run by the pipeline itself, or
    /// `None`: the source is the chunk's input 0.
    pub source: Option<FrameChunkOp>,
    pub stages: Vec<PipeStage>,
    pub batch_rows: usize,
}

/// One stage of a [`PipelineChunk`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipeStage {
    pub op: FrameChunkOp,
    pub args: Vec<PipeArg>,
}

/// What a pipeline stage reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipeArg {
    /// The current batch of the source.
    Source,
    /// Stage `i`'s output for the current batch.
    Stage(usize),
    /// The chunk's input `i`, whole (not cut into batches).
    Input(usize),
}

impl fmt::Display for PipeArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipeArg::Source => f.write_str("src"),
            PipeArg::Stage(i) => write!(f, "s{i}"),
            PipeArg::Input(i) => write!(f, "in{i}"),
        }
    }
}

/// The sorted distinct ranks whose values the quantiles `qs` of `n` sorted
/// values interpolate between (numpy's and pandas' linear method: position
/// `q·(n-1)`, its floor and ceiling).
pub fn quantile_ranks(qs: &[f64], n: usize) -> Vec<usize> {
    if n == 0 {
        return vec![];
    }
    let mut ranks: Vec<usize> = qs
        .iter()
        .flat_map(|&q| {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            [(pos.floor() as usize).min(n - 1), (pos.ceil() as usize).min(n - 1)]
        })
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    ranks
}

/// The parameters of [`FrameChunkOp::JoinProbe`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinProbeChunk {
    /// The probe's key columns.
    pub keys: Vec<usize>,
    /// Which side of the merge the probe is.
    pub probe: crate::join::Side,
    /// Keep probe rows no build row matches (a left join probing with the left).
    pub keep_probe: bool,
    /// Emit build rows no probe row matched (only when the probe sees every
    /// row that could match them: one partition of a shuffle).
    pub keep_build: bool,
    pub cols: Vec<crate::join::JoinCol>,
    pub names: Vec<String>,
}

/// The parameters of [`FrameChunkOp::ReadCsv`] (boxed: they are large).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CsvChunk {
    pub file: SourceFile,
    pub start: u64,
    pub end: u64,
    pub format: CsvFormat,
    pub schema: arrow_schema::SchemaRef,
    pub columns: Vec<usize>,
}

impl FrameChunkOp {
    /// The variant's name.
    pub fn name(&self) -> &'static str {
        match self {
            FrameChunkOp::SliceRows { .. } => "SliceRows",
            FrameChunkOp::Project { .. } => "Project",
            FrameChunkOp::Eval { .. } => "Eval",
            FrameChunkOp::Filter => "FrameFilter",
            FrameChunkOp::WithColumn { .. } => "WithColumn",
            FrameChunkOp::GroupPartial { .. } => "GroupPartial",
            FrameChunkOp::GroupCombine { .. } => "GroupCombine",
            FrameChunkOp::HashPartition { .. } => "HashPartition",
            FrameChunkOp::GatherPart { .. } => "GatherPart",
            FrameChunkOp::ReadParquet { .. } => "ReadParquet",
            FrameChunkOp::ReadCsv(_) => "ReadCsv",
            FrameChunkOp::JoinBuild { .. } => "JoinBuild",
            FrameChunkOp::JoinProbe(_) => "JoinProbe",
            FrameChunkOp::SortLocal { .. } => "SortLocal",
            FrameChunkOp::SortSample { .. } => "SortSample",
            FrameChunkOp::SortPivots { .. } => "SortPivots",
            FrameChunkOp::RangePartition { .. } => "RangePartition",
            FrameChunkOp::TopK { .. } => "TopK",
            FrameChunkOp::Distinct => "Distinct",
            FrameChunkOp::TakeRows { .. } => "TakeRows",
            FrameChunkOp::Quantiles { .. } => "Quantiles",
            FrameChunkOp::Describe { .. } => "Describe",
            FrameChunkOp::Pipeline(_) => "Pipeline",
        }
    }
}

impl fmt::Display for FrameChunkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameChunkOp::SliceRows { offset, len } => write!(f, "SliceRows {offset}..{}", offset + len),
            FrameChunkOp::Project { columns } => write!(f, "Project {columns:?}"),
            FrameChunkOp::Eval { expr, name } => write!(f, "Eval {name} = {expr}"),
            FrameChunkOp::Filter => f.write_str("FrameFilter"),
            FrameChunkOp::WithColumn { name, at, replace } => {
                write!(f, "WithColumn {name:?} {} {at}", if *replace { "replacing" } else { "at" })
            }
            FrameChunkOp::GroupPartial { keys, aggs } => {
                let aggs: Vec<String> = aggs.iter().map(|(c, func)| format!("{func}(#{c})")).collect();
                write!(f, "GroupPartial keys={keys:?} [{}]", aggs.join(", "))
            }
            FrameChunkOp::GroupCombine { nkeys, aggs, finalize } => {
                let aggs: Vec<&str> = aggs.iter().map(|a| a.name()).collect();
                write!(f, "GroupCombine nkeys={nkeys} [{}]", aggs.join(", "))?;
                if let Some(names) = finalize {
                    write!(f, " finalize as {names:?}")?;
                }
                Ok(())
            }
            FrameChunkOp::HashPartition { keys, parts } => write!(f, "HashPartition keys={keys:?} into {parts}"),
            FrameChunkOp::GatherPart { part } => write!(f, "GatherPart {part}"),
            FrameChunkOp::ReadParquet { file, row_groups, rows, columns, filter } => {
                write!(f, "ReadParquet {:?} row groups {row_groups:?}", file_name(&file.path))?;
                if let Some((start, end)) = rows {
                    write!(f, " rows {start}..{end}")?;
                }
                write!(f, " {columns:?}")?;
                match filter {
                    Some(r) => write!(f, " {r}"),
                    None => Ok(()),
                }
            }
            FrameChunkOp::JoinBuild { keys } => write!(f, "JoinBuild keys={keys:?}"),
            FrameChunkOp::SortLocal { by, descending, part } => {
                write!(f, "SortLocal by={by:?} descending={descending:?}")?;
                match part {
                    Some(p) => write!(f, " of part {p}"),
                    None => Ok(()),
                }
            }
            FrameChunkOp::SortSample { by, per, chunk } => write!(f, "SortSample by={by:?} {per} of chunk {chunk}"),
            FrameChunkOp::SortPivots { parts, .. } => write!(f, "SortPivots for {parts} ranges"),
            FrameChunkOp::Distinct => f.write_str("Distinct"),
            FrameChunkOp::TakeRows { rows } => write!(f, "TakeRows {rows:?}"),
            FrameChunkOp::Quantiles { qs, n, .. } => write!(f, "Quantiles {qs:?} of {n}"),
            FrameChunkOp::Describe { columns } => write!(f, "Describe {columns:?}"),
            FrameChunkOp::TopK { by, descending, n } => write!(f, "TopK {n} by={by:?} descending={descending:?}"),
            FrameChunkOp::RangePartition { by, chunk: Some(c), .. } => write!(f, "RangePartition by={by:?} chunk {c}"),
            FrameChunkOp::RangePartition { by, chunk: None, .. } => write!(f, "RangePartition by={by:?} keys together"),
            FrameChunkOp::JoinProbe(p) => {
                let side = if p.probe == crate::join::Side::Left { "left" } else { "right" };
                write!(f, "JoinProbe {side} keys={:?}", p.keys)?;
                if p.keep_probe {
                    f.write_str(" keep unmatched probe rows")?;
                }
                if p.keep_build {
                    f.write_str(" emit unmatched build rows")?;
                }
                Ok(())
            }
            FrameChunkOp::ReadCsv(c) => {
                write!(f, "ReadCsv {:?} bytes {}..{} columns {:?}", file_name(&c.file.path), c.start, c.end, c.columns)
            }
            FrameChunkOp::Pipeline(p) => {
                write!(f, "Pipeline by {} rows: src = ", p.batch_rows)?;
                match &p.source {
                    Some(op) => write!(f, "{op}")?,
                    None => f.write_str("in0")?,
                }
                for (i, s) in p.stages.iter().enumerate() {
                    let args: Vec<String> = s.args.iter().map(|a| a.to_string()).collect();
                    write!(f, "; s{i} = {}({})", s.op, args.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for FrameOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameOp::FromBatch { data, rows, rows_per_chunk, .. } => {
                write!(f, "FromBatch[{rows} rows, data={}]", data.short())?;
                if let Some(r) = rows_per_chunk {
                    write!(f, " rows_per_chunk={r}")?;
                }
                Ok(())
            }
            FrameOp::Select { columns } => write!(f, "Select {columns:?}"),
            FrameOp::Head { n } => write!(f, "Head {n}"),
            FrameOp::Eval { expr, name } => write!(f, "Eval {name} = {expr}"),
            FrameOp::Filter => f.write_str("Filter"),
            FrameOp::WithColumn { name } => write!(f, "WithColumn {name:?}"),
            FrameOp::GroupPartial { keys, aggs } => {
                let aggs: Vec<String> = aggs.iter().map(|a| a.to_string()).collect();
                write!(f, "GroupPartial by {keys:?} [{}]", aggs.join(", "))
            }
            FrameOp::ReadParquet { files, columns, filter, .. } => {
                let rows = files.iter().fold(0usize, |a, f| a.saturating_add(f.rows()));
                write!(f, "ReadParquet[{} files, {rows} rows] {columns:?}", files.len())?;
                match filter {
                    Some(r) => write!(f, " {r}"),
                    None => Ok(()),
                }
            }
            FrameOp::Sort { by } => write!(f, "Sort by [{}]", sort_keys(by)),
            FrameOp::SortHead { by, n } => write!(f, "SortHead {n} by [{}]", sort_keys(by)),
            FrameOp::DropDuplicates => f.write_str("DropDuplicates"),
            FrameOp::Quantiles { qs } => write!(f, "Quantiles {qs:?}"),
            FrameOp::Describe { columns } => write!(f, "Describe {columns:?}"),
            FrameOp::Merge { how, left_on, right_on } => write!(f, "Merge {how} {left_on:?} = {right_on:?}"),
            FrameOp::ReadCsv { files, columns, .. } => {
                let bytes = files.iter().fold(0u64, |a, f| a.saturating_add(f.len));
                write!(f, "ReadCsv[{} files, {bytes} bytes] {columns:?}", files.len())
            }
            FrameOp::GroupAgg { nkeys, aggs, method } => {
                let aggs: Vec<String> = aggs.iter().map(|a| a.to_string()).collect();
                write!(f, "GroupAgg nkeys={nkeys} [{}] method={method}", aggs.join(", "))
            }
        }
    }
}

/// Sort keys as explain shows them: `"a" asc, "b" desc`.
fn sort_keys(by: &[(String, bool)]) -> String {
    let keys: Vec<String> = by.iter().map(|(c, asc)| format!("{c:?} {}", if *asc { "asc" } else { "desc" })).collect();
    keys.join(", ")
}

/// The last part of a path (explain shows no folders: they differ by machine).
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The parameters of [`ChunkOp::Random`] (boxed: they are the large ones, and
/// keeping them out of line keeps every chunk op small).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomChunk {
    pub seed: u64,
    pub dist: Distribution,
    pub global_shape: Vec<usize>,
    pub offset: Vec<usize>,
    pub shape: Vec<usize>,
}

/// The parameters of [`ChunkOp::ReduceMap`] (boxed: they are the large ones, and
/// keeping them out of line keeps every chunk op small).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceMapChunk {
    pub func: ReduceFn,
    pub axes: Vec<usize>,
    pub expr: Option<Expr>,
    pub in_dtype: DType,
    pub offset: Vec<usize>,
    pub global_shape: Vec<usize>,
}

/// The parameters of [`ChunkOp::Assemble`] (boxed: they are the large ones, and
/// keeping them out of line keeps every chunk op small).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssembleChunk {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub pieces: Vec<Piece>,
}

impl ChunkOp {
    /// The variant's name.
    pub fn name(&self) -> &'static str {
        match self {
            ChunkOp::Fetch => "Fetch",
            ChunkOp::Full { .. } => "Full",
            ChunkOp::Arange { .. } => "Arange",
            ChunkOp::Random { .. } => "Random",
            ChunkOp::Map { .. } => "Map",
            ChunkOp::ReduceMap { .. } => "ReduceMap",
            ChunkOp::ReduceCombine { .. } => "ReduceCombine",
            ChunkOp::MatMul => "MatMul",
            ChunkOp::Transpose { .. } => "Transpose",
            ChunkOp::Reshape { .. } => "Reshape",
            ChunkOp::Slice { .. } => "Slice",
            ChunkOp::Assemble { .. } => "Assemble",
            ChunkOp::Filter { .. } => "Filter",
            ChunkOp::Frame(op) => op.name(),
        }
    }
}

/// Copy `src` ranges (per axis, half-open) of input `input` to `dst` offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub input: usize,
    pub src: Vec<(usize, usize)>,
    pub dst: Vec<usize>,
}

fn opt_chunks(c: &Option<Vec<usize>>) -> String {
    c.as_ref().map(|c| format!(" chunks={c:?}")).unwrap_or_default()
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Fetch { chunks, .. } => write!(f, "Fetch[{} chunks]", chunks.len()),
            Op::Frame(op) => op.fmt(f),
            Op::Tensor(t) => match t {
                TensorOp::Full { value, chunks, .. } => {
                    write!(f, "Full({value}){}", opt_chunks(chunks))
                }
                TensorOp::Arange { start, step, n, chunks } => {
                    write!(f, "Arange({start}, step={step}, n={n}){}", opt_chunks(chunks))
                }
                TensorOp::Random { seed, dist, chunks, .. } => {
                    write!(f, "Random({dist:?}, seed={seed}){}", opt_chunks(chunks))
                }
                TensorOp::Literal { data, chunks, .. } => {
                    write!(f, "Literal[data={}]{}", data.short(), opt_chunks(chunks))
                }
                TensorOp::Map { expr } => write!(f, "Map {expr}"),
                TensorOp::Reduce { func, axes } => {
                    write!(f, "Reduce {} axes={axes:?}", func.name())
                }
                TensorOp::Dot => f.write_str("Dot"),
                TensorOp::Transpose { axes } => write!(f, "Transpose {axes:?}"),
                TensorOp::Reshape { shape } => write!(f, "Reshape {shape:?}"),
                TensorOp::Slice { elems } => write!(f, "Slice [{}]", join(elems)),
                TensorOp::Concatenate { axis } => write!(f, "Concatenate axis={axis}"),
                TensorOp::Filter => f.write_str("Filter"),
                TensorOp::Rechunk { chunks } => write!(f, "Rechunk {chunks:?}"),
            },
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for ChunkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkOp::Fetch => f.write_str("Fetch"),
            ChunkOp::Full { value, .. } => write!(f, "Full({value})"),
            ChunkOp::Arange { start, step, n } => write!(f, "Arange({start}, step={step}, n={n})"),
            ChunkOp::Random(r) => write!(f, "Random({:?}, seed={}) offset={:?}", r.dist, r.seed, r.offset),
            ChunkOp::Map { expr, .. } => write!(f, "Map {expr}"),
            ChunkOp::ReduceMap(r) => {
                let ReduceMapChunk { func, axes, expr, .. } = &**r;
                write!(f, "ReduceMap {} axes={axes:?}", func.name())?;
                if let Some(e) = expr {
                    write!(f, " of {e}")?;
                }
                Ok(())
            }
            ChunkOp::ReduceCombine { func, axes, finalize, .. } => {
                write!(f, "ReduceCombine {} axes={axes:?}{}", func.name(), if *finalize { " final" } else { "" })
            }
            ChunkOp::MatMul => f.write_str("MatMul"),
            ChunkOp::Transpose { axes } => write!(f, "Transpose {axes:?}"),
            ChunkOp::Reshape { shape } => write!(f, "Reshape {shape:?}"),
            ChunkOp::Slice { elems } => write!(f, "Slice [{}]", join(elems)),
            ChunkOp::Assemble(a) => write!(f, "Assemble[{} pieces]", a.pieces.len()),
            ChunkOp::Filter { rows } => write!(f, "Filter{}", if *rows { " rows" } else { "" }),
            ChunkOp::Frame(op) => op.fmt(f),
        }
    }
}
