//! Quantized block layouts and the scalar reference dequantizers.

mod block_dequant;
pub mod blocks;
mod dequant;
mod types;

pub use blocks::{cast_blocks, CastError};
pub use dequant::{dequantize, dequantize_to_vec, QuantError};
pub use types::{GgmlType, QK_K};
