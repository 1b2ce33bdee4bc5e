//! `mars`: numpy- and pandas-style computation on data larger than one core or
//! one machine's memory, built lazily and executed in chunks.
//!
//! - [`tensor`] (`use mars::tensor as mt;`) and [`dataframe`]
//!   (`use mars::dataframe as md;`): cheap lazy handles; operators build
//!   tileable nodes, nothing runs until `execute`.
//! - [`Session`]: owns a backend and the results it holds; `execute`/`fetch`.
//! - [`Tileable`]: what every handle offers (`key`, `explain`).
//!
//! The pipeline behind it lives in `mars-ir` (IR), `mars-tiler` (tiling and
//! passes) and `mars-backends` (execution); this crate is a thin facade.

pub mod dataframe;
mod error;
mod frame_display;
mod node;
mod session;
pub mod tensor;
pub mod tool;

pub use arrow;
pub use ndarray;

pub use error::{Error, Result};
pub use mars_backends::Stats;
pub use mars_ir::Key;
pub use node::Tileable;
pub use session::{
    explain_tiled, new_cluster, new_session, new_session_at, save_graph, LocalCluster, Session, SessionBuilder,
};
pub use tool::{load_graph, SavedGraph};

/// `use mars::prelude::*;`
pub mod prelude {
    pub use crate::{new_session, Error, Result, Session, Tileable};
}
