//! `pith convert MODEL.gguf OUTDIR --to hf`: a GGUF dequantized into an HF directory
//! (`config.json`, `generation_config.json`, `model.safetensors`, tokenizer files) that
//! transformers loads and that `pith quantize` reads back.
//!
//! The inverse of [`crate::hf::HfSource`]: HF tensor names, Gemma's norm weights −1,
//! Llama's q/k rows un-permuted, `rope_freqs.weight` dropped (its factors are not
//! representable in `config.json` except as the `llama3` rope type). Tensors are
//! streamed slab by slab into a temporary directory beside OUTDIR, renamed into place
//! when complete.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use pith_models::hf::{gguf_to_hf_name, hf_config_json, llama_permute_rows, SpecialIds};
use pith_models::{Arch, ArchConfig};
use pith_runtime::gguf::GgufFile;
use serde_json::json;

use crate::error::{io, Error, Result};

/// Element type of the written safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HfDtype {
    /// 32-bit float (default): exact for F32/F16/BF16 and every quantized input.
    #[default]
    F32,
    /// bfloat16, rounded to nearest even (half the size).
    Bf16,
}

impl HfDtype {
    fn st_name(self) -> &'static str {
        match self {
            HfDtype::F32 => "F32",
            HfDtype::Bf16 => "BF16",
        }
    }
    fn torch_name(self) -> &'static str {
        match self {
            HfDtype::F32 => "float32",
            HfDtype::Bf16 => "bfloat16",
        }
    }
    fn size(self) -> usize {
        match self {
            HfDtype::F32 => 4,
            HfDtype::Bf16 => 2,
        }
    }
}

/// Options of [`convert_to_hf`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// `--dtype`: f32 (default) or bf16.
    pub dtype: HfDtype,
    /// `--force`: replace an existing OUTDIR. Default: false.
    pub overwrite: bool,
    /// Show a progress bar on stderr. Default: false.
    pub progress: bool,
}

struct OutTensor {
    gguf_index: usize,
    hf_name: String,
    /// HF shape (outermost first).
    shape: Vec<usize>,
    /// Norm −1 (Gemma).
    sub_one: bool,
    /// Llama q/k: heads for the inverse rope permutation.
    unpermute: Option<usize>,
}

/// Converts `input` into the HF directory `outdir`; returns the files written.
pub fn convert_to_hf(input: &Path, outdir: &Path, opts: &ConvertOptions) -> Result<Vec<PathBuf>> {
    if outdir.exists() && !opts.overwrite {
        return Err(Error::OutputExists(outdir.to_path_buf()));
    }
    let f = GgufFile::open(input)?;
    let cfg = ArchConfig::from_metadata(&f)?;
    let tok = crate::hf::tokenizer_out::build(&f)?;

    let mut out: Vec<OutTensor> = Vec::new();
    for (i, t) in f.tensor_infos().iter().enumerate() {
        if t.name == "rope_freqs.weight" {
            continue;
        }
        let hf_name = gguf_to_hf_name(cfg.arch, &t.name).ok_or_else(|| Error::Tensor {
            name: t.name.clone(),
            reason: "no HF name for this tensor".into(),
        })?;
        let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        let unpermute = if cfg.arch == Arch::Llama {
            if t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_q.bias") {
                Some(cfg.n_head)
            } else if t.name.ends_with("attn_k.weight") || t.name.ends_with("attn_k.bias") {
                Some(cfg.n_head_kv)
            } else {
                None
            }
        } else {
            None
        };
        out.push(OutTensor {
            gguf_index: i,
            hf_name,
            shape,
            sub_one: cfg.arch == Arch::Gemma3 && t.name.ends_with("norm.weight"),
            unpermute,
        });
    }
    out.sort_by(|a, b| a.hf_name.cmp(&b.hf_name));
    let tied = f.tensor("output.weight").is_none();

    let parent = match outdir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".pith-convert-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let st_path = tmp.path().join("model.safetensors");
    write_safetensors(&f, &out, &st_path, opts)?;

    let special = SpecialIds {
        bos: tok.bos,
        eos: tok.eos,
        pad: tok.pad,
    };
    let mut config = hf_config_json(&cfg, tied, &special, opts.dtype.torch_name());
    if let Some(t) = f.tensor("rope_freqs.weight") {
        let factors =
            pith_runtime::quant::dequantize_to_vec(t.ty(), t.data).map_err(|e| Error::Tensor {
                name: "rope_freqs.weight".into(),
                reason: e.to_string(),
            })?;
        let scaling = llama3_scaling(&factors, cfg.rope.base, cfg.rope.dim).ok_or_else(|| Error::Tensor {
            name: "rope_freqs.weight".into(),
            reason: "no Llama 3 rope_scaling (factor, low/high_freq_factor, original context) reproduces these factors".into(),
        })?;
        if let Some(o) = config.as_object_mut() {
            o.insert("rope_scaling".into(), scaling);
        }
    }
    let mut gen = json!({"_from_model_config": true});
    if let Some(o) = gen.as_object_mut() {
        for (k, v) in [
            ("bos_token_id", tok.bos),
            ("eos_token_id", tok.eos),
            ("pad_token_id", tok.pad),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        }
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("config.json", pretty(&config)?),
        ("generation_config.json", pretty(&gen)?),
    ];
    files.extend(tok.files);
    for (name, bytes) in &files {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).map_err(io(&p))?;
    }
    if outdir.exists() {
        if outdir.is_dir() {
            std::fs::remove_dir_all(outdir).map_err(io(outdir))?;
        } else {
            std::fs::remove_file(outdir).map_err(io(outdir))?;
        }
    }
    let kept = tmp.keep();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile creates the directory 0700.
        let _ = std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o755));
    }
    std::fs::rename(&kept, outdir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        Error::Io {
            path: outdir.to_path_buf(),
            source: e,
        }
    })?;
    let mut written = vec![outdir.join("model.safetensors")];
    written.extend(files.iter().map(|(n, _)| outdir.join(n)));
    Ok(written)
}

/// Finds the `rope_type: llama3` parameters whose factors (as `convert_hf_to_gguf.py`
/// computes them) are exactly `factors`.
fn llama3_scaling(factors: &[f32], base: f32, dim: usize) -> Option<serde_json::Value> {
    let factor = factors.iter().copied().fold(1.0f32, f32::max) as f64;
    for orig in [8192.0, 4096.0, 2048.0, 16384.0, 32768.0, 65536.0, 131072.0] {
        for low in [1.0, 2.0, 0.5, 4.0] {
            for high in [4.0, 8.0, 2.0, 16.0, 1.0] {
                if high <= low {
                    continue;
                }
                let f =
                    pith_models::hf::llama3_rope_factors(base as f64, dim, factor, low, high, orig);
                if f == factors {
                    return Some(json!({
                        "rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                        "high_freq_factor": high, "original_max_position_embeddings": orig as u64,
                        "rope_theta": base,
                    }));
                }
            }
        }
    }
    None
}

fn pretty(v: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::Writer(e.to_string()))
}

fn write_safetensors(
    f: &GgufFile,
    out: &[OutTensor],
    path: &Path,
    opts: &ConvertOptions,
) -> Result<()> {
    let es = opts.dtype.size();
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0usize;
    for t in out {
        let n: usize = t.shape.iter().product();
        header.insert(
            t.hf_name.clone(),
            json!({"dtype": opts.dtype.st_name(), "shape": t.shape, "data_offsets": [off, off + n * es]}),
        );
        off += n * es;
    }
    let mut h = serde_json::to_vec(&header).map_err(|e| Error::Writer(e.to_string()))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&(h.len() as u64).to_le_bytes())
        .map_err(io(path))?;
    w.write_all(&h).map_err(io(path))?;

    let bar = if opts.progress {
        let b = ProgressBar::new(out.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} tensors {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut buf: Vec<f32> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for t in out {
        let info = &f.tensor_infos()[t.gguf_index];
        bar.set_message(t.hf_name.clone());
        let view = f.view(info);
        let row_len = view.row_len();
        let n_rows = view.n_rows();
        let row_bytes = view.row_bytes();
        let deq = |rows: std::ops::Range<usize>, out: &mut Vec<f32>| -> Result<()> {
            out.resize(rows.len() * row_len, 0.0);
            pith_runtime::quant::dequantize(
                info.ty,
                &view.data[rows.start * row_bytes..rows.end * row_bytes],
                out,
            )
            .map_err(|e| Error::Tensor {
                name: info.name.clone(),
                reason: e.to_string(),
            })
        };
        let slab = ((8 << 20) / row_len.max(1)).max(1);
        let mut emit = |vals: &[f32], w: &mut BufWriter<std::fs::File>| -> Result<()> {
            bytes.clear();
            match opts.dtype {
                HfDtype::F32 => vals
                    .iter()
                    .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
                HfDtype::Bf16 => vals
                    .iter()
                    .for_each(|v| bytes.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
            }
            w.write_all(&bytes).map_err(io(path))
        };
        if let Some(n_head) = t.unpermute {
            deq(0..n_rows, &mut buf)?;
            // GGUF row r is HF row perm[r] (a bias is one row of `row_len` values).
            let (rows, width) = if n_rows == 1 {
                (row_len, 1)
            } else {
                (n_rows, row_len)
            };
            let perm = llama_permute_rows(rows, n_head);
            let mut hf = vec![0f32; buf.len()];
            for (r, &p) in perm.iter().enumerate() {
                hf[p * width..(p + 1) * width].copy_from_slice(&buf[r * width..(r + 1) * width]);
            }
            emit(&hf, &mut w)?;
        } else {
            let mut r0 = 0;
            while r0 < n_rows {
                let r1 = (r0 + slab).min(n_rows);
                deq(r0..r1, &mut buf)?;
                if t.sub_one {
                    buf.iter_mut().for_each(|x| *x -= 1.0);
                }
                emit(&buf, &mut w)?;
                r0 = r1;
            }
        }
        if let Some(m) = f.mmap() {
            crate::pipeline::drop_pages(
                m,
                info.offset as usize,
                (info.offset + info.size) as usize,
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let file = w.into_inner().map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(path))?;
    Ok(())
}
