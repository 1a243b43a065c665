//! Helpers shared by the server tests: the real default model, states, requests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pith_runtime::generate::Engine;
use pith_runtime::model::ModelOptions;
use pith_runtime::server::{router, AppState, SchedulerConfig, ServerConfig};
use serde_json::Value;
use tower::ServiceExt;

pub fn model_path() -> PathBuf {
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

pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let opts = ModelOptions {
                threads: Some(2),
                ..ModelOptions::default()
            };
            Arc::new(Engine::open(model_path(), &opts).expect("load the model"))
        })
        .clone()
}

pub fn ready_state(cfg: ServerConfig) -> AppState {
    let state = AppState::new(cfg);
    state.set_ready(engine()).expect("ready");
    state
}

/// A ready state of its own (the loaded model is shared): 2 slots of 1024 tokens.
pub fn fresh_state() -> AppState {
    ready_state(ServerConfig {
        scheduler: SchedulerConfig {
            n_slots: 2,
            n_ctx: 1024,
            ..SchedulerConfig::default()
        },
        ..ServerConfig::default()
    })
}

pub async fn send(app: Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

pub fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

pub async fn post_json(state: &AppState, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, bytes) = send(router(state.clone()), post(path, body.to_string())).await;
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

/// Checks OpenAI's error shape; returns the error object.
pub fn error_of(status: StatusCode, v: &Value, want: StatusCode) -> &Value {
    assert_eq!(status, want, "body: {v}");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e
}

pub fn golden() -> Value {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/logits/gemma3-270m.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("golden file")).expect("json")
}

pub async fn wait_idle(state: &AppState) {
    let t0 = Instant::now();
    while state.metrics().slots_active() != 0 || state.metrics().queue_depth() != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "slots still active: {} (queue {})",
            state.metrics().slots_active(),
            state.metrics().queue_depth()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

pub fn metric(state: &AppState, name: &str) -> f64 {
    let text = state.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}
