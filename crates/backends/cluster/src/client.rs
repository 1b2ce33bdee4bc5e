//! [`RemoteBackend`]: a session's backend on a cluster. Control calls go to
//! the supervisor over gRPC; data goes straight to and from the workers over
//! Flight (a fetch reads each chunk from a worker holding it and assembles
//! the value here, so a big result never sits whole on the supervisor).
//!
//! Every call is bounded in time: an unreachable or dead supervisor is an
//! error within seconds, never a hang. A background task renews the
//! session's lease; dropping the backend closes the session, and a client
//! that disappears without closing loses its holds when the lease expires.

use crate::auth::AddToken;
use crate::flight::{self, FlightClient};
use crate::proto::supervisor_client::SupervisorClient;
use crate::proto::{self};
use crate::tls::ClientTls;
use crate::wire;
use mars_backends::{Backend, BackendError, BackendResult, ChunkData, SpillStats, Stats, TaskId, TileableResult};
use mars_ir::{Key, TileableGraph};
use mars_tiler::TileOptions;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

type SupervisorConn = SupervisorClient<InterceptedService<Channel, AddToken>>;

/// The longest one control call may take (a `wait` is cut into shorter calls).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A session on a remote supervisor.
pub struct RemoteBackend {
    rt: tokio::runtime::Runtime,
    sup: SupervisorConn,
    token: AddToken,
    tls: ClientTls,
    session: u64,
    address: String,
    tile: proto::TileOptions,
    keepalive: tokio::task::JoinHandle<()>,
    /// Flight clients of the workers read from, kept (one connection each).
    workers: std::sync::Mutex<HashMap<String, FlightClient>>,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend").field("address", &self.address).field("session", &self.session).finish()
    }
}

fn other(what: &str, s: Status) -> BackendError {
    wire::status_error(what, s)
}

impl RemoteBackend {
    /// Open a session on the supervisor at `address` (`http://host:port`, or
    /// `https://` trusting what `tls` says).
    pub fn connect(
        address: &str,
        token: &str,
        tls: &ClientTls,
        tile: &TileOptions,
        name: &str,
    ) -> BackendResult<RemoteBackend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mars-client")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Other(format!("cannot start the client runtime: {e}")))?;
        let add = AddToken::new(token).map_err(BackendError::Other)?;
        let url = address.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(BackendError::Other(format!(
                "a cluster address is http://host:port (or https://), not {address:?}"
            )));
        }
        let channel = {
            let _g = rt.enter();
            flight::channel(url, tls).map_err(|e| other(address, e))?
        };
        let sup = SupervisorClient::with_interceptor(channel, add.clone())
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
        let name = name.to_string();
        let mut s = sup.clone();
        let opened = run_on(&rt, async move {
            tokio::time::timeout(Duration::from_secs(10), s.open_session(proto::OpenSessionRequest { name })).await
        })?
        .map_err(|_| BackendError::Other(format!("cannot connect to {address}: no answer within 10 s")))?
        .map_err(|e| other(&format!("cannot connect to {address}"), e))?
        .into_inner();
        let session = opened.session;
        let every = Duration::from_millis((opened.lease_ms / 3).max(50));
        let mut s = sup.clone();
        let keepalive = rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = tokio::time::timeout(every, s.keep_alive(proto::SessionRef { session })).await;
            }
        });
        Ok(RemoteBackend {
            rt,
            sup,
            token: add,
            tls: tls.clone(),
            session,
            address: address.to_string(),
            tile: proto::TileOptions {
                chunk_bytes: tile.chunk_bytes as u64,
                combine_size: tile.combine_size as u64,
                max_chunks: tile.max_chunks as u64,
            },
            keepalive,
            workers: Default::default(),
        })
    }

    /// The session's id on the supervisor.
    pub fn session_id(&self) -> u64 {
        self.session
    }

    /// Run a call on the client's runtime, from any thread, bounded by `limit`.
    fn call<T, F>(&self, what: &str, limit: Duration, f: impl FnOnce(SupervisorConn) -> F) -> BackendResult<T>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.sup.clone());
        match run_on(&self.rt, async move { tokio::time::timeout(limit, fut).await }) {
            Err(e) => Err(e),
            Ok(Err(_)) => Err(BackendError::Other(format!(
                "{what}: the supervisor at {} did not answer within {limit:?}",
                self.address
            ))),
            Ok(Ok(Err(s))) if s.code() == tonic::Code::NotFound && what == "locate" => {
                Err(BackendError::NotHeld(s.message().to_string()))
            }
            Ok(Ok(Err(s))) => Err(other(&format!("{what} on {}", self.address), s)),
            Ok(Ok(Ok(r))) => Ok(r.into_inner()),
        }
    }

    fn locate(&self, key: &Key) -> BackendResult<(TileableResult, Vec<String>)> {
        let req = proto::LocateRequest { session: self.session, key: wire::key_bytes(key) };
        let reply = self.call("locate", CALL_TIMEOUT, |mut s| async move { s.locate(req).await })?;
        let result = wire::result_of(&reply.result_json)?;
        if reply.workers.len() != result.chunks.len() {
            return Err(BackendError::Other(format!(
                "the supervisor named {} workers for {} chunks of {key}",
                reply.workers.len(),
                result.chunks.len()
            )));
        }
        Ok((result, reply.workers))
    }

    /// Locate a result and read its chunks (or the one at `index`). A worker
    /// that died since the supervisor named it fails the read: the result is
    /// located again (its lost chunks are being made again elsewhere), for
    /// up to [`CALL_TIMEOUT`].
    fn read_located(&self, key: &Key, index: Option<usize>) -> BackendResult<(TileableResult, Vec<Arc<ChunkData>>)> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let (res, workers) = self.locate(key)?;
            let (chunks, workers) = match index {
                None => (res.chunks.clone(), workers),
                Some(i) => match (res.chunks.get(i), workers.get(i)) {
                    (Some(c), Some(w)) => (vec![*c], vec![w.clone()]),
                    _ => {
                        return Err(BackendError::Other(format!(
                            "{key} has {} chunks, there is no chunk {i}",
                            res.chunks.len()
                        )))
                    }
                },
            };
            match self.read_chunks(&chunks, &workers) {
                Ok(data) => return Ok((res, data)),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("reading {key} failed ({e}); locating it again");
                    self.workers.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn flight(&self, addr: &str) -> BackendResult<FlightClient> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = workers.get(addr) {
            return Ok(c.clone());
        }
        let _g = self.rt.enter();
        let c = flight::client(addr, &self.token, &self.tls)
            .map_err(|e| other(addr, e))?
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES);
        workers.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Read chunks from the workers holding them, all at once.
    fn read_chunks(&self, chunks: &[Key], workers: &[String]) -> BackendResult<Vec<Arc<ChunkData>>> {
        let mut clients: HashMap<&str, FlightClient> = HashMap::new();
        let mut gets = Vec::with_capacity(chunks.len());
        for (k, w) in chunks.iter().zip(workers) {
            let c = match clients.get(w.as_str()) {
                Some(c) => c.clone(),
                None => {
                    let c = self.flight(w)?;
                    clients.insert(w, c.clone());
                    c
                }
            };
            let (k, w) = (*k, w.clone());
            gets.push(async move {
                let mut c = c;
                flight::get(&mut c, &k).await.map_err(|e| {
                    BackendError::Other(format!("cannot read chunk {} from worker {w}: {}", k.short(), e.message()))
                })
            });
        }
        let all = run_on(&self.rt, async move {
            tokio::time::timeout(Duration::from_secs(600), futures::future::try_join_all(gets)).await
        })?
        .map_err(|_| BackendError::Other("reading chunks took more than 600 s".into()))??;
        Ok(all.into_iter().map(Arc::new).collect())
    }
}

/// Run `fut` on `rt` and wait for it from this (non-runtime or runtime) thread.
fn run_on<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = T> + Send + 'static,
) -> BackendResult<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| BackendError::Other("the client runtime stopped".into()))
}

impl Drop for RemoteBackend {
    fn drop(&mut self) {
        self.keepalive.abort();
        let session = self.session;
        let _ = self.call("close", Duration::from_secs(2), |mut s| async move {
            s.close_session(proto::SessionRef { session }).await
        });
    }
}

impl Backend for RemoteBackend {
    fn submit(&self, graph: TileableGraph, keep: Vec<Key>) -> BackendResult<TaskId> {
        let req = proto::SubmitRequest {
            session: self.session,
            graph: graph.to_bytes()?,
            tile: Some(self.tile),
            keep: keep.iter().map(wire::key_bytes).collect(),
        };
        let reply = self.call("submit", CALL_TIMEOUT, |mut s| async move { s.submit(req).await })?;
        Ok(TaskId(reply.task))
    }

    fn progress(&self, task: TaskId) -> BackendResult<f64> {
        let req = proto::TaskRef { session: self.session, task: task.0 };
        Ok(self.call("progress", CALL_TIMEOUT, |mut s| async move { s.progress(req).await })?.fraction)
    }

    fn wait(&self, task: TaskId, timeout: Option<Duration>) -> BackendResult<Option<HashMap<Key, TileableResult>>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // short calls, so a supervisor that dies is noticed in seconds
            let left = deadline.map_or(Duration::from_secs(2), |d| d.saturating_duration_since(Instant::now()));
            let step = left.min(Duration::from_secs(2));
            let req = proto::WaitRequest { session: self.session, task: task.0, timeout_ms: step.as_millis() as u64 };
            let reply = self.call("wait", step + Duration::from_secs(5), |mut s| async move { s.wait(req).await })?;
            if reply.done {
                if let Some(f) = reply.failure {
                    return Err(wire::error_of(f));
                }
                let list: Vec<TileableResult> = serde_json::from_str(&reply.results_json)
                    .map_err(|e| BackendError::Other(format!("malformed results from the cluster: {e}")))?;
                return Ok(Some(list.into_iter().map(|r| (r.key, r)).collect()));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    fn cancel(&self, task: TaskId) -> BackendResult<()> {
        let req = proto::TaskRef { session: self.session, task: task.0 };
        self.call("cancel", CALL_TIMEOUT, |mut s| async move { s.cancel(req).await })?;
        Ok(())
    }

    fn put(&self, key: Key, data: Arc<ChunkData>) -> BackendResult<()> {
        // refuse what cannot be a result before sending it anywhere
        TileableResult::of_data(key, &data)?;
        let req = proto::PutRequest { session: self.session, key: wire::key_bytes(&key) };
        let reply = self.call("put", CALL_TIMEOUT, |mut s| async move { s.put(req).await })?;
        if reply.held {
            return Ok(());
        }
        let mut c = self.flight(&reply.worker)?;
        let worker = reply.worker.clone();
        run_on(&self.rt, async move { flight::put(&mut c, &key, &data).await })?
            .map_err(|e| BackendError::Other(format!("cannot send {key} to worker {worker}: {}", e.message())))?;
        let req = proto::PutRequest { session: self.session, key: wire::key_bytes(&key) };
        self.call("put", CALL_TIMEOUT, |mut s| async move { s.commit_put(req).await })?;
        Ok(())
    }

    fn fetch(&self, key: &Key) -> BackendResult<ChunkData> {
        let (res, chunks) = self.read_located(key, None)?;
        let grid: Vec<usize> = res.nsplits.iter().map(|s| s.len()).collect();
        mars_exec::kernels::assemble(&chunks, &grid).map_err(|e| BackendError::Kernel {
            op: "Assemble".into(),
            chunk: key.short(),
            msg: e.0,
        })
    }

    fn fetch_chunk(&self, key: &Key, index: usize) -> BackendResult<ChunkData> {
        let (_, mut got) = self.read_located(key, Some(index))?;
        let data = got.pop().ok_or_else(|| BackendError::Other(format!("chunk {index} of {key} was not read")))?;
        Ok(Arc::try_unwrap(data).unwrap_or_else(|a| ChunkData::clone(&a)))
    }

    fn meta(&self, key: &Key) -> BackendResult<TileableResult> {
        Ok(self.locate(key)?.0)
    }

    fn release(&self, keys: &[Key]) -> BackendResult<()> {
        let req = proto::KeysRequest { session: self.session, keys: keys.iter().map(wire::key_bytes).collect() };
        self.call("release", CALL_TIMEOUT, |mut s| async move { s.release(req).await })?;
        Ok(())
    }

    fn stats(&self) -> BackendResult<Stats> {
        let req = proto::SessionRef { session: self.session };
        let r = self.call("stats", CALL_TIMEOUT, |mut s| async move { s.stats(req).await })?;
        let mut spill = SpillStats::default();
        for w in &r.workers {
            spill.chunks_spilled += w.chunks_spilled;
            spill.bytes_spilled += w.bytes_spilled;
            spill.chunks_restored += w.chunks_restored;
            spill.chunks_on_disk += w.chunks_on_disk as usize;
        }
        Ok(Stats {
            chunks_run: r.chunks_run,
            chunks_held: r.chunks_held as usize,
            bytes_held: r.bytes_held as usize,
            spill,
            results_held: r.session_results_held as usize,
        })
    }
}

/// The whole cluster's counters (every session's), for tests and tools
/// (`https://` trusts `MARS_TLS_CA`).
pub fn cluster_stats(address: &str, token: &str) -> BackendResult<proto::StatsReply> {
    let tls = ClientTls::resolve(None, None).map_err(BackendError::Other)?;
    let b = RemoteBackend::connect(address, token, &tls, &TileOptions::default(), "stats")?;
    let session = b.session;
    b.call("stats", CALL_TIMEOUT, |mut s| async move { s.stats(proto::SessionRef { session }).await })
}
