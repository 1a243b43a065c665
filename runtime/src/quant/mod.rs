//! Quantized block layouts and the scalar reference dequantizers.

mod block_dequant;

pub(crate) use block_dequant::k4_scales_mins_words;
pub mod blocks;
mod dequant;
mod types;

pub use blocks::{cast_blocks, CastError};
pub use dequant::{dequantize, dequantize_to_vec, QuantError};
pub use types::{GgmlType, QK_K};
