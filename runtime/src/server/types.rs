//! Request and response bodies, in OpenAI's shapes.
//!
//! Requests accept every field OpenAI clients send; fields pith does not use are ignored
//! (as OpenAI ignores `user`). Unknown *values* of the fields pith does use are errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `stop`: one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk carrying `usage` (and `"usage": null` in the others).
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling and length fields shared by both completion endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonParams {
    /// Ignored: the server serves one model whatever this says.
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<StopField>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// llama.cpp extension: repetition penalty factor (1 = off).
    pub repeat_penalty: Option<f64>,
    /// llama.cpp extension: never end on an end-of-generation token (benchmarks).
    #[serde(default)]
    pub ignore_eos: bool,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<i64>,
}

/// Declares a request struct with its own fields plus those of [`CommonParams`] (not
/// `#[serde(flatten)]`: that would lose the field names in error messages), and a
/// `common()` accessor.
macro_rules! with_common {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
                /// Ignored: the server serves one model whatever this says.
                pub model: Option<String>,
                pub max_tokens: Option<i64>,
                pub max_completion_tokens: Option<i64>,
                pub temperature: Option<f64>,
                pub top_p: Option<f64>,
                pub top_k: Option<i64>,
                pub min_p: Option<f64>,
                pub seed: Option<i64>,
                pub stop: Option<StopField>,
                pub presence_penalty: Option<f64>,
                pub frequency_penalty: Option<f64>,
                /// llama.cpp extension: repetition penalty factor (1 = off).
                pub repeat_penalty: Option<f64>,
                /// llama.cpp extension: never end on an end-of-generation token (benchmarks).
                #[serde(default)]
                pub ignore_eos: bool,
                #[serde(default)]
                pub stream: bool,
                pub stream_options: Option<StreamOptions>,
                pub n: Option<i64>,
        }
        impl $name {
            /// The fields shared with the other completion endpoint.
            pub fn common(&self) -> CommonParams {
                CommonParams {
                    model: self.model.clone(),
                    max_tokens: self.max_tokens.clone(),
                    max_completion_tokens: self.max_completion_tokens.clone(),
                    temperature: self.temperature.clone(),
                    top_p: self.top_p.clone(),
                    top_k: self.top_k.clone(),
                    min_p: self.min_p.clone(),
                    seed: self.seed.clone(),
                    stop: self.stop.clone(),
                    presence_penalty: self.presence_penalty.clone(),
                    frequency_penalty: self.frequency_penalty.clone(),
                    repeat_penalty: self.repeat_penalty.clone(),
                    ignore_eos: self.ignore_eos.clone(),
                    stream: self.stream.clone(),
                    stream_options: self.stream_options.clone(),
                    n: self.n.clone(),
                }
            }
        }
    };
}

/// One part of a message's content given as a list.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A message's `content`: text, a list of parts, or null.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a string or an array of content parts ({\"type\": \"text\", \"text\": …})"
)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One input message.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

with_common! {
    /// `POST /v1/chat/completions`.
    #[derive(Debug, Clone, Deserialize)]
    pub struct ChatRequest {
        pub messages: Vec<MessageIn>,
        #[serde(default)]
        pub logprobs: bool,
        pub top_logprobs: Option<i64>,
    }
}

/// A completion prompt: text, one-element list of text, or token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, an array of one string, or an array of token ids"
)]
pub enum PromptField {
    Text(String),
    Tokens(Vec<i64>),
    Texts(Vec<String>),
    Batch(Vec<Vec<i64>>),
}

with_common! {
    /// `POST /v1/completions`.
    #[derive(Debug, Clone, Deserialize)]
    pub struct CompletionRequest {
        pub prompt: PromptField,
        /// The number of most likely tokens to report per position (0–20).
        pub logprobs: Option<i64>,
        #[serde(default)]
        pub echo: bool,
    }
}

/// `POST /tokenize` (llama.cpp's shape).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    pub content: String,
    /// Add BOS/EOS as the model's metadata says. Default false.
    #[serde(default)]
    pub add_special: bool,
    /// Return `{id, piece}` objects instead of bare ids. Default false.
    #[serde(default)]
    pub with_pieces: bool,
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<i64>,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl Usage {
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// One alternative in chat `logprobs.content[].top_logprobs`.
#[derive(Debug, Clone, Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// One generated token in chat `logprobs.content`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatTokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// Chat `logprobs`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatLogprobs {
    pub content: Vec<ChatTokenLogprob>,
}

/// Legacy completion `logprobs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<serde_json::Map<String, Value>>,
    pub text_offset: Vec<usize>,
}
