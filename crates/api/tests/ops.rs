//! Numeric correctness corpus for `mars::tensor`.
//!
//! Every tensor op is checked against a plain `ndarray` reference computed on
//! one in-memory array. Inputs are small, seeded (an LCG) and run under at
//! least four chunkings: one chunk, chunk sizes 2 and 3 (which don't divide
//! the shapes used) and an uneven per-axis mix such as `[4, 1]` for `(7, 5)`.
//! Operands of one op get *different* chunkings, so unify/refine runs too.
//! Every fetched result must also agree with the tensor's inferred dtype and
//! shape; floats compare with a relative tolerance, ints and bools exactly.
//!
//! Sections:
//! - helpers: seeded inputs, chunkings, execute-and-compare
//! - element-wise: `+ - * /` (tensor and f64 on both sides), unary ops, `pow`,
//!   comparisons, `astype`, numpy dtype promotion, integer wrap-around,
//!   broadcasting (also of reduction results), `where_`
//! - reductions: sum/prod/min/max/mean/var/std/argmin/argmax, full and per
//!   axis (2-D, 3-D, 1-D with deep combine trees), on f64, f32, i64, i32 and
//!   bool data; NaN propagation; first-occurrence ties
//! - linear algebra and layout: `dot`, `t`/`transpose`, `reshape` across chunk
//!   boundaries, `slice` with `s![]` (steps, negative steps, indices, new
//!   axes), `concatenate`, `rechunk`
//! - `filter` (same-shape and row masks) and further ops on its
//!   unknown-length result (reductions, reshape, slice, dot, concatenate, …)
//! - errors: invalid ops fail with numpy-like messages instead of panicking
//! - creation: `mt::tensor` from arrays of each dtype, `arange`,
//!   `ones`/`zeros`/`full`, `RandomState` and `mt::random`; automatic chunking
//!   by the session's byte budget
//! - properties (proptest): any chunking gives the one-chunk result; thread
//!   counts 1, 2 and 4 give bit-identical results; random slices, reshapes,
//!   dot, concatenate and row filters match ndarray

use mars::ndarray::{arr0, s, Array1, Array2, ArrayD, ArrayView1, Axis, Ix1, Ix2, IxDyn, NewAxis, SliceInfoElem, Zip};
use mars::prelude::{Session, Tileable};
use mars::tensor as mt;
use mt::random::RandomState;
use mt::{DType, Tensor, TensorData};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

// ============================================================ helpers: inputs

/// A small seeded generator (64-bit LCG with an output mix): reproducible inputs.
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Lcg {
        let mut g = Lcg(seed ^ 0x853c_49e6_748f_ea9b);
        g.next();
        g
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let z = self.0;
        (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (z >> 32)
    }
    /// Uniform on [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer on [lo, hi).
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + ((self.next() >> 16) % (hi - lo) as u64) as i64
    }
}

fn fill<T>(shape: &[usize], seed: u64, mut f: impl FnMut(&mut Lcg) -> T) -> ArrayD<T> {
    let mut g = Lcg::new(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || f(&mut g))
}

fn uniform(shape: &[usize], seed: u64, lo: f64, hi: f64) -> ArrayD<f64> {
    fill(shape, seed, |g| lo + (hi - lo) * g.unit())
}

/// Floats on [-2, 2).
fn signed(shape: &[usize], seed: u64) -> ArrayD<f64> {
    uniform(shape, seed, -2.0, 2.0)
}

/// Floats on [0.5, 2.5): safe for log, sqrt, division.
fn positive(shape: &[usize], seed: u64) -> ArrayD<f64> {
    uniform(shape, seed, 0.5, 2.5)
}

/// Integers on [lo, hi).
fn ints(shape: &[usize], seed: u64, lo: i64, hi: i64) -> ArrayD<i64> {
    fill(shape, seed, |g| g.int(lo, hi))
}

/// Small integers as floats: plenty of ties for comparisons and arg-reductions.
fn small_floats(shape: &[usize], seed: u64) -> ArrayD<f64> {
    ints(shape, seed, -2, 3).mapv(|v| v as f64)
}

fn bools(shape: &[usize], seed: u64) -> ArrayD<bool> {
    fill(shape, seed, |g| g.int(0, 2) == 1)
}

fn f_of_i(a: &ArrayD<i64>) -> ArrayD<f64> {
    a.mapv(|v| v as f64)
}

fn f_of_b(a: &ArrayD<bool>) -> ArrayD<f64> {
    a.mapv(|v| v as u8 as f64)
}

fn to2(a: &ArrayD<f64>) -> Array2<f64> {
    a.clone().into_dimensionality::<Ix2>().expect("a 2-d array")
}

fn to1(a: &ArrayD<f64>) -> Array1<f64> {
    a.clone().into_dimensionality::<Ix1>().expect("a 1-d array")
}

/// `a` reshaped in C (logical) order.
fn reshaped(a: &ArrayD<f64>, shape: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), a.iter().copied().collect()).expect("same size")
}

/// The elements of `a` where `mask` is true, in C order.
fn masked(a: &ArrayD<f64>, mask: &ArrayD<bool>) -> ArrayD<f64> {
    let v: Vec<f64> = a.iter().zip(mask.iter()).filter(|(_, &m)| m).map(|(&x, _)| x).collect();
    ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-d")
}

/// The rows (axis 0) of `a` where `mask` is true.
fn masked_rows(a: &ArrayD<f64>, mask: &ArrayD<bool>) -> ArrayD<f64> {
    let idx: Vec<usize> = mask.iter().enumerate().filter(|(_, &m)| m).map(|(i, _)| i).collect();
    a.select(Axis(0), &idx)
}

/// numpy broadcasting of two arrays through `f` (bool results as 0/1).
fn broadcast2(a: &ArrayD<f64>, b: &ArrayD<f64>, f: impl Fn(f64, f64) -> f64) -> ArrayD<f64> {
    let nd = a.ndim().max(b.ndim());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; nd - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (sa, sb) = (pad(a.shape()), pad(b.shape()));
    let out: Vec<usize> = sa.iter().zip(&sb).map(|(&x, &y)| if x == 1 { y } else { x }).collect();
    let va = a.broadcast(IxDyn(&out)).expect("broadcastable");
    let vb = b.broadcast(IxDyn(&out)).expect("broadcastable");
    Zip::from(&va).and(&vb).map_collect(|&x, &y| f(x, y))
}

/// A slice spec as a plain list (so one spec drives both ndarray and mars).
fn elems(info: impl AsRef<[SliceInfoElem]>) -> Vec<SliceInfoElem> {
    info.as_ref().to_vec()
}

/// `start..end;step` as a slice element (also the reversed, empty ranges `s![]` rejects).
fn span(start: isize, end: Option<isize>, step: isize) -> SliceInfoElem {
    SliceInfoElem::Slice { start, end, step }
}

/// `a` sliced by `spec` with ndarray (which wants every axis named: trailing
/// axes the spec leaves out are taken whole, as numpy and mars do).
fn sliced(a: &ArrayD<f64>, spec: &[SliceInfoElem]) -> ArrayD<f64> {
    let consumed = spec.iter().filter(|e| !matches!(e, SliceInfoElem::NewAxis)).count();
    let mut full = spec.to_vec();
    full.extend(std::iter::repeat_n(span(0, None, 1), a.ndim().saturating_sub(consumed)));
    a.slice(full.as_slice()).to_owned()
}

// ======================================================= helpers: chunkings

/// Chunkings of `shape`: one chunk, size 2, size 3 and an uneven per-axis mix
/// (half the axis on even axes, 1 on odd ones: `[4, 1]` for `(7, 5)`).
fn chunkings(shape: &[usize]) -> Vec<Vec<usize>> {
    let whole: Vec<usize> = shape.iter().map(|&n| n.max(1)).collect();
    let mixed: Vec<usize> =
        shape.iter().enumerate().map(|(i, &n)| if i % 2 == 0 { n.div_ceil(2).max(1) } else { 1 }).collect();
    vec![whole, vec![2; shape.len()], vec![3; shape.len()], mixed]
}

/// Chunkings plus all-ones (many chunks: multi-level reduction trees).
fn many_chunkings(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut v = chunkings(shape);
    v.push(vec![1; shape.len()]);
    v
}

/// Pairs of chunkings for two operands of shapes `sa` and `sb`; the second is
/// shifted by one so the operands never share a chunking (except by accident).
fn chunk_pairs(sa: &[usize], sb: &[usize]) -> Vec<(Vec<usize>, Vec<usize>)> {
    let (ca, cb) = (chunkings(sa), chunkings(sb));
    (0..ca.len()).map(|i| (ca[i].clone(), cb[(i + 1) % cb.len()].clone())).collect()
}

/// A tensor from `data` with chunk sizes `chunks` (folded into the literal).
fn chunked(data: impl Into<TensorData>, chunks: &[usize]) -> Tensor {
    mt::tensor(data).rechunk(chunks.to_vec())
}

// ==================================================== helpers: run, compare

/// Relative tolerance of sums, means, products, variances and dot products.
const RTOL: f64 = 1e-9;
/// Element-wise float results (same operations as the reference: ~exact).
const ELEM: f64 = 1e-12;
/// float32 results computed differently from the f64 reference.
const F32TOL: f64 = 1e-5;

/// A session builder: local, or (when this file is `ops_cluster`'s module)
/// one on a supervisor and two worker processes shared by the tests, so the
/// whole corpus also runs on the cluster.
fn builder() -> mars::SessionBuilder {
    if module_path!().starts_with("ops_cluster") {
        static CLUSTER: std::sync::OnceLock<mars::LocalCluster> = std::sync::OnceLock::new();
        let c = CLUSTER.get_or_init(|| mars::new_cluster(2).expect("a local cluster"));
        Session::builder().address(c.address()).token(c.token())
    } else {
        Session::builder()
    }
}

fn session() -> Session {
    builder().build().expect("a session")
}

fn session_with_threads(n: usize) -> Session {
    builder().threads(n).build().expect("a session")
}

/// `got` is within `rtol` of `want` relative to the larger magnitude (plus a
/// tiny absolute slack for results that cancel to ~0); NaN equals NaN.
fn close(got: f64, want: f64, rtol: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    got == want || (got - want).abs() <= rtol * got.abs().max(want.abs()) + rtol * 1e-3
}

fn compare(got: &ArrayD<f64>, want: &ArrayD<f64>, rtol: f64) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        if !close(g, w, rtol) {
            return Err(format!("at {:?}: got {g:e}, expected {w:e} (rtol {rtol:e})", idx));
        }
    }
    Ok(())
}

/// Execute and fetch `t`; the data must agree with the tensor's dtype and
/// with every length its shape knows.
fn run(s: &Session, t: &Tensor) -> Result<TensorData, String> {
    let d = t.execute_in(s).and_then(|t| t.fetch_in(s)).map_err(|e| format!("execution failed: {e}"))?;
    if d.dtype() != t.dtype() {
        return Err(format!("fetched {} data but the tensor's dtype is {}", d.dtype(), t.dtype()));
    }
    let meta = t.shape();
    if meta.len() != d.shape().len() || meta.iter().zip(d.shape()).any(|(m, &n)| m.is_some_and(|m| m != n)) {
        return Err(format!("fetched shape {:?} but the tensor's shape is {meta:?}", d.shape()));
    }
    Ok(d)
}

/// The values of `d` as f64 (ints and bools convert exactly for the small values used).
fn values(d: &TensorData) -> ArrayD<f64> {
    ArrayD::<f64>::try_from(d.cast(DType::Float64)).expect("a float64 cast")
}

fn try_check(s: &Session, t: &Tensor, dtype: DType, want: &ArrayD<f64>, rtol: f64) -> Result<(), String> {
    let d = run(s, t)?;
    if d.dtype() != dtype {
        return Err(format!("dtype {}, expected {dtype}", d.dtype()));
    }
    compare(&values(&d), want, if dtype.is_float() { rtol } else { 0.0 })
}

/// Execute `t` and compare with `want`: dtype exactly, values within `rtol`
/// for float dtypes and exactly for integer and bool ones.
#[track_caller]
fn check(s: &Session, what: &str, t: &Tensor, dtype: DType, want: &ArrayD<f64>, rtol: f64) {
    if let Err(e) = try_check(s, t, dtype, want, rtol) {
        panic!("{what}: {e}\ntileable graph:\n{}", t.explain());
    }
}

#[track_caller]
fn check_f64(s: &Session, what: &str, t: &Tensor, want: &ArrayD<f64>, rtol: f64) {
    check(s, what, t, DType::Float64, want, rtol);
}

/// Two results agree: dtype, shape, and values (exactly when `rtol` is 0).
fn same(a: &TensorData, b: &TensorData, rtol: f64) -> Result<(), String> {
    if a.dtype() != b.dtype() {
        return Err(format!("dtypes {} and {}", a.dtype(), b.dtype()));
    }
    if rtol == 0.0 && a.dtype().is_float() {
        // bit-for-bit (NaN payloads aside)
        let (x, y) = (values(a), values(b));
        if x.shape() != y.shape() {
            return Err(format!("shapes {:?} and {:?}", x.shape(), y.shape()));
        }
        return match x.iter().zip(y.iter()).position(|(p, q)| p.to_bits() != q.to_bits() && !(p.is_nan() && q.is_nan()))
        {
            Some(i) => {
                Err(format!("element {i} differs: {:e} vs {:e}", x.iter().nth(i).unwrap(), y.iter().nth(i).unwrap()))
            }
            None => Ok(()),
        };
    }
    compare(&values(a), &values(b), if a.dtype().is_float() { rtol } else { 0.0 })
}

// ============================================================ element-wise

#[test]
fn arithmetic_with_tensors_and_scalars_on_both_sides() {
    let s = session();
    let shape = [7, 5];
    let (a, b) = (signed(&shape, 1), positive(&shape, 2));
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (x, y) = (chunked(a.clone(), &ca), chunked(b.clone(), &cb));
        let cases: Vec<(&str, Tensor, ArrayD<f64>)> = vec![
            ("x + y", &x + &y, &a + &b),
            ("x - y", &x - &y, &a - &b),
            ("x * y", &x * &y, &a * &b),
            ("x / y", &x / &y, &a / &b),
            ("y / x", &y / &x, &b / &a),
            ("x + 1.5", &x + 1.5, a.mapv(|v| v + 1.5)),
            ("1.5 + x", 1.5 + &x, a.mapv(|v| 1.5 + v)),
            ("x - 0.25", &x - 0.25, a.mapv(|v| v - 0.25)),
            ("0.25 - x", 0.25 - &x, a.mapv(|v| 0.25 - v)),
            ("x * -3.0", &x * -3.0, a.mapv(|v| v * -3.0)),
            ("-3.0 * x", -3.0 * &x, a.mapv(|v| -3.0 * v)),
            ("x / 4.0", &x / 4.0, a.mapv(|v| v / 4.0)),
            ("4.0 / y", 4.0 / &y, b.mapv(|v| 4.0 / v)),
            ("-x", -&x, a.mapv(|v| -v)),
            ("-(x * y)", -(&x * &y), (&a * &b).mapv(|v| -v)),
            ("owned (x + y) / y - x", (x.clone() + y.clone()) / y.clone() - x.clone(), (&a + &b) / &b - &a),
            ("mixed owned and borrowed", x.clone() * &y + (&x - y.clone()), &a * &b + (&a - &b)),
            (
                "owned scalar ops",
                2.0 * (x.clone() - 1.0) / 3.0 + y.clone() * 0.5,
                (a.mapv(|v| 2.0 * (v - 1.0) / 3.0)) + b.mapv(|v| v * 0.5),
            ),
            (
                "long fused chain",
                ((&x * 2.0 + 1.0) / (&y + 0.5) - 0.75) * &x,
                (a.mapv(|v| v * 2.0 + 1.0) / b.mapv(|v| v + 0.5)).mapv(|v| v - 0.75) * &a,
            ),
            ("x - x (same tensor twice)", &x - &x, ArrayD::zeros(IxDyn(&shape))),
        ];
        for (name, t, want) in &cases {
            check_f64(&s, &format!("{name}, chunks {ca:?} / {cb:?}"), t, want, ELEM);
        }
    }
}

#[test]
fn unary_functions_and_pow() {
    let s = session();
    let shape = [7, 5];
    let (a, b) = (signed(&shape, 3), positive(&shape, 4));
    for c in chunkings(&shape) {
        let (x, y) = (chunked(a.clone(), &c), chunked(b.clone(), &c));
        let cases: Vec<(&str, Tensor, ArrayD<f64>)> = vec![
            ("exp", x.exp(), a.mapv(f64::exp)),
            ("log", y.log(), b.mapv(f64::ln)),
            ("log of negatives is NaN", x.log(), a.mapv(f64::ln)),
            ("sqrt", y.sqrt(), b.mapv(f64::sqrt)),
            ("abs", x.abs(), a.mapv(f64::abs)),
            ("pow 2", x.pow(2.0), a.mapv(|v| v.powf(2.0))),
            ("pow 3 of negatives", x.pow(3.0), a.mapv(|v| v.powf(3.0))),
            ("pow 0.5", y.pow(0.5), b.mapv(|v| v.powf(0.5))),
            ("pow -1.5", y.pow(-1.5), b.mapv(|v| v.powf(-1.5))),
            ("exp(log y)", y.log().exp(), b.mapv(|v| v.ln().exp())),
            ("sqrt(abs x) * -x", x.abs().sqrt() * -&x, a.mapv(|v| v.abs().sqrt() * -v)),
        ];
        for (name, t, want) in &cases {
            check_f64(&s, &format!("{name}, chunks {c:?}"), t, want, ELEM);
        }
    }
}

#[test]
fn integer_and_float32_arithmetic_follow_numpy_dtypes() {
    let s = session();
    let shape = [6, 5];
    let (ai, bi) = (ints(&shape, 5, -9, 10), ints(&shape, 6, 1, 7));
    let (ai32, bi32) = (ai.mapv(|v| v as i32), bi.mapv(|v| v as i32));
    let (af, bf) = (f_of_i(&ai), f_of_i(&bi));
    let a32 = signed(&shape, 7).mapv(|v| v as f32);
    let b32 = positive(&shape, 8).mapv(|v| v as f32);
    let (a32f, b32f) = (a32.mapv(|v| v as f64), b32.mapv(|v| v as f64));
    let bd = positive(&shape, 9);
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (xi, yi) = (chunked(ai.clone(), &ca), chunked(bi.clone(), &cb));
        let (xi32, yi32) = (chunked(ai32.clone(), &ca), chunked(bi32.clone(), &cb));
        let (x32, y32) = (chunked(a32.clone(), &ca), chunked(b32.clone(), &cb));
        let yd = chunked(bd.clone(), &cb);
        let what = |n: &str| format!("{n}, chunks {ca:?} / {cb:?}");
        use DType::*;
        let cases: Vec<(&str, Tensor, DType, ArrayD<f64>, f64)> = vec![
            ("i64 + i64", &xi + &yi, Int64, &af + &bf, 0.0),
            ("i64 - i64", &xi - &yi, Int64, &af - &bf, 0.0),
            ("i64 * i64", &xi * &yi, Int64, &af * &bf, 0.0),
            ("i64 / i64 is float64", &xi / &yi, Float64, &af / &bf, ELEM),
            ("-i64", -&xi, Int64, af.mapv(|v| -v), 0.0),
            ("abs(i64)", xi.abs(), Int64, af.mapv(f64::abs), 0.0),
            ("i64 + 0.5 is float64", &xi + 0.5, Float64, af.mapv(|v| v + 0.5), ELEM),
            ("exp(i64) is float64", xi.exp(), Float64, af.mapv(f64::exp), ELEM),
            ("i64 * f64", &xi * &yd, Float64, &af * &bd, ELEM),
            ("i32 + i32", &xi32 + &yi32, Int32, &af + &bf, 0.0),
            ("i32 * i32", &xi32 * &yi32, Int32, &af * &bf, 0.0),
            ("i32 + i64 is int64", &xi32 + &yi, Int64, &af + &bf, 0.0),
            ("i32 + f32 is float64", &xi32 + &y32, Float64, &af + &b32f, ELEM),
            ("i32 * 2.0 is float64", &xi32 * 2.0, Float64, af.mapv(|v| v * 2.0), ELEM),
            ("f32 + f32", &x32 + &y32, Float32, (&a32 + &b32).mapv(|v| v as f64), 0.0),
            ("f32 * f32", &x32 * &y32, Float32, (&a32 * &b32).mapv(|v| v as f64), 0.0),
            ("f32 / f32", &x32 / &y32, Float32, (&a32 / &b32).mapv(|v| v as f64), 0.0),
            ("f32 * 2.0 stays float32", &x32 * 2.0, Float32, a32.mapv(|v| (v * 2.0) as f64), 0.0),
            ("1.0 - f32 stays float32", 1.0 - &x32, Float32, a32.mapv(|v| (1.0 - v) as f64), 0.0),
            ("sqrt(f32)", y32.sqrt(), Float32, b32.mapv(|v| v.sqrt() as f64), 0.0),
            ("exp(f32)", x32.exp(), Float32, a32f.mapv(f64::exp), F32TOL),
            ("f32 + f64 is float64", &x32 + &yd, Float64, &a32f + &bd, ELEM),
        ];
        for (name, t, dtype, want, rtol) in &cases {
            check(&s, &what(name), t, *dtype, want, *rtol);
        }
    }
}

fn compare_op(t: &Tensor, op: &str, rhs: impl Into<mt::Operand>) -> Tensor {
    match op {
        "gt" => t.gt(rhs),
        "lt" => t.lt(rhs),
        "ge" => t.ge(rhs),
        "le" => t.le(rhs),
        "eq" => t.eq(rhs),
        _ => t.ne(rhs),
    }
}

fn compare_ref(op: &str) -> fn(f64, f64) -> f64 {
    match op {
        "gt" => |x, y| (x > y) as u8 as f64,
        "lt" => |x, y| (x < y) as u8 as f64,
        "ge" => |x, y| (x >= y) as u8 as f64,
        "le" => |x, y| (x <= y) as u8 as f64,
        "eq" => |x, y| (x == y) as u8 as f64,
        _ => |x, y| (x != y) as u8 as f64,
    }
}

const COMPARISONS: [&str; 6] = ["gt", "lt", "ge", "le", "eq", "ne"];

#[test]
fn comparisons_give_bool_tensors() {
    let s = session();
    let shape = [7, 5];
    // small integers as floats, so eq/ne/ge/le see ties
    let (a, b, row) = (small_floats(&shape, 10), small_floats(&shape, 11), small_floats(&[5], 12));
    let (ai, bi) = (ints(&shape, 13, -2, 3), ints(&shape, 14, -2, 3));
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (x, y) = (chunked(a.clone(), &ca), chunked(b.clone(), &cb));
        let r = chunked(row.clone(), &cb[1..]);
        let (xi, yi) = (chunked(ai.clone(), &ca), chunked(bi.clone(), &cb));
        for op in COMPARISONS {
            let f = compare_ref(op);
            let what = |n: &str| format!("{op} {n}, chunks {ca:?} / {cb:?}");
            check(&s, &what("tensor"), &compare_op(&x, op, &y), DType::Bool, &broadcast2(&a, &b, f), 0.0);
            check(&s, &what("f64 scalar"), &compare_op(&x, op, 0.0), DType::Bool, &a.mapv(|v| f(v, 0.0)), 0.0);
            check(&s, &what("i32 scalar"), &compare_op(&x, op, 1), DType::Bool, &a.mapv(|v| f(v, 1.0)), 0.0);
            check(&s, &what("broadcast row"), &compare_op(&x, op, &r), DType::Bool, &broadcast2(&a, &row, f), 0.0);
            check(
                &s,
                &what("i64 vs i64"),
                &compare_op(&xi, op, &yi),
                DType::Bool,
                &broadcast2(&f_of_i(&ai), &f_of_i(&bi), f),
                0.0,
            );
            check(
                &s,
                &what("i64 vs 0.5"),
                &compare_op(&xi, op, 0.5),
                DType::Bool,
                &f_of_i(&ai).mapv(|v| f(v, 0.5)),
                0.0,
            );
            check(
                &s,
                &what("i64 vs f64 tensor"),
                &compare_op(&xi, op, &y),
                DType::Bool,
                &broadcast2(&f_of_i(&ai), &b, f),
                0.0,
            );
        }
    }
}

#[test]
fn astype_casts_like_numpy() {
    let s = session();
    let shape = [7, 5];
    // multiples of 0.75: zeros, negative fractions (truncate toward zero), exact integers
    let a = ints(&shape, 15, -3, 4).mapv(|v| v as f64 * 0.75);
    let bo = bools(&shape, 16);
    let ai = ints(&shape, 17, -5, 5);
    for c in chunkings(&shape) {
        let x = chunked(a.clone(), &c);
        let xb = chunked(bo.clone(), &c);
        let xi = chunked(ai.clone(), &c);
        let what = |n: &str| format!("{n}, chunks {c:?}");
        use DType::*;
        let cases: Vec<(&str, Tensor, DType, ArrayD<f64>)> = vec![
            ("f64 -> int32", x.astype(Int32), Int32, a.mapv(f64::trunc)),
            ("f64 -> int64", x.astype(Int64), Int64, a.mapv(f64::trunc)),
            ("f64 -> float32", x.astype(Float32), Float32, a.mapv(|v| v as f32 as f64)),
            ("f64 -> bool", x.astype(Bool), Bool, a.mapv(|v| (v != 0.0) as u8 as f64)),
            ("f64 -> int64 -> f64", x.astype(Int64).astype(Float64), Float64, a.mapv(f64::trunc)),
            ("f64 -> f64", x.astype(Float64), Float64, a.clone()),
            ("bool -> int64", xb.astype(Int64), Int64, f_of_b(&bo)),
            ("bool -> float64", xb.astype(Float64), Float64, f_of_b(&bo)),
            ("int64 -> bool", xi.astype(Bool), Bool, ai.mapv(|v| (v != 0) as u8 as f64)),
            ("int64 -> float32", xi.astype(Float32), Float32, f_of_i(&ai)),
            ("int64 -> int32", xi.astype(Int32), Int32, f_of_i(&ai)),
            (
                "sum of astype(bool)",
                x.astype(Bool).sum(),
                Int64,
                arr0(a.iter().filter(|&&v| v != 0.0).count() as f64).into_dyn(),
            ),
        ];
        for (name, t, dtype, want) in &cases {
            check(&s, &what(name), t, *dtype, want, 0.0);
        }
    }
}

#[test]
fn broadcasting_across_chunk_grids() {
    let s = session();
    let cases: [(&[usize], &[usize]); 5] =
        [(&[4, 3], &[3]), (&[3], &[4, 3]), (&[4, 1], &[1, 3]), (&[5, 1, 3], &[4, 1]), (&[4, 1], &[5, 1, 3])];
    for (k, (sa, sb)) in cases.iter().enumerate() {
        let (a, b) = (signed(sa, 20 + k as u64), positive(sb, 30 + k as u64));
        for (ca, cb) in chunk_pairs(sa, sb) {
            let (x, y) = (chunked(a.clone(), &ca), chunked(b.clone(), &cb));
            let what = |n: &str| format!("{n}: {sa:?} with {sb:?}, chunks {ca:?} / {cb:?}");
            check_f64(&s, &what("x + y"), &(&x + &y), &broadcast2(&a, &b, |p, q| p + q), ELEM);
            check_f64(&s, &what("y - x"), &(&y - &x), &broadcast2(&b, &a, |p, q| p - q), ELEM);
            check_f64(&s, &what("x * y"), &(&x * &y), &broadcast2(&a, &b, |p, q| p * q), ELEM);
            check_f64(&s, &what("x / y"), &(&x / &y), &broadcast2(&a, &b, |p, q| p / q), ELEM);
            check(&s, &what("x > y"), &x.gt(&y), DType::Bool, &broadcast2(&a, &b, |p, q| (p > q) as u8 as f64), 0.0);
            let prod = broadcast2(&a, &b, |p, q| p * q);
            check_f64(&s, &what("(x * y).sum_axis(0)"), &(&x * &y).sum_axis(0), &prod.sum_axis(Axis(0)), RTOL);
            let w = mt::where_(&x.gt(0.0), &x, &y);
            check_f64(
                &s,
                &what("where_(x > 0, x, y)"),
                &w,
                &broadcast2(&a, &b, |p, q| if p > 0.0 { p } else { q }),
                0.0,
            );
        }
    }
}

#[test]
fn broadcasting_reduction_results_back() {
    let s = session();
    let shape = [7, 5];
    let (a, b) = (signed(&shape, 40), positive(&shape, 41));
    let mean0 = a.mean_axis(Axis(0)).unwrap();
    let rowsum = b.sum_axis(Axis(1)).into_shape_with_order(IxDyn(&[7, 1])).unwrap();
    let mean = a.mean().unwrap();
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (x, y) = (chunked(a.clone(), &ca), chunked(b.clone(), &cb));
        let what = |n: &str| format!("{n}, chunks {ca:?} / {cb:?}");
        check_f64(&s, &what("x - x.mean_axis(0)"), &(&x - &x.mean_axis(0)), &(&a - &mean0), RTOL);
        check_f64(
            &s,
            &what("y / y.sum_axis(1) as a column"),
            &(&y / &y.sum_axis(1).reshape(&[7, 1])),
            &(&b / &rowsum),
            RTOL,
        );
        check_f64(&s, &what("x - x.mean()"), &(&x - &x.mean()), &a.mapv(|v| v - mean), RTOL);
        check_f64(&s, &what("x.mean() + 1"), &(x.mean() + 1.0), &arr0(mean + 1.0).into_dyn(), RTOL);
        let z = (&x - &x.mean_axis(0)).sum_axis(0);
        check_f64(&s, &what("centred columns sum to 0"), &z, &ArrayD::zeros(IxDyn(&[5])), RTOL);
    }
}

#[test]
fn where_selects_with_broadcasting_and_promotion() {
    let s = session();
    let shape = [7, 5];
    let (a, b) = (signed(&shape, 50), positive(&shape, 51));
    let rowmask = bools(&[5], 52);
    let (ai, bi) = (ints(&shape, 53, -4, 5), ints(&shape, 54, -4, 5));
    let pick = |c: &ArrayD<f64>, p: &ArrayD<f64>, q: &ArrayD<f64>| -> ArrayD<f64> {
        let pq = broadcast2(p, q, |x, _| x);
        let qp = broadcast2(q, p, |x, _| x);
        let cc = c.broadcast(IxDyn(pq.shape())).unwrap().to_owned();
        Zip::from(&cc).and(&pq).and(&qp).map_collect(|&c, &x, &y| if c != 0.0 { x } else { y })
    };
    let cond = a.mapv(|v| (v > 0.5) as u8 as f64);
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (x, y) = (chunked(a.clone(), &ca), chunked(b.clone(), &cb));
        let (xi, yi) = (chunked(ai.clone(), &cb), chunked(bi.clone(), &ca));
        let m = chunked(rowmask.clone(), &cb[1..]);
        let c = x.gt(0.5);
        let what = |n: &str| format!("{n}, chunks {ca:?} / {cb:?}");
        check_f64(&s, &what("where_(x > .5, x, y)"), &mt::where_(&c, &x, &y), &pick(&cond, &a, &b), 0.0);
        check_f64(
            &s,
            &what("where_(x > 0, x, -x) is abs"),
            &mt::where_(&x.gt(0.0), &x, &(-&x)),
            &a.mapv(f64::abs),
            0.0,
        );
        check_f64(
            &s,
            &what("broadcast (5,) condition"),
            &mt::where_(&m, &x, &y),
            &pick(&f_of_b(&rowmask), &a, &b),
            0.0,
        );
        check(
            &s,
            &what("i64 branches stay int64"),
            &mt::where_(&c, &xi, &yi),
            DType::Int64,
            &pick(&cond, &f_of_i(&ai), &f_of_i(&bi)),
            0.0,
        );
        check_f64(
            &s,
            &what("i64 / f64 branches promote"),
            &mt::where_(&c, &xi, &y),
            &pick(&cond, &f_of_i(&ai), &b),
            0.0,
        );
        let relu = mt::where_(&x.lt(0.0), &mt::zeros(&[]), &x);
        check_f64(&s, &what("0-d branch"), &relu, &a.mapv(|v| if v < 0.0 { 0.0 } else { v }), 0.0);
    }
}

// ============================================================== reductions

#[derive(Clone, Copy, Debug, PartialEq)]
enum Red {
    Sum,
    Prod,
    Min,
    Max,
    Mean,
    Var,
    Std,
    ArgMin,
    ArgMax,
}

const ALL_REDS: [Red; 9] =
    [Red::Sum, Red::Prod, Red::Min, Red::Max, Red::Mean, Red::Var, Red::Std, Red::ArgMin, Red::ArgMax];

impl Red {
    fn apply(self, t: &Tensor, axis: Option<usize>) -> Tensor {
        match (self, axis) {
            (Red::Sum, None) => t.sum(),
            (Red::Sum, Some(a)) => t.sum_axis(a),
            (Red::Prod, None) => t.prod(),
            (Red::Prod, Some(a)) => t.prod_axis(a),
            (Red::Min, None) => t.min(),
            (Red::Min, Some(a)) => t.min_axis(a),
            (Red::Max, None) => t.max(),
            (Red::Max, Some(a)) => t.max_axis(a),
            (Red::Mean, None) => t.mean(),
            (Red::Mean, Some(a)) => t.mean_axis(a),
            (Red::Var, None) => t.var(),
            (Red::Var, Some(a)) => t.var_axis(a),
            (Red::Std, None) => t.std(),
            (Red::Std, Some(a)) => t.std_axis(a),
            (Red::ArgMin, None) => t.argmin(),
            (Red::ArgMin, Some(a)) => t.argmin_axis(a),
            (Red::ArgMax, None) => t.argmax(),
            (Red::ArgMax, Some(a)) => t.argmax_axis(a),
        }
    }

    /// numpy's result dtype for an input of `input`.
    fn dtype(self, input: DType) -> DType {
        match self {
            Red::Sum | Red::Prod if input.is_float() => input,
            Red::Sum | Red::Prod => DType::Int64,
            Red::Min | Red::Max => input,
            Red::Mean | Red::Var | Red::Std if input == DType::Float32 => DType::Float32,
            Red::Mean | Red::Var | Red::Std => DType::Float64,
            Red::ArgMin | Red::ArgMax => DType::Int64,
        }
    }

    /// numpy semantics on one lane: NaN propagates through min/max, arg-
    /// reductions return the first NaN, else the first extreme (ties: first).
    fn lane(self, v: ArrayView1<f64>) -> f64 {
        let n = v.len() as f64;
        let nan = v.iter().position(|x| x.is_nan());
        let mean = v.sum() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        match self {
            Red::Sum => v.sum(),
            Red::Prod => v.product(),
            Red::Min if nan.is_some() => f64::NAN,
            Red::Max if nan.is_some() => f64::NAN,
            Red::Min => v.fold(f64::INFINITY, |m, &x| m.min(x)),
            Red::Max => v.fold(f64::NEG_INFINITY, |m, &x| m.max(x)),
            Red::Mean => mean,
            Red::Var => var,
            Red::Std => var.sqrt(),
            Red::ArgMin | Red::ArgMax => {
                if let Some(i) = nan {
                    return i as f64;
                }
                let mut best = 0;
                for i in 1..v.len() {
                    if (self == Red::ArgMin && v[i] < v[best]) || (self == Red::ArgMax && v[i] > v[best]) {
                        best = i;
                    }
                }
                best as f64
            }
        }
    }

    fn reference(self, a: &ArrayD<f64>, axis: Option<usize>) -> ArrayD<f64> {
        match axis {
            None => {
                let flat: Array1<f64> = a.iter().copied().collect();
                arr0(self.lane(flat.view())).into_dyn()
            }
            Some(k) => a.map_axis(Axis(k), |v| self.lane(v)),
        }
    }
}

/// Every reduction, full and along each axis in `axes`, under many chunkings.
fn check_reductions(s: &Session, data: impl Into<TensorData>, reds: &[Red], axes: &[usize], rtol: f64) {
    let data = data.into();
    let dtype = data.dtype();
    let a = values(&data);
    let mut which: Vec<Option<usize>> = vec![None];
    which.extend(axes.iter().map(|&k| Some(k)));
    for c in many_chunkings(a.shape()) {
        let x = chunked(data.clone(), &c);
        for &red in reds {
            for &axis in &which {
                let what = format!("{red:?} axis {axis:?} of {dtype} {:?}, chunks {c:?}", a.shape());
                check(s, &what, &red.apply(&x, axis), red.dtype(dtype), &red.reference(&a, axis), rtol);
            }
        }
    }
}

#[test]
fn float_reductions_2d_full_and_per_axis() {
    let s = session();
    check_reductions(&s, signed(&[7, 5], 60), &ALL_REDS, &[0, 1], RTOL);
    // products of values near 1 keep a meaningful magnitude
    check_reductions(&s, uniform(&[7, 5], 61, 0.6, 1.5), &[Red::Prod], &[0, 1], RTOL);
}

#[test]
fn float_reductions_3d_full_and_per_axis() {
    let s = session();
    check_reductions(&s, signed(&[5, 4, 3], 62), &ALL_REDS, &[0, 1, 2], RTOL);
}

#[test]
fn float_reductions_1d_many_chunks() {
    let s = session();
    // 1000 elements in chunks of 1, 2, 3 …: deep combine trees
    check_reductions(&s, signed(&[1000], 63), &ALL_REDS, &[0], RTOL);
}

#[test]
fn integer_reductions_keep_numpy_dtypes_and_first_ties() {
    let s = session();
    // values in {-2, -1, 1, 2}: many ties, no zeros (so products mean something)
    let a = ints(&[7, 5], 64, -2, 2).mapv(|v| if v >= 0 { v + 1 } else { v });
    check_reductions(&s, a.clone(), &ALL_REDS, &[0, 1], RTOL);
    check_reductions(&s, a.mapv(|v| v as i32), &ALL_REDS, &[0, 1], RTOL);
    let b = ints(&[5, 4, 3], 65, -3, 4);
    check_reductions(&s, b, &[Red::Sum, Red::Min, Red::Max, Red::Mean, Red::ArgMin, Red::ArgMax], &[1], RTOL);
    // ties on floats: the first occurrence wins across chunk boundaries
    check_reductions(&s, small_floats(&[7, 5], 66), &[Red::ArgMin, Red::ArgMax], &[0, 1], RTOL);
}

#[test]
fn bool_reductions_count_as_int64() {
    let s = session();
    let m = bools(&[7, 5], 67);
    check_reductions(
        &s,
        m.clone(),
        &[Red::Sum, Red::Mean, Red::Min, Red::Max, Red::ArgMax, Red::ArgMin],
        &[0, 1],
        RTOL,
    );
    let x = chunked(m.clone(), &[3, 2]);
    check(
        &s,
        "sum of a comparison",
        &x.astype(DType::Int64).gt(0.5).sum(),
        DType::Int64,
        &arr0(m.iter().filter(|&&b| b).count() as f64).into_dyn(),
        0.0,
    );
}

#[test]
fn float32_reductions_stay_float32() {
    let s = session();
    let a = signed(&[7, 5], 68).mapv(|v| v as f32);
    check_reductions(&s, a, &ALL_REDS, &[0, 1], F32TOL);
}

#[test]
fn reductions_propagate_nan_like_numpy() {
    let s = session();
    let mut a = signed(&[7, 5], 69);
    a[[3, 1]] = f64::NAN;
    a[[5, 1]] = f64::NAN;
    a[[6, 4]] = f64::NAN;
    check_reductions(&s, a, &ALL_REDS, &[0, 1], RTOL);
}

// ============================================================ dot, layout

#[test]
fn dot_1d_and_2d_operands() {
    let s = session();
    let (a, b) = (signed(&[7, 5], 70), signed(&[5, 4], 71));
    let (v5, u5, w7) = (signed(&[5], 72), signed(&[5], 73), signed(&[7], 74));
    let (a2, b2, v, u, w) = (to2(&a), to2(&b), to1(&v5), to1(&u5), to1(&w7));
    let ai = ints(&[7, 5], 75, -4, 5);
    let bi = ints(&[5, 4], 76, -4, 5);
    let aib = ai.clone().into_dimensionality::<Ix2>().unwrap();
    let bib = bi.clone().into_dimensionality::<Ix2>().unwrap();
    let int_ref = aib.dot(&bib).mapv(|x| x as f64).into_dyn();
    let (ca_all, cb_all, c1_all, c7_all) = (chunkings(&[7, 5]), chunkings(&[5, 4]), chunkings(&[5]), chunkings(&[7]));
    for i in 0..ca_all.len() {
        let (ca, cb) = (&ca_all[i], &cb_all[(i + 1) % cb_all.len()]);
        let (cv, cu, cw) = (&c1_all[(i + 2) % 4], &c1_all[(i + 3) % 4], &c7_all[(i + 1) % 4]);
        let (x, y) = (chunked(a.clone(), ca), chunked(b.clone(), cb));
        let (tv, tu, tw) = (chunked(v5.clone(), cv), chunked(u5.clone(), cu), chunked(w7.clone(), cw));
        let what = |n: &str| format!("{n}, chunks {ca:?} {cb:?} {cv:?} {cu:?} {cw:?}");
        check_f64(&s, &what("2-D x 2-D"), &x.dot(&y), &a2.dot(&b2).into_dyn(), RTOL);
        check_f64(&s, &what("2-D x 1-D"), &x.dot(&tv), &a2.dot(&v).into_dyn(), RTOL);
        check_f64(&s, &what("1-D x 2-D"), &tw.dot(&x), &w.dot(&a2).into_dyn(), RTOL);
        check_f64(&s, &what("1-D x 1-D"), &tv.dot(&tu), &arr0(v.dot(&u)).into_dyn(), RTOL);
        check_f64(&s, &what("x.t() x x"), &x.t().dot(&x), &a2.t().dot(&a2).into_dyn(), RTOL);
        check_f64(&s, &what("chained (x y) y.t()"), &x.dot(&y).dot(&y.t()), &a2.dot(&b2).dot(&b2.t()).into_dyn(), RTOL);
        check_f64(&s, &what("(x y).sum()"), &x.dot(&y).sum(), &arr0(a2.dot(&b2).sum()).into_dyn(), RTOL);
        let (xi, yi) = (chunked(ai.clone(), ca), chunked(bi.clone(), cb));
        check(&s, &what("int64 x int64"), &xi.dot(&yi), DType::Int64, &int_ref, 0.0);
        check_f64(&s, &what("int64 x float64"), &xi.dot(&y), &aib.mapv(|x| x as f64).dot(&b2).into_dyn(), RTOL);
        // float32: within f32 rounding of the sum of |terms| (the result may cancel to ~0)
        let (x32, y32) = (chunked(a.mapv(|v| v as f32), ca), chunked(b.mapv(|v| v as f32), cb));
        let d = run(&s, &x32.dot(&y32)).unwrap_or_else(|e| panic!("{}: {e}", what("float32 dot")));
        assert_eq!(d.dtype(), DType::Float32, "{}", what("float32 x float32 stays float32"));
        let r32 = a2.mapv(|v| v as f32 as f64).dot(&b2.mapv(|v| v as f32 as f64));
        let scale = a2.mapv(f64::abs).dot(&b2.mapv(f64::abs));
        for ((g, w), m) in values(&d).iter().zip(&r32).zip(&scale) {
            assert!((g - w).abs() <= 4e-6 * m, "{}: {g} vs {w} (scale {m})", what("float32 dot"));
        }
    }
}

#[test]
fn transposes_permute_data_and_grids() {
    let s = session();
    let a = signed(&[7, 5], 80);
    let other = signed(&[5, 7], 81);
    for (ca, cb) in chunk_pairs(&[7, 5], &[5, 7]) {
        let (x, y) = (chunked(a.clone(), &ca), chunked(other.clone(), &cb));
        let what = |n: &str| format!("{n}, chunks {ca:?} / {cb:?}");
        let at = a.t().to_owned();
        check_f64(&s, &what("t()"), &x.t(), &at, 0.0);
        check_f64(&s, &what("transpose([1, 0])"), &x.transpose(&[1, 0]), &at, 0.0);
        check_f64(&s, &what("t().t()"), &x.t().t(), &a, 0.0);
        check_f64(&s, &what("t() + y"), &(&x.t() + &y), &(&at + &other), ELEM);
        check_f64(&s, &what("t().sum_axis(0)"), &x.t().sum_axis(0), &a.sum_axis(Axis(1)), RTOL);
        check_f64(&s, &what("t().reshape(35)"), &x.t().reshape(&[35]), &reshaped(&at, &[35]), 0.0);
    }
    let b = signed(&[5, 4, 3], 82);
    for c in chunkings(&[5, 4, 3]) {
        let x = chunked(b.clone(), &c);
        for axes in [[2, 1, 0], [1, 0, 2], [2, 0, 1], [0, 2, 1], [0, 1, 2]] {
            let want = b.clone().permuted_axes(IxDyn(&axes));
            check_f64(&s, &format!("transpose({axes:?}), chunks {c:?}"), &x.transpose(&axes), &want, 0.0);
        }
        check_f64(&s, &format!("3-D t(), chunks {c:?}"), &x.t(), &b.clone().reversed_axes(), 0.0);
    }
}

#[test]
fn reshapes_across_chunk_boundaries() {
    let s = session();
    let cases: [(&[usize], &[usize]); 14] = [
        (&[6, 4], &[4, 6]),
        (&[12], &[3, 4]),
        (&[3, 4], &[12]),
        (&[10, 6], &[4, 15]),
        (&[4, 15], &[10, 6]),
        (&[10, 6], &[60]),
        (&[6, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[4, 6]),
        (&[24], &[2, 3, 4]),
        (&[2, 3, 4], &[24]),
        (&[7, 5], &[5, 7]),
        (&[7, 5], &[35, 1]),
        (&[1, 35], &[7, 5]),
        (&[6, 4], &[6, 4]),
    ];
    for (k, (from, to)) in cases.iter().enumerate() {
        let a = signed(from, 90 + k as u64);
        let want = reshaped(&a, to);
        let other = signed(to, 120 + k as u64);
        for (ca, cb) in chunk_pairs(from, to) {
            let x = chunked(a.clone(), &ca);
            let y = chunked(other.clone(), &cb);
            let what = |n: &str| format!("{n}: {from:?} -> {to:?}, chunks {ca:?} (other {cb:?})");
            let r = x.reshape(to);
            check_f64(&s, &what("reshape"), &r, &want, 0.0);
            check_f64(&s, &what("reshape + other chunking"), &(&r + &y), &(&want + &other), ELEM);
            check_f64(&s, &what("reshape.sum_axis(0)"), &r.sum_axis(0), &want.sum_axis(Axis(0)), RTOL);
            check_f64(&s, &what("reshape there and back"), &r.reshape(from), &a, 0.0);
        }
    }
}

/// Check each slice spec on `a` (as ndarray slices it) under every chunking,
/// then a follow-up op on the slice with a differently chunked operand.
fn check_slices(s: &Session, a: &ArrayD<f64>, specs: &[Vec<SliceInfoElem>]) {
    for c in chunkings(a.shape()) {
        let x = chunked(a.clone(), &c);
        for spec in specs {
            let want = sliced(a, spec);
            let what = format!("slice {spec:?} of {:?}, chunks {c:?}", a.shape());
            let t = x.slice(spec);
            check_f64(s, &what, &t, &want, 0.0);
            check_f64(s, &format!("{what}, then .sum()"), &t.sum(), &arr0(want.sum()).into_dyn(), RTOL);
            if want.ndim() > 0 {
                let other = signed(want.shape(), 7);
                let y = chunked(other.clone(), &vec![2; want.ndim()]);
                check_f64(s, &format!("{what}, then + other"), &(&t + &y), &(&want + &other), ELEM);
            }
        }
    }
}

#[test]
fn slices_2d_steps_negative_steps_indices_new_axes() {
    let s = session();
    let a = signed(&[10, 6], 130);
    let specs = vec![
        elems(s![1..9;2, ..]),
        elems(s![..;-1, 2]),
        elems(s![.., NewAxis, 1..3]),
        elems(s![2, ..]),
        elems(s![.., -1]),
        elems(s![..;3, 1..5;2]),
        elems(s![1..8;-3, NewAxis, ..]),
        elems(s![NewAxis, .., 4]),
        elems(s![3..3, ..]),
        vec![span(7, Some(2), 1), span(0, None, 1)], // start past end: empty
        elems(s![4, 5]),
        elems(s![.., ..]),
        elems(s![..;-3, ..;-1]),
        elems(s![9..;-1, 1..]),
        elems(s![..]),
    ];
    check_slices(&s, &a, &specs);
    // the s![] value passed straight to `slice`
    let x = chunked(a.clone(), &[3, 4]);
    check_f64(
        &s,
        "direct s![..;-1, 2]",
        &x.slice(s![..;-1, 2]),
        &to2(&a).slice(s![..;-1, 2]).to_owned().into_dyn(),
        0.0,
    );
}

#[test]
fn slices_with_negative_steps_that_do_not_divide_the_range() {
    let s = session();
    let a = signed(&[10, 6], 132);
    let specs = vec![
        elems(s![-3.., ..;-2]),
        elems(s![..;-2, ..;-1]),
        elems(s![1..9;-2, ..]),
        vec![span(0, None, -4), span(5, Some(1), -1)],
        elems(s![2..9;-3, 4]),
    ];
    check_slices(&s, &a, &specs);
    let specs3 = vec![elems(s![.., ..;-3, 1..;-2]), elems(s![..;-2, 1, ..])];
    check_slices(&s, &signed(&[5, 4, 3], 133), &specs3);
    let x = chunked(a.clone(), &[3, 4]);
    let want = to2(&a).slice(s![..;-2, 1]).to_owned().into_dyn();
    check_f64(&s, "direct s![..;-2, 1]", &x.slice(s![..;-2, 1]), &want, 0.0);
}

#[test]
fn slices_3d() {
    let s = session();
    let a = signed(&[5, 4, 3], 131);
    let specs = vec![
        elems(s![.., 1..3, ..;-1]),
        elems(s![1, .., NewAxis, 0]),
        elems(s![..;2, ..;-3, 1]),
        elems(s![-1, -1, ..]),
        elems(s![NewAxis, 2..5, .., NewAxis, ..;2]),
        elems(s![1..4;-1, 2]),
    ];
    check_slices(&s, &a, &specs);
}

#[test]
fn concatenate_inputs_of_different_chunkings() {
    let s = session();
    let (a, b, c) = (signed(&[7, 5], 140), signed(&[3, 5], 141), signed(&[1, 5], 142));
    let (d, e) = (signed(&[7, 2], 143), signed(&[7, 1], 144));
    let bi = ints(&[3, 5], 145, -5, 5);
    for (i, ci) in chunkings(&[7, 5]).iter().enumerate() {
        let j = (i + 1) % 4;
        let x = chunked(a.clone(), ci);
        let y = chunked(b.clone(), &chunkings(&[3, 5])[j]);
        let z = chunked(c.clone(), &chunkings(&[1, 5])[(i + 2) % 4]);
        let v = chunked(d.clone(), &chunkings(&[7, 2])[j]);
        let w = chunked(e.clone(), &chunkings(&[7, 1])[(i + 3) % 4]);
        let yi = chunked(bi.clone(), &chunkings(&[3, 5])[j]);
        let what = |n: &str| format!("{n}, case {i}");
        let cat = |arrs: &[&ArrayD<f64>], ax: usize| {
            let views: Vec<_> = arrs.iter().map(|a| a.view()).collect();
            mars::ndarray::concatenate(Axis(ax), &views).unwrap()
        };
        let r0 = cat(&[&a, &b, &c], 0);
        let t0 = mt::concatenate(&[&x, &y, &z], 0);
        check_f64(&s, &what("axis 0"), &t0, &r0, 0.0);
        check_f64(&s, &what("axis 0 then sum_axis(0)"), &t0.sum_axis(0), &r0.sum_axis(Axis(0)), RTOL);
        check_f64(
            &s,
            &what("axis 0 then + full"),
            &(&t0 * &mt::full(&[11, 5], 2.0).rechunk(4)),
            &r0.mapv(|v| v * 2.0),
            ELEM,
        );
        let r1 = cat(&[&a, &d, &e], 1);
        let t1 = mt::concatenate(&[&x, &v, &w], 1);
        check_f64(&s, &what("axis 1"), &t1, &r1, 0.0);
        check_f64(&s, &what("axis 1 then t()"), &t1.t(), &r1.t().to_owned(), 0.0);
        check_f64(
            &s,
            &what("axis 1 then argmax_axis(1)"),
            &t1.argmax_axis(1).astype(DType::Float64),
            &Red::ArgMax.reference(&r1, Some(1)),
            0.0,
        );
        check_f64(
            &s,
            &what("int64 with float64 promotes"),
            &mt::concatenate(&[&x, &yi], 0),
            &cat(&[&a, &f_of_i(&bi)], 0),
            0.0,
        );
        check_f64(&s, &what("a tensor with itself"), &mt::concatenate(&[&x, &x], 1), &cat(&[&a, &a], 1), 0.0);
    }
}

#[test]
fn rechunk_keeps_values_and_dtypes() {
    let s = session();
    let shape = [7, 5];
    let a = signed(&shape, 150);
    let ai = ints(&shape, 151, -5, 5);
    let bo = bools(&shape, 152);
    let mut targets = many_chunkings(&shape);
    targets.push(vec![100, 100]);
    targets.push(vec![6, 4]);
    for c1 in chunkings(&shape) {
        for c2 in &targets {
            let what = |n: &str| format!("{n}, {c1:?} -> {c2:?}");
            // `* 1.0` makes a non-creation node, so this is a real rechunk step
            let x = (chunked(a.clone(), &c1) * 1.0).rechunk(c2.clone());
            check_f64(&s, &what("rechunk"), &x, &a, 0.0);
            check_f64(&s, &what("rechunk then sum_axis(1)"), &x.sum_axis(1), &a.sum_axis(Axis(1)), RTOL);
            check_f64(&s, &what("rechunk + original"), &(&x + &chunked(a.clone(), &c1)), &a.mapv(|v| v * 2.0), ELEM);
            let xi = chunked(ai.clone(), &c1).slice(s![.., ..]).rechunk(c2.clone());
            check(&s, &what("int64 rechunk"), &xi, DType::Int64, &f_of_i(&ai), 0.0);
            let xb = chunked(bo.clone(), &c1).t().rechunk(c2.iter().rev().copied().collect::<Vec<_>>());
            check(&s, &what("bool rechunk"), &xb, DType::Bool, &f_of_b(&bo).t().to_owned(), 0.0);
        }
    }
    let b = signed(&[5, 4, 3], 153);
    for c in chunkings(&[5, 4, 3]) {
        let x = (chunked(b.clone(), &[2, 3, 1]) + 0.0).rechunk(c.clone());
        check_f64(&s, &format!("3-D rechunk to {c:?}"), &x, &b, 0.0);
    }
}

// ================================================================== filter

#[test]
fn filter_with_same_shape_mask_and_ops_on_the_result() {
    let s = session();
    let shape = [7, 5];
    let (a, b) = (signed(&shape, 160), signed(&shape, 161));
    let ai = ints(&shape, 162, -5, 5);
    let pos = a.mapv(|v| v > 0.0);
    let want = masked(&a, &pos);
    let n = want.len();
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (x, y) = (chunked(a.clone(), &ca), chunked(b.clone(), &cb));
        let what = |n: &str| format!("{n}, chunks {ca:?} / {cb:?}");
        let f = x.filter(&x.gt(0.0));
        assert_eq!(f.shape(), vec![None], "a filter's length is unknown before it runs");
        check_f64(&s, &what("x[x > 0]"), &f, &want, 0.0);
        assert_eq!(f.shape(), vec![Some(n)], "{}", what("an executed filter knows its length"));
        check_f64(&s, &what("(f * 2).sum()"), &(&f * 2.0).sum(), &arr0(want.sum() * 2.0).into_dyn(), RTOL);
        check_f64(&s, &what("f.reshape"), &f.reshape(&[1, n]), &reshaped(&want, &[1, n]), 0.0);
        check_f64(&s, &what("f.mean()"), &f.mean(), &arr0(want.mean().unwrap()).into_dyn(), RTOL);
        check_f64(&s, &what("f.max()"), &f.max(), &Red::Max.reference(&want, None), 0.0);
        check(&s, &what("f.argmin()"), &f.argmin(), DType::Int64, &Red::ArgMin.reference(&want, None), 0.0);
        check_f64(&s, &what("f + f"), &(&f + &f), &want.mapv(|v| v + v), ELEM);
        check_f64(&s, &what("f + ones(n)"), &(&f + &mt::ones(&[n]).rechunk(3)), &want.mapv(|v| v + 1.0), ELEM);
        check_f64(&s, &what("f[::2]"), &f.slice(s![..;2]), &want.slice(s![..;2]).to_owned().into_dyn(), 0.0);
        check_f64(&s, &what("f[::-1]"), &f.slice(s![..;-1]), &want.slice(s![..;-1]).to_owned().into_dyn(), 0.0);
        let cat = mars::ndarray::concatenate(Axis(0), &[want.view(), want.view()]).unwrap();
        check_f64(&s, &what("concatenate(f, f)"), &mt::concatenate(&[&f, &f], 0), &cat, 0.0);
        // a mask from another, differently chunked tensor
        let m2 = b.mapv(|v| v < 0.5);
        check_f64(&s, &what("x[y < 0.5]"), &x.filter(&y.lt(0.5)), &masked(&a, &m2), 0.0);
        let gt = Zip::from(&a).and(&b).map_collect(|&p, &q| p > q);
        check_f64(&s, &what("x[x > y]"), &x.filter(&x.gt(&y)), &masked(&a, &gt), 0.0);
        // filter of a filter, and of int data
        let g = f.filter(&f.lt(1.0));
        check_f64(&s, &what("f[f < 1]"), &g, &masked(&want, &want.mapv(|v| v < 1.0)), 0.0);
        let xi = chunked(ai.clone(), &cb);
        let mi = ai.mapv(|v| v != 0);
        let ri: ArrayD<f64> = masked(&f_of_i(&ai), &mi);
        check(&s, &what("int64 filter"), &xi.filter(&xi.ne(0.0)), DType::Int64, &ri, 0.0);
        // nothing and everything selected
        let none = x.filter(&x.gt(10.0));
        check_f64(&s, &what("empty filter"), &none, &ArrayD::zeros(IxDyn(&[0])), 0.0);
        check_f64(&s, &what("empty filter sum"), &none.sum(), &arr0(0.0).into_dyn(), 0.0);
        check_f64(&s, &what("full filter"), &x.filter(&x.lt(10.0)), &reshaped(&a, &[35]), 0.0);
    }
}

#[test]
fn filter_rows_with_1d_mask_and_ops_on_the_result() {
    let s = session();
    let shape = [7, 5];
    let a = signed(&shape, 170);
    let mask = bools(&[7], 171);
    let want = masked_rows(&a, &mask);
    let k = want.shape()[0];
    assert!(k > 0 && k < 7, "the seed should select some rows, not all");
    let rowpos = a.sum_axis(Axis(1)).mapv(|v| v > 0.0);
    let want_pos = masked_rows(&a, &rowpos);
    let v5 = signed(&[5], 172);
    let b3 = signed(&[5, 4, 3], 173);
    let m3 = bools(&[5], 174);
    for (ca, cm) in chunk_pairs(&shape, &[7]) {
        let x = chunked(a.clone(), &ca);
        let m = chunked(mask.clone(), &cm);
        let what = |n: &str| format!("{n}, chunks {ca:?} / mask {cm:?}");
        let f = x.filter(&m);
        assert_eq!(f.shape(), vec![None, Some(5)], "rows unknown, columns known");
        check_f64(&s, &what("x[mask]"), &f, &want, 0.0);
        check_f64(&s, &what("(f * 2).sum()"), &(&f * 2.0).sum(), &arr0(want.sum() * 2.0).into_dyn(), RTOL);
        check_f64(&s, &what("f.reshape(k * 5)"), &f.reshape(&[k * 5]), &reshaped(&want, &[k * 5]), 0.0);
        check_f64(&s, &what("f.reshape(5, k)"), &f.reshape(&[5, k]), &reshaped(&want, &[5, k]), 0.0);
        check_f64(&s, &what("f.sum_axis(0)"), &f.sum_axis(0), &want.sum_axis(Axis(0)), RTOL);
        check_f64(&s, &what("f.mean_axis(1)"), &f.mean_axis(1), &want.mean_axis(Axis(1)).unwrap(), RTOL);
        check(
            &s,
            &what("f.argmax_axis(0)"),
            &f.argmax_axis(0),
            DType::Int64,
            &Red::ArgMax.reference(&want, Some(0)),
            0.0,
        );
        check_f64(&s, &what("f.t()"), &f.t(), &want.t().to_owned(), 0.0);
        let vt = chunked(v5.clone(), &[2]);
        check_f64(&s, &what("f.dot(v)"), &f.dot(&vt), &to2(&want).dot(&to1(&v5)).into_dyn(), RTOL);
        check_f64(
            &s,
            &what("f - f.mean_axis(0)"),
            &(&f - &f.mean_axis(0)),
            &(&want - &want.mean_axis(Axis(0)).unwrap()),
            RTOL,
        );
        let fp = x.filter(&x.sum_axis(1).gt(0.0));
        check_f64(&s, &what("x[x.sum(1) > 0]"), &fp, &want_pos, 0.0);
        let x3 = chunked(b3.clone(), &chunkings(&[5, 4, 3])[cm[0] % 4]);
        check_f64(&s, &what("3-D rows"), &x3.filter(&chunked(m3.clone(), &cm)), &masked_rows(&b3, &m3), 0.0);
    }
}

#[test]
fn more_ops_on_filtered_results() {
    let s = session();
    let shape = [7, 5];
    let a = signed(&shape, 175);
    let want = masked(&a, &a.mapv(|v| v > 0.0));
    let n = want.len();
    let flat = reshaped(&a, &[35]);
    for c in chunkings(&shape) {
        let x = chunked(a.clone(), &c);
        let f = x.filter(&x.gt(0.0));
        let what = |w: &str| format!("{w}, chunks {c:?}");
        check_f64(&s, &what("f.rechunk(2)"), &f.rechunk(2), &want, 0.0);
        check_f64(&s, &what("f.rechunk(2) * f"), &(&f.rechunk(2) * &f), &want.mapv(|v| v * v), ELEM);
        let w = mt::where_(&f.gt(0.5), &f, &(-&f));
        check_f64(&s, &what("where_ on f"), &w, &want.mapv(|v| if v > 0.5 { v } else { -v }), 0.0);
        let one = mt::full(&[1], 3.0);
        check_f64(&s, &what("f + (1,)"), &(&f + &one), &want.mapv(|v| v + 3.0), ELEM);
        check_f64(
            &s,
            &what("f.sum().reshape([1])"),
            &f.sum().reshape(&[1]),
            &reshaped(&arr0(want.sum()).into_dyn(), &[1]),
            RTOL,
        );
        check_f64(&s, &what("f.t() of 1-D"), &f.t(), &want, 0.0);
        check_f64(&s, &what("f.dot(f)"), &f.dot(&f), &arr0(sum_sq(&want)).into_dyn(), RTOL);
        let g = x.filter(&x.lt(0.0));
        let neg = masked(&a, &a.mapv(|v| v < 0.0));
        check_f64(&s, &what("sum(f) + sum(g)"), &(f.sum() + g.sum()), &arr0(want.sum() + neg.sum()).into_dyn(), RTOL);
        assert_eq!(n + neg.len(), 35, "the seed has no zeros");
        // last: the result holds f's chunks without f's lengths reaching a
        // tiler (see the ignored test below)
        let cat = mars::ndarray::concatenate(Axis(0), &[want.view(), flat.view()]).unwrap();
        let t = mt::concatenate(&[&f, &x.reshape(&[35])], 0);
        check_f64(&s, &what("concatenate(f, known)"), &t, &cat, 0.0);
    }
}

#[test]
fn concatenate_row_filters_of_different_chunkings_along_axis_1() {
    let s = session();
    let (a, b) = (signed(&[7, 5], 205), signed(&[7, 2], 206));
    let mask = bools(&[7], 207);
    let want =
        mars::ndarray::concatenate(Axis(1), &[masked_rows(&a, &mask).view(), masked_rows(&b, &mask).view()]).unwrap();
    // same number of row chunks with different boundaries ([4, 3] vs [5, 2]), and different numbers
    for (ca, cb) in [([4, 5], [5, 2]), ([6, 2], [4, 1]), ([4, 5], [3, 2]), ([7, 5], [2, 2]), ([2, 5], [2, 1])] {
        for cm in [vec![7], vec![3], vec![5]] {
            let m = chunked(mask.clone(), &cm);
            let (f, g) = (chunked(a.clone(), &ca).filter(&m), chunked(b.clone(), &cb).filter(&m));
            let what = format!("concatenate([x[m], y[m]], 1), chunks {ca:?} / {cb:?} / mask {cm:?}");
            check_f64(&s, &what, &mt::concatenate(&[&f, &g], 1), &want, 0.0);
            let sum = (&f.sum_axis(1) + &g.sum_axis(1)).sum();
            check_f64(&s, &format!("{what}, row sums"), &sum, &arr0(want.sum()).into_dyn(), RTOL);
        }
    }
}

#[test]
fn indexing_filtered_results() {
    let s = session();
    let a = signed(&[7, 5], 208);
    let want = masked(&a, &a.mapv(|v| v > -1.0));
    let rows = bools(&[7], 209);
    let wr = masked_rows(&a, &rows);
    for c in chunkings(&[7, 5]) {
        let x = chunked(a.clone(), &c);
        let f = x.filter(&x.gt(-1.0));
        let what = |w: &str| format!("{w}, chunks {c:?}");
        let last = want.len() as isize - 1;
        check_f64(&s, &what("f[-1]"), &f.slice(s![-1]), &sliced(&want, &[SliceInfoElem::Index(last)]), 0.0);
        let inner = [span(2, Some(-2), 3)]; // s![2..-2;3]: clippy takes it for an empty range
        check_f64(&s, &what("f[2..-2;3]"), &f.slice(inner), &sliced(&want, &inner), 0.0);
        let r = x.filter(&chunked(rows.clone(), &c[..1]));
        check_f64(&s, &what("r[::-1, 1]"), &r.slice(s![..;-1, 1]), &sliced(&wr, &elems(s![..;-1, 1])), 0.0);
        check_f64(
            &s,
            &what("r[.., NewAxis, 2..]"),
            &r.slice(s![.., NewAxis, 2..]),
            &sliced(&wr, &elems(s![.., NewAxis, 2..])),
            0.0,
        );
    }
}

/// Run `f` on its own thread; panic if it does not finish within `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("still running after {secs} s: the execution hangs"),
        Err(RecvTimeoutError::Disconnected) => panic!("the checks panicked (see above)"),
    }
}

#[test]
fn filter_chunks_held_by_another_result_still_report_lengths() {
    within(60, || {
        let s = session();
        let a = signed(&[7, 5], 175);
        let want = masked(&a, &a.mapv(|v| v > 0.0));
        let x = chunked(a.clone(), &[7, 5]);
        let f = x.filter(&x.gt(0.0));
        let cat = mt::concatenate(&[&f, &x.reshape(&[35])], 0);
        run(&s, &cat).unwrap();
        // f's chunk is held as part of `cat`; tiling f.dot(f) needs f's length
        check_f64(&s, "f.dot(f) after concatenate", &f.dot(&f), &arr0(sum_sq(&want)).into_dyn(), RTOL);
        check_f64(&s, "f.rechunk(2) after concatenate", &f.rechunk(2), &want, 0.0);
    });
}

/// `a . a` of a 1-D array.
fn sum_sq(a: &ArrayD<f64>) -> f64 {
    a.iter().map(|v| v * v).sum()
}

#[test]
fn integer_overflow_wraps_and_division_by_zero_gives_inf() {
    let s = session();
    let a = Array1::from(vec![100_000i32, -70_000, 46_341, 3]).into_dyn();
    let x = chunked(a.clone(), &[3]);
    check(&s, "i32 * i32 wraps like numpy", &(&x * &x), DType::Int32, &a.mapv(|v| v.wrapping_mul(v) as f64), 0.0);
    let big = Array1::from(vec![i64::MAX, i64::MIN, 1]).into_dyn();
    let xb = chunked(big.clone(), &[2]);
    let one = chunked(Array1::from(vec![1i64, -1, 1]).into_dyn(), &[1]);
    let sum = xb.clone() + one;
    let d = ArrayD::<i64>::try_from(run(&s, &sum).unwrap()).unwrap();
    assert_eq!(d.into_raw_vec_and_offset().0, vec![i64::MIN, i64::MAX, 2], "i64 + i64 wraps");
    let n = chunked(Array1::from(vec![1i64, -1, 0, 5]).into_dyn(), &[2]);
    let z = chunked(Array1::from(vec![0i64, 0, 0, 2]).into_dyn(), &[3]);
    let want = ArrayD::from_shape_vec(IxDyn(&[4]), vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 2.5]).unwrap();
    check_f64(&s, "int / 0 is inf or nan", &(&n / &z), &want, 0.0);
    let p = ints(&[6, 4], 176, -9, 10);
    let xp = chunked(p.clone(), &[4, 3]);
    check_f64(&s, "i64.pow(2.0) is float64", &xp.pow(2.0), &f_of_i(&p).mapv(|v| v * v), 0.0);
    check_f64(
        &s,
        "i64 sum of squares",
        &(&xp * &xp).sum().astype(DType::Float64),
        &arr0(f_of_i(&p).mapv(|v| v * v).sum()).into_dyn(),
        0.0,
    );
}

#[test]
fn bool_comparisons_not_and_nan_comparisons() {
    let s = session();
    let shape = [7, 5];
    let (m1, m2) = (bools(&shape, 177), bools(&shape, 178));
    let (f1, f2) = (f_of_b(&m1), f_of_b(&m2));
    let mut a = signed(&shape, 179);
    a[[1, 2]] = f64::NAN;
    a[[6, 0]] = f64::NAN;
    for (ca, cb) in chunk_pairs(&shape, &shape) {
        let (x1, x2) = (chunked(m1.clone(), &ca), chunked(m2.clone(), &cb));
        let what = |w: &str| format!("{w}, chunks {ca:?} / {cb:?}");
        for op in COMPARISONS {
            let t = compare_op(&x1, op, &x2);
            check(&s, &what(&format!("bool {op} bool")), &t, DType::Bool, &broadcast2(&f1, &f2, compare_ref(op)), 0.0);
        }
        check(&s, &what("not"), &x1.not(), DType::Bool, &f1.mapv(|v| 1.0 - v), 0.0);
        check(&s, &what("not(not)"), &x1.not().not(), DType::Bool, &f1, 0.0);
        let x = chunked(a.clone(), &ca);
        let y = chunked(a.clone(), &cb);
        for op in COMPARISONS {
            let f = compare_ref(op);
            check(
                &s,
                &what(&format!("NaN {op} 0")),
                &compare_op(&x, op, 0.0),
                DType::Bool,
                &a.mapv(|v| f(v, 0.0)),
                0.0,
            );
            check(
                &s,
                &what(&format!("NaN {op} itself")),
                &compare_op(&x, op, &y),
                DType::Bool,
                &broadcast2(&a, &a, f),
                0.0,
            );
        }
    }
}

/// `t` fails to execute, with a message containing `needle`.
#[track_caller]
fn assert_fails(s: &Session, what: &str, t: &Tensor, needle: &str) {
    match t.execute_in(s) {
        Ok(_) => panic!("{what}: executed, but it should fail ({needle})"),
        Err(e) => assert!(e.to_string().contains(needle), "{what}: error {e:?} does not mention {needle:?}"),
    }
}

#[test]
fn invalid_operations_are_errors_not_panics() {
    let s = session();
    let (a, b) = (signed(&[7, 5], 190), signed(&[7, 5], 192));
    let x = chunked(a.clone(), &[3, 2]);
    let v = chunked(signed(&[7], 191), &[2]);
    assert_fails(&s, "dot (7,5) x (7,)", &x.dot(&v), "not aligned");
    assert_fails(&s, "reshape 35 -> 36", &x.reshape(&[6, 6]), "cannot reshape array of size 35");
    assert_fails(&s, "broadcast (7,5) + (7,)", &(&x + &v), "could not be broadcast");
    assert_fails(&s, "sum_axis(2) of 2-D", &x.sum_axis(2), "out of bounds");
    assert_fails(&s, "index 7 of 7 rows", &x.slice(s![7, ..]), "out of bounds");
    assert_fails(&s, "concatenate (7,5) with (7,)", &mt::concatenate(&[&x, &v], 0), "dimension");
    let empty = x.filter(&x.gt(10.0));
    assert_fails(&s, "max of an empty filter", &empty.max(), "zero-size array");
    assert_fails(&s, "argmax of an empty filter", &empty.argmax(), "empty");
    // lengths only known at run time
    let f = x.filter(&x.gt(0.0));
    let y = chunked(b.clone(), &[2, 2]);
    let g = y.filter(&y.gt(0.0));
    let (nf, ng) = (masked(&a, &a.mapv(|v| v > 0.0)).len(), masked(&b, &b.mapv(|v| v > 0.0)).len());
    assert_ne!(nf, ng, "the seeds should give filters of different lengths");
    assert_fails(&s, "f + g of different run-time lengths", &(&f + &g), "broadcast");
    // the session still works afterwards
    let want = arr0(masked(&a, &a.mapv(|v| v > 0.0)).sum()).into_dyn();
    check_f64(&s, "after errors", &f.sum(), &want, RTOL);
}

#[test]
fn reshape_of_a_filter_to_the_wrong_size_is_an_error() {
    let s = session();
    let a = signed(&[7, 5], 193);
    let n = masked(&a, &a.mapv(|v| v > 0.0)).len();
    for c in many_chunkings(&[7, 5]) {
        let x = chunked(a.clone(), &c);
        let f = x.filter(&x.gt(0.0));
        for bad in [n - 1, n + 1, 2 * n, n + 5] {
            let what = format!("{n} elements reshaped to ({bad},), chunks {c:?}");
            assert_fails(&s, &what, &f.reshape(&[bad]), &format!("cannot reshape array of size {n}"));
            let rows = x.filter(&chunked(bools(&[7], 194), &c[..1]));
            assert_fails(&s, &format!("rows: {what}"), &rows.reshape(&[bad, 5]), "cannot reshape array of size");
        }
        check_f64(
            &s,
            &format!("the right size still works, chunks {c:?}"),
            &f.reshape(&[n]),
            &masked(&a, &a.mapv(|v| v > 0.0)),
            0.0,
        );
    }
}

// ================================================================ creation

/// `mt::tensor(arr)` under every chunking fetches back exactly `arr`, as the same variant.
fn check_roundtrip<T>(s: &Session, arr: ArrayD<T>)
where
    T: Clone + PartialEq + std::fmt::Debug,
    TensorData: From<ArrayD<T>>,
    ArrayD<T>: TryFrom<TensorData>,
    <ArrayD<T> as TryFrom<TensorData>>::Error: std::fmt::Display,
{
    for c in chunkings(arr.shape()) {
        let t = chunked(arr.clone(), &c);
        let d = run(s, &t).unwrap_or_else(|e| panic!("{e}"));
        let dtype = d.dtype();
        let got = ArrayD::<T>::try_from(d).unwrap_or_else(|e| panic!("fetched {dtype}, wrong variant: {e}"));
        assert_eq!(got, arr, "round trip of {dtype} {:?}, chunks {c:?}", arr.shape());
    }
}

#[test]
fn tensor_from_arrays_of_each_dtype() {
    let s = session();
    let a = signed(&[7, 5], 180);
    let ai = ints(&[7, 5], 181, -100, 100);
    check_roundtrip(&s, a.clone());
    check_roundtrip(&s, a.mapv(|v| v as f32));
    check_roundtrip(&s, ai.clone());
    check_roundtrip(&s, ai.mapv(|v| v as i32));
    check_roundtrip(&s, bools(&[7, 5], 182));
    check_roundtrip(&s, signed(&[5, 4, 3], 183));
    // Array1 / Array2 inputs, each dtype
    let cases: Vec<(DType, Tensor, ArrayD<f64>)> = vec![
        (DType::Float64, mt::tensor(to1(&signed(&[9], 184))), signed(&[9], 184)),
        (DType::Float64, mt::tensor(to2(&a)), a.clone()),
        (DType::Float32, mt::tensor(to2(&a).mapv(|v| v as f32)), a.mapv(|v| v as f32 as f64)),
        (
            DType::Float32,
            mt::tensor(Array1::from(vec![1.5f32, -2.0, 0.25])),
            ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.5, -2.0, 0.25]).unwrap(),
        ),
        (
            DType::Int64,
            mt::tensor(Array1::from(vec![3i64, -7, 0, 9])),
            ArrayD::from_shape_vec(IxDyn(&[4]), vec![3.0, -7.0, 0.0, 9.0]).unwrap(),
        ),
        (DType::Int64, mt::tensor(ai.clone().into_dimensionality::<Ix2>().unwrap()), f_of_i(&ai)),
        (
            DType::Int32,
            mt::tensor(Array1::from(vec![5i32, -1])),
            ArrayD::from_shape_vec(IxDyn(&[2]), vec![5.0, -1.0]).unwrap(),
        ),
        (DType::Int32, mt::tensor(ai.mapv(|v| v as i32).into_dimensionality::<Ix2>().unwrap()), f_of_i(&ai)),
        (
            DType::Bool,
            mt::tensor(Array1::from(vec![true, false, true])),
            ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 0.0, 1.0]).unwrap(),
        ),
        (DType::Bool, mt::tensor(Array2::from_elem((2, 3), true)), ArrayD::ones(IxDyn(&[2, 3]))),
        // a Fortran-order array keeps its logical values
        (DType::Float64, mt::tensor(to2(&a).reversed_axes()).rechunk(2), a.t().to_owned()),
    ];
    for (i, (dtype, t, want)) in cases.iter().enumerate() {
        assert_eq!(t.dtype(), *dtype, "case {i}: inferred dtype");
        check(&s, &format!("Array1/Array2 case {i}"), t, *dtype, want, 0.0);
        check(&s, &format!("Array1/Array2 case {i} rechunked"), &t.rechunk(2), *dtype, want, 0.0);
    }
    // fetched data refuses the wrong element type
    let d = run(&s, &mt::tensor(a.clone())).unwrap();
    assert!(ArrayD::<i64>::try_from(d.clone()).is_err());
    assert!(ArrayD::<f64>::try_from(d).is_ok());
}

#[test]
fn arange_matches_numpy() {
    let s = session();
    // (start, stop, step, numpy's length)
    let cases = [
        (0.0, 10.0, 1.0, 10),
        (1.5, -3.0, -0.5, 9),
        (0.0, 1.0, 0.1, 10),
        (2.0, 2.0, 1.0, 0),
        (-5.0, 7.5, 2.5, 5),
        (0.0, 1000.0, 1.0, 1000),
        (3.0, 0.0, 1.0, 0),
    ];
    for (start, stop, step, n) in cases {
        let want = ArrayD::from_shape_fn(IxDyn(&[n]), |i| start + step * i[0] as f64);
        let t = mt::arange(start, stop, step);
        assert_eq!(t.shape(), vec![Some(n)], "arange({start}, {stop}, {step}) length");
        for c in [1, 3, 4, n.max(1), 7] {
            let what = format!("arange({start}, {stop}, {step}), chunks {c}");
            check_f64(&s, &what, &t.rechunk(c), &want, ELEM);
            check_f64(&s, &format!("{what}, sum"), &t.rechunk(c).sum(), &arr0(want.sum()).into_dyn(), RTOL);
        }
    }
}

#[test]
fn ones_zeros_full() {
    let s = session();
    for shape in [vec![7, 5], vec![5, 4, 3], vec![11], vec![]] {
        let cs = if shape.is_empty() { vec![vec![]] } else { chunkings(&shape) };
        for c in cs {
            let what = |n: &str| format!("{n} {shape:?}, chunks {c:?}");
            let size = shape.iter().product::<usize>() as f64;
            check_f64(&s, &what("ones"), &mt::ones(&shape).rechunk(c.clone()), &ArrayD::ones(IxDyn(&shape)), 0.0);
            check_f64(&s, &what("zeros"), &mt::zeros(&shape).rechunk(c.clone()), &ArrayD::zeros(IxDyn(&shape)), 0.0);
            check_f64(
                &s,
                &what("full"),
                &mt::full(&shape, -2.5).rechunk(c.clone()),
                &ArrayD::from_elem(IxDyn(&shape), -2.5),
                0.0,
            );
            check_f64(
                &s,
                &what("full sum"),
                &mt::full(&shape, 0.5).rechunk(c.clone()).sum(),
                &arr0(0.5 * size).into_dyn(),
                RTOL,
            );
            // rechunk of an executed-later expression over a creation op
            check_f64(
                &s,
                &what("(ones + zeros) * full"),
                &((mt::ones(&shape) + mt::zeros(&shape).rechunk(c.clone())) * mt::full(&shape, 3.0)),
                &ArrayD::from_elem(IxDyn(&shape), 3.0),
                0.0,
            );
        }
    }
}

#[test]
fn random_state_is_invariant_to_chunking_and_threads() {
    let shape = [7, 5];
    let sessions: Vec<Session> = [1, 2, 4].iter().map(|&n| session_with_threads(n)).collect();
    for seed in [0u64, 42, 12345] {
        // the reference: one chunk, one thread; calls in order rand, randn, randint, rand
        let gen = |c: &[usize]| -> Vec<Tensor> {
            let rs = RandomState::new(seed);
            vec![
                rs.rand(&shape).rechunk(c.to_vec()),
                rs.randn(&shape).rechunk(c.to_vec()),
                rs.randint(-5, 5, &shape).rechunk(c.to_vec()),
                rs.rand(&shape).rechunk(c.to_vec()),
            ]
        };
        let want: Vec<TensorData> = gen(&[7, 5]).iter().map(|t| run(&sessions[0], t).unwrap()).collect();
        assert_eq!(want[0].dtype(), DType::Float64);
        assert_eq!(want[1].dtype(), DType::Float64);
        assert_eq!(want[2].dtype(), DType::Int64);
        let u = values(&want[0]);
        assert!(u.iter().all(|v| (0.0..1.0).contains(v)), "rand in [0, 1)");
        assert!(values(&want[2]).iter().all(|v| (-5.0..5.0).contains(v)), "randint in [low, high)");
        assert_ne!(want[0], want[3], "a RandomState advances with each call");
        for (si, s) in sessions.iter().enumerate() {
            for c in many_chunkings(&shape) {
                for (k, t) in gen(&c).iter().enumerate() {
                    let got = run(s, t).unwrap();
                    if let Err(e) = same(&got, &want[k], 0.0) {
                        panic!("seed {seed}, call {k}, chunks {c:?}, {} threads: {e}", [1, 2, 4][si]);
                    }
                }
            }
        }
        // a different seed gives different numbers
        let other = run(&sessions[0], &RandomState::new(seed + 1).rand(&shape)).unwrap();
        assert_ne!(other, want[0]);
    }
}

#[test]
fn random_distributions_and_fresh_seeds() {
    let s = session();
    let rs = RandomState::new(7);
    let n = 4000;
    let u = values(&run(&s, &rs.rand(&[n]).rechunk(300)).unwrap());
    let mean = u.mean().unwrap();
    assert!((mean - 0.5).abs() < 0.03, "uniform mean {mean}");
    assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
    let g = rs.randn(&[40, 100]).rechunk(vec![7, 30]);
    let gv = values(&run(&s, &g).unwrap());
    let (m, sd) = (gv.mean().unwrap(), gv.std(0.0));
    assert!(m.abs() < 0.06 && (sd - 1.0).abs() < 0.06, "normal mean {m}, std {sd}");
    // the tensor's own mean/std agree with the fetched data
    check_f64(&s, "randn mean", &g.mean(), &arr0(m).into_dyn(), RTOL);
    check_f64(&s, "randn std", &g.std(), &arr0(sd).into_dyn(), RTOL);
    let r = rs.randint(-3, 4, &[50, 40]).rechunk(16);
    assert_eq!(r.dtype(), DType::Int64);
    let rv = ArrayD::<i64>::try_from(run(&s, &r).unwrap()).unwrap();
    for v in -3..4 {
        assert!(rv.iter().any(|&x| x == v), "randint never gave {v}");
    }
    assert!(rv.iter().all(|&x| (-3..4).contains(&x)));
    // fresh seeds per call
    let (a, b) = (mt::random::rand(&[6, 4]), mt::random::rand(&[6, 4]));
    let (da, db) = (run(&s, &a).unwrap(), run(&s, &b).unwrap());
    assert_ne!(da, db, "two mt::random::rand calls must differ");
    assert!(values(&da).iter().all(|v| (0.0..1.0).contains(v)));
    let (c, d) = (mt::random::randn(&[6, 4]), mt::random::randn(&[6, 4]));
    assert_ne!(run(&s, &c).unwrap(), run(&s, &d).unwrap(), "two mt::random::randn calls must differ");
    // the same unexecuted tensor is one value, however often it is run
    assert_eq!(run(&s, &a).unwrap(), da);
}

/// Random chunks fused into their consumers (generated inside the kernel, never
/// materialised) give what the same expressions give over the fetched data.
/// A reduction folds the single-input maps it alone reads at tiling time
/// (their chunks are never made); the answers are the unfolded ones, for
/// every kind of reduction, casts in the chain, and maps that are kept or
/// already held (which are not folded).
#[test]
fn reductions_of_folded_map_chains_match_ndarray() {
    let s = session();
    let shape = [9, 7];
    let data = signed(&shape, 11);
    let chain = |x: &ArrayD<f64>| x.mapv(|v| (v * 2.0 + 1.0).abs());
    for chunks in many_chunkings(&shape) {
        let what = |w: &str| format!("{w} (chunks {chunks:?})");
        let x = || chunked(data.clone(), &chunks);
        let folded = |x: &Tensor| ((x * 2.0) + 1.0).abs();
        let want = chain(&data);
        check_f64(&s, &what("sum"), &folded(&x()).sum(), &arr0(want.sum()).into_dyn(), RTOL);
        check_f64(&s, &what("mean(0)"), &folded(&x()).mean_axis(0), &want.mean_axis(Axis(0)).unwrap(), RTOL);
        check_f64(&s, &what("var(1)"), &folded(&x()).var_axis(1), &want.var_axis(Axis(1), 0.0), RTOL);
        check_f64(
            &s,
            &what("max(1)"),
            &folded(&x()).max_axis(1),
            &want.fold_axis(Axis(1), f64::MIN, |a, &b| a.max(b)),
            0.0,
        );
        let am = want.map_axis(Axis(0), |c| argmax(&c.to_owned().into_dyn()) as f64);
        check(&s, &what("argmax(0)"), &folded(&x()).argmax_axis(0), DType::Int64, &am, 0.0);
        // a cast in the chain: the partials reduce int64 values
        let ints = want.mapv(|v| v.trunc());
        check(
            &s,
            &what("astype(int64).sum(1)"),
            &folded(&x()).astype(DType::Int64).sum_axis(1),
            DType::Int64,
            &ints.sum_axis(Axis(1)),
            0.0,
        );
        // a kept map is computed (not folded) and so is its reduction
        let (m, r) = (folded(&x()), folded(&x()).sum());
        s.execute(&[&m, &r]).unwrap();
        check_f64(&s, &what("kept map"), &m, &want, ELEM);
        check_f64(&s, &what("sum beside the kept map"), &r, &arr0(want.sum()).into_dyn(), RTOL);
        // a map held from an earlier execute is read, not recomputed into the sum
        check_f64(&s, &what("sum of a held map"), &(&m * 1.0).sum(), &arr0(want.sum()).into_dyn(), RTOL);
    }
}

#[test]
fn fused_random_leaves_match_materialised_data() {
    let s = session();
    let shape = [13, 11];
    for chunks in many_chunkings(&shape) {
        let what = |w: &str| format!("{w} (chunks {chunks:?})");
        let fresh = |seed| RandomState::new(seed);
        let (u, n, i) = (
            values(&run(&s, &fresh(5).rand(&shape)).unwrap()),
            values(&run(&s, &fresh(6).randn(&shape)).unwrap()),
            values(&run(&s, &fresh(7).randint(-5, 9, &shape)).unwrap()),
        );
        // each of these is a new, unexecuted random tensor, so fusion inlines it
        let rand = |seed: u64| -> Tensor {
            match seed {
                5 => fresh(5).rand(&shape),
                6 => fresh(6).randn(&shape),
                _ => fresh(7).randint(-5, 9, &shape),
            }
            .rechunk(chunks.clone())
        };
        check_f64(&s, &what("(u + 1) * 2"), &((&rand(5) + 1.0) * 2.0), &((&u + 1.0) * 2.0), ELEM);
        let w1 = ((&u + 1.0) * 2.0).sum();
        check_f64(&s, &what("((u + 1) * 2).sum()"), &((&rand(5) + 1.0) * 2.0).sum(), &arr0(w1).into_dyn(), RTOL);
        check_f64(&s, &what("randn mean(0)"), &rand(6).mean_axis(0), &n.mean_axis(Axis(0)).unwrap(), RTOL);
        check_f64(&s, &what("randn std(1)"), &rand(6).std_axis(1), &n.std_axis(Axis(1), 0.0), RTOL);
        check(&s, &what("u argmax"), &rand(5).argmax(), DType::Int64, &arr0(argmax(&u) as f64).into_dyn(), 0.0);
        check(&s, &what("randint * 3"), &(rand(7) * 3.0), DType::Float64, &(&i * 3.0), ELEM);
        let isum = rand(7).sum_axis(1);
        check(&s, &what("randint sum(1)"), &isum, DType::Int64, &i.sum_axis(Axis(1)), 0.0);
        // two random leaves in one expression, and one mixed with data
        let both = &rand(5) * &rand(6);
        check_f64(&s, &what("u * n"), &both, &(&u * &n), ELEM);
        let data = signed(&shape, 3);
        let mixed = (&rand(6) - &chunked(data.clone(), &chunks)).exp().max_axis(0);
        check_f64(
            &s,
            &what("exp(n - data).max(0)"),
            &mixed,
            &(&n - &data).mapv(f64::exp).fold_axis(Axis(0), f64::MIN, |a, &b| a.max(b)),
            ELEM,
        );
        // a random column broadcast against a bigger operand is not fused into it
        let col = values(&run(&s, &fresh(8).rand(&[13, 1])).unwrap());
        let bcast = &fresh(8).rand(&[13, 1]).rechunk(vec![chunks[0], 1]) + &chunked(data.clone(), &chunks);
        check_f64(&s, &what("column + data"), &bcast, &(&col + &data), ELEM);
        // a random leaf bigger than the other operands: the row and mask broadcast up to it
        // (found by the mutated-graph test: the kernel took the expression's shape from its inputs)
        let row = uniform(&[11], 9, 0.0, 1.0);
        let row_t = chunked(row.clone(), &chunks[1..]);
        let picked = mt::where_(&row_t.gt(0.5), &row_t, &rand(5));
        let want = ndarray::Zip::from(&u).and_broadcast(&row).map_collect(|&x, &r| if r > 0.5 { r } else { x });
        check_f64(&s, &what("where(row > .5, row, u)"), &picked, &want, ELEM);
        let wmax = want.iter().copied().fold(f64::MIN, f64::max);
        let picked_max = mt::where_(&row_t.gt(0.5), &row_t, &rand(5)).max();
        check_f64(&s, &what("where(row > .5, row, u).max()"), &picked_max, &arr0(wmax).into_dyn(), ELEM);
    }
}

fn argmax(a: &ArrayD<f64>) -> usize {
    a.iter().enumerate().fold((0, f64::MIN), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

// ============================================================== properties

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(24) })
}

/// A shape of 1–3 axes of length 1–7 with two chunkings (sizes 1..=len+1) and a seed.
fn shape_chunks_seed() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>, u64)> {
    prop::collection::vec(1usize..=7, 1..=3).prop_flat_map(|shape| {
        let c: Vec<_> = shape.iter().map(|&n| 1..=n + 1).collect();
        (Just(shape), c.clone(), c, any::<u64>())
    })
}

/// Expressions of every op family over `x` and `y` (same shape).
fn expressions(x: &Tensor, y: &Tensor, shape: &[usize]) -> Vec<(&'static str, Tensor)> {
    let last = shape.len() - 1;
    let size: usize = shape.iter().product();
    let mut rev = vec![span(0, None, -2)];
    rev.extend(std::iter::repeat_n(span(0, None, 1), shape.len() - 1));
    // `y[:, 0, 0]`: a mask over axis 0 (for 1-D data, a same-shape mask)
    let mut first_column = vec![span(0, None, 1)];
    first_column.extend(std::iter::repeat_n(SliceInfoElem::Index(0), shape.len() - 1));
    vec![
        ("elementwise", ((x * 2.0 - y) / (y.abs() + 1.0)).exp()),
        ("where", mt::where_(&x.gt(y), x, &(y * -1.0))),
        ("compare", x.le(y)),
        ("sum", x.sum()),
        ("sum last axis", x.sum_axis(last)),
        ("prod axis 0", (x * 0.5 + 1.0).prod_axis(0)),
        ("mean axis 0", x.mean_axis(0)),
        ("var", x.var()),
        ("std last axis", x.std_axis(last)),
        ("min", x.min()),
        ("max axis 0", x.max_axis(0)),
        ("argmax", x.argmax()),
        ("argmin last axis", x.argmin_axis(last)),
        ("centre", x - &x.mean_axis(0)),
        ("t", x.t()),
        ("t + y.t", &x.t() + &y.t()),
        ("flatten", x.reshape(&[size])),
        ("reshape reversed", x.reshape(&shape.iter().rev().copied().collect::<Vec<_>>())),
        ("slice", x.slice(&rev)),
        ("concatenate", mt::concatenate(&[x, y], 0)),
        ("filter", x.filter(&x.gt(y))),
        ("filter sum", (x.filter(&x.gt(0.0)) * 2.0).sum()),
        ("filter rows", x.filter(&y.slice(&first_column).gt(0.0)).sum_axis(0)),
    ]
}

/// Run every expression on inputs chunked `cx` / `cy` in session `s`.
fn evaluate(
    s: &Session,
    a: &ArrayD<f64>,
    b: &ArrayD<f64>,
    cx: &[usize],
    cy: &[usize],
) -> Result<Vec<(&'static str, TensorData)>, String> {
    let (x, y) = (chunked(a.clone(), cx), chunked(b.clone(), cy));
    expressions(&x, &y, a.shape())
        .into_iter()
        .map(|(name, t)| run(s, &t).map(|d| (name, d)).map_err(|e| format!("{name}: {e}")))
        .collect()
}

#[test]
fn automatic_chunking_by_byte_budget() {
    // no explicit chunk sizes: the session's byte budget splits leading axes
    // first (8 bytes: one element per chunk)
    let one = session();
    let shape = [6, 5, 3];
    let (a, b) = (signed(&shape, 200), signed(&shape, 201));
    let plain = |s: &Session| -> Vec<(&'static str, TensorData)> {
        let (x, y) = (mt::tensor(a.clone()), mt::tensor(b.clone()));
        let mut exprs = expressions(&x, &y, &shape);
        exprs.push(("rand", RandomState::new(9).rand(&shape)));
        exprs.push(("arange", mt::arange(0.0, 90.0, 1.0).reshape(&shape).sum_axis(1)));
        exprs.push(("ones", (mt::ones(&shape) * &x).sum_axis(2)));
        exprs.into_iter().map(|(n, t)| (n, run(s, &t).unwrap_or_else(|e| panic!("{n}: {e}")))).collect()
    };
    let want = plain(&one);
    for bytes in [8, 40, 96, 240, 1000] {
        let s = builder().chunk_bytes(bytes).build().expect("a session");
        for ((name, got), (_, w)) in plain(&s).iter().zip(&want) {
            same(got, w, RTOL).unwrap_or_else(|e| panic!("{name} with chunk_bytes {bytes}: {e}"));
        }
    }
}

#[test]
fn prop_any_chunking_gives_the_one_chunk_result() {
    let s = session();
    runner()
        .run(&shape_chunks_seed(), |(shape, c1, c2, seed)| {
            let (a, b) = (signed(&shape, seed), signed(&shape, seed ^ 1));
            let whole: Vec<usize> = shape.clone();
            let want = evaluate(&s, &a, &b, &whole, &whole).map_err(TestCaseError::fail)?;
            // the one-chunk results match ndarray for the simplest cases
            compare(&values(&want[0].1), &((&a * 2.0 - &b) / b.mapv(|v| v.abs() + 1.0)).mapv(f64::exp), ELEM)
                .map_err(TestCaseError::fail)?;
            compare(&values(&want[3].1), &arr0(a.sum()).into_dyn(), RTOL).map_err(TestCaseError::fail)?;
            for (cx, cy) in [(&c1, &c1), (&c1, &c2), (&c2, &c1)] {
                let got = evaluate(&s, &a, &b, cx, cy).map_err(TestCaseError::fail)?;
                for ((name, g), (_, w)) in got.iter().zip(&want) {
                    same(g, w, RTOL)
                        .map_err(|e| TestCaseError::fail(format!("{name} with chunks {cx:?} / {cy:?}: {e}")))?;
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn prop_thread_counts_give_identical_results() {
    let sessions: Vec<(usize, Session)> = [1, 2, 4].iter().map(|&n| (n, session_with_threads(n))).collect();
    let strategy = (1usize..=9, 1usize..=9, 1usize..=4, 1usize..=4, any::<u64>());
    runner()
        .run(&strategy, |(m, n, cm, cn, seed)| {
            let (a, b) = (signed(&[m, n], seed), signed(&[m, n], seed ^ 2));
            let (x, y) = (chunked(a.clone(), &[cm, cn]), chunked(b.clone(), &[cn, cm]));
            let mut exprs = expressions(&x, &y, &[m, n]);
            exprs.push(("dot", x.dot(&y.t())));
            exprs.push(("dot sum", x.t().dot(&y).sum()));
            exprs.push(("random", RandomState::new(seed).randn(&[m, n]).rechunk(vec![cm, cn]).sum_axis(1)));
            let mut first: Vec<TensorData> = Vec::new();
            for (threads, s) in &sessions {
                for (k, (name, t)) in exprs.iter().enumerate() {
                    // the same tensors, executed again by each session
                    let d = run(s, t).map_err(|e| TestCaseError::fail(format!("{name}, {threads} threads: {e}")))?;
                    match first.get(k) {
                        None => first.push(d),
                        Some(w) => same(&d, w, 0.0)
                            .map_err(|e| TestCaseError::fail(format!("{name}: {threads} threads vs 1: {e}")))?,
                    }
                }
            }
            // and the reference values hold
            compare(&values(&first[first.len() - 3]), &to2(&a).dot(&to2(&b).t()).into_dyn(), RTOL)
                .map_err(TestCaseError::fail)?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Turn a failure message into a proptest failure naming `what`.
fn fail(what: impl std::fmt::Display) -> impl FnOnce(String) -> TestCaseError {
    move |e| TestCaseError::fail(format!("{what}: {e}"))
}

/// One random slice element for an axis of length `n`, with a step from `steps`.
fn slice_elem(n: usize, steps: &'static [isize]) -> impl Strategy<Value = SliceInfoElem> {
    let n = n as isize;
    prop_oneof![
        (0..n).prop_map(SliceInfoElem::Index),
        (-n..0).prop_map(SliceInfoElem::Index),
        (0..=n, 0..=n, prop::sample::select(steps)).prop_map(|(a, b, st)| span(a, Some(b), st)),
        (-n..=0, prop::sample::select(steps)).prop_map(|(a, st)| span(a, None, st)),
        Just(SliceInfoElem::NewAxis),
    ]
}

/// Does `spec` index `shape` in bounds? (A new axis shifts later elements onto
/// earlier axes, and shrinking can leave stale values: such cases are skipped.)
fn fits(spec: &[SliceInfoElem], shape: &[usize]) -> bool {
    let in_range = |i: isize, n: usize, inclusive: bool| {
        let n = n as isize;
        (-n..if inclusive { n + 1 } else { n }).contains(&i)
    };
    let mut axis = 0;
    for e in spec {
        let ok = match *e {
            SliceInfoElem::NewAxis => continue,
            _ if axis >= shape.len() => false,
            SliceInfoElem::Index(i) => in_range(i, shape[axis], false),
            SliceInfoElem::Slice { start, end, .. } => {
                in_range(start, shape[axis], true) && end.is_none_or(|e| in_range(e, shape[axis], true))
            }
        };
        if !ok {
            return false;
        }
        axis += 1;
    }
    true
}

/// Random 2-D slices under random chunkings match ndarray.
fn check_random_slices(steps: &'static [isize]) {
    let s = session();
    let strategy = (1usize..=9, 1usize..=9).prop_flat_map(move |(m, n)| {
        let elems = (slice_elem(m, steps), slice_elem(n, steps));
        (Just((m, n)), 1..=m + 1, 1..=n + 1, elems, any::<u64>())
    });
    runner()
        .run(&strategy, |((m, n), cm, cn, (e0, e1), seed)| {
            let spec = vec![e0, e1];
            prop_assume!(fits(&spec, &[m, n]));
            let a = signed(&[m, n], seed);
            let x = chunked(a.clone(), &[cm, cn]);
            let want = sliced(&a, &spec);
            let what = format!("slice {spec:?} of ({m}, {n}), chunks [{cm}, {cn}]");
            try_check(&s, &x.slice(&spec), DType::Float64, &want, 0.0).map_err(fail(what))?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn prop_slices_match_ndarray() {
    check_random_slices(&[-3, -2, -1, 1, 2, 3]);
}

#[test]
fn prop_reshape_dot_concatenate_filter_match_ndarray() {
    let s = session();
    let strategy = (1usize..=8, 1usize..=8, 1usize..=8)
        .prop_flat_map(|(m, n, p)| (Just((m, n, p)), 1..=m + 1, 1..=n + 1, 1..=n, 1..=p, any::<u64>()));
    runner()
        .run(&strategy, |((m, n, p), cm, cn, cn2, cp, seed)| {
            let a = signed(&[m, n], seed);
            let b = signed(&[n, p], seed ^ 3);
            let x = chunked(a.clone(), &[cm, cn]);
            let y = chunked(b.clone(), &[cn2, cp]);
            // reshape to a factorisation of the size, and back
            let size = m * n;
            let d = (1..=size).filter(|d| size % d == 0).nth((seed % 3) as usize).unwrap_or(size);
            let to = [d, size / d];
            try_check(&s, &x.reshape(&to), DType::Float64, &reshaped(&a, &to), 0.0)
                .map_err(fail(format!("reshape to {to:?}")))?;
            try_check(
                &s,
                &x.reshape(&to).t().reshape(&[size]),
                DType::Float64,
                &reshaped(&reshaped(&a, &to).t().to_owned(), &[size]),
                0.0,
            )
            .map_err(fail("reshape, t, flatten"))?;
            // dot with differently chunked inner axes
            try_check(&s, &x.dot(&y), DType::Float64, &to2(&a).dot(&to2(&b)).into_dyn(), RTOL).map_err(fail("dot"))?;
            // concatenate along 1 with a differently chunked operand
            let cat = mars::ndarray::concatenate(Axis(1), &[a.view(), a.view()]).unwrap();
            let x2 = chunked(a.clone(), &[cn.min(m), cm.min(n)]);
            try_check(&s, &mt::concatenate(&[&x, &x2], 1), DType::Float64, &cat, 0.0).map_err(fail("concatenate"))?;
            // row filter
            let mask = bools(&[m], seed ^ 4);
            let mt_mask = chunked(mask.clone(), &[cn]);
            try_check(&s, &x.filter(&mt_mask), DType::Float64, &masked_rows(&a, &mask), 0.0)
                .map_err(fail("row filter"))?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
