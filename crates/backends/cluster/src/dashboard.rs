//! The dashboard: an HTML page on the supervisor's port (beside gRPC),
//! behind the token: workers, sessions, running and recent executions, and
//! a selected execution's tileable graph as a picture. Rendered on the
//! server: no scripts, so it shows the same in any browser, headless too.
//!
//! The token comes as `Authorization: Bearer …`, or once as `?token=…`
//! (which sets a cookie and redirects to the same page without it).

use crate::auth::{bearer, token_matches};
use crate::supervisor::SupState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Response, StatusCode, Uri};
use axum::routing::get;
use mars_ir::{TileableGraph, TileableId};
use std::fmt::Write as _;
use std::sync::Arc;

const COOKIE: &str = "mars_token";

/// The dashboard's routes, to merge with the gRPC services' router.
pub fn router(state: Arc<SupState>) -> axum::Router {
    axum::Router::new().route("/", get(page)).route("/graph.svg", get(graph)).with_state(state)
}

fn query<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn authorized(state: &SupState, headers: &HeaderMap) -> bool {
    let by_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    let by_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.split(';').find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('=')));
    [by_header, by_cookie].into_iter().flatten().any(|t| token_matches(state.token(), t))
}

fn response(status: StatusCode, kind: &str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    if let Ok(v) = kind.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn unauthorized() -> Response<Body> {
    let mut r = response(
        StatusCode::UNAUTHORIZED,
        "text/html; charset=utf-8",
        "<!doctype html><title>401</title><h1>401: a valid token is required</h1>\
         <p>Open this page with <code>?token=&lt;token&gt;</code> once, or send <code>Authorization: Bearer</code>.</p>"
            .into(),
    );
    if let Ok(v) = "Bearer".parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// `?token=…` right: a cookie, and the page again without the token in its address.
fn token_in_query(state: &SupState, uri: &Uri) -> Option<Response<Body>> {
    let t = query(uri, "token")?;
    if !token_matches(state.token(), t) {
        return Some(unauthorized());
    }
    let rest: Vec<&str> = uri.query().unwrap_or("").split('&').filter(|kv| !kv.starts_with("token=")).collect();
    let to = if rest.iter().all(|s| s.is_empty()) {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    };
    let mut r = response(StatusCode::SEE_OTHER, "text/plain", String::new());
    if let (Ok(loc), Ok(cookie)) = (to.parse(), format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/").parse()) {
        r.headers_mut().insert(header::LOCATION, loc);
        r.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Some(r)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

async fn page(State(state): State<Arc<SupState>>, headers: HeaderMap, uri: Uri) -> Response<Body> {
    if let Some(r) = token_in_query(&state, &uri) {
        return r;
    }
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let selected: Option<u64> = query(&uri, "task").and_then(|t| t.parse().ok());
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mars-rs cluster</title>\
         <meta http-equiv=\"refresh\" content=\"5\"><style>\
         body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}\
         .dead{color:#a00}</style></head><body><h1>mars-rs cluster</h1>",
    );
    let workers = state.worker_infos();
    let _ = write!(h, "<h2>Workers ({})</h2><table id=\"workers\"><tr><th>id</th><th>address</th><th>threads</th><th>memory held</th><th>limit</th><th>spilled</th><th>on disk</th><th>chunks held</th><th>chunks run</th><th>alive</th></tr>", workers.len());
    for w in &workers {
        let _ = write!(
            h,
            "<tr class=\"worker{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if w.alive { "" } else { " dead" },
            w.id,
            esc(&w.address),
            w.threads,
            bytes(w.bytes_held),
            if w.memory_limit == 0 { "none".into() } else { bytes(w.memory_limit) },
            bytes(w.bytes_spilled),
            w.chunks_on_disk,
            w.chunks_held,
            w.chunks_run,
            if w.alive { "yes" } else { "no" },
        );
    }
    h.push_str("</table>");
    let sessions = state.session_infos();
    let _ = write!(
        h,
        "<h2>Sessions ({})</h2><table id=\"sessions\"><tr><th>id</th><th>name</th><th>results held</th></tr>",
        sessions.len()
    );
    for (id, name, held) in &sessions {
        let _ = write!(h, "<tr class=\"session\"><td>{id}</td><td>{}</td><td>{held}</td></tr>", esc(name));
    }
    h.push_str("</table><h2>Executions</h2><table id=\"executions\"><tr><th>task</th><th>session</th><th>state</th><th>progress</th><th>chunks</th><th>seconds</th><th>graph</th></tr>");
    for r in state.running() {
        let _ = write!(
            h,
            "<tr class=\"execution running\"><td>{}</td><td>{}</td><td>running</td><td>{:.0}%</td><td>{} of {}</td><td>{:.2}</td><td><a href=\"/?task={}\">graph</a></td></tr>",
            r.task, r.session, r.fraction * 100.0, r.done, r.total, r.seconds, r.task
        );
    }
    for r in state.history().iter().rev() {
        let _ = write!(
            h,
            "<tr class=\"execution finished\"><td>{}</td><td>{}</td><td class=\"outcome\">{}</td><td>100%</td><td>{}</td><td>{:.3}</td><td><a href=\"/?task={}\">graph</a></td></tr>",
            r.task,
            r.session,
            esc(&r.outcome),
            r.chunks,
            r.seconds,
            r.task
        );
    }
    h.push_str("</table>");
    if let Some(t) = selected {
        match state.graph_of(t) {
            Some(g) => {
                let _ = write!(h, "<h2>Task {t}: its tileable graph</h2><div id=\"graph\">{}</div>", svg(&g));
            }
            None => {
                let _ = write!(h, "<p>No graph is kept for task {t}.</p>");
            }
        }
    }
    h.push_str("</body></html>");
    response(StatusCode::OK, "text/html; charset=utf-8", h)
}

async fn graph(State(state): State<Arc<SupState>>, headers: HeaderMap, uri: Uri) -> Response<Body> {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(t) = query(&uri, "task").and_then(|t| t.parse::<u64>().ok()) else {
        return response(StatusCode::BAD_REQUEST, "text/plain", "?task=<number> is required\n".into());
    };
    match state.graph_of(t) {
        Some(g) => response(StatusCode::OK, "image/svg+xml", svg(&g)),
        None => response(StatusCode::NOT_FOUND, "text/plain", format!("no graph is kept for task {t}\n")),
    }
}

/// The graph as an SVG picture: nodes in rows by depth (inputs above), an
/// edge from each input to its consumer. At most 400 nodes are drawn.
pub fn svg(g: &TileableGraph) -> String {
    const W: usize = 190;
    const H: usize = 36;
    const GAP_X: usize = 20;
    const GAP_Y: usize = 40;
    let order = g.topo_order().unwrap_or_default();
    let order: Vec<TileableId> = order.into_iter().take(400).collect();
    let mut depth = vec![0usize; g.id_bound()];
    let mut col = vec![0usize; g.id_bound()];
    let mut row_len: Vec<usize> = Vec::new();
    for &id in &order {
        let d = g.node(id).inputs.iter().map(|i| depth[i.0 as usize] + 1).max().unwrap_or(0);
        depth[id.0 as usize] = d;
        if row_len.len() <= d {
            row_len.resize(d + 1, 0);
        }
        col[id.0 as usize] = row_len[d];
        row_len[d] += 1;
    }
    let width = row_len.iter().max().copied().unwrap_or(1) * (W + GAP_X) + GAP_X;
    let height = row_len.len().max(1) * (H + GAP_Y) + GAP_Y;
    let at =
        |id: TileableId| (GAP_X + col[id.0 as usize] * (W + GAP_X), GAP_Y / 2 + depth[id.0 as usize] * (H + GAP_Y));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let drawn: std::collections::HashSet<TileableId> = order.iter().copied().collect();
    for &id in &order {
        let (x, y) = at(id);
        for &i in &g.node(id).inputs {
            if drawn.contains(&i) {
                let (ix, iy) = at(i);
                let _ = write!(
                    s,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{y}\" stroke=\"#888\"/>",
                    ix + W / 2,
                    iy + H,
                    x + W / 2
                );
            }
        }
    }
    for &id in &order {
        let (x, y) = at(id);
        let n = g.node(id);
        let label: String = n.op.to_string().chars().take(30).collect();
        let _ = write!(
            s,
            "<g class=\"node\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"4\" fill=\"#eef3fb\" stroke=\"#457\"/>\
             <text x=\"{}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" fill=\"#666\">{}</text></g>",
            x + 6,
            y + 15,
            esc(&label),
            x + 6,
            y + 29,
            esc(&n.key.short())
        );
    }
    s.push_str("</svg>");
    s
}
