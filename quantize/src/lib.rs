//! Quantizers for every GGUF block format, the GGUF writer and HF → GGUF conversion.
//!
//! Not yet implemented: this crate is a placeholder so the workspace layout matches
//! `ARCHITECTURE.md`. The block layouts it will write live in `pith_runtime::quant`.

pub use pith_runtime::quant::GgmlType;
