//! Counter-based random streams: element `g` (its flat index in the whole
//! tensor) of a stream with seed `s` is a pure function of `(s, g)`, so values
//! do not depend on chunking or on the number of threads.

use mars_ir::op::Distribution;
use mars_ir::{RandomLeaf, TensorData};
use ndarray::{ArrayD, IxDyn};

#[inline]
fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// One seed's stream: `bits(g)` is the g-th 64 random bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stream {
    key: u64,
}

impl Stream {
    fn new(seed: u64) -> Stream {
        Stream { key: mix(seed.wrapping_add(0x243f6a8885a308d3)) }
    }
    #[inline(always)]
    fn bits(self, counter: u64) -> u64 {
        mix(self.key ^ counter.wrapping_mul(0x9e3779b97f4a7c15).wrapping_add(0x632be59bd9b4e019))
    }
    /// Uniform on [0, 1) with 52 random mantissa bits: integer operations and
    /// one subtraction, which vectorise on every x86-64 level.
    #[inline(always)]
    fn uniform(self, counter: u64) -> f64 {
        f64::from_bits((self.bits(counter) >> 12) | 0x3ff0_0000_0000_0000) - 1.0
    }
    #[inline]
    fn normal(self, g: u64) -> f64 {
        let u1 = self.uniform(2 * g);
        let u2 = self.uniform(2 * g + 1);
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

super::simd::simd_op! {
    /// `out[j] = uniform(g0 + j)`.
    UniformRun<'a> { s: Stream, g0: u64, out: &'a mut [f64] } -> () {
        out.iter_mut().enumerate().for_each(|(j, o)| *o = s.uniform(g0 + j as u64));
    }
}

/// The `counter`-th 64 random bits of the stream `seed`.
pub fn bits(seed: u64, counter: u64) -> u64 {
    Stream::new(seed).bits(counter)
}

/// Split local flat positions `[start, end)` of the block at `offset` with
/// `shape` of a `global` tensor into runs consecutive in the whole tensor:
/// `f(global index of the run's first element, run length)`.
fn runs(global: &[usize], offset: &[usize], shape: &[usize], start: usize, end: usize, mut f: impl FnMut(u64, usize)) {
    let nd = shape.len();
    if start >= end {
        return;
    }
    // the block spans whole trailing axes: one run
    if nd == 0 || (shape[1..] == global[1..]) {
        let row: u64 = global.iter().skip(1).map(|&n| n as u64).product();
        f(offset.first().map_or(0, |&o| o as u64 * row) + start as u64, end - start);
        return;
    }
    let inner = shape[nd - 1];
    let mut idx = vec![0usize; nd];
    let mut pos = start;
    while pos < end {
        let (r, j) = (pos / inner, pos % inner);
        let mut rem = r;
        for a in (0..nd - 1).rev() {
            idx[a] = rem % shape[a];
            rem /= shape[a];
        }
        idx[nd - 1] = j;
        let g = (0..nd).fold(0u64, |g, a| g * global[a] as u64 + (offset[a] + idx[a]) as u64);
        let len = (inner - j).min(end - pos);
        f(g, len);
        pos += len;
    }
}

/// Values `[start, end)` (local flat positions) of a random block, as floats
/// (uniform, normal) or integers (randint).
pub fn fill(leaf: &RandomLeaf, start: usize, end: usize) -> Result<Vec<f64>, Vec<i64>> {
    let s = Stream::new(leaf.seed);
    let (g, o, sh) = (&leaf.global_shape, &leaf.offset, &leaf.shape);
    match leaf.dist {
        Distribution::Uniform => {
            let mut out = Vec::with_capacity(end - start);
            runs(g, o, sh, start, end, |g0, n| {
                let at = out.len();
                out.resize(at + n, 0.0);
                // the 64-bit multiplies of the mixer vectorise with AVX-512 or AVX2
                UniformRun { s, g0, out: &mut out[at..] }.run();
            });
            Ok(out)
        }
        Distribution::Normal => {
            let mut out = Vec::with_capacity(end - start);
            runs(g, o, sh, start, end, |g0, n| out.extend((g0..g0 + n as u64).map(|c| s.normal(c))));
            Ok(out)
        }
        Distribution::RandInt { low, high } => {
            let range = (high - low) as u64 as u128;
            let mut out = Vec::with_capacity(end - start);
            runs(g, o, sh, start, end, |g0, n| {
                out.extend((g0..g0 + n as u64).map(|c| low + ((s.bits(c) as u128 * range) >> 64) as i64))
            });
            Err(out)
        }
    }
}

/// The block at `offset` with `shape` of a `global` random tensor.
pub fn generate(seed: u64, dist: Distribution, global: &[usize], offset: &[usize], shape: &[usize]) -> TensorData {
    let leaf = RandomLeaf { seed, dist, global_shape: global.to_vec(), offset: offset.to_vec(), shape: shape.to_vec() };
    let total: usize = shape.iter().product();
    let r = match fill(&leaf, 0, total) {
        Ok(v) => ArrayD::from_shape_vec(IxDyn(shape), v).map(TensorData::F64),
        Err(v) => ArrayD::from_shape_vec(IxDyn(shape), v).map(TensorData::I64),
    };
    // shape and length agree by construction
    r.unwrap_or_else(|_| TensorData::zeros(leaf.dtype(), shape))
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

    #[test]
    fn ranges_of_any_block_match_the_whole() {
        for dist in [Distribution::Uniform, Distribution::Normal, Distribution::RandInt { low: 0, high: 100 }] {
            let whole = generate(5, dist, &[4, 6, 5], &[0, 0, 0], &[4, 6, 5]);
            for (offset, shape) in
                [([1, 2, 0], [2, 3, 5]), ([0, 0, 0], [4, 6, 5]), ([2, 0, 0], [2, 6, 5]), ([3, 5, 4], [1, 1, 1])]
            {
                let leaf = RandomLeaf {
                    seed: 5,
                    dist,
                    global_shape: vec![4, 6, 5],
                    offset: offset.to_vec(),
                    shape: shape.to_vec(),
                };
                let ranges: Vec<(usize, usize)> = offset.iter().zip(&shape).map(|(&o, &n)| (o, o + n)).collect();
                let want = whole.slice_ranges(&ranges).to_f64_vec();
                let total: usize = shape.iter().product();
                // in pieces that cut rows anywhere
                let mut got = Vec::new();
                let mut at = 0;
                while at < total {
                    let end = (at + 7).min(total);
                    match fill(&leaf, at, end) {
                        Ok(v) => got.extend(v),
                        Err(v) => got.extend(v.into_iter().map(|x| x as f64)),
                    }
                    at = end;
                }
                assert_eq!(got, want, "{dist:?} at {offset:?} of {shape:?}");
            }
        }
    }
}
