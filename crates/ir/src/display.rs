//! numpy-style `Display` for [`TensorData`]: prints exactly what numpy 2.x's
//! `repr()` prints for the same array with the default print options
//! (precision 8, floatmode `maxprec`, linewidth 75, threshold 1000, edgeitems 3).
//!
//! The layout is a port of `numpy/_core/arrayprint.py` (`_formatArray`,
//! `FloatingFormat`, `IntegerFormat`, `BoolFormat`, `_array_repr_implementation`);
//! digits come from Rust's shortest round-trip and exact formatting, which agree
//! with numpy's Dragon4 in `unique` and `min_digits` modes.

use crate::data::TensorData;
use crate::dtype::DType;
use ndarray::{ArrayD, Axis, IxDyn};
use std::fmt;

const LINEWIDTH: usize = 75;
const THRESHOLD: usize = 1000;
const EDGEITEMS: usize = 3;
const PRECISION: usize = 8;
const PREFIX: &str = "array(";

impl fmt::Display for TensorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dtype = self.dtype();
        let s = match self {
            TensorData::F64(a) => repr(a, dtype, float_format),
            TensorData::F32(a) => repr(a, dtype, float_format),
            TensorData::Bool(a) => repr(a, dtype, |_: &[bool], ndim| {
                let t = if ndim == 0 { "True" } else { " True" };
                move |v: bool| {
                    if v {
                        t.to_string()
                    } else {
                        "False".to_string()
                    }
                }
            }),
            TensorData::I64(a) => repr(a, dtype, int_format),
            TensorData::I32(a) => repr(a, dtype, int_format),
            TensorData::I16(a) => repr(a, dtype, int_format),
            TensorData::I8(a) => repr(a, dtype, int_format),
            TensorData::U64(a) => repr(a, dtype, int_format),
            TensorData::U32(a) => repr(a, dtype, int_format),
            TensorData::U16(a) => repr(a, dtype, int_format),
            TensorData::U8(a) => repr(a, dtype, int_format),
        };
        f.write_str(&s)
    }
}

/// numpy's `IntegerFormat`: right-align to the widest shown value.
fn int_format<T: Copy + fmt::Display>(vals: &[T], _ndim: usize) -> impl Fn(T) -> String {
    let width = vals.iter().map(|v| v.to_string().len()).max().unwrap_or(0);
    move |v: T| format!("{v:>width$}")
}

/// `array(...)` with numpy's `dtype=`/`shape=` extras. `make` builds the element
/// formatter from the values that will be shown (numpy's `_get_format_function`).
fn repr<T: Copy, F: Fn(T) -> String>(a: &ArrayD<T>, dtype: DType, make: impl FnOnce(&[T], usize) -> F) -> String {
    let summarise = a.len() > THRESHOLD;
    let lst = if a.is_empty() {
        "[]".to_string()
    } else {
        // numpy's `_leading_trailing`: keep only the corners that get printed
        let mut corners: Option<ArrayD<T>> = None;
        for (ax, &n) in a.shape().iter().enumerate() {
            if summarise && n > 2 * EDGEITEMS {
                let idx: Vec<usize> = (0..EDGEITEMS).chain(n - EDGEITEMS..n).collect();
                corners = Some(corners.as_ref().unwrap_or(a).select(Axis(ax), &idx));
            }
        }
        let shown = corners.unwrap_or_else(|| a.clone());
        let vals: Vec<T> = shown.iter().copied().collect();
        let format = make(&vals, a.ndim());
        let layout = Layout { full: a.shape(), shown: &shown, summarise, format: &format };
        let hanging = " ".repeat(PREFIX.len() + 1);
        layout.recurse(&mut Vec::new(), &hanging, LINEWIDTH - 1)
    };
    let mut extras = Vec::new();
    if (a.is_empty() && a.shape() != [0]) || summarise {
        let dims: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
        let comma = if dims.len() == 1 { "," } else { "" };
        extras.push(format!("shape=({}{comma})", dims.join(", ")));
    }
    if !matches!(dtype, DType::Float64 | DType::Int64 | DType::Bool) || a.is_empty() {
        extras.push(format!("dtype={}", dtype.name()));
    }
    if extras.is_empty() {
        return format!("{PREFIX}{lst})");
    }
    let arr_str = format!("{PREFIX}{lst},");
    let extra_str = format!("{})", extras.join(", "));
    let last_line_len = arr_str.len() - arr_str.rfind('\n').map_or(0, |i| i + 1);
    let spacer = if last_line_len + extra_str.len() + 1 > LINEWIDTH {
        format!("\n{}", " ".repeat(PREFIX.len()))
    } else {
        " ".to_string()
    };
    format!("{arr_str}{spacer}{extra_str}")
}

/// numpy's `_formatArray` (non-legacy mode, separator `", "`).
struct Layout<'a, T, F> {
    full: &'a [usize],
    shown: &'a ArrayD<T>,
    summarise: bool,
    format: &'a F,
}

impl<T: Copy, F: Fn(T) -> String> Layout<'_, T, F> {
    fn recurse(&self, index: &mut Vec<usize>, hanging: &str, width: usize) -> String {
        let axis = index.len();
        let axes_left = self.full.len() - axis;
        if axes_left == 0 {
            return self.shown.get(IxDyn(index)).map_or_else(String::new, |&v| (self.format)(v));
        }
        let next_hanging = format!("{hanging} ");
        let next_width = width.saturating_sub(1);
        let n = self.shown.shape()[axis];
        let show_summary = self.summarise && 2 * EDGEITEMS < self.full[axis];
        let (leading, trailing) = if show_summary { (EDGEITEMS, EDGEITEMS) } else { (0, n) };
        let mut child = |i: usize| {
            index.push(i);
            let s = self.recurse(index, &next_hanging, next_width);
            index.pop();
            s
        };
        let items: Vec<String> = (0..leading).map(&mut child).collect();
        let tail: Vec<String> = (n - trailing..n).map(&mut child).collect();
        let mut s = String::new();
        if axes_left == 1 {
            let elem_width = width.saturating_sub(1);
            let mut line = hanging.to_string();
            let mut words: Vec<&str> = items.iter().map(String::as_str).collect();
            if show_summary {
                words.push("...");
            }
            words.extend(tail.iter().map(String::as_str));
            let last = words.len().saturating_sub(1);
            for (i, word) in words.iter().enumerate() {
                // numpy's `_extendLine`: wrap unless the line holds only the indent
                if line.len() + word.len() > elem_width && line.len() > hanging.len() {
                    s.push_str(line.trim_end());
                    s.push('\n');
                    line = hanging.to_string();
                }
                line.push_str(word);
                if i < last {
                    line.push_str(", ");
                }
            }
            s.push_str(&line);
        } else {
            let line_sep = format!(",{}", "\n".repeat(axes_left - 1));
            let mut rows: Vec<&str> = items.iter().map(String::as_str).collect();
            if show_summary {
                rows.push("...");
            }
            rows.extend(tail.iter().map(String::as_str));
            let parts: Vec<String> = rows.iter().map(|r| format!("{hanging}{r}")).collect();
            s = parts.join(&line_sep);
        }
        format!("[{}]", s.get(hanging.len()..).unwrap_or(""))
    }
}

/// The float types numpy prints; `EXP_CUTOFF` is `10 ** min(8, finfo.precision)`.
trait Float: Copy + fmt::Display + fmt::LowerExp {
    const EXP_CUTOFF: f64;
    fn to_f64(self) -> f64;
    /// Round an f64 result to this type (numpy computes `max / min` in the dtype).
    fn narrow(v: f64) -> f64;
}
impl Float for f64 {
    const EXP_CUTOFF: f64 = 1e8;
    fn to_f64(self) -> f64 {
        self
    }
    fn narrow(v: f64) -> f64 {
        v
    }
}
impl Float for f32 {
    const EXP_CUTOFF: f64 = 1e6;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn narrow(v: f64) -> f64 {
        f64::from(v as f32)
    }
}

/// Split Rust's `{:e}` output ("1.25e-3") into mantissa and exponent.
fn split_exp(s: &str) -> (&str, i32) {
    match s.split_once('e') {
        Some((m, e)) => (m, e.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// The shortest round-trip digits of `v` in `{:e}` form. On an exact tie between two
/// shortest candidates numpy's Dragon4 keeps the even last digit; Rust rounds up.
fn shortest<T: Float>(v: T) -> String {
    let s = format!("{v:e}");
    let n = split_exp(&s).0.bytes().filter(u8::is_ascii_digit).count();
    let finer = format!("{v:.n$e}");
    let fm = split_exp(&finer).0;
    if fm.ends_with('5') {
        let exact = format!("{v:.800e}");
        if split_exp(&exact).0.trim_end_matches('0').len() == fm.len() {
            return format!("{:.*e}", n - 1, v);
        }
    }
    s
}

/// Dragon4 positional, `unique`, at most `PRECISION` fractional digits, trim `'.'`:
/// (integer part, fraction digits) of |v|.
fn positional<T: Float>(v: T) -> (String, String) {
    let s = shortest(v);
    let (mant, exp) = split_exp(s.trim_start_matches('-'));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let (int, frac) = if exp >= 0 {
        let split = exp as usize + 1;
        if digits.len() <= split {
            (format!("{digits:0<split$}"), String::new())
        } else {
            (digits[..split].to_string(), digits[split..].to_string())
        }
    } else {
        ("0".to_string(), format!("{}{digits}", "0".repeat((-exp - 1) as usize)))
    };
    if frac.len() <= PRECISION {
        return (int, frac);
    }
    let rounded = format!("{:.*}", PRECISION, v);
    let (i, f) = rounded.trim_start_matches('-').split_once('.').unwrap_or((&rounded, ""));
    (i.to_string(), f.trim_end_matches('0').to_string())
}

/// Dragon4 scientific, `unique`, at most `PRECISION` fraction digits, trim `'.'`:
/// (mantissa fraction digits, exponent) of |v|.
fn scientific_shortest<T: Float>(v: T) -> (usize, i32) {
    let s = shortest(v);
    let (mant, exp) = split_exp(s.trim_start_matches('-'));
    let frac = mant.split_once('.').map_or(0, |(_, f)| f.len());
    if frac <= PRECISION {
        return (frac, exp);
    }
    let r = format!("{:.*e}", PRECISION, v);
    let (mant, exp) = split_exp(r.trim_start_matches('-'));
    (mant.split_once('.').map_or(0, |(_, f)| f.trim_end_matches('0').len()), exp)
}

/// numpy's `FloatingFormat` in `maxprec` mode with sign `'-'`.
struct FloatFormat {
    exp_format: bool,
    pad_left: usize,
    pad_right: usize,
    precision: usize,
    exp_size: usize,
}

/// Build numpy's `FloatingFormat` for the values that will be shown.
fn float_format<T: Float>(vals: &[T], _ndim: usize) -> impl Fn(T) -> String {
    let finite: Vec<T> = vals.iter().copied().filter(|v| v.to_f64().is_finite()).collect();
    let nonzero = finite.iter().map(|v| v.to_f64().abs()).filter(|v| *v != 0.0);
    let (min, max) = nonzero.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let exp_format = max > 0.0 && (max >= T::EXP_CUTOFF || min < T::narrow(1e-4) || T::narrow(max / min) > 1000.0);
    let neg = |v: &T| v.to_f64().is_sign_negative();
    let mut ff = FloatFormat { exp_format, pad_left: 0, pad_right: 0, precision: 0, exp_size: 0 };
    if exp_format {
        let parts: Vec<(usize, i32)> = finite.iter().map(|&v| scientific_shortest(v)).collect();
        ff.precision = parts.iter().map(|p| p.0).max().unwrap_or(0);
        ff.exp_size = parts.iter().map(|p| p.1.unsigned_abs().to_string().len().max(2)).max().unwrap_or(2);
        ff.pad_left = if finite.iter().any(neg) { 2 } else { 1 };
        ff.pad_right = ff.exp_size + 2 + ff.precision;
    } else {
        // (all non-finite values leave both pads at 0)
        for &v in &finite {
            let (int, frac) = positional(v);
            ff.pad_left = ff.pad_left.max(int.len() + usize::from(neg(&v)));
            ff.pad_right = ff.pad_right.max(frac.len());
        }
    }
    if finite.len() != vals.len() {
        let neginf = vals.iter().any(|v| v.to_f64() == f64::NEG_INFINITY);
        ff.pad_left = ff.pad_left.max((3 + usize::from(neginf)).saturating_sub(ff.pad_right + 1));
    }
    move |v: T| ff.format(v)
}

impl FloatFormat {
    fn format<T: Float>(&self, v: T) -> String {
        let x = v.to_f64();
        let sign = if x.is_sign_negative() { "-" } else { "" };
        if !x.is_finite() {
            let s = if x.is_nan() {
                "nan"
            } else if x < 0.0 {
                "-inf"
            } else {
                "inf"
            };
            return format!("{s:>w$}", w = self.pad_left + self.pad_right + 1);
        }
        let (int, frac) = if self.exp_format {
            let s = format!("{:.*e}", self.precision, v);
            let (mant, exp) = split_exp(s.trim_start_matches('-'));
            let (i, f) = mant.split_once('.').unwrap_or((mant, ""));
            let es = if exp < 0 { '-' } else { '+' };
            (i.to_string(), format!("{f}e{es}{:0w$}", exp.unsigned_abs(), w = self.exp_size))
        } else {
            let (i, f) = positional(v);
            (i, format!("{f:<w$}", w = self.pad_right))
        };
        format!("{:>w$}.{frac}", format!("{sign}{int}"), w = self.pad_left)
    }
}

#[cfg(test)]
mod tests {
    //! Expected strings are numpy 2.4 `repr()` output of the quoted expression.
    use super::*;

    fn t<T>(shape: &[usize], v: Vec<T>) -> TensorData
    where
        TensorData: From<ArrayD<T>>,
    {
        TensorData::from(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    fn check(t: TensorData, expected: &str) {
        assert_eq!(t.to_string(), expected, "\n{t}\n");
    }

    #[test]
    fn random_floats() {
        // np.random.default_rng(0).random(2)
        check(t::<f64>(&[2], vec![0.6369616873214543, 0.2697867137638703]), r#"array([0.63696169, 0.26978671])"#);
    }

    #[test]
    fn whole_floats() {
        // np.array([1., 2.])
        check(t::<f64>(&[2], vec![1.0, 2.0]), r#"array([1., 2.])"#);
    }

    #[test]
    fn mixed_sign() {
        // np.array([1., -2.5])
        check(t::<f64>(&[2], vec![1.0, -2.5]), r#"array([ 1. , -2.5])"#);
    }

    #[test]
    fn ragged_fraction() {
        // np.array([1., 2.125, 10.5])
        check(t::<f64>(&[3], vec![1.0, 2.125, 10.5]), r#"array([ 1.   ,  2.125, 10.5  ])"#);
    }

    #[test]
    fn non_finite() {
        // np.array([np.nan, 1.5, np.inf, -np.inf])
        check(t::<f64>(&[4], vec![f64::NAN, 1.5, f64::INFINITY, -f64::INFINITY]), r#"array([ nan,  1.5,  inf, -inf])"#);
    }

    #[test]
    fn only_non_finite() {
        // np.array([np.nan, -np.inf])
        check(t::<f64>(&[2], vec![f64::NAN, -f64::INFINITY]), r#"array([ nan, -inf])"#);
    }

    #[test]
    fn scientific() {
        // np.array([1e-05, 1e10])
        check(t::<f64>(&[2], vec![1e-05, 10000000000.0]), r#"array([1.e-05, 1.e+10])"#);
    }

    #[test]
    fn scientific_nan() {
        // np.array([1.5e-05, np.nan, -3e8])
        check(t::<f64>(&[3], vec![1.5e-05, f64::NAN, -300000000.0]), r#"array([ 1.5e-05,      nan, -3.0e+08])"#);
    }

    #[test]
    fn scientific_ratio() {
        // np.array([0.5, 1000.5])
        check(t::<f64>(&[2], vec![0.5, 1000.5]), r#"array([5.0000e-01, 1.0005e+03])"#);
    }

    #[test]
    fn big_exponent() {
        // np.array([1e100, 1.0])
        check(t::<f64>(&[2], vec![1e+100, 1.0]), r#"array([1.e+100, 1.e+000])"#);
    }

    #[test]
    fn negative_zero() {
        // np.array([0., -0.])
        check(t::<f64>(&[2], vec![0.0, -0.0]), r#"array([ 0., -0.])"#);
    }

    #[test]
    fn round_to_8_digits() {
        // np.array([1/3, 0.001953125])
        check(t::<f64>(&[2], vec![0.3333333333333333, 0.001953125]), r#"array([0.33333333, 0.00195312])"#);
    }

    #[test]
    fn zero_d_float() {
        // np.array(5.)
        check(t::<f64>(&[], vec![5.0]), r#"array(5.)"#);
    }

    #[test]
    fn zero_d_int32() {
        // np.array(5, dtype=np.int32)
        check(t::<i32>(&[], vec![5]), r#"array(5, dtype=int32)"#);
    }

    #[test]
    fn zero_d_bool() {
        // np.array(True)
        check(t::<bool>(&[], vec![true]), r#"array(True)"#);
    }

    #[test]
    fn empty_float() {
        // np.array([])
        check(t::<f64>(&[0], vec![]), r#"array([], dtype=float64)"#);
    }

    #[test]
    fn empty_int32() {
        // np.array([], dtype=np.int32)
        check(t::<i32>(&[0], vec![]), r#"array([], dtype=int32)"#);
    }

    #[test]
    fn empty_2d() {
        // np.zeros((2, 0))
        check(t::<f64>(&[2, 0], vec![]), r#"array([], shape=(2, 0), dtype=float64)"#);
    }

    #[test]
    fn ints() {
        // np.array([1, 2, 3])
        check(t::<i64>(&[3], vec![1, 2, 3]), r#"array([1, 2, 3])"#);
    }

    #[test]
    fn int32() {
        // np.array([-1, 20, 3], dtype=np.int32)
        check(t::<i32>(&[3], vec![-1, 20, 3]), r#"array([-1, 20,  3], dtype=int32)"#);
    }

    #[test]
    fn uint8() {
        // np.array([0, 255, 7], dtype=np.uint8)
        check(t::<u8>(&[3], vec![0, 255, 7]), r#"array([  0, 255,   7], dtype=uint8)"#);
    }

    #[test]
    fn int8() {
        // np.array([-128, 5], dtype=np.int8)
        check(t::<i8>(&[2], vec![-128, 5]), r#"array([-128,    5], dtype=int8)"#);
    }

    #[test]
    fn uint64_max() {
        // np.array([2**64 - 1, 0], dtype=np.uint64)
        check(
            t::<u64>(&[2], vec![18446744073709551615, 0]),
            r#"array([18446744073709551615,                    0], dtype=uint64)"#,
        );
    }

    #[test]
    fn bools() {
        // np.array([True, False])
        check(t::<bool>(&[2], vec![true, false]), r#"array([ True, False])"#);
    }

    #[test]
    fn float32() {
        // (np.random.default_rng(0).standard_normal(5) * 100).astype(np.float32)
        check(
            t::<f32>(&[5], vec![12.573022, -13.210486, 64.04227, 10.490012, -53.566936]),
            r#"array([ 12.573022, -13.210486,  64.04227 ,  10.490012, -53.566936],
      dtype=float32)"#,
        );
    }

    #[test]
    fn float32_tie_rounds_even() {
        // np.array([-497847.625], dtype=np.float32)
        check(t::<f32>(&[1], vec![-497847.62]), r#"array([-497847.62], dtype=float32)"#);
    }

    #[test]
    fn float32_exp_cutoff() {
        // np.array([1e6, 1.], dtype=np.float32)
        check(t::<f32>(&[2], vec![1e+06, 1.0]), r#"array([1.e+06, 1.e+00], dtype=float32)"#);
    }

    #[test]
    fn random_2d() {
        // np.random.default_rng(1).random((3, 4))
        check(
            t::<f64>(
                &[3, 4],
                vec![
                    0.5118216247002567,
                    0.9504636963259353,
                    0.14415961271963373,
                    0.9486494471372439,
                    0.31183145201048545,
                    0.42332644897257565,
                    0.8277025938204418,
                    0.4091991363691613,
                    0.5495936876730595,
                    0.027559113243068367,
                    0.7535131086748066,
                    0.5381433132192782,
                ],
            ),
            r#"array([[0.51182162, 0.9504637 , 0.14415961, 0.94864945],
       [0.31183145, 0.42332645, 0.82770259, 0.40919914],
       [0.54959369, 0.02755911, 0.75351311, 0.53814331]])"#,
        );
    }

    #[test]
    fn int_3d() {
        // np.arange(24).reshape(2, 3, 4)
        check(
            TensorData::I64(ArrayD::from_shape_vec(IxDyn(&[2, 3, 4]), (0..24).collect()).unwrap()),
            r#"array([[[ 0,  1,  2,  3],
        [ 4,  5,  6,  7],
        [ 8,  9, 10, 11]],

       [[12, 13, 14, 15],
        [16, 17, 18, 19],
        [20, 21, 22, 23]]])"#,
        );
    }

    #[test]
    fn float_3d() {
        // np.arange(12.).reshape(2, 3, 2) / 4
        check(
            TensorData::F64(
                ArrayD::from_shape_vec(IxDyn(&[2, 3, 2]), (0..12).map(|i| i as f64 / 4.0).collect()).unwrap(),
            ),
            r#"array([[[0.  , 0.25],
        [0.5 , 0.75],
        [1.  , 1.25]],

       [[1.5 , 1.75],
        [2.  , 2.25],
        [2.5 , 2.75]]])"#,
        );
    }

    #[test]
    fn wrap_floats() {
        // np.random.default_rng(2).random(12)
        check(
            t::<f64>(
                &[12],
                vec![
                    0.2616121342493164,
                    0.2984911434141233,
                    0.8142257405942803,
                    0.0919159421350969,
                    0.600100525965654,
                    0.7285605268117946,
                    0.18790107336660344,
                    0.05514662733306819,
                    0.2749693679060381,
                    0.6574330148755926,
                    0.562265662780428,
                    0.15006226330533612,
                ],
            ),
            r#"array([0.26161213, 0.29849114, 0.81422574, 0.09191594, 0.60010053,
       0.72856053, 0.18790107, 0.05514663, 0.27496937, 0.65743301,
       0.56226566, 0.15006226])"#,
        );
    }

    #[test]
    fn wrap_2d() {
        // np.random.default_rng(3).standard_normal((2, 9))
        check(
            t::<f64>(
                &[2, 9],
                vec![
                    2.0409191213851825,
                    -2.5556650313141818,
                    0.41809884672577885,
                    -0.5677696061279298,
                    -0.45264929211044586,
                    -0.2155971630897659,
                    -2.019986129147251,
                    -0.23193237764418947,
                    -0.8652130762749417,
                    3.3229995166448827,
                    0.22578661322792176,
                    -0.3526307943415954,
                    -0.2812874181513504,
                    -0.6680463461089501,
                    -1.0551505512051214,
                    -0.39080097723465473,
                    0.48194538850678587,
                    -0.2385536065733667,
                ],
            ),
            r#"array([[ 2.04091912, -2.55566503,  0.41809885, -0.56776961, -0.45264929,
        -0.21559716, -2.01998613, -0.23193238, -0.86521308],
       [ 3.32299952,  0.22578661, -0.35263079, -0.28128742, -0.66804635,
        -1.05515055, -0.39080098,  0.48194539, -0.23855361]])"#,
        );
    }

    #[test]
    fn dtype_on_new_line() {
        // np.arange(10, dtype=np.int32) * 1000
        check(
            TensorData::I32(ArrayD::from_shape_vec(IxDyn(&[10]), (0..10).map(|i| i * 1000).collect()).unwrap()),
            r#"array([   0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000],
      dtype=int32)"#,
        );
    }

    #[test]
    fn float32_wrap_dtype() {
        // np.arange(5, dtype=np.float32) / 7
        check(
            TensorData::F32(ArrayD::from_shape_vec(IxDyn(&[5]), (0..5).map(|i| i as f32 / 7.0).collect()).unwrap()),
            r#"array([0.        , 0.14285715, 0.2857143 , 0.42857143, 0.5714286 ],
      dtype=float32)"#,
        );
    }

    #[test]
    fn summary_1d() {
        // np.arange(2000.)
        check(
            TensorData::F64(ArrayD::from_shape_vec(IxDyn(&[2000]), (0..2000).map(f64::from).collect()).unwrap()),
            r#"array([0.000e+00, 1.000e+00, 2.000e+00, ..., 1.997e+03, 1.998e+03,
       1.999e+03], shape=(2000,))"#,
        );
    }

    #[test]
    fn summary_2d() {
        // np.arange(10000).reshape(100, 100) / 7
        check(
            TensorData::F64(
                ArrayD::from_shape_vec(IxDyn(&[100, 100]), (0..10000).map(|i| f64::from(i) / 7.0).collect()).unwrap(),
            ),
            r#"array([[0.00000000e+00, 1.42857143e-01, 2.85714286e-01, ...,
        1.38571429e+01, 1.40000000e+01, 1.41428571e+01],
       [1.42857143e+01, 1.44285714e+01, 1.45714286e+01, ...,
        2.81428571e+01, 2.82857143e+01, 2.84285714e+01],
       [2.85714286e+01, 2.87142857e+01, 2.88571429e+01, ...,
        4.24285714e+01, 4.25714286e+01, 4.27142857e+01],
       ...,
       [1.38571429e+03, 1.38585714e+03, 1.38600000e+03, ...,
        1.39957143e+03, 1.39971429e+03, 1.39985714e+03],
       [1.40000000e+03, 1.40014286e+03, 1.40028571e+03, ...,
        1.41385714e+03, 1.41400000e+03, 1.41414286e+03],
       [1.41428571e+03, 1.41442857e+03, 1.41457143e+03, ...,
        1.42814286e+03, 1.42828571e+03, 1.42842857e+03]], shape=(100, 100))"#,
        );
    }

    #[test]
    fn summary_int_2d() {
        // np.arange(10000, dtype=np.int32).reshape(100, 100)
        check(
            TensorData::I32(ArrayD::from_shape_vec(IxDyn(&[100, 100]), (0..10000).collect()).unwrap()),
            r#"array([[   0,    1,    2, ...,   97,   98,   99],
       [ 100,  101,  102, ...,  197,  198,  199],
       [ 200,  201,  202, ...,  297,  298,  299],
       ...,
       [9700, 9701, 9702, ..., 9797, 9798, 9799],
       [9800, 9801, 9802, ..., 9897, 9898, 9899],
       [9900, 9901, 9902, ..., 9997, 9998, 9999]],
      shape=(100, 100), dtype=int32)"#,
        );
    }

    #[test]
    fn summary_3d() {
        // (np.arange(10000) * 3).reshape(10, 10, 100) % 7 == 0
        check(
            TensorData::Bool(
                ArrayD::from_shape_vec(IxDyn(&[10, 10, 100]), (0..10000).map(|i| i * 3 % 7 == 0).collect()).unwrap(),
            ),
            r#"array([[[ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False],
        [False, False, False, ..., False, False, False],
        ...,
        [ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False],
        [False, False, False, ..., False, False, False]],

       [[False,  True, False, ..., False, False,  True],
        [False, False, False, ...,  True, False, False],
        [False, False, False, ..., False, False, False],
        ...,
        [False,  True, False, ..., False, False,  True],
        [False, False, False, ...,  True, False, False],
        [False, False, False, ..., False, False, False]],

       [[False, False,  True, ..., False, False, False],
        [ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False],
        ...,
        [False, False,  True, ..., False, False, False],
        [ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False]],

       ...,

       [[ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False],
        [False, False, False, ..., False, False, False],
        ...,
        [ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False],
        [False, False, False, ..., False, False, False]],

       [[False,  True, False, ..., False, False,  True],
        [False, False, False, ...,  True, False, False],
        [False, False, False, ..., False, False, False],
        ...,
        [False,  True, False, ..., False, False,  True],
        [False, False, False, ...,  True, False, False],
        [False, False, False, ..., False, False, False]],

       [[False, False,  True, ..., False, False, False],
        [ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False],
        ...,
        [False, False,  True, ..., False, False, False],
        [ True, False, False, ..., False,  True, False],
        [False, False, False, ..., False, False, False]]],
      shape=(10, 10, 100))"#,
        );
    }

    #[test]
    fn summary_bools() {
        // np.arange(1001) % 3 == 0
        check(
            TensorData::Bool(ArrayD::from_shape_vec(IxDyn(&[1001]), (0..1001).map(|i| i % 3 == 0).collect()).unwrap()),
            r#"array([ True, False, False, ..., False,  True, False], shape=(1001,))"#,
        );
    }
}
