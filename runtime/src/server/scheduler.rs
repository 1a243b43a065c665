//! Continuous batching: one thread owns the model and `--parallel` KV slots.
//!
//! Each step the scheduler
//! 1. admits queued requests into free slots (a request whose client has already gone
//!    is dropped without running);
//! 2. frees the slots whose client went away (their event channel is closed);
//! 3. runs **one** [`Model::forward_batch`] over every active sequence: a decoding
//!    sequence contributes its last token, a prefilling one the next chunk of its prompt
//!    (at most `prefill_chunk` prompt tokens per step in all, so a long prompt does not
//!    stall the streams that are decoding);
//! 4. samples the next token of each sequence that has logits, and streams it.
//!
//! The queue in front is bounded: [`SchedulerHandle::submit`] fails with
//! [`SubmitError::QueueFull`] when `queue_capacity` requests are already waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::metrics::{Metrics, Outcome};
use crate::generate::{Engine, FinishReason};
use crate::model::{KvCache, KvType, Logits, SeqBatch};
use crate::sampler::{log_softmax_top_k, Sampler, SamplerConfig, StopMatcher};
use crate::tokenizer::StreamDecoder;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Sequences decoded together (`--parallel`), each with its own KV cache. Default 4.
    pub n_slots: usize,
    /// Context of each slot in tokens (prompt + output). Default 4096.
    pub n_ctx: usize,
    /// KV cache element type. Default f16.
    pub kv_type: KvType,
    /// Most prompt tokens prefilled in one step, over all slots. Default 256.
    pub prefill_chunk: usize,
    /// Requests that may wait for a slot before new ones get 429. Default 64.
    pub queue_capacity: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            n_slots: 4,
            n_ctx: 4096,
            kv_type: KvType::F16,
            prefill_chunk: 256,
            queue_capacity: 64,
        }
    }
}

/// Log-probabilities reported for one generated token.
#[derive(Debug, Clone)]
pub struct TokenLogprobs {
    /// The chosen token's log-probability under the model's distribution.
    pub logprob: f32,
    /// The most likely tokens with theirs, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// What the scheduler streams back for one request.
#[derive(Debug, Clone)]
pub enum Event {
    /// A generated token and the text it completed (possibly empty: an incomplete UTF-8
    /// character, or text held back because it may start a stop string).
    Token {
        id: u32,
        text: String,
        logprobs: Option<TokenLogprobs>,
    },
    /// Text released at the end (held-back text that turned out not to be a stop).
    Text(String),
    /// The end.
    Done {
        finish: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    /// The model failed; no more events follow.
    Error(String),
}

/// One generation request.
#[derive(Debug)]
pub struct Job {
    /// Prompt token ids (non-empty, shorter than the slot context).
    pub prompt: Vec<u32>,
    /// Most tokens to generate (≥ 1).
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Stop strings (not included in the output).
    pub stop: Vec<String>,
    /// Report log-probabilities with this many alternatives (`Some(0)`: the chosen
    /// token's only). `None`: none.
    pub top_logprobs: Option<usize>,
    /// Never end on an end-of-generation token (their logits are masked).
    pub ignore_eos: bool,
    /// Where events go; closing it cancels the request.
    pub events: UnboundedSender<Event>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the queue is full ({capacity} requests waiting)")]
    QueueFull { capacity: usize },
    #[error("the scheduler has stopped")]
    Stopped,
}

/// The submitting side of a running scheduler; cheap to clone.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
    capacity: usize,
    cancel: Arc<AtomicBool>,
}

impl SchedulerHandle {
    /// Queues `job`, or refuses at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        // Counted before sending, so the scheduler never sees a negative depth.
        self.metrics.queue_add(1);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.metrics.queue_add(-1);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::QueueFull {
                        capacity: self.capacity,
                    },
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }

    /// Ends every running and queued request (shutdown): their streams end with an
    /// error event.
    pub fn cancel_all(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Starts the scheduler thread over `engine`. It runs until every handle is dropped and
/// the last request has finished.
pub fn spawn(
    engine: Arc<Engine>,
    cfg: SchedulerConfig,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SchedulerHandle, std::thread::JoinHandle<()>)> {
    let cfg = SchedulerConfig {
        n_slots: cfg.n_slots.max(1),
        n_ctx: cfg.n_ctx.max(2),
        prefill_chunk: cfg.prefill_chunk.max(1),
        queue_capacity: cfg.queue_capacity.max(1),
        ..cfg
    };
    let (tx, rx) = mpsc::sync_channel(cfg.queue_capacity);
    metrics.set_slots(0, cfg.n_slots);
    let cancel = Arc::new(AtomicBool::new(false));
    let handle = SchedulerHandle {
        tx,
        metrics: metrics.clone(),
        capacity: cfg.queue_capacity,
        cancel: cancel.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("pith-scheduler".into())
        .spawn(move || {
            let mut s = Scheduler::new(&engine, cfg, metrics, cancel);
            s.run(rx);
        })?;
    Ok((handle, thread))
}

/// A request being served.
struct Active<'e> {
    job: Job,
    /// Prompt tokens already in the cache.
    n_prefilled: usize,
    sampler: Sampler,
    stops: StopMatcher,
    detok: StreamDecoder<'e>,
    n_generated: usize,
    /// The token to feed at the next decode step.
    next: [u32; 1],
    enqueued: Instant,
    first_token: bool,
}

struct Slot<'e> {
    cache: KvCache,
    active: Option<Active<'e>>,
}

struct Scheduler<'e> {
    engine: &'e Engine,
    cfg: SchedulerConfig,
    metrics: Arc<Metrics>,
    cancel: Arc<AtomicBool>,
    slots: Vec<Slot<'e>>,
    eog: Vec<u32>,
}

impl<'e> Scheduler<'e> {
    fn new(
        engine: &'e Engine,
        cfg: SchedulerConfig,
        metrics: Arc<Metrics>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let slots = (0..cfg.n_slots)
            .map(|_| Slot {
                cache: engine.model.new_cache_typed(cfg.n_ctx, cfg.kv_type),
                active: None,
            })
            .collect();
        metrics.set_slots(0, cfg.n_slots);
        Self {
            eog: engine.tokenizer.eog_ids().collect(),
            engine,
            cfg,
            metrics,
            cancel,
            slots,
        }
    }

    fn n_active(&self) -> usize {
        self.slots.iter().filter(|s| s.active.is_some()).count()
    }

    fn run(&mut self, rx: Receiver<Job>) {
        let mut open = true;
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                self.cancel_everything(&rx);
                return;
            }
            open = self.admit(&rx, open);
            self.drop_cancelled();
            let n_active = self.n_active();
            self.metrics.set_slots(n_active, self.slots.len());
            if n_active == 0 {
                if !open {
                    return;
                }
                continue;
            }
            self.step();
        }
    }

    /// Moves queued jobs into free slots; blocks for one when nothing is running.
    /// Returns whether the queue is still open.
    fn admit(&mut self, rx: &Receiver<Job>, mut open: bool) -> bool {
        while open {
            let Some(free) = self.slots.iter().position(|s| s.active.is_none()) else {
                break;
            };
            let job = if self.n_active() == 0 {
                // Idle: wait, but wake up now and then to notice a cancel.
                match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.metrics.set_slots(0, self.slots.len());
                        if self.cancel.load(Ordering::SeqCst) {
                            break;
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            } else {
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            self.metrics.queue_add(-1);
            self.start(free, job);
        }
        open
    }

    fn start(&mut self, slot: usize, job: Job) {
        let n_ctx = self.cfg.n_ctx;
        if job.events.is_closed() {
            self.metrics
                .generation(Outcome::Cancelled, 0, 0, std::time::Duration::ZERO);
            return;
        }
        if job.prompt.is_empty() || job.prompt.len() >= n_ctx || job.max_tokens == 0 {
            let _ = job.events.send(Event::Error(format!(
                "prompt of {} tokens does not fit a slot of {n_ctx} tokens with room to generate",
                job.prompt.len()
            )));
            self.metrics
                .generation(Outcome::Error, 0, 0, std::time::Duration::ZERO);
            return;
        }
        let mut sampler = Sampler::new(job.sampler.clone());
        let hist = job.sampler.repeat_last_n.min(job.prompt.len());
        for &t in &job.prompt[job.prompt.len() - hist..] {
            sampler.accept(t);
        }
        let s = &mut self.slots[slot];
        s.cache.clear();
        s.active = Some(Active {
            stops: StopMatcher::new(job.stop.clone()),
            detok: self.engine.tokenizer.stream_decoder(true),
            job,
            n_prefilled: 0,
            sampler,
            n_generated: 0,
            next: [0],
            enqueued: Instant::now(),
            first_token: true,
        });
    }

    fn drop_cancelled(&mut self) {
        for s in &mut self.slots {
            if s.active.as_ref().is_some_and(|a| a.job.events.is_closed()) {
                let a = s.active.take().expect("checked above");
                tracing::debug!(generated = a.n_generated, "client went away, slot freed");
                self.metrics.generation(
                    Outcome::Cancelled,
                    a.n_prefilled,
                    a.n_generated,
                    a.enqueued.elapsed(),
                );
                s.cache.clear();
            }
        }
    }

    fn cancel_everything(&mut self, rx: &Receiver<Job>) {
        for s in &mut self.slots {
            if let Some(a) = s.active.take() {
                let _ = a
                    .job
                    .events
                    .send(Event::Error("the server is shutting down".into()));
                self.metrics.generation(
                    Outcome::Cancelled,
                    a.n_prefilled,
                    a.n_generated,
                    a.enqueued.elapsed(),
                );
            }
        }
        while let Ok(job) = rx.try_recv() {
            self.metrics.queue_add(-1);
            let _ = job
                .events
                .send(Event::Error("the server is shutting down".into()));
            self.metrics
                .generation(Outcome::Cancelled, 0, 0, std::time::Duration::ZERO);
        }
        self.metrics.set_slots(0, self.slots.len());
    }

    /// One batched forward pass over every active slot, then sampling.
    fn step(&mut self) {
        let _span = tracing::debug_span!("step").entered();
        let mut budget = self.cfg.prefill_chunk;
        let mut members = Vec::with_capacity(self.slots.len());
        let mut batch: Vec<SeqBatch<'_>> = Vec::with_capacity(self.slots.len());
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(a) = s.active.as_mut() else {
                continue;
            };
            let n_prompt = a.job.prompt.len();
            if a.n_prefilled < n_prompt {
                if budget == 0 {
                    continue;
                }
                let end = (a.n_prefilled + budget).min(n_prompt);
                budget -= end - a.n_prefilled;
                let logits = if end == n_prompt {
                    Logits::Last
                } else {
                    Logits::None
                };
                let chunk = &a.job.prompt[a.n_prefilled..end];
                a.n_prefilled = end;
                batch.push(SeqBatch {
                    cache: &mut s.cache,
                    tokens: chunk,
                    logits,
                });
            } else {
                batch.push(SeqBatch {
                    cache: &mut s.cache,
                    tokens: &a.next,
                    logits: Logits::Last,
                });
            }
            members.push(i);
        }
        if batch.is_empty() {
            return;
        }
        self.metrics.step();
        let result = self.engine.model.forward_batch(&mut batch);
        drop(batch);
        match result {
            Ok(all) => {
                for (i, logits) in members.into_iter().zip(all) {
                    if !logits.is_empty() {
                        self.sample(i, logits);
                    }
                }
            }
            Err(e) => {
                tracing::error!("forward pass failed: {e}");
                for i in members {
                    self.finish_error(i, e.to_string());
                }
            }
        }
        // Finished requests free their slots now, not at the next admission.
        self.metrics.set_slots(self.n_active(), self.slots.len());
    }

    fn finish_error(&mut self, i: usize, msg: String) {
        let s = &mut self.slots[i];
        if let Some(a) = s.active.take() {
            let _ = a.job.events.send(Event::Error(msg));
            self.metrics.generation(
                Outcome::Error,
                a.n_prefilled,
                a.n_generated,
                a.enqueued.elapsed(),
            );
        }
        s.cache.clear();
    }

    /// Samples slot `i`'s next token from `logits` and streams it.
    fn sample(&mut self, i: usize, mut logits: Vec<f32>) {
        let tok = &self.engine.tokenizer;
        let n_ctx = self.cfg.n_ctx;
        let eog = &self.eog;
        let s = &mut self.slots[i];
        let Some(a) = s.active.as_mut() else {
            return;
        };
        if a.job.ignore_eos {
            for &t in eog {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let id = a.sampler.sample(&logits);
        if a.first_token {
            a.first_token = false;
            self.metrics.first_token(a.enqueued.elapsed());
        }
        let finish = if tok.is_eog(id) {
            Some(FinishReason::Stop)
        } else {
            let logprobs = a.job.top_logprobs.map(|k| logprobs_of(&logits, id, k));
            a.sampler.accept(id);
            a.n_generated += 1;
            let (text, stopped) = a.stops.push(&a.detok.feed(id));
            let _ = a.job.events.send(Event::Token { id, text, logprobs });
            if stopped {
                Some(FinishReason::Stop)
            } else if a.n_generated >= a.job.max_tokens || s.cache.len() >= n_ctx {
                Some(FinishReason::Length)
            } else {
                a.next = [id];
                None
            }
        };
        if let Some(mut finish) = finish {
            let mut a = s.active.take().expect("checked above");
            if !a.stops.is_stopped() {
                let (mut text, stopped) = a.stops.push(&a.detok.flush());
                if stopped {
                    finish = FinishReason::Stop;
                } else {
                    text.push_str(&a.stops.finish());
                }
                if !text.is_empty() {
                    let _ = a.job.events.send(Event::Text(text));
                }
            }
            let _ = a.job.events.send(Event::Done {
                finish,
                prompt_tokens: a.job.prompt.len(),
                completion_tokens: a.n_generated,
            });
            let outcome = match finish {
                FinishReason::Stop => Outcome::Stop,
                FinishReason::Length => Outcome::Length,
            };
            self.metrics.generation(
                outcome,
                a.job.prompt.len(),
                a.n_generated,
                a.enqueued.elapsed(),
            );
            s.cache.clear();
        }
    }
}

/// The chosen token's log-probability and the `k` most likely tokens' (softmax over all
/// of `logits`, before any sampling filter: what OpenAI reports).
fn logprobs_of(logits: &[f32], id: u32, k: usize) -> TokenLogprobs {
    let top = log_softmax_top_k(logits, k.max(1));
    let logprob = match top.iter().find(|&&(t, _)| t == id) {
        Some(&(_, lp)) => lp,
        None => {
            // log p(id) = l_id − log Z, and log Z = l_max − log p(max).
            let (best, lp_best) = top[0];
            let l = |t: u32| logits.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY);
            l(id) - (l(best) - lp_best)
        }
    };
    TokenLogprobs {
        logprob,
        top: if k == 0 { Vec::new() } else { top },
    }
}
