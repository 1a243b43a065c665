//! pith-models: the architecture catalog shared by the runtime, the quantizer and the
//! trainer.
//!
//! - [`Metadata`]: the key/value view a GGUF file (or an HF `config.json`) offers.
//! - [`arch`]: [`ArchConfig`], one description of every supported decoder.
//! - [`catalog`] and [`fetch`]: known model files and how to provision them.

pub mod arch;
pub mod catalog;
pub mod chat;
pub mod fetch;
pub mod hf;

pub use arch::{Arch, ArchConfig, ArchError};

/// Read access to model metadata by GGUF key (`gemma3.block_count`, …).
///
/// Implemented by the runtime's GGUF reader; kept here so this crate does not depend on
/// the runtime. Each getter returns `None` when the key is absent or has another type.
pub trait Metadata {
    fn meta_int(&self, key: &str) -> Option<i64>;
    fn meta_float(&self, key: &str) -> Option<f64>;
    fn meta_str(&self, key: &str) -> Option<&str>;
    fn meta_bool(&self, key: &str) -> Option<bool>;
    fn meta_int_array(&self, key: &str) -> Option<Vec<i64>>;
    fn meta_float_array(&self, key: &str) -> Option<Vec<f32>>;
    /// Length of an array value, without converting it.
    fn meta_array_len(&self, key: &str) -> Option<usize>;
}
