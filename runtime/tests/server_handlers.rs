//! HTTP handler tests over the router with `tower::ServiceExt::oneshot` (no socket), on
//! the real default model. Greedy output and log-probs are checked against llama.cpp's
//! `llama-server` (`tests/golden/logits/gemma3-270m.json`); tokenization against its
//! `/tokenize`.
#![cfg(feature = "server")]

mod server_common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use http_body_util::BodyExt;
use pith_runtime::server::{router, AppState, SchedulerConfig, ServerConfig};
use serde_json::{json, Value};
use server_common::*;
use tower::ServiceExt;

#[tokio::test]
async fn loading_state_answers_503() {
    let state = AppState::new(ServerConfig::default());
    let (status, body) = send(router(state.clone()), get("/health")).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    error_of(status, &v, StatusCode::SERVICE_UNAVAILABLE);
    let (status, v) = post_json(
        &state,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    error_of(status, &v, StatusCode::SERVICE_UNAVAILABLE);
    // The page is served while loading.
    let (status, body) = send(router(state), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("/v1/chat/completions"));
}

#[tokio::test]
async fn health_models_and_metrics() {
    let state = fresh_state();
    let (status, body) = send(router(state.clone()), get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let (status, body) = send(router(state.clone()), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "gemma-3-270m-q4_k_m");
    assert_eq!(v["data"][0]["object"], "model");
    let (status, body) = send(router(state), get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for name in [
        "pith_slots_total 2",
        "pith_queue_depth ",
        "pith_slots_active ",
        "pith_prompt_tokens_total ",
        "pith_completion_tokens_total ",
        "pith_http_request_duration_seconds_bucket",
        "pith_time_to_first_token_seconds_count",
        "pith_http_requests_total{endpoint=\"/v1/models\",status=\"200\"}",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

/// `/tokenize` gives llama-server's `/tokenize` ids; `/detokenize` inverts them.
#[tokio::test]
async fn tokenize_matches_llama_server() {
    let state = fresh_state();
    let g = golden();
    for case in g["cases"].as_array().unwrap() {
        let (status, v) = post_json(
            &state,
            "/tokenize",
            json!({"content": case["prompt"], "add_special": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["tokens"], case["prompt_ids"], "{}", case["name"]);
        let ids: Vec<Value> = case["prompt_ids"].as_array().unwrap()[1..].to_vec();
        let (status, v) = post_json(&state, "/detokenize", json!({ "tokens": ids })).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["content"], case["prompt"], "{}", case["name"]);
    }
    let (_, v) = post_json(
        &state,
        "/tokenize",
        json!({"content": "Hello", "with_pieces": true}),
    )
    .await;
    assert_eq!(v["tokens"][0]["piece"], "Hello");
}

/// Greedy `/v1/completions` with `logprobs` reproduces llama-server's greedy
/// continuation, its top-1 token and its log-probs (within the 0.5 nat bound of the
/// decoder's own golden test), up to llama.cpp's first near-tie.
#[tokio::test]
async fn greedy_completion_matches_llama_server() {
    const STEPS: usize = 8;
    const NEAR_TIE: f64 = 0.25;
    let state = fresh_state();
    let g = golden();
    let tok = &engine().tokenizer;
    let mut checked = 0;
    for case in g["cases"].as_array().unwrap() {
        let steps = case["greedy_top"].as_array().unwrap();
        let clear = steps
            .iter()
            .take(STEPS)
            .take_while(|s| s[0][1].as_f64().unwrap() - s[1][1].as_f64().unwrap() >= NEAR_TIE)
            .count();
        if clear < 4 {
            continue;
        }
        let (status, v) = post_json(
            &state,
            "/v1/completions",
            json!({"prompt": case["prompt"], "max_tokens": clear, "temperature": 0, "logprobs": 5}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let want_ids: Vec<u32> = case["greedy_ids"].as_array().unwrap()[..clear]
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let choice = &v["choices"][0];
        assert_eq!(
            choice["text"],
            tok.decode(&want_ids, true),
            "{}",
            case["name"]
        );
        assert_eq!(choice["finish_reason"], "length");
        assert_eq!(
            v["usage"]["prompt_tokens"],
            case["prompt_ids"].as_array().unwrap().len()
        );
        assert_eq!(v["usage"]["completion_tokens"], clear);
        assert_eq!(
            v["usage"]["total_tokens"],
            clear + case["prompt_ids"].as_array().unwrap().len()
        );
        assert_eq!(v["object"], "text_completion");
        assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
        let lp = &choice["logprobs"];
        for (i, step) in steps.iter().take(clear).enumerate() {
            let want_lp = step[0][1].as_f64().unwrap();
            let got = lp["token_logprobs"][i].as_f64().unwrap();
            assert!(
                (got - want_lp).abs() <= 0.5,
                "{}: step {i}: {got} vs {want_lp}",
                case["name"]
            );
            let top = lp["top_logprobs"][i].as_object().unwrap();
            assert!(top.len() >= 4 && top.len() <= 5, "{top:?}");
            let best = top
                .iter()
                .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
                .unwrap();
            assert_eq!(best.0, &lp["tokens"][i].as_str().unwrap().to_owned());
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} golden cases had clear margins"
    );
    wait_idle(&state).await;
}

#[tokio::test]
async fn chat_completion_uses_the_gemma_turn_format() {
    let state = fresh_state();
    let (status, v) = post_json(
        &state,
        "/v1/chat/completions",
        json!({"model": "anything", "messages": [{"role": "user", "content": "Hi"}],
               "max_tokens": 4, "temperature": 0, "logprobs": true, "top_logprobs": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["finish_reason"] == "length" || choice["finish_reason"] == "stop");
    // The prompt is the fallback template's text, tokenized with BOS.
    let (_, t) = post_json(
        &state,
        "/tokenize",
        json!({"content": "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "add_special": true}),
    )
    .await;
    assert_eq!(
        v["usage"]["prompt_tokens"],
        t["tokens"].as_array().unwrap().len()
    );
    let content = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        content.len(),
        v["usage"]["completion_tokens"].as_u64().unwrap() as usize
    );
    for c in content {
        assert_eq!(c["top_logprobs"].as_array().unwrap().len(), 2);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(c["token"], c["top_logprobs"][0]["token"]);
        assert!(c["logprob"].as_f64().unwrap() <= 0.0);
    }
    wait_idle(&state).await;
}

#[tokio::test]
async fn streaming_chunks_in_openai_shape() {
    let state = fresh_state();
    let body = json!({"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0,
                      "stream": true, "stream_options": {"include_usage": true}});
    let (status, bytes) = send(
        router(state.clone()),
        post("/v1/completions", body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&bytes);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage["usage"]["completion_tokens"], 6);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    // Same text as the non-streamed request.
    let (_, whole) = post_json(
        &state,
        "/v1/completions",
        json!({"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );
    for c in &chunks[..chunks.len() - 1] {
        assert!(c.get("usage").is_some_and(Value::is_null), "{c}");
        assert_eq!(c["object"], "text_completion");
    }

    // Chat: the first chunk carries the role, content deltas follow.
    let body = json!({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3, "stream": true});
    let (status, bytes) = send(
        router(state.clone()),
        post("/v1/chat/completions", body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&bytes);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string());
    wait_idle(&state).await;
}

/// One slot, a queue of one: a third request is refused with 429 while the first
/// streams; a client that drops its stream frees the slot at once.
#[tokio::test]
async fn full_queue_gets_429_and_dropped_clients_free_their_slot() {
    let state = ready_state(ServerConfig {
        scheduler: SchedulerConfig {
            n_slots: 1,
            n_ctx: 512,
            queue_capacity: 1,
            ..SchedulerConfig::default()
        },
        ..ServerConfig::default()
    });
    let long = json!({"prompt": "Once upon a time", "max_tokens": 400, "stream": true,
                      "ignore_eos": true});
    let resp = router(state.clone())
        .oneshot(post("/v1/completions", long.to_string()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    // The first chunk: the request holds the slot.
    let frame = body.frame().await.expect("a chunk").expect("ok");
    assert!(frame.is_data());
    assert_eq!(state.metrics().slots_active(), 1);

    // The second waits in the queue (its handler is pending), the third is refused.
    let app2 = router(state.clone());
    let waiting = tokio::spawn(async move {
        let body = json!({"prompt": "Hi", "max_tokens": 2}).to_string();
        send(app2, post("/v1/completions", body)).await
    });
    let t0 = Instant::now();
    while state.metrics().queue_depth() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, v) = post_json(
        &state,
        "/v1/completions",
        json!({"prompt": "Hi", "max_tokens": 2}),
    )
    .await;
    let e = error_of(status, &v, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e["code"], "queue_full");

    // Drop the streaming client: the slot goes to the queued request, which completes.
    drop(body);
    let (status, bytes) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the queued request ran after the slot was freed")
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    wait_idle(&state).await;
    let metrics = state.metrics().render();
    assert!(
        metrics.contains("pith_generations_total{reason=\"cancelled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pith_http_requests_total{endpoint=\"/v1/completions\",status=\"429\"} 1"),
        "{metrics}"
    );
}

/// Stop strings end the output before the stop string; `finish_reason` is `stop`.
#[tokio::test]
async fn stop_strings_cut_the_output() {
    let state = fresh_state();
    let (_, free) = post_json(
        &state,
        "/v1/completions",
        json!({"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}),
    )
    .await;
    let text = free["choices"][0]["text"].as_str().unwrap().to_owned();
    // Stop at the second word of llama.cpp-verified greedy text (" the capital of …").
    let stop = " capital";
    let cut = text.find(stop).expect("greedy text contains ' capital'");
    let (status, v) = post_json(
        &state,
        "/v1/completions",
        json!({"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0, "stop": stop}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["choices"][0]["text"], &text[..cut]);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    wait_idle(&state).await;
}

/// Continuous batching does not change results: four greedy requests served together
/// (in shared forward passes, fewer steps than tokens) give the text each gives alone.
#[tokio::test]
async fn concurrent_requests_share_steps_and_match_solo_runs() {
    let state = ready_state(ServerConfig {
        scheduler: SchedulerConfig {
            n_slots: 4,
            n_ctx: 256,
            ..SchedulerConfig::default()
        },
        ..ServerConfig::default()
    });
    let prompts = [
        "The capital of France is",
        "def fibonacci(n):",
        "Word: hot\nAntonym:",
        "Once upon a time",
    ];
    let req =
        |p: &str| json!({"prompt": p, "max_tokens": 10, "temperature": 0, "ignore_eos": true});
    let mut solo = Vec::new();
    for p in prompts {
        let (status, v) = post_json(&state, "/v1/completions", req(p)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        solo.push(v["choices"][0]["text"].as_str().unwrap().to_owned());
    }
    let steps0 = metric(&state, "pith_batch_steps_total");
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let state = state.clone();
            let body = req(p);
            tokio::spawn(async move { post_json(&state, "/v1/completions", body).await })
        })
        .collect();
    for (task, want) in tasks.into_iter().zip(&solo) {
        let (status, v) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["choices"][0]["text"].as_str().unwrap(), want);
    }
    let steps = metric(&state, "pith_batch_steps_total") - steps0;
    // Alone: 4 × (1 prefill + 9 decode) = 40 steps; together, far fewer.
    assert!(
        steps < 30.0,
        "{steps} steps for 4 concurrent requests of 10 tokens"
    );
    wait_idle(&state).await;
}
