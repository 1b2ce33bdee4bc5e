//! `mars-tiler`: from the tileable IR to the chunk IR.
//!
//! - [`Tiler`] walks a [`mars_ir::TileableGraph`] in topological order and calls
//!   each op's tile rule (`rules/`, one module per op family). Tiling is
//!   resumable: a rule that needs lengths not yet known returns the chunks that
//!   must run first ([`TileStatus::NeedMeta`]); the backend runs them, feeds the
//!   shapes back with [`Tiler::set_chunk_shape`], and calls [`Tiler::step`] again.
//! - [`layout`]: chunk grids, chunk sizing by byte budget, and the one shared
//!   rechunk step rules use to line up their inputs.
//! - [`passes`]: chunk-graph passes (element-wise fusion) run by one manager.
//!
//! This crate knows nothing of threads, stores or sockets.

pub mod error;
pub mod layout;
pub mod passes;
pub mod rules;
pub mod tiler;

pub use error::{TileError, TileResult};
pub use layout::Layout;
pub use passes::{default_passes, Pass, PassManager};
pub use tiler::{explain_tiled, fmt_nsplits, TileOptions, TileStatus, Tiler};
