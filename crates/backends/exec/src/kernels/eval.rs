//! Block-wise evaluation of element-wise expressions: the fused kernel.
//!
//! An expression is evaluated over blocks of `BLOCK` consecutive elements of the
//! output; each operator works on small, cache-resident buffers, so a chain of
//! any length makes one pass over the inputs and allocates no full-size
//! temporaries. Values compute in three classes: f64, i64 and bool.

use crate::error::KernelError;
use mars_ir::data::Element;
use mars_ir::{with_dtype, with_tensor, BinaryFn, DType, Expr, TensorData, UnaryFn};
use ndarray::{ArrayD, IxDyn};

/// 32 KiB of f64 a buffer: measured best on this machine (1024: W1 over held
/// x 0.088 s, 4096: 0.071 s, 16384: 0.071 s but W1 with generation slower).
pub const BLOCK: usize = 4096;

#[derive(Clone, Debug)]
pub enum Buf {
    F(Vec<f64>),
    I(Vec<i64>),
    B(Vec<bool>),
}

impl Buf {
    pub fn into_f(self) -> Vec<f64> {
        match self {
            Buf::F(v) => v,
            Buf::I(v) => v.into_iter().map(|x| x as f64).collect(),
            Buf::B(v) => v.into_iter().map(|x| x as u8 as f64).collect(),
        }
    }
    pub fn into_i(self) -> Vec<i64> {
        match self {
            Buf::F(v) => v.into_iter().map(|x| x as i64).collect(),
            Buf::I(v) => v,
            Buf::B(v) => v.into_iter().map(|x| x as i64).collect(),
        }
    }
    pub fn into_b(self) -> Vec<bool> {
        match self {
            Buf::F(v) => v.into_iter().map(|x| x != 0.0).collect(),
            Buf::I(v) => v.into_iter().map(|x| x != 0).collect(),
            Buf::B(v) => v,
        }
    }
    fn class(d: DType) -> u8 {
        if d.is_float() {
            0
        } else if d == DType::Bool {
            2
        } else {
            1
        }
    }
    fn into_class(self, d: DType) -> Buf {
        match Buf::class(d) {
            0 => Buf::F(self.into_f()),
            1 => Buf::I(self.into_i()),
            _ => Buf::B(self.into_b()),
        }
    }
}

/// Contiguous inputs, each exactly the output's shape (broadcast ones are
/// expanded once, up front).
#[derive(Debug)]
pub struct Inputs<'a> {
    pub data: Vec<std::borrow::Cow<'a, TensorData>>,
    pub dtypes: Vec<DType>,
    /// The output's shape, which random leaves must have.
    pub shape: Vec<usize>,
}

impl<'a> Inputs<'a> {
    pub fn new(inputs: &[&'a TensorData], shape: &[usize]) -> Result<Self, KernelError> {
        let mut data = Vec::with_capacity(inputs.len());
        for t in inputs {
            let standard = with_tensor!(*t, a => a.is_standard_layout());
            if t.shape() == shape && standard {
                data.push(std::borrow::Cow::Borrowed(*t));
            } else {
                let expanded = with_tensor!(*t, a => {
                    let v = a.broadcast(IxDyn(shape)).ok_or_else(|| {
                        KernelError(format!("cannot broadcast input of shape {:?} to {:?}", a.shape(), shape))
                    })?;
                    Element::wrap(v.as_standard_layout().into_owned())
                });
                data.push(std::borrow::Cow::Owned(expanded));
            }
        }
        let dtypes = data.iter().map(|d| d.dtype()).collect();
        Ok(Inputs { data, dtypes, shape: shape.to_vec() })
    }

    /// Input `i`'s elements `[start, end)` when it is float64 (no conversion needed).
    fn f64_slice(&self, i: usize, start: usize, end: usize) -> Option<&[f64]> {
        match self.data.get(i)?.as_ref() {
            TensorData::F64(a) => a.as_slice().map(|s| &s[start..end]),
            _ => None,
        }
    }

    fn load(&self, i: usize, start: usize, end: usize) -> Buf {
        if let Some(s) = self.f64_slice(i, start, end) {
            return Buf::F(s.to_vec());
        }
        fn load_t<T: Element>(a: &ArrayD<T>, start: usize, end: usize) -> Buf {
            let s = &a.as_slice().expect("standard layout")[start..end];
            match T::DTYPE {
                d if d.is_float() => Buf::F(s.iter().map(|v| v.to_f64()).collect()),
                DType::Bool => Buf::B(s.iter().map(|v| v.to_bool()).collect()),
                _ => Buf::I(s.iter().map(|v| v.to_i64()).collect()),
            }
        }
        with_tensor!(self.data[i].as_ref(), a => load_t(a, start, end))
    }
}

fn wrap_int(v: i64, d: DType) -> i64 {
    match d {
        DType::Int8 => v as i8 as i64,
        DType::Int16 => v as i16 as i64,
        DType::Int32 => v as i32 as i64,
        DType::UInt8 => v as u8 as i64,
        DType::UInt16 => v as u16 as i64,
        DType::UInt32 => v as u32 as i64,
        _ => v,
    }
}

/// Evaluate `expr` on output elements `[start, end)`.
pub fn eval_block(expr: &Expr, inp: &Inputs, start: usize, end: usize) -> Result<Buf, KernelError> {
    let n = end - start;
    Ok(match expr {
        Expr::Input(i) => inp.load(*i, start, end),
        Expr::Const(c) => Buf::F(vec![*c; n]),
        Expr::Random(r) => {
            if r.shape != inp.shape {
                return Err(KernelError(format!(
                    "a fused random block of shape {:?} in an expression of shape {:?}",
                    r.shape, inp.shape
                )));
            }
            match super::random::fill(r, start, end) {
                Ok(v) => Buf::F(v),
                Err(v) => Buf::I(v),
            }
        }
        Expr::Cast(d, e) => {
            let v = eval_block(e, inp, start, end)?;
            match (v, *d) {
                (Buf::F(v), DType::Float32) => Buf::F(v.into_iter().map(|x| x as f32 as f64).collect()),
                (v, d) if d.is_int() => Buf::I(v.into_i().into_iter().map(|x| wrap_int(x, d)).collect()),
                (v, d) => v.into_class(d),
            }
        }
        Expr::Unary(f, e) => {
            let d = e.dtype(&inp.dtypes)?;
            let v = eval_block(e, inp, start, end)?;
            match (f, v) {
                (UnaryFn::Not, v) => Buf::B(v.into_b().into_iter().map(|x| !x).collect()),
                (UnaryFn::Neg, Buf::I(v)) => Buf::I(v.into_iter().map(|x| wrap_int(x.wrapping_neg(), d)).collect()),
                (UnaryFn::Abs, Buf::I(v)) => Buf::I(v.into_iter().map(|x| x.wrapping_abs()).collect()),
                (f, v) => {
                    let mut v = v.into_f();
                    let g: fn(f64) -> f64 = match f {
                        UnaryFn::Neg => |x| -x,
                        UnaryFn::Abs => f64::abs,
                        UnaryFn::Exp => f64::exp,
                        UnaryFn::Log => f64::ln,
                        UnaryFn::Sqrt => f64::sqrt,
                        UnaryFn::Not => |x| (x == 0.0) as u8 as f64,
                    };
                    v.iter_mut().for_each(|x| *x = g(*x));
                    round_f32(Buf::F(v), expr.dtype(&inp.dtypes)?)
                }
            }
        }
        Expr::Binary(f, a, b) => {
            let out = expr.dtype(&inp.dtypes)?;
            // arithmetic with a float constant: one pass over one buffer, no constant buffer
            if !f.is_comparison() && !f.is_logical() {
                match (a.as_ref(), b.as_ref()) {
                    // straight from a float64 input: the load and the operation in one pass
                    (Expr::Input(i), Expr::Const(c)) | (Expr::Const(c), Expr::Input(i))
                        if out == DType::Float64 && inp.f64_slice(*i, start, end).is_some() =>
                    {
                        let src = inp.f64_slice(*i, start, end).unwrap_or(&[]);
                        let mut x = Vec::with_capacity(n);
                        let swap = matches!(**a, Expr::Const(_));
                        super::simd::ScalarOpFrom { f: *f, src, out: &mut x, c: *c, swap }.run();
                        return Ok(Buf::F(x));
                    }
                    (_, Expr::Const(c)) if !matches!(**a, Expr::Const(_)) => {
                        let mut x = eval_block(a, inp, start, end)?.into_f();
                        scalar_op(*f, &mut x, *c, false);
                        return Ok(round_f32(Buf::F(x), out));
                    }
                    (Expr::Const(c), _) if !matches!(**b, Expr::Const(_)) => {
                        let mut x = eval_block(b, inp, start, end)?.into_f();
                        scalar_op(*f, &mut x, *c, true);
                        return Ok(round_f32(Buf::F(x), out));
                    }
                    _ => {}
                }
            }
            let (da, db) = (a.dtype(&inp.dtypes)?, b.dtype(&inp.dtypes)?);
            let (va, vb) = (eval_block(a, inp, start, end)?, eval_block(b, inp, start, end)?);
            if f.is_logical() {
                let (x, y) = (va.into_b(), vb.into_b());
                let g: fn(bool, bool) -> bool = if *f == BinaryFn::And { |p, q| p & q } else { |p, q| p | q };
                return Ok(Buf::B(x.into_iter().zip(y).map(|(p, q)| g(p, q)).collect()));
            }
            // the class operands meet in
            let float = da.is_float()
                || db.is_float()
                || matches!(**a, Expr::Const(_))
                || matches!(**b, Expr::Const(_))
                || out.is_float();
            if f.is_comparison() {
                return Ok(Buf::B(if float {
                    cmp(*f, &va.into_f(), &vb.into_f())
                } else {
                    cmp(*f, &va.into_i(), &vb.into_i())
                }));
            }
            if float {
                let (mut x, y) = (va.into_f(), vb.into_f());
                super::simd::BinaryOp { f: *f, x: &mut x, y: &y }.run();
                round_f32(Buf::F(x), out)
            } else {
                let (mut x, y) = (va.into_i(), vb.into_i());
                if *f == BinaryFn::Pow && y.iter().any(|&q| q < 0) {
                    return Err(KernelError("integers to negative integer powers are not allowed".into()));
                }
                let g: fn(i64, i64) -> i64 = match f {
                    BinaryFn::Add => i64::wrapping_add,
                    BinaryFn::Sub => i64::wrapping_sub,
                    BinaryFn::Mul => i64::wrapping_mul,
                    _ => |p, q| p.wrapping_pow(q as u32),
                };
                x.iter_mut().zip(&y).for_each(|(p, &q)| *p = wrap_int(g(*p, q), out));
                Buf::I(x)
            }
        }
        Expr::Where(c, a, b) => {
            let out = expr.dtype(&inp.dtypes)?;
            let cond = eval_block(c, inp, start, end)?.into_b();
            let (va, vb) =
                (eval_block(a, inp, start, end)?.into_class(out), eval_block(b, inp, start, end)?.into_class(out));
            match (va, vb) {
                (Buf::F(x), Buf::F(y)) => {
                    Buf::F(cond.iter().zip(x.into_iter().zip(y)).map(|(&c, (p, q))| if c { p } else { q }).collect())
                }
                (Buf::I(x), Buf::I(y)) => {
                    Buf::I(cond.iter().zip(x.into_iter().zip(y)).map(|(&c, (p, q))| if c { p } else { q }).collect())
                }
                (x, y) => {
                    let (x, y) = (x.into_b(), y.into_b());
                    Buf::B(cond.iter().zip(x.into_iter().zip(y)).map(|(&c, (p, q))| if c { p } else { q }).collect())
                }
            }
        }
    })
}

fn scalar_op(f: BinaryFn, x: &mut [f64], c: f64, swap: bool) {
    super::simd::ScalarOp { f, x, c, swap }.run()
}

fn round_f32(b: Buf, d: DType) -> Buf {
    match (b, d) {
        (Buf::F(v), DType::Float32) => Buf::F(v.into_iter().map(|x| x as f32 as f64).collect()),
        (b, _) => b,
    }
}

fn cmp<T: PartialOrd + PartialEq + Copy>(f: BinaryFn, x: &[T], y: &[T]) -> Vec<bool> {
    let g: fn(&T, &T) -> bool = match f {
        BinaryFn::Gt => |p, q| p > q,
        BinaryFn::Lt => |p, q| p < q,
        BinaryFn::Ge => |p, q| p >= q,
        BinaryFn::Le => |p, q| p <= q,
        BinaryFn::Eq => |p, q| p == q,
        _ => |p, q| p != q,
    };
    x.iter().zip(y).map(|(p, q)| g(p, q)).collect()
}

/// The shape an expression produces: its inputs and its fused random leaves
/// (which have the chain's shape) broadcast together, as numpy would.
pub fn expr_shape(expr: &Expr, inputs: &[&TensorData]) -> Result<Vec<usize>, KernelError> {
    let mut shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    shapes.extend(expr.random_shape());
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; ndim];
    for s in &shapes {
        for (o, &n) in out[ndim - s.len()..].iter_mut().zip(s.iter()) {
            *o = match (*o, n) {
                (1, n) => n,
                (o, 1) => o,
                (o, n) if o == n => o,
                _ => return Err(KernelError(format!("cannot broadcast chunk shapes {shapes:?} together"))),
            };
        }
    }
    Ok(out)
}

/// Evaluate an expression into a new tensor of `dtype` and `shape`.
pub fn map(expr: &Expr, inputs: &[&TensorData], shape: &[usize], dtype: DType) -> Result<TensorData, KernelError> {
    let inp = Inputs::new(inputs, shape)?;
    let total: usize = shape.iter().product();
    fn fill<T: Element>(expr: &Expr, inp: &Inputs, shape: &[usize], total: usize) -> Result<TensorData, KernelError> {
        let mut out: Vec<T> = Vec::with_capacity(total);
        let mut start = 0;
        while start < total {
            let end = (start + BLOCK).min(total);
            match eval_block(expr, inp, start, end)? {
                Buf::F(v) => out.extend(v.into_iter().map(T::from_f64)),
                Buf::I(v) => out.extend(v.into_iter().map(T::from_i64)),
                Buf::B(v) => out.extend(v.into_iter().map(T::from_bool)),
            }
            start = end;
        }
        Ok(T::wrap(ArrayD::from_shape_vec(IxDyn(shape), out)?))
    }
    with_dtype!(dtype, T => fill::<T>(expr, &inp, shape, total))
}
