//! Tileable-graph rewrites run before tiling, on frame reads:
//!
//! - **projection pushdown**: a parquet or CSV read keeps only the columns
//!   something downstream uses (`df.filter(m).col("a")` reads `a` and what
//!   `m` reads, not every column of the file);
//! - **scan sharing**: reads of the same files (`df.col("a")` and
//!   `df.col("b")` are two reads) become one read of their columns, and each
//!   former read a `Select` of it, so every row group is decoded once.
//!
//! A node whose value changes (a pruned read, a filter over it, …) gets a
//! new key; a node whose value is unchanged keeps its key, so the roots and
//! everything kept keep theirs. When anything about the rewrite fails (a meta
//! that no longer infers), the graph is left as it was.

use mars_ir::fast::FastMap as HashMap;
use mars_ir::join::Side;
use mars_ir::{infer, FrameOp, Key, Meta, Op, TileableGraph, TileableId, TileableNode};
use std::collections::BTreeSet;

/// Which columns of a frame node something downstream reads.
#[derive(Clone, Debug, PartialEq)]
enum Need {
    All,
    Some(BTreeSet<String>),
}

impl Need {
    fn none() -> Need {
        Need::Some(BTreeSet::new())
    }
    fn add(&mut self, other: Need) {
        match (&mut *self, other) {
            (Need::All, _) => {}
            (_, Need::All) => *self = Need::All,
            (Need::Some(a), Need::Some(b)) => a.extend(b),
        }
    }
    fn of<'a>(names: impl IntoIterator<Item = &'a String>) -> Need {
        Need::Some(names.into_iter().cloned().collect())
    }
    fn with<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Need {
        let mut n = self.clone();
        n.add(Need::of(names));
        n
    }
}

/// The columns of a frame meta (empty for a tensor).
fn columns(meta: &Meta) -> Vec<String> {
    match meta {
        Meta::Frame { schema, .. } => schema.fields().iter().map(|f| f.name().clone()).collect(),
        Meta::Tensor { .. } => vec![],
    }
}

/// What `node`, of whose output `need` is read, reads of each input.
fn input_needs(graph: &TileableGraph, node: &TileableNode, need: &Need) -> Vec<Need> {
    let all = || vec![Need::All; node.inputs.len()];
    let Op::Frame(op) = &node.op else { return all() };
    match (op, need) {
        (FrameOp::Select { columns }, _) => vec![Need::of(columns)],
        (FrameOp::Filter, n) | (FrameOp::Head { .. }, n) => {
            let mut v = vec![n.clone()];
            v.resize(node.inputs.len(), Need::All);
            v
        }
        (FrameOp::WithColumn { name }, Need::Some(n)) => {
            let mut n = n.clone();
            n.remove(name);
            vec![Need::Some(n), Need::All]
        }
        (FrameOp::Sort { by }, n) | (FrameOp::SortHead { by, .. }, n) => vec![n.with(by.iter().map(|(c, _)| c))],
        (FrameOp::GroupPartial { keys, aggs }, _) => {
            vec![Need::of(keys.iter().chain(aggs.iter().map(|a| &a.column)))]
        }
        (FrameOp::Merge { left_on, right_on, .. }, Need::Some(n)) => {
            let (l, r) = (&graph.node(node.inputs[0]).meta, &graph.node(node.inputs[1]).meta);
            let (Meta::Frame { schema: ls, .. }, Meta::Frame { schema: rs, .. }) = (l, r) else { return all() };
            let Ok((_, _, cols, out)) = mars_ir::join::merge_schema(ls, rs, left_on, right_on) else { return all() };
            let (mut left, mut right) = (Need::of(left_on), Need::of(right_on));
            for (c, f) in cols.iter().zip(out.fields()) {
                if !n.contains(f.name()) {
                    continue;
                }
                let (this, other) = match c.side {
                    Side::Left => ((&mut left, ls), (&mut right, rs)),
                    Side::Right => ((&mut right, rs), (&mut left, ls)),
                };
                this.0.add(Need::of([this.1.field(c.col).name()]));
                if let Some(o) = c.or {
                    other.0.add(Need::of([other.1.field(o).name()]));
                }
            }
            vec![left, right]
        }
        _ => all(),
    }
}

/// Files and format of a read: reads with equal identities read the same rows.
fn read_identity(op: &Op) -> Option<String> {
    match op {
        Op::Frame(FrameOp::ReadParquet { files, filter, .. }) => Some(format!("parquet {files:?} {filter:?}")),
        Op::Frame(FrameOp::ReadCsv { files, format, file_schema, .. }) => {
            Some(format!("csv {files:?} {format:?} {file_schema:?}"))
        }
        _ => None,
    }
}

/// The read `op` restricted to `keep` (in the read's own column order).
fn project_read(op: &Op, keep: &dyn Fn(&str) -> bool) -> Option<Op> {
    let (columns, schema) = match op {
        Op::Frame(FrameOp::ReadParquet { columns, schema, .. })
        | Op::Frame(FrameOp::ReadCsv { columns, schema, .. }) => (columns, schema),
        _ => return None,
    };
    let idx: Vec<usize> = (0..columns.len()).filter(|&i| keep(&columns[i])).collect();
    if idx.len() == columns.len() || idx.is_empty() {
        return None;
    }
    let cols: Vec<String> = idx.iter().map(|&i| columns[i].clone()).collect();
    let schema = std::sync::Arc::new(schema.project(&idx).ok()?);
    Some(match op {
        Op::Frame(FrameOp::ReadParquet { files, filter, .. }) => {
            Op::Frame(FrameOp::ReadParquet { files: files.clone(), columns: cols, schema, filter: filter.clone() })
        }
        Op::Frame(FrameOp::ReadCsv { files, format, file_schema, .. }) => Op::Frame(FrameOp::ReadCsv {
            files: files.clone(),
            format: format.clone(),
            file_schema: file_schema.clone(),
            columns: cols,
            schema,
        }),
        _ => return None,
    })
}

/// `graph` with filters pushed into its parquet reads, then its reads
/// pruned and shared (see the module docs); each step leaves the graph as
/// it was when it has nothing to do or fails.
pub fn optimize_reads(graph: TileableGraph, keep: &[Key]) -> TileableGraph {
    let graph = push_filters(&graph, keep).unwrap_or(graph);
    rewrite(&graph, keep).unwrap_or(graph)
}

/// The parquet files a node reads one column of, unfiltered: a one-column
/// read, or one column selected from a read.
fn column_of(graph: &TileableGraph, id: TileableId) -> Option<(&[mars_ir::SourceFile], &String)> {
    let node = graph.node(id);
    match &node.op {
        Op::Frame(FrameOp::ReadParquet { files, columns, filter: None, .. }) if columns.len() == 1 => {
            Some((files, &columns[0]))
        }
        Op::Frame(FrameOp::Select { columns }) if columns.len() == 1 => match &graph.node(node.inputs[0]).op {
            Op::Frame(FrameOp::ReadParquet { files, filter: None, .. }) => Some((files, &columns[0])),
            _ => None,
        },
        _ => None,
    }
}

/// A mask (a tree of `Eval`s over columns) as one expression over columns
/// of `files`, its columns named in `cols` (`Input(i)` is `cols[i]`).
fn mask_expr(
    graph: &TileableGraph,
    id: TileableId,
    files: &[mars_ir::SourceFile],
    cols: &mut Vec<(String, mars_ir::arrow_schema::FieldRef)>,
) -> Option<mars_ir::colexpr::ColExpr> {
    if let Some((f, c)) = column_of(graph, id) {
        if f != files {
            return None;
        }
        let Meta::Frame { schema, .. } = &graph.node(id).meta else { return None };
        let at = cols.iter().position(|(n, _)| n == c).unwrap_or_else(|| {
            cols.push((c.clone(), schema.fields()[0].clone()));
            cols.len() - 1
        });
        return Some(mars_ir::colexpr::ColExpr::Input(at));
    }
    let node = graph.node(id);
    let Op::Frame(FrameOp::Eval { expr, .. }) = &node.op else { return None };
    expr.substitute(&mut |i| mask_expr(graph, *node.inputs.get(i)?, files, cols))
}

/// Each `Filter` of a parquet read by a mask over that read's own columns
/// becomes one filtered read (same value, same key); what only fed those
/// filters is dropped. `None` when there is none.
fn push_filters(graph: &TileableGraph, keep: &[Key]) -> Option<TileableGraph> {
    let order = graph.topo_order().ok()?;
    let mut pushed: HashMap<TileableId, Op> = HashMap::default();
    for &id in &order {
        let node = graph.node(id);
        let (Op::Frame(FrameOp::Filter), [frame, mask]) = (&node.op, node.inputs.as_slice()) else { continue };
        let Op::Frame(FrameOp::ReadParquet { files, columns, schema, filter: None }) = &graph.node(*frame).op else {
            continue;
        };
        let mut cols = Vec::new();
        let Some(expr) = mask_expr(graph, *mask, files, &mut cols) else { continue };
        let (names, fields): (Vec<String>, Vec<_>) = cols.into_iter().unzip();
        let filter = mars_ir::ReadFilter {
            columns: names,
            schema: std::sync::Arc::new(mars_ir::arrow_schema::Schema::new(fields)),
            expr,
        };
        let op = Op::Frame(FrameOp::ReadParquet {
            files: files.clone(),
            columns: columns.clone(),
            schema: schema.clone(),
            filter: Some(filter),
        });
        if infer::infer(&op, &[]).ok()? == node.meta {
            pushed.insert(id, op);
        }
    }
    if pushed.is_empty() {
        return None;
    }
    // what the kept nodes still read, once the filters read for themselves
    let mut live: Vec<bool> = vec![false; graph.id_bound()];
    let mut stack: Vec<TileableId> = keep.iter().filter_map(|k| graph.get(k)).collect();
    if stack.is_empty() {
        stack = graph.sinks();
    }
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut live[id.0 as usize], true) {
            continue;
        }
        if !pushed.contains_key(&id) {
            stack.extend(graph.node(id).inputs.iter().copied());
        }
    }
    let mut out = TileableGraph::with_capacity(graph.len());
    let mut map: HashMap<TileableId, TileableId> = HashMap::default();
    for &id in order.iter().filter(|id| live[id.0 as usize]) {
        let node = graph.node(id);
        let (op, inputs) = match pushed.get(&id) {
            Some(op) => (op.clone(), vec![]),
            None => (node.op.clone(), node.inputs.iter().map(|i| map[i]).collect()),
        };
        map.insert(id, out.insert(TileableNode { key: node.key, op, inputs, meta: node.meta.clone() }));
    }
    Some(out)
}

fn rewrite(graph: &TileableGraph, keep: &[Key]) -> Option<TileableGraph> {
    let order = graph.topo_order().ok()?;
    if !order.iter().any(|&id| read_identity(&graph.node(id).op).is_some()) {
        return None;
    }
    // 1. what each node's consumers read of it, consumers first
    let mut need: HashMap<TileableId, Need> = HashMap::default();
    for &id in order.iter().rev() {
        let node = graph.node(id);
        let n = if keep.contains(&node.key) || graph.consumer_count(id) == 0 {
            Need::All
        } else {
            need.get(&id).cloned().unwrap_or_else(Need::none)
        };
        for (&input, n) in node.inputs.iter().zip(input_needs(graph, node, &n)) {
            need.entry(input).or_insert_with(Need::none).add(n);
        }
        need.insert(id, n);
    }
    // 2. each read pruned to what is read of it
    let mut ops: HashMap<TileableId, Op> = HashMap::default();
    for &id in &order {
        if let Some(Need::Some(cols)) = need.get(&id) {
            if let Some(op) = project_read(&graph.node(id).op, &|c| cols.contains(c)) {
                ops.insert(id, op);
            }
        }
    }
    // 3. reads of the same files: one read of all their columns
    let mut groups: HashMap<String, Vec<TileableId>> = HashMap::default();
    for &id in &order {
        let op = ops.get(&id).unwrap_or(&graph.node(id).op);
        if let Some(ident) = read_identity(op) {
            groups.entry(ident).or_default().push(id);
        }
    }
    let mut shared: HashMap<TileableId, Op> = HashMap::default(); // read -> the union read
    for ids in groups.values().filter(|ids| ids.len() > 1) {
        let mut union = BTreeSet::new();
        for id in ids {
            union.extend(columns(&infer::infer(ops.get(id).unwrap_or(&graph.node(*id).op), &[]).ok()?));
        }
        // the widest read restricted to the union keeps the file's order
        let widest = ids.iter().max_by_key(|id| columns(&graph.node(**id).meta).len())?;
        let wop = &graph.node(*widest).op;
        let union_op = project_read(wop, &|c| union.contains(c)).unwrap_or_else(|| wop.clone());
        if columns(&infer::infer(&union_op, &[]).ok()?).len() != union.len() {
            continue; // a column of one read is not in the widest: leave them
        }
        for id in ids {
            shared.insert(*id, union_op.clone());
        }
    }
    if ops.is_empty() && shared.is_empty() {
        return None;
    }
    // 4. the new graph, keys recomputed where values changed
    let mut out = TileableGraph::with_capacity(graph.len() + shared.len());
    let mut map: HashMap<TileableId, TileableId> = HashMap::default();
    for &id in &order {
        let node = graph.node(id);
        let inputs: Vec<TileableId> = node.inputs.iter().map(|i| map[i]).collect();
        if let Some(union_op) = shared.get(&id) {
            // the union read, then this read's columns of it
            let read = out.insert(TileableNode {
                key: union_op.key(&[]),
                op: union_op.clone(),
                inputs: vec![],
                meta: infer::infer(union_op, &[]).ok()?,
            });
            let op = ops.get(&id).unwrap_or(&node.op);
            let cols = columns(&infer::infer(op, &[]).ok()?);
            let select = Op::Frame(FrameOp::Select { columns: cols });
            let read_meta = out.node(read).meta.clone();
            let meta = infer::infer(&select, &[&read_meta]).ok()?;
            let key = if meta == node.meta { node.key } else { select.key(&[out.node(read).key]) };
            map.insert(id, out.insert(TileableNode { key, op: select, inputs: vec![read], meta }));
            continue;
        }
        let op = ops.get(&id).cloned().unwrap_or_else(|| node.op.clone());
        let changed = ops.contains_key(&id)
            || node.inputs.iter().zip(&inputs).any(|(a, b)| graph.node(*a).key != out.node(*b).key);
        let (key, meta) = if changed {
            let metas: Vec<Meta> = inputs.iter().map(|&i| out.node(i).meta.clone()).collect();
            let refs: Vec<&Meta> = metas.iter().collect();
            let meta = infer::infer(&op, &refs).ok()?;
            let keys: Vec<Key> = inputs.iter().map(|&i| out.node(i).key).collect();
            (if meta == node.meta { node.key } else { op.key(&keys) }, meta)
        } else {
            (node.key, node.meta.clone())
        };
        map.insert(id, out.insert(TileableNode { key, op, inputs, meta }));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars_ir::arrow_schema::{DataType, Field, Schema};
    use mars_ir::colexpr::{ColExpr, Lit};
    use mars_ir::expr::BinaryFn;
    use mars_ir::SourceFile;
    use std::sync::Arc;

    fn add(g: &mut TileableGraph, op: Op, inputs: Vec<TileableId>) -> TileableId {
        let metas: Vec<Meta> = inputs.iter().map(|&i| g.node(i).meta.clone()).collect();
        let refs: Vec<&Meta> = metas.iter().collect();
        let meta = infer::infer(&op, &refs).unwrap();
        let keys: Vec<Key> = inputs.iter().map(|&i| g.node(i).key).collect();
        g.insert(TileableNode { key: op.key(&keys), op, inputs, meta })
    }

    fn read(cols: &[&str]) -> Op {
        let all = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("c", DataType::Utf8, true),
        ]);
        let idx: Vec<usize> = cols.iter().map(|c| all.index_of(c).unwrap()).collect();
        let file = SourceFile {
            path: "t.parquet".into(),
            len: 10,
            modified_ns: 1,
            row_groups: vec![5],
            row_group_bytes: vec![100],
        };
        Op::Frame(FrameOp::ReadParquet {
            files: vec![file],
            columns: cols.iter().map(|c| c.to_string()).collect(),
            schema: Arc::new(all.project(&idx).unwrap()),
            filter: None,
        })
    }

    /// Each read: its columns and its filter's text.
    fn reads(g: &TileableGraph) -> Vec<(Vec<String>, Option<String>)> {
        let mut v: Vec<_> = g
            .ids()
            .filter_map(|id| match &g.node(id).op {
                Op::Frame(FrameOp::ReadParquet { columns, filter, .. }) => {
                    Some((columns.clone(), filter.as_ref().map(|f| f.to_string())))
                }
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// `df[df.a > 1]` with `df` a read of `cols` and `a` from `a_read`.
    fn filtered(g: &mut TileableGraph, cols: &[&str], a_read: Op) -> TileableId {
        let df = add(g, read(cols), vec![]);
        let a = add(g, a_read, vec![]);
        let gt = ColExpr::Binary(BinaryFn::Gt, Box::new(ColExpr::Input(0)), Box::new(ColExpr::Lit(Lit::I64(1))));
        let mask = add(g, Op::Frame(FrameOp::Eval { expr: gt, name: "a".into() }), vec![a]);
        add(g, Op::Frame(FrameOp::Filter), vec![df, mask])
    }

    /// `df[df.a > 1].b`: one read of b filtered on a (not c), the root's key kept.
    #[test]
    fn a_filtered_column_reads_only_what_it_uses_once() {
        let mut g = TileableGraph::new();
        let kept = filtered(&mut g, &["a", "b", "c"], read(&["a"]));
        let b = add(&mut g, Op::Frame(FrameOp::Select { columns: vec!["b".into()] }), vec![kept]);
        let root = g.node(b).key;
        let before = g.node(b).meta.clone();
        let out = optimize_reads(g, &[root]);
        assert_eq!(reads(&out), vec![(strings(&["b"]), Some(r#"where (#0 > 1) on ["a"]"#.to_string()))]);
        let r = out.get(&root).expect("the root keeps its key");
        assert_eq!(out.node(r).meta, before);
        // the read and the select of it: the mask's nodes are gone
        assert_eq!(out.len(), 2);
    }

    /// A mask over another file's column is not pushed into the read.
    #[test]
    fn a_mask_over_other_files_stays_a_filter() {
        let mut g = TileableGraph::new();
        let mut other = read(&["a"]);
        if let Op::Frame(FrameOp::ReadParquet { files, .. }) = &mut other {
            files[0].path = "other.parquet".into();
        }
        let kept = filtered(&mut g, &["a", "b"], other);
        let root = g.node(kept).key;
        let out = optimize_reads(g, &[root]);
        assert!(reads(&out).iter().all(|(_, f)| f.is_none()));
        assert!(out.ids().any(|id| matches!(out.node(id).op, Op::Frame(FrameOp::Filter))));
    }

    /// A kept read is read whole; nothing else to share: the graph is unchanged.
    #[test]
    fn a_kept_read_is_left_whole() {
        let mut g = TileableGraph::new();
        let df = add(&mut g, read(&["a", "b", "c"]), vec![]);
        let key = g.node(df).key;
        let out = optimize_reads(g, &[key]);
        assert_eq!(reads(&out), vec![(strings(&["a", "b", "c"]), None)]);
        assert_eq!(out.len(), 1);
    }
}
