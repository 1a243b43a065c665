//! Counters, gauges and histograms, rendered as Prometheus text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (c, &b) in self.counts.iter_mut().zip(&BUCKETS) {
            if secs <= b {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (c, b) in self.counts.iter().zip(&BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// How a generation ended, for `pith_generations_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// End-of-generation token or stop string.
    Stop,
    /// Token limit or full context.
    Length,
    /// The client went away before the end.
    Cancelled,
    /// The model failed.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Stop => "stop",
            Outcome::Length => "length",
            Outcome::Cancelled => "cancelled",
            Outcome::Error => "error",
        }
    }
}

/// Everything `/metrics` reports. Shared by the HTTP layer and the scheduler.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests by (endpoint path, status code).
    http: Mutex<BTreeMap<(String, u16), u64>>,
    /// Generations by outcome.
    outcomes: Mutex<BTreeMap<Outcome, u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    /// Requests waiting for a slot.
    queue_depth: AtomicUsize,
    /// Slots decoding or prefilling a request.
    slots_active: AtomicUsize,
    /// Slots configured (`--parallel`).
    slots_total: AtomicUsize,
    /// Batched forward passes run.
    steps: AtomicU64,
    request_latency: Mutex<Histogram>,
    first_token_latency: Mutex<Histogram>,
    generation_latency: Mutex<Histogram>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Records one HTTP request and its latency (until the response head).
    pub fn http_request(&self, path: &str, status: u16, latency: Duration) {
        *lock(&self.http)
            .entry((path.to_owned(), status))
            .or_default() += 1;
        lock(&self.request_latency).observe(latency.as_secs_f64());
    }

    /// Records a finished generation.
    pub fn generation(
        &self,
        outcome: Outcome,
        prompt_tokens: usize,
        completion_tokens: usize,
        total: Duration,
    ) {
        *lock(&self.outcomes).entry(outcome).or_default() += 1;
        self.prompt_tokens
            .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion_tokens as u64, Ordering::Relaxed);
        lock(&self.generation_latency).observe(total.as_secs_f64());
    }

    /// Records the time from enqueueing to the first generated token.
    pub fn first_token(&self, latency: Duration) {
        lock(&self.first_token_latency).observe(latency.as_secs_f64());
    }

    pub(crate) fn queue_add(&self, delta: isize) {
        if delta >= 0 {
            self.queue_depth.fetch_add(delta as usize, Ordering::SeqCst);
        } else {
            self.queue_depth
                .fetch_sub(delta.unsigned_abs(), Ordering::SeqCst);
        }
    }

    pub(crate) fn set_slots(&self, active: usize, total: usize) {
        self.slots_active.store(active, Ordering::SeqCst);
        self.slots_total.store(total, Ordering::SeqCst);
    }

    pub(crate) fn step(&self) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth.load(Ordering::SeqCst)
    }

    /// Slots serving a request now.
    pub fn slots_active(&self) -> usize {
        self.slots_active.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pith_http_requests_total HTTP requests by endpoint and status.\n# TYPE pith_http_requests_total counter"
        );
        for ((path, status), n) in lock(&self.http).iter() {
            let _ = writeln!(
                out,
                "pith_http_requests_total{{endpoint=\"{path}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pith_generations_total Finished generations by outcome.\n# TYPE pith_generations_total counter"
        );
        for (o, n) in lock(&self.outcomes).iter() {
            let _ = writeln!(
                out,
                "pith_generations_total{{reason=\"{}\"}} {n}",
                o.as_str()
            );
        }
        let counters = [
            (
                "pith_prompt_tokens_total",
                "Prompt tokens processed.",
                self.prompt_tokens.load(Ordering::Relaxed),
            ),
            (
                "pith_completion_tokens_total",
                "Tokens generated.",
                self.completion_tokens.load(Ordering::Relaxed),
            ),
            (
                "pith_batch_steps_total",
                "Batched forward passes run.",
                self.steps.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let gauges = [
            (
                "pith_queue_depth",
                "Requests waiting for a slot.",
                self.queue_depth(),
            ),
            (
                "pith_slots_active",
                "Slots serving a request.",
                self.slots_active(),
            ),
            (
                "pith_slots_total",
                "Slots configured (--parallel).",
                self.slots_total.load(Ordering::SeqCst),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        lock(&self.request_latency).render(
            &mut out,
            "pith_http_request_duration_seconds",
            "Time from request to response head.",
        );
        lock(&self.first_token_latency).render(
            &mut out,
            "pith_time_to_first_token_seconds",
            "Time from enqueueing a generation to its first token.",
        );
        lock(&self.generation_latency).render(
            &mut out,
            "pith_generation_duration_seconds",
            "Time from enqueueing a generation to its end.",
        );
        out
    }
}
