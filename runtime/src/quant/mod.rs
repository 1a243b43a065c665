//! Quantized block layouts and the scalar reference dequantizers.

mod types;

pub use types::{GgmlType, QK_K};
