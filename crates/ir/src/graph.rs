//! Tileable and chunk graphs: DAGs on petgraph behind typed ids, deduplicated by key.
//!
//! Inserting a node whose key is already present returns the existing id, so
//! common subexpressions are shared for free. Edges carry the input position.

use crate::error::{IrError, IrResult};
use crate::fast::{FastMap as HashMap, FastSet as HashSet};
use crate::key::Key;
use crate::op::{ChunkOp, Op};
use crate::shape::{fmt_shape, ChunkIndex, ChunkShape, Meta};
use crate::DType;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write};
use std::marker::PhantomData;

macro_rules! typed_id {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u32);
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl From<NodeIndex> for $name {
            fn from(n: NodeIndex) -> Self {
                $name(n.index() as u32)
            }
        }
        impl From<$name> for NodeIndex {
            fn from(id: $name) -> Self {
                NodeIndex::new(id.0 as usize)
            }
        }
    };
}

typed_id!(TileableId, "A node of a [`TileableGraph`].");
typed_id!(ChunkId, "A node of a [`ChunkGraph`].");

/// What a graph node must offer to the shared graph code.
pub trait GraphNode: Clone {
    type Id: Copy + Eq + std::hash::Hash + From<NodeIndex> + Into<NodeIndex> + fmt::Debug;
    fn key(&self) -> Key;
    fn inputs(&self) -> &[Self::Id];
    /// The inputs, to rewrite in place (same number).
    fn inputs_mut(&mut self) -> &mut [Self::Id];
    /// Replace the inputs.
    fn set_input_list(&mut self, inputs: Vec<Self::Id>);
    /// One line of `explain()`: op, key prefix, shape, dtype …
    fn label(&self) -> String;
}

/// A tileable node: one user-level op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TileableNode {
    pub key: Key,
    pub op: Op,
    pub inputs: Vec<TileableId>,
    pub meta: Meta,
}

impl GraphNode for TileableNode {
    type Id = TileableId;
    fn key(&self) -> Key {
        self.key
    }
    fn inputs(&self) -> &[TileableId] {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut [TileableId] {
        &mut self.inputs
    }
    fn set_input_list(&mut self, inputs: Vec<TileableId>) {
        self.inputs = inputs;
    }
    fn label(&self) -> String {
        format!("{} key={} {}", self.op, self.key.short(), self.meta)
    }
}

/// A chunk's inputs: inline up to 4 (no allocation per chunk node).
pub type ChunkInputs = smallvec::SmallVec<[ChunkId; 4]>;

/// A chunk node: one kernel invocation producing one chunk. Graphs hold
/// millions of these, so small vectors are kept inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkNode {
    pub key: Key,
    /// Shared by the chunks of one tileable wherever their ops are equal (every
    /// chunk of a `Map`, a `ReduceCombine` level …), so a million chunks need
    /// not hold a million copies.
    pub op: std::sync::Arc<ChunkOp>,
    pub inputs: ChunkInputs,
    /// Shape of the produced chunk (partials of reductions keep reduced axes as 1).
    pub shape: ChunkShape,
    /// Element type for tensor chunks; `None` for frames.
    pub dtype: Option<DType>,
    /// Position in its tileable's chunk grid.
    pub index: ChunkIndex,
}

impl GraphNode for ChunkNode {
    type Id = ChunkId;
    fn key(&self) -> Key {
        self.key
    }
    fn inputs(&self) -> &[ChunkId] {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut [ChunkId] {
        &mut self.inputs
    }
    fn set_input_list(&mut self, inputs: Vec<ChunkId>) {
        self.inputs = inputs.into();
    }
    fn label(&self) -> String {
        let mut s =
            format!("{} key={} index={:?} shape={}", self.op, self.key.short(), self.index, fmt_shape(&self.shape));
        if let Some(d) = self.dtype {
            let _ = write!(s, " dtype={d}");
        }
        s
    }
}

/// A DAG of keyed nodes. `N::Id`s stay valid across removals.
#[derive(Clone)]
pub struct Dag<N: GraphNode> {
    graph: StableDiGraph<N, usize>,
    /// The key index: node ids and 32 bits of their keys (8 bytes a slot),
    /// hashed by those bits (a key is itself a hash). A million-chunk graph's
    /// index is a few tens of MB, not hundreds, and stays in cache better.
    by_key: hashbrown::HashTable<Slot>,
    _id: PhantomData<N::Id>,
}

pub type TileableGraph = Dag<TileableNode>;
pub type ChunkGraph = Dag<ChunkNode>;

impl<N: GraphNode> Default for Dag<N> {
    fn default() -> Self {
        Dag { graph: StableDiGraph::default(), by_key: hashbrown::HashTable::new(), _id: PhantomData }
    }
}

impl<N: GraphNode + fmt::Debug> fmt::Debug for Dag<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dag").field("nodes", &self.graph.node_count()).finish()
    }
}

impl<N: GraphNode> Dag<N> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(nodes: usize) -> Self {
        Dag {
            graph: StableDiGraph::with_capacity(nodes, nodes * 2),
            by_key: hashbrown::HashTable::with_capacity(nodes),
            _id: PhantomData,
        }
    }
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }
    /// Room in the key index for `nodes` more nodes without rehashing: rules
    /// that know their grid reserve it, so a huge graph's index is not rebuilt
    /// over and over as it grows.
    pub fn reserve(&mut self, nodes: usize) {
        self.by_key.reserve(nodes, Slot::hash);
    }

    /// One past the largest id in use: the length of a `Vec` indexed by `id.0`.
    pub fn id_bound(&self) -> usize {
        self.graph.node_bound()
    }
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Insert a node, or return the id of the node with the same key.
    /// Its inputs must already be in the graph.
    /// (One hash lookup and no allocation besides the graph's own: this runs
    /// for every chunk.)
    pub fn insert(&mut self, node: N) -> N::Id {
        use hashbrown::hash_table::Entry;
        let key = node.key();
        let h = Slot::of(&key);
        let graph = &self.graph;
        let slot = match self.by_key.entry(Slot::spread(h), |s| s.h == h && graph[s.ix].key() == key, Slot::hash) {
            Entry::Occupied(e) => return e.get().ix.into(),
            Entry::Vacant(v) => v,
        };
        let inputs: smallvec::SmallVec<[NodeIndex; 4]> = node.inputs().iter().map(|&i| i.into()).collect();
        // (the vacant slot borrows the index only, not the graph)
        let ix = self.graph.add_node(node);
        slot.insert(Slot { ix, h });
        for (pos, input) in inputs.into_iter().enumerate() {
            self.graph.add_edge(input, ix, pos);
        }
        ix.into()
    }

    pub fn get(&self, key: &Key) -> Option<N::Id> {
        let h = Slot::of(key);
        self.by_key.find(Slot::spread(h), |s| s.h == h && self.graph[s.ix].key() == *key).map(|s| s.ix.into())
    }
    pub fn node(&self, id: N::Id) -> &N {
        &self.graph[id.into()]
    }
    pub fn try_node(&self, id: N::Id) -> Option<&N> {
        self.graph.node_weight(id.into())
    }
    /// Mutate a node in place; its key and inputs must not change.
    pub fn node_mut(&mut self, id: N::Id) -> &mut N {
        &mut self.graph[id.into()]
    }
    pub fn ids(&self) -> impl Iterator<Item = N::Id> + '_ {
        self.graph.node_indices().map(Into::into)
    }
    /// Consumers of a node (each once, whatever the number of edges).
    pub fn consumers(&self, id: N::Id) -> Vec<N::Id> {
        let mut seen = HashSet::default();
        self.graph
            .edges_directed(id.into(), Direction::Outgoing)
            .filter(|e| seen.insert(e.target()))
            .map(|e| e.target().into())
            .collect()
    }
    pub fn consumer_count(&self, id: N::Id) -> usize {
        self.consumers(id).len()
    }
    /// Whether exactly one node consumes this one (through one or more edges);
    /// allocation-free, for passes that ask it of every node.
    pub fn has_single_consumer(&self, id: N::Id) -> bool {
        let mut targets = self.graph.edges_directed(id.into(), Direction::Outgoing).map(|e| e.target());
        match targets.next() {
            None => false,
            Some(first) => targets.all(|t| t == first),
        }
    }
    /// Nodes with no consumers.
    pub fn sinks(&self) -> Vec<N::Id> {
        self.graph
            .node_indices()
            .filter(|&ix| self.graph.edges_directed(ix, Direction::Outgoing).next().is_none())
            .map(Into::into)
            .collect()
    }
    /// Replace a node's inputs (its edges follow); the key stays, so the new
    /// inputs must compute the same value (as fusion's do).
    pub fn set_inputs(&mut self, id: N::Id, inputs: Vec<N::Id>) {
        let ix: NodeIndex = id.into();
        let old: Vec<_> = self.graph.edges_directed(ix, Direction::Incoming).map(|e| e.id()).collect();
        for e in old {
            self.graph.remove_edge(e);
        }
        for (pos, &i) in inputs.iter().enumerate() {
            self.graph.add_edge(i.into(), ix, pos);
        }
        self.graph[ix].set_input_list(inputs);
    }

    /// Remove a node that nothing consumes.
    pub fn remove(&mut self, id: N::Id) -> Option<N> {
        let ix: NodeIndex = id.into();
        let key = self.graph.node_weight(ix)?.key();
        if let Ok(e) = self.by_key.find_entry(Slot::spread(Slot::of(&key)), |s| s.ix == ix) {
            e.remove();
        }
        self.graph.remove_node(ix)
    }

    /// Topological order (inputs first); errors on a cycle.
    /// (Kahn's algorithm over flat arrays: it runs several times per stage on
    /// graphs of millions of chunks.)
    pub fn topo_order(&self) -> IrResult<Vec<N::Id>> {
        let mut waiting = vec![0u32; self.graph.node_bound()];
        for e in self.graph.edge_references() {
            waiting[e.target().index()] += 1;
        }
        let mut order: Vec<NodeIndex> = Vec::with_capacity(self.graph.node_count());
        order.extend(self.graph.node_indices().filter(|ix| waiting[ix.index()] == 0));
        let mut next = 0;
        while next < order.len() {
            let ix = order[next];
            next += 1;
            for e in self.graph.edges_directed(ix, Direction::Outgoing) {
                let t = e.target();
                waiting[t.index()] -= 1;
                if waiting[t.index()] == 0 {
                    order.push(t);
                }
            }
        }
        if order.len() < self.graph.node_count() {
            let stuck = self.graph.node_indices().find(|ix| waiting[ix.index()] > 0);
            let key = stuck.map(|ix| self.graph[ix].key().to_string()).unwrap_or_default();
            return Err(IrError::Graph(format!("cycle through node {key}")));
        }
        Ok(order.into_iter().map(Into::into).collect())
    }

    /// Every node reachable backwards from `roots` (roots included).
    pub fn ancestors(&self, roots: &[N::Id]) -> HashSet<N::Id> {
        let mut seen: HashSet<N::Id> = HashSet::default();
        let mut stack: Vec<N::Id> = roots.to_vec();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                stack.extend(self.node(id).inputs().iter().copied());
            }
        }
        seen
    }

    /// The indented tree view: one node a line, inputs indented by 2; a node
    /// printed before is referenced as `^ key=…` instead of repeated.
    /// (Iterative, so a graph a million nodes deep prints without a deep stack.)
    pub fn explain(&self, roots: &[N::Id]) -> String {
        let mut out = String::new();
        let mut seen = HashSet::default();
        let mut stack: Vec<(N::Id, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((id, depth)) = stack.pop() {
            let node = self.node(id);
            let pad = "  ".repeat(depth);
            if !seen.insert(id) {
                let _ = writeln!(out, "{pad}^ key={}", node.key().short());
                continue;
            }
            let _ = writeln!(out, "{pad}{}", node.label());
            stack.extend(node.inputs().iter().rev().map(|&i| (i, depth + 1)));
        }
        out
    }

    /// Graphviz DOT, one box per node with its `explain()` label.
    pub fn to_dot(&self) -> String {
        self.to_dot_with(|_, n| n.label())
    }

    /// Graphviz DOT with labels of the caller's (a line break is `\n`).
    pub fn to_dot_with(&self, mut label: impl FnMut(N::Id, &N) -> String) -> String {
        let mut out = String::from("digraph mars {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n");
        for ix in self.graph.node_indices() {
            let label =
                label(ix.into(), &self.graph[ix]).replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = writeln!(out, "  n{} [label=\"{}\"];", ix.index(), label);
        }
        for e in self.graph.edge_references() {
            let _ = writeln!(out, "  n{} -> n{} [label=\"{}\"];", e.source().index(), e.target().index(), e.weight());
        }
        out.push_str("}\n");
        out
    }

    /// Nodes in topological order with inputs as positions in that order: the
    /// serialised form.
    pub fn to_nodes(&self) -> IrResult<Vec<N>> {
        let order = self.topo_order()?;
        let pos: HashMap<N::Id, usize> = order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        Ok(order
            .iter()
            .map(|&id| {
                let mut n = self.node(id).clone();
                for i in n.inputs_mut().iter_mut() {
                    *i = NodeIndex::new(pos[i]).into();
                }
                n
            })
            .collect())
    }

    /// Rebuild from the serialised form, checking for dangling inputs and cycles
    /// (an input must come earlier in the list).
    pub fn from_nodes(nodes: Vec<N>) -> IrResult<Self> {
        let total = nodes.len();
        let mut g = Dag::with_capacity(total);
        let mut ids: Vec<N::Id> = Vec::with_capacity(total);
        for (i, mut n) in nodes.into_iter().enumerate() {
            for input in n.inputs_mut().iter_mut() {
                let pos: NodeIndex = (*input).into();
                let pos = pos.index();
                if pos >= i {
                    return Err(IrError::Graph(format!(
                        "node {i} (key {}) refers to input #{pos}, which is {}",
                        n.key(),
                        if pos >= total {
                            format!("missing (the graph has {total} nodes)")
                        } else {
                            "not before it (inputs come first; a cycle or a misordered file)".to_string()
                        }
                    )));
                }
                *input = ids[pos];
            }
            if g.get(&n.key()).is_some() {
                return Err(IrError::Graph(format!("node {i} repeats the key {} of an earlier node", n.key())));
            }
            ids.push(g.insert(n));
        }
        Ok(g)
    }
}

/// The JSON form of a graph, versioned.
#[derive(Serialize, Deserialize)]
struct GraphFile<N> {
    format: String,
    /// Keys of the nodes that were asked for (the sinks when absent).
    #[serde(default)]
    roots: Vec<Key>,
    nodes: Vec<N>,
}

pub const FORMAT_TILEABLE: &str = "mars-tileable-graph/1";
pub const FORMAT_CHUNK: &str = "mars-chunk-graph/1";

/// The largest graph the binary form reads (bytes); a length prefix beyond it is
/// refused before anything is allocated.
pub const MAX_GRAPH_BYTES: u64 = 1 << 30;

fn bincode_options(len: usize) -> impl bincode::Options {
    use bincode::Options;
    // the same encoding as `bincode::serialize`, reading at most the input's length
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit((len as u64).min(MAX_GRAPH_BYTES))
}

macro_rules! serde_forms {
    ($node:ty, $fmt:expr, $check:expr) => {
        impl Dag<$node> {
            pub fn to_json(&self) -> IrResult<String> {
                self.to_json_with_roots(&[])
            }
            /// JSON naming the requested nodes.
            pub fn to_json_with_roots(&self, roots: &[Key]) -> IrResult<String> {
                let file = GraphFile { format: $fmt.to_string(), roots: roots.to_vec(), nodes: self.to_nodes()? };
                serde_json::to_string_pretty(&file).map_err(|e| IrError::Serde(e.to_string()))
            }
            pub fn from_json(text: &str) -> IrResult<Self> {
                Self::from_json_with_roots(text).map(|(g, _)| g)
            }
            /// The graph and its roots (the sinks when the file names none); a
            /// root that is not in the graph is an error.
            pub fn from_json_with_roots(text: &str) -> IrResult<(Self, Vec<Key>)> {
                let mut file: GraphFile<$node> = serde_json::from_str(text)
                    .map_err(|e| IrError::Serde(format!("line {} column {}: {e}", e.line(), e.column())))?;
                if file.format != $fmt {
                    return Err(IrError::Serde(format!(
                        "unsupported graph format {:?} (expected {:?})",
                        file.format, $fmt
                    )));
                }
                $check(&mut file.nodes)?;
                let g = Self::from_nodes(file.nodes)?;
                let roots = if file.roots.is_empty() {
                    g.sinks().into_iter().map(|id| g.node(id).key()).collect()
                } else {
                    file.roots
                };
                if let Some(k) = roots.iter().find(|k| g.get(k).is_none()) {
                    return Err(IrError::Graph(format!("root {k} is not a node of the graph")));
                }
                Ok((g, roots))
            }
            /// Compact binary form for the wire.
            pub fn to_bytes(&self) -> IrResult<Vec<u8>> {
                bincode::serialize(&self.to_nodes()?).map_err(|e| IrError::Serde(e.to_string()))
            }
            pub fn from_bytes(bytes: &[u8]) -> IrResult<Self> {
                use bincode::Options;
                let mut nodes: Vec<$node> =
                    bincode_options(bytes.len()).deserialize(bytes).map_err(|e| IrError::Serde(e.to_string()))?;
                $check(&mut nodes)?;
                Self::from_nodes(nodes)
            }
        }
    };
}

// A tileable graph from outside is validated in full (keys, metas, parameters);
// a chunk graph is only checked for structure (it is a dump, never executed).
serde_forms!(TileableNode, FORMAT_TILEABLE, crate::validate::tileable_nodes);
serde_forms!(ChunkNode, FORMAT_CHUNK, |_: &mut [ChunkNode]| IrResult::Ok(()));

/// An entry of the key index: a node and 32 bits of its key, so that growing
/// the index (rehashing) reads the index only, not every node.
#[derive(Clone, Copy, Debug)]
struct Slot {
    ix: NodeIndex,
    h: u32,
}

impl Slot {
    /// The bits of a key the index keeps (a key is already a strong hash).
    fn of(key: &Key) -> u32 {
        key.0 as u32
    }
    /// Those bits spread over 64 for the table (its control bytes use the top ones).
    fn spread(h: u32) -> u64 {
        u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn hash(&self) -> u64 {
        Slot::spread(self.h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{BinaryFn, Expr};
    use crate::op::TensorOp;
    use crate::shape::dims;

    fn ones(g: &mut TileableGraph) -> TileableId {
        let op = Op::Tensor(TensorOp::Full {
            shape: vec![4, 4],
            value: 1.0,
            dtype: DType::Float64,
            chunks: Some(vec![2, 2]),
        });
        let key = Key::of(&op, &[]);
        g.insert(TileableNode { key, op, inputs: vec![], meta: Meta::tensor(dims(&[4, 4]), DType::Float64) })
    }

    #[test]
    fn single_consumers_and_rewired_inputs() {
        let (mut g, b) = sample();
        let a = g.node(b).inputs[0];
        // b reads a twice: still one consumer
        assert!(g.has_single_consumer(a) && !g.has_single_consumer(b));
        let op = Op::Tensor(TensorOp::Map { expr: Expr::unary(crate::expr::UnaryFn::Neg, Expr::Input(0)) });
        let key = Key::of(&op, &[g.node(a).key]);
        let c = g.insert(TileableNode { key, op, inputs: vec![a], meta: Meta::tensor(dims(&[4, 4]), DType::Float64) });
        assert!(!g.has_single_consumer(a));
        // rewire b to read c twice: a's only consumer is c again
        g.set_inputs(b, vec![c, c]);
        assert_eq!(g.node(b).inputs, vec![c, c]);
        assert!(g.has_single_consumer(a) && g.has_single_consumer(c));
        assert_eq!(g.topo_order().unwrap(), vec![a, c, b]);
        assert_eq!(g.consumers(c), vec![b]);
    }

    /// The key index across inserts, duplicates, removals and reused slots,
    /// at a size where the index grows many times.
    #[test]
    fn key_index_follows_inserts_and_removals() {
        let mut g = TileableGraph::new();
        let node = |i: u64| {
            let op =
                Op::Tensor(TensorOp::Full { shape: vec![1], value: i as f64, dtype: DType::Float64, chunks: None });
            TileableNode { key: Key::of(&op, &[]), op, inputs: vec![], meta: Meta::tensor(dims(&[1]), DType::Float64) }
        };
        let ids: Vec<TileableId> = (0..5000).map(|i| g.insert(node(i))).collect();
        assert_eq!(g.len(), 5000);
        // a node with a key already present is the same node
        assert_eq!(g.insert(node(17)), ids[17]);
        assert_eq!(g.len(), 5000);
        for i in (0..5000).step_by(2) {
            assert!(g.remove(ids[i]).is_some());
        }
        assert!(g.remove(ids[0]).is_none());
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(g.get(&node(i as u64).key), (i % 2 == 1).then_some(id), "node {i}");
        }
        // removed keys come back (into reused slots) as new nodes
        for i in (0..5000).step_by(2) {
            let id = g.insert(node(i));
            assert_eq!(g.node(id).key, node(i).key);
            assert_eq!(g.get(&node(i).key), Some(id));
        }
        assert_eq!(g.len(), 5000);
    }

    fn sample() -> (TileableGraph, TileableId) {
        let mut g = TileableGraph::new();
        let a = ones(&mut g);
        let a2 = ones(&mut g);
        assert_eq!(a, a2, "same key, same node");
        let op = Op::Tensor(TensorOp::Map { expr: Expr::binary(BinaryFn::Add, Expr::Input(0), Expr::Input(1)) });
        let key = Key::of(&op, &[g.node(a).key, g.node(a).key]);
        let b =
            g.insert(TileableNode { key, op, inputs: vec![a, a], meta: Meta::tensor(dims(&[4, 4]), DType::Float64) });
        (g, b)
    }

    #[test]
    fn dedup_explain_dot() {
        let (g, b) = sample();
        assert_eq!(g.len(), 2);
        let text = g.explain(&[b]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("Map (#0 + #1) key="), "{text}");
        assert!(lines[1].starts_with("  Full(1) chunks=[2, 2] key="), "{text}");
        assert!(lines[2].starts_with("  ^ key="), "{text}");
        let dot = g.to_dot();
        assert!(dot.starts_with("digraph mars {") && dot.contains("n0 -> n1"), "{dot}");
    }

    #[test]
    fn json_and_binary_round_trip() {
        let (g, b) = sample();
        let json = g.to_json().unwrap();
        assert!(json.contains("\"format\": \"mars-tileable-graph/1\""));
        let back = TileableGraph::from_json(&json).unwrap();
        assert_eq!(back.len(), 2);
        let root = back.get(&g.node(b).key).unwrap();
        assert_eq!(back.explain(&[root]), g.explain(&[b]));
        let bin = TileableGraph::from_bytes(&g.to_bytes().unwrap()).unwrap();
        assert_eq!(bin.explain(&[bin.get(&g.node(b).key).unwrap()]), g.explain(&[b]));
    }

    #[test]
    fn bad_graphs_are_errors() {
        let err = TileableGraph::from_json("{\"format\": \"mars-tileable-graph/1\",\n \"nodes\": [}").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = TileableGraph::from_json("{\"format\": \"v9\", \"nodes\": []}").unwrap_err();
        assert!(err.to_string().contains("unsupported graph format"), "{err}");
        let (g, _) = sample();
        let mut nodes = g.to_nodes().unwrap();
        nodes[1].inputs[0] = TileableId(5);
        let err = TileableGraph::from_nodes(nodes).unwrap_err();
        assert!(err.to_string().contains("input #5"), "{err}");
    }
}
