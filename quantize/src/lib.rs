//! Quantizers for every GGUF block format, the GGUF writer and HF → GGUF conversion.
//!
//! - [`quants`]: the block quantizers (bit-exact with ggml).
//! - [`writer`]: the streaming GGUF v3 writer.
//! - [`mixture`]: llama.cpp's per-tensor type choice for each file type.
//! - [`pipeline`]: `pith quantize` (HF directory or GGUF in, GGUF out).
//! - [`hf`] and [`convert`]: HF directories in and out (`pith convert --to hf`).

pub use pith_runtime::quant::GgmlType;

pub mod convert;
pub mod error;
pub mod hf;
pub mod imatrix;
pub mod kld;
pub mod mixture;
pub mod pipeline;
pub mod quants;
pub mod writer;

pub use error::{Error, Result};
