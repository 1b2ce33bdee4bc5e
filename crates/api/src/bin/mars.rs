//! The `mars` tool: inspect and run saved graphs; run a cluster's
//! supervisor and workers.

use clap::{Parser, Subcommand, ValueEnum};
use mars::tool::{self, Format, InspectOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "mars", version, about = "Inspect, draw and run mars-rs graphs; run a cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Fmt {
    Text,
    Json,
    Dot,
    Svg,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a saved graph: the tileable graph, or with --tile the chunk graph.
    Inspect {
        graph: PathBuf,
        /// Show the chunk graph after tiling and passes.
        #[arg(long)]
        tile: bool,
        /// Per-chunk byte budget for tiling (default 128 MiB).
        #[arg(long, value_name = "BYTES")]
        chunk_size: Option<usize>,
        #[arg(long, value_enum, default_value = "text")]
        format: Fmt,
        /// Show the chunk graph after each pass.
        #[arg(long)]
        passes: bool,
        /// Node counts, chunk counts, estimated bytes, depth and width.
        #[arg(long)]
        stats: bool,
    },
    /// Execute a saved graph on the local backend.
    Run {
        graph: PathBuf,
        /// Where to write results (.npy for tensors, Arrow IPC for frames; a folder for several).
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long, hide = true)]
        watch_stdin: bool,
    },
}

/// TLS for `mars supervisor` and `mars worker`.
#[derive(clap::Args, Debug)]
struct TlsArgs {
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

fn serve(run: impl FnOnce() -> Result<(), String>) -> ExitCode {
    let level = match std::env::var("MARS_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { graph, tile, chunk_size, format, passes, stats } => tool::load_graph(&graph).and_then(|g| {
            let format = match format {
                Fmt::Text => Format::Text,
                Fmt::Json => Format::Json,
                Fmt::Dot => Format::Dot,
                Fmt::Svg => Format::Svg,
            };
            tool::inspect(&g, &InspectOptions { tile, chunk_size, format, passes, stats })
        }),
        Command::Run { graph, out } => tool::load_graph(&graph).and_then(|g| tool::run(&g, out.as_deref())),
        Command::Supervisor { bind, token, token_file, heartbeat_ms, worker_ttl_ms, lease_ms, tls, watch_stdin } => {
            use mars_cluster::supervisor::Timing;
            use std::time::Duration;
            let timing = Timing {
                heartbeat: Duration::from_millis(heartbeat_ms.max(10)),
                worker_ttl: Duration::from_millis(worker_ttl_ms.max(50)),
                lease: Duration::from_millis(lease_ms.max(50)),
            };
            let opts = mars_cluster::SupervisorOptions {
                bind,
                token,
                token_file,
                timing,
                tls_cert: tls.tls_cert,
                tls_key: tls.tls_key,
                tls_ca: tls.tls_ca,
                watch_stdin,
            };
            return serve(|| mars_cluster::process::run_supervisor(opts));
        }
        Command::Worker { supervisor, bind, advertise, token, threads, memory_limit, tls, watch_stdin } => {
            let opts = mars_cluster::WorkerOptions {
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
            };
            return serve(|| mars_cluster::process::run_worker(opts));
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
