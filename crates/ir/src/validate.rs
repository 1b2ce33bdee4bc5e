//! Validation of tileable graphs that come from outside the process (a saved
//! file, a client of a remote supervisor).
//!
//! Nothing in such a graph is trusted: every node's key is recomputed from its
//! op and its inputs' keys, every meta is re-inferred (which also checks every
//! parameter exactly as the API does when it builds the node), and a key that
//! appears twice is an error. Errors name the node by its position in the file,
//! its op and its key. Validation is total: no input makes it panic.

use crate::error::{IrError, IrResult};
use crate::fast::FastMap;
use crate::graph::TileableNode;
use crate::infer::infer;
use crate::key::Key;
use crate::op::Op;
use crate::shape::{fmt_shape, Dim, Meta};

/// Check the serialised form of a tileable graph (nodes in order, inputs as
/// positions of earlier nodes).
///
/// A node may know a length its op leaves unknown (a session learns lengths
/// by executing, and sends what it learned). Such a length is not trusted:
/// the node gets the inferred meta back, and executing finds the length again.
pub fn tileable_nodes(nodes: &mut [TileableNode]) -> IrResult<()> {
    let mut seen: FastMap<Key, usize> = FastMap::default();
    for i in 0..nodes.len() {
        let node = &nodes[i];
        let at = |msg: String| IrError::Graph(format!("node {i} ({} key={}): {msg}", node.op, node.key));
        let mut in_keys = Vec::with_capacity(node.inputs.len());
        let mut in_metas = Vec::with_capacity(node.inputs.len());
        for input in &node.inputs {
            let pos = input.0 as usize;
            if pos >= i {
                return Err(at(format!(
                    "refers to input #{pos}, which is {}",
                    if pos >= nodes.len() {
                        format!("missing (the graph has {} nodes)", nodes.len())
                    } else {
                        "not before it (inputs come first; a cycle or a misordered file)".to_string()
                    }
                )));
            }
            in_keys.push(nodes[pos].key);
            in_metas.push(&nodes[pos].meta);
        }
        if let Some(first) = seen.insert(node.key, i) {
            return Err(at(format!("duplicates the key of node {first}")));
        }
        let meta = match &node.op {
            Op::Fetch { chunks, nsplits } => {
                if !node.inputs.is_empty() {
                    return Err(at("a Fetch takes no inputs".into()));
                }
                check_fetch(chunks, nsplits, &node.meta).map_err(at)?;
                node.meta.clone()
            }
            op => {
                let key = op.key(&in_keys);
                if key != node.key {
                    return Err(at(format!("the key does not match its op and inputs (they hash to {key})")));
                }
                infer(op, &in_metas).map_err(|e| at(e.to_string()))?
            }
        };
        if meta != node.meta {
            if !refines(&node.meta, &meta) {
                return Err(at(format!("the file says {} but its op and inputs give {meta}", node.meta)));
            }
            nodes[i].meta = meta;
        }
    }
    Ok(())
}

/// `file` is `inferred` with some unknown lengths known.
fn refines(file: &Meta, inferred: &Meta) -> bool {
    let dims = |a: &[Dim], b: &[Dim]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || (*y == Dim::Unknown && x.is_known()))
    };
    match (file, inferred) {
        (Meta::Tensor { shape: a, dtype: x }, Meta::Tensor { shape: b, dtype: y }) => x == y && dims(a, b),
        (Meta::Frame { schema: a, nrows: x }, Meta::Frame { schema: b, nrows: y }) => a == b && dims(&[*x], &[*y]),
        _ => false,
    }
}

/// A held result's chunk grid must fill its meta's shape exactly.
fn check_fetch(chunks: &[Key], nsplits: &[Vec<Dim>], meta: &Meta) -> Result<(), String> {
    let grid = nsplits.iter().try_fold(1usize, |acc, s| acc.checked_mul(s.len()));
    if grid != Some(chunks.len()) {
        return Err(format!("{} chunk keys do not fill a grid of {:?}", chunks.len(), nsplits.iter().map(Vec::len)));
    }
    let shape = meta.shape();
    if shape.len() != nsplits.len() {
        return Err(format!("nsplits have {} axes but the meta's shape is {}", nsplits.len(), fmt_shape(&shape)));
    }
    for (axis, (split, &dim)) in nsplits.iter().zip(&shape).enumerate() {
        let total = split.iter().try_fold(0usize, |acc, d| d.known().and_then(|n| acc.checked_add(n)));
        if total.is_none() || total != dim.known() {
            return Err(format!("nsplits of axis {axis} do not add up to {dim}"));
        }
    }
    Ok(())
}
