//! `mars-cluster`: the remote-cluster backend.
//!
//! - [`supervisor`]: sessions, graph submission, tiling (the shared driver),
//!   scheduling chunks onto workers by data locality, chunk metadata, leases.
//! - [`worker`]: runs chunk ops with the local backend's kernels, holds
//!   chunks (spilling above its limit), serves them to peers and clients.
//! - [`client`]: [`RemoteBackend`], the [`Backend`](mars_backends::Backend) a
//!   session at `http://host:port` holds.
//! - [`dashboard`]: the supervisor's HTML page (workers, sessions,
//!   executions, a graph picture), behind the token.
//! - [`process`]: `mars supervisor` / `mars worker` entry points and
//!   [`ClusterProcesses`], a supervisor and workers started as child processes.
//!
//! The control plane is gRPC (tonic, `proto/mars.proto`); chunk data moves
//! over Arrow Flight with the chunk key as ticket, encoded by the one
//! [`codec`](mars_exec::codec) spilling uses. Every endpoint needs the token.

pub mod auth;
pub mod client;
pub mod dashboard;
pub mod flight;
pub mod process;
pub mod schedule;
pub mod supervisor;
pub mod tls;
pub mod wire;
pub mod worker;

#[allow(missing_debug_implementations, clippy::all)]
pub mod proto {
    tonic::include_proto!("mars.cluster.v1");
}

pub use client::RemoteBackend;
pub use process::{ClusterProcesses, LocalClusterOptions, SupervisorOptions, WorkerOptions};
pub use tls::{ClientTls, ServerTls};
