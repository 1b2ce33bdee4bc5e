//! Hostile requests against a real supervisor and worker (processes on
//! 127.0.0.1), sent with the raw gRPC and Flight clients: malformed fields,
//! mutated graphs and task batches, oversized messages. Each gets an error
//! status that names what was wrong (never Internal or Unknown), nothing
//! crashes, and the cluster keeps computing right answers afterwards.

use mars::prelude::*;
use mars::tensor as mt;
use mars_cluster::auth::AddToken;
use mars_cluster::proto;
use mars_cluster::proto::supervisor_client::SupervisorClient;
use mars_cluster::proto::worker_client::WorkerClient;
use mars_cluster::ClientTls;
use proptest::prelude::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

type Sup = SupervisorClient<InterceptedService<Channel, AddToken>>;
type Wrk = WorkerClient<InterceptedService<Channel, AddToken>>;

struct Fixture {
    cluster: mars_cluster::ClusterProcesses,
    rt: tokio::runtime::Runtime,
    sup: Sup,
    worker: Wrk,
    worker_address: String,
    token: AddToken,
    session: u64,
    /// A valid graph (bincode) computing `GRAPH_VALUE`, and its root key.
    graph: Vec<u8>,
    root: Vec<u8>,
    /// A valid launch batch: the graph's source chunks.
    batch: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let opts = mars_cluster::LocalClusterOptions { threads: Some(1), ..Default::default() };
        let cluster = mars_cluster::ClusterProcesses::start(1, &opts).expect("a cluster");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let token = AddToken::new(cluster.token()).expect("token");
        let tls = ClientTls::default();
        let (sup, session, worker, worker_address) = rt.block_on(async {
            let ch = mars_cluster::flight::channel(cluster.address(), &tls).expect("channel");
            let mut sup = SupervisorClient::with_interceptor(ch, token.clone())
                .max_encoding_message_size(usize::MAX)
                .max_decoding_message_size(usize::MAX);
            let session = sup
                .open_session(proto::OpenSessionRequest { name: "hostile".into() })
                .await
                .expect("a session")
                .into_inner()
                .session;
            let stats = sup.stats(proto::SessionRef { session }).await.expect("stats").into_inner();
            let address = stats.workers[0].address.clone();
            let ch = mars_cluster::flight::channel(&address, &tls).expect("channel");
            let worker = WorkerClient::with_interceptor(ch, token.clone()).max_encoding_message_size(usize::MAX);
            (sup, session, worker, address)
        });
        // a valid graph, as a client would send it
        let x = mt::arange(0.0, 100.0, 1.0).rechunk(30) * 2.0;
        let path = std::env::temp_dir().join(format!("mars-hostile-{}.json", std::process::id()));
        mars::save_graph(&[&x], &path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let (g, roots) = mars_ir::TileableGraph::from_json_with_roots(&text).expect("load");
        let graph = g.to_bytes().expect("bytes");
        let root = mars_cluster::wire::key_bytes(&roots[0]);
        let plan = mars_tiler::plan(g, &roots, mars_tiler::TileOptions::default(), false).expect("tiles");
        let tasks: Vec<mars_cluster::wire::Task> = plan
            .chunks
            .ids()
            .map(|id| plan.chunks.node(id))
            .filter(|n| n.inputs.is_empty())
            .map(|n| mars_cluster::wire::Task {
                key: n.key,
                op: n.op.clone(),
                shape: n.shape.clone(),
                dtype: n.dtype,
                index: n.index.clone(),
                inputs: vec![],
            })
            .collect();
        assert!(!tasks.is_empty());
        let batch = mars_cluster::wire::encode_tasks(&tasks).expect("encode");
        Fixture { cluster, rt, sup, worker, worker_address, token, session, graph, root, batch }
    })
}

const GRAPH_VALUE: f64 = 9900.0; // sum of 2 * (0..100)

/// Codes a bad request may get: it was refused for what it said.
fn refused(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::OutOfRange | Code::ResourceExhausted
    ) && !s.message().is_empty()
}

fn submit(
    f: &Fixture,
    graph: Vec<u8>,
    keep: Vec<Vec<u8>>,
    tile: Option<proto::TileOptions>,
) -> std::result::Result<u64, tonic::Status> {
    let mut sup = f.sup.clone();
    let req = proto::SubmitRequest { session: f.session, graph, tile, keep };
    f.rt.block_on(async move { sup.submit(req).await }).map(|r| r.into_inner().task)
}

/// Wait for a task (bounded); Ok(None) when it finished without a failure.
fn wait(f: &Fixture, task: u64) -> Option<proto::Failure> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut sup = f.sup.clone();
        let req = proto::WaitRequest { session: f.session, task, timeout_ms: 1000 };
        let r = f.rt.block_on(async move { sup.wait(req).await }).expect("wait answers").into_inner();
        if r.done {
            return r.failure;
        }
        assert!(Instant::now() < deadline, "task {task} did not finish");
    }
}

/// The supervisor and the worker still answer, and a real session still
/// gets exact answers.
fn still_healthy(f: &Fixture) {
    let mut sup = f.sup.clone();
    let session = f.session;
    let stats = f.rt.block_on(async move { sup.stats(proto::SessionRef { session }).await }).expect("stats");
    let w = &stats.into_inner().workers;
    assert!(w.len() == 1 && w[0].alive, "the worker is alive: {w:?}");
    let s = Session::builder().address(f.cluster.address()).token(f.cluster.token()).build().expect("a session");
    let y = (mt::arange(0.0, 100.0, 1.0).rechunk(30) * 2.0).sum();
    let v = y.execute_in(&s).expect("execute").fetch_in(&s).expect("fetch").to_f64_vec();
    assert_eq!(v, vec![GRAPH_VALUE]);
}

#[test]
fn the_valid_request_works() {
    let f = fixture();
    let task = submit(f, f.graph.clone(), vec![f.root.clone()], None).expect("submit");
    assert!(wait(f, task).is_none());
    still_healthy(f);
}

#[test]
fn malformed_fields_are_refused_naming_them() {
    let f = fixture();
    let check = |what: &str, r: std::result::Result<u64, tonic::Status>, needle: &str| {
        let s = r.expect_err(what);
        assert!(refused(&s), "{what}: {s:?}");
        assert!(s.message().contains(needle), "{what}: {:?} does not name {needle:?}", s.message());
    };
    check("garbage graph", submit(f, b"\x01\x02garbage".to_vec(), vec![], None), "graph");
    check("empty graph", submit(f, vec![], vec![], None), "graph");
    check("short key", submit(f, f.graph.clone(), vec![vec![1, 2, 3]], None), "key");
    // (zero is proto3's "unset": the default)
    let one = proto::TileOptions { chunk_bytes: 0, combine_size: 1, max_chunks: 0 };
    check("combine size 1", submit(f, f.graph.clone(), vec![f.root.clone()], Some(one)), "combine_size");
    let mut sup = f.sup.clone();
    let r = f.rt.block_on(async move {
        sup.submit(proto::SubmitRequest { session: 987_654, graph: vec![], tile: None, keep: vec![] }).await
    });
    check("unknown session", r.map(|r| r.into_inner().task), "session");
    let mut sup = f.sup.clone();
    let session = f.session;
    let r = f.rt.block_on(async move { sup.wait(proto::WaitRequest { session, task: 424_242, timeout_ms: 10 }).await });
    check("unknown task", r.map(|_| 0), "task");
    let mut sup = f.sup.clone();
    let r = f.rt.block_on(async move { sup.locate(proto::LocateRequest { session, key: vec![7; 5] }).await });
    check("locate with a short key", r.map(|_| 0), "key");
    let mut sup = f.sup.clone();
    let r = f.rt.block_on(async move { sup.release(proto::KeysRequest { session, keys: vec![vec![0; 40]] }).await });
    check("release with a long key", r.map(|_| 0), "key");
    let mut sup = f.sup.clone();
    let r = f.rt.block_on(async move { sup.put(proto::PutRequest { session, key: vec![] }).await });
    check("put with no key", r.map(|_| 0), "key");
    // to the worker: a launch batch that is not one, a ticket that is no key
    let mut w = f.worker.clone();
    let r = f.rt.block_on(async move { w.launch(proto::LaunchBatch { stage: 1, tasks: b"nonsense".to_vec() }).await });
    check("garbage launch batch", r.map(|_| 0), "launch batch");
    let _in_rt = f.rt.enter();
    let mut c = mars_cluster::flight::client(&f.worker_address, &f.token, &ClientTls::default()).expect("flight");
    let r = f.rt.block_on(async move {
        use futures::StreamExt;
        let mut s = c.do_get(arrow_flight::Ticket { ticket: vec![1, 2, 3].into() }).await?.into_inner();
        s.next().await.transpose().map(|_| 0)
    });
    check("short ticket", r, "key");
    // a valid graph asking for one chunk bigger than the machine: an error
    // naming it, from the worker that would have run it (still alive after)
    let s = Session::builder()
        .address(f.cluster.address())
        .token(f.cluster.token())
        .chunk_bytes(1 << 50)
        .build()
        .expect("a session");
    let err = mt::ones(&[1 << 22, 1 << 22]).sum().execute_in(&s).unwrap_err().to_string();
    assert!(err.contains("more than this machine's memory"), "{err}");
    still_healthy(f);
}

#[test]
fn oversized_requests_are_refused() {
    let f = fixture();
    let big = vec![0u8; mars_cluster::wire::MAX_MESSAGE_BYTES + 1024];
    let s = submit(f, big.clone(), vec![], None).expect_err("a graph past the message limit");
    assert!(refused(&s), "{s:?}");
    let mut w = f.worker.clone();
    let r = f.rt.block_on(async move { w.launch(proto::LaunchBatch { stage: 1, tasks: big }).await });
    let s = r.expect_err("a launch batch past the limit");
    assert!(refused(&s), "{s:?}");
    // a declared length past the limit in a Flight put is refused before anything is allocated
    let _in_rt = f.rt.enter();
    let mut c = mars_cluster::flight::client(&f.worker_address, &f.token, &ClientTls::default()).expect("flight");
    let key = f.root.clone();
    let r = f.rt.block_on(async move {
        let first = arrow_flight::FlightData {
            flight_descriptor: Some(arrow_flight::FlightDescriptor::new_cmd(key)),
            app_metadata: (u64::MAX / 2).to_le_bytes().to_vec().into(),
            data_body: vec![0u8; 16].into(),
            ..Default::default()
        };
        let mut s = c.do_put(futures::stream::iter(vec![first])).await?.into_inner();
        use futures::StreamExt;
        s.next().await.transpose().map(|_| 0)
    });
    let s = r.expect_err("a put declaring too many bytes");
    assert!(refused(&s), "{s:?}");
    still_healthy(f);
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Splice(usize, usize),
}

fn mutation() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Splice(i, j)),
    ];
    prop::collection::vec(one, 1..4)
}

fn apply(bytes: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        let n = b.len().max(1);
        match e {
            Mutation::Flip(i, x) => {
                if !b.is_empty() {
                    b[i % n] ^= x;
                }
            }
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::Insert(i, x) => {
                let at = i % (b.len() + 1);
                b.splice(at..at, x.iter().copied());
            }
            Mutation::Splice(i, j) => {
                // copy a run of the message over another place in it
                if b.len() > 8 {
                    let (from, to) = (i % (b.len() - 8), j % (b.len() - 8));
                    let run: Vec<u8> = b[from..from + 8].to_vec();
                    b[to..to + 8].copy_from_slice(&run);
                }
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// A mutated graph is refused with a status naming the problem, or
    /// accepted and then either computed or failed with an error; the
    /// supervisor never crashes.
    #[test]
    fn mutated_graphs_are_refused_or_run(edits in mutation()) {
        let f = fixture();
        let bytes = apply(&f.graph, &edits);
        match submit(f, bytes, vec![f.root.clone()], None) {
            Err(s) => prop_assert!(refused(&s), "{:?}", s),
            Ok(task) => {
                if let Some(failure) = wait(f, task) {
                    prop_assert!(!failure.message.is_empty(), "{:?}", failure);
                }
            }
        }
    }

    /// A mutated launch batch never crashes the worker.
    #[test]
    fn mutated_launch_batches_are_refused(edits in mutation(), stage in 0u64..4) {
        let f = fixture();
        let tasks = apply(&f.batch, &edits);
        let mut w = f.worker.clone();
        let r = f.rt.block_on(async move { w.launch(proto::LaunchBatch { stage, tasks }).await });
        if let Err(s) = r {
            prop_assert!(refused(&s), "{:?}", s);
        }
    }
}

#[test]
fn after_the_mutations_the_cluster_still_answers_right() {
    // runs after (or beside) the property tests: the processes are the same
    let f = fixture();
    still_healthy(f);
}

#[test]
fn every_endpoint_needs_the_token() {
    let f = fixture();
    let tls = ClientTls::default();
    let _in_rt = f.rt.enter();
    let wrong = AddToken::new("not-the-token").expect("token");
    let sup_ch = mars_cluster::flight::channel(f.cluster.address(), &tls).expect("channel");
    let wrk_ch = mars_cluster::flight::channel(&f.worker_address, &tls).expect("channel");
    let unauthenticated = |what: &str, r: std::result::Result<(), tonic::Status>| {
        let s = r.expect_err(what);
        assert_eq!(s.code(), Code::Unauthenticated, "{what}: {s:?}");
    };
    let open = proto::OpenSessionRequest { name: "intruder".into() };
    let launch = proto::LaunchBatch { stage: 1, tasks: f.batch.clone() };
    let ticket = arrow_flight::Ticket { ticket: f.root.clone().into() };
    f.rt.block_on(async {
        // the supervisor's client API
        let mut none = SupervisorClient::new(sup_ch.clone());
        unauthenticated("supervisor, no token", none.open_session(open.clone()).await.map(|_| ()));
        let mut bad = SupervisorClient::with_interceptor(sup_ch.clone(), wrong.clone());
        unauthenticated("supervisor, wrong token", bad.open_session(open.clone()).await.map(|_| ()));
        // a worker's gRPC service
        let mut none = WorkerClient::new(wrk_ch.clone());
        unauthenticated("worker, no token", none.launch(launch.clone()).await.map(|_| ()));
        let mut bad = WorkerClient::with_interceptor(wrk_ch.clone(), wrong.clone());
        unauthenticated("worker, wrong token", bad.launch(launch.clone()).await.map(|_| ()));
        // a worker's Flight service
        use arrow_flight::flight_service_client::FlightServiceClient;
        let mut none = FlightServiceClient::new(wrk_ch.clone());
        unauthenticated("flight, no token", none.do_get(ticket.clone()).await.map(|_| ()));
        let mut bad = FlightServiceClient::with_interceptor(wrk_ch.clone(), wrong.clone());
        unauthenticated("flight, wrong token", bad.do_get(ticket.clone()).await.map(|_| ()));
        // and with the token, the same calls are served
        let mut good = f.sup.clone();
        assert!(good.open_session(open.clone()).await.is_ok());
        let mut good = FlightServiceClient::with_interceptor(wrk_ch.clone(), f.token.clone());
        let r = good.do_get(ticket.clone()).await;
        assert!(!matches!(&r, Err(s) if s.code() == Code::Unauthenticated), "{r:?}");
    });
}

#[test]
fn two_sessions_putting_the_same_data_at_once_both_hold_it() {
    // each session asks where to put, sends the bytes, then commits, in
    // this interleaving: both commits succeed and both sessions hold it
    let f = fixture();
    let _in_rt = f.rt.enter();
    let data = std::sync::Arc::new(mars_backends::ChunkData::Tensor(mars_ir::TensorData::F64(
        ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[7]), |i| i[0] as f64 + 0.25),
    )));
    let key = mars_ir::Key::of(&"two sessions, one put", &[]);
    let bytes = mars_cluster::wire::key_bytes(&key);
    f.rt.block_on(async {
        let mut sup = f.sup.clone();
        let open = |name: &str| proto::OpenSessionRequest { name: name.into() };
        let a = sup.open_session(open("put-a")).await.expect("session").into_inner().session;
        let b = sup.open_session(open("put-b")).await.expect("session").into_inner().session;
        let req = |session| proto::PutRequest { session, key: bytes.clone() };
        let (ra, rb) =
            (sup.put(req(a)).await.expect("put a").into_inner(), sup.put(req(b)).await.expect("put b").into_inner());
        assert!(!ra.held && !rb.held, "nothing held yet");
        for worker in [&ra.worker, &rb.worker] {
            let mut c = mars_cluster::flight::client(worker, &f.token, &ClientTls::default()).expect("flight");
            mars_cluster::flight::put(&mut c, &key, &data).await.expect("bytes sent");
        }
        sup.commit_put(req(a)).await.expect("commit a");
        sup.commit_put(req(b)).await.expect("commit b");
        for s in [a, b] {
            let located = sup.locate(proto::LocateRequest { session: s, key: bytes.clone() }).await;
            assert!(located.is_ok(), "session {s} holds the put: {located:?}");
        }
    });
    still_healthy(f);
}
