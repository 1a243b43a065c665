//! `pith serve` over a real socket, on the real default model, driven by outside clients:
//! the official `openai` Python client (`tests/py/openai_e2e.py`, `openai_load.py`), headless
//! Chromium on the chat page (`tests/web/chat_page.py`), and raw HTTP for `/health` and
//! for SIGTERM during a stream.
//!
//! Needs `python3` with `openai` and `websocket-client`, and Debian's `chromium` (see
//! `.ci/run`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn model_path() -> PathBuf {
    let home = std::env::var_os("PITH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/pith")
        });
    let p = home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.exists(),
        "the Gemma 3 270M model is missing: expected {} (set PITH_HOME, or run `pith fetch`)",
        p.display()
    );
    p
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A running `pith serve`; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pith"))
            .arg("serve")
            .arg("-m")
            .arg(model_path())
            .args(["--port", "0", "--threads", "2", "--ctx", "1024"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pith serve");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let t0 = Instant::now();
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("pith serve printed its address");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(30));
        };
        let server = Server {
            child,
            port,
            stderr: rx,
        };
        let t0 = Instant::now();
        loop {
            let (status, _) = http(port, "GET", "/health", "");
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "/health while loading");
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "not ready after 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// SIGTERM, then the exit status within `within`.
    fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < within,
                "pith serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.1 request; returns (status, body). Status 0 if the connection fails.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
    (status, body)
}

fn python(script: &str, args: &[&str]) {
    let st = Command::new("python3")
        .arg(repo().join(script))
        .args(args)
        .status()
        .expect("python3 is needed for this test");
    assert!(st.success(), "{script} failed ({st})");
}

/// The `openai` client: chat, completions, streaming, stop, seeds, logprobs, bad input;
/// then a bounded load test with zero errors and matching `/metrics`; then a clean exit
/// on SIGTERM.
#[test]
fn openai_client_end_to_end_and_load() {
    let mut server = Server::start(&["--parallel", "4"]);
    let base = server.base_url();
    let golden = repo().join("tests/golden/logits/gemma3-270m.json");
    python(
        "tests/py/openai_e2e.py",
        &["--base-url", &base, "--golden", golden.to_str().unwrap()],
    );
    python(
        "tests/py/openai_load.py",
        &[
            "--base-url",
            &base,
            "--clients",
            "32",
            "--requests",
            "4",
            "--max-tokens",
            "4",
        ],
    );
    let st = server.terminate(Duration::from_secs(15));
    assert!(st.success(), "exit status after SIGTERM: {st}");
}

/// The chat page in headless Chromium: a typed message gets a streamed reply.
#[test]
fn chat_page_streams_in_chromium() {
    let server = Server::start(&["--parallel", "2"]);
    let url = format!("http://127.0.0.1:{}/", server.port);
    python("tests/web/chat_page.py", &["--url", &url]);
}

/// SIGTERM while a stream is running: the stream is finished (or cancelled after the
/// drain timeout), the process exits 0, and meanwhile new requests are not accepted.
#[test]
fn sigterm_drains_in_flight_streams_and_exits_cleanly() {
    let mut server = Server::start(&["--parallel", "1", "--drain-timeout", "2"]);
    let port = server.port;
    // A long stream (ignore_eos keeps it going for 600 tokens, ~10 s).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = r#"{"prompt":"Once upon a time","max_tokens":600,"ignore_eos":true,"stream":true}"#;
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    let st = server.terminate(Duration::from_secs(20));
    assert!(st.success(), "exit status after SIGTERM: {st}");
    // Cancelled after the 2 s drain timeout, not run to the end.
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "took {:?}",
        t0.elapsed()
    );
    // The client saw its stream end (not hang).
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let lines: Vec<String> = server.stderr.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("stopped")),
        "no clean stop in the log: {lines:?}"
    );
}
