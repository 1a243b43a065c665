//! Errors of the GGUF writer, the HF import/export and the quantize pipeline.

use std::path::PathBuf;

use pith_runtime::quant::GgmlType;

/// Everything that can go wrong converting or quantizing a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Gguf(#[from] pith_runtime::gguf::GgufError),
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    #[error("{0}")]
    Hf(#[from] pith_models::hf::HfError),
    #[error("{0}")]
    Arch(#[from] pith_models::ArchError),
    #[error("tensor '{name}': {reason}")]
    Tensor { name: String, reason: String },
    #[error("tensor '{name}' has shape {actual:?} but config.json implies {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<u64>,
        actual: Vec<u64>,
    },
    #[error("tensor '{name}' is missing")]
    MissingTensor { name: String },
    #[error(
        "tensor '{name}': requantizing from type {from} is disabled (pass --allow-requantize)"
    )]
    Requantize { name: String, from: GgmlType },
    #[error("tensor '{name}': cannot quantize to {ty}: {reason}")]
    Quantize {
        name: String,
        ty: GgmlType,
        reason: String,
    },
    #[error("unknown quantization type '{0}' (expected one of: {list})", list = crate::mixture::FileType::names().join(", "))]
    UnknownType(String),
    #[error("unknown tensor type '{0}'")]
    UnknownTensorType(String),
    #[error("--tensor-type '{spec}': {reason}")]
    BadTensorTypeSpec { spec: String, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("imatrix: {0}")]
    Imatrix(String),
    #[error("output '{0}' already exists (pass --force to overwrite)")]
    OutputExists(PathBuf),
    #[error("GGUF writer: {0}")]
    Writer(String),
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
}

/// Result alias of this crate's pipeline.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
