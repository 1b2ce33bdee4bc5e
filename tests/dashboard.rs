//! The supervisor's dashboard in a real headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs): two workers and a finished
//! execution are on the page, a selected execution's graph is a picture,
//! and without the right token there is only a 401.

use mars::prelude::*;
use mars::tensor as mt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("the dashboard test needs a headless Chromium: install it (Debian: apt-get install chromium; .ci/run does)");
}

/// The page at `url` as Chromium renders it.
fn dom(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("mars-chromium-{}", std::process::id()));
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status line of a plain HTTP/1.1 GET.
fn status(address: &str, path: &str, auth: Option<&str>) -> String {
    let host = address.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connects");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_dashboard_shows_workers_and_executions_behind_the_token() -> Result<()> {
    let c = mars::new_cluster(2)?;
    let s = c.session()?;
    let x = mt::random::RandomState::new(1).rand(&[200, 100]).rechunk(&[50, 50]);
    assert!((&x * 2.0).sum().execute_in(&s)?.fetch_in(&s)?.to_f64_vec()[0] > 0.0);

    let page = dom(&format!("{}/?token={}", c.address(), c.token()));
    assert!(page.contains("<h1>mars-rs cluster</h1>"), "{page}");
    assert_eq!(page.matches("class=\"worker\"").count(), 2, "two live workers: {page}");
    assert!(page.contains("class=\"execution finished\""), "{page}");
    assert!(page.contains("<td class=\"outcome\">ok</td>"), "{page}");
    assert!(page.contains("class=\"session\""), "{page}");

    // a finished execution's graph, as a picture
    let at = page.find("href=\"/?task=").expect("a link to an execution's graph") + "href=\"/?task=".len();
    let task: String = page[at..].chars().take_while(char::is_ascii_digit).collect();
    let graph = dom(&format!("{}/?token={}&task={task}", c.address(), c.token()));
    assert!(graph.contains("<svg"), "{graph}");
    assert!(graph.matches("class=\"node\"").count() >= 2, "{graph}");
    assert!(graph.contains("Random"), "the random tensor's node is drawn: {graph}");

    // no token, a wrong one: 401 and nothing of the cluster
    for url in [format!("{}/", c.address()), format!("{}/?token=wrong", c.address())] {
        let page = dom(&url);
        assert!(page.contains("401") && !page.contains("class=\"worker\""), "{url}: {page}");
    }
    assert!(status(c.address(), "/", None).contains(" 401 "));
    assert!(status(c.address(), "/", Some("wrong")).contains(" 401 "));
    assert!(status(c.address(), "/", Some(c.token())).contains(" 200 "));
    assert!(status(c.address(), &format!("/graph.svg?task={task}"), Some(c.token())).contains(" 200 "));
    assert!(status(c.address(), "/graph.svg", Some(c.token())).contains(" 400 "));
    assert!(status(c.address(), "/graph.svg?task=1", None).contains(" 401 "));
    Ok(())
}
