//! The `mars` tool: inspect and run saved graphs; run a cluster's
//! supervisor and workers.

use clap::{Parser, Subcommand, ValueEnum};
use mars::serve::ClusterCommand;
use mars::tool::{self, Format, InspectOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, freed pages kept a while: see [`mars::alloc`]
#[global_allocator]
static GLOBAL: mars::alloc::MiMalloc = mars::alloc::MiMalloc;

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
    #[command(flatten)]
    Cluster(ClusterCommand),
}

fn main() -> ExitCode {
    mars::alloc::keep_freed_pages();
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
        Command::Cluster(cmd) => return mars::serve::run(cmd),
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
