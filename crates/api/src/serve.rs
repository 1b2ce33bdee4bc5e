//! The cluster's processes, `mars supervisor` and `mars worker`, as a
//! library: the `mars` binary runs them, and so can any program that starts
//! a [`LocalCluster`](crate::LocalCluster) from its own executable
//! ([`serve_from_args`] at the top of `main`, and
//! `LocalClusterOptions::binary` set to `std::env::current_exe()`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `mars supervisor …` / `mars worker …`.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Run a cluster's supervisor: sessions, tiling, scheduling, on one port.
    Supervisor {
        /// Where to listen (port 0 picks a free one; printed on stdout).
        #[arg(long, default_value = "127.0.0.1:7777")]
        bind: String,
        /// The token every client and worker must present (default:
        /// MARS_TOKEN, else a new one, written to a file only you can read).
        #[arg(long)]
        token: Option<String>,
        /// Read the token from this file.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// How often workers heartbeat.
        #[arg(long, default_value_t = 500, value_name = "MS")]
        heartbeat_ms: u64,
        /// A worker silent this long is removed, its chunks recomputed elsewhere.
        #[arg(long, default_value_t = 5000, value_name = "MS")]
        worker_ttl_ms: u64,
        /// A session whose client was silent this long is closed.
        #[arg(long, default_value_t = 30000, value_name = "MS")]
        lease_ms: u64,
        /// TLS (`--tls-cert`, `--tls-key`, `--tls-ca`).
        #[command(flatten)]
        tls: TlsArgs,
        /// Stop when standard input closes (set by the process that started it).
        #[arg(long, hide = true)]
        watch_stdin: bool,
    },
    /// Run a cluster worker: runs chunks, holds them, serves them to peers.
    Worker {
        /// The supervisor's URL, http://host:port.
        #[arg(long)]
        supervisor: String,
        /// Where to listen (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// The address peers and clients reach this worker at (default: the bound one).
        #[arg(long)]
        advertise: Option<String>,
        /// The cluster's token (default: MARS_TOKEN).
        #[arg(long)]
        token: Option<String>,
        /// Threads running chunks (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Keep held chunks under this many bytes in memory by spilling to disk.
        #[arg(long, value_name = "BYTES")]
        memory_limit: Option<usize>,
        /// TLS (`--tls-cert`, `--tls-key`, `--tls-ca`).
        #[command(flatten)]
        tls: TlsArgs,
        /// Stop when standard input closes (set by the process that started it).
        #[arg(long, hide = true)]
        watch_stdin: bool,
    },
}

/// TLS for `mars supervisor` and `mars worker`.
#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Serve TLS with this certificate (PEM); clients then use https://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Trust these certificates (PEM) when connecting to https:// peers
    /// (default: MARS_TLS_CA, else --tls-cert, else the public web roots).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

/// Run a supervisor or worker until it stops (Ctrl-C, SIGTERM, or its
/// parent's stdin closing); logs go to stderr at `MARS_LOG`'s level.
pub fn run(cmd: ClusterCommand) -> ExitCode {
    let level = match std::env::var("MARS_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).try_init();
    let result = match cmd {
        ClusterCommand::Supervisor {
            bind,
            token,
            token_file,
            heartbeat_ms,
            worker_ttl_ms,
            lease_ms,
            tls,
            watch_stdin,
        } => {
            use mars_cluster::supervisor::Timing;
            use std::time::Duration;
            let timing = Timing {
                heartbeat: Duration::from_millis(heartbeat_ms.max(10)),
                worker_ttl: Duration::from_millis(worker_ttl_ms.max(50)),
                lease: Duration::from_millis(lease_ms.max(50)),
            };
            mars_cluster::process::run_supervisor(mars_cluster::SupervisorOptions {
                bind,
                token,
                token_file,
                timing,
                tls_cert: tls.tls_cert,
                tls_key: tls.tls_key,
                tls_ca: tls.tls_ca,
                watch_stdin,
            })
        }
        ClusterCommand::Worker { supervisor, bind, advertise, token, threads, memory_limit, tls, watch_stdin } => {
            mars_cluster::process::run_worker(mars_cluster::WorkerOptions {
                supervisor,
                bind,
                advertise,
                token,
                threads,
                memory_limit,
                tls_cert: tls.tls_cert,
                tls_key: tls.tls_key,
                tls_ca: tls.tls_ca,
                watch_stdin,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Parser, Debug)]
#[command(name = "mars-cluster-process")]
struct Only {
    #[command(subcommand)]
    command: ClusterCommand,
}

/// When this program was started as a cluster process (its first argument
/// `supervisor` or `worker`), run that process and give its exit code;
/// otherwise `None`, and the program goes on as itself.
pub fn serve_from_args() -> Option<ExitCode> {
    let first = std::env::args().nth(1)?;
    if first != "supervisor" && first != "worker" {
        return None;
    }
    Some(match Only::try_parse() {
        Ok(only) => run(only.command),
        Err(e) => {
            let _ = e.print();
            ExitCode::FAILURE
        }
    })
}
