//! The threaded local backend: the shared driver over a rayon pool and an
//! in-memory keyed store.

use crate::data::ChunkData;
use crate::driver::{self, ChunkExecutor};
use crate::error::{BackendError, BackendResult};
use crate::executor::{self, Progress};
use crate::store::{ChunkStore, Store};
use crate::{Backend, Stats, TaskId, TileableResult};
use mars_ir::{ChunkGraph, FastMap, FastSet, Key, TileableGraph};
use mars_tiler::{PassManager, TileOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// Worker threads (default: the machine's cores).
    pub threads: Option<usize>,
    /// Keep the store's bytes in memory under this by spilling to disk.
    pub memory_limit: Option<usize>,
    pub tile: TileOptions,
}

type TaskOutcome = Option<BackendResult<HashMap<Key, TileableResult>>>;

#[derive(Debug)]
struct Task {
    progress: Arc<Progress>,
    outcome: Mutex<TaskOutcome>,
    cv: Condvar,
}

#[derive(Debug)]
struct Inner {
    pool: rayon::ThreadPool,
    store: Store,
    opts: LocalOptions,
    passes: PassManager,
    /// Held results and how many holds each has.
    results: Mutex<HashMap<Key, (TileableResult, usize)>>,
    tasks: Mutex<HashMap<u64, Arc<Task>>>,
    next_task: AtomicU64,
    chunks_run: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

struct Exec<'a> {
    inner: &'a Inner,
    progress: &'a Progress,
}

impl ChunkExecutor for Exec<'_> {
    fn execute(&self, graph: &ChunkGraph, keep: &FastSet<Key>) -> BackendResult<FastMap<Key, Vec<usize>>> {
        let before = self.progress.chunks_run.load(Ordering::Relaxed);
        let r = executor::execute(&self.inner.pool, graph, keep, &self.inner.store, self.progress);
        let ran = self.progress.chunks_run.load(Ordering::Relaxed) - before;
        self.inner.chunks_run.fetch_add(ran, Ordering::Relaxed);
        Ok(r?)
    }
    fn store(&self) -> &dyn ChunkStore {
        &self.inner.store
    }
}

impl LocalBackend {
    pub fn new(mut opts: LocalOptions) -> BackendResult<Self> {
        let threads =
            opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        // reads are cut so that every thread has a chunk in the last round
        opts.tile.parallelism = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("mars-local-{i}"))
            .build()
            .map_err(|e| BackendError::Other(format!("cannot start the thread pool: {e}")))?;
        Ok(LocalBackend {
            inner: Arc::new(Inner {
                pool,
                store: Store::with_limit(opts.memory_limit),
                opts,
                passes: PassManager::default(),
                results: Mutex::new(HashMap::new()),
                tasks: Mutex::new(HashMap::new()),
                next_task: AtomicU64::new(1),
                chunks_run: AtomicU64::new(0),
            }),
        })
    }

    fn task(&self, id: TaskId) -> BackendResult<Arc<Task>> {
        lock(&self.inner.tasks).get(&id.0).cloned().ok_or(BackendError::UnknownTask(id.0))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalBackend {
    /// The folder chunks spill to, once something was spilled (deleted with
    /// the backend). A local detail: [`Stats`] carries no paths.
    pub fn spill_folder(&self) -> Option<std::path::PathBuf> {
        self.inner.store.spill_path()
    }
}

impl Backend for LocalBackend {
    fn submit(&self, graph: TileableGraph, keep: Vec<Key>) -> BackendResult<TaskId> {
        crate::check_data_refs(&graph, |k| lock(&self.inner.results).get(k).map(|(r, _)| r.meta.clone()))?;
        let id = self.inner.next_task.fetch_add(1, Ordering::Relaxed);
        let task =
            Arc::new(Task { progress: Arc::new(Progress::default()), outcome: Mutex::new(None), cv: Condvar::new() });
        lock(&self.inner.tasks).insert(id, task.clone());
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(format!("mars-task-{id}"))
            .spawn(move || {
                let exec = Exec { inner: &inner, progress: &task.progress };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    driver::run(graph, &keep, &inner.opts.tile, &inner.passes, &exec)
                }))
                .unwrap_or_else(|_| Err(BackendError::Other("the driver panicked".into())));
                let r = match r {
                    Err(BackendError::Cancelled(_)) => Err(BackendError::Cancelled(id)),
                    Ok(results) => {
                        let mut held = lock(&inner.results);
                        for (k, res) in &results {
                            match held.get_mut(k) {
                                // already held: the driver pinned its chunks again; keep one pin per hold
                                Some((_, n)) => *n += 1,
                                None => {
                                    held.insert(*k, (res.clone(), 1));
                                }
                            }
                        }
                        Ok(results)
                    }
                    other => other,
                };
                // let go of the backend before waking waiters, so a session
                // closed right after its last wait drops the store (and its
                // spill folder) at once
                drop(inner);
                *lock(&task.outcome) = Some(r);
                task.cv.notify_all();
            })
            .map_err(|e| BackendError::Other(format!("cannot start a task thread: {e}")))?;
        Ok(TaskId(id))
    }

    fn progress(&self, task: TaskId) -> BackendResult<f64> {
        let t = self.task(task)?;
        if lock(&t.outcome).is_some() {
            return Ok(1.0);
        }
        let total = t.progress.total.load(Ordering::Relaxed).max(1);
        Ok(t.progress.done.load(Ordering::Relaxed) as f64 / total as f64)
    }

    fn wait(&self, task: TaskId, timeout: Option<Duration>) -> BackendResult<Option<HashMap<Key, TileableResult>>> {
        let t = self.task(task)?;
        let mut outcome = lock(&t.outcome);
        let deadline = timeout.map(|d| std::time::Instant::now() + d);
        while outcome.is_none() {
            match deadline {
                None => outcome = t.cv.wait(outcome).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    outcome = t.cv.wait_timeout(outcome, d - now).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
        let r = outcome.take().unwrap_or_else(|| Err(BackendError::Other("task outcome taken twice".into())));
        drop(outcome);
        lock(&self.inner.tasks).remove(&task.0);
        r.map(Some)
    }

    fn cancel(&self, task: TaskId) -> BackendResult<()> {
        self.task(task)?.progress.cancelled.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn put(&self, key: Key, data: Arc<ChunkData>) -> BackendResult<()> {
        let mut held = lock(&self.inner.results);
        if let Some((_, n)) = held.get_mut(&key) {
            *n += 1;
            self.inner.store.pin(&key);
            return Ok(());
        }
        let result = TileableResult::of_data(key, &data)?;
        self.inner.store.hold(key, data)?;
        self.inner.store.pin(&key);
        held.insert(key, (result, 1));
        Ok(())
    }

    fn fetch(&self, key: &Key) -> BackendResult<ChunkData> {
        let res = self.meta(key)?;
        let chunks: Vec<Arc<ChunkData>> = res
            .chunks
            .iter()
            .map(|c| {
                self.inner
                    .store
                    .get(c)?
                    .ok_or_else(|| BackendError::Other(format!("chunk {c} of {key} is missing from the store")))
            })
            .collect::<BackendResult<_>>()?;
        let grid: Vec<usize> = res.nsplits.iter().map(|s| s.len()).collect();
        let whole = crate::kernels::assemble(&chunks, &grid).map_err(|e| BackendError::Kernel {
            op: "Assemble".into(),
            chunk: key.short(),
            msg: e.0,
        });
        // chunks read back from disk for this fetch may go back out
        drop(chunks);
        self.inner.store.make_room()?;
        whole
    }

    fn fetch_chunk(&self, key: &Key, index: usize) -> BackendResult<ChunkData> {
        let res = self.meta(key)?;
        let chunk = res.chunks.get(index).ok_or_else(|| {
            BackendError::Other(format!("{key} has {} chunks, there is no chunk {index}", res.chunks.len()))
        })?;
        let data = self
            .inner
            .store
            .get(chunk)?
            .ok_or_else(|| BackendError::Other(format!("chunk {chunk} of {key} is missing from the store")))?;
        let value = ChunkData::clone(&data);
        drop(data);
        self.inner.store.make_room()?;
        Ok(value)
    }

    fn meta(&self, key: &Key) -> BackendResult<TileableResult> {
        lock(&self.inner.results).get(key).map(|(r, _)| r.clone()).ok_or_else(|| BackendError::NotHeld(key.to_string()))
    }

    fn release(&self, keys: &[Key]) -> BackendResult<()> {
        let mut held = lock(&self.inner.results);
        for k in keys {
            let Some((res, n)) = held.get_mut(k) else {
                continue;
            };
            *n -= 1;
            for c in &res.chunks {
                self.inner.store.unpin(c);
            }
            if *n == 0 {
                held.remove(k);
            }
        }
        Ok(())
    }

    fn stats(&self) -> BackendResult<Stats> {
        Ok(Stats {
            chunks_run: self.inner.chunks_run.load(Ordering::Relaxed),
            chunks_held: self.inner.store.len(),
            bytes_held: self.inner.store.bytes(),
            spill: self.inner.store.spill_stats(),
            results_held: lock(&self.inner.results).len(),
        })
    }
}
