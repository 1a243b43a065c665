//! `ArchConfig`: the switches that distinguish the supported decoder architectures.
//! (Being written: see the decoder work.)

/// A supported decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arch {
    Gemma3,
    Llama,
    Qwen2,
    Qwen3,
    Phi3,
}

/// Errors building an [`ArchConfig`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchError {
    #[error("unsupported architecture '{0}' (pith supports gemma3, llama, qwen2, qwen3, phi3)")]
    Unsupported(String),
    #[error("metadata key '{key}' is missing or has the wrong type")]
    MissingKey { key: String },
    #[error("metadata key '{key}' has an invalid value: {reason}")]
    BadValue { key: String, reason: String },
}

/// Hyperparameters and architecture switches of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchConfig {
    pub arch: Arch,
}
