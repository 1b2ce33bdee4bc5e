//! `mars-tiler`: from the tileable IR to the chunk IR.
//!
//! - [`Tiler`] walks a [`mars_ir::TileableGraph`] in topological order and calls
//!   each op's tile rule (`rules/`, one module per op family). Tiling is
//!   resumable: a rule that needs lengths not yet known returns the chunks that
//!   must run first ([`TileStatus::NeedMeta`]); the backend runs them, feeds the
//!   shapes back with [`Tiler::set_chunk_shape`], and calls [`Tiler::step`] again.
//! - [`plan`]: the one planning entry point (tile, then optionally the passes)
//!   behind `explain_tiled` and `mars inspect`.
//! - [`layout`]: chunk grids and chunk sizing by byte budget; `rules::rechunk`
//!   is the one shared rechunk step rules use to line up their inputs.
//! - [`optimize`]: tileable-graph rewrites before tiling (projection
//!   pushdown into reads, one read per file set).
//! - [`passes`]: chunk-graph passes (element-wise fusion) run by one manager.
//!
//! This crate knows nothing of threads, stores or sockets.

pub mod error;
pub mod layout;
pub mod optimize;
pub mod passes;
pub mod plan;
pub mod rules;
pub mod tiler;

pub use error::{TileError, TileResult};
pub use layout::Layout;
pub use passes::{default_passes, Pass, PassManager};
pub use plan::{explain_tiled, plan, PassStep, Plan};
pub use tiler::{fmt_nsplits, TileOptions, TileStatus, Tiler, DEFAULT_MAX_CHUNKS};
