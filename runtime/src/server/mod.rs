//! `pith serve`: an OpenAI-compatible HTTP server with continuous batching
//! (feature `server`).
//!
//! - [`router`] builds the axum [`Router`] over an [`AppState`]; [`serve`] runs it on a
//!   listener until a shutdown future resolves.
//! - The state starts *loading* (`/health` answers 503, generation endpoints 503) and
//!   becomes ready with [`AppState::set_ready`] once the model is loaded, so the socket
//!   answers from the first moment.
//! - Generation goes through one [`scheduler`] thread that owns the model and the KV
//!   slots and batches every active sequence into one forward pass per step.
//!
//! Endpoints: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
//! `GET /health`, `GET /metrics` (Prometheus text), `POST /tokenize`,
//! `POST /detokenize`, and a chat page at `/`.
//!
//! # Request defaults and limits
//!
//! Sampling fields a request leaves out take llama.cpp's defaults (`temperature` 0.8,
//! `top_k` 40, `top_p` 0.95, `min_p` 0.05, no penalties, a random seed). `max_tokens`
//! (or `max_completion_tokens`) defaults to the rest of the slot's context for chat and
//! to 16 for `/v1/completions` (OpenAI's default); a value above the context is a 400, a
//! value that only overflows it with the prompt is clamped (`finish_reason: length`).
//! Ranges as OpenAI's: `temperature` 0–2, `top_p`/`min_p` 0–1, penalties −2–2, at most 4
//! `stop` strings, `top_logprobs`/`logprobs` 0–20, `n` = 1. Log-probabilities are those
//! of the model's full distribution (before sampling filters). Extensions from
//! llama.cpp: `top_k`, `min_p`, `repeat_penalty`, `ignore_eos`. The `model` field is
//! accepted and ignored. Chat messages take the roles `system` (`developer` is read as
//! `system`), `user` and `assistant`, with text content (a string or text parts); the
//! prompt is the model's chat template (see [`pith_models::chat`] for the fallback).

mod error;
mod handlers;
pub mod metrics;
mod request;
pub mod scheduler;
mod sse;
pub mod types;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use pith_models::chat::{ChatError, ChatTemplate};
use tracing::Instrument;

pub use error::{ApiError, ApiJson};
pub use metrics::Metrics;
pub use scheduler::{SchedulerConfig, SchedulerHandle};

use crate::generate::{Engine, GenerateError};
use crate::memory::LoadMode;
use crate::model::ModelOptions;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Load(#[from] GenerateError),
    #[error("{path}: {source}")]
    Template { path: String, source: ChatError },
    #[error("cannot start the scheduler thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the server state is already ready")]
    AlreadyReady,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Require `Authorization: Bearer <key>` on every endpoint except `/`, `/health`.
    /// Default: none (open).
    pub api_key: Option<String>,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Slots, per-slot context, queue size, prefill chunk.
    pub scheduler: SchedulerConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            max_body_bytes: 1 << 20,
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// The loaded model and what serving it needs.
struct Ready {
    engine: Arc<Engine>,
    scheduler: SchedulerHandle,
    template: ChatTemplate,
    /// The id `/v1/models` reports (the file name without `.gguf`).
    model_id: String,
    /// Context per slot.
    n_ctx: usize,
    /// When the model was loaded (UNIX seconds).
    created: u64,
}

struct Shared {
    cfg: ServerConfig,
    ready: OnceLock<Ready>,
    metrics: Arc<Metrics>,
}

/// The server's shared state: loading until [`set_ready`](Self::set_ready).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AppState {
    /// A state that is still loading the model.
    pub fn new(cfg: ServerConfig) -> Self {
        Self {
            inner: Arc::new(Shared {
                cfg,
                ready: OnceLock::new(),
                metrics: Arc::new(Metrics::default()),
            }),
        }
    }

    /// Whether the model is loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.get().is_some()
    }

    /// The metrics `/metrics` reports.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Installs the loaded model: compiles its chat template (or the fallback) and starts
    /// the scheduler thread, whose handle is returned (it ends once the state is dropped
    /// and the last request has finished).
    pub fn set_ready(
        &self,
        engine: Arc<Engine>,
    ) -> Result<std::thread::JoinHandle<()>, ServerError> {
        if self.is_ready() {
            return Err(ServerError::AlreadyReady);
        }
        let file = engine.model.file().clone();
        let path = file.path().to_path_buf();
        let tok = &engine.tokenizer;
        let text = |id: Option<u32>| {
            id.and_then(|i| tok.token_text(i))
                .unwrap_or_default()
                .to_owned()
        };
        let (bos, eos) = (text(tok.bos_id()), text(tok.eos_id()));
        let template = ChatTemplate::from_metadata(file.as_ref(), bos.clone(), eos.clone())
            .or_else(|e| {
                // A template minijinja cannot read must not keep the model from serving.
                tracing::warn!("{}: {e}; using the fallback chat format", path.display());
                ChatTemplate::fallback(file.as_ref(), bos, eos)
            })
            .map_err(|source| ServerError::Template {
                path: path.display().to_string(),
                source,
            })?;
        let mut sched = self.inner.cfg.scheduler.clone();
        sched.n_ctx = sched.n_ctx.min(engine.model.config().context_length).max(2);
        let n_ctx = sched.n_ctx;
        let (scheduler, thread) =
            scheduler::spawn(engine.clone(), sched, self.inner.metrics.clone())
                .map_err(ServerError::Thread)?;
        let model_id = model_id(&path);
        tracing::info!(
            model = %model_id,
            template = template.source().as_str(),
            n_ctx,
            "model ready"
        );
        self.inner
            .ready
            .set(Ready {
                engine,
                scheduler,
                template,
                model_id,
                n_ctx,
                created: unix_now(),
            })
            .map_err(|_| ServerError::AlreadyReady)?;
        Ok(thread)
    }

    /// Loads the model at `path` and makes the state ready (see
    /// [`set_ready`](Self::set_ready)).
    pub fn load(
        &self,
        path: &Path,
        opts: &ModelOptions,
        mode: LoadMode,
    ) -> Result<std::thread::JoinHandle<()>, ServerError> {
        let engine = Engine::open_with(path, opts, mode)?;
        // Every slot's KV cache is allocated up front: refuse what does not fit.
        let sched = &self.inner.cfg.scheduler;
        let n_ctx = sched.n_ctx.min(engine.model.config().context_length);
        engine
            .check_memory(n_ctx.saturating_mul(sched.n_slots.max(1)), sched.kv_type)
            .map_err(GenerateError::from)?;
        self.set_ready(Arc::new(engine))
    }

    /// Ends every running and queued generation (used when a graceful drain times out).
    pub fn cancel_all(&self) {
        if let Some(r) = self.inner.ready.get() {
            r.scheduler.cancel_all();
        }
    }

    fn ready(&self) -> Result<&Ready, ApiError> {
        self.inner
            .ready
            .get()
            .ok_or_else(|| ApiError::unavailable("the model is loading"))
    }
}

/// The model id of a GGUF path: its file name without `.gguf`.
fn model_id(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
        .unwrap_or_else(|| "model".into())
}

/// The router with every endpoint, the API-key check, the body limit and the metrics
/// middleware.
pub fn router(state: AppState) -> Router {
    let limit = state.inner.cfg.max_body_bytes;
    Router::new()
        .route("/", get(handlers::index))
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/v1/models", get(handlers::models))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/tokenize", post(handlers::tokenize))
        .route("/detokenize", post(handlers::detokenize))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts every request by endpoint and status, with its latency, in a tracing span.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let span = tracing::debug_span!("request", method = %req.method(), endpoint = %endpoint);
    let t0 = Instant::now();
    let resp = next.run(req).instrument(span).await;
    state
        .metrics()
        .http_request(&endpoint, resp.status().as_u16(), t0.elapsed());
    resp
}

/// With an API key configured: 401 unless `Authorization: Bearer <key>` (the page at
/// `/` and `/health` stay open).
async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = state.inner.cfg.api_key.as_deref() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/" || path == "/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), key.as_bytes()) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs the router on `listener` until `shutdown` resolves, then waits for in-flight
/// requests to finish (streams included).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
