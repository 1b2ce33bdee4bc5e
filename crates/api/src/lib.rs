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
//!
//! # Sessions
//!
//! `execute()` and `fetch()` use the default session (a local one, created on
//! first use); `execute_in`/`fetch_in` name a session, as Mars's
//! `execute(session=sess)`:
//!
//! ```
//! use mars::prelude::*;
//! use mars::dataframe as md;
//! use mars::tensor as mt;
//!
//! # fn main() -> mars::Result<()> {
//! // md.DataFrame([[1, 2], [3, 4]]).execute()
//! let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?;
//! assert_eq!(df.execute()?.fetch()?.to_string(), "   0  1\n0  1  2\n1  3  4");
//!
//! // sess = new_session(); t.execute(session=sess)
//! let sess = mars::new_session()?;
//! let t = (mt::ones(&[2, 2]) + 1.0).sum();
//! assert_eq!(t.execute_in(&sess)?.fetch_in(&sess)?.to_string(), "array(8.)");
//!
//! // a session only hands out what it executed
//! let other = mars::new_session()?;
//! let err = t.fetch_in(&other).unwrap_err();
//! assert!(matches!(err, Error::NotExecuted { .. }));
//! assert!(err.to_string().contains("must be executed first"));
//!
//! // new_session().as_default(): execute() now runs there
//! let sess = mars::new_session()?.as_default();
//! t.execute()?;
//! assert!(sess.holds(&t));
//! # Ok(())
//! # }
//! ```
//!
//! Building never fails: an invalid operation is kept in the expression and
//! reported by `execute`, with numpy's wording.
//!
//! ```
//! use mars::tensor as mt;
//!
//! let bad = mt::ones(&[3, 4]).dot(&mt::ones(&[5, 2])).sum();
//! let err = bad.execute().unwrap_err();
//! assert_eq!(err.to_string(), "shapes (3, 4) and (5, 2) not aligned: 4 (dim 1) != 5 (dim 0)");
//! ```
//!
//! [`Tileable::explain`] shows the graph that `execute` will tile and run, and
//! [`Session::execute`] runs several tileables together, computing their shared
//! parts once.

#![warn(missing_docs)]

pub mod alloc;
pub mod dataframe;
mod error;
mod frame_display;
mod node;
pub mod serve;
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
    data_dir, explain_tiled, explain_tiled_for, new_cluster, new_session, new_session_at, save_graph, LocalCluster,
    Session, SessionBuilder,
};
pub use tool::{load_graph, SavedGraph};

/// `use mars::prelude::*;`: the [`Tileable`] trait (for `key`/`explain`),
/// [`Session`], [`new_session`], [`Error`] and [`Result`].
pub mod prelude {
    pub use crate::{new_session, Error, Result, Session, Tileable};
}
