//! Request validation: OpenAI request fields → a checked [`Spec`] (or an [`ApiError`]
//! naming the field at fault).

use pith_models::chat::ChatMessage;

use super::error::ApiError;
use super::types::{ChatRequest, CommonParams, MessageContent, StopField};
use super::Ready;
use crate::sampler::SamplerConfig;

/// Most stop strings per request (OpenAI allows 4).
const MAX_STOPS: usize = 4;

/// Checks token ids against the vocabulary.
pub(super) fn token_ids(raw: &[i64], n_vocab: usize, param: &str) -> Result<Vec<u32>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, &t)| {
            if t < 0 || t as u64 >= n_vocab as u64 {
                Err(ApiError::invalid(
                    format!("{param}[{i}]"),
                    format!("token id {t} is out of range (the vocabulary has {n_vocab} tokens)"),
                ))
            } else {
                Ok(t as u32)
            }
        })
        .collect()
}

/// A validated generation request, ready to become a [`Job`].
pub(super) struct Spec {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub stop: Vec<String>,
    pub top_logprobs: Option<usize>,
    pub ignore_eos: bool,
    pub stream: bool,
    pub include_usage: bool,
}

fn check_range(param: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(ApiError::invalid(
            param,
            format!("{param} must be between {lo} and {hi}, got {x}"),
        )),
        other => Ok(other.map(|x| x as f32)),
    }
}

/// Validates the fields shared by both endpoints against a tokenized prompt.
/// `default_max`: `max_tokens` when the request gives none (`None`: the rest of the
/// context).
pub(super) fn build_spec(
    r: &Ready,
    c: &CommonParams,
    prompt: Vec<u32>,
    top_logprobs: Option<usize>,
    default_max: Option<usize>,
) -> Result<Spec, ApiError> {
    if let Some(n) = c.n {
        if n != 1 {
            return Err(ApiError::invalid(
                "n",
                format!("n must be 1 (pith returns one choice per request), got {n}"),
            ));
        }
    }
    let n_ctx = r.n_ctx;
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt is empty"));
    }
    if prompt.len() >= n_ctx {
        return Err(ApiError::bad_request(format!(
            "the prompt is {} tokens, but the context holds {n_ctx} (including at least one generated token): shorten the prompt",
            prompt.len()
        ))
        .with_code("context_length_exceeded"));
    }
    let (param, requested) = match (c.max_completion_tokens, c.max_tokens) {
        (Some(m), _) => ("max_completion_tokens", Some(m)),
        (None, m) => ("max_tokens", m),
    };
    let room = n_ctx - prompt.len();
    let max_tokens = match requested {
        Some(m) if m <= 0 => {
            return Err(ApiError::invalid(
                param,
                format!("{param} must be at least 1, got {m}"),
            ))
        }
        Some(m) if m as u64 > n_ctx as u64 => {
            return Err(ApiError::invalid(
                param,
                format!("{param} is {m}, more than the context holds ({n_ctx} tokens)"),
            ))
        }
        Some(m) => (m as usize).min(room),
        None => default_max.unwrap_or(room).min(room),
    };
    let d = SamplerConfig::default();
    let top_k = match c.top_k {
        Some(k) if k < 0 => {
            return Err(ApiError::invalid(
                "top_k",
                format!("top_k must be 0 (off) or more, got {k}"),
            ))
        }
        Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
        None => d.top_k,
    };
    let sampler = SamplerConfig {
        temperature: check_range("temperature", c.temperature, 0.0, 2.0)?.unwrap_or(d.temperature),
        top_k,
        top_p: check_range("top_p", c.top_p, 0.0, 1.0)?.unwrap_or(d.top_p),
        min_p: check_range("min_p", c.min_p, 0.0, 1.0)?.unwrap_or(d.min_p),
        repeat_penalty: check_range("repeat_penalty", c.repeat_penalty, 0.0, 10.0)?
            .unwrap_or(d.repeat_penalty),
        presence_penalty: check_range("presence_penalty", c.presence_penalty, -2.0, 2.0)?
            .unwrap_or(0.0),
        frequency_penalty: check_range("frequency_penalty", c.frequency_penalty, -2.0, 2.0)?
            .unwrap_or(0.0),
        seed: c.seed.map(|s| s as u64),
        ..d
    };
    let stop = match &c.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s.clone()],
        Some(StopField::Many(v)) => v.clone(),
    };
    if stop.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOPS} stop sequences, got {}", stop.len()),
        ));
    }
    let include_usage = match &c.stream_options {
        Some(o) if !c.stream => {
            let _ = o;
            return Err(ApiError::invalid(
                "stream_options",
                "stream_options is only allowed with stream: true",
            ));
        }
        Some(o) => o.include_usage,
        None => false,
    };
    Ok(Spec {
        prompt,
        max_tokens,
        sampler,
        stop,
        top_logprobs,
        ignore_eos: c.ignore_eos,
        stream: c.stream,
        include_usage,
    })
}

/// The messages as the chat template wants them; refuses unknown roles and non-text
/// content.
pub(super) fn chat_messages(req: &ChatRequest) -> Result<Vec<ChatMessage>, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must not be empty"));
    }
    req.messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].role"),
                        format!(
                            "unknown role '{other}' (supported: system, developer, user, assistant)"
                        ),
                    ))
                }
            };
            let content = match &m.content {
                Some(MessageContent::Text(t)) => t.clone(),
                Some(MessageContent::Parts(parts)) => {
                    let mut s = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => s.push_str(t),
                            _ => {
                                return Err(ApiError::invalid(
                                    format!("messages[{i}].content[{j}]"),
                                    format!(
                                        "content part of type '{}' is not supported (only text)",
                                        p.kind
                                    ),
                                ))
                            }
                        }
                    }
                    s
                }
                None => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].content"),
                        "content is missing",
                    ))
                }
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}
