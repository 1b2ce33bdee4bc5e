//! Indexing: slice (with steps, negative steps, indices and new axes),
//! concatenate (reusing input chunks), and boolean filter (lengths unknown
//! until run).

use super::elementwise::cast;
use super::rechunk::rechunk_to;
use super::{known_or_need, Ctx, Tiled};
use crate::error::TileResult;
use crate::layout::{grid_indices, refine, Layout};
use mars_ir::infer::resolve_slice;
use mars_ir::{ChunkId, ChunkOp, DType, Dim, IrError, Meta, SliceElem};

/// Along one output axis: (input chunk along the source axis, local slice elem, length).
type AxisGroups = Vec<(usize, SliceElem, usize)>;

pub(super) fn slice(ctx: &mut Ctx, elems: &[SliceElem], input: &Layout, dtype: DType) -> TileResult<Tiled> {
    let known = known_or_need!(input);
    let ndim = known.len();
    let consumed = elems.iter().filter(|e| !matches!(e, SliceElem::NewAxis)).count();
    let mut elems = elems.to_vec();
    elems.extend(std::iter::repeat_n(SliceElem::Slice { start: 0, end: None, step: 1 }, ndim.saturating_sub(consumed)));
    // per input axis: the fixed chunk of an index, or groups of a slice
    let mut fixed: Vec<Option<usize>> = vec![None; ndim];
    let mut out_axes: Vec<Option<(usize, AxisGroups)>> = Vec::new(); // None = new axis
    let mut axis = 0;
    for e in &elems {
        match *e {
            SliceElem::NewAxis => out_axes.push(None),
            SliceElem::Index(i) => {
                let len: usize = known[axis].iter().sum();
                let v = if i < 0 { len as isize + i } else { i };
                if v < 0 || v as usize >= len {
                    return Err(
                        IrError::Slice(format!("index {i} is out of bounds for axis {axis} with size {len}")).into()
                    );
                }
                let (c, local) = locate(&known[axis], v as usize);
                fixed[axis] = Some(c);
                out_axes.push(Some((axis, vec![(c, SliceElem::Index(local as isize), 0)])));
                axis += 1;
            }
            SliceElem::Slice { start, end, step } => {
                let len: usize = known[axis].iter().sum();
                let sel = resolve_slice(start, end, step, len, axis)?;
                out_axes.push(Some((axis, groups(&known[axis], sel))));
                axis += 1;
            }
        }
    }
    // output axes: new axes and slices (indices drop out)
    let kept: Vec<&Option<(usize, AxisGroups)>> =
        out_axes.iter().filter(|o| !matches!(o, Some((_, g)) if matches!(g[0].1, SliceElem::Index(_)))).collect();
    let grid: Vec<usize> = kept.iter().map(|o| o.as_ref().map_or(1, |(_, g)| g.len())).collect();
    let nsplits: Vec<Vec<Dim>> = kept
        .iter()
        .map(|o| o.as_ref().map_or(vec![Dim::Known(1)], |(_, g)| g.iter().map(|x| Dim::Known(x.2)).collect()))
        .collect();
    let mut chunks = Vec::with_capacity(grid.iter().product());
    for idx in grid_indices(&grid) {
        let mut src = vec![0; ndim];
        let mut local = Vec::with_capacity(out_axes.len());
        let mut k = 0;
        for o in &out_axes {
            match o {
                None => {
                    local.push(SliceElem::NewAxis);
                    k += 1;
                }
                Some((a, g)) if fixed[*a].is_some() && matches!(g[0].1, SliceElem::Index(_)) => {
                    src[*a] = g[0].0;
                    local.push(g[0].1);
                }
                Some((a, g)) => {
                    let (c, e, _) = g[idx[k]];
                    src[*a] = c;
                    local.push(e);
                    k += 1;
                }
            }
        }
        let shape: Vec<Dim> = idx.iter().enumerate().map(|(a, &i)| nsplits[a][i]).collect();
        chunks.push(ctx.add(ChunkOp::Slice { elems: local }, vec![input.at(&src)], shape, Some(dtype), idx));
    }
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}

/// Which chunk holds global position `i`, and where in it.
fn locate(splits: &[usize], i: usize) -> (usize, usize) {
    let mut off = 0;
    for (c, &n) in splits.iter().enumerate() {
        if i < off + n {
            return (c, i - off);
        }
        off += n;
    }
    (splits.len() - 1, i - (off - splits[splits.len() - 1]))
}

/// Split the selected positions of one axis by input chunk, in output order.
fn groups(splits: &[usize], sel: mars_ir::infer::AxisSel) -> AxisGroups {
    if sel.count == 0 {
        return vec![(0, SliceElem::Slice { start: 0, end: Some(0), step: 1 }, 0)];
    }
    let mut out: AxisGroups = Vec::new();
    let mut cur: Option<(usize, usize, usize, usize)> = None; // chunk, min local, max local, count
    for j in 0..sel.count {
        let g = (sel.first + j as isize * sel.step) as usize;
        let (c, local) = locate(splits, g);
        match &mut cur {
            Some((cc, lo, hi, n)) if *cc == c => {
                *lo = (*lo).min(local);
                *hi = (*hi).max(local);
                *n += 1;
            }
            _ => {
                if let Some(done) = cur.take() {
                    out.push(finish(done, sel.step));
                }
                cur = Some((c, local, local, 1));
            }
        }
    }
    if let Some(done) = cur {
        out.push(finish(done, sel.step));
    }
    out
}

fn finish((c, lo, hi, n): (usize, usize, usize, usize), step: isize) -> (usize, SliceElem, usize) {
    let step = if n == 1 { 1 } else { step };
    (c, SliceElem::Slice { start: lo as isize, end: Some(hi as isize + 1), step }, n)
}

pub(super) fn concatenate(
    ctx: &mut Ctx,
    axis: usize,
    inputs: &[Layout],
    metas: &[&Meta],
    dtype: DType,
) -> TileResult<Tiled> {
    let ndim = inputs[0].ndim();
    // line up every axis but `axis`
    let mut layouts: Vec<Layout> =
        inputs.iter().zip(metas).map(|(l, m)| cast(ctx, l, super::tensor_dtype(m), dtype)).collect();
    for a in (0..ndim).filter(|&a| a != axis) {
        // equal unknown lengths (after filters) only line up when they are the same chunks
        let same = layouts.iter().all(|l| l.nsplits[a] == layouts[0].nsplits[a]);
        let all_known = layouts[0].nsplits[a].iter().all(|d| d.is_known());
        let one_source = layouts.iter().all(|l| l.chunks == layouts[0].chunks);
        if same && (all_known || one_source) {
            continue;
        }
        let mut known = Vec::new();
        for l in &layouts {
            known.push(known_or_need!(l));
        }
        let refs: Vec<&[usize]> = known.iter().map(|k| k[a].as_slice()).collect();
        let r = refine(&refs);
        for (l, k) in layouts.iter_mut().zip(&known) {
            let mut to = k.clone();
            to[a] = r.clone();
            *l = rechunk_to(ctx, l, k, &to, dtype)?;
        }
    }
    let mut nsplits = layouts[0].nsplits.clone();
    nsplits[axis] = layouts.iter().flat_map(|l| l.nsplits[axis].clone()).collect();
    let grid: Vec<usize> = nsplits.iter().map(|s| s.len()).collect();
    let mut chunks: Vec<ChunkId> = Vec::with_capacity(grid.iter().product());
    for idx in grid_indices(&grid) {
        let mut i = idx[axis];
        let mut k = 0;
        while i >= layouts[k].grid()[axis] {
            i -= layouts[k].grid()[axis];
            k += 1;
        }
        let mut src = idx.clone();
        src[axis] = i;
        chunks.push(layouts[k].at(&src));
    }
    Ok(Tiled::Done(Layout { nsplits, chunks }))
}

pub(super) fn filter(ctx: &mut Ctx, data: &Layout, mask: &Layout, mask_ndim: usize, dtype: DType) -> TileResult<Tiled> {
    let rows = mask_ndim == 1 && data.ndim() > 1;
    if rows {
        // select along axis 0: line up the row chunks of data and mask
        let mask_view = Layout { nsplits: vec![mask.nsplits[0].clone()], chunks: mask.chunks.clone() };
        let data_axis0 = Layout {
            nsplits: vec![data.nsplits[0].clone()],
            chunks: (0..data.grid()[0]).map(|i| data.at(&row0(i, data.ndim()))).collect(),
        };
        let (data, mask) = if data_axis0.nsplits == mask_view.nsplits && data.nsplits[0].iter().all(|d| d.is_known()) {
            (data.clone(), mask.clone())
        } else {
            let dk = known_or_need!(data);
            let mk = known_or_need!(mask);
            let r = refine(&[&dk[0], &mk[0]]);
            let mut dt = dk.clone();
            dt[0] = r.clone();
            (rechunk_to(ctx, data, &dk, &dt, dtype)?, rechunk_to(ctx, mask, &mk, &[r], DType::Bool)?)
        };
        let grid = data.grid();
        let mut nsplits = data.nsplits.clone();
        nsplits[0] = vec![Dim::Unknown; grid[0]];
        let mut chunks = Vec::with_capacity(data.len());
        for idx in grid_indices(&grid) {
            let c = data.at(&idx);
            let mut shape = ctx.shape(c).to_vec();
            shape[0] = Dim::Unknown;
            chunks.push(ctx.add(ChunkOp::Filter { rows: true }, vec![c, mask.at(&[idx[0]])], shape, Some(dtype), idx));
        }
        return Ok(Tiled::Done(Layout { nsplits, chunks }));
    }
    // same shape: C order of the result needs whole trailing axes per chunk
    let (data, mask) = if data.ndim() > 1 || data.nsplits != mask.nsplits {
        let dk = known_or_need!(data);
        let mk = known_or_need!(mask);
        let mut to: Vec<Vec<usize>> = dk.iter().map(|s| vec![s.iter().sum()]).collect();
        to[0] = refine(&[&dk[0], &mk[0]]);
        (rechunk_to(ctx, data, &dk, &to, dtype)?, rechunk_to(ctx, mask, &mk, &to, DType::Bool)?)
    } else {
        (data.clone(), mask.clone())
    };
    let n = data.len();
    let mut chunks = Vec::with_capacity(n);
    for i in 0..n {
        let ins = vec![data.chunks[i], mask.chunks[i]];
        chunks.push(ctx.add(ChunkOp::Filter { rows: false }, ins, vec![Dim::Unknown], Some(dtype), vec![i]));
    }
    Ok(Tiled::Done(Layout { nsplits: vec![vec![Dim::Unknown; n]], chunks }))
}

fn row0(i: usize, ndim: usize) -> Vec<usize> {
    let mut v = vec![0; ndim];
    v[0] = i;
    v
}
