//! Element-wise fusion: a chain of `Map` chunk ops, each feeding exactly one
//! consumer, is inlined into that consumer's expression, and a chain ending in a
//! `ReduceMap` becomes one reduction over a fused expression. The kernel then
//! evaluates the whole chain in one pass over memory with no intermediate arrays.
//! A `Random` chunk feeding only such a chain, of the chain's element shape, is
//! inlined too, as a random leaf: its values are generated block by block
//! inside the kernel and never materialised.
//! Needs nothing before it; run it on the graph about to execute.

use super::{Pass, PassCtx};
use crate::error::TileResult;
use mars_ir::{ChunkGraph, ChunkId, ChunkOp, Expr, FastMap, Key, RandomLeaf, ReduceMapChunk};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Fusion;

/// Expressions bigger than this stay split (keeps kernels' block buffers few).
const MAX_EXPR: usize = 64;

impl Pass for Fusion {
    fn name(&self) -> &'static str {
        "fusion"
    }

    fn run(&self, graph: &mut ChunkGraph, ctx: &PassCtx) -> TileResult<bool> {
        let order = graph.topo_order()?;
        // producers that may be inlined into their single consumer
        let absorbable = |g: &ChunkGraph, p: ChunkId, into_reduce: bool| -> bool {
            let n = g.node(p);
            matches!(*n.op, ChunkOp::Map { .. })
                && !ctx.keep.contains(&n.key)
                && g.has_single_consumer(p)
                && (!into_reduce || n.inputs.iter().all(|&i| g.node(i).shape == n.shape))
        };
        // (flat tables indexed by id: this runs over every chunk of every stage)
        let mut absorbed = Absorbed { flags: vec![false; graph.id_bound()], ids: Vec::new() };
        let mut any = false;
        // fused ops by (the op they replace, the fused expression's hash); the
        // replaced op is kept alive with it, so its address can't be reused
        let mut shared: FastMap<(usize, Key), (Arc<ChunkOp>, Arc<ChunkOp>)> = FastMap::default();
        for &id in order.iter().rev() {
            if absorbed.contains(id) {
                continue;
            }
            let node = graph.node(id);
            let (base, into_reduce) = match &*node.op {
                ChunkOp::Map { expr, .. } => (Expr::clone(expr), false),
                ChunkOp::ReduceMap(r) => (r.expr.clone().unwrap_or(Expr::Input(0)), true),
                _ => continue,
            };
            // the shape every element of the fused expression has
            let elem_shape = match into_reduce {
                true => node.inputs.first().map(|&i| graph.node(i).shape.clone()),
                false => Some(node.shape.clone()),
            };
            let random_ok = |g: &ChunkGraph, p: ChunkId| -> bool {
                let n = g.node(p);
                matches!(*n.op, ChunkOp::Random { .. })
                    && !ctx.keep.contains(&n.key)
                    && g.has_single_consumer(p)
                    && elem_shape.as_ref() == Some(&n.shape)
                    && n.shape.iter().all(|d| d.is_known())
            };
            let mut leaves: Vec<ChunkId> = Vec::new();
            let mut changed = false;
            let expr = inline(
                graph,
                &base,
                &node.inputs,
                &mut leaves,
                &mut absorbed,
                &mut changed,
                &|g, p| absorbable(g, p, into_reduce),
                &random_ok,
            );
            if !changed {
                continue;
            }
            // in place, at once (nothing piles up on a graph of millions): the
            // fused node takes its new expression and inputs (its key stays: it
            // computes its root), and the nodes it absorbed go. Nodes still to
            // visit come earlier in topological order, so this changes nothing
            // they will look at.
            // chunks that shared an op and fuse the same expression share the new op too
            let old = graph.node(id).op.clone();
            let fused = shared
                .entry((Arc::as_ptr(&old) as usize, Key::of(&expr, &[])))
                .or_insert_with(|| {
                    let new = Arc::new(match &*old {
                        ChunkOp::Map { dtype, .. } => ChunkOp::Map { expr: expr.into(), dtype: *dtype },
                        ChunkOp::ReduceMap(r) => ChunkOp::ReduceMap(Box::new(ReduceMapChunk {
                            expr: Some(expr),
                            ..ReduceMapChunk::clone(r)
                        })),
                        other => other.clone(), // (unreachable: only these two start a fusion)
                    });
                    (old.clone(), new)
                })
                .1
                .clone();
            graph.node_mut(id).op = fused;
            graph.set_inputs(id, leaves);
            for p in absorbed.ids.drain(..) {
                graph.remove(p);
            }
            any = true;
        }
        Ok(any)
    }
}

/// The nodes inlined into a consumer (to be removed).
struct Absorbed {
    flags: Vec<bool>,
    ids: Vec<ChunkId>,
}

impl Absorbed {
    fn contains(&self, id: ChunkId) -> bool {
        self.flags.get(id.0 as usize).copied().unwrap_or(false)
    }
    fn insert(&mut self, id: ChunkId) {
        if let Some(f) = self.flags.get_mut(id.0 as usize) {
            if !*f {
                *f = true;
                self.ids.push(id);
            }
        }
    }
}

/// Substitute absorbable producers into `expr`, collecting the remaining
/// (deduplicated) leaf inputs.
fn inline(
    g: &ChunkGraph,
    expr: &Expr,
    inputs: &[ChunkId],
    leaves: &mut Vec<ChunkId>,
    absorbed: &mut Absorbed,
    changed: &mut bool,
    ok: &dyn Fn(&ChunkGraph, ChunkId) -> bool,
    random_ok: &dyn Fn(&ChunkGraph, ChunkId) -> bool,
) -> Expr {
    expr.substitute(&mut |i| {
        let p = inputs[i];
        match &*g.node(p).op {
            ChunkOp::Map { expr: inner, .. } if ok(g, p) && inner.size() + expr.size() <= MAX_EXPR => {
                absorbed.insert(p);
                *changed = true;
                let pin = g.node(p).inputs.clone();
                return inline(g, inner, &pin, leaves, absorbed, changed, ok, random_ok);
            }
            ChunkOp::Random(r) if random_ok(g, p) => {
                absorbed.insert(p);
                *changed = true;
                return Expr::Random(Box::new(RandomLeaf {
                    seed: r.seed,
                    dist: r.dist,
                    global_shape: r.global_shape.clone(),
                    offset: r.offset.clone(),
                    shape: r.shape.clone(),
                }));
            }
            _ => {}
        }
        let pos = leaves.iter().position(|&l| l == p).unwrap_or_else(|| {
            leaves.push(p);
            leaves.len() - 1
        });
        Expr::Input(pos)
    })
}
