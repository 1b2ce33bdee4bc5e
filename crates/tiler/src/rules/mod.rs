//! Tile rules, one module per op family. A rule sees its op and its inputs'
//! layouts and either emits chunk nodes ([`Tiled::Done`]) or names the chunks
//! whose lengths it needs first ([`Tiled::Need`]); it never inserts nodes
//! before deciding it can finish.

mod creation;
mod elementwise;
mod frame;
mod groupby;
mod indexing;
mod join;
mod matmul;
pub mod rechunk;
mod reduction;
mod reshape;

use crate::error::TileResult;
use crate::layout::Layout;
use crate::tiler::TileOptions;
use mars_ir::smallvec::SmallVec;
use mars_ir::{
    ChunkGraph, ChunkId, ChunkIndex, ChunkInputs, ChunkNode, ChunkOp, ChunkShape, DType, Dim, FrameOp, Key, Meta, Op,
    TensorOp, TileableGraph, TileableNode,
};

/// What a rule produced.
#[derive(Debug)]
pub enum Tiled {
    Done(Layout),
    Need(Vec<ChunkId>),
}

/// What rules may touch: the chunk graph being built and the options.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub chunks: &'a mut ChunkGraph,
    pub opts: &'a TileOptions,
    /// The last op added and its serialised bytes: chunks of one tileable share
    /// their op, which is then serialised once for all their keys.
    pub last_op: Option<(std::sync::Arc<ChunkOp>, Vec<u8>)>,
}

impl Ctx<'_> {
    /// Add a chunk node; its key hashes the op and its inputs' keys.
    /// (Shapes, indices and inputs may come as `Vec`s or slices; they are kept
    /// inline in the node.)
    pub fn add(
        &mut self,
        op: impl Into<std::sync::Arc<ChunkOp>>,
        inputs: impl Into<ChunkInputs>,
        shape: impl Into<ChunkShape>,
        dtype: Option<DType>,
        index: impl Into<ChunkIndex>,
    ) -> ChunkId {
        let (op, inputs) = (op.into(), inputs.into());
        let in_keys: SmallVec<[Key; 4]> = inputs.iter().map(|&i| self.chunks.node(i).key).collect();
        let key = match &self.last_op {
            Some((last, bytes)) if std::sync::Arc::ptr_eq(last, &op) => Key::of_serialized(bytes, &in_keys),
            _ if std::sync::Arc::strong_count(&op) > 1 => {
                let bytes = Key::serialized(&*op);
                let key = Key::of_serialized(&bytes, &in_keys);
                self.last_op = Some((op.clone(), bytes));
                key
            }
            _ => Key::of(&*op, &in_keys),
        };
        self.chunks.insert(ChunkNode { key, op, inputs, shape: shape.into(), dtype, index: index.into() })
    }
    pub fn shape(&self, id: ChunkId) -> &[Dim] {
        &self.chunks.node(id).shape
    }
    /// Room for `n` more chunks in the key index (the tiler checks the total
    /// against [`TileOptions::max_chunks`] after each rule).
    pub fn reserve(&mut self, n: usize) {
        self.chunks.reserve(n);
    }
    /// Refuse, before anything is allocated, a rule that would add `grid`'s
    /// chunks times `per_cell` to the graph past [`TileOptions::max_chunks`].
    /// On success, room for them is reserved.
    pub fn check_grid(&mut self, grid: &[usize], per_cell: usize) -> TileResult<()> {
        let n = crate::layout::check_chunk_count(grid, per_cell, self.chunks.len(), self.opts.max_chunks)?;
        self.chunks.reserve(n);
        Ok(())
    }
}

/// Known nsplits of a layout or the chunks to run first.
macro_rules! known_or_need {
    ($layout:expr) => {
        match $layout.known() {
            Ok(k) => k,
            Err(need) => return Ok($crate::rules::Tiled::Need(need)),
        }
    };
}
pub(crate) use known_or_need;

pub(crate) fn tensor_dtype(meta: &Meta) -> DType {
    meta.dtype().unwrap_or(DType::Float64)
}

/// Bytes a frame row takes, for chunk budgets: fixed widths as they are,
/// variable-width columns counted as 16.
pub(super) fn row_bytes(schema: &mars_ir::arrow_schema::Schema) -> usize {
    schema.fields().iter().map(|f| f.data_type().primitive_width().unwrap_or(16)).sum::<usize>().max(1)
}

/// A reduction whose input is an element-wise `expr` (of dtype `in_dtype`)
/// over the chunks of `source`, folded at tiling time.
pub fn tile_reduce_of_map(
    ctx: &mut Ctx,
    node: &TileableNode,
    source: &Layout,
    expr: &mars_ir::Expr,
    in_dtype: DType,
) -> TileResult<Tiled> {
    match &node.op {
        Op::Tensor(TensorOp::Reduce { func, axes }) => {
            reduction::reduce(ctx, *func, axes, source, Some(expr), in_dtype, tensor_dtype(&node.meta))
        }
        other => Err(mars_ir::IrError::Graph(format!("{other} does not fold an element-wise input")).into()),
    }
}

/// Dispatch to the op's rule.
pub fn tile(ctx: &mut Ctx, node: &TileableNode, inputs: &[Layout], graph: &TileableGraph) -> TileResult<Tiled> {
    let in_metas: Vec<&Meta> = node.inputs.iter().map(|&i| &graph.node(i).meta).collect();
    match &node.op {
        Op::Fetch { chunks, nsplits } => creation::fetch(ctx, chunks, nsplits, &node.meta),
        Op::Frame(FrameOp::FromBatch { data, schema, rows, rows_per_chunk }) => {
            frame::from_batch(ctx, *data, schema, *rows, *rows_per_chunk)
        }
        Op::Frame(FrameOp::Select { columns }) => frame::select(ctx, columns, &inputs[0], in_metas[0]),
        Op::Frame(FrameOp::Head { n }) => frame::head(ctx, *n, &inputs[0]),
        Op::Frame(FrameOp::Eval { expr, name }) => frame::eval(ctx, expr, name, inputs),
        Op::Frame(FrameOp::Filter) => frame::filter(ctx, &inputs[0], &inputs[1]),
        Op::Frame(FrameOp::WithColumn { name }) => frame::with_column(ctx, name, &inputs[0], &inputs[1], in_metas[0]),
        Op::Frame(FrameOp::ReadParquet { files, columns, filter, .. }) => {
            frame::read_parquet(ctx, files, columns, filter.as_ref())
        }
        Op::Frame(FrameOp::ReadCsv { files, format, file_schema, columns, .. }) => {
            frame::read_csv(ctx, files, format, file_schema, columns)
        }
        Op::Frame(FrameOp::Sort { by }) => frame::sort(ctx, by, &inputs[0], in_metas[0]),
        Op::Frame(FrameOp::DropDuplicates) => frame::drop_duplicates(ctx, &inputs[0]),
        Op::Frame(FrameOp::Quantiles { qs }) => frame::quantiles(ctx, qs, &inputs[0], in_metas[0]),
        Op::Frame(FrameOp::Describe { columns }) => frame::describe(ctx, columns, inputs),
        Op::Frame(FrameOp::SortHead { by, n }) => frame::sort_head(ctx, by, *n, &inputs[0], in_metas[0]),
        Op::Frame(FrameOp::Merge { how, left_on, right_on }) => {
            join::merge(ctx, *how, left_on, right_on, inputs, &in_metas)
        }
        Op::Frame(FrameOp::GroupPartial { keys, aggs }) => groupby::partial(ctx, keys, aggs, &inputs[0], in_metas[0]),
        Op::Frame(FrameOp::GroupAgg { nkeys, aggs, method }) => {
            groupby::agg(ctx, *nkeys, aggs, *method, &inputs[0], in_metas[0])
        }
        Op::Tensor(t) => {
            let dtype = tensor_dtype(&node.meta);
            match t {
                TensorOp::Full { .. }
                | TensorOp::Arange { .. }
                | TensorOp::Random { .. }
                | TensorOp::Literal { .. } => creation::tile(ctx, t, dtype),
                TensorOp::Map { expr } => elementwise::map(ctx, expr, dtype, inputs, &in_metas),
                TensorOp::Reduce { func, axes } => {
                    reduction::reduce(ctx, *func, axes, &inputs[0], None, tensor_dtype(in_metas[0]), dtype)
                }
                TensorOp::Dot => matmul::dot(ctx, inputs, &in_metas, dtype),
                TensorOp::Transpose { axes } => reshape::transpose(ctx, axes, &inputs[0], dtype),
                TensorOp::Reshape { shape } => reshape::reshape(ctx, shape, &inputs[0], dtype),
                TensorOp::Rechunk { chunks } => reshape::rechunk(ctx, chunks, &inputs[0], dtype),
                TensorOp::Slice { elems } => indexing::slice(ctx, elems, &inputs[0], dtype),
                TensorOp::Concatenate { axis } => indexing::concatenate(ctx, *axis, inputs, &in_metas, dtype),
                TensorOp::Filter => indexing::filter(ctx, &inputs[0], &inputs[1], in_metas[1].ndim(), dtype),
            }
        }
    }
}
