//! Typed errors of the GGUF reader.

use std::path::PathBuf;

/// What was wrong with the bytes of a GGUF file.
///
/// Every variant names the field (or tensor) it is about, so a user can tell a truncated
/// download from a malicious file.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported GGUF version {version} (pith reads versions 2 and 3)")]
    UnsupportedVersion { version: u32 },
    #[error(
        "GGUF version field reads {version:#010x}: the file is big-endian (byte-swapped); \
         pith reads little-endian GGUF only"
    )]
    ByteSwapped { version: u32 },
    #[error("file truncated while reading {field}: needed {needed} bytes at offset {offset}, file has {file_len}")]
    Truncated {
        field: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    #[error("{field}: count {count} exceeds the limit of {limit}")]
    CountTooLarge {
        field: String,
        count: u64,
        limit: u64,
    },
    #[error("{field}: string of {len} bytes exceeds the limit of {limit}")]
    StringTooLong { field: String, len: u64, limit: u64 },
    #[error("{field}: string is not valid UTF-8")]
    BadUtf8 { field: String },
    #[error("{field}: unknown metadata value type {type_id}")]
    UnknownValueType { field: String, type_id: u32 },
    #[error("{field}: arrays nested deeper than {limit} levels")]
    NestingTooDeep { field: String, limit: usize },
    #[error("{field}: metadata key is empty")]
    EmptyKey { field: String },
    #[error("duplicate metadata key '{key}'")]
    DuplicateKey { key: String },
    #[error("general.alignment must be a non-zero power of two u32, got {value}")]
    BadAlignment { value: String },
    #[error("tensor '{name}': {n_dims} dimensions, at most {limit} are supported")]
    TooManyDims {
        name: String,
        n_dims: u32,
        limit: usize,
    },
    #[error("tensor '{name}': dimension {dim} is {value}, which is out of range")]
    BadDimension {
        name: String,
        dim: usize,
        value: u64,
    },
    #[error("tensor '{name}': element count overflows (dimensions {dims:?})")]
    ElementCountOverflow { name: String, dims: Vec<u64> },
    #[error("tensor '{name}': unknown or unsupported ggml type id {type_id}")]
    UnsupportedTensorType { name: String, type_id: u32 },
    #[error(
        "tensor '{name}': first dimension {ne0} is not a multiple of the {ty} block size {block}"
    )]
    NotBlockAligned {
        name: String,
        ty: String,
        ne0: u64,
        block: usize,
    },
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensor { name: String },
    #[error(
        "tensor '{name}': data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor '{name}': data [{offset}, +{len}) lies outside the file ({file_len} bytes, data section at {data_start})")]
    TensorOutOfBounds {
        name: String,
        offset: u64,
        len: u64,
        data_start: u64,
        file_len: u64,
    },
}

/// An error opening or reading a GGUF file, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error("{path}: metadata key '{key}' is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}: tensor '{name}' not found")]
    MissingTensor { path: PathBuf, name: String },
}
