//! pith-runtime: lean CPU inference over memory-mapped GGUF files.
//!
//! Layers, bottom up: [`gguf`] (hardened mmap reader), [`quant`] (block layouts and
//! dequantization), [`tokenizer`], [`model`] (one decoder driven by
//! [`pith_models::ArchConfig`], KV cache), [`sampler`].

pub mod cpu;
pub mod gemm;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod memory;
pub mod model;
pub mod quant;
pub mod sampler;
#[cfg(feature = "server")]
pub mod server;
pub mod tokenizer;
