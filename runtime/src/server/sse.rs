//! Server-sent event streams in OpenAI's chunk shapes, ending with `data: [DONE]`.
//!
//! The stream owns the scheduler's event receiver: when the client goes away, axum drops
//! the stream, the receiver closes, and the scheduler frees the slot at its next step.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::error::ApiError;
use super::handlers::{chat_logprobs, completion_logprobs};
use super::scheduler::Event;
use super::types::Usage;
use crate::generate::Engine;

/// Which endpoint's chunk shape to write.
#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

struct Ctx {
    engine: Arc<Engine>,
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Characters of text sent so far (completion `text_offset`).
    offset: usize,
}

impl Ctx {
    /// A chunk with one choice.
    fn chunk(&self, choice: Value) -> SseEvent {
        let object = match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion => "text_completion",
        };
        let mut v = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [choice],
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        data(&v)
    }

    fn text_choice(&mut self, text: &str, logprobs: Value, finish: Value) -> Value {
        self.offset += text.chars().count();
        match self.kind {
            Kind::Chat => {
                let delta = if finish.is_null() {
                    json!({"content": text})
                } else {
                    json!({})
                };
                json!({"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Kind::Completion => {
                json!({"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish})
            }
        }
    }

    /// The SSE events for one scheduler event.
    fn events(&mut self, ev: Event) -> Vec<SseEvent> {
        match ev {
            Event::Token { id, text, logprobs } => {
                let lp = match (&logprobs, self.kind) {
                    (None, _) => Value::Null,
                    (Some(_), Kind::Chat) => {
                        serde_json::to_value(chat_logprobs(&self.engine, &[(id, logprobs)]))
                            .unwrap_or(Value::Null)
                    }
                    (Some(_), Kind::Completion) => serde_json::to_value(completion_logprobs(
                        &self.engine,
                        &[(id, logprobs)],
                        self.offset,
                    ))
                    .unwrap_or(Value::Null),
                };
                if text.is_empty() && lp.is_null() {
                    return Vec::new();
                }
                let choice = self.text_choice(&text, lp, Value::Null);
                vec![self.chunk(choice)]
            }
            Event::Text(text) => {
                let choice = self.text_choice(&text, Value::Null, Value::Null);
                vec![self.chunk(choice)]
            }
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
            } => {
                let choice = self.text_choice("", Value::Null, json!(finish.as_str()));
                let mut out = vec![self.chunk(choice)];
                if self.include_usage {
                    let object = match self.kind {
                        Kind::Chat => "chat.completion.chunk",
                        Kind::Completion => "text_completion",
                    };
                    out.push(data(&json!({
                        "id": self.id,
                        "object": object,
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": null,
                        "choices": [],
                        "usage": Usage::new(prompt_tokens, completion_tokens),
                    })));
                }
                out.push(SseEvent::default().data("[DONE]"));
                out
            }
            Event::Error(e) => {
                let err = ApiError::internal(e);
                vec![
                    SseEvent::default().data(err.body()),
                    SseEvent::default().data("[DONE]"),
                ]
            }
        }
    }
}

fn data(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

fn stream_response(mut ctx: Ctx, rx: UnboundedReceiver<Event>) -> Response {
    let first: Vec<SseEvent> = match ctx.kind {
        Kind::Chat => {
            let choice = json!({
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": null,
                "finish_reason": null,
            });
            vec![ctx.chunk(choice)]
        }
        Kind::Completion => Vec::new(),
    };
    let rest = UnboundedReceiverStream::new(rx).flat_map(move |ev| stream::iter(ctx.events(ev)));
    let s = stream::iter(first).chain(rest).map(Ok::<_, Infallible>);
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}

/// A streamed chat completion.
pub(super) fn chat_stream(
    engine: Arc<Engine>,
    rx: UnboundedReceiver<Event>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
) -> Response {
    let ctx = Ctx {
        engine,
        kind: Kind::Chat,
        id,
        created,
        model,
        include_usage,
        offset: 0,
    };
    stream_response(ctx, rx)
}

/// A streamed completion.
pub(super) fn completion_stream(
    engine: Arc<Engine>,
    rx: UnboundedReceiver<Event>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
) -> Response {
    let ctx = Ctx {
        engine,
        kind: Kind::Completion,
        id,
        created,
        model,
        include_usage,
        offset: 0,
    };
    stream_response(ctx, rx)
}
