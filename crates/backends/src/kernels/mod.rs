//! Kernels: what one chunk op does to its inputs' data. Both backends call
//! these; errors come back as [`KernelError`] and the executor adds the op and
//! chunk.

pub mod eval;
pub mod frame;
pub mod groupby;
pub mod hash;
pub mod join;
pub mod matmul;
pub mod random;
pub mod reduce;
pub mod simd;
pub mod sort;

use crate::data::ChunkData;
use crate::error::KernelError;
use mars_ir::data::Element;
use mars_ir::{map_tensor, with_dtype, with_tensor, ChunkNode, ChunkOp, DType, TensorData};
use ndarray::{ArrayD, Axis, IxDyn, SliceInfo, SliceInfoElem};
use std::sync::Arc;

fn tensor<'a>(d: &'a ChunkData, what: &str) -> Result<&'a TensorData, KernelError> {
    d.tensor().ok_or_else(|| KernelError(format!("{what} needs tensor inputs")))
}

/// Run one chunk op.
pub fn run(node: &ChunkNode, inputs: &[Arc<ChunkData>]) -> Result<ChunkData, KernelError> {
    let t = |i: usize| tensor(&inputs[i], "this op");
    Ok(ChunkData::Tensor(match &*node.op {
        ChunkOp::Fetch => return Err(KernelError("fetch chunks are read from the store, not run".into())),
        ChunkOp::Full { shape, value, dtype } => {
            with_dtype!(*dtype, T => T::wrap(ArrayD::from_elem(IxDyn(shape), T::from_f64(*value))))
        }
        ChunkOp::Arange { start, step, n } => {
            TensorData::F64(ArrayD::from_shape_fn(IxDyn(&[*n]), |i| start + step * i[0] as f64))
        }
        ChunkOp::Random(r) => random::generate(r.seed, r.dist, &r.global_shape, &r.offset, &r.shape),
        ChunkOp::Frame(op) => return frame::run(op, inputs),
        ChunkOp::Map { expr, dtype } => {
            let ins: Vec<&TensorData> = (0..inputs.len()).map(t).collect::<Result<_, _>>()?;
            eval::map(expr, &ins, &eval::expr_shape(expr, &ins)?, *dtype)?
        }
        ChunkOp::ReduceMap(r) => {
            let ins: Vec<&TensorData> = (0..inputs.len()).map(t).collect::<Result<_, _>>()?;
            return reduce::reduce_map(r.func, &r.axes, r.expr.as_ref(), &ins, &r.offset, &r.global_shape);
        }
        ChunkOp::ReduceCombine { func, axes, finalize, out_dtype } => {
            let parts: Vec<(&[usize], &crate::data::Partial)> = inputs
                .iter()
                .map(|d| match d.as_ref() {
                    ChunkData::Partial { shape, state } => Ok((shape.as_slice(), state)),
                    _ => Err(KernelError("combine needs partial inputs".into())),
                })
                .collect::<Result<_, _>>()?;
            let (shape, state) = reduce::combine(*func, &parts)?;
            if !finalize {
                return Ok(ChunkData::Partial { shape, state });
            }
            reduce::finalize(*func, axes, &shape, &state, *out_dtype)?
        }
        ChunkOp::MatMul => {
            let ins: Vec<&TensorData> = (0..inputs.len()).map(t).collect::<Result<_, _>>()?;
            if !ins.len().is_multiple_of(2) {
                return Err(KernelError(format!("MatMul takes pairs of blocks, got {} inputs", ins.len())));
            }
            let pairs: Vec<(&TensorData, &TensorData)> = ins.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            matmul::matmul(&pairs, node.dtype.unwrap_or(DType::Float64))?
        }
        ChunkOp::Transpose { axes } => {
            map_tensor!(t(0)?, a => a.view().permuted_axes(IxDyn(axes)).as_standard_layout().into_owned())
        }
        ChunkOp::Reshape { shape } => {
            let x = t(0)?;
            with_tensor!(x, a => Element::wrap(a.as_standard_layout().into_owned().into_shape_with_order(IxDyn(shape))?))
        }
        ChunkOp::Slice { elems } => {
            let info: Vec<SliceInfoElem> = elems.iter().map(|&e| e.into()).collect();
            let info: SliceInfo<Vec<SliceInfoElem>, IxDyn, IxDyn> = SliceInfo::try_from(info)?;
            map_tensor!(t(0)?, a => a.slice(info.as_ref()).to_owned())
        }
        ChunkOp::Assemble(a) => {
            let mut out = TensorData::zeros(a.dtype, &a.shape);
            for p in &a.pieces {
                let src = t(p.input)?.slice_ranges(&p.src);
                copy_into(&mut out, &src, &p.dst)?;
            }
            out
        }
        ChunkOp::Filter { rows } => filter(t(0)?, t(1)?, *rows)?,
    }))
}

/// Write `src` into `out` at offset `dst`.
pub fn copy_into(out: &mut TensorData, src: &TensorData, dst: &[usize]) -> Result<(), KernelError> {
    let src = src.cast(out.dtype());
    fn go<T: Element + Clone>(o: &mut ArrayD<T>, s: &TensorData, dst: &[usize]) -> Result<(), KernelError> {
        let s = T::unwrap_ref(s).ok_or_else(|| KernelError("dtype mismatch while assembling".into()))?;
        let fits = s.ndim() == o.ndim()
            && dst.len() == o.ndim()
            && (0..o.ndim()).all(|a| dst[a] + s.shape()[a] <= o.shape()[a]);
        if !fits {
            return Err(KernelError(format!(
                "a block of shape {:?} at offset {dst:?} does not fit in an array of shape {:?}",
                s.shape(),
                o.shape()
            )));
        }
        let mut view = o.slice_each_axis_mut(|ax| {
            let a = ax.axis.index();
            ndarray::Slice::from(dst[a]..dst[a] + s.shape()[a])
        });
        view.assign(s);
        Ok(())
    }
    with_tensor!(out, o => go(o, &src, dst))
}

fn filter(x: &TensorData, mask: &TensorData, rows: bool) -> Result<TensorData, KernelError> {
    let TensorData::Bool(m) = mask else {
        return Err(KernelError(format!("filter mask must be bool, got {}", mask.dtype())));
    };
    if rows {
        let idx: Vec<usize> = m.iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i).collect();
        if m.len() != x.shape()[0] {
            return Err(KernelError(format!("mask of length {} for {} rows", m.len(), x.shape()[0])));
        }
        return Ok(map_tensor!(x, a => a.select(Axis(0), &idx)));
    }
    if m.shape() != x.shape() {
        return Err(KernelError(format!("mask of shape {:?} for data of shape {:?}", m.shape(), x.shape())));
    }
    Ok(map_tensor!(x, a => {
        let v: Vec<_> = a.iter().zip(m.iter()).filter(|(_, &b)| b).map(|(v, _)| *v).collect();
        let n = v.len();
        ArrayD::from_shape_vec(IxDyn(&[n]), v)?
    }))
}

/// Put a tileable's chunks (row-major over `grid`) back together.
pub fn assemble(chunks: &[Arc<ChunkData>], grid: &[usize]) -> Result<ChunkData, KernelError> {
    if chunks.len() == 1 {
        return Ok(chunks[0].as_ref().clone());
    }
    if let Some(ChunkData::Frame(b)) = chunks.first().map(|c| c.as_ref()) {
        let batches: Vec<_> = chunks
            .iter()
            .map(|c| match c.as_ref() {
                ChunkData::Frame(b) => Ok(b.clone()),
                _ => Err(KernelError("mixed chunk kinds".into())),
            })
            .collect::<Result<_, _>>()?;
        return Ok(ChunkData::Frame(arrow::compute::concat_batches(&b.schema(), &batches)?));
    }
    let ts: Vec<&TensorData> = chunks.iter().map(|c| tensor(c, "assembling")).collect::<Result<_, _>>()?;
    let ndim = grid.len();
    // per axis: the length of each chunk along it, read off the chunks on that axis
    let mut sizes: Vec<Vec<usize>> = grid.iter().map(|&g| vec![0; g]).collect();
    let grid_idx = mars_ir::shape::grid_indices(grid);
    for (idx, t) in grid_idx.iter().zip(&ts) {
        for a in 0..ndim {
            sizes[a][idx[a]] = t.shape()[a];
        }
    }
    let shape: Vec<usize> = sizes.iter().map(|s| s.iter().sum()).collect();
    let dtype = ts.first().map(|t| t.dtype()).unwrap_or(DType::Float64);
    let mut out = TensorData::zeros(dtype, &shape);
    for (idx, t) in grid_idx.iter().zip(&ts) {
        let dst: Vec<usize> = (0..ndim).map(|a| sizes[a][..idx[a]].iter().sum()).collect();
        copy_into(&mut out, t, &dst)?;
    }
    Ok(ChunkData::Tensor(out))
}
