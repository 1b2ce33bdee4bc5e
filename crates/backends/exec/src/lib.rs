//! `mars-exec`: what runs chunks — what a worker process needs and nothing
//! it does not: no tiler, no sessions, no network.
//!
//! - [`kernels`]: what one chunk op does to chunk data (ndarray / Arrow).
//! - [`executor`]: runs a chunk graph on a rayon pool as inputs complete,
//!   freeing intermediates after their last consumer.
//! - [`store`]: the chunks held, their pins, spilling under a memory limit
//!   (the [`store::ChunkStore`] trait is what a driver sees of them).
//! - [`codec`]: the one byte encoding of a chunk's value (Arrow IPC for
//!   frames, npy for tensors), shared by spilling and any wire.
//! - [`io`]: parquet and CSV files.
//!
//! `mars-backends` builds the backends (the driver, the local backend) on it.

pub mod codec;
pub mod data;
pub mod error;
pub mod executor;
pub mod io;
pub mod kernels;
pub mod store;

pub use data::ChunkData;
pub use error::{ExecError, ExecResult, KernelError};

#[cfg(test)]
mod tests {
    /// What a worker runs stays free of the tiler and of any network stack:
    /// this crate's manifest names none of them.
    #[test]
    fn depends_on_neither_the_tiler_nor_a_network_stack() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest.split("[dependencies]").nth(1).and_then(|s| s.split("\n[").next()).unwrap_or("");
        assert!(deps.contains("mars-ir"), "{deps}");
        for banned in ["mars-tiler", "mars-backends", "tokio", "tonic", "arrow-flight"] {
            assert!(!deps.contains(banned), "mars-exec depends on {banned}");
        }
    }
}
