//! The `mars supervisor` and `mars worker` processes, and
//! [`ClusterProcesses`]: a supervisor and workers started as child processes
//! on 127.0.0.1 (what `mars::new_cluster` gives).

use crate::auth::{self, AddToken};
use crate::proto::supervisor_client::SupervisorClient;
use crate::supervisor::{self, SupState, Timing};
use crate::tls::{ClientTls, ServerTls};
use crate::worker::{self, WorkerState};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Options of `mars supervisor`.
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// Where to listen (default 127.0.0.1:7777; port 0 picks a free one).
    pub bind: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub timing: Timing,
    /// Serve TLS with this certificate and key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The roots trusted for `https://` workers (default: `MARS_TLS_CA`,
    /// else `tls_cert`, else the public web roots).
    pub tls_ca: Option<PathBuf>,
    /// Stop when standard input closes (the parent that started it is gone).
    pub watch_stdin: bool,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            bind: "127.0.0.1:7777".into(),
            token: None,
            token_file: None,
            timing: Timing::default(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            watch_stdin: false,
        }
    }
}

/// Options of `mars worker`.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The supervisor's URL, `http://host:port`.
    pub supervisor: String,
    /// Where to listen (default 127.0.0.1:0, a free port).
    pub bind: String,
    /// The address peers and clients use (default: the bound one).
    pub advertise: Option<String>,
    pub token: Option<String>,
    pub threads: Option<usize>,
    pub memory_limit: Option<usize>,
    /// Serve TLS with this certificate and key (PEM); the advertised address
    /// is then `https://…`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The roots trusted for an `https://` supervisor and peers (default:
    /// `MARS_TLS_CA`, else `tls_cert`, else the public web roots).
    pub tls_ca: Option<PathBuf>,
    pub watch_stdin: bool,
}

fn runtime(name: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Accepted connections with Nagle's algorithm off (small control messages
/// and the last piece of a chunk must not wait for an ACK).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Resolves on Ctrl-C, SIGTERM, or (with `watch_stdin`) when stdin closes.
async fn shutdown(watch_stdin: bool) {
    let stdin_closed = async move {
        if !watch_stdin {
            return std::future::pending::<()>().await;
        }
        let _ = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
        })
        .await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = stdin_closed => {}
    }
}

/// Write `token` to a new file only this user can read.
fn write_token_file(path: &Path, token: &str) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| format!("cannot write the token to {}: {e}", path.display()))?;
    f.write_all(token.as_bytes()).map_err(|e| format!("cannot write the token to {}: {e}", path.display()))
}

fn read_token_file(path: &Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(t)
}

/// The token from `--token`, `--token-file` or `MARS_TOKEN`, if any.
fn given_token(token: &Option<String>, file: &Option<PathBuf>) -> Result<Option<String>, String> {
    if let Some(t) = token {
        return Ok(Some(t.clone()));
    }
    if let Some(f) = file {
        return read_token_file(f).map(Some);
    }
    Ok(std::env::var("MARS_TOKEN").ok().filter(|t| !t.is_empty()))
}

/// Run a supervisor until Ctrl-C / SIGTERM. Prints `listening on http://…`
/// (and, when it made the token, where it wrote it) on stdout.
pub fn run_supervisor(opts: SupervisorOptions) -> Result<(), String> {
    let token = match given_token(&opts.token, &opts.token_file)? {
        Some(t) => t,
        None => {
            let t = auth::generate_token().map_err(|e| e.to_string())?;
            let dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
            let path = dir.join(format!("mars-token-{}", std::process::id()));
            write_token_file(&path, &t)?;
            println!("token written to {} (readable only by you); clients and workers read MARS_TOKEN", path.display());
            t
        }
    };
    AddToken::new(&token)?;
    let server_tls = ServerTls::from_options(opts.tls_cert.as_deref(), opts.tls_key.as_deref())?;
    let client_tls = ClientTls::resolve(opts.tls_ca.as_deref(), server_tls.as_ref().map(ServerTls::cert_path))?;
    let scheme = if server_tls.is_some() { "https" } else { "http" };
    let rt = runtime("mars-supervisor")?;
    rt.block_on(async move {
        let listener =
            TcpListener::bind(&opts.bind).await.map_err(|e| format!("cannot listen on {}: {e}", opts.bind))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = SupState::new(token.into(), opts.timing.clone(), client_tls, tokio::runtime::Handle::current());
        let server = ServerTls::apply(server_tls.as_ref(), tonic::transport::Server::builder())?;
        println!("mars supervisor listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
        // one port: gRPC for clients and workers, HTTP/1.1 for the dashboard
        let router = tonic::service::Routes::new(supervisor::service(state.clone()))
            .into_axum_router()
            .merge(crate::dashboard::router(state));
        server
            .tcp_nodelay(true)
            .accept_http1(true)
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(incoming(listener), shutdown(opts.watch_stdin))
            .await
            .map_err(|e| format!("the supervisor stopped: {e}"))
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Run a worker until Ctrl-C / SIGTERM, or until its supervisor has been
/// unreachable for 10 s.
pub fn run_worker(opts: WorkerOptions) -> Result<(), String> {
    let token = given_token(&opts.token, &None)?
        .ok_or("a worker needs the cluster's token: --token, or MARS_TOKEN in the environment")?;
    let add = AddToken::new(&token)?;
    let server_tls = ServerTls::from_options(opts.tls_cert.as_deref(), opts.tls_key.as_deref())?;
    let client_tls = ClientTls::resolve(opts.tls_ca.as_deref(), server_tls.as_ref().map(ServerTls::cert_path))?;
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let rt = runtime("mars-worker")?;
    rt.block_on(async move {
        let listener =
            TcpListener::bind(&opts.bind).await.map_err(|e| format!("cannot listen on {}: {e}", opts.bind))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let address = opts.advertise.clone().unwrap_or_else(|| addr.to_string());
        // with TLS, peers must connect with https
        let address = match (&server_tls, address.contains("://")) {
            (Some(_), false) => format!("https://{address}"),
            _ => address,
        };
        let channel = crate::flight::channel(&opts.supervisor, &client_tls).map_err(|e| e.message().to_string())?;
        let sup = SupervisorClient::with_interceptor(channel, add.clone())
            .max_decoding_message_size(crate::wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::wire::MAX_MESSAGE_BYTES);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let state = Arc::new(WorkerState::new(address.clone(), &add, client_tls, sup, threads, opts.memory_limit, tx)?);
        let (wsvc, fsvc) = worker::services(state.clone(), token.into());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = ServerTls::apply(server_tls.as_ref(), tonic::transport::Server::builder())?;
        let server = tokio::spawn(
            server
                .tcp_nodelay(true)
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(32 << 20))
                .max_frame_size(Some(1 << 20))
                .add_service(wsvc)
                .add_service(fsvc)
                .serve_with_incoming_shutdown(incoming(listener), async {
                    let _ = stop_rx.await;
                }),
        );
        // the supervisor may still be starting: try for 10 s
        let started = Instant::now();
        let heartbeat_ms = loop {
            match state.register().await {
                Ok(ms) => break ms,
                Err(e) if e.code() == tonic::Code::Unauthenticated => {
                    return Err(format!("the supervisor at {} refused the token: {}", opts.supervisor, e.message()))
                }
                Err(e) if started.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("cannot register with the supervisor at {}: {}", opts.supervisor, e.message()))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        println!("mars worker {} listening on {address}", state.id());
        let _ = std::io::stdout().flush();
        tokio::spawn(worker::report_statuses(state.clone(), rx));
        let every = Duration::from_millis(heartbeat_ms.max(10));
        tokio::select! {
            _ = worker::heartbeat(state.clone(), every, Duration::from_secs(10)) => {}
            _ = shutdown(opts.watch_stdin) => {}
        }
        state.stop();
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        Ok::<(), String>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Where the `mars` binary is: `MARS_BIN`, beside the running program (or
/// one folder up, as for test binaries in `target/*/deps`), else on `PATH`.
pub fn mars_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MARS_BIN") {
        return PathBuf::from(p);
    }
    let name = format!("mars{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join(&name);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from(name)
}

/// A supervisor and workers running as child processes on 127.0.0.1.
/// Dropping it stops them (closing their stdin, then killing what is left);
/// they also stop by themselves when this process dies.
#[derive(Debug)]
pub struct ClusterProcesses {
    supervisor: Child,
    workers: Vec<Child>,
    address: String,
    token: String,
    /// The certificate the processes serve (what clients must trust).
    tls_ca: Option<PathBuf>,
}

/// Options of [`ClusterProcesses::start`].
#[derive(Clone, Debug, Default)]
pub struct LocalClusterOptions {
    /// Threads per worker (default 1).
    pub threads: Option<usize>,
    /// Each worker's memory limit.
    pub memory_limit: Option<usize>,
    /// Heartbeat / worker TTL / lease, as `--heartbeat-ms` etc.
    pub timing: Option<Timing>,
    /// Serve TLS everywhere with this certificate and key (PEM); the
    /// processes trust the certificate, and so do sessions from
    /// `LocalCluster::session`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The program to run as `… supervisor` / `… worker` (default: the
    /// `mars` binary, see [`mars_binary`]); a program may name itself, if
    /// it serves those arguments (`mars::serve::serve_from_args`).
    pub binary: Option<PathBuf>,
}

impl LocalClusterOptions {
    fn binary(&self) -> PathBuf {
        self.binary.clone().unwrap_or_else(mars_binary)
    }

    fn tls_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(c) = &self.tls_cert {
            let c = c.display().to_string();
            args.extend(["--tls-cert".into(), c.clone(), "--tls-ca".into(), c]);
        }
        if let Some(k) = &self.tls_key {
            args.extend(["--tls-key".into(), k.display().to_string()]);
        }
        args
    }
}

/// The first line of a child's stdout, within `limit`; the rest is drained.
fn first_line(child: &mut Child, what: &str, limit: Duration) -> Result<String, String> {
    let out = child.stdout.take().ok_or_else(|| format!("{what}: no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines {}
    });
    match rx.recv_timeout(limit) {
        Ok(Some(Ok(line))) => Ok(line),
        Ok(_) => Err(format!("{what} exited before it was ready")),
        Err(_) => Err(format!("{what} was not ready within {limit:?}")),
    }
}

impl ClusterProcesses {
    /// Start a supervisor and `workers` workers, and wait until every worker
    /// has registered.
    pub fn start(workers: usize, opts: &LocalClusterOptions) -> Result<ClusterProcesses, String> {
        let token = auth::generate_token().map_err(|e| e.to_string())?;
        let timing = opts.timing.clone().unwrap_or_default();
        let mut args: Vec<String> = vec![
            "supervisor".into(),
            "--bind".into(),
            "127.0.0.1:0".into(),
            "--heartbeat-ms".into(),
            timing.heartbeat.as_millis().to_string(),
            "--worker-ttl-ms".into(),
            timing.worker_ttl.as_millis().to_string(),
            "--lease-ms".into(),
            timing.lease.as_millis().to_string(),
            "--watch-stdin".into(),
        ];
        args.extend(opts.tls_args());
        let mut supervisor = spawn_child(&opts.binary(), &token, &args)?;
        let line = match first_line(&mut supervisor, "the supervisor", Duration::from_secs(20)) {
            Ok(l) => l,
            Err(e) => {
                let _ = supervisor.kill();
                let _ = supervisor.wait();
                return Err(e);
            }
        };
        let address = line.rsplit(' ').next().unwrap_or_default().to_string();
        let mut cluster = ClusterProcesses {
            supervisor,
            workers: Vec::new(),
            address,
            token: token.clone(),
            tls_ca: opts.tls_cert.clone(),
        };
        for _ in 0..workers {
            cluster.add_worker(opts)?;
        }
        Ok(cluster)
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The certificate clients must trust, when the cluster serves TLS.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Process ids: the supervisor's, then the workers'.
    pub fn pids(&self) -> (u32, Vec<u32>) {
        (self.supervisor.id(), self.workers.iter().map(Child::id).collect())
    }

    /// Start one more worker (as `start` does).
    pub fn add_worker(&mut self, opts: &LocalClusterOptions) -> Result<u32, String> {
        let mut args: Vec<String> =
            vec!["worker".into(), "--supervisor".into(), self.address.clone(), "--watch-stdin".into()];
        args.extend(["--threads".into(), opts.threads.unwrap_or(1).to_string()]);
        if let Some(m) = opts.memory_limit {
            args.extend(["--memory-limit".into(), m.to_string()]);
        }
        args.extend(opts.tls_args());
        let mut w = spawn_child(&opts.binary(), &self.token, &args)?;
        let ready = first_line(&mut w, "a worker", Duration::from_secs(20));
        let pid = w.id();
        self.workers.push(w);
        ready.map(|_| pid)
    }
}

/// A `mars` child process with the token in its environment (not on its
/// command line) and pipes for stdin (closing it stops the child) and stdout.
fn spawn_child(bin: &Path, token: &str, args: &[String]) -> Result<Child, String> {
    Command::new(bin)
        .args(args)
        .env("MARS_TOKEN", token)
        .env("MARS_LOG", std::env::var("MARS_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {} (set MARS_BIN to the mars binary): {e}", bin.display()))
}

fn stop(children: &mut [&mut Child]) {
    // closing stdin asks each to stop; what is still running after 3 s is killed
    for c in children.iter_mut() {
        drop(c.stdin.take());
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    for c in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for ClusterProcesses {
    fn drop(&mut self) {
        let mut all: Vec<&mut Child> = self.workers.iter_mut().collect();
        all.push(&mut self.supervisor);
        stop(&mut all);
    }
}
