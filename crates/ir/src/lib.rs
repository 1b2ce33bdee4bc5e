//! `mars-ir`: the explicit, serialisable intermediate representation of mars-rs.
//!
//! What lives here and nowhere else:
//! - [`Key`]: 128-bit content hashes naming every tileable and chunk;
//! - [`DType`], [`Dim`] and shapes, and [`TensorData`], the in-memory tensor value;
//! - [`Op`]: every operation, tileable-level ([`TensorOp`], [`FrameOp`]) and
//!   chunk-level ([`ChunkOp`]), as documented records of parameters;
//! - [`Expr`]: element-wise expressions, which fusion composes;
//! - [`TileableGraph`] and [`ChunkGraph`], DAGs on petgraph behind typed ids;
//! - [`infer`]: shape and dtype inference, where bad input is first caught;
//! - [`validate`]: the total check of graphs from outside (files, clients);
//! - one `explain()` walker, `to_dot()`, and serde (JSON and a compact binary form).
//!
//! This crate knows nothing about tiling or execution.

pub mod agg;
pub mod colexpr;
pub mod data;
pub mod display;
pub mod dist;
pub mod dtype;
pub mod error;
pub mod expr;
pub mod fast;
pub mod frame;
pub mod graph;
pub mod infer;
pub mod join;
pub mod key;
pub mod npy;
pub mod op;
pub mod serde_f64;
pub mod shape;
pub mod validate;

pub use arrow_schema;
pub use data::TensorData;
pub use dtype::DType;
pub use error::{IrError, IrResult};
pub use expr::{BinaryFn, Expr, RandomLeaf, UnaryFn};
pub use fast::{FastMap, FastSet};
pub use graph::{ChunkGraph, ChunkId, ChunkInputs, ChunkNode, GraphNode, TileableGraph, TileableId, TileableNode};
pub use key::Key;
pub use op::{
    quantile_ranks, AssembleChunk, ChunkOp, CsvChunk, CsvFormat, FrameChunkOp, FrameOp, GroupMethod, JoinProbeChunk,
    Op, PipeArg, PipeStage, PipelineChunk, RandomChunk, ReadFilter, ReduceFn, ReduceMapChunk, SliceElem, SourceFile,
    TensorOp,
};
pub use shape::{fmt_shape, ChunkIndex, ChunkShape, Dim, Meta};
pub use smallvec;
