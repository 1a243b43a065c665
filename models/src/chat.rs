//! Chat templates: a conversation (`[{role, content}]`) → the prompt text a model was
//! trained on.
//!
//! A GGUF file carries its Hugging Face chat template, a Jinja program, under
//! `tokenizer.chat_template`. [`ChatTemplate`] renders it with [minijinja] set up as
//! Hugging Face's `apply_chat_template` sets up Jinja2: `trim_blocks` and
//! `lstrip_blocks` on, the variables `messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token`, the function `raise_exception(msg)` (rendering fails with `msg`), and
//! `strftime_now(fmt)` (the current UTC time, for templates such as Llama 3.1's that print
//! today's date). Python string and dict methods that templates call (`.strip()`,
//! `.title()`, `.startswith()`, `.items()`, …) come from minijinja-contrib's `pycompat`.
//!
//! # Fallback for models without a template
//!
//! Base models (Gemma 3 270M among them) ship no template. Then:
//!
//! - architectures named `gemma*` get the Gemma turn format
//!   ([`GEMMA_FALLBACK_TEMPLATE`]): `<start_of_turn>user\n…<end_of_turn>\n`, the
//!   `assistant` role written as `model`, a system message prepended to the first user
//!   turn, ending with `<start_of_turn>model\n`;
//! - every other architecture gets a plain transcript ([`PLAIN_FALLBACK_TEMPLATE`]): one
//!   `role: content` line per message, ending with `assistant:`.
//!
//! Both fallbacks accept any order of roles (the Gemma one does not insist on
//! alternating user/assistant turns as Gemma's own template does).

use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

use crate::Metadata;

/// The GGUF metadata key holding the Hugging Face chat template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// The fallback for `gemma*` architectures without a template: Gemma's turn format.
pub const GEMMA_FALLBACK_TEMPLATE: &str = "{{ bos_token }}
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}
    {%- else -%}{%- set role = message['role'] -%}{%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// The fallback for other architectures without a template: a plain transcript.
pub const PLAIN_FALLBACK_TEMPLATE: &str = "{{ bos_token }}
{%- for message in messages -%}
    {{ message['role'] + ': ' + message['content'] | trim + '\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ 'assistant:' }}{%- endif -%}";

/// Errors building or rendering a chat template.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The template is not valid Jinja (as minijinja reads it).
    #[error("the chat template does not parse: {detail}")]
    Syntax { detail: String },
    /// Rendering failed: the template called `raise_exception` (e.g. a role it does not
    /// support), or used something minijinja cannot evaluate.
    #[error("the chat template rejected the conversation: {detail}")]
    Render { detail: String },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Where a [`ChatTemplate`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateSource {
    /// The model's own template (`tokenizer.chat_template`, or one given explicitly).
    Model,
    /// [`GEMMA_FALLBACK_TEMPLATE`].
    GemmaFallback,
    /// [`PLAIN_FALLBACK_TEMPLATE`].
    PlainFallback,
}

impl TemplateSource {
    /// `model`, `gemma-fallback` or `plain-fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateSource::Model => "model",
            TemplateSource::GemmaFallback => "gemma-fallback",
            TemplateSource::PlainFallback => "plain-fallback",
        }
    }
}

/// A compiled chat template with the model's BOS/EOS token text.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: TemplateSource,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Context<'a> {
    messages: &'a [ChatMessage],
    add_generation_prompt: bool,
    bos_token: &'a str,
    eos_token: &'a str,
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `template` (Jinja source); `bos_token`/`eos_token` are the text of the
    /// model's BOS/EOS tokens (empty when it has none).
    pub fn new(
        template: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, ChatError> {
        Self::with_source(template, TemplateSource::Model, bos_token, eos_token)
    }

    /// The model's template from its metadata, or the documented fallback (module docs)
    /// chosen by `general.architecture`.
    pub fn from_metadata(
        meta: &dyn Metadata,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, ChatError> {
        match meta.meta_str(CHAT_TEMPLATE_KEY) {
            Some(t) if !t.trim().is_empty() => {
                Self::with_source(t, TemplateSource::Model, bos_token, eos_token)
            }
            _ => Self::fallback(meta, bos_token, eos_token),
        }
    }

    /// The documented fallback (module docs) for the model's `general.architecture`,
    /// whatever template its metadata holds.
    pub fn fallback(
        meta: &dyn Metadata,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, ChatError> {
        let arch = meta.meta_str("general.architecture").unwrap_or("");
        let (text, source) = if arch.starts_with("gemma") {
            (GEMMA_FALLBACK_TEMPLATE, TemplateSource::GemmaFallback)
        } else {
            (PLAIN_FALLBACK_TEMPLATE, TemplateSource::PlainFallback)
        };
        Self::with_source(text, source, bos_token, eos_token)
    }

    fn with_source(
        template: &str,
        source: TemplateSource,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, ChatError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, template.to_owned())
            .map_err(|e| ChatError::Syntax {
                detail: describe(&e),
            })?;
        Ok(Self {
            env,
            source,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// Where this template came from.
    pub fn source(&self) -> TemplateSource {
        self.source
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends with the header of
    /// the assistant's turn, ready for the model to continue.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatError::Render {
                detail: describe(&e),
            })?;
        let ctx = Context {
            messages,
            add_generation_prompt,
            bos_token: &self.bos_token,
            eos_token: &self.eos_token,
        };
        tmpl.render(ctx).map_err(|e| ChatError::Render {
            detail: describe(&e),
        })
    }

    /// The prompt for a chat completion: [`render`](Self::render) with the generation
    /// prompt, minus a leading BOS token text when the tokenizer adds BOS itself
    /// (`tokenizer_adds_bos`), so the model does not see two (as llama.cpp's
    /// `common_chat_templates_apply` does).
    pub fn render_prompt(
        &self,
        messages: &[ChatMessage],
        tokenizer_adds_bos: bool,
    ) -> Result<String, ChatError> {
        let text = self.render(messages, true)?;
        if tokenizer_adds_bos && !self.bos_token.is_empty() {
            if let Some(rest) = text.strip_prefix(self.bos_token.as_str()) {
                return Ok(rest.to_owned());
            }
        }
        Ok(text)
    }
}

/// The error and its causes, with the detail minijinja keeps apart (e.g. the message
/// given to `raise_exception`).
fn describe(e: &JinjaError) -> String {
    let mut s = match e.detail() {
        Some(d) if e.kind() == ErrorKind::InvalidOperation => d.to_owned(),
        _ => e.to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

/// `raise_exception(msg)`: fails the render with `msg` (Hugging Face's helper).
fn raise_exception(msg: String) -> Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
}

/// `strftime_now(fmt)`: the current UTC time formatted as Python's `strftime` would.
fn strftime_now(fmt: String) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    strftime_utc(&fmt, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats a UNIX time (seconds, UTC) with the `strftime` directives templates use:
/// `%Y %y %m %d %e %j %H %M %S %b %B %a %A %p %%`. Unknown directives are kept as
/// written.
pub fn strftime_utc(fmt: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let rem = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let wd = (days + 3).rem_euclid(7) as usize;
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('p') => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            Some('b') => out.push_str(&MONTHS[m as usize - 1][..3]),
            Some('B') => out.push_str(MONTHS[m as usize - 1]),
            Some('a') => out.push_str(&WEEKDAYS[wd][..3]),
            Some('A') => out.push_str(WEEKDAYS[wd]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01 (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
