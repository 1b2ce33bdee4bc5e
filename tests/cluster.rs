//! The cluster backend with real processes: a supervisor and workers started
//! on 127.0.0.1 by the tests (the `mars` binary's subcommands), results
//! compared with the local backend, sessions isolated, holds released, the
//! token required, unreachable addresses a clear error in seconds.

use mars::arrow::array::{ArrayRef, Float64Array, Int64Array};
use mars::dataframe as md;
use mars::prelude::*;
use mars::tensor as mt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One cluster for the tests that do not stop processes.
fn cluster() -> &'static mars::LocalCluster {
    static C: OnceLock<mars::LocalCluster> = OnceLock::new();
    C.get_or_init(|| mars::new_cluster(2).expect("a local cluster"))
}

fn f64s(d: mt::TensorData) -> Vec<f64> {
    d.to_f64_vec()
}

/// Cluster-wide counters (every session's), once releases have reached the workers.
fn settled_chunks(c: &mars::LocalCluster, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = mars_cluster::client::cluster_stats(c.address(), c.token()).expect("stats");
        let on_workers: u64 = s.workers.iter().map(|w| w.chunks_held).sum();
        if (s.chunks_held == want && on_workers == want) || Instant::now() > deadline {
            return s.chunks_held.max(on_workers);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tensors_agree_with_the_local_backend() -> Result<()> {
    let c = cluster();
    let (remote, local) = (c.session()?, mars::new_session()?);
    let rs = mt::random::RandomState::new(7);
    let x = rs.randn(&[300, 70]).rechunk(&[64, 30]);
    let y = rs.rand(&[70, 50]).rechunk(&[30, 17]);
    let cases: Vec<(&str, mt::Tensor)> = vec![
        ("sum", x.sum()),
        ("mean axis 0", x.mean_axis(0)),
        ("std axis 1", x.std_axis(1)),
        ("matmul", x.dot(&y)),
        ("elementwise", (&x * 2.0 + 1.0).exp().sum_axis(1)),
        ("arange", mt::arange(0.0, 1000.0, 1.0).rechunk(7) * 3.0),
    ];
    for (what, t) in cases {
        let a = f64s(t.execute_in(&remote)?.fetch_in(&remote)?);
        let b = f64s(t.execute_in(&local)?.fetch_in(&local)?);
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            assert!(p.to_bits() == q.to_bits(), "{what}: element {i}: cluster {p} local {q}");
        }
    }
    Ok(())
}

#[test]
fn user_data_goes_in_by_reference_and_sessions_are_isolated() -> Result<()> {
    let c = cluster();
    let (s1, s2) = (c.session()?, c.session()?);
    let data = mars::ndarray::arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let a = mt::tensor(data).rechunk(&[1, 2]);
    let total = (&a * 2.0).sum();
    total.execute_in(&s1)?;
    assert_eq!(total.fetch_in(&s1)?.to_string(), "array(42.)");
    let err = total.fetch_in(&s2).unwrap_err();
    assert!(err.to_string().contains("must be executed first"), "{err}");
    assert_eq!(s1.stats()?.results_held, 2, "the data and the sum");
    drop(total);
    drop(a);
    assert_eq!(s1.stats()?.results_held, 0);
    Ok(())
}

#[test]
fn frames_agree_with_the_local_backend() -> Result<()> {
    let c = cluster();
    let (remote, local) = (c.session()?, mars::new_session()?);
    let n = 5000;
    let k: Vec<i64> = (0..n).map(|i| (i * 7919) % 97).collect();
    let v: Vec<f64> = (0..n).map(|i| ((i * 31) % 1000) as f64 / 10.0).collect();
    let df = md::DataFrame::from_columns(vec![
        ("k", Arc::new(Int64Array::from(k)) as ArrayRef),
        ("v", Arc::new(Float64Array::from(v)) as ArrayRef),
    ])?
    .rechunk(700);
    let g = df.groupby(&["k"])?.agg(&[("v", "sum"), ("v", "mean"), ("v", "count")])?;
    let sorted = df.sort_values(&["v"], true)?;
    for (what, f) in [("groupby", g), ("sort", sorted)] {
        let a = f.execute_in(&remote)?.fetch_in(&remote)?;
        let b = f.execute_in(&local)?.fetch_in(&local)?;
        assert_eq!(a.to_string(), b.to_string(), "{what}");
    }
    Ok(())
}

#[test]
fn closing_a_session_frees_worker_memory() -> Result<()> {
    let c = mars::new_cluster(2)?;
    let s = c.session()?;
    let x = mt::random::RandomState::new(1).rand(&[100, 10]).rechunk(&[10, 10]) * 3.0;
    x.execute_in(&s)?;
    assert_eq!(settled_chunks(&c, 10), 10);
    s.close()?;
    assert_eq!(settled_chunks(&c, 0), 0);
    Ok(())
}

#[test]
fn the_token_is_required() {
    let c = cluster();
    let wrong = Session::builder().address(c.address()).token("not-the-token").build().unwrap_err();
    assert!(wrong.to_string().contains("unauthenticated"), "{wrong}");
    let empty = Session::builder().address(c.address()).token("").build().unwrap_err();
    assert!(empty.to_string().contains("unauthenticated"), "{empty}");
    assert!(Session::builder().address(c.address()).token(c.token()).build().is_ok());
}

#[test]
fn an_unreachable_cluster_is_an_error_within_seconds() {
    let t = Instant::now();
    let err = Session::builder().address("http://127.0.0.1:1").token("x").build().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    let bad = Session::builder().address("127.0.0.1:7777").token("x").build().unwrap_err();
    assert!(bad.to_string().contains("http://host:port"), "{bad}");
}

// ---- workers lost: Dask's failed-worker scenarios, ported -----------------

/// A cluster with fast liveness: a worker silent for 1 s is removed.
fn fragile_cluster(workers: usize) -> mars::LocalCluster {
    let timing = mars_cluster::supervisor::Timing {
        heartbeat: Duration::from_millis(100),
        worker_ttl: Duration::from_millis(1000),
        lease: Duration::from_secs(30),
    };
    let opts = mars_cluster::LocalClusterOptions { threads: Some(1), timing: Some(timing), ..Default::default() };
    mars::LocalCluster::start(workers, &opts).expect("a local cluster")
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill runs").success();
    assert!(ok, "kill {sig} {pid}");
}

/// Run `t` on the cluster, sending each signal `(after, pid, sig)` once the
/// cluster has run `after` chunks of it, and on the local backend: the
/// values must be the same, bit for bit, and the execute must have still
/// been running when the last signal went.
fn survives(c: &mars::LocalCluster, t: &mt::Tensor, signals: &[(u64, u32, &str)]) -> Result<()> {
    let s = c.session()?;
    let local = mars::new_session()?;
    let want = f64s(t.execute_in(&local)?.fetch_in(&local)?);
    let base = mars_cluster::client::cluster_stats(c.address(), c.token()).expect("stats").chunks_run;
    let (got, signalled) = std::thread::scope(|scope| {
        let h = scope.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            for &(after, pid, sig) in signals {
                while Instant::now() < deadline {
                    let run = mars_cluster::client::cluster_stats(c.address(), c.token()).map_or(0, |s| s.chunks_run);
                    if run >= base + after {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                signal(pid, sig);
            }
            Instant::now()
        });
        let got = t.execute_in(&s).map(|_| Instant::now());
        (got, h.join().expect("the signalling thread"))
    });
    assert!(got? > signalled, "the execute ended before the last signal was sent");
    let got = f64s(t.fetch_in(&s)?);
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(a.to_bits() == b.to_bits(), "element {i}: cluster {a} local {b}");
    }
    Ok(())
}

/// A tree reduction over 1600 chunks.
fn long_reduction(seed: u64) -> mt::Tensor {
    let x = mt::random::RandomState::new(seed).rand(&[4000, 4000]).rechunk(&[100, 100]);
    (x.exp() * 2.0 + 1.0).sqrt().sum_axis(0)
}

#[test]
fn a_worker_killed_mid_reduction_is_recomputed_around() -> Result<()> {
    let c = fragile_cluster(3);
    let victim = c.pids().1[1];
    survives(&c, &long_reduction(11), &[(300, victim, "-KILL")])
}

#[test]
fn a_worker_killed_mid_matmul_is_recomputed_around() -> Result<()> {
    let c = fragile_cluster(3);
    let victim = c.pids().1[0];
    let rs = mt::random::RandomState::new(5);
    let (a, b) = (rs.rand(&[1600, 1600]).rechunk(&[200, 200]), rs.rand(&[1600, 1600]).rechunk(&[200, 200]));
    survives(&c, &a.dot(&b).sum_axis(1), &[(150, victim, "-KILL")])
}

#[test]
fn two_workers_killed_in_one_execute() -> Result<()> {
    let c = fragile_cluster(4);
    let pids = c.pids().1;
    survives(&c, &long_reduction(12), &[(200, pids[0], "-KILL"), (700, pids[2], "-KILL")])
}

#[test]
fn held_results_of_a_killed_worker_are_made_again() -> Result<()> {
    let c = fragile_cluster(3);
    let s = c.session()?;
    let x = mt::random::RandomState::new(3).rand(&[400, 300]).rechunk(&[50, 50]) * 3.0;
    x.execute_in(&s)?;
    let local = mars::new_session()?;
    let want = f64s(x.execute_in(&local)?.fetch_in(&local)?);
    signal(c.pids().1[0], "-KILL");
    // the fetch waits for the lost chunks to be made again on the others
    let got = f64s(x.fetch_in(&s)?);
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
    // and an execute reading them works too
    let total = x.sum();
    let t = f64s(total.execute_in(&s)?.fetch_in(&s)?);
    assert_eq!(t[0].to_bits(), f64s(total.execute_in(&local)?.fetch_in(&local)?)[0].to_bits());
    drop((x, total));
    assert_eq!(settled_chunks(&c, 0), 0, "nothing is left held");
    Ok(())
}

#[test]
fn a_stopped_worker_is_removed_after_its_ttl() -> Result<()> {
    let c = fragile_cluster(3);
    let victim = c.pids().1[2];
    let r = survives(&c, &long_reduction(13), &[(200, victim, "-STOP")]);
    signal(victim, "-CONT");
    r?;
    // it comes back as a new worker (its late reports were ignored)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = mars_cluster::client::cluster_stats(c.address(), c.token()).expect("stats");
        if s.workers.len() == 3 || Instant::now() > deadline {
            assert_eq!(s.workers.len(), 3, "the stopped worker registers again");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

// ---- TLS, the supervisor lost, the retry limit, results past memory ---------

/// A fresh self-signed certificate for 127.0.0.1 and localhost, written to
/// `dir` as cert.pem and key.pem.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).expect("a temp dir");
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

#[test]
fn tls_serves_the_whole_cluster_over_https() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("mars-tls-test-{}", std::process::id()));
    let (cert, key) = self_signed(&dir);
    let opts = mars_cluster::LocalClusterOptions {
        threads: Some(1),
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..Default::default()
    };
    let c = mars::LocalCluster::start(2, &opts)?;
    assert!(c.address().starts_with("https://"), "{}", c.address());
    // client -> supervisor, supervisor -> workers, worker -> worker (the
    // reversed operand lives on the other worker), worker -> client: all TLS
    let s = c.session()?;
    let x = mt::random::RandomState::new(21).rand(&[400, 300]).rechunk(&[50, 300]);
    let y = (&x + &x.slice(mars::ndarray::s![..;-1, ..])) * 0.5;
    let local = mars::new_session()?;
    let want = f64s(y.execute_in(&local)?.fetch_in(&local)?);
    let got = f64s(y.execute_in(&s)?.fetch_in(&s)?);
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
    let st = mars_cluster::client::cluster_stats(c.address(), c.token());
    // (cluster_stats trusts MARS_TLS_CA, unset here: the certificate is unknown)
    let err = st.unwrap_err().to_string();
    assert!(err.contains("certificate") || err.contains("tls") || err.contains("TLS"), "{err}");

    // a client trusting another certificate is refused, within seconds
    let (other, _) = self_signed(&dir.join("other"));
    let t = Instant::now();
    let err = Session::builder().address(c.address()).token(c.token()).tls_ca(&other).build().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(err.to_string().contains(c.address()), "{err}");
    // plain http to the TLS port is no session either
    let plain = c.address().replace("https://", "http://");
    let err = Session::builder().address(&plain).token(c.token()).build().unwrap_err();
    assert!(err.to_string().contains(&plain), "{err}");
    // a certificate file that is not PEM is named
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let err = Session::builder().address(c.address()).token(c.token()).tls_ca(&junk).build().unwrap_err();
    assert!(err.to_string().contains("junk.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn losing_the_supervisor_is_an_error_within_seconds() -> Result<()> {
    let c = fragile_cluster(2);
    let s = c.session()?;
    let x = mt::random::RandomState::new(4).rand(&[100, 100]).rechunk(&[50, 50]);
    x.execute_in(&s)?;
    let long = long_reduction(14);
    let (sup, _) = c.pids();
    let t = std::thread::scope(|scope| {
        let h = scope.spawn(|| {
            // kill it once the execute is under way
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let run = mars_cluster::client::cluster_stats(c.address(), c.token()).map_or(0, |s| s.chunks_run);
                if run >= 100 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            signal(sup, "-KILL");
            Instant::now()
        });
        let r = long.execute_in(&s);
        let killed = h.join().expect("the killing thread");
        (r, killed)
    });
    let (r, killed) = t;
    let err = r.unwrap_err();
    assert!(killed.elapsed() < Duration::from_secs(10), "the execute noticed after {:?}", killed.elapsed());
    assert!(err.to_string().contains(c.address()), "{err}");
    // later calls fail fast too, naming the address
    let t = Instant::now();
    let err = x.fetch_in(&s).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(err.to_string().contains(c.address()), "{err}");
    Ok(())
}

#[test]
fn a_chunk_that_keeps_killing_its_worker_fails_the_execute_naming_its_op() -> Result<()> {
    // workers whose address space is capped: a chunk of 4 GiB aborts each one
    // that tries to make it (as a task that crashes its worker in Dask)
    let timing = mars_cluster::supervisor::Timing {
        heartbeat: Duration::from_millis(100),
        worker_ttl: Duration::from_millis(1000),
        lease: Duration::from_secs(30),
    };
    let opts = mars_cluster::LocalClusterOptions { timing: Some(timing), ..Default::default() };
    let c = mars_cluster::ClusterProcesses::start(0, &opts).expect("a supervisor");
    let bin = mars_cluster::process::mars_binary();
    let mut workers = Vec::new();
    for _ in 0..mars_cluster::schedule::LOSS_RETRIES + 2 {
        let cmd = format!(
            "ulimit -v 1500000; exec '{}' worker --supervisor {} --threads 1 --watch-stdin",
            bin.display(),
            c.address()
        );
        let w = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .env("MARS_TOKEN", c.token())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("a worker");
        workers.push(w);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while mars_cluster::client::cluster_stats(c.address(), c.token()).map_or(0, |s| s.workers.len()) < workers.len() {
        assert!(Instant::now() < deadline, "the workers did not register");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = Session::builder().address(c.address()).token(c.token()).chunk_bytes(8 << 30).build()?;
    let small = mt::random::RandomState::new(2).rand(&[10, 10]) + 1.0;
    small.execute_in(&s)?;
    let huge = mt::ones(&[1 << 16, 1 << 13]) * 2.0;
    let t = Instant::now();
    let err = huge.sum().execute_in(&s).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let msg = err.to_string();
    assert!(msg.contains("lost with its worker 4 times") && msg.contains("Full"), "{msg}");
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    Ok(())
}

#[test]
fn a_result_larger_than_a_workers_memory_limit_spills_and_fetches() -> Result<()> {
    let limit = 8 << 20;
    let opts = mars_cluster::LocalClusterOptions { threads: Some(1), memory_limit: Some(limit), ..Default::default() };
    let c = mars::LocalCluster::start(2, &opts)?;
    let s = c.session()?;
    // 32 MiB held over two workers of 8 MiB each: most of it on disk
    let x = mt::random::RandomState::new(8).rand(&[2048, 2048]).rechunk(&[256, 2048]) * 2.0;
    let local = mars::new_session()?;
    let want = f64s(x.execute_in(&local)?.fetch_in(&local)?);
    x.execute_in(&s)?;
    // (workers report their counters with each heartbeat)
    let deadline = Instant::now() + Duration::from_secs(5);
    let st = loop {
        let st = mars_cluster::client::cluster_stats(c.address(), c.token()).expect("stats");
        let spilled: u64 = st.workers.iter().map(|w| w.bytes_spilled).sum();
        if spilled >= 8 << 20 || Instant::now() > deadline {
            assert!(spilled >= 8 << 20, "only {spilled} bytes spilled: {:?}", st.workers);
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for w in &st.workers {
        assert!(w.bytes_held <= limit as u64 + (4 << 20), "worker {} holds {} in memory", w.address, w.bytes_held);
    }
    let got = f64s(x.fetch_in(&s)?);
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
    // and a reduction over it reads the spilled chunks back
    let total = x.sum();
    let a = f64s(total.execute_in(&s)?.fetch_in(&s)?);
    let b = f64s(total.execute_in(&local)?.fetch_in(&local)?);
    assert_eq!(a[0].to_bits(), b[0].to_bits());
    Ok(())
}
