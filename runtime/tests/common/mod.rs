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

/// `$PITH_HOME/models/gemma-3-270m-q4_k_m.gguf` (`PITH_HOME` defaults to
/// `$HOME/.cache/pith`). Panics with the path when the file is missing.
pub fn gemma_path() -> PathBuf {
    let home = std::env::var_os("PITH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/pith"));
    let p = home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.is_file(),
        "the real model is missing: expected {} (set PITH_HOME or fetch it: see ARCHITECTURE.md)",
        p.display()
    );
    p
}
