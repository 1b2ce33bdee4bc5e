//! Sessions: a backend plus the map from tileable key to the result it holds.

use crate::error::{Error, Result};
use crate::node::{lower, payloads, Holder, Node, Payload, Tileable};
use mars_backends::{Backend, ChunkData, LocalBackend, LocalOptions, Stats, TileableResult};
use mars_ir::Key;
use mars_tiler::TileOptions;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

struct Held {
    result: TileableResult,
    /// Live node handles registered on this key.
    handles: usize,
}

pub(crate) struct SessionInner {
    id: String,
    backend: Arc<dyn Backend>,
    held: Mutex<HashMap<Key, Held>>,
    closed: AtomicBool,
    /// Show a progress bar for long executions (when stderr is a terminal).
    progress: bool,
}

impl Holder for SessionInner {
    fn release_handle(&self, key: Key) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let gone = match held.get_mut(&key) {
            Some(h) => {
                h.handles = h.handles.saturating_sub(1);
                h.handles == 0
            }
            None => false,
        };
        if gone {
            held.remove(&key);
            // releasing only fails for unknown keys, which is what we want gone anyway
            let _ = self.backend.release(&[key]);
        }
    }
}

/// A session: executes tileables on its backend and holds their results
/// (Mars's `new_session()`). Clones share the session.
///
/// A result stays held while a handle on the tileable lives; fetching from a
/// session that never executed the tileable is an error, as in Mars:
///
/// ```
/// use mars::prelude::*;
/// use mars::tensor as mt;
///
/// # fn main() -> mars::Result<()> {
/// let sess = mars::new_session()?;
/// let t = mt::ones(&[2]) * 3.0;
/// assert_eq!(t.execute_in(&sess)?.fetch_in(&sess)?.to_string(), "array([3., 3.])");
/// assert!(sess.holds(&t));
///
/// let other = mars::new_session()?;
/// let err = t.fetch_in(&other).unwrap_err();
/// assert!(matches!(err, Error::NotExecuted { .. }));
/// assert!(err.to_string().contains("must be executed first"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.inner.id).field("backend", &self.inner.backend).finish()
    }
}

static DEFAULT: Mutex<Option<Session>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A local session on the threaded backend (one thread per core), with the
/// default options; [`Session::builder`] sets them.
pub fn new_session() -> Result<Session> {
    Session::builder().build()
}

/// A session on a remote cluster, `http://host:port` (token from `MARS_TOKEN`).
pub fn new_session_at(address: &str) -> Result<Session> {
    Session::builder().address(address).build()
}

/// A supervisor and `workers` worker processes on 127.0.0.1 (one thread
/// each), over the real protocol: Mars's `new_cluster(n_worker=n)`. The
/// processes are the `mars` binary's `supervisor` and `worker` subcommands
/// (found beside the program, or at `MARS_BIN`).
pub fn new_cluster(workers: usize) -> Result<LocalCluster> {
    LocalCluster::start(workers, &mars_cluster::LocalClusterOptions::default())
}

/// A local cluster started by [`new_cluster`]; dropping it stops the
/// processes (also when the program panics; and they stop by themselves
/// when it dies).
#[derive(Debug)]
pub struct LocalCluster {
    procs: mars_cluster::ClusterProcesses,
}

impl LocalCluster {
    /// A cluster with these options (threads and memory limit per worker, timings).
    pub fn start(workers: usize, opts: &mars_cluster::LocalClusterOptions) -> Result<LocalCluster> {
        if workers == 0 {
            return Err(Error::Invalid("a cluster needs at least one worker".into()));
        }
        let procs = mars_cluster::ClusterProcesses::start(workers, opts).map_err(Error::Io)?;
        Ok(LocalCluster { procs })
    }
    /// Process ids: the supervisor's, then the workers' (to stop or kill them in tests).
    pub fn pids(&self) -> (u32, Vec<u32>) {
        self.procs.pids()
    }
    /// Start one more worker; returns its process id.
    pub fn add_worker(&mut self, opts: &mars_cluster::LocalClusterOptions) -> Result<u32> {
        self.procs.add_worker(opts).map_err(Error::Io)
    }
    /// A session on this cluster (its address and token; with TLS, trusting
    /// the cluster's certificate).
    pub fn session(&self) -> Result<Session> {
        let mut b = Session::builder().address(self.address()).token(self.token());
        if let Some(ca) = self.procs.tls_ca() {
            b = b.tls_ca(ca);
        }
        b.build()
    }
    /// The supervisor's address, `http://127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        self.procs.address()
    }
    /// The token clients must present (for sessions from other processes).
    pub fn token(&self) -> &str {
        self.procs.token()
    }
}

/// Options of a new session: `Session::builder().threads(2).build()?`. Every
/// option has a default; [`build`](Self::build) checks them.
#[derive(Debug, Default, Clone)]
pub struct SessionBuilder {
    address: Option<String>,
    token: Option<String>,
    tls_ca: Option<std::path::PathBuf>,
    threads: Option<usize>,
    memory_limit: Option<usize>,
    chunk_bytes: Option<usize>,
    max_chunks: Option<usize>,
    progress: Option<bool>,
}

impl SessionBuilder {
    /// Connect to the cluster at `a` (`http://host:port`) instead of running
    /// locally; threads and memory limit are then the workers' own.
    pub fn address(mut self, a: &str) -> Self {
        self.address = Some(a.to_string());
        self
    }
    /// The cluster token (default: `MARS_TOKEN`).
    pub fn token(mut self, t: &str) -> Self {
        self.token = Some(t.to_string());
        self
    }
    /// For an `https://` address: trust the certificates in this PEM file
    /// (default: `MARS_TLS_CA`, else the public web roots).
    pub fn tls_ca(mut self, pem_file: impl AsRef<Path>) -> Self {
        self.tls_ca = Some(pem_file.as_ref().to_path_buf());
        self
    }
    /// Worker threads of the local backend (default: one per core).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }
    /// Keep the chunks in memory under `bytes` by spilling the coldest to a temp
    /// folder; without `chunk_bytes`, chunks default to a quarter of the limit.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }
    /// Show a progress bar for executions longer than a second when stderr is a
    /// terminal (default on; `MARS_PROGRESS=0` also turns it off).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = Some(show);
        self
    }
    /// Byte budget of one chunk when no chunk sizes were given (default 128 MiB).
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = Some(bytes);
        self
    }
    /// The most chunks one execution may tile into (default 16 Mi): a graph
    /// that would pass it is refused before anything is allocated, naming its
    /// grid. Each chunk costs about 1 KB of graph while it runs.
    pub fn max_chunks(mut self, n: usize) -> Self {
        self.max_chunks = Some(n);
        self
    }
    /// The session; a zero `memory_limit` or `chunk_bytes` is [`Error::Invalid`].
    pub fn build(self) -> Result<Session> {
        let mut tile = TileOptions::for_budget(self.chunk_bytes, self.memory_limit)?;
        if let Some(n) = self.max_chunks {
            tile.max_chunks = n;
        }
        if let Some(a) = &self.address {
            let token = match &self.token {
                Some(t) => t.clone(),
                None => std::env::var("MARS_TOKEN").map_err(|_| {
                    Error::Invalid(format!("connecting to {a} needs the cluster's token: set MARS_TOKEN or .token(..)"))
                })?,
            };
            let name = format!("pid {}", std::process::id());
            let tls = mars_cluster::ClientTls::resolve(self.tls_ca.as_deref(), None).map_err(Error::Invalid)?;
            let backend = mars_cluster::RemoteBackend::connect(a, &token, &tls, &tile, &name)?;
            let mut session = Session::with_backend(Arc::new(backend));
            if let (Some(show), Some(inner)) = (self.progress, Arc::get_mut(&mut session.inner)) {
                inner.progress = show;
            }
            return Ok(session);
        }
        let opts = LocalOptions { threads: self.threads, memory_limit: self.memory_limit, tile };
        let backend = LocalBackend::new(opts)?;
        let mut session = Session::with_backend(Arc::new(backend));
        if let (Some(show), Some(inner)) = (self.progress, Arc::get_mut(&mut session.inner)) {
            inner.progress = show;
        }
        Ok(session)
    }
}

impl Session {
    /// Options for a new session (see [`SessionBuilder`]).
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// A session over any backend.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Session {
        let id = format!("session-{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        Session {
            inner: Arc::new(SessionInner {
                id,
                backend,
                held: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
                progress: std::env::var("MARS_PROGRESS").map_or(true, |v| v != "0"),
            }),
        }
    }

    /// Make this the default session (what `execute()`/`fetch()` use) and
    /// return it, as Mars's `new_session().as_default()`.
    ///
    /// ```
    /// use mars::prelude::*;
    /// use mars::tensor as mt;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let sess = mars::new_session()?.as_default();
    /// let t = mt::arange(0.0, 3.0, 1.0);
    /// assert_eq!(t.execute()?.fetch()?.to_string(), "array([0., 1., 2.])");
    /// assert!(sess.holds(&t));
    /// assert_eq!(Session::default_or_local()?.id(), sess.id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_default(&self) -> Session {
        *DEFAULT.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clone());
        self.clone()
    }

    /// The default session, creating a local one on first use.
    pub fn default_or_local() -> Result<Session> {
        let mut d = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = d.as_ref() {
            if !s.inner.closed.load(Ordering::Relaxed) {
                return Ok(s.clone());
            }
        }
        let s = new_session()?;
        *d = Some(s.clone());
        Ok(s)
    }

    /// A name unique in this process (`session-PID-N`), used in errors and logs.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            Err(Error::Closed(self.inner.id.clone()))
        } else {
            Ok(())
        }
    }

    /// Execute several tileables together: shared parts run once; results
    /// already held are reused.
    pub fn execute(&self, tileables: &[&dyn Tileable]) -> Result<()> {
        let nodes: Vec<&Node> = tileables.iter().map(|t| t.node()).collect();
        self.execute_nodes(&nodes)
    }

    pub(crate) fn execute_nodes(&self, nodes: &[&Node]) -> Result<()> {
        self.check_open()?;
        for n in nodes {
            n.check()?;
        }
        let held: HashMap<Key, TileableResult> = {
            let h = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
            h.iter().map(|(k, v)| (*k, v.result.clone())).collect()
        };
        let mut keep: Vec<Key> = nodes.iter().map(|n| n.key()).filter(|k| !held.contains_key(k)).collect();
        keep.sort();
        keep.dedup();
        if !keep.is_empty() {
            // user data the graph refers to goes into the backend first, once
            self.put_payloads(&payloads(nodes, &held))?;
            let (graph, _) = {
                let _lower = tracing::debug_span!("lower", roots = nodes.len()).entered();
                lower(nodes, &held)?
            };
            let _span = tracing::info_span!("execute", session = %self.inner.id, nodes = graph.len()).entered();
            let task = self.inner.backend.submit(graph, keep.clone())?;
            let results = wait_with_progress(self.inner.backend.as_ref(), task, self.inner.progress)?;
            let mut h = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
            for (k, r) in results {
                match h.get_mut(&k) {
                    Some(_) => {
                        // raced with another execute of the same key: drop the extra hold
                        let _ = self.inner.backend.release(&[k]);
                    }
                    None => {
                        h.insert(k, Held { result: r, handles: 0 });
                    }
                }
            }
        }
        let weak: Weak<dyn Holder> = Arc::downgrade(&self.inner) as Weak<dyn Holder>;
        let mut h = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        for n in nodes {
            if let Some(entry) = h.get_mut(&n.key()) {
                n.resolve(entry.result.meta.clone());
                if n.add_holder(weak.clone()) {
                    entry.handles += 1;
                }
            }
        }
        Ok(())
    }

    /// The whole value of an executed tileable.
    /// Put user data into the backend (unless this session holds it already)
    /// and register the payloads as holding it: it stays while one lives.
    fn put_payloads(&self, payloads: &[Arc<Payload>]) -> Result<()> {
        let weak: Weak<dyn Holder> = Arc::downgrade(&self.inner) as Weak<dyn Holder>;
        let mut h = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        for p in payloads {
            if let std::collections::hash_map::Entry::Vacant(e) = h.entry(p.key) {
                let result = TileableResult::of_data(p.key, &p.data)?;
                self.inner.backend.put(p.key, p.data.clone())?;
                e.insert(Held { result, handles: 0 });
            }
            if p.add_holder(weak.clone()) {
                if let Some(entry) = h.get_mut(&p.key) {
                    entry.handles += 1;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn fetch_node(&self, n: &Node) -> Result<ChunkData> {
        self.fetch_check(n)?;
        Ok(self.inner.backend.fetch(&n.key())?)
    }

    /// Each chunk of the held result of `n`, in order (a result never sits
    /// whole in memory this way).
    pub(crate) fn for_each_chunk(&self, n: &Node, mut f: impl FnMut(ChunkData) -> Result<()>) -> Result<()> {
        self.fetch_check(n)?;
        let count = self.inner.backend.meta(&n.key())?.chunks.len();
        for i in 0..count {
            f(self.inner.backend.fetch_chunk(&n.key(), i)?)?;
        }
        Ok(())
    }

    fn fetch_check(&self, n: &Node) -> Result<()> {
        self.check_open()?;
        let held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&n.key());
        if !held {
            return Err(Error::NotExecuted { key: n.key().to_string() });
        }
        Ok(())
    }

    /// Whether this session holds the result of `t`.
    pub fn holds(&self, t: &dyn Tileable) -> bool {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&t.key())
    }

    /// Chunks run, chunks and bytes held, what was spilled; an error when
    /// the backend cannot be asked.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.inner.backend.stats()?)
    }

    /// Release everything this session holds; later `execute`/`fetch` calls
    /// on its clones give [`Error::Closed`].
    pub fn close(self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Relaxed);
        let keys: Vec<Key> =
            self.inner.held.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(k, _)| k).collect();
        self.inner.backend.release(&keys)?;
        let mut d = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
        if d.as_ref().is_some_and(|s| Arc::ptr_eq(&s.inner, &self.inner)) {
            *d = None;
        }
        Ok(())
    }
}

/// Wait for a task; after a second, show a progress bar on stderr when it is a
/// terminal and `show` is set (`MARS_PROGRESS=0` turns it off, `=now` shows it at once).
pub(crate) fn wait_with_progress(
    backend: &dyn Backend,
    task: mars_backends::TaskId,
    show: bool,
) -> Result<HashMap<Key, TileableResult>> {
    use std::io::IsTerminal;
    let show = show && std::io::stderr().is_terminal();
    let start = std::time::Instant::now();
    let now = std::env::var("MARS_PROGRESS").is_ok_and(|v| v == "now");
    let mut bar: Option<indicatif::ProgressBar> = None;
    loop {
        // (with `now` the bar is drawn before the first wait, so even a short run shows it)
        if show && (now || start.elapsed().as_secs_f64() > 1.0) {
            let b = bar.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(1000).with_elapsed(start.elapsed());
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent}% of chunks")
                {
                    b.set_style(style);
                }
                b
            });
            b.set_position((backend.progress(task)? * 1000.0) as u64);
        }
        if let Some(r) = backend.wait(task, Some(std::time::Duration::from_millis(100)))? {
            if let Some(b) = bar {
                b.set_position(1000);
                b.finish_and_clear();
            }
            return Ok(r);
        }
    }
}

/// Save the tileable graph of `tileables` as versioned JSON (`mars inspect` reads it).
/// The graph refers to user data by key; the data goes beside it, one file a
/// key in the folder [`data_dir`] names (`GRAPH.json.data/KEY.chunk`), for
/// `mars run` to put into its backend.
pub fn save_graph(tileables: &[&dyn Tileable], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let nodes: Vec<&Node> = tileables.iter().map(|t| t.node()).collect();
    let (g, _) = lower(&nodes, &HashMap::new())?;
    let roots: Vec<Key> = nodes.iter().map(|n| n.key()).collect();
    let json = g.to_json_with_roots(&roots)?;
    let io = |p: &Path, e: std::io::Error| Error::Io(format!("cannot write {}: {e}", p.display()));
    std::fs::write(path, json).map_err(|e| io(path, e))?;
    let data = payloads(&nodes, &HashMap::new());
    if !data.is_empty() {
        let dir = data_dir(path);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        for p in data {
            let file = dir.join(format!("{}.chunk", p.key));
            std::fs::write(&file, mars_backends::codec::encode(&p.data)?).map_err(|e| io(&file, e))?;
        }
    }
    Ok(())
}

/// Where [`save_graph`] puts the user data of the graph saved at `path`.
pub fn data_dir(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".data");
    path.with_file_name(name)
}

/// The chunk graph of `t` after tiling with a per-chunk byte budget
/// (`None`: 128 MiB) and, with `passes`, after the chunk passes.
pub fn explain_tiled(t: &dyn Tileable, chunk_bytes: Option<usize>, passes: bool) -> Result<String> {
    explain_tiled_for(t, chunk_bytes, 1, passes)
}

/// [`explain_tiled`] as a session of `threads` threads tiles it: reads are
/// cut so that every thread gets an even share.
pub fn explain_tiled_for(t: &dyn Tileable, chunk_bytes: Option<usize>, threads: usize, passes: bool) -> Result<String> {
    let (g, _) = lower(&[t.node()], &HashMap::new())?;
    let mut opts = TileOptions::for_budget(chunk_bytes, None)?;
    opts.parallelism = threads.max(1);
    Ok(mars_tiler::explain_tiled(g, t.key(), opts, passes)?)
}
