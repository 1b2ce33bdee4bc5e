//! criterion benches of the local backend on the anchor workloads
//! (../shared/bench): W1, W1 over held x, W2, W3, W7 and tiling scale.
//! `MARS_BENCH_SCALE` (default 1.0) shrinks the sizes for a quick run, e.g.
//! `MARS_BENCH_SCALE=0.1 cargo bench -p mars --bench workloads`.

use criterion::{criterion_group, criterion_main, Criterion};
use mars::prelude::*;
use mars::tensor as mt;
use std::time::Duration;

/// mimalloc, freed pages kept a while: see [`mars::alloc`]
#[global_allocator]
static GLOBAL: mars::alloc::MiMalloc = mars::alloc::MiMalloc;

fn scale() -> f64 {
    std::env::var("MARS_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(1)
}

fn run(t: &mt::Tensor, s: &Session) -> f64 {
    t.execute_in(s).expect("executes").fetch_in(s).expect("fetches").to_f64_vec()[0]
}

fn workloads(c: &mut Criterion) {
    mars::alloc::keep_freed_pages();
    let rows = scaled(20_000);
    let mut g = c.benchmark_group("tensor");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    let s = mars::new_session().expect("session");

    g.bench_function("W1 generate + ((x+1)*2).sum()", |b| {
        b.iter(|| {
            let x = mt::random::RandomState::new(0).rand(&[rows, 5000]).rechunk(&[rows.div_ceil(10), 5000]);
            run(&((&x + 1.0) * 2.0).sum(), &s)
        })
    });

    let x = mt::random::RandomState::new(0).rand(&[rows, 5000]).rechunk(&[rows.div_ceil(10), 5000]);
    x.execute_in(&s).expect("x");
    g.bench_function("W1 over held x", |b| b.iter(|| run(&((&x + 1.0) * 2.0).sum(), &s)));
    g.bench_function("W3 mean(axis 0) + std(axis 1) over held x", |b| {
        b.iter(|| {
            let (m, sd) = (x.mean_axis(0), x.std_axis(1));
            s.execute(&[&m, &sd]).expect("executes");
            (m.fetch_in(&s).expect("m").len(), sd.fetch_in(&s).expect("sd").len())
        })
    });
    drop(x);

    let n = scaled(4096);
    let rs = mt::random::RandomState::new(1);
    let (a, bm) = (rs.rand(&[n, n]).rechunk(n.div_ceil(4)), rs.rand(&[n, n]).rechunk(n.div_ceil(4)));
    s.execute(&[&a, &bm]).expect("a, b");
    g.bench_function("W2 a.dot(b).sum()", |b| b.iter(|| run(&a.dot(&bm).sum(), &s)));
    drop((a, bm));

    let side = scaled(1000).max(10);
    g.bench_function("W7 (ones.rechunk(10) + 1).sum(), 10k chunks", |b| {
        b.iter(|| run(&(mt::ones(&[side, side]).rechunk(10) + 1.0).sum(), &s))
    });
    g.bench_function("W7 with random data (no identical chunks)", |b| {
        b.iter(|| run(&(mt::random::RandomState::new(2).rand(&[side, side]).rechunk(10) + 1.0).sum(), &s))
    });
    let len = scaled(10_000_000).max(10);
    g.bench_function("tiling scale: (ones(10M).rechunk(10) * 3).sum(), 1M chunks", |b| {
        b.iter(|| run(&(mt::ones(&[len]).rechunk(10) * 3.0).sum(), &s))
    });
    g.finish();
}

criterion_group!(benches, workloads);
criterion_main!(benches);
