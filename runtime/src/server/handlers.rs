//! Endpoint handlers: validate, build a [`Job`], submit it, answer (whole or streamed).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::error::{ApiError, ApiJson};
use super::request::{build_spec, chat_messages, token_ids, Spec};
use super::scheduler::{Event, Job, SubmitError, TokenLogprobs};
use super::sse;
use super::types::{
    ChatLogprobs, ChatRequest, ChatTokenLogprob, CompletionLogprobs, CompletionRequest,
    DetokenizeRequest, PromptField, TokenizeRequest, TopLogprob, Usage,
};
use super::{unix_now, AppState, Ready};
use crate::generate::{Engine, FinishReason};

/// The chat page.
const PAGE: &str = include_str!("page.html");

/// Most alternatives per position in `logprobs` (OpenAI allows 20).
const MAX_TOP_LOGPROBS: i64 = 20;

pub(super) async fn index() -> Html<&'static str> {
    Html(PAGE)
}

pub(super) async fn health(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable("the model is loading").into_response()
    }
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

pub(super) async fn models(State(state): State<AppState>) -> Result<Response, ApiError> {
    let r = state.ready()?;
    Ok(Json(json!({
        "object": "list",
        "data": [{
            "id": r.model_id,
            "object": "model",
            "created": r.created,
            "owned_by": "pith",
            "meta": {
                "n_ctx_slot": r.n_ctx,
                "n_vocab": r.engine.model.config().n_vocab,
                "chat_template": r.template.source().as_str(),
            },
        }],
    }))
    .into_response())
}

pub(super) async fn tokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Response, ApiError> {
    let r = state.ready()?;
    let engine = r.engine.clone();
    let with_pieces = req.with_pieces;
    let ids =
        blocking(move || engine.tokenizer.encode(&req.content, req.add_special, true)).await?;
    let tokens: Vec<Value> = if with_pieces {
        ids.iter()
            .map(|&id| json!({"id": id, "piece": piece(&r.engine, id)}))
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

pub(super) async fn detokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DetokenizeRequest>,
) -> Result<Response, ApiError> {
    let r = state.ready()?;
    let ids = token_ids(&req.tokens, r.engine.tokenizer.vocab_size(), "tokens")?;
    let content = r.engine.tokenizer.decode(&ids, false);
    Ok(Json(json!({ "content": content })).into_response())
}

/// Runs CPU work (tokenization) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))
}

/// A token's text (special tokens included), lossily decoded.
fn piece(engine: &Engine, id: u32) -> String {
    String::from_utf8_lossy(&engine.tokenizer.token_to_piece_special(id, true)).into_owned()
}

/// Queues `spec`; returns the event stream.
fn submit(r: &Ready, spec: &Spec) -> Result<UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = unbounded_channel();
    let job = Job {
        prompt: spec.prompt.clone(),
        max_tokens: spec.max_tokens,
        sampler: spec.sampler.clone(),
        stop: spec.stop.clone(),
        top_logprobs: spec.top_logprobs,
        ignore_eos: spec.ignore_eos,
        events: tx,
    };
    r.scheduler.submit(job).map_err(|e| match e {
        SubmitError::QueueFull { capacity } => ApiError::queue_full(capacity),
        _ => ApiError::unavailable("the server is shutting down"),
    })?;
    Ok(rx)
}

/// Everything a non-streamed request produced.
pub(super) struct Collected {
    pub text: String,
    /// Generated token ids with their log-probabilities (when asked for).
    pub tokens: Vec<(u32, Option<TokenLogprobs>)>,
    pub finish: FinishReason,
    pub usage: Usage,
}

async fn collect(mut rx: UnboundedReceiver<Event>) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut tokens = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Token {
                id,
                text: t,
                logprobs,
            } => {
                text.push_str(&t);
                tokens.push((id, logprobs));
            }
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
            } => {
                return Ok(Collected {
                    text,
                    tokens,
                    finish,
                    usage: Usage::new(prompt_tokens, completion_tokens),
                })
            }
            Event::Error(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::unavailable("the generation was cancelled"))
}

/// A random id with `prefix` (`chatcmpl-…`, `cmpl-…`).
fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

pub(super) async fn chat_completions(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let r = state.ready()?;
    let messages = chat_messages(&req)?;
    let add_bos = r.engine.tokenizer.add_bos();
    let text = r
        .template
        .render_prompt(&messages, add_bos)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
    let top_logprobs = match (req.logprobs, req.top_logprobs) {
        (_, Some(k)) if !(0..=MAX_TOP_LOGPROBS).contains(&k) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                format!("top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {k}"),
            ))
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "top_logprobs needs logprobs: true",
            ))
        }
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, None) => None,
    };
    let engine = r.engine.clone();
    let prompt = blocking(move || engine.tokenizer.encode(&text, true, true)).await?;
    let spec = build_spec(r, &req.common(), prompt, top_logprobs, None)?;
    let rx = submit(r, &spec)?;
    let id = new_id("chatcmpl");
    let created = unix_now();
    if spec.stream {
        return Ok(sse::chat_stream(
            Arc::clone(&r.engine),
            rx,
            id,
            created,
            r.model_id.clone(),
            spec.include_usage,
        ));
    }
    let out = collect(rx).await?;
    let logprobs = spec
        .top_logprobs
        .map(|_| chat_logprobs(&r.engine, &out.tokens));
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": r.model_id,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": out.text},
            "logprobs": logprobs,
            "finish_reason": out.finish.as_str(),
        }],
        "usage": out.usage,
    }))
    .into_response())
}

/// Chat `logprobs` for generated tokens.
pub(super) fn chat_logprobs(
    engine: &Engine,
    tokens: &[(u32, Option<TokenLogprobs>)],
) -> ChatLogprobs {
    let entry = |id: u32, lp: f32| {
        let bytes = engine.tokenizer.token_to_piece(id);
        (String::from_utf8_lossy(&bytes).into_owned(), lp, bytes)
    };
    ChatLogprobs {
        content: tokens
            .iter()
            .filter_map(|(id, lp)| lp.as_ref().map(|lp| (*id, lp)))
            .map(|(id, lp)| {
                let (token, logprob, bytes) = entry(id, lp.logprob);
                ChatTokenLogprob {
                    token,
                    logprob,
                    bytes,
                    top_logprobs: lp
                        .top
                        .iter()
                        .map(|&(t, l)| {
                            let (token, logprob, bytes) = entry(t, l);
                            TopLogprob {
                                token,
                                logprob,
                                bytes,
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

/// Legacy completion `logprobs` for generated tokens; `offset0` is the text offset of the
/// first one.
pub(super) fn completion_logprobs(
    engine: &Engine,
    tokens: &[(u32, Option<TokenLogprobs>)],
    offset0: usize,
) -> CompletionLogprobs {
    let mut out = CompletionLogprobs::default();
    let mut offset = offset0;
    for (id, lp) in tokens {
        let Some(lp) = lp else { continue };
        let token = String::from_utf8_lossy(&engine.tokenizer.token_to_piece(*id)).into_owned();
        out.text_offset.push(offset);
        offset += token.chars().count();
        out.tokens.push(token);
        out.token_logprobs.push(lp.logprob);
        out.top_logprobs.push(
            lp.top
                .iter()
                .map(|&(t, l)| {
                    let s =
                        String::from_utf8_lossy(&engine.tokenizer.token_to_piece(t)).into_owned();
                    (s, json!(l))
                })
                .collect(),
        );
    }
    out
}

pub(super) async fn completions(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let r = state.ready()?;
    if req.echo {
        return Err(ApiError::invalid("echo", "echo is not supported"));
    }
    let top_logprobs = match req.logprobs {
        Some(k) if !(0..=MAX_TOP_LOGPROBS).contains(&k) => {
            return Err(ApiError::invalid(
                "logprobs",
                format!("logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {k}"),
            ))
        }
        k => k.map(|k| k as usize),
    };
    let n_vocab = r.engine.tokenizer.vocab_size();
    let common = req.common();
    let prompt = match req.prompt {
        PromptField::Text(t) => Some(t),
        PromptField::Texts(mut v) if v.len() == 1 => v.pop(),
        PromptField::Tokens(ref t) => {
            let ids = token_ids(t, n_vocab, "prompt")?;
            let spec = build_spec(r, &common, ids, top_logprobs, Some(16))?;
            return completion_response(r, spec).await;
        }
        PromptField::Batch(ref b) if b.len() == 1 => {
            let ids = token_ids(&b[0], n_vocab, "prompt[0]")?;
            let spec = build_spec(r, &common, ids, top_logprobs, Some(16))?;
            return completion_response(r, spec).await;
        }
        _ => {
            return Err(ApiError::invalid(
                "prompt",
                "only one prompt per request is supported",
            ))
        }
    };
    let text = prompt.unwrap_or_default();
    let engine = r.engine.clone();
    let ids = blocking(move || engine.tokenizer.encode(&text, true, true)).await?;
    // OpenAI's default for /v1/completions: 16 tokens.
    let spec = build_spec(r, &common, ids, top_logprobs, Some(16))?;
    completion_response(r, spec).await
}

async fn completion_response(r: &Ready, spec: Spec) -> Result<Response, ApiError> {
    let rx = submit(r, &spec)?;
    let id = new_id("cmpl");
    let created = unix_now();
    if spec.stream {
        return Ok(sse::completion_stream(
            Arc::clone(&r.engine),
            rx,
            id,
            created,
            r.model_id.clone(),
            spec.include_usage,
        ));
    }
    let out = collect(rx).await?;
    let logprobs = spec
        .top_logprobs
        .map(|_| completion_logprobs(&r.engine, &out.tokens, 0));
    Ok(Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": r.model_id,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "text": out.text,
            "logprobs": logprobs,
            "finish_reason": out.finish.as_str(),
        }],
        "usage": out.usage,
    }))
    .into_response())
}
