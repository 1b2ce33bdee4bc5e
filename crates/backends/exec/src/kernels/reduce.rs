//! Tree-reduction kernels: map (optionally over a fused expression), combine,
//! finalise. Partials keep reduced axes as length 1, so combining is position-wise.

use super::eval::{eval_block, Buf, Inputs, BLOCK};
use crate::data::{ChunkData, Partial};
use crate::error::KernelError;
use mars_ir::data::Element;
use mars_ir::{with_dtype, DType, Expr, ReduceFn, TensorData};
use ndarray::{ArrayD, IxDyn};

/// Maps a flat input position to its output position.
struct OutPos {
    shape: Vec<usize>,
    axes: Vec<usize>,
    /// single reduced axis fast path: (len of axis, inner size)
    single: Option<(usize, usize)>,
    full: bool,
}

impl OutPos {
    fn new(shape: &[usize], axes: &[usize]) -> Self {
        let full = (0..shape.len()).all(|a| axes.contains(&a));
        let single = (axes.len() == 1).then(|| (shape[axes[0]], shape[axes[0] + 1..].iter().product()));
        OutPos { shape: shape.to_vec(), axes: axes.to_vec(), single, full }
    }
    #[inline]
    fn pos(&self, flat: usize) -> usize {
        if self.full {
            return 0;
        }
        if let Some((r, inner)) = self.single {
            return (flat / (r * inner)) * inner + flat % inner;
        }
        let mut rem = flat;
        let mut out = 0;
        let mut mult = 1;
        for a in (0..self.shape.len()).rev() {
            let i = rem % self.shape[a];
            rem /= self.shape[a];
            if !self.axes.contains(&a) {
                out += i * mult;
                mult *= self.shape[a];
            }
        }
        out
    }
}

fn is_float_acc(func: ReduceFn, in_dtype: DType) -> bool {
    match func {
        ReduceFn::Sum | ReduceFn::Prod => func.out_dtype(in_dtype).is_float(),
        _ => in_dtype.is_float(),
    }
}

fn init(func: ReduceFn, in_dtype: DType, n: usize) -> Partial {
    let float = is_float_acc(func, in_dtype);
    match func {
        ReduceFn::Sum if float => Partial::F(vec![0.0; n]),
        ReduceFn::Sum => Partial::I(vec![0; n]),
        ReduceFn::Prod if float => Partial::F(vec![1.0; n]),
        ReduceFn::Prod => Partial::I(vec![1; n]),
        ReduceFn::Min if float => Partial::F(vec![f64::INFINITY; n]),
        ReduceFn::Min => Partial::I(vec![i64::MAX; n]),
        ReduceFn::Max if float => Partial::F(vec![f64::NEG_INFINITY; n]),
        ReduceFn::Max => Partial::I(vec![i64::MIN; n]),
        ReduceFn::Mean | ReduceFn::Var { .. } | ReduceFn::Std { .. } => {
            Partial::Moments { count: vec![0.0; n], mean: vec![0.0; n], m2: vec![0.0; n] }
        }
        ReduceFn::ArgMin | ReduceFn::ArgMax => Partial::Arg { val: vec![f64::NAN; n], idx: vec![-1; n] },
    }
}

/// Is `v` (at `i`) better than the current best for an arg-reduction? NaN wins
/// (numpy returns the first NaN); ties keep the smaller index.
#[inline]
fn better(func: ReduceFn, v: f64, i: i64, best: f64, bi: i64) -> bool {
    if bi < 0 {
        return true;
    }
    if best.is_nan() {
        return v.is_nan() && i < bi;
    }
    if v.is_nan() {
        return true;
    }
    let strictly = if func == ReduceFn::ArgMin { v < best } else { v > best };
    strictly || (v == best && i < bi)
}

/// Global index of flat local position `flat` for arg-reductions.
fn arg_index(flat: usize, shape: &[usize], offset: &[usize], global: &[usize], axes: &[usize]) -> i64 {
    let mut rem = flat;
    let mut local = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        local[a] = rem % shape[a];
        rem /= shape[a];
    }
    if axes.len() == 1 && shape.len() > 1 {
        return (offset[axes[0]] + local[axes[0]]) as i64;
    }
    let mut g = 0;
    for a in 0..shape.len() {
        g = g * global[a] + offset[a] + local[a];
    }
    g as i64
}

/// The map stage: reduce one chunk (through an optional fused expression) to a partial.
pub fn reduce_map(
    func: ReduceFn,
    axes: &[usize],
    expr: Option<&Expr>,
    inputs: &[&TensorData],
    offset: &[usize],
    global_shape: &[usize],
) -> Result<ChunkData, KernelError> {
    // the reduced shape: the inputs (and any fused random leaf) broadcast together
    let default = Expr::Input(0);
    let expr = expr.unwrap_or(&default);
    let shape = super::eval::expr_shape(expr, inputs)?;
    let inp = Inputs::new(inputs, &shape)?;
    let in_dtype = expr.dtype(&inp.dtypes)?;
    let out_shape: Vec<usize> = shape.iter().enumerate().map(|(a, &n)| if axes.contains(&a) { 1 } else { n }).collect();
    let nout: usize = out_shape.iter().product();
    let total: usize = shape.iter().product();
    let op = OutPos::new(&shape, axes);
    let mut state = init(func, in_dtype, nout);
    // fast paths: a full reduction or one axis, over float partials
    let plan = if op.full {
        Some((1, total, 1))
    } else if axes.len() == 1 {
        let inner: usize = shape[axes[0] + 1..].iter().product();
        Some((total / (shape[axes[0]] * inner).max(1), shape[axes[0]], inner))
    } else {
        None
    };
    if let Some((outer, r, inner)) = plan {
        if !func.is_arg() && total > 0 && fast_reduce(func, expr, &inp, &mut state, outer, r, inner)? {
            return Ok(ChunkData::Partial { shape: out_shape, state });
        }
    }
    let mut start = 0;
    while start < total {
        let end = (start + BLOCK).min(total);
        let block = eval_block(expr, &inp, start, end)?;
        match &mut state {
            Partial::F(acc) => {
                let v = block.into_f();
                let f: fn(f64, f64) -> f64 = match func {
                    ReduceFn::Sum => |a, x| a + x,
                    ReduceFn::Prod => |a, x| a * x,
                    ReduceFn::Min => |a: f64, x: f64| if x < a || x.is_nan() { x } else { a },
                    _ => |a: f64, x: f64| if x > a || x.is_nan() { x } else { a },
                };
                if op.full && func == ReduceFn::Sum {
                    acc[0] += pairwise_sum(&v);
                } else if op.full {
                    let a = &mut acc[0];
                    for &x in &v {
                        *a = f(*a, x);
                    }
                } else {
                    for (j, &x) in v.iter().enumerate() {
                        let p = op.pos(start + j);
                        acc[p] = f(acc[p], x);
                    }
                }
            }
            Partial::I(acc) => {
                let v = block.into_i();
                let f: fn(i64, i64) -> i64 = match func {
                    ReduceFn::Sum => i64::wrapping_add,
                    ReduceFn::Prod => i64::wrapping_mul,
                    ReduceFn::Min => i64::min,
                    _ => i64::max,
                };
                for (j, &x) in v.iter().enumerate() {
                    let p = op.pos(start + j);
                    acc[p] = f(acc[p], x);
                }
            }
            Partial::Moments { count, mean, m2 } => {
                let v = block.into_f();
                for (j, &x) in v.iter().enumerate() {
                    let p = op.pos(start + j);
                    count[p] += 1.0;
                    let d = x - mean[p];
                    mean[p] += d / count[p];
                    m2[p] += d * (x - mean[p]);
                }
            }
            Partial::Arg { val, idx } => {
                let v = block.into_f();
                for (j, &x) in v.iter().enumerate() {
                    let p = op.pos(start + j);
                    let g = arg_index(start + j, &shape, offset, global_shape, axes);
                    if better(func, x, g, val[p], idx[p]) {
                        val[p] = x;
                        idx[p] = g;
                    }
                }
            }
        }
        start = end;
    }
    Ok(ChunkData::Partial { shape: out_shape, state })
}

/// Evaluate `expr` over `[start, start + len)` in blocks, handing each block's
/// values and its offset within the range to `f`.
fn for_blocks(
    expr: &Expr,
    inp: &Inputs,
    start: usize,
    len: usize,
    mut f: impl FnMut(usize, &[f64]),
) -> Result<(), KernelError> {
    let mut off = 0;
    while off < len {
        let n = BLOCK.min(len - off);
        let v = eval_block(expr, inp, start + off, start + off + n)?.into_f();
        f(off, &v);
        off += n;
    }
    Ok(())
}

/// Reduce a tensor viewed as (outer, r, inner), the middle axis reduced, into
/// float or moment partials with loops over contiguous runs. Returns false when
/// the partial kind has no fast path.
fn fast_reduce(
    func: ReduceFn,
    expr: &Expr,
    inp: &Inputs,
    state: &mut Partial,
    outer: usize,
    r: usize,
    inner: usize,
) -> Result<bool, KernelError> {
    match state {
        Partial::F(acc) => {
            for o in 0..outer {
                if inner == 1 {
                    // a contiguous run reduces to one value
                    let a = &mut acc[o];
                    for_blocks(expr, inp, o * r, r, |_, v| {
                        *a = match func {
                            ReduceFn::Sum => *a + pairwise_sum(v),
                            ReduceFn::Prod => v.iter().fold(*a, |p, x| p * x),
                            // NaN propagates, as in numpy
                            ReduceFn::Min => v.iter().fold(*a, |p, &x| if x < p || x.is_nan() { x } else { p }),
                            _ => v.iter().fold(*a, |p, &x| if x > p || x.is_nan() { x } else { p }),
                        }
                    })?;
                } else {
                    let row = &mut acc[o * inner..(o + 1) * inner];
                    for ri in 0..r {
                        for_blocks(expr, inp, (o * r + ri) * inner, inner, |off, v| {
                            let z = row[off..off + v.len()].iter_mut().zip(v);
                            match func {
                                ReduceFn::Sum => super::simd::AddInto { acc: &mut row[off..off + v.len()], v }.run(),
                                ReduceFn::Prod => z.for_each(|(a, x)| *a *= x),
                                ReduceFn::Min => z.for_each(|(a, &x)| {
                                    if x < *a || x.is_nan() {
                                        *a = x
                                    }
                                }),
                                _ => z.for_each(|(a, &x)| {
                                    if x > *a || x.is_nan() {
                                        *a = x
                                    }
                                }),
                            }
                        })?;
                    }
                }
            }
            Ok(true)
        }
        Partial::Moments { count, mean, m2 } => {
            for o in 0..outer {
                if inner == 1 {
                    // per block: exact mean and M2 in two passes, merged with Chan's formula
                    let (c, m, q) = (&mut count[o], &mut mean[o], &mut m2[o]);
                    for_blocks(expr, inp, o * r, r, |_, v| {
                        let nb = v.len() as f64;
                        let mb = pairwise_sum(v) / nb;
                        let qb = super::simd::SumSqDev { v, m: mb }.run();
                        let n = *c + nb;
                        let d = mb - *m;
                        *m += d * nb / n;
                        *q += qb + d * d * *c * nb / n;
                        *c = n;
                    })?;
                } else {
                    let range = o * inner..(o + 1) * inner;
                    let (c, m, q) = (&mut count[range.clone()], &mut mean[range.clone()], &mut m2[range]);
                    c.iter_mut().for_each(|x| *x = r as f64);
                    if func == ReduceFn::Mean {
                        // a mean needs no M2: sum the rows, divide once
                        for ri in 0..r {
                            for_blocks(expr, inp, (o * r + ri) * inner, inner, |off, v| {
                                super::simd::AddInto { acc: &mut m[off..off + v.len()], v }.run()
                            })?;
                        }
                        let inv = 1.0 / r as f64;
                        m.iter_mut().for_each(|a| *a *= inv);
                        continue;
                    }
                    for ri in 0..r {
                        // every position gains one value per step: one shared count
                        let n = (ri + 1) as f64;
                        let inv = 1.0 / n;
                        for_blocks(expr, inp, (o * r + ri) * inner, inner, |off, v| {
                            let (mean, m2) = (&mut m[off..off + v.len()], &mut q[off..off + v.len()]);
                            super::simd::WelfordStep { mean, m2, v, inv }.run()
                        })?;
                    }
                }
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Sum in 8 independent lanes (vectorisable, and more accurate than one running sum).
fn pairwise_sum(v: &[f64]) -> f64 {
    super::simd::Sum { v }.run()
}

/// Merge partials position-wise (they share one keepdims shape).
pub fn combine(func: ReduceFn, parts: &[(&[usize], &Partial)]) -> Result<(Vec<usize>, Partial), KernelError> {
    let (shape, first) = parts.first().ok_or_else(|| KernelError("combine of no partials".into()))?;
    let mut acc = (*first).clone();
    for (s, p) in &parts[1..] {
        if s != shape {
            return Err(KernelError(format!("partials of shapes {s:?} and {shape:?} cannot combine")));
        }
        match (&mut acc, p) {
            (Partial::F(a), Partial::F(b)) => {
                let f: fn(f64, f64) -> f64 = match func {
                    ReduceFn::Sum => |a, x| a + x,
                    ReduceFn::Prod => |a, x| a * x,
                    ReduceFn::Min => |a: f64, x: f64| if x < a || x.is_nan() { x } else { a },
                    _ => |a: f64, x: f64| if x > a || x.is_nan() { x } else { a },
                };
                a.iter_mut().zip(b).for_each(|(a, &x)| *a = f(*a, x));
            }
            (Partial::I(a), Partial::I(b)) => {
                let f: fn(i64, i64) -> i64 = match func {
                    ReduceFn::Sum => i64::wrapping_add,
                    ReduceFn::Prod => i64::wrapping_mul,
                    ReduceFn::Min => i64::min,
                    _ => i64::max,
                };
                a.iter_mut().zip(b).for_each(|(a, &x)| *a = f(*a, x));
            }
            (Partial::Moments { count, mean, m2 }, Partial::Moments { count: cb, mean: mb, m2: qb }) => {
                for p in 0..count.len() {
                    let n = count[p] + cb[p];
                    if n == 0.0 {
                        continue;
                    }
                    let d = mb[p] - mean[p];
                    mean[p] += d * cb[p] / n;
                    m2[p] += qb[p] + d * d * count[p] * cb[p] / n;
                    count[p] = n;
                }
            }
            (Partial::Arg { val, idx }, Partial::Arg { val: vb, idx: ib }) => {
                for p in 0..val.len() {
                    if ib[p] >= 0 && better(func, vb[p], ib[p], val[p], idx[p]) {
                        val[p] = vb[p];
                        idx[p] = ib[p];
                    }
                }
            }
            _ => return Err(KernelError("partials of different kinds cannot combine".into())),
        }
    }
    Ok((shape.to_vec(), acc))
}

/// Turn a partial into the result tensor (reduced axes removed).
pub fn finalize(
    func: ReduceFn,
    axes: &[usize],
    shape: &[usize],
    state: &Partial,
    out: DType,
) -> Result<TensorData, KernelError> {
    let out_shape: Vec<usize> = shape.iter().enumerate().filter(|(a, _)| !axes.contains(a)).map(|(_, &n)| n).collect();
    let f: Vec<f64>;
    let values: Buf = match state {
        Partial::F(v) => {
            if matches!(func, ReduceFn::Min | ReduceFn::Max) && v.iter().any(|x| x.is_infinite()) {
                check_nonempty(func, v.iter().map(|x| x.is_infinite() && ((*x > 0.0) == (func == ReduceFn::Min))))?;
            }
            Buf::F(v.clone())
        }
        Partial::I(v) => {
            if matches!(func, ReduceFn::Min | ReduceFn::Max) {
                check_nonempty(func, v.iter().map(|&x| x == if func == ReduceFn::Min { i64::MAX } else { i64::MIN }))?;
            }
            Buf::I(v.clone())
        }
        Partial::Moments { count, mean, m2 } => {
            f = match func {
                ReduceFn::Mean => mean.iter().zip(count).map(|(&m, &c)| if c == 0.0 { f64::NAN } else { m }).collect(),
                ReduceFn::Var { ddof } | ReduceFn::Std { ddof } => {
                    let v =
                        m2.iter().zip(count).map(
                            |(&q, &c)| {
                                if c - ddof as f64 <= 0.0 {
                                    f64::NAN
                                } else {
                                    q / (c - ddof as f64)
                                }
                            },
                        );
                    if matches!(func, ReduceFn::Std { .. }) {
                        v.map(f64::sqrt).collect()
                    } else {
                        v.collect()
                    }
                }
                _ => return Err(KernelError("moments partial for a non-moment reduction".into())),
            };
            Buf::F(f)
        }
        Partial::Arg { idx, .. } => {
            if idx.iter().any(|&i| i < 0) {
                return Err(KernelError(format!("attempt to get {} of an empty sequence", func.name())));
            }
            Buf::I(idx.clone())
        }
    };
    fn build<T: Element>(b: Buf, shape: &[usize]) -> Result<TensorData, KernelError> {
        let v: Vec<T> = match b {
            Buf::F(v) => v.into_iter().map(T::from_f64).collect(),
            Buf::I(v) => v.into_iter().map(T::from_i64).collect(),
            Buf::B(v) => v.into_iter().map(T::from_bool).collect(),
        };
        Ok(T::wrap(ArrayD::from_shape_vec(IxDyn(shape), v)?))
    }
    with_dtype!(out, T => build::<T>(values, &out_shape))
}

fn check_nonempty(func: ReduceFn, mut empty: impl Iterator<Item = bool>) -> Result<(), KernelError> {
    if empty.any(|e| e) {
        let name = if func == ReduceFn::Min { "minimum" } else { "maximum" };
        return Err(KernelError(format!("zero-size array to reduction operation {name} which has no identity")));
    }
    Ok(())
}
