//! The hot element loops, compiled for the widest vector instructions the CPU
//! has and chosen at run time.
//!
//! The crate is compiled for baseline x86-64 (SSE2: two f64 lanes, no 64-bit
//! vector multiply). Each loop here is the body of a `pulp::WithSimd` op whose
//! `with_simd` is `#[inline(always)]`, so `pulp` compiles it once per
//! instruction set (AVX-512, AVX2, baseline) and runs the best the CPU has.

use mars_ir::BinaryFn;

/// Define a dispatched op: a struct of the named fields whose body runs under
/// the best instruction set.
macro_rules! simd_op {
    ($(#[$m:meta])* $name:ident<$lt:lifetime> { $($field:ident : $ty:ty),* $(,)? } -> $out:ty $body:block) => {
        $(#[$m])*
        #[derive(Debug)]
        pub(crate) struct $name<$lt> {
            $(pub(crate) $field: $ty),*
        }
        impl<$lt> pulp::WithSimd for $name<$lt> {
            type Output = $out;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) -> $out {
                let $name { $($field),* } = self;
                $body
            }
        }
        impl<$lt> $name<$lt> {
            /// Run under the best instruction set available.
            #[inline]
            pub(crate) fn run(self) -> $out {
                pulp::Arch::new().dispatch(self)
            }
        }
    };
}
pub(crate) use simd_op;

simd_op! {
    /// `x op c` (or `c op x` when `swap`), in place.
    ScalarOp<'a> { f: BinaryFn, x: &'a mut [f64], c: f64, swap: bool } -> () {
        match (f, swap) {
            (BinaryFn::Add, _) => x.iter_mut().for_each(|p| *p += c),
            (BinaryFn::Mul, _) => x.iter_mut().for_each(|p| *p *= c),
            (BinaryFn::Sub, false) => x.iter_mut().for_each(|p| *p -= c),
            (BinaryFn::Sub, true) => x.iter_mut().for_each(|p| *p = c - *p),
            (BinaryFn::Div, false) => x.iter_mut().for_each(|p| *p /= c),
            (BinaryFn::Div, true) => x.iter_mut().for_each(|p| *p = c / *p),
            (BinaryFn::Pow, false) if c == 2.0 => x.iter_mut().for_each(|p| *p *= *p),
            (BinaryFn::Pow, true) => x.iter_mut().for_each(|p| *p = c.powf(*p)),
            // only arithmetic reaches here (callers route comparisons and logic elsewhere)
            _ => x.iter_mut().for_each(|p| *p = p.powf(c)),
        }
    }
}

simd_op! {
    /// `out = src op c` (or `c op src` when `swap`): a load fused with the first operation.
    ScalarOpFrom<'a> { f: BinaryFn, src: &'a [f64], out: &'a mut Vec<f64>, c: f64, swap: bool } -> () {
        let s = src.iter();
        match (f, swap) {
            (BinaryFn::Add, _) => out.extend(s.map(|p| p + c)),
            (BinaryFn::Mul, _) => out.extend(s.map(|p| p * c)),
            (BinaryFn::Sub, false) => out.extend(s.map(|p| p - c)),
            (BinaryFn::Sub, true) => out.extend(s.map(|p| c - p)),
            (BinaryFn::Div, false) => out.extend(s.map(|p| p / c)),
            (BinaryFn::Div, true) => out.extend(s.map(|p| c / p)),
            (BinaryFn::Pow, false) if c == 2.0 => out.extend(s.map(|p| p * p)),
            (BinaryFn::Pow, true) => out.extend(s.map(|p| c.powf(*p))),
            _ => out.extend(s.map(|p| p.powf(c))),
        }
    }
}

simd_op! {
    /// `x op y` element-wise, in place (arithmetic only).
    BinaryOp<'a> { f: BinaryFn, x: &'a mut [f64], y: &'a [f64] } -> () {
        let z = x.iter_mut().zip(y);
        match f {
            BinaryFn::Add => z.for_each(|(p, &q)| *p += q),
            BinaryFn::Sub => z.for_each(|(p, &q)| *p -= q),
            BinaryFn::Mul => z.for_each(|(p, &q)| *p *= q),
            BinaryFn::Div => z.for_each(|(p, &q)| *p /= q),
            _ => z.for_each(|(p, &q)| *p = p.powf(q)),
        }
    }
}

simd_op! {
    /// The sum of `v` over 16 independent lanes (two AVX-512 registers of adds in flight).
    Sum<'a> { v: &'a [f64] } -> f64 {
        let mut lanes = [0.0f64; 16];
        let mut it = v.chunks_exact(16);
        for c in &mut it {
            for (l, x) in lanes.iter_mut().zip(c) {
                *l += x;
            }
        }
        let tail: f64 = it.remainder().iter().sum();
        lanes.iter().sum::<f64>() + tail
    }
}

simd_op! {
    /// `sum((v - m)^2)` over 16 independent lanes.
    SumSqDev<'a> { v: &'a [f64], m: f64 } -> f64 {
        let mut lanes = [0.0f64; 16];
        let mut it = v.chunks_exact(16);
        for c in &mut it {
            for (l, x) in lanes.iter_mut().zip(c) {
                *l += (x - m) * (x - m);
            }
        }
        let tail: f64 = it.remainder().iter().map(|x| (x - m) * (x - m)).sum();
        lanes.iter().sum::<f64>() + tail
    }
}

simd_op! {
    /// One Welford step per position: `mean += (x - mean) / n`, `m2 += d (x - mean)`.
    WelfordStep<'a> { mean: &'a mut [f64], m2: &'a mut [f64], v: &'a [f64], inv: f64 } -> () {
        for ((m, q), &x) in mean.iter_mut().zip(m2.iter_mut()).zip(v) {
            let d = x - *m;
            *m += d * inv;
            *q += d * (x - *m);
        }
    }
}

simd_op! {
    /// `acc[i] += v[i]`.
    AddInto<'a> { acc: &'a mut [f64], v: &'a [f64] } -> () {
        acc.iter_mut().zip(v).for_each(|(a, x)| *a += x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_match_plain_loops() {
        let v: Vec<f64> = (0..1037).map(|i| (i as f64 * 0.37).sin()).collect();
        let want: f64 = v.iter().sum();
        assert!((Sum { v: &v }.run() - want).abs() < 1e-9);
        let mut x = v.clone();
        ScalarOp { f: BinaryFn::Sub, x: &mut x, c: 2.0, swap: true }.run();
        assert!(x.iter().zip(&v).all(|(a, b)| *a == 2.0 - b));
        let mut y = v.clone();
        BinaryOp { f: BinaryFn::Mul, x: &mut y, y: &v }.run();
        assert!(y.iter().zip(&v).all(|(a, b)| *a == b * b));
        let m = 0.25;
        let want: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
        assert!((SumSqDev { v: &v, m }.run() - want).abs() < 1e-9);
        AddInto { acc: &mut y, v: &v }.run();
        assert!(y.iter().zip(&v).all(|(a, b)| *a == b * b + b));
    }
}

simd_op! {
    /// Bit `i` set when `v[i] - lo`, as an unsigned number, is at most
    /// `span` (`lo <= v[i] <= lo + span` without overflow), flipped with
    /// `negate`: 64 values to a word.
    RangeMask<'a> { v: &'a [i64], lo: i64, span: u64, negate: bool } -> Vec<u64> {
        let flip = if negate { u64::MAX } else { 0 };
        let mut words = Vec::with_capacity(v.len().div_ceil(64));
        let mut whole = v.chunks_exact(64);
        for c in &mut whole {
            let mut m = 0u64;
            for (j, &x) in c.iter().enumerate() {
                m |= u64::from(x.wrapping_sub(lo) as u64 <= span) << j;
            }
            words.push(m ^ flip);
        }
        let rest = whole.remainder();
        if !rest.is_empty() {
            let mut m = 0u64;
            for (j, &x) in rest.iter().enumerate() {
                m |= u64::from(x.wrapping_sub(lo) as u64 <= span) << j;
            }
            words.push((m ^ flip) & (u64::MAX >> (64 - rest.len())));
        }
        words
    }
}
