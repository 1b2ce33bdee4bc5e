//! Frame pipelines: the row-wise ops over one chunk's rows (`Project`,
//! `Eval`, `Filter`, `WithColumn`, a `JoinProbe` against a whole table),
//! ending at their last op or at a `GroupPartial`, become one
//! [`FrameChunkOp::Pipeline`] that runs them over cache-sized batches of the
//! source, so no intermediate column of the whole chunk is made. A reader
//! (`ReadParquet`, `ReadCsv`) feeding only the pipeline is taken into it and
//! decodes batch by batch.
//!
//! The fused ops are the ones reachable from the source through row-wise
//! ops whose every frame input is the source or already fused, that are not
//! kept, and whose values nothing outside needs: exactly one of them (the
//! pipeline's result, whose key it takes) may be needed outside. Arguments
//! of one stage must have the same rows: the source's, or one `Filter`'s or
//! probe's output's (checked, so a stage never pairs rows of different
//! filters).
//!
//! Needs nothing before it; run it on the graph about to execute.

use super::{Pass, PassCtx};
use crate::error::TileResult;
use mars_ir::{ChunkGraph, ChunkId, ChunkOp, FrameChunkOp, PipeArg, PipeStage, PipelineChunk};
use std::sync::Arc;

/// Rows a pipeline runs at a time: its intermediate columns stay in cache.
pub const PIPELINE_BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug)]
pub struct FramePipeline {
    pub batch_rows: usize,
}

impl Default for FramePipeline {
    fn default() -> Self {
        FramePipeline { batch_rows: PIPELINE_BATCH_ROWS }
    }
}

/// How an op may sit in a pipeline.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// Same rows as its frame inputs (which must share rows).
    Keeps,
    /// New rows from its first input's (a filter by its second, or a probe).
    Makes,
    /// A `GroupPartial`: the pipeline's end.
    Ends,
}

fn role(op: &ChunkOp, inputs: usize) -> Option<Role> {
    match op {
        ChunkOp::Frame(FrameChunkOp::Project { .. } | FrameChunkOp::Eval { .. } | FrameChunkOp::WithColumn { .. }) => {
            Some(Role::Keeps)
        }
        ChunkOp::Frame(FrameChunkOp::Filter) => Some(Role::Makes),
        // one probe frame and its table
        ChunkOp::Frame(FrameChunkOp::JoinProbe(p)) if !p.keep_build && inputs == 2 => Some(Role::Makes),
        ChunkOp::Frame(FrameChunkOp::GroupPartial { .. }) => Some(Role::Ends),
        _ => None,
    }
}

/// Whether a node's value is rows of a frame a pipeline can start from.
fn is_source(op: &ChunkOp, tensor: bool) -> bool {
    match op {
        ChunkOp::Fetch => !tensor,
        ChunkOp::Frame(
            FrameChunkOp::HashPartition { .. } | FrameChunkOp::RangePartition { .. } | FrameChunkOp::JoinBuild { .. },
        ) => false,
        ChunkOp::Frame(_) => true,
        _ => false,
    }
}

/// The fused part of the graph found from one source.
struct Found {
    /// Fused nodes in topological order (the result last).
    nodes: Vec<ChunkId>,
    /// Each fused node's rows: 0 the source's, else one filter's or probe's.
    rows: Vec<usize>,
}

impl Pass for FramePipeline {
    fn name(&self) -> &'static str {
        "frame_pipeline"
    }

    fn run(&self, graph: &mut ChunkGraph, ctx: &PassCtx) -> TileResult<bool> {
        let order = graph.topo_order()?;
        let mut pos = vec![usize::MAX; graph.id_bound()];
        for (i, &id) in order.iter().enumerate() {
            pos[id.0 as usize] = i;
        }
        let mut gone = vec![false; graph.id_bound()];
        let mut any = false;
        for &src in &order {
            if gone[src.0 as usize] {
                continue;
            }
            let node = graph.node(src);
            if !is_source(&node.op, node.dtype.is_some()) {
                continue;
            }
            let Some(found) = grow(graph, src, &pos) else { continue };
            let Some(result) = result(graph, ctx, &found) else { continue };
            // a pipeline that waits for other chunks (a probe's table) does
            // not take in its reader: the read can run while they are made
            let waits = found
                .nodes
                .iter()
                .any(|&id| graph.node(id).inputs.iter().any(|i| *i != src && !found.nodes.contains(i)));
            let reader = match &*graph.node(src).op {
                ChunkOp::Frame(op @ (FrameChunkOp::ReadParquet { .. } | FrameChunkOp::ReadCsv(_)))
                    if !waits
                        && !ctx.keep.contains(&graph.node(src).key)
                        && graph.consumers(src).iter().all(|c| found.nodes.contains(c)) =>
                {
                    Some(op.clone())
                }
                _ => None,
            };
            if !worth_it(graph, &found, reader.is_some()) {
                continue;
            }
            // the stages and their arguments; inputs from outside (a probe's
            // table) become the chunk's inputs after the source's
            let mut inputs: Vec<ChunkId> = if reader.is_some() { vec![] } else { vec![src] };
            let mut stages = Vec::with_capacity(found.nodes.len());
            for &id in &found.nodes {
                let n = graph.node(id);
                let ChunkOp::Frame(op) = &*n.op else { unreachable!("only frame ops are fused") };
                let args = n
                    .inputs
                    .iter()
                    .map(|&i| {
                        if i == src {
                            PipeArg::Source
                        } else if let Some(s) = found.nodes.iter().position(|&f| f == i) {
                            PipeArg::Stage(s)
                        } else {
                            let at = inputs.iter().position(|&x| x == i).unwrap_or_else(|| {
                                inputs.push(i);
                                inputs.len() - 1
                            });
                            PipeArg::Input(at)
                        }
                    })
                    .collect();
                stages.push(PipeStage { op: op.clone(), args });
            }
            let pipeline = PipelineChunk { source: reader.clone(), stages, batch_rows: self.batch_rows };
            // the result's node becomes the pipeline (its key, shape and
            // place stay); the other fused nodes, and an absorbed reader, go
            graph.node_mut(result).op = Arc::new(ChunkOp::Frame(FrameChunkOp::Pipeline(Box::new(pipeline))));
            graph.set_inputs(result, inputs);
            for &id in found.nodes.iter().rev().filter(|&&id| id != result) {
                graph.remove(id);
                gone[id.0 as usize] = true;
            }
            if reader.is_some() {
                graph.remove(src);
                gone[src.0 as usize] = true;
            }
            any = true;
        }
        Ok(any)
    }
}

/// The row-wise ops reachable from `src` whose frame inputs are all
/// `src` or fused, in topological order; `None` when there are none.
fn grow(graph: &ChunkGraph, src: ChunkId, pos: &[usize]) -> Option<Found> {
    let mut found = Found { nodes: Vec::new(), rows: Vec::new() };
    let mut next_rows = 1;
    let mut work = graph.consumers(src);
    // candidates are taken in topological order, so a node's fused
    // inputs are in before it is looked at again
    while let Some(at) = (0..work.len()).min_by_key(|&i| pos[work[i].0 as usize]) {
        let id = work.swap_remove(at);
        if found.nodes.contains(&id) {
            continue;
        }
        let n = graph.node(id);
        let Some(role) = role(&n.op, n.inputs.len()) else { continue };
        // the rows of each frame argument (a probe's table is not one)
        let frame_args = match role {
            Role::Makes if matches!(*n.op, ChunkOp::Frame(FrameChunkOp::JoinProbe(_))) => &n.inputs[..1],
            _ => &n.inputs[..],
        };
        let rows: Option<Vec<usize>> = frame_args
            .iter()
            .map(|&i| match found.nodes.iter().position(|&f| f == i) {
                Some(s) => Some(found.rows[s]),
                None => (i == src).then_some(0),
            })
            .collect();
        let Some(rows) = rows else { continue };
        let Some(&first) = rows.first() else { continue };
        if rows.iter().any(|&r| r != first) {
            continue;
        }
        found.nodes.push(id);
        found.rows.push(match role {
            Role::Keeps | Role::Ends => first,
            Role::Makes => {
                next_rows += 1;
                next_rows - 1
            }
        });
        if role != Role::Ends {
            work.extend(graph.consumers(id));
        }
    }
    (!found.nodes.is_empty()).then_some(found)
}

/// The one fused node needed outside (kept, or consumed by a node not
/// fused), which must come last; `None` when there are several.
fn result(graph: &ChunkGraph, ctx: &PassCtx, found: &Found) -> Option<ChunkId> {
    let mut outside = found.nodes.iter().copied().filter(|&id| {
        ctx.keep.contains(&graph.node(id).key)
            || graph.consumers(id).iter().any(|c| !found.nodes.contains(c))
            || graph.consumers(id).is_empty()
    });
    let result = outside.next()?;
    (outside.next().is_none() && found.nodes.last() == Some(&result)).then_some(result)
}

/// Whether batches pay. A pipeline that filters, probes or ends in a
/// partial aggregate pays when it computes something (a filter or an
/// expression) besides, or reads its source itself: each batch's
/// intermediate columns stay in cache and its result is small or made batch
/// by batch anyway. A chain that only adds columns must make at least two
/// (one column alone gains nothing from being cut and concatenated).
fn worth_it(graph: &ChunkGraph, found: &Found, reader: bool) -> bool {
    let is = |id: ChunkId, f: fn(&FrameChunkOp) -> bool| matches!(&*graph.node(id).op, ChunkOp::Frame(op) if f(op));
    let count = |f: fn(&FrameChunkOp) -> bool| found.nodes.iter().filter(|&&id| is(id, f)).count();
    let evals = count(|op| matches!(op, FrameChunkOp::Eval { .. }));
    let filters = count(|op| matches!(op, FrameChunkOp::Filter));
    let shrinks =
        count(|op| matches!(op, FrameChunkOp::Filter | FrameChunkOp::JoinProbe(_) | FrameChunkOp::GroupPartial { .. }));
    match shrinks {
        0 => evals >= 2,
        _ => evals + filters > 0 && (found.nodes.len() > 1 || reader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars_ir::colexpr::{ColExpr, Lit};
    use mars_ir::fast::FastSet;
    use mars_ir::{BinaryFn, ChunkNode, Dim, Key};

    /// Adds frame chunk nodes; keys from a counter.
    struct G {
        g: ChunkGraph,
        n: u64,
    }

    impl G {
        fn add(&mut self, op: FrameChunkOp, inputs: &[ChunkId]) -> ChunkId {
            self.n += 1;
            self.g.insert(ChunkNode {
                key: Key::of(&self.n, &[]),
                op: Arc::new(ChunkOp::Frame(op)),
                inputs: inputs.iter().copied().collect(),
                shape: vec![Dim::Unknown, Dim::Known(2)].into(),
                dtype: None,
                index: vec![0, 0].into(),
            })
        }
        fn held(&mut self) -> ChunkId {
            self.n += 1;
            self.g.insert(ChunkNode {
                key: Key::of(&self.n, &[]),
                op: Arc::new(ChunkOp::Fetch),
                inputs: Default::default(),
                shape: vec![Dim::Known(10), Dim::Known(2)].into(),
                dtype: None,
                index: vec![0, 0].into(),
            })
        }
        fn key(&self, id: ChunkId) -> Key {
            self.g.node(id).key
        }
        /// Run the pass keeping `keep`; the stage ops of each pipeline left.
        fn run(&mut self, keep: &[ChunkId]) -> Vec<Vec<&'static str>> {
            let ctx = PassCtx { keep: keep.iter().map(|&k| self.key(k)).collect::<FastSet<Key>>() };
            FramePipeline { batch_rows: 4 }.run(&mut self.g, &ctx).expect("pass");
            let mut out = Vec::new();
            for id in self.g.ids() {
                if let ChunkOp::Frame(FrameChunkOp::Pipeline(p)) = &*self.g.node(id).op {
                    out.push(p.stages.iter().map(|s| s.op.name()).collect());
                }
            }
            out
        }
    }

    fn graph() -> G {
        G { g: ChunkGraph::new(), n: 0 }
    }

    fn gt(v: i64) -> FrameChunkOp {
        let e = ColExpr::Binary(BinaryFn::Gt, Box::new(ColExpr::Input(0)), Box::new(ColExpr::Lit(Lit::I64(v))));
        FrameChunkOp::Eval { expr: e, name: "m".into() }
    }

    fn partial() -> FrameChunkOp {
        FrameChunkOp::GroupPartial { keys: vec![0], aggs: vec![(1, mars_ir::agg::AggFn::Sum)] }
    }

    /// A held chunk, its rows where column 0 > 3, and their partial sums:
    /// (graph, source, filtered rows, partial).
    fn filtered_partial() -> (G, ChunkId, ChunkId, ChunkId) {
        let mut g = graph();
        let src = g.held();
        let col = g.add(FrameChunkOp::Project { columns: vec![0] }, &[src]);
        let mask = g.add(gt(3), &[col]);
        let rows = g.add(FrameChunkOp::Filter, &[src, mask]);
        let part = g.add(partial(), &[rows]);
        (g, src, rows, part)
    }

    #[test]
    fn a_filter_and_its_partial_become_one_op() {
        let (mut g, src, _, part) = filtered_partial();
        let key = g.key(part);
        assert_eq!(g.run(&[part]), vec![vec!["Project", "Eval", "FrameFilter", "GroupPartial"]]);
        // the result keeps its key; the held source is its input; the rest is gone
        let id = g.g.get(&key).expect("the result stays");
        assert_eq!(g.g.node(id).inputs.to_vec(), vec![src]);
        assert_eq!(g.g.len(), 2);
    }

    #[test]
    fn two_results_from_one_source_are_left_alone() {
        // the filtered rows are kept and also aggregated: two values needed outside
        let (mut g, _, rows, part) = filtered_partial();
        assert!(g.run(&[rows, part]).is_empty());
        assert_eq!(g.g.len(), 5);
    }

    #[test]
    fn rows_of_different_filters_are_never_paired() {
        // `with_column` of rows filtered one way and a column filtered another
        let mut g = graph();
        let src = g.held();
        let col = g.add(FrameChunkOp::Project { columns: vec![0] }, &[src]);
        let (m1, m2) = (g.add(gt(3), &[col]), g.add(gt(5), &[col]));
        let a = g.add(FrameChunkOp::Filter, &[src, m1]);
        let b = g.add(FrameChunkOp::Filter, &[col, m2]);
        let both = g.add(FrameChunkOp::WithColumn { name: "x".into(), at: 2, replace: false }, &[a, b]);
        // `both` cannot join (its inputs have different rows), so the two
        // filters are both needed outside: nothing is fused
        assert!(g.run(&[both]).is_empty());
        assert!(g.g.get(&g.key(both)).is_some());
    }

    fn read() -> FrameChunkOp {
        let file = mars_ir::SourceFile {
            path: "t.parquet".into(),
            len: 1,
            modified_ns: 0,
            row_groups: vec![10],
            row_group_bytes: vec![],
        };
        FrameChunkOp::ReadParquet {
            file: Box::new(file),
            row_groups: vec![0],
            rows: None,
            columns: vec!["a".into()],
            filter: None,
        }
    }

    #[test]
    fn a_reader_is_taken_in_unless_the_pipeline_waits_for_a_table() {
        let mut g = graph();
        let src = g.add(read(), &[]);
        let col = g.add(FrameChunkOp::Project { columns: vec![0] }, &[src]);
        let x = g.add(gt(3), &[col]);
        let part = g.add(partial(), &[x]);
        let key = g.key(part);
        assert_eq!(g.run(&[part]), vec![vec!["Project", "Eval", "GroupPartial"]]);
        let id = g.g.get(&key).expect("the result stays");
        let ChunkOp::Frame(FrameChunkOp::Pipeline(p)) = &*g.g.node(id).op else { panic!("a pipeline") };
        assert!(matches!(p.source, Some(FrameChunkOp::ReadParquet { .. })));
        assert!(g.g.node(id).inputs.is_empty());
        assert_eq!(g.g.len(), 1);
        // probing a table: the read runs on its own while the table is built
        let mut g = graph();
        let src = g.add(read(), &[]);
        let table = g.add(FrameChunkOp::JoinBuild { keys: vec![0] }, &[]);
        let probe = mars_ir::JoinProbeChunk {
            keys: vec![0],
            probe: mars_ir::join::Side::Left,
            keep_probe: false,
            keep_build: false,
            cols: vec![],
            names: vec![],
        };
        let joined = g.add(FrameChunkOp::JoinProbe(Box::new(probe)), &[src, table]);
        let col = g.add(FrameChunkOp::Project { columns: vec![0] }, &[joined]);
        let x = g.add(gt(3), &[col]);
        let part = g.add(partial(), &[x]);
        let key = g.key(part);
        assert_eq!(g.run(&[part]), vec![vec!["JoinProbe", "Project", "Eval", "GroupPartial"]]);
        let id = g.g.get(&key).expect("the result stays");
        let ChunkOp::Frame(FrameChunkOp::Pipeline(p)) = &*g.g.node(id).op else { panic!("a pipeline") };
        assert!(p.source.is_none());
        assert_eq!(g.g.node(id).inputs.to_vec(), vec![src, table]);
        assert_eq!(p.stages[0].args, vec![PipeArg::Source, PipeArg::Input(1)]);
    }

    #[test]
    fn what_batches_would_not_speed_up_stays() {
        // a partial alone over a held chunk
        let mut g = graph();
        let src = g.held();
        let part = g.add(partial(), &[src]);
        assert!(g.run(&[part]).is_empty());
        // one computed column
        let mut g = graph();
        let src = g.held();
        let col = g.add(FrameChunkOp::Project { columns: vec![0] }, &[src]);
        let mask = g.add(gt(3), &[col]);
        assert!(g.run(&[mask]).is_empty());
        // two are worth it
        let mut g = graph();
        let src = g.held();
        let col = g.add(FrameChunkOp::Project { columns: vec![0] }, &[src]);
        let mask = g.add(gt(3), &[col]);
        let twice = g.add(gt(1), &[mask]);
        assert_eq!(g.run(&[twice]), vec![vec!["Project", "Eval", "Eval"]]);
    }
}
