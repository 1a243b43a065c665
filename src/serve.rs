//! `pith serve`: flags → [`pith_runtime::server`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pith_runtime::memory::LoadMode;
use pith_runtime::model::{KvType, ModelOptions, Numerics};
use pith_runtime::server::{self, AppState, SchedulerConfig, ServerConfig};

/// `pith serve` flags.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Model: a GGUF path or a catalog name. Default: the catalog's default model
    /// (gemma3-270m), fetched on first use.
    #[arg(short, long)]
    model: Option<String>,
    /// Address to listen on. Default loopback only; use 0.0.0.0 to serve the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// TCP port (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker threads for the forward pass. Default: the number of physical cores.
    #[arg(short, long)]
    threads: Option<usize>,
    /// Context size of each slot in tokens (prompt + output), capped at the model's
    /// training context.
    #[arg(short, long, default_value_t = 4096)]
    ctx: usize,
    /// Sequences decoded together in one batched forward pass; each has its own KV cache
    /// of --ctx tokens.
    #[arg(long = "parallel", short = 'p', default_value_t = 4)]
    parallel: usize,
    /// Requests that may wait for a free slot; beyond that new requests get 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Most prompt tokens prefilled per batched step (keeps streams flowing while a long
    /// prompt is read).
    #[arg(long, default_value_t = 256)]
    prefill_chunk: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but `/` and `/health`.
    /// Also read from $PITH_API_KEY.
    #[arg(long)]
    api_key: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// KV cache type: f16 or f32.
    #[arg(long, default_value = "f16")]
    kv_type: KvType,
    /// Numerics: `ggml` (tracks llama.cpp) or `exact` (f32 activations).
    #[arg(long, default_value = "ggml")]
    numerics: Numerics,
    /// Read the model into memory instead of memory-mapping it.
    #[arg(long)]
    no_mmap: bool,
    /// Lock the model's pages in RAM (needs `ulimit -l`).
    #[arg(long)]
    mlock: bool,
    /// Seconds to let in-flight requests finish after SIGTERM/Ctrl-C before cancelling
    /// them.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(a: ServeArgs) -> Result<()> {
    let t0 = Instant::now();
    let path = crate::resolve_model(a.model.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pith-http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let addr: SocketAddr = format!("{}:{}", a.host, a.port)
            .parse()
            .or_else(|_| {
                std::net::ToSocketAddrs::to_socket_addrs(&(a.host.as_str(), a.port))
                    .ok()
                    .and_then(|mut it| it.next())
                    .ok_or(())
            })
            .map_err(|()| anyhow::anyhow!("cannot resolve --host {}", a.host))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let cfg = ServerConfig {
            api_key: a
                .api_key
                .or_else(|| std::env::var("PITH_API_KEY").ok())
                .filter(|k| !k.is_empty()),
            max_body_bytes: a.max_body,
            scheduler: SchedulerConfig {
                n_slots: a.parallel.max(1),
                n_ctx: a.ctx,
                kv_type: a.kv_type,
                prefill_chunk: a.prefill_chunk,
                queue_capacity: a.queue.max(1),
            },
        };
        let state = AppState::new(cfg);
        eprintln!(
            "pith serve: listening on http://{local} (loading {})",
            path.display()
        );

        // Load in the background: /health answers 503 until the model is ready.
        let loader = {
            let state = state.clone();
            let opts = ModelOptions {
                threads: a.threads,
                numerics: a.numerics,
            };
            let mode = LoadMode {
                no_mmap: a.no_mmap,
                mlock: a.mlock,
            };
            tokio::task::spawn_blocking(move || state.load(&path, &opts, mode))
        };

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(server::serve(listener, state.clone(), {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|&s| s).await;
            }
        }));

        // One signal future for the whole run, so a signal between loading and serving
        // is not lost.
        let mut shutdown = Box::pin(shutdown_signal());
        let loaded = tokio::select! {
            r = loader => Some(r.context("the loader failed")?),
            () = &mut shutdown => None,
        };
        let scheduler_thread = match loaded {
            Some(Ok(thread)) => {
                eprintln!("pith serve: ready in {:.2} s", t0.elapsed().as_secs_f64());
                shutdown.await;
                Some(thread)
            }
            Some(Err(e)) => {
                let _ = stop_tx.send(true);
                return Err(anyhow::Error::new(e).context("cannot load the model"));
            }
            None => None,
        };
        eprintln!("pith serve: shutting down, finishing in-flight requests");
        let _ = stop_tx.send(true);
        let mut server = server;
        if tokio::time::timeout(Duration::from_secs(a.drain_timeout), &mut server)
            .await
            .is_err()
        {
            eprintln!("pith serve: drain timed out, cancelling in-flight requests");
            state.cancel_all();
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut server).await;
        }
        // The scheduler thread ends once the last state handle is gone; the process is
        // exiting, so it is not waited for.
        drop(scheduler_thread);
        eprintln!("pith serve: stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
