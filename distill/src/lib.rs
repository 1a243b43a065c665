//! Teacher clients, synthetic data generation, the trainable student, losses and evaluation.
//!
//! Not yet implemented: this crate is a placeholder so the workspace layout matches
//! `ARCHITECTURE.md`.

pub use pith_runtime as runtime;
