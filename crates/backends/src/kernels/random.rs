//! Counter-based random streams: element `g` (its flat index in the whole
//! tensor) of a stream with seed `s` is a pure function of `(s, g)`, so values
//! do not depend on chunking or on the number of threads.

use mars_ir::op::Distribution;
use mars_ir::TensorData;
use ndarray::{ArrayD, IxDyn};

#[inline]
fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

#[inline]
pub fn bits(seed: u64, counter: u64) -> u64 {
    let k = mix(seed.wrapping_add(0x243f6a8885a308d3));
    mix(k ^ counter.wrapping_mul(0x9e3779b97f4a7c15).wrapping_add(0x632be59bd9b4e019))
}

#[inline]
pub fn uniform(seed: u64, counter: u64) -> f64 {
    (bits(seed, counter) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[inline]
fn normal(seed: u64, g: u64) -> f64 {
    let u1 = uniform(seed, 2 * g);
    let u2 = uniform(seed, 2 * g + 1);
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The block at `offset` with `shape` of a `global` random tensor.
pub fn generate(seed: u64, dist: Distribution, global: &[usize], offset: &[usize], shape: &[usize]) -> TensorData {
    let total: usize = shape.iter().product();
    let nd = shape.len();
    let inner = if nd == 0 { 1 } else { shape[nd - 1] };
    let rows = total.checked_div(inner).unwrap_or(0);
    // global flat index of the first element of local row `r`
    let row_start = |r: usize| -> u64 {
        let mut idx = vec![0usize; nd];
        let mut rem = r;
        for a in (0..nd.saturating_sub(1)).rev() {
            idx[a] = rem % shape[a];
            rem /= shape[a];
        }
        (0..nd).fold(0u64, |g, a| g * global[a] as u64 + (offset[a] + idx[a]) as u64)
    };
    macro_rules! fill {
        ($t:ty, $f:expr) => {{
            let mut out: Vec<$t> = Vec::with_capacity(total);
            for r in 0..rows {
                let g0 = row_start(r);
                out.extend((0..inner as u64).map(|j| $f(g0 + j)));
            }
            ArrayD::from_shape_vec(IxDyn(shape), out)
        }};
    }
    let r = match dist {
        Distribution::Uniform => fill!(f64, |g| uniform(seed, g)).map(TensorData::F64),
        Distribution::Normal => fill!(f64, |g| normal(seed, g)).map(TensorData::F64),
        Distribution::RandInt { low, high } => {
            let range = (high - low) as u64 as u128;
            fill!(i64, |g| low + ((bits(seed, g) as u128 * range) >> 64) as i64).map(TensorData::I64)
        }
    };
    // shape and length agree by construction
    r.unwrap_or_else(|_| TensorData::zeros(mars_ir::DType::Float64, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_agree_with_the_whole() {
        let whole = generate(7, Distribution::Uniform, &[5, 7], &[0, 0], &[5, 7]);
        let part = generate(7, Distribution::Uniform, &[5, 7], &[2, 3], &[3, 4]);
        assert_eq!(part, whole.slice_ranges(&[(2, 5), (3, 7)]));
        let v = whole.to_f64_vec();
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 0.5).abs() < 0.15, "{mean}");
        let n = generate(1, Distribution::Normal, &[20000], &[0], &[20000]).to_f64_vec();
        let m = n.iter().sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n.len() as f64;
        assert!(m.abs() < 0.05 && (var - 1.0).abs() < 0.05, "{m} {var}");
        let ints = generate(3, Distribution::RandInt { low: -2, high: 3 }, &[1000], &[0], &[1000]).to_f64_vec();
        assert!(ints.iter().all(|&x| (-2.0..3.0).contains(&x)));
        assert!(ints.contains(&-2.0) && ints.contains(&2.0));
    }
}
