//! Bad input over the router (`oneshot`, real default model): every malformed or
//! out-of-range request gets a 4xx with OpenAI's error body naming what was wrong, and
//! no slot stays in use; oversized bodies get 413; a configured API key is enforced.
#![cfg(feature = "server")]

mod server_common;

use axum::http::{header, StatusCode};
use pith_runtime::server::{router, SchedulerConfig, ServerConfig};
use serde_json::{json, Value};
use server_common::*;

/// Every bad input gets a 4xx in OpenAI's shape naming what was wrong, and no slot
/// stays in use.
#[tokio::test]
async fn bad_inputs_get_openai_errors() {
    let state = fresh_state();
    let long = "word ".repeat(1100);
    let user = |c: &str| json!([{"role": "user", "content": c}]);
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        (
            "/v1/chat/completions",
            "{not json".into(),
            None,
            "malformed JSON",
        ),
        ("/v1/chat/completions", "".into(), None, "empty"),
        ("/v1/chat/completions", "[1,2]".into(), None, "invalid"),
        (
            "/v1/chat/completions",
            json!({"messages": "hi"}).to_string(),
            Some("messages"),
            "invalid type",
        ),
        (
            "/v1/chat/completions",
            json!({}).to_string(),
            None,
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": []}).to_string(),
            Some("messages"),
            "empty",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "wizard", "content": "x"}]}).to_string(),
            Some("messages[0].role"),
            "wizard",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user"}]}).to_string(),
            Some("messages[0].content"),
            "missing",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": 5}]}).to_string(),
            Some("messages[0].content"),
            "string",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).to_string(),
            Some("messages[0].content[0]"),
            "image_url",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "max_tokens": 0}).to_string(),
            Some("max_tokens"),
            "at least 1",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "max_tokens": -5}).to_string(),
            Some("max_tokens"),
            "at least 1",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "max_completion_tokens": 10_000_000}).to_string(),
            Some("max_completion_tokens"),
            "context",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "max_tokens": "ten"}).to_string(),
            Some("max_tokens"),
            "invalid type",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "temperature": "hot"}).to_string(),
            Some("temperature"),
            "invalid type",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "temperature": 7}).to_string(),
            Some("temperature"),
            "between",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "top_p": 1.5}).to_string(),
            Some("top_p"),
            "between",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "top_k": -1}).to_string(),
            Some("top_k"),
            "top_k",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "n": 3}).to_string(),
            Some("n"),
            "n must be 1",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "stop": 5}).to_string(),
            Some("stop"),
            "string",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "stop": ["a","b","c","d","e"]}).to_string(),
            Some("stop"),
            "at most",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "top_logprobs": 3}).to_string(),
            Some("top_logprobs"),
            "logprobs",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "logprobs": true, "top_logprobs": 50}).to_string(),
            Some("top_logprobs"),
            "between",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("x"), "stream_options": {"include_usage": true}}).to_string(),
            Some("stream_options"),
            "stream",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user(&long)}).to_string(),
            None,
            "context",
        ),
        (
            "/v1/completions",
            json!({"prompt": long}).to_string(),
            None,
            "context",
        ),
        (
            "/v1/completions",
            json!({"prompt": ["a", "b"]}).to_string(),
            Some("prompt"),
            "one prompt",
        ),
        (
            "/v1/completions",
            json!({"prompt": [1, 99999999]}).to_string(),
            Some("prompt[1]"),
            "out of range",
        ),
        (
            "/v1/completions",
            json!({"prompt": {"x": 1}}).to_string(),
            Some("prompt"),
            "a string",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "echo": true}).to_string(),
            Some("echo"),
            "echo",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "logprobs": 99}).to_string(),
            Some("logprobs"),
            "between",
        ),
        (
            "/detokenize",
            json!({"tokens": [-1]}).to_string(),
            Some("tokens[0]"),
            "out of range",
        ),
        (
            "/tokenize",
            json!({"content": 3}).to_string(),
            Some("content"),
            "invalid type",
        ),
    ];
    for (path, body, param, needle) in cases {
        let (status, bytes) = send(router(state.clone()), post(path, body.clone())).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{path} {body}: not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let e = error_of(status, &v, StatusCode::BAD_REQUEST);
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{path} {body}: {v}");
        }
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "{path} {body}: message {msg:?} lacks {needle:?}"
        );
        if needle == "context" && param.is_none() {
            assert_eq!(e["code"], "context_length_exceeded", "{v}");
        }
    }
    // Unknown path and wrong method.
    let (status, bytes) = send(router(state.clone()), get("/v1/nothing")).await;
    error_of(
        status,
        &serde_json::from_slice(&bytes).unwrap(),
        StatusCode::NOT_FOUND,
    );
    let (status, bytes) = send(router(state.clone()), get("/v1/chat/completions")).await;
    error_of(
        status,
        &serde_json::from_slice(&bytes).unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    );
    wait_idle(&state).await;
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let state = ready_state(ServerConfig {
        max_body_bytes: 1000,
        scheduler: SchedulerConfig {
            n_slots: 1,
            n_ctx: 256,
            ..SchedulerConfig::default()
        },
        ..ServerConfig::default()
    });
    let body = json!({"prompt": "x".repeat(5000)}).to_string();
    let (status, bytes) = send(router(state.clone()), post("/v1/completions", body)).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let e = error_of(status, &v, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(e["message"].as_str().unwrap().contains("too large"));
}

#[tokio::test]
async fn api_key_is_required_when_set() {
    let state = ready_state(ServerConfig {
        api_key: Some("sekrit".into()),
        scheduler: SchedulerConfig {
            n_slots: 1,
            n_ctx: 256,
            ..SchedulerConfig::default()
        },
        ..ServerConfig::default()
    });
    let body = json!({"prompt": "Hi", "max_tokens": 1}).to_string();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("sekrit"),
        Some("Bearer sekri"),
    ] {
        let mut req = post("/v1/completions", body.clone());
        if let Some(a) = auth {
            req.headers_mut()
                .insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        let (status, bytes) = send(router(state.clone()), req).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let e = error_of(status, &v, StatusCode::UNAUTHORIZED);
        assert_eq!(e["type"], "authentication_error");
    }
    let mut req = post("/v1/completions", body);
    req.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer sekrit".parse().unwrap());
    let (status, _) = send(router(state.clone()), req).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(router(state.clone()), get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(router(state), get("/metrics")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
