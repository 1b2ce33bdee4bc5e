//! Tensors: `use mars::tensor as mt;`.
//!
//! Every method builds a new lazy node; invalid operations (shape mismatch,
//! bad axis …) are reported by `execute` with the shapes involved.
//!
//! Arithmetic (`+ - * /`, unary `-`) mixes tensors, references and `f64` with
//! numpy broadcasting; reductions give 0-d tensors (or drop one axis with the
//! `_axis` forms). Fetched values are [`TensorData`], printed like numpy's repr
//! and converted to ndarray arrays with `try_from`:
//!
//! ```
//! use mars::ndarray::{arr0, arr1, arr2, ArrayD};
//! use mars::tensor as mt;
//!
//! # fn main() -> mars::Result<()> {
//! let sess = mars::new_session()?;
//! let a = mt::tensor(arr2(&[[1.0, 2.0], [3.0, 4.0]])).rechunk(1); // four 1x1 chunks
//! let b = (&a + 1.0) * 2.0 - mt::ones(&[2]); // nothing has run yet
//! let v = b.execute_in(&sess)?.fetch_in(&sess)?;
//! assert_eq!(v.to_string(), "array([[3., 5.],\n       [7., 9.]])");
//!
//! let total = a.sum().execute_in(&sess)?.fetch_in(&sess)?;
//! assert_eq!(ArrayD::<f64>::try_from(total)?, arr0(10.0).into_dyn());
//! let means = a.mean_axis(0).execute_in(&sess)?.fetch_in(&sess)?;
//! assert_eq!(ArrayD::<f64>::try_from(means)?, arr1(&[2.0, 3.0]).into_dyn());
//! # Ok(())
//! # }
//! ```
//!
//! Matrix products, slicing (ndarray's `s![]`) and boolean masks; a filtered
//! tensor's length is unknown (`None`) until it has been executed:
//!
//! ```
//! use mars::ndarray::{arr1, arr2, s, ArrayD};
//! use mars::tensor as mt;
//!
//! # fn main() -> mars::Result<()> {
//! let sess = mars::new_session()?;
//! let m = mt::arange(0.0, 6.0, 1.0).reshape(&[2, 3]); // [[0, 1, 2], [3, 4, 5]]
//! let p = m.dot(&m.t());
//! assert_eq!(ArrayD::<f64>::try_from(p.execute_in(&sess)?.fetch_in(&sess)?)?, arr2(&[[5.0, 14.0], [14.0, 50.0]]).into_dyn());
//! let corner = m.slice(s![1.., ..2]);
//! assert_eq!(corner.shape(), [Some(1), Some(2)]);
//! assert_eq!(ArrayD::<f64>::try_from(corner.execute_in(&sess)?.fetch_in(&sess)?)?, arr2(&[[3.0, 4.0]]).into_dyn());
//!
//! let x = mt::arange(0.0, 10.0, 1.0).rechunk(4);
//! let big = x.filter(&x.gt(6.5));
//! assert_eq!(big.shape(), [None]); // unknown until run
//! let v = big.execute_in(&sess)?.fetch_in(&sess)?;
//! assert_eq!(ArrayD::<f64>::try_from(v)?, arr1(&[7.0, 8.0, 9.0]).into_dyn());
//! assert_eq!(big.shape(), [Some(3)]); // learnt by executing
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::node::{Node, Payload};
use mars_backends::ChunkData;
use mars_ir::op::Distribution;
use mars_ir::{BinaryFn, Expr, Key, Meta, Op, ReduceFn, SliceElem, TensorOp, UnaryFn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use mars_ir::{DType, TensorData};

/// A lazy n-dimensional array: a handle on a node of the expression graph.
/// Cloning is cheap (a shared node); the result a session holds for it is
/// released when the last handle is dropped.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) node: Node,
}

crate::node::tileable_handle!(Tensor, TensorData, |d, _| match d {
    ChunkData::Tensor(t) => Ok(t),
    other => Err(Error::Invalid(format!("expected a tensor result, got {other:?}"))),
});

/// Chunk sizes: one for every axis, or one per axis.
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkSpec {
    /// The same size along every axis (`t.rechunk(1000)`).
    All(usize),
    /// One size per axis (`t.rechunk(&[1000, 50])`).
    PerAxis(Vec<usize>),
}

impl From<usize> for ChunkSpec {
    fn from(n: usize) -> Self {
        ChunkSpec::All(n)
    }
}
impl From<&[usize]> for ChunkSpec {
    fn from(v: &[usize]) -> Self {
        ChunkSpec::PerAxis(v.to_vec())
    }
}
impl<const N: usize> From<&[usize; N]> for ChunkSpec {
    fn from(v: &[usize; N]) -> Self {
        ChunkSpec::PerAxis(v.to_vec())
    }
}
impl From<Vec<usize>> for ChunkSpec {
    fn from(v: Vec<usize>) -> Self {
        ChunkSpec::PerAxis(v)
    }
}

/// The right-hand side of a comparison or arithmetic op: a tensor or a scalar.
#[derive(Clone, Debug)]
pub enum Operand {
    /// A tensor, broadcast against the other side as in numpy.
    Tensor(Tensor),
    /// A number, applied to every element.
    Scalar(f64),
}

impl From<f64> for Operand {
    fn from(v: f64) -> Self {
        Operand::Scalar(v)
    }
}
impl From<i32> for Operand {
    fn from(v: i32) -> Self {
        Operand::Scalar(v as f64)
    }
}
impl From<Tensor> for Operand {
    fn from(t: Tensor) -> Self {
        Operand::Tensor(t)
    }
}
impl From<&Tensor> for Operand {
    fn from(t: &Tensor) -> Self {
        Operand::Tensor(t.clone())
    }
}

fn op(t: TensorOp, inputs: Vec<Node>) -> Tensor {
    Tensor { node: Node::new(Op::Tensor(t), inputs) }
}

fn invalid(msg: String) -> Tensor {
    let err = Error::Invalid(msg);
    let op = Op::Tensor(TensorOp::Full { shape: vec![], value: f64::NAN, dtype: DType::Float64, chunks: None });
    let key = Key::of(&(err.to_string(), &op), &[]);
    Tensor { node: Node::with_meta(key, op, vec![], Err(err)) }
}

/// A tensor from user data (`ArrayD`/`Array1`/`Array2` of f64, f32, i64, i32, bool …).
/// The graph refers to the data by a hash of its bytes; a session puts the
/// data into its backend once, before the first graph reading it runs.
pub fn tensor(data: impl Into<TensorData>) -> Tensor {
    let data = data.into().cast_standard();
    let (shape, dtype) = (data.shape().to_vec(), data.dtype());
    match Payload::of(ChunkData::Tensor(data)) {
        Ok(payload) => literal(payload, shape, dtype, None),
        Err(e) => invalid(e.to_string()),
    }
}

fn literal(payload: Arc<Payload>, shape: Vec<usize>, dtype: DType, chunks: Option<Vec<usize>>) -> Tensor {
    let op = Op::Tensor(TensorOp::Literal { data: payload.key, shape, dtype, chunks });
    Tensor { node: Node::with_payload(op, payload) }
}

trait Standard {
    fn cast_standard(self) -> Self;
}
impl Standard for TensorData {
    fn cast_standard(self) -> Self {
        mars_ir::map_tensor!(self, a => a.as_standard_layout().into_owned())
    }
}

/// `numpy.full(shape, value)`: float64, generated chunk by chunk (never
/// materialised whole).
pub fn full(shape: &[usize], value: f64) -> Tensor {
    op(TensorOp::Full { shape: shape.to_vec(), value, dtype: DType::Float64, chunks: None }, vec![])
}
/// `numpy.ones(shape)`: float64.
pub fn ones(shape: &[usize]) -> Tensor {
    full(shape, 1.0)
}
/// `numpy.zeros(shape)`: float64.
pub fn zeros(shape: &[usize]) -> Tensor {
    full(shape, 0.0)
}

/// `numpy.arange(start, stop, step)` (float64). A zero or non-finite step, or
/// non-finite bounds, is an error reported by `execute`.
pub fn arange(start: f64, stop: f64, step: f64) -> Tensor {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
        return invalid(format!("arange({start}, {stop}, {step}): step must be finite and non-zero, bounds finite"));
    }
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    op(TensorOp::Arange { start, step, n, chunks: None }, vec![])
}

/// Join tensors along an existing axis.
pub fn concatenate(ts: &[&Tensor], axis: usize) -> Tensor {
    op(TensorOp::Concatenate { axis }, ts.iter().map(|t| t.node.clone()).collect())
}

/// Element-wise choice: `a` where `cond`, else `b` (broadcasting).
pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    let expr = Expr::Where(Box::new(Expr::Input(0)), Box::new(Expr::Input(1)), Box::new(Expr::Input(2)));
    op(TensorOp::Map { expr }, vec![cond.node.clone(), a.node.clone(), b.node.clone()])
}

pub mod random {
    //! Random tensors from counter-based streams: the same seed gives the same
    //! numbers for any chunking and any number of threads.
    use super::*;

    fn fresh_seed() -> u64 {
        let mut buf = [0u8; 8];
        if getrandom::getrandom(&mut buf).is_err() {
            // no OS randomness: fall back to time and a counter, still fresh per call
            static C: AtomicU64 = AtomicU64::new(0);
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            return t ^ C.fetch_add(0x9e3779b97f4a7c15, Ordering::Relaxed);
        }
        u64::from_le_bytes(buf)
    }

    fn gen(seed: u64, dist: Distribution, shape: &[usize]) -> Tensor {
        op(TensorOp::Random { seed, dist, shape: shape.to_vec(), chunks: None }, vec![])
    }

    /// Uniform on [0, 1), a fresh seed per call.
    pub fn rand(shape: &[usize]) -> Tensor {
        gen(fresh_seed(), Distribution::Uniform, shape)
    }
    /// Standard normal, a fresh seed per call.
    pub fn randn(shape: &[usize]) -> Tensor {
        gen(fresh_seed(), Distribution::Normal, shape)
    }

    /// numpy's `RandomState`: a seed, advanced by each call.
    #[derive(Debug)]
    pub struct RandomState {
        seed: u64,
        calls: AtomicU64,
    }

    impl RandomState {
        /// `numpy.random.RandomState(seed)`: the same seed gives the same
        /// tensors, call after call.
        pub fn new(seed: u64) -> RandomState {
            RandomState { seed, calls: AtomicU64::new(0) }
        }
        fn next_seed(&self) -> u64 {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            mars_backends::kernels::random::bits(self.seed, n)
        }
        /// Uniform on [0, 1), float64.
        pub fn rand(&self, shape: &[usize]) -> Tensor {
            gen(self.next_seed(), Distribution::Uniform, shape)
        }
        /// Standard normal, float64.
        pub fn randn(&self, shape: &[usize]) -> Tensor {
            gen(self.next_seed(), Distribution::Normal, shape)
        }
        /// Integers uniform on [low, high), int64.
        pub fn randint(&self, low: i64, high: i64, shape: &[usize]) -> Tensor {
            gen(self.next_seed(), Distribution::RandInt { low, high }, shape)
        }
    }
}

impl Tensor {
    /// Lengths per axis; `None` where unknown until executed (after a filter).
    ///
    /// An invalid tensor (its construction failed; `execute` reports why) has
    /// no shape and returns `[]`, which reads like a 0-d tensor: use
    /// [`try_shape`](Self::try_shape) or [`error`](Self::error) to tell them apart.
    pub fn shape(&self) -> Vec<Option<usize>> {
        self.node.meta().shape().iter().map(|d| d.known()).collect()
    }

    /// Like [`shape`](Self::shape), but an invalid tensor gives its
    /// construction error (the one `execute` would report).
    ///
    /// ```
    /// use mars::tensor as mt;
    ///
    /// let ok = mt::ones(&[3, 2]).sum_axis(1);
    /// assert_eq!(ok.try_shape().unwrap(), [Some(3)]);
    /// let bad = mt::ones(&[3, 2]) + mt::ones(&[4]);
    /// assert_eq!(bad.shape(), []); // looks 0-d
    /// let err = bad.try_shape().unwrap_err();
    /// assert_eq!(err.to_string(), "operands could not be broadcast together with shapes (3, 2) (4,)");
    /// assert_eq!(bad.error(), Some(err));
    /// ```
    pub fn try_shape(&self) -> Result<Vec<Option<usize>>> {
        self.node.check()?;
        Ok(self.shape())
    }

    /// The construction error of this tensor or of one it is built from
    /// (reported by `execute`); `None` if it is valid.
    pub fn error(&self) -> Option<Error> {
        self.node.check().err()
    }

    /// Number of axes (0 for an invalid tensor).
    pub fn ndim(&self) -> usize {
        self.node.meta().ndim()
    }
    /// Element type, following numpy's promotion rules (float64 for an invalid tensor).
    pub fn dtype(&self) -> DType {
        self.node.meta().dtype().unwrap_or(DType::Float64)
    }

    /// New chunk sizes. Right after a creation op this changes how the data is
    /// generated instead of adding a rechunk step.
    pub fn rechunk(&self, chunk: impl Into<ChunkSpec>) -> Tensor {
        let sizes = match chunk.into() {
            ChunkSpec::All(n) => vec![n; self.ndim()],
            ChunkSpec::PerAxis(v) => v,
        };
        if self.node.inputs().is_empty() {
            let folded = match self.node.op() {
                Op::Tensor(TensorOp::Full { shape, value, dtype, .. }) => Some(TensorOp::Full {
                    shape: shape.clone(),
                    value: *value,
                    dtype: *dtype,
                    chunks: Some(sizes.clone()),
                }),
                Op::Tensor(TensorOp::Arange { start, step, n, .. }) => {
                    Some(TensorOp::Arange { start: *start, step: *step, n: *n, chunks: Some(sizes.clone()) })
                }
                Op::Tensor(TensorOp::Random { seed, dist, shape, .. }) => Some(TensorOp::Random {
                    seed: *seed,
                    dist: *dist,
                    shape: shape.clone(),
                    chunks: Some(sizes.clone()),
                }),
                Op::Tensor(TensorOp::Literal { shape, dtype, .. }) => {
                    if let Some(p) = self.node.payload() {
                        return literal(p.clone(), shape.clone(), *dtype, Some(sizes));
                    }
                    None
                }
                _ => None,
            };
            if let Some(t) = folded {
                return op(t, vec![]);
            }
        }
        op(TensorOp::Rechunk { chunks: sizes }, vec![self.node.clone()])
    }

    /// Cast the elements to `dtype` (`numpy.ndarray.astype`).
    pub fn astype(&self, dtype: DType) -> Tensor {
        self.map1(Expr::Cast(dtype, Box::new(Expr::Input(0))))
    }

    fn map1(&self, expr: Expr) -> Tensor {
        op(TensorOp::Map { expr }, vec![self.node.clone()])
    }
    fn unary(&self, f: UnaryFn) -> Tensor {
        self.map1(Expr::unary(f, Expr::Input(0)))
    }
    pub(crate) fn binary(&self, f: BinaryFn, rhs: Operand, swap: bool) -> Tensor {
        match rhs {
            Operand::Scalar(c) => {
                let (a, b) = if swap { (Expr::Const(c), Expr::Input(0)) } else { (Expr::Input(0), Expr::Const(c)) };
                self.map1(Expr::binary(f, a, b))
            }
            Operand::Tensor(t) => {
                let (a, b) = if swap { (t.node, self.node.clone()) } else { (self.node.clone(), t.node) };
                op(TensorOp::Map { expr: Expr::binary(f, Expr::Input(0), Expr::Input(1)) }, vec![a, b])
            }
        }
    }

    /// Element-wise e^x.
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryFn::Exp)
    }
    /// Element-wise natural logarithm.
    pub fn log(&self) -> Tensor {
        self.unary(UnaryFn::Log)
    }
    /// Element-wise square root.
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryFn::Sqrt)
    }
    /// Element-wise absolute value.
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryFn::Abs)
    }
    /// Logical not of a bool tensor.
    pub fn not(&self) -> Tensor {
        self.unary(UnaryFn::Not)
    }
    /// Element-wise power `x ** e`.
    pub fn pow(&self, e: f64) -> Tensor {
        self.binary(BinaryFn::Pow, Operand::Scalar(e), false)
    }
    /// Element-wise `self > rhs` (a tensor or a number), a bool tensor.
    pub fn gt(&self, rhs: impl Into<Operand>) -> Tensor {
        self.binary(BinaryFn::Gt, rhs.into(), false)
    }
    /// Element-wise `self < rhs` (a tensor or a number), a bool tensor.
    pub fn lt(&self, rhs: impl Into<Operand>) -> Tensor {
        self.binary(BinaryFn::Lt, rhs.into(), false)
    }
    /// Element-wise `self >= rhs` (a tensor or a number), a bool tensor.
    pub fn ge(&self, rhs: impl Into<Operand>) -> Tensor {
        self.binary(BinaryFn::Ge, rhs.into(), false)
    }
    /// Element-wise `self <= rhs` (a tensor or a number), a bool tensor.
    pub fn le(&self, rhs: impl Into<Operand>) -> Tensor {
        self.binary(BinaryFn::Le, rhs.into(), false)
    }
    /// Element-wise `self == rhs` (a tensor or a number), a bool tensor.
    pub fn eq(&self, rhs: impl Into<Operand>) -> Tensor {
        self.binary(BinaryFn::Eq, rhs.into(), false)
    }
    /// Element-wise `self != rhs` (a tensor or a number), a bool tensor.
    pub fn ne(&self, rhs: impl Into<Operand>) -> Tensor {
        self.binary(BinaryFn::Ne, rhs.into(), false)
    }

    fn reduce(&self, func: ReduceFn, axis: Option<usize>) -> Tensor {
        let axes = match axis {
            Some(a) => vec![a],
            None => (0..self.ndim()).collect(),
        };
        op(TensorOp::Reduce { func, axes }, vec![self.node.clone()])
    }

    /// Matrix product (1-D and 2-D operands as `numpy.dot`).
    pub fn dot(&self, rhs: &Tensor) -> Tensor {
        op(TensorOp::Dot, vec![self.node.clone(), rhs.node.clone()])
    }
    /// Reverse the axes.
    pub fn t(&self) -> Tensor {
        self.transpose(&(0..self.ndim()).rev().collect::<Vec<_>>())
    }
    /// Permute the axes: axis `i` of the result is axis `axes[i]` of `self`.
    pub fn transpose(&self, axes: &[usize]) -> Tensor {
        op(TensorOp::Transpose { axes: axes.to_vec() }, vec![self.node.clone()])
    }
    /// The same elements in row-major order, in a new shape of the same size.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        op(TensorOp::Reshape { shape: shape.to_vec() }, vec![self.node.clone()])
    }
    /// `t.slice(ndarray::s![..10, 2..;2])`, with ndarray's semantics.
    pub fn slice(&self, info: impl AsRef<[ndarray::SliceInfoElem]>) -> Tensor {
        let elems: Vec<SliceElem> = info.as_ref().iter().map(SliceElem::from).collect();
        op(TensorOp::Slice { elems }, vec![self.node.clone()])
    }
    /// Boolean mask (same shape, or 1-D over axis 0); the length is unknown until run.
    pub fn filter(&self, mask: &Tensor) -> Tensor {
        op(TensorOp::Filter, vec![self.node.clone(), mask.node.clone()])
    }
}

macro_rules! reductions {
    ($($name:ident $axis_name:ident => $f:expr;)*) => {
        impl Tensor {
            $(
                #[doc = concat!("`", stringify!($name), "` over all axes (a 0-d tensor).")]
                pub fn $name(&self) -> Tensor {
                    self.reduce($f, None)
                }
                #[doc = concat!("`", stringify!($name), "` along one axis.")]
                pub fn $axis_name(&self, axis: usize) -> Tensor {
                    self.reduce($f, Some(axis))
                }
            )*
        }
    };
}

reductions! {
    sum sum_axis => ReduceFn::Sum;
    prod prod_axis => ReduceFn::Prod;
    min min_axis => ReduceFn::Min;
    max max_axis => ReduceFn::Max;
    mean mean_axis => ReduceFn::Mean;
    var var_axis => ReduceFn::Var { ddof: 0 };
    std std_axis => ReduceFn::Std { ddof: 0 };
    argmin argmin_axis => ReduceFn::ArgMin;
    argmax argmax_axis => ReduceFn::ArgMax;
}

macro_rules! arith {
    ($trait:ident, $method:ident, $f:expr) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($f, Operand::Tensor(rhs.clone()), false)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                (&self).binary($f, Operand::Tensor(rhs), false)
            }
        }
        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                (&self).binary($f, Operand::Tensor(rhs.clone()), false)
            }
        }
        impl std::ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($f, Operand::Tensor(rhs), false)
            }
        }
        impl std::ops::$trait<f64> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                self.binary($f, Operand::Scalar(rhs), false)
            }
        }
        impl std::ops::$trait<f64> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                (&self).binary($f, Operand::Scalar(rhs), false)
            }
        }
        impl std::ops::$trait<&Tensor> for f64 {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                rhs.binary($f, Operand::Scalar(self), true)
            }
        }
        impl std::ops::$trait<Tensor> for f64 {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                (&rhs).binary($f, Operand::Scalar(self), true)
            }
        }
    };
}

arith!(Add, add, BinaryFn::Add);
arith!(Sub, sub, BinaryFn::Sub);
arith!(Mul, mul, BinaryFn::Mul);
arith!(Div, div, BinaryFn::Div);

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(UnaryFn::Neg)
    }
}
impl std::ops::Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(UnaryFn::Neg)
    }
}

/// The meta of a tensor as the IR sees it (for tests and tools).
pub fn meta_of(t: &Tensor) -> Meta {
    t.node.meta()
}
