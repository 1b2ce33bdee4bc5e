//! A worker: registers with the supervisor, heartbeats, runs the chunks it is
//! sent on a rayon pool with the local backend's kernels (fetching inputs it
//! lacks from the peers holding them, over Flight), holds chunks in a store
//! that spills above its memory limit, and serves them to peers and clients.

use crate::auth::{AddToken, CheckToken};
use crate::flight::{self, FlightClient};
use crate::proto::supervisor_client::SupervisorClient;
use crate::proto::worker_server::{Worker, WorkerServer};
use crate::proto::{self, Empty};
use crate::tls::ClientTls;
use crate::wire::{self, Task};
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use mars_backends::TileableResult;
use mars_exec::kernels;
use mars_exec::store::Store;
use mars_ir::{FastMap, Key};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

pub type SupervisorConn = SupervisorClient<InterceptedService<Channel, AddToken>>;

/// A worker's shared state.
pub struct WorkerState {
    id: AtomicU64,
    /// Where peers and clients reach this worker (`host:port`).
    pub address: String,
    token: AddToken,
    tls: ClientTls,
    store: Store,
    pool: rayon::ThreadPool,
    threads: usize,
    memory_limit: Option<usize>,
    sup: SupervisorConn,
    status: mpsc::UnboundedSender<proto::ChunkDone>,
    peers: Mutex<FastMap<String, FlightClient>>,
    /// One fetch per missing input at a time: a second task needing it waits.
    fetching: Mutex<FastMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    chunks_run: AtomicU64,
    bytes_fetched: AtomicU64,
    fetch_micros: AtomicU64,
    /// Reads from peers running now, and when the first of them started.
    reads: Mutex<(usize, Instant)>,
    stopping: AtomicBool,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState").field("address", &self.address).field("threads", &self.threads).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn failed(op: &str, chunk: &Key, msg: String) -> proto::Failure {
    proto::Failure { kind: "kernel".into(), op: op.into(), chunk: chunk.short(), message: msg, task: 0 }
}

/// A read from a peer while it runs (also when its future is dropped):
/// `fetch_micros` counts the time during which at least one read runs.
struct Reading<'a>(&'a WorkerState);

impl<'a> Reading<'a> {
    fn start(w: &'a WorkerState) -> Reading<'a> {
        let mut r = lock(&w.reads);
        if r.0 == 0 {
            r.1 = Instant::now();
        }
        r.0 += 1;
        Reading(w)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut r = lock(&self.0.reads);
        r.0 -= 1;
        if r.0 == 0 {
            self.0.fetch_micros.fetch_add(r.1.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }
}

impl WorkerState {
    pub fn new(
        address: String,
        token: &AddToken,
        tls: ClientTls,
        sup: SupervisorConn,
        threads: usize,
        memory_limit: Option<usize>,
        status: mpsc::UnboundedSender<proto::ChunkDone>,
    ) -> Result<WorkerState, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("mars-worker-{i}"))
            .build()
            .map_err(|e| format!("cannot start the thread pool: {e}"))?;
        Ok(WorkerState {
            id: AtomicU64::new(0),
            address,
            token: token.clone(),
            tls,
            store: Store::with_limit(memory_limit),
            pool,
            threads: threads.max(1),
            memory_limit,
            sup,
            status,
            peers: Mutex::new(FastMap::default()),
            fetching: Mutex::new(FastMap::default()),
            chunks_run: AtomicU64::new(0),
            bytes_fetched: AtomicU64::new(0),
            fetch_micros: AtomicU64::new(0),
            reads: Mutex::new((0, Instant::now())),
            stopping: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// What the dashboard and `stats()` show of this worker.
    pub fn info(&self) -> proto::WorkerInfo {
        let spill = self.store.spill_stats();
        proto::WorkerInfo {
            id: self.id(),
            address: self.address.clone(),
            threads: self.threads as u64,
            memory_limit: self.memory_limit.unwrap_or(0) as u64,
            alive: true,
            chunks_held: self.store.len() as u64,
            bytes_held: self.store.bytes() as u64,
            chunks_spilled: spill.chunks_spilled,
            bytes_spilled: spill.bytes_spilled,
            chunks_restored: spill.chunks_restored,
            chunks_on_disk: spill.chunks_on_disk as u64,
            chunks_run: self.chunks_run.load(Ordering::Relaxed),
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
            fetch_micros: self.fetch_micros.load(Ordering::Relaxed),
        }
    }

    /// Register (again, after the supervisor forgot this worker: whatever it
    /// held is of no use then, so it is dropped).
    pub async fn register(&self) -> Result<u64, Status> {
        let reply = self
            .sup
            .clone()
            .register(proto::RegisterRequest {
                address: self.address.clone(),
                threads: self.threads as u64,
                memory_limit: self.memory_limit.unwrap_or(0) as u64,
            })
            .await?
            .into_inner();
        self.store.clear();
        self.id.store(reply.worker, Ordering::Relaxed);
        Ok(reply.heartbeat_ms)
    }

    fn peer(&self, addr: &str) -> Result<FlightClient, Status> {
        let mut peers = lock(&self.peers);
        if let Some(c) = peers.get(addr) {
            return Ok(c.clone());
        }
        let c = flight::client(addr, &self.token, &self.tls)?.max_decoding_message_size(wire::MAX_MESSAGE_BYTES);
        peers.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Make input `key` held here, reading it from `from`; true when it was fetched.
    async fn fetch_input(&self, key: Key, from: &str) -> Result<bool, String> {
        let gate = lock(&self.fetching).entry(key).or_default().clone();
        let _one = gate.lock().await;
        let r = if self.store.contains(&key) {
            Ok(false)
        } else {
            let reading = Reading::start(self);
            let got = match self.peer(from) {
                Ok(mut c) => flight::get(&mut c, &key).await,
                Err(e) => Err(e),
            };
            drop(reading);
            match got {
                Ok(data) => {
                    self.bytes_fetched.fetch_add(data.nbytes() as u64, Ordering::Relaxed);
                    self.store.put(key, Arc::new(data)).map(|_| true).map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("cannot read input chunk {} from worker {from}: {}", key.short(), e.message())),
            }
        };
        lock(&self.fetching).remove(&key);
        r
    }

    /// Run one chunk: fetch missing inputs, run the kernel on the pool, store
    /// the value, report.
    async fn run_task(self: Arc<Self>, stage: u64, task: Task) {
        let mut fetched = Vec::new();
        let mut failure = None;
        for (k, from) in &task.inputs {
            if from.is_empty() || from == &self.address {
                continue;
            }
            match self.fetch_input(*k, from).await {
                Ok(true) => fetched.push(wire::key_bytes(k)),
                Ok(false) => {}
                Err(msg) => {
                    failure = Some(proto::Failure { kind: "input".into(), message: msg, ..Default::default() });
                    break;
                }
            }
        }
        let key = task.key;
        let outcome = match failure {
            Some(f) => Err(f),
            None => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let me = self.clone();
                self.pool.spawn(move || {
                    let _ = tx.send(me.run_kernel(&task));
                });
                rx.await.unwrap_or_else(|_| Err(failed("?", &key, "the kernel thread went away".into())))
            }
        };
        let mut done = proto::ChunkDone { stage, key: wire::key_bytes(&key), fetched, ..Default::default() };
        match outcome {
            Ok((shape, nbytes)) => {
                done.ok = true;
                done.shape = shape.iter().map(|&n| n as u64).collect();
                done.nbytes = nbytes as u64;
            }
            Err(f) => done.failure = Some(f),
        }
        let _ = self.status.send(done);
    }

    fn run_kernel(&self, task: &Task) -> Result<(Vec<usize>, usize), proto::Failure> {
        let node = task.node();
        let op = node.op.to_string();
        let mut ins = Vec::with_capacity(task.inputs.len());
        for (k, _) in &task.inputs {
            match self.store.get(k) {
                Ok(Some(d)) => ins.push(d),
                Ok(None) => {
                    return Err(proto::Failure {
                        kind: "input".into(),
                        message: format!("input chunk {} is not held on worker {}", k.short(), self.address),
                        ..Default::default()
                    })
                }
                Err(e) => return Err(failed(&op, &task.key, e.to_string())),
            }
        }
        let _span = tracing::trace_span!("chunk", op = %op, key = %task.key.short()).entered();
        let data = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kernels::run(&node, &ins))) {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(failed(&op, &task.key, e.0)),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(failed(&op, &task.key, format!("panicked: {msg}")));
            }
        };
        drop(ins);
        self.chunks_run.fetch_add(1, Ordering::Relaxed);
        let (shape, nbytes) = (data.shape(), data.nbytes());
        self.store.put(task.key, Arc::new(data)).map_err(|e| failed(&op, &task.key, e.to_string()))?;
        Ok((shape, nbytes))
    }
}

/// Send finished chunks' statuses to the supervisor in batches: whatever
/// finished while the last batch was on its way goes in the next.
pub async fn report_statuses(state: Arc<WorkerState>, mut rx: mpsc::UnboundedReceiver<proto::ChunkDone>) {
    let mut sup = state.sup.clone();
    while let Some(first) = rx.recv().await {
        let mut done = vec![first];
        while done.len() < 4096 {
            match rx.try_recv() {
                Ok(d) => done.push(d),
                Err(_) => break,
            }
        }
        if let Err(e) = sup.task_status(proto::StatusBatch { worker: state.id(), done }).await {
            tracing::debug!("cannot report chunk statuses: {e}");
        }
    }
}

/// Heartbeat until the supervisor is gone for `give_up`; re-register when it
/// forgot this worker. Returns when the worker should exit.
pub async fn heartbeat(state: Arc<WorkerState>, every: Duration, give_up: Duration) {
    let mut sup = state.sup.clone();
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        if state.stopping.load(Ordering::Relaxed) {
            return;
        }
        let req = proto::HeartbeatRequest { worker: state.id(), stats: Some(state.info()) };
        match sup.heartbeat(req).await {
            Ok(r) => {
                last_ok = Instant::now();
                if !r.into_inner().known {
                    tracing::warn!("the supervisor no longer knows this worker: registering again");
                    if let Err(e) = state.register().await {
                        tracing::warn!("registering again failed: {e}");
                    }
                }
            }
            Err(e) if last_ok.elapsed() > give_up => {
                tracing::error!("the supervisor has been unreachable for {give_up:?} ({e}): stopping");
                return;
            }
            Err(_) => {}
        }
    }
}

/// The Worker gRPC service.
#[derive(Debug, Clone)]
pub struct WorkerService(pub Arc<WorkerState>);

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn launch(&self, req: Request<proto::LaunchBatch>) -> Result<Response<Empty>, Status> {
        let batch = req.into_inner();
        let tasks = wire::decode_tasks(&batch.tasks)?;
        for t in tasks {
            tokio::spawn(self.0.clone().run_task(batch.stage, t));
        }
        Ok(Response::new(Empty {}))
    }

    async fn release(&self, req: Request<proto::ReleaseChunks>) -> Result<Response<Empty>, Status> {
        for k in wire::keys_of(&req.into_inner().keys)? {
            self.0.store.discard(&k);
        }
        Ok(Response::new(Empty {}))
    }
}

/// The worker's Flight service: chunks by key.
#[derive(Debug, Clone)]
pub struct ChunkFlight(pub Arc<WorkerState>);

type Stream<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for ChunkFlight {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn do_get(&self, req: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let key = wire::key_of(&req.into_inner().ticket)?;
        let store_error = |e: mars_exec::ExecError| Status::internal(e.to_string());
        let data = self.0.store.get(&key).map_err(store_error)?.ok_or_else(|| {
            Status::not_found(format!("chunk {} is not held on worker {}", key.short(), self.0.address))
        })?;
        let messages = flight::encode(&data, None)?;
        drop(data);
        Ok(Response::new(Box::pin(futures::stream::iter(messages.into_iter().map(Ok)))))
    }

    async fn do_put(&self, req: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let (descriptor, data) = flight::decode(req.into_inner()).await?;
        let key = wire::key_of(&descriptor.ok_or_else(|| Status::invalid_argument("a put needs a descriptor"))?.cmd)?;
        let result = TileableResult::of_data(key, &data).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let nbytes = data.nbytes() as u64;
        self.0.store.hold(key, Arc::new(data)).map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let held = proto::HeldRequest {
            worker: self.0.id(),
            key: wire::key_bytes(&key),
            result_json: wire::result_json(&result)?,
            nbytes,
        };
        if let Err(e) = self.0.sup.clone().held(held).await {
            self.0.store.discard(&key);
            return Err(e);
        }
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(PutResult::default())]))))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("mars workers authenticate by bearer token, not handshake"))
    }
    async fn list_flights(&self, _: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("chunks are read by key (DoGet), not listed"))
    }
    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("chunks are read by key (DoGet)"))
    }
    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("chunks are read by key (DoGet)"))
    }
    async fn get_schema(&self, _: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("chunks are read by key (DoGet)"))
    }
    async fn do_exchange(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("mars workers serve DoGet and DoPut"))
    }
    async fn do_action(&self, _: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("mars workers serve DoGet and DoPut"))
    }
    async fn list_actions(&self, _: Request<arrow_flight::Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }
}

/// The worker's services, behind the token.
pub fn services(
    state: Arc<WorkerState>,
    token: Arc<str>,
) -> (
    InterceptedService<WorkerServer<WorkerService>, CheckToken>,
    InterceptedService<FlightServiceServer<ChunkFlight>, CheckToken>,
) {
    let w = WorkerServer::new(WorkerService(state.clone()))
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let f = FlightServiceServer::new(ChunkFlight(state));
    (InterceptedService::new(w, CheckToken(token.clone())), InterceptedService::new(f, CheckToken(token)))
}

/// Drop everything (the worker is stopping).
impl WorkerState {
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.store.clear();
    }
}
