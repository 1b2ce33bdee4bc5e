//! The one planning entry point: tile a tileable graph as far as it can go
//! without running anything, optionally run the chunk passes, and say what came
//! of it. Sessions (`explain_tiled`), the CLI (`mars inspect`) and tests all plan
//! through here; the driver steps the same [`Tiler`] while it executes.

use crate::error::{TileError, TileResult};
use crate::passes::{default_passes, PassCtx, PassManager};
use crate::tiler::{fmt_nsplits, TileOptions, TileStatus, Tiler};
use mars_ir::{ChunkGraph, ChunkId, Key, TileableGraph};

/// One pass as it ran on the plan.
#[derive(Debug, Clone)]
pub struct PassStep {
    pub name: &'static str,
    pub changed: bool,
    /// The roots' chunk graph after the pass, when it changed something.
    pub explain: Option<String>,
}

/// A tiled (maybe partly tiled) graph.
#[derive(Debug)]
pub struct Plan {
    /// The tiler, holding the layout of every tileable it could tile.
    pub tiler: Tiler,
    /// The chunk graph (after the passes, when they ran).
    pub chunks: ChunkGraph,
    /// The roots' chunks in `chunks`; when tiling paused, the chunks it waits on.
    pub roots: Vec<ChunkId>,
    /// Tiling stopped early: these many chunks must run before the rest can be tiled.
    pub paused: Option<usize>,
    /// The passes, in order (empty unless asked for, or when paused).
    pub passes: Vec<PassStep>,
}

/// Tile `graph` for `roots`; with `passes`, run the default chunk passes one by
/// one on the result (not when tiling paused: the graph is not final then).
pub fn plan(graph: TileableGraph, roots: &[Key], opts: TileOptions, passes: bool) -> TileResult<Plan> {
    let mut tiler = Tiler::for_keys(graph, opts, roots)?;
    let (root_chunks, paused) = match tiler.step()? {
        TileStatus::Done => {
            let mut ids = Vec::new();
            for k in roots {
                let layout = tiler.layout_of(k).ok_or_else(|| TileError::Rule {
                    op: "plan".into(),
                    key: k.short(),
                    msg: "root is not in the graph".into(),
                })?;
                ids.extend_from_slice(&layout.chunks);
            }
            (ids, None)
        }
        TileStatus::NeedMeta(need) => {
            let n = need.len();
            (need, Some(n))
        }
    };
    let keys: Vec<Key> = root_chunks.iter().map(|&c| tiler.chunks.node(c).key).collect();
    let mut chunks = tiler.chunks.clone();
    let mut steps = Vec::new();
    if passes && paused.is_none() {
        let ctx = PassCtx { keep: keys.iter().copied().collect() };
        for pass in default_passes() {
            let name = pass.name();
            let changed = PassManager::new(vec![pass]).run(&mut chunks, &ctx)?.iter().any(|r| r.changed);
            let explain = changed.then(|| {
                let ids: Vec<ChunkId> = keys.iter().filter_map(|k| chunks.get(k)).collect();
                chunks.explain(&ids)
            });
            steps.push(PassStep { name, changed, explain });
        }
    }
    let roots = keys.iter().filter_map(|k| chunks.get(k)).collect();
    Ok(Plan { tiler, chunks, roots, paused, passes: steps })
}

/// The explain() text of `root`'s chunk graph after tiling (and, with
/// `passes`, after the default chunk passes). When tiling needs chunks to run
/// first, shows what is tiled so far and says so.
pub fn explain_tiled(graph: TileableGraph, root: Key, opts: TileOptions, passes: bool) -> TileResult<String> {
    let mut p = plan(graph, &[root], opts, passes)?;
    if let Some(n) = p.paused {
        return Ok(
            format!("tiling paused: {n} chunks must run before the rest can be tiled\n") + &p.chunks.explain(&p.roots)
        );
    }
    let nsplits = p.tiler.layout_of(&root).map(|l| fmt_nsplits(&l.nsplits)).unwrap_or_default();
    let mut out = format!("nsplits={nsplits}\n");
    for s in &p.passes {
        out.push_str(&format!("pass {}: {}\n", s.name, if s.changed { "changed" } else { "unchanged" }));
    }
    Ok(out + &p.chunks.explain(&p.roots))
}
