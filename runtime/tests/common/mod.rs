//! Test support shared by the GGUF reader's integration tests: a byte-level GGUF
//! builder ([`builder`]), proptest generators of valid files ([`gen`]), comparison of
//! parsed values with written ones ([`expect`]) and a per-thread allocation counter
//! ([`alloc_count`]). Each test binary uses a subset.
#![allow(dead_code)]

pub mod alloc_count;
pub mod builder;
pub mod expect;
pub mod gen;

use std::path::PathBuf;

/// The real default model (`$PITH_HOME/models/gemma-3-270m-q4_k_m.gguf`, `PITH_HOME`
/// defaulting to `$HOME/.cache/pith`), fetched through the catalog on first use. Panics
/// with the reason when it cannot be had.
pub fn gemma_path() -> PathBuf {
    pith_models::fetch::resolve_model(None)
        .unwrap_or_else(|e| panic!("the real model is not available: {e}"))
}
