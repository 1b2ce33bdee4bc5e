//! The lazy node behind every handle, and lowering to a tileable graph.

use crate::error::{Error, Result};
use mars_backends::{ChunkData, TileableResult};
use mars_ir::{infer, Key, Meta, Op, TileableGraph, TileableId, TileableNode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Everything a session can execute: tensors, dataframes, series, scalars.
pub trait Tileable: std::fmt::Debug {
    /// Content hash of the expression (Display: 32 hex chars).
    fn key(&self) -> Key;
    /// The tileable graph as indented text.
    fn explain(&self) -> String;
    #[doc(hidden)]
    fn node(&self) -> &Node;
}

/// Who to tell when the last handle of an executed node goes away.
pub(crate) trait Holder: Send + Sync {
    fn release_handle(&self, key: Key);
}

pub struct NodeInner {
    pub(crate) key: Key,
    pub(crate) op: Op,
    pub(crate) inputs: Vec<Node>,
    /// User data the op refers to by key (`mt::tensor`, a dataframe's batch).
    pub(crate) payload: Option<Arc<Payload>>,
    /// The inferred meta, or the construction error (reported at execute).
    pub(crate) meta: std::result::Result<Meta, Error>,
    /// The meta with lengths learnt by executing.
    pub(crate) resolved: Mutex<Option<Meta>>,
    pub(crate) holders: Holders,
}

/// A cheap, shared handle on a tileable node.
#[derive(Clone)]
pub struct Node(pub(crate) Arc<NodeInner>);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.meta {
            Ok(m) => {
                write!(f, "{} key={} {}", self.0.op, self.0.key.short(), self.meta_now().unwrap_or_else(|| m.clone()))
            }
            Err(e) => write!(f, "{} key={} error: {e}", self.0.op, self.0.key.short()),
        }
    }
}

/// The sessions holding something on a key (a result, or user data): each is
/// told once when the last handle goes.
#[derive(Default)]
pub(crate) struct Holders(Mutex<Vec<Weak<dyn Holder>>>);

impl Holders {
    /// Register a session; false when it already was.
    pub(crate) fn add(&self, h: Weak<dyn Holder>) -> bool {
        let mut hs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if hs.iter().any(|x| Weak::ptr_eq(x, &h)) {
            return false;
        }
        hs.push(h);
        true
    }
    /// Tell every session still there that `key` lost this handle.
    fn release_all(&mut self, key: Key) {
        for h in std::mem::take(self.0.get_mut().unwrap_or_else(|p| p.into_inner())) {
            if let Some(h) = h.upgrade() {
                h.release_handle(key);
            }
        }
    }
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        self.holders.release_all(self.key);
    }
}

impl Node {
    /// A node computing `op` over `inputs`; errors (from inputs or inference)
    /// are kept and surface at execute.
    pub(crate) fn new(op: Op, inputs: Vec<Node>) -> Node {
        let keys: Vec<Key> = inputs.iter().map(|n| n.0.key).collect();
        let key = op.key(&keys);
        let meta = match inputs.iter().find_map(|n| n.0.meta.as_ref().err()) {
            Some(e) => Err(e.clone()),
            None => {
                let metas: Vec<Meta> = inputs.iter().map(|n| n.meta()).collect();
                let refs: Vec<&Meta> = metas.iter().collect();
                infer::infer(&op, &refs).map_err(Error::from)
            }
        };
        Node::with_meta(key, op, inputs, meta)
    }

    pub(crate) fn with_meta(key: Key, op: Op, inputs: Vec<Node>, meta: std::result::Result<Meta, Error>) -> Node {
        Node::build(key, op, inputs, None, meta)
    }

    /// A source node over user data: the op names the data by its key, the
    /// data rides along beside it until a session puts it in its backend.
    pub(crate) fn with_payload(op: Op, payload: Arc<Payload>) -> Node {
        let key = op.key(&[]);
        let meta = infer::infer(&op, &[]).map_err(Error::from);
        Node::build(key, op, vec![], Some(payload), meta)
    }

    fn build(
        key: Key,
        op: Op,
        inputs: Vec<Node>,
        payload: Option<Arc<Payload>>,
        meta: std::result::Result<Meta, Error>,
    ) -> Node {
        Node(Arc::new(NodeInner {
            key,
            op,
            inputs,
            payload,
            meta,
            resolved: Mutex::new(None),
            holders: Holders::default(),
        }))
    }

    pub(crate) fn payload(&self) -> Option<&Arc<Payload>> {
        self.0.payload.as_ref()
    }

    pub fn key(&self) -> Key {
        self.0.key
    }
    pub(crate) fn op(&self) -> &Op {
        &self.0.op
    }
    pub(crate) fn inputs(&self) -> &[Node] {
        &self.0.inputs
    }
    fn meta_now(&self) -> Option<Meta> {
        self.0.resolved.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Best meta known: resolved by execution, else inferred (a placeholder if invalid).
    pub(crate) fn meta(&self) -> Meta {
        self.meta_now().unwrap_or_else(|| match &self.0.meta {
            Ok(m) => m.clone(),
            Err(_) => Meta::tensor(vec![], mars_ir::DType::Float64),
        })
    }
    pub(crate) fn check(&self) -> Result<()> {
        self.0.meta.as_ref().map(|_| ()).map_err(Clone::clone)
    }
    pub(crate) fn resolve(&self, meta: Meta) {
        *self.0.resolved.lock().unwrap_or_else(|p| p.into_inner()) = Some(meta);
    }
    pub(crate) fn add_holder(&self, h: Weak<dyn Holder>) -> bool {
        self.0.holders.add(h)
    }

    /// The explain() text of this node's graph.
    pub(crate) fn explain(&self) -> String {
        match lower(&[self], &HashMap::new()) {
            Ok((g, roots)) => g.explain(&roots),
            Err(e) => format!("invalid: {e}\n"),
        }
    }
}

/// Build the tileable graph of `roots`; nodes whose results are `held` become
/// `Fetch` nodes (same key), so their inputs are not recomputed.
/// User data a graph refers to by key: an array or a record batch. A session
/// puts it into its backend before the first graph that reads it runs, and
/// holds it there while some node carrying it lives.
pub struct Payload {
    pub(crate) key: Key,
    pub(crate) data: Arc<ChunkData>,
    holders: Holders,
}

impl Payload {
    /// The data under the key it is held by: a hash of its bytes (`.npy` for
    /// an array, Arrow IPC for a batch), so equal data is held once.
    pub(crate) fn of(data: ChunkData) -> Result<Arc<Payload>> {
        let key = data_key(&data)?;
        Ok(Arc::new(Payload { key, data: Arc::new(data), holders: Holders::default() }))
    }
    /// Register a session holding this data; false when it already was.
    pub(crate) fn add_holder(&self, h: Weak<dyn Holder>) -> bool {
        self.holders.add(h)
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.holders.release_all(self.key);
    }
}

/// The key user data is held under (see [`Payload::of`]).
pub(crate) fn data_key(data: &ChunkData) -> Result<Key> {
    match data {
        ChunkData::Tensor(t) => Ok(Key::of_bytes(&mars_ir::npy::to_npy(t))),
        ChunkData::Frame(b) => Ok(mars_ir::frame::batch_key(b)?),
        ChunkData::Partial { .. } | ChunkData::Parts(_) | ChunkData::Table(_) => {
            Err(Error::Invalid("a reduction partial is not user data".into()))
        }
    }
}

/// The user data under `roots` that a graph lowered with `held` reads (what
/// is held already is read from its result, not from its sources).
pub(crate) fn payloads(roots: &[&Node], held: &HashMap<Key, TileableResult>) -> Vec<Arc<Payload>> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Arc<Payload>> = Vec::new();
    let mut stack: Vec<&Node> = roots.to_vec();
    while let Some(n) = stack.pop() {
        if !seen.insert(n.key()) || held.contains_key(&n.key()) {
            continue;
        }
        if let Some(p) = n.payload() {
            if !out.iter().any(|q| q.key == p.key) {
                out.push(p.clone());
            }
        }
        stack.extend(n.inputs());
    }
    out
}

pub(crate) fn lower(roots: &[&Node], held: &HashMap<Key, TileableResult>) -> Result<(TileableGraph, Vec<TileableId>)> {
    let mut g = TileableGraph::new();
    let mut memo: HashMap<Key, TileableId> = HashMap::new();
    let mut out = Vec::with_capacity(roots.len());
    for r in roots {
        out.push(lower_node(r, held, &mut g, &mut memo)?);
    }
    Ok((g, out))
}

fn lower_node(
    n: &Node,
    held: &HashMap<Key, TileableResult>,
    g: &mut TileableGraph,
    memo: &mut HashMap<Key, TileableId>,
) -> Result<TileableId> {
    if let Some(&id) = memo.get(&n.key()) {
        return Ok(id);
    }
    n.check()?;
    let id = if let Some(res) = held.get(&n.key()) {
        let op = Op::Fetch { chunks: res.chunks.clone(), nsplits: res.nsplits.clone() };
        g.insert(TileableNode { key: n.key(), op, inputs: vec![], meta: res.meta.clone() })
    } else {
        let mut inputs = Vec::with_capacity(n.inputs().len());
        for i in n.inputs() {
            inputs.push(lower_node(i, held, g, memo)?);
        }
        g.insert(TileableNode { key: n.key(), op: n.op().clone(), inputs, meta: n.meta() })
    };
    memo.insert(n.key(), id);
    Ok(id)
}

/// `Debug` and [`Tileable`] for a handle type with a `node: Node` field.
/// Also `execute`/`execute_in`/`fetch`/`fetch_in`, fetching `$data` out of the
/// backend's value with `$unwrap` (a `fn(ChunkData, &Self) -> Result<$data>`).
macro_rules! tileable_handle {
    ($ty:ident, $data:ty, $unwrap:expr) => {
        impl $ty {
            /// Execute in the default session (a local one unless
            /// [`Session::as_default`](crate::Session::as_default) chose another);
            /// returns `self` for chaining `.fetch()`.
            pub fn execute(&self) -> $crate::Result<&Self> {
                self.execute_in(&$crate::Session::default_or_local()?)
            }
            /// Execute in `session` (Mars's `execute(session=sess)`), which then
            /// holds the result for as long as a handle on it lives. Executing
            /// again is cheap; held inputs are reused, not recomputed.
            /// Construction errors (bad shapes, axes …) are reported here.
            pub fn execute_in(&self, session: &$crate::Session) -> $crate::Result<&Self> {
                session.execute_nodes(&[&self.node])?;
                Ok(self)
            }
            /// The value held by the default session.
            pub fn fetch(&self) -> $crate::Result<$data> {
                self.fetch_in(&$crate::Session::default_or_local()?)
            }
            /// The value held by `session` (Mars's `fetch(session=sess)`);
            /// [`Error::NotExecuted`](crate::Error::NotExecuted) ("must be executed
            /// first") if it was not executed there.
            pub fn fetch_in(&self, session: &$crate::Session) -> $crate::Result<$data> {
                $unwrap(session.fetch_node(&self.node)?, self)
            }
        }
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.node)
            }
        }
        impl $crate::node::Tileable for $ty {
            fn key(&self) -> mars_ir::Key {
                self.node.key()
            }
            fn explain(&self) -> String {
                self.node.explain()
            }
            fn node(&self) -> &$crate::node::Node {
                &self.node
            }
        }
    };
}
pub(crate) use tileable_handle;
