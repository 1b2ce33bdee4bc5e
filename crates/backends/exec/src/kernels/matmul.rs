//! `MatMul`: the sum of block products `a_0·b_0 + a_1·b_1 + …` over its input
//! pairs, accumulated into one output (no temporaries per pair).
//!
//! Floats go through the `gemm` crate (AVX-512 or AVX2 kernels chosen at run
//! time), reading the blocks in place through their strides, so transposed
//! blocks are not copied; integers go through ndarray. Operands of another
//! dtype than the output are cast first.

use crate::error::KernelError;
use mars_ir::data::Element;
use mars_ir::{DType, TensorData};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Ix1, Ix2, IxDyn, LinalgScalar};
use std::borrow::Cow;

/// Below this many multiply-adds per product a block runs on one thread (the
/// executor already runs blocks in parallel; nesting cost ~3% on W2).
const PARALLEL_FLOPS: usize = 1 << 31;

fn cast(t: &TensorData, out: DType) -> Cow<'_, TensorData> {
    if t.dtype() == out {
        Cow::Borrowed(t)
    } else {
        Cow::Owned(t.cast(out))
    }
}

/// An operand as a matrix: `a` of shape (k,) reads as (1, k), `b` as (k, 1).
fn as_matrix<T: Element>(t: &TensorData, lhs: bool) -> Result<ArrayView2<'_, T>, KernelError> {
    let a = T::unwrap_ref(t).ok_or_else(|| KernelError(format!("dot: expected {} blocks", T::DTYPE)))?;
    match a.ndim() {
        2 => Ok(a.view().into_dimensionality::<Ix2>()?),
        1 => {
            let v = a.view().into_dimensionality::<Ix1>()?;
            Ok(if lhs { v.insert_axis(Axis(0)) } else { v.insert_axis(Axis(1)) })
        }
        n => Err(KernelError(format!("dot of a {n}-d block"))),
    }
}

/// Sum of `pairs[l].0 · pairs[l].1`, as `out`.
pub fn matmul(pairs: &[(&TensorData, &TensorData)], out: DType) -> Result<TensorData, KernelError> {
    let Some(&(a0, b0)) = pairs.first() else {
        return Err(KernelError("MatMul needs at least one pair of blocks".into()));
    };
    // numpy's result shape: the outer axes of a, then those of b
    let mut shape: Vec<usize> = a0.shape()[..a0.shape().len().saturating_sub(1)].to_vec();
    shape.extend_from_slice(b0.shape().get(1..).unwrap_or(&[]));
    let cast_pairs: Vec<(Cow<TensorData>, Cow<TensorData>)> = match out {
        DType::Float64 | DType::Float32 | DType::Int64 | DType::Int32 => {
            pairs.iter().map(|(a, b)| (cast(a, out), cast(b, out))).collect()
        }
        // other dtypes multiply as float64, then cast back
        _ => pairs.iter().map(|(a, b)| (cast(a, DType::Float64), cast(b, DType::Float64))).collect(),
    };
    let m = match &cast_pairs[0].0.as_ref() {
        TensorData::F64(_) => TensorData::F64(accumulate::<f64>(&cast_pairs, gemm_f)?.into_dyn()),
        TensorData::F32(_) => TensorData::F32(accumulate::<f32>(&cast_pairs, gemm_f)?.into_dyn()),
        TensorData::I64(_) => TensorData::I64(accumulate::<i64>(&cast_pairs, ndarray_acc)?.into_dyn()),
        TensorData::I32(_) => TensorData::I32(accumulate::<i32>(&cast_pairs, ndarray_acc)?.into_dyn()),
        t => return Err(KernelError(format!("dot: unsupported dtype {}", t.dtype()))),
    };
    let m = with_shape(m, &shape)?;
    Ok(if m.dtype() == out { m } else { m.cast(out) })
}

fn with_shape(t: TensorData, shape: &[usize]) -> Result<TensorData, KernelError> {
    Ok(mars_ir::map_tensor!(&t, a => a.clone().into_shape_with_order(IxDyn(shape))?))
}

type Acc<T> = fn(&mut ArrayViewMut2<T>, &ArrayView2<T>, &ArrayView2<T>, bool);

fn accumulate<T: Element + LinalgScalar>(
    pairs: &[(Cow<TensorData>, Cow<TensorData>)],
    acc: Acc<T>,
) -> Result<Array2<T>, KernelError> {
    let mut dst: Option<Array2<T>> = None;
    for (l, (a, b)) in pairs.iter().enumerate() {
        let (a, b) = (as_matrix::<T>(a, true)?, as_matrix::<T>(b, false)?);
        if a.ncols() != b.nrows() {
            return Err(KernelError(format!(
                "dot: blocks of shapes {:?} and {:?} are not aligned",
                a.shape(),
                b.shape()
            )));
        }
        let d = dst.get_or_insert_with(|| Array2::zeros((a.nrows(), b.ncols())));
        if d.dim() != (a.nrows(), b.ncols()) {
            return Err(KernelError(format!(
                "dot: pair {l} gives a {}x{} block, the first gave {}x{}",
                a.nrows(),
                b.ncols(),
                d.nrows(),
                d.ncols()
            )));
        }
        acc(&mut d.view_mut(), &a, &b, l == 0);
    }
    dst.ok_or_else(|| KernelError("MatMul needs at least one pair of blocks".into()))
}

fn ndarray_acc<T: LinalgScalar>(dst: &mut ArrayViewMut2<T>, a: &ArrayView2<T>, b: &ArrayView2<T>, _first: bool) {
    ndarray::linalg::general_mat_mul(T::one(), a, b, T::one(), dst);
}

/// `dst = a·b` (first pair) or `dst += a·b`, with gemm.
#[allow(unsafe_code)]
fn gemm_f<T: Element + LinalgScalar>(dst: &mut ArrayViewMut2<T>, a: &ArrayView2<T>, b: &ArrayView2<T>, first: bool) {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert!(b.nrows() == k && dst.dim() == (m, n), "gemm: shapes checked by the caller");
    assert!(T::DTYPE == DType::Float64 || T::DTYPE == DType::Float32, "gemm: floats only");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let par = if m * n * k >= PARALLEL_FLOPS && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    let (ds, as_, bs) = (dst.strides().to_vec(), a.strides().to_vec(), b.strides().to_vec());
    // SAFETY: T is f32 or f64 (asserted), the only types gemm is called with.
    // The views are alive for the whole call and their shapes are (m, k),
    // (k, n) and (m, n) (asserted), so with ndarray's own strides every element
    // gemm reads or writes lies inside its view. `dst` is a unique borrow and
    // cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ds[1],
            ds[0],
            !first,
            a.as_ptr(),
            as_[1],
            as_[0],
            b.as_ptr(),
            bs[1],
            bs[0],
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, ArrayD};

    fn rnd(shape: &[usize], seed: u64) -> ArrayD<f64> {
        let mut s = seed;
        Array::from_shape_fn(IxDyn(shape), |_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        })
    }

    fn close(a: &TensorData, b: &ArrayD<f64>) {
        let a = a.cast(DType::Float64).to_f64_vec();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        }
    }

    #[test]
    fn sums_pairs_of_products_of_any_layout() {
        let (a1, b1, a2, b2) = (rnd(&[5, 3], 1), rnd(&[3, 4], 2), rnd(&[5, 2], 3), rnd(&[2, 4], 4));
        let want = |x: &ArrayD<f64>, y: &ArrayD<f64>| {
            x.view().into_dimensionality::<Ix2>().unwrap().dot(&y.view().into_dimensionality::<Ix2>().unwrap())
        };
        let expect = (want(&a1, &b1) + want(&a2, &b2)).into_dyn();
        let (ta1, tb1, ta2, tb2) =
            (TensorData::F64(a1.clone()), TensorData::F64(b1.clone()), TensorData::F64(a2), TensorData::F64(b2));
        close(&matmul(&[(&ta1, &tb1), (&ta2, &tb2)], DType::Float64).unwrap(), &expect);
        // a transposed (non-standard layout) operand is read in place
        let at = TensorData::F64(a1.t().as_standard_layout().into_owned().reversed_axes());
        close(&matmul(&[(&at, &tb1)], DType::Float64).unwrap(), &want(&a1, &b1).into_dyn());
        // ints through ndarray, f32 through gemm, bools as float64 then cast
        let ia = TensorData::I64(a1.mapv(|v| (v * 10.0) as i64));
        let ib = TensorData::I64(b1.mapv(|v| (v * 10.0) as i64));
        let iw = want(&a1.mapv(|v| (v * 10.0) as i64 as f64), &b1.mapv(|v| (v * 10.0) as i64 as f64));
        close(&matmul(&[(&ia, &ib)], DType::Int64).unwrap(), &iw.into_dyn());
        let fa = TensorData::F32(a1.mapv(|v| v as f32));
        let r = matmul(&[(&fa, &tb1)], DType::Float64).unwrap();
        assert_eq!(r.dtype(), DType::Float64);
    }

    #[test]
    fn vectors_follow_numpy_shapes() {
        let (m, v) = (rnd(&[3, 4], 5), rnd(&[4], 6));
        let (tm, tv) = (TensorData::F64(m.clone()), TensorData::F64(v.clone()));
        let mv = m.view().into_dimensionality::<Ix2>().unwrap().dot(&v.view().into_dimensionality::<Ix1>().unwrap());
        let r = matmul(&[(&tm, &tv)], DType::Float64).unwrap();
        assert_eq!(r.shape(), &[3]);
        close(&r, &mv.into_dyn());
        let r = matmul(&[(&tv, &tv)], DType::Float64).unwrap();
        assert_eq!(r.shape(), &[] as &[usize]);
        close(&r, &ndarray::arr0(v.iter().map(|x| x * x).sum::<f64>()).into_dyn());
        let tm2 = TensorData::F64(m.t().to_owned());
        assert_eq!(matmul(&[(&tv, &tm2)], DType::Float64).unwrap().shape(), &[3]);
    }

    #[test]
    fn misaligned_blocks_are_errors() {
        let (a, b) = (TensorData::F64(rnd(&[2, 3], 1)), TensorData::F64(rnd(&[4, 2], 2)));
        assert!(matmul(&[(&a, &b)], DType::Float64).unwrap_err().0.contains("not aligned"));
        assert!(matmul(&[], DType::Float64).is_err());
    }
}
