//! The supervisor: sessions (with leases), graph submission (validated as a
//! loaded graph file is), tiling with the shared driver, scheduling chunks
//! onto workers, chunk metadata, worker liveness.
//!
//! Scheduling is dynamic: a chunk is sent to a worker once all its inputs
//! exist, to the worker holding most of its input bytes (ties: the one with
//! the fewest chunks queued), in one `Launch` message per worker per round;
//! workers fetch inputs they lack from the peers holding them and report
//! finished chunks in batches. An intermediate is released on every worker
//! holding it once its last consumer finished.

use crate::auth::{AddToken, CheckToken};
use crate::proto::supervisor_server::{Supervisor, SupervisorServer};
use crate::proto::worker_client::WorkerClient;
use crate::proto::{self, Empty};
pub use crate::schedule::Lineage;
use crate::schedule::Stage;
use crate::tls::ClientTls;
use crate::wire;
use mars_backends::driver::{self, ChunkExecutor};
use mars_backends::executor::Progress;
use mars_backends::store::ChunkStore;
use mars_backends::{check_data_refs, BackendError, BackendResult, ChunkData, TileableResult};
use mars_exec::{ExecError, ExecResult};
use mars_ir::{ChunkGraph, FastMap, FastSet, Key, TileableGraph};
use mars_tiler::{PassManager, TileOptions};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

type WorkerConn = WorkerClient<InterceptedService<Channel, AddToken>>;

/// Timings of the cluster's liveness.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How often workers heartbeat.
    pub heartbeat: Duration,
    /// A worker silent this long is removed.
    pub worker_ttl: Duration,
    /// A session whose client was silent this long is closed.
    pub lease: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(500),
            worker_ttl: Duration::from_secs(5),
            lease: Duration::from_secs(30),
        }
    }
}

/// What the supervisor sends a worker, in order: a release sent before a
/// launch is applied before it (a chunk freed and then made again on the
/// same worker must not be freed after it was made).
#[derive(Debug)]
pub(crate) enum Outgoing {
    Launch {
        stage: u64,
        tasks: Vec<u8>,
    },
    Release(Vec<Key>),
    /// Answered once everything queued before it was delivered.
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug)]
pub(crate) struct WorkerEntry {
    address: String,
    pub(crate) outbox: mpsc::UnboundedSender<Outgoing>,
    last_seen: Instant,
    info: proto::WorkerInfo,
    /// Chunks sent and not reported yet.
    queued: Arc<AtomicUsize>,
}

/// Where a chunk is, as the supervisor knows it. A held chunk whose last
/// holder was lost keeps its entry (no holders, its pins) while it is remade.
#[derive(Debug)]
struct Loc {
    holders: Vec<u64>,
    shape: Vec<usize>,
    nbytes: usize,
    pins: u32,
    /// How to make it again.
    lineage: Option<Arc<Lineage>>,
}

/// The chunk table: which workers hold which chunk. The driver sees it as its
/// [`ChunkStore`]; freeing a chunk releases it on every worker holding it.
#[derive(Debug)]
pub struct ChunkTable {
    map: Mutex<FastMap<Key, Loc>>,
    /// For `get`/`put` from the driver's side (it runs on its own thread).
    rt: tokio::runtime::Handle,
    token: AddToken,
    tls: ClientTls,
    workers: Arc<Mutex<FastMap<u64, WorkerEntry>>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChunkTable {
    /// Queue the release of `key` on each of `workers` (called without the
    /// table's lock: the workers' lock is taken before it elsewhere).
    pub(crate) fn release_on(&self, workers: &[u64], key: Key) {
        let entries = lock(&self.workers);
        for w in workers {
            if let Some(e) = entries.get(w) {
                let _ = e.outbox.send(Outgoing::Release(vec![key]));
            }
        }
    }

    /// `worker` now holds `key` (computed there, or fetched as an input:
    /// then `made` is `None`). False when the chunk is no longer wanted (the
    /// worker should drop it).
    pub(crate) fn add_holder(&self, key: Key, worker: u64, made: Option<(Vec<usize>, usize, Arc<Lineage>)>) -> bool {
        let mut map = lock(&self.map);
        match (map.get_mut(&key), made) {
            (Some(loc), made) => {
                if !loc.holders.contains(&worker) {
                    loc.holders.push(worker);
                }
                if let (None, Some((_, _, l))) = (&loc.lineage, made) {
                    loc.lineage = Some(l);
                }
                true
            }
            (None, Some((shape, nbytes, lineage))) => {
                map.insert(key, Loc { holders: vec![worker], shape, nbytes, pins: 0, lineage: Some(lineage) });
                true
            }
            (None, None) => false,
        }
    }

    /// How a chunk the table knows (held, or lost and held by pins) was made.
    pub(crate) fn lineage(&self, key: &Key) -> Option<Arc<Lineage>> {
        lock(&self.map).get(key).and_then(|l| l.lineage.clone())
    }

    /// Whether `worker` is listed as holding `key`.
    pub(crate) fn held_by(&self, key: &Key, worker: u64) -> bool {
        lock(&self.map).get(key).is_some_and(|l| l.holders.contains(&worker))
    }

    pub(crate) fn holder_address(&self, key: &Key) -> Option<(u64, String)> {
        let w = *lock(&self.map).get(key)?.holders.first()?;
        lock(&self.workers).get(&w).map(|e| (w, e.address.clone()))
    }

    /// A worker is gone: it holds nothing any more. Chunks held only there
    /// go, except pinned ones (held results), which stay without holders to
    /// be remade; those are returned.
    fn forget_worker(&self, worker: u64) -> Vec<Key> {
        let mut map = lock(&self.map);
        let mut lost = Vec::new();
        map.retain(|k, loc| {
            let had = loc.holders.len();
            loc.holders.retain(|&w| w != worker);
            if loc.holders.is_empty() && loc.pins > 0 && had > 0 {
                lost.push(*k);
            }
            !loc.holders.is_empty() || loc.pins > 0
        });
        lost
    }

    fn len(&self) -> usize {
        lock(&self.map).values().filter(|l| !l.holders.is_empty()).count()
    }

    fn bytes(&self) -> usize {
        lock(&self.map).values().filter(|l| !l.holders.is_empty()).map(|l| l.nbytes).sum()
    }
}

impl ChunkStore for ChunkTable {
    fn contains(&self, key: &Key) -> bool {
        lock(&self.map).get(key).is_some_and(|l| !l.holders.is_empty())
    }
    fn contains_each(&self, keys: &mut dyn Iterator<Item = Key>) -> Vec<bool> {
        let map = lock(&self.map);
        keys.map(|k| map.get(&k).is_some_and(|l| !l.holders.is_empty())).collect()
    }
    fn shape(&self, key: &Key) -> Option<Vec<usize>> {
        lock(&self.map).get(key).filter(|l| !l.holders.is_empty()).map(|l| l.shape.clone())
    }
    fn pin(&self, key: &Key) -> bool {
        match lock(&self.map).get_mut(key) {
            Some(l) => {
                l.pins += 1;
                true
            }
            None => false,
        }
    }
    fn unpin(&self, key: &Key) {
        let gone = {
            let mut map = lock(&self.map);
            match map.get_mut(key) {
                Some(l) => {
                    l.pins = l.pins.saturating_sub(1);
                    if l.pins == 0 {
                        map.remove(key)
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(l) = gone {
            self.release_on(&l.holders, *key);
        }
    }
    fn discard(&self, key: &Key) {
        let gone = {
            let mut map = lock(&self.map);
            match map.get(key).is_some_and(|l| l.pins == 0) {
                true => map.remove(key),
                false => None,
            }
        };
        if let Some(l) = gone {
            self.release_on(&l.holders, *key);
        }
    }
    /// Read the chunk from a worker holding it.
    fn get(&self, key: &Key) -> ExecResult<Option<Arc<ChunkData>>> {
        let Some((_, addr)) = self.holder_address(key) else {
            return Ok(None);
        };
        let (token, tls) = (self.token.clone(), self.tls.clone());
        let key = *key;
        let got = self.rt.block_on(async move {
            let mut c = crate::flight::client(&addr, &token, &tls)?;
            crate::flight::get(&mut c, &key).await
        });
        got.map(|d| Some(Arc::new(d)))
            .map_err(|e| ExecError::Other(format!("cannot read chunk {key}: {}", e.message())))
    }
    /// Store a chunk on the worker holding the fewest bytes.
    fn put(&self, key: Key, data: Arc<ChunkData>) -> ExecResult<()> {
        if self.contains(&key) {
            return Ok(());
        }
        let (w, addr) = lock(&self.workers)
            .iter()
            .filter(|(_, e)| e.info.alive)
            .min_by_key(|(_, e)| e.info.bytes_held)
            .map(|(&w, e)| (w, e.address.clone()))
            .ok_or_else(|| ExecError::Other("no worker is alive".into()))?;
        let (token, tls) = (self.token.clone(), self.tls.clone());
        let (shape, nbytes) = (data.shape(), data.nbytes());
        self.rt
            .block_on(async move {
                let mut c = crate::flight::client(&addr, &token, &tls)?;
                crate::flight::put(&mut c, &key, &data).await
            })
            .map_err(|e| ExecError::Other(format!("cannot store chunk {key}: {}", e.message())))?;
        self.add_holder(key, w, Some((shape, nbytes, Lineage::data(key))));
        Ok(())
    }
    fn limit(&self) -> Option<usize> {
        let workers = lock(&self.workers);
        let limits: Vec<u64> = workers.values().filter(|e| e.info.alive).map(|e| e.info.memory_limit).collect();
        match limits.iter().all(|&l| l > 0) && !limits.is_empty() {
            true => limits.iter().min().map(|&l| l as usize),
            false => None,
        }
    }
}

#[derive(Debug, Default)]
struct SessionState {
    name: String,
    last_seen: Option<Instant>,
    /// Holds this session has on each result.
    holds: FastMap<Key, usize>,
    /// Data put by this session, stored on a worker, not committed yet.
    pending: FastSet<Key>,
}

type Outcome = Option<BackendResult<HashMap<Key, TileableResult>>>;

#[derive(Debug)]
struct TaskState {
    session: u64,
    started: Instant,
    progress: Arc<Progress>,
    outcome: Mutex<Outcome>,
    done: watch::Sender<bool>,
}

/// A running execution, for the dashboard.
#[derive(Clone, Debug)]
pub struct RunningExec {
    pub task: u64,
    pub session: u64,
    pub fraction: f64,
    pub done: u64,
    pub total: u64,
    pub seconds: f64,
}

/// A finished execution, for the dashboard.
#[derive(Clone, Debug)]
pub struct ExecRecord {
    pub task: u64,
    pub session: u64,
    pub started: SystemTime,
    pub seconds: f64,
    pub chunks: u64,
    pub outcome: String,
}

pub(crate) enum StageEvent {
    Done(u64, proto::ChunkDone),
    LaunchFailed(u64, String),
    WorkerLost(u64),
}

/// The supervisor's state, shared by its services and driver threads.
#[derive(Debug)]
pub struct SupState {
    token: Arc<str>,
    pub(crate) timing: Timing,
    pub(crate) workers: Arc<Mutex<FastMap<u64, WorkerEntry>>>,
    pub(crate) chunks: ChunkTable,
    results: Mutex<FastMap<Key, (TileableResult, usize)>>,
    /// Results of puts stored on a worker, waiting for the client's commit.
    put_results: Mutex<FastMap<Key, TileableResult>>,
    sessions: Mutex<FastMap<u64, SessionState>>,
    tasks: Mutex<FastMap<u64, Arc<TaskState>>>,
    pub(crate) stages: Mutex<FastMap<u64, std_mpsc::Sender<StageEvent>>>,
    history: Mutex<VecDeque<ExecRecord>>,
    /// The tileable graphs of the last executions, for the dashboard.
    graphs: Mutex<VecDeque<(u64, Arc<TileableGraph>)>>,
    passes: PassManager,
    next_id: AtomicU64,
    chunks_run: AtomicU64,
}

impl SupState {
    /// The state; its liveness watcher runs on `rt`.
    /// Connections to workers at `https://` addresses trust what `tls` says.
    pub fn new(token: Arc<str>, timing: Timing, tls: ClientTls, rt: tokio::runtime::Handle) -> Arc<SupState> {
        let workers: Arc<Mutex<FastMap<u64, WorkerEntry>>> = Arc::default();
        let add_token = AddToken::new(&token).unwrap_or_else(|_| AddToken::new("invalid").expect("ascii"));
        let state = Arc::new(SupState {
            chunks: ChunkTable {
                map: Mutex::default(),
                rt: rt.clone(),
                token: add_token,
                tls,
                workers: workers.clone(),
            },
            token,
            timing,
            workers,
            results: Mutex::default(),
            put_results: Mutex::default(),
            sessions: Mutex::default(),
            tasks: Mutex::default(),
            stages: Mutex::default(),
            history: Mutex::default(),
            graphs: Mutex::default(),
            passes: PassManager::default(),
            next_id: AtomicU64::new(1),
            chunks_run: AtomicU64::new(0),
        });
        rt.spawn(watch_liveness(state.clone()));
        state
    }

    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next()
    }

    pub(crate) fn count_run(&self) {
        self.chunks_run.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The tileable graph of a recent execution.
    pub fn graph_of(&self, task: u64) -> Option<Arc<TileableGraph>> {
        lock(&self.graphs).iter().find(|(t, _)| *t == task).map(|(_, g)| g.clone())
    }

    /// Executions running now.
    pub fn running(&self) -> Vec<RunningExec> {
        let mut v: Vec<RunningExec> = lock(&self.tasks)
            .iter()
            .filter(|(_, t)| !*t.done.borrow())
            .map(|(&task, t)| {
                let total = t.progress.total.load(Ordering::Relaxed);
                let done = t.progress.done.load(Ordering::Relaxed);
                RunningExec {
                    task,
                    session: t.session,
                    fraction: (done as f64 / total.max(1) as f64).min(1.0),
                    done,
                    total,
                    seconds: t.started.elapsed().as_secs_f64(),
                }
            })
            .collect();
        v.sort_by_key(|r| r.task);
        v
    }

    /// The executions run so far, newest last (at most 100).
    pub fn history(&self) -> Vec<ExecRecord> {
        lock(&self.history).iter().cloned().collect()
    }

    /// Open sessions: id, name, results held.
    pub fn session_infos(&self) -> Vec<(u64, String, usize)> {
        let mut v: Vec<_> = lock(&self.sessions).iter().map(|(&id, s)| (id, s.name.clone(), s.holds.len())).collect();
        v.sort();
        v
    }

    /// The workers as the last heartbeats described them.
    pub fn worker_infos(&self) -> Vec<proto::WorkerInfo> {
        let mut v: Vec<proto::WorkerInfo> = lock(&self.workers).values().map(|e| e.info.clone()).collect();
        v.sort_by_key(|w| w.id);
        v
    }

    fn session_touch(&self, session: u64) -> Result<(), Status> {
        match lock(&self.sessions).get_mut(&session) {
            Some(s) => {
                s.last_seen = Some(Instant::now());
                Ok(())
            }
            None => Err(Status::failed_precondition(format!(
                "session {session} is not open on this supervisor (closed, or its lease expired)"
            ))),
        }
    }

    /// Add one hold of `session` on a result (its chunks are pinned by the caller).
    fn hold(&self, session: u64, result: &TileableResult) {
        let mut results = lock(&self.results);
        match results.get_mut(&result.key) {
            Some((_, n)) => *n += 1,
            None => {
                results.insert(result.key, (result.clone(), 1));
            }
        }
        if let Some(s) = lock(&self.sessions).get_mut(&session) {
            *s.holds.entry(result.key).or_default() += 1;
        }
    }

    /// Drop `n` holds on `key`.
    fn unhold(&self, key: &Key, n: usize) {
        let mut results = lock(&self.results);
        let Some((res, count)) = results.get_mut(key) else {
            return;
        };
        let n = n.min(*count);
        for _ in 0..n {
            for c in &res.chunks {
                self.chunks.unpin(c);
            }
        }
        *count -= n;
        if *count == 0 {
            results.remove(key);
        }
    }

    fn release(&self, session: u64, keys: &[Key]) {
        let mut drop = Vec::new();
        if let Some(s) = lock(&self.sessions).get_mut(&session) {
            for k in keys {
                if let Some(n) = s.holds.get_mut(k) {
                    *n -= 1;
                    if *n == 0 {
                        s.holds.remove(k);
                    }
                    drop.push(*k);
                }
            }
        }
        for k in drop {
            self.unhold(&k, 1);
        }
    }

    /// Close a session: every hold it has goes.
    fn close_session(&self, session: u64) {
        let Some(s) = lock(&self.sessions).remove(&session) else {
            return;
        };
        for (k, n) in s.holds {
            self.unhold(&k, n);
        }
        for k in s.pending {
            // (unless another session is putting the same data)
            if lock(&self.sessions).values().any(|o| o.pending.contains(&k)) {
                continue;
            }
            lock(&self.put_results).remove(&k);
            self.chunks.discard(&k);
        }
        let tasks: Vec<Arc<TaskState>> = lock(&self.tasks).values().filter(|t| t.session == session).cloned().collect();
        for t in tasks {
            t.progress.cancelled.store(true, Ordering::Relaxed);
        }
    }

    fn submit(self: &Arc<Self>, session: u64, graph: TileableGraph, keep: Vec<Key>, tile: TileOptions) -> u64 {
        let id = self.next();
        let progress = Arc::new(Progress::default());
        let (done, _) = watch::channel(false);
        let task = Arc::new(TaskState {
            session,
            started: Instant::now(),
            progress: progress.clone(),
            outcome: Mutex::new(None),
            done,
        });
        {
            let mut graphs = lock(&self.graphs);
            graphs.push_back((id, Arc::new(graph.clone())));
            while graphs.len() > 100 {
                graphs.pop_front();
            }
        }
        lock(&self.tasks).insert(id, task.clone());
        let state = self.clone();
        let spawned = std::thread::Builder::new().name(format!("mars-task-{id}")).spawn(move || {
            let started = (SystemTime::now(), Instant::now());
            let exec = ClusterExec { state: &state, progress: &progress, kept: Mutex::default() };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver::run(graph, &keep, &tile, &state.passes, &exec)
            }))
            .unwrap_or_else(|_| Err(BackendError::Other("the driver panicked".into())));
            exec.unpin_kept();
            let r = match r {
                Err(BackendError::Cancelled(_)) => Err(BackendError::Cancelled(id)),
                Ok(results) => {
                    if lock(&state.sessions).contains_key(&session) {
                        for res in results.values() {
                            state.hold(session, res);
                        }
                        Ok(results)
                    } else {
                        // the session went while this ran: nothing is held for it
                        for res in results.values() {
                            for c in &res.chunks {
                                state.chunks.unpin(c);
                            }
                        }
                        Err(BackendError::Other(format!("session {session} was closed while task {id} ran")))
                    }
                }
                other => other,
            };
            let record = ExecRecord {
                task: id,
                session,
                started: started.0,
                seconds: started.1.elapsed().as_secs_f64(),
                chunks: progress.done.load(Ordering::Relaxed),
                outcome: match &r {
                    Ok(_) => "ok".into(),
                    Err(e) => format!("failed: {e}"),
                },
            };
            {
                let mut h = lock(&state.history);
                h.push_back(record);
                while h.len() > 100 {
                    h.pop_front();
                }
            }
            *lock(&task.outcome) = Some(r);
            task.done.send_replace(true);
        });
        if let Err(e) = spawned {
            let t = lock(&self.tasks).remove(&id);
            if let Some(t) = t {
                *lock(&t.outcome) = Some(Err(BackendError::Other(format!("cannot start a task thread: {e}"))));
                t.done.send_replace(true);
                lock(&self.tasks).insert(id, t);
            }
        }
        id
    }

    fn task(&self, session: u64, id: u64) -> Result<Arc<TaskState>, Status> {
        match lock(&self.tasks).get(&id) {
            Some(t) if t.session == session => Ok(t.clone()),
            _ => Err(Status::not_found(format!("task {id} is not a task of session {session}"))),
        }
    }

    /// Remove a worker that stopped heartbeating: running stages hear of it,
    /// and held results it alone held are made again on the others.
    fn remove_worker(self: &Arc<Self>, id: u64) {
        let Some(entry) = lock(&self.workers).remove(&id) else {
            return;
        };
        let lost = self.chunks.forget_worker(id);
        tracing::warn!("worker {id} at {} removed; {} held chunks were only there", entry.address, lost.len());
        for tx in lock(&self.stages).values() {
            let _ = tx.send(StageEvent::WorkerLost(id));
        }
        if lost.is_empty() {
            return;
        }
        let state = self.clone();
        let spawned = std::thread::Builder::new().name("mars-remake".into()).spawn(move || {
            let keep: FastSet<Key> = lost.iter().copied().collect();
            let progress = Progress::default();
            let r = Stage::remake(&state, &lost, &keep, &progress).and_then(Stage::run);
            match r {
                Ok((_, kept)) => {
                    for k in kept {
                        state.chunks.unpin(&k);
                    }
                    tracing::info!("made {} held chunks again after losing worker {id}", lost.len());
                }
                Err(e) => tracing::error!("cannot make the held chunks of worker {id} again: {e}"),
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start remaking worker {id}'s chunks: {e}");
        }
    }

    /// Choose the worker for a chunk with these inputs: the one holding most
    /// of their bytes, then the one with the fewest chunks queued.
    pub(crate) fn place(&self, inputs: &[Key]) -> Option<(u64, Arc<AtomicUsize>)> {
        let workers = lock(&self.workers);
        let mut local: FastMap<u64, usize> = FastMap::default();
        {
            let map = lock(&self.chunks.map);
            for k in inputs {
                if let Some(l) = map.get(k) {
                    for &w in &l.holders {
                        *local.entry(w).or_default() += l.nbytes.max(1);
                    }
                }
            }
        }
        workers
            .iter()
            .filter(|(_, e)| e.info.alive)
            .max_by_key(|(w, e)| {
                (
                    local.get(w).copied().unwrap_or(0),
                    std::cmp::Reverse(e.queued.load(Ordering::Relaxed)),
                    std::cmp::Reverse(**w),
                )
            })
            .map(|(&w, e)| (w, e.queued.clone()))
    }
}

struct ClusterExec<'a> {
    state: &'a Arc<SupState>,
    progress: &'a Progress,
    /// Kept chunks stages still pin: unpinned once the driver's results hold them.
    kept: Mutex<Vec<Key>>,
}

impl ClusterExec<'_> {
    fn unpin_kept(&self) {
        for k in std::mem::take(&mut *lock(&self.kept)) {
            self.state.chunks.unpin(&k);
        }
    }
}

impl ChunkExecutor for ClusterExec<'_> {
    fn execute(&self, graph: &ChunkGraph, keep: &FastSet<Key>) -> BackendResult<FastMap<Key, Vec<usize>>> {
        let (shapes, kept) = Stage::of_graph(self.state, graph, keep, self.progress)?.run()?;
        lock(&self.kept).extend(kept);
        Ok(shapes)
    }
    fn store(&self) -> &dyn ChunkStore {
        &self.state.chunks
    }
}

/// Deliver what is queued for one worker, in order; consecutive releases
/// go as one message. Ends when the worker is removed (its queue closes).
async fn deliver(state: Arc<SupState>, w: u64, mut conn: WorkerConn, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let mut next = rx.recv().await;
    while let Some(m) = next.take() {
        match m {
            Outgoing::Flush(done) => {
                let _ = done.send(());
            }
            Outgoing::Launch { stage, tasks } => {
                if let Err(e) = conn.launch(proto::LaunchBatch { stage, tasks }).await {
                    if let Some(tx) = lock(&state.stages).get(&stage) {
                        let _ = tx.send(StageEvent::LaunchFailed(w, e.message().to_string()));
                    }
                }
            }
            Outgoing::Release(mut keys) => {
                loop {
                    match rx.try_recv() {
                        Ok(Outgoing::Release(more)) => keys.extend(more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let keys = keys.iter().map(wire::key_bytes).collect();
                if let Err(e) = conn.release(proto::ReleaseChunks { keys }).await {
                    // (a dead worker holds nothing; its removal follows)
                    tracing::debug!("cannot release chunks on worker {w}: {e}");
                }
            }
        }
        if next.is_none() {
            next = rx.recv().await;
        }
    }
}

/// Remove workers that stopped heartbeating and close sessions whose lease expired.
async fn watch_liveness(state: Arc<SupState>) {
    let every = (state.timing.worker_ttl / 4).min(state.timing.lease / 4).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let dead: Vec<u64> = lock(&state.workers)
            .iter()
            .filter(|(_, e)| e.last_seen.elapsed() > state.timing.worker_ttl)
            .map(|(&w, _)| w)
            .collect();
        for w in dead {
            state.remove_worker(w);
        }
        let expired: Vec<u64> = lock(&state.sessions)
            .iter()
            .filter(|(_, s)| s.last_seen.is_some_and(|t| t.elapsed() > state.timing.lease))
            .map(|(&id, _)| id)
            .collect();
        for s in expired {
            tracing::info!("session {s}: lease expired, releasing what it held");
            state.close_session(s);
        }
    }
}

/// The Supervisor gRPC service.
#[derive(Debug, Clone)]
pub struct SupervisorService(pub Arc<SupState>);

fn failure_reply(e: BackendError) -> proto::WaitReply {
    proto::WaitReply { done: true, results_json: String::new(), failure: Some(wire::failure(&e)) }
}

fn tile_options(t: Option<proto::TileOptions>) -> Result<TileOptions, Status> {
    let d = TileOptions::default();
    let Some(t) = t else { return Ok(d) };
    let pick = |v: u64, default: usize| if v == 0 { default } else { v as usize };
    let opts = TileOptions {
        chunk_bytes: pick(t.chunk_bytes, d.chunk_bytes),
        combine_size: pick(t.combine_size, d.combine_size),
        max_chunks: pick(t.max_chunks, d.max_chunks),
        ..d
    };
    if opts.combine_size < 2 {
        return Err(Status::invalid_argument(format!("combine_size must be at least 2, not {}", opts.combine_size)));
    }
    Ok(opts)
}

#[tonic::async_trait]
impl Supervisor for SupervisorService {
    async fn open_session(
        &self,
        req: Request<proto::OpenSessionRequest>,
    ) -> Result<Response<proto::OpenSessionReply>, Status> {
        let id = self.0.next();
        let name: String = req.into_inner().name.chars().take(200).collect();
        lock(&self.0.sessions).insert(id, SessionState { name, last_seen: Some(Instant::now()), ..Default::default() });
        Ok(Response::new(proto::OpenSessionReply { session: id, lease_ms: self.0.timing.lease.as_millis() as u64 }))
    }

    async fn keep_alive(&self, req: Request<proto::SessionRef>) -> Result<Response<Empty>, Status> {
        self.0.session_touch(req.into_inner().session)?;
        Ok(Response::new(Empty {}))
    }

    async fn close_session(&self, req: Request<proto::SessionRef>) -> Result<Response<Empty>, Status> {
        self.0.close_session(req.into_inner().session);
        Ok(Response::new(Empty {}))
    }

    async fn submit(&self, req: Request<proto::SubmitRequest>) -> Result<Response<proto::SubmitReply>, Status> {
        let req = req.into_inner();
        self.0.session_touch(req.session)?;
        let tile = tile_options(req.tile)?;
        let graph = TileableGraph::from_bytes(&req.graph)
            .map_err(|e| Status::invalid_argument(format!("invalid graph: {e}")))?;
        let keep = wire::keys_of(&req.keep)?;
        if let Some(k) = keep.iter().find(|k| graph.get(k).is_none()) {
            return Err(Status::invalid_argument(format!("kept key {k} is not in the graph")));
        }
        check_data_refs(&graph, |k| {
            let held = lock(&self.0.sessions).get(&req.session).is_some_and(|s| s.holds.contains_key(k));
            if !held {
                return None;
            }
            lock(&self.0.results).get(k).map(|(r, _)| r.meta.clone())
        })
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        check_fetches(&self.0, req.session, &graph)?;
        let task = self.0.submit(req.session, graph, keep, tile);
        Ok(Response::new(proto::SubmitReply { task }))
    }

    async fn progress(&self, req: Request<proto::TaskRef>) -> Result<Response<proto::ProgressReply>, Status> {
        let req = req.into_inner();
        let t = self.0.task(req.session, req.task)?;
        let fraction = if *t.done.borrow() {
            1.0
        } else {
            let total = t.progress.total.load(Ordering::Relaxed).max(1);
            t.progress.done.load(Ordering::Relaxed) as f64 / total as f64
        };
        Ok(Response::new(proto::ProgressReply { fraction: fraction.min(1.0) }))
    }

    async fn wait(&self, req: Request<proto::WaitRequest>) -> Result<Response<proto::WaitReply>, Status> {
        let req = req.into_inner();
        self.0.session_touch(req.session)?;
        let t = self.0.task(req.session, req.task)?;
        let mut rx = t.done.subscribe();
        let limit = Duration::from_millis(req.timeout_ms.min(10_000));
        let finished = tokio::time::timeout(limit, rx.wait_for(|d| *d)).await.is_ok();
        if !finished {
            return Ok(Response::new(proto::WaitReply { done: false, ..Default::default() }));
        }
        let outcome = lock(&t.outcome).take();
        lock(&self.0.tasks).remove(&req.task);
        Ok(Response::new(match outcome {
            None => failure_reply(BackendError::Other(format!("task {} was already waited for", req.task))),
            Some(Err(e)) => failure_reply(e),
            Some(Ok(results)) => {
                let list: Vec<&TileableResult> = results.values().collect();
                let json = serde_json::to_string(&list).map_err(|e| Status::internal(e.to_string()))?;
                proto::WaitReply { done: true, results_json: json, failure: None }
            }
        }))
    }

    async fn cancel(&self, req: Request<proto::TaskRef>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.0.task(req.session, req.task)?.progress.cancelled.store(true, Ordering::Relaxed);
        Ok(Response::new(Empty {}))
    }

    async fn put(&self, req: Request<proto::PutRequest>) -> Result<Response<proto::PutReply>, Status> {
        let req = req.into_inner();
        self.0.session_touch(req.session)?;
        let key = wire::key_of(&req.key)?;
        // held already (another session put the same data): hold it too,
        // pinning its chunks under the results' lock so that a release
        // racing with this cannot drop them in between; a chunk that is
        // already gone means the data must be put again
        let held = {
            let mut results = lock(&self.0.results);
            match results.get_mut(&key) {
                Some((res, n)) => {
                    let pinned = res.chunks.iter().take_while(|c| self.0.chunks.pin(c)).count();
                    if pinned == res.chunks.len() {
                        *n += 1;
                        true
                    } else {
                        for c in &res.chunks[..pinned] {
                            self.0.chunks.unpin(c);
                        }
                        false
                    }
                }
                None => false,
            }
        };
        if held {
            if let Some(s) = lock(&self.0.sessions).get_mut(&req.session) {
                *s.holds.entry(key).or_default() += 1;
            }
            return Ok(Response::new(proto::PutReply { held: true, worker: String::new() }));
        }
        let (worker, outbox) = lock(&self.0.workers)
            .values()
            .filter(|e| e.info.alive)
            .min_by_key(|e| (e.info.bytes_held, e.queued.load(Ordering::Relaxed)))
            .map(|e| (e.address.clone(), e.outbox.clone()))
            .ok_or_else(|| Status::unavailable("no worker is alive"))?;
        // a release of this key queued for the worker lands before the data does
        let (done, flushed) = tokio::sync::oneshot::channel();
        if outbox.send(Outgoing::Flush(done)).is_err() || flushed.await.is_err() {
            return Err(Status::unavailable(format!("worker {worker} went away")));
        }
        if let Some(s) = lock(&self.0.sessions).get_mut(&req.session) {
            s.pending.insert(key);
        }
        Ok(Response::new(proto::PutReply { held: false, worker }))
    }

    async fn commit_put(&self, req: Request<proto::PutRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.0.session_touch(req.session)?;
        let key = wire::key_of(&req.key)?;
        // two sessions may put the same data at once (the same key): the
        // worker's report serves both, so it stays until the last commits
        let (pending, others) = {
            let mut sessions = lock(&self.0.sessions);
            let pending = sessions.get_mut(&req.session).is_some_and(|s| s.pending.remove(&key));
            (pending, sessions.values().any(|s| s.pending.contains(&key)))
        };
        let result = {
            let mut results = lock(&self.0.put_results);
            if others {
                results.get(&key).cloned()
            } else {
                results.remove(&key)
            }
        };
        let (true, Some(result)) = (pending, result) else {
            return Err(Status::failed_precondition(format!("no data was put for {key} in this session")));
        };
        if !self.0.chunks.pin(&key) {
            return Err(Status::unavailable(format!("the worker holding {key} was lost; put it again")));
        }
        self.0.hold(req.session, &result);
        Ok(Response::new(Empty {}))
    }

    async fn locate(&self, req: Request<proto::LocateRequest>) -> Result<Response<proto::LocateReply>, Status> {
        let req = req.into_inner();
        self.0.session_touch(req.session)?;
        let key = wire::key_of(&req.key)?;
        let held = lock(&self.0.sessions).get(&req.session).is_some_and(|s| s.holds.contains_key(&key));
        let result = match held {
            true => lock(&self.0.results).get(&key).map(|(r, _)| r.clone()),
            false => None,
        };
        let result = result.ok_or_else(|| Status::not_found(key.to_string()))?;
        let mut workers = Vec::with_capacity(result.chunks.len());
        let deadline = Instant::now() + Duration::from_secs(30);
        for c in &result.chunks {
            // a chunk lost with a worker is being made again: wait for it
            let addr = loop {
                if let Some((_, a)) = self.0.chunks.holder_address(c) {
                    break a;
                }
                if Instant::now() > deadline || self.0.chunks.lineage(c).is_none() {
                    return Err(Status::unavailable(format!("chunk {} of {key} is held by no live worker", c.short())));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            workers.push(addr);
        }
        Ok(Response::new(proto::LocateReply { result_json: wire::result_json(&result)?, workers }))
    }

    async fn release(&self, req: Request<proto::KeysRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        let keys = wire::keys_of(&req.keys)?;
        self.0.release(req.session, &keys);
        Ok(Response::new(Empty {}))
    }

    async fn stats(&self, req: Request<proto::SessionRef>) -> Result<Response<proto::StatsReply>, Status> {
        let s = &self.0;
        let session = req.into_inner().session;
        let session_results_held = lock(&s.sessions).get(&session).map_or(0, |x| x.holds.len() as u64);
        Ok(Response::new(proto::StatsReply {
            chunks_run: s.chunks_run.load(Ordering::Relaxed),
            chunks_held: s.chunks.len() as u64,
            bytes_held: s.chunks.bytes() as u64,
            results_held: lock(&s.results).len() as u64,
            workers: s.worker_infos(),
            sessions: lock(&s.sessions).len() as u64,
            session_results_held,
        }))
    }

    async fn register(&self, req: Request<proto::RegisterRequest>) -> Result<Response<proto::RegisterReply>, Status> {
        let req = req.into_inner();
        let add = AddToken::new(&self.0.token).map_err(Status::internal)?;
        let channel = crate::flight::channel(&req.address, &self.0.chunks.tls)?;
        let conn = WorkerClient::with_interceptor(channel, add)
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
        let id = self.0.next();
        let info = proto::WorkerInfo {
            id,
            address: req.address.clone(),
            threads: req.threads,
            memory_limit: req.memory_limit,
            alive: true,
            ..Default::default()
        };
        tracing::info!("worker {id} registered at {}", req.address);
        let (outbox, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(self.0.clone(), id, conn, rx));
        lock(&self.0.workers).insert(
            id,
            WorkerEntry { address: req.address, outbox, last_seen: Instant::now(), info, queued: Arc::default() },
        );
        Ok(Response::new(proto::RegisterReply { worker: id, heartbeat_ms: self.0.timing.heartbeat.as_millis() as u64 }))
    }

    async fn heartbeat(
        &self,
        req: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatReply>, Status> {
        let req = req.into_inner();
        let mut workers = lock(&self.0.workers);
        let known = match workers.get_mut(&req.worker) {
            Some(e) => {
                e.last_seen = Instant::now();
                if let Some(mut info) = req.stats {
                    info.id = req.worker;
                    info.address = e.address.clone();
                    info.alive = true;
                    e.info = info;
                }
                true
            }
            None => false,
        };
        Ok(Response::new(proto::HeartbeatReply { known }))
    }

    async fn task_status(&self, req: Request<proto::StatusBatch>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        let w = req.worker;
        if !lock(&self.0.workers).contains_key(&w) {
            // a removed worker's late reports are ignored
            return Ok(Response::new(Empty {}));
        }
        let stages = lock(&self.0.stages);
        for done in req.done {
            match stages.get(&done.stage) {
                Some(tx) => {
                    let _ = tx.send(StageEvent::Done(w, done));
                }
                None => {
                    // a stage that ended (failed or cancelled): what it made is dropped
                    for k in std::iter::once(&done.key).chain(done.fetched.iter()) {
                        if let Ok(k) = wire::key_of(k) {
                            if !self.0.chunks.held_by(&k, w) {
                                self.0.chunks.release_on(&[w], k);
                            }
                        }
                    }
                }
            }
        }
        Ok(Response::new(Empty {}))
    }

    async fn held(&self, req: Request<proto::HeldRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        if !lock(&self.0.workers).contains_key(&req.worker) {
            return Err(Status::failed_precondition(format!("worker {} is not registered", req.worker)));
        }
        let key = wire::key_of(&req.key)?;
        let result = wire::result_of(&req.result_json).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if result.key != key || result.chunks != [key] {
            return Err(Status::invalid_argument("a put's result must be the one chunk put"));
        }
        let shape: Vec<usize> = result.nsplits.iter().map(|s| s.iter().map(|d| d.known().unwrap_or(0)).sum()).collect();
        self.0.chunks.add_holder(key, req.worker, Some((shape, req.nbytes as usize, Lineage::data(key))));
        lock(&self.0.put_results).insert(key, result);
        Ok(Response::new(Empty {}))
    }
}

/// A graph's `Fetch` nodes (results executed before) must be results this
/// session holds, chunk for chunk: a session cannot read another's chunks
/// by naming their keys.
fn check_fetches(state: &SupState, session: u64, graph: &TileableGraph) -> Result<(), Status> {
    use mars_ir::Op;
    for id in graph.ids() {
        let node = graph.node(id);
        let Op::Fetch { chunks, .. } = &node.op else { continue };
        let held = lock(&state.sessions).get(&session).is_some_and(|s| s.holds.contains_key(&node.key));
        let ok = held && lock(&state.results).get(&node.key).is_some_and(|(r, _)| &r.chunks == chunks);
        if !ok {
            return Err(Status::invalid_argument(format!(
                "node {} refers to a result this session does not hold (execute it in this session first)",
                node.key
            )));
        }
    }
    Ok(())
}

/// The supervisor's gRPC service, behind the token.
pub fn service(state: Arc<SupState>) -> InterceptedService<SupervisorServer<SupervisorService>, CheckToken> {
    let token = state.token.clone();
    let s = SupervisorServer::new(SupervisorService(state))
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    InterceptedService::new(s, CheckToken(token))
}
