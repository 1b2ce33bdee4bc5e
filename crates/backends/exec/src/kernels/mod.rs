//! Kernels: what one chunk op does to its inputs' data. Both backends call
//! these; errors come back as [`KernelError`] and the executor adds the op and
//! chunk.

pub mod eval;
pub mod frame;
pub mod groupby;
pub mod hash;
pub mod join;
pub mod matmul;
pub mod pipeline;
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

/// The power of ten a decimal of precision `p` and scale `s` divides its
/// unscaled integer by to become the Float64 arrow's cast gives, when the
/// fast path applies (at most 15 digits: exact in i64 and f64, so
/// `x / 10^s` rounds once); `None` otherwise.
pub fn decimal_divisor(p: u8, s: i8) -> Option<f64> {
    (p <= 15 && (0..=22).contains(&s)).then(|| 10_f64.powi(i32::from(s)))
}

/// `col` as type `to`, as `arrow::compute::cast` gives it; a decimal of at
/// most 15 digits to Float64 takes a faster path with the same values (its
/// unscaled integers are exact in both i64 and f64, so `x / 10^scale` rounds
/// once, as arrow's cast does).
pub fn cast_column(
    col: &arrow::array::ArrayRef,
    to: &arrow::datatypes::DataType,
) -> Result<arrow::array::ArrayRef, KernelError> {
    use arrow::array::{Array, AsArray, Float64Array};
    use arrow::datatypes::{DataType, Decimal128Type, Decimal64Type};
    let pow = match (col.data_type(), to) {
        (DataType::Decimal128(p, s) | DataType::Decimal64(p, s), DataType::Float64) => decimal_divisor(*p, *s),
        _ => None,
    };
    if let Some(pow) = pow {
        let values: Vec<f64> = match col.data_type() {
            DataType::Decimal128(..) => {
                col.as_primitive::<Decimal128Type>().values().iter().map(|&x| (x as i64) as f64 / pow).collect()
            }
            _ => col.as_primitive::<Decimal64Type>().values().iter().map(|&x| x as f64 / pow).collect(),
        };
        return Ok(std::sync::Arc::new(Float64Array::new(values.into(), col.nulls().cloned())));
    }
    Ok(arrow::compute::cast(col, to)?)
}

fn tensor<'a>(d: &'a ChunkData, what: &str) -> Result<&'a TensorData, KernelError> {
    d.tensor().ok_or_else(|| KernelError(format!("{what} needs tensor inputs")))
}

/// The shape `node` declares, when every length is known.
fn declared_shape(node: &ChunkNode) -> Option<Vec<usize>> {
    node.shape.iter().map(|d| d.known()).collect()
}

/// A tensor chunk is checked before anything is allocated for it: a source
/// op must make the shape its node declares, and the chunk must fit in this
/// machine's memory. (A chunk asking for more is an error naming it, never
/// an allocation that aborts the process.)
fn check_size(node: &ChunkNode) -> Result<(), KernelError> {
    let Some(dtype) = node.dtype else { return Ok(()) };
    let declared = declared_shape(node);
    let made = match &*node.op {
        ChunkOp::Full { shape, .. } => Some(shape.clone()),
        ChunkOp::Arange { n, .. } => Some(vec![*n]),
        ChunkOp::Random(r) => Some(r.shape.clone()),
        _ => None,
    };
    if let (Some(m), Some(d)) = (&made, &declared) {
        if m != d {
            return Err(KernelError(format!(
                "chunk {}: {} makes shape {m:?}, but the chunk's shape is {d:?}",
                node.key.short(),
                node.op
            )));
        }
    }
    let Some(shape) = made.or(declared) else { return Ok(()) };
    let bytes = shape.iter().try_fold(dtype.itemsize(), |a, &d| a.checked_mul(d));
    let memory = crate::store::physical_memory();
    match (bytes, memory) {
        (Some(b), Some(m)) if b <= m => Ok(()),
        (Some(_), None) => Ok(()),
        (b, m) => Err(KernelError(format!(
            "chunk {} of shape {shape:?} ({dtype}) needs {} bytes, more than this machine's memory ({} bytes); use smaller chunks",
            node.key.short(),
            b.map_or("more than 2^64".to_string(), |b| b.to_string()),
            m.unwrap_or(0)
        ))),
    }
}

/// Run one chunk op.
pub fn run(node: &ChunkNode, inputs: &[Arc<ChunkData>]) -> Result<ChunkData, KernelError> {
    check_size(node)?;
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
            let shape = eval::expr_shape(expr, &ins)?;
            if declared_shape(node).is_some_and(|d| d != shape) {
                return Err(KernelError(format!(
                    "chunk {}: the expression makes shape {shape:?}, but the chunk's shape is {:?}",
                    node.key.short(),
                    node.shape
                )));
            }
            eval::map(expr, &ins, &shape, *dtype)?
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

#[cfg(test)]
mod tests {
    use super::cast_column;
    use arrow::array::{Array, ArrayRef, Decimal128Array};
    use arrow::datatypes::DataType;
    use std::sync::Arc;

    /// The decimal fast path gives arrow's values bit for bit (and its
    /// nulls), for every precision and scale it takes and the ones it leaves.
    #[test]
    fn decimal_to_f64_matches_arrows_cast() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for (p, s) in [(15u8, 2i8), (12, 4), (15, 0), (10, 10), (18, 2), (38, 6)] {
            let bound = 10i128.pow(u32::from(p)) - 1;
            let values: Vec<Option<i128>> = (0..2000)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let v = (x as i128 % (bound + 1)) * if x & 1 == 1 { -1 } else { 1 };
                    (i % 17 != 0).then_some(if i < 4 { [0, bound, -bound, 1][i] } else { v })
                })
                .collect();
            let a: ArrayRef = Arc::new(Decimal128Array::from(values).with_precision_and_scale(p, s).unwrap());
            let fast = cast_column(&a, &DataType::Float64).unwrap();
            let slow = arrow::compute::cast(&a, &DataType::Float64).unwrap();
            assert_eq!(fast.nulls(), slow.nulls(), "nulls of Decimal128({p}, {s})");
            let (f, w) = (
                fast.as_any().downcast_ref::<arrow::array::Float64Array>().unwrap(),
                slow.as_any().downcast_ref::<arrow::array::Float64Array>().unwrap(),
            );
            for i in 0..f.len() {
                if f.is_valid(i) {
                    assert_eq!(f.value(i).to_bits(), w.value(i).to_bits(), "Decimal128({p}, {s}) row {i}");
                }
            }
        }
    }
}
