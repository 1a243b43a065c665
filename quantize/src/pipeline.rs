//! `pith quantize`: HF directory or GGUF in, quantized GGUF out.
//!
//! The input is opened as a [`Source`] (a memory-mapped GGUF, or an HF directory of
//! safetensors read as if it were an all-F32 GGUF, see [`crate::hf`]). The type of every
//! tensor is chosen up front by [`crate::mixture::plan`], the header is written, then
//! each tensor is streamed through in slabs of rows: dequantized (or converted) to f32,
//! quantized in parallel, written. Peak memory is a few slabs, not the model.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pith_runtime::gguf::{GgufFile, Value};
use pith_runtime::quant::GgmlType;

use crate::error::{Error, Result};
use crate::mixture::{self, FileType, MixtureOptions, ModelShape, TensorIn};
use crate::writer::{GgufWriter, TensorSpec};

/// `general.quantization_version` written by llama.cpp (`GGML_QNT_VERSION`).
pub const QUANTIZATION_VERSION: u32 = 2;

/// Target size of one slab of f32 rows held in memory while quantizing (bytes).
const SLAB_BYTES: usize = 32 << 20;

/// Options of [`quantize_model`] (the `pith quantize` flags).
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// The file type (`--type`).
    pub ftype: FileType,
    /// Per-tensor overrides (`--tensor-type`, `--output-tensor-type`, …).
    pub mixture: MixtureOptions,
    /// `--imatrix FILE` (llama.cpp's imatrix format, legacy or GGUF). Default: none.
    pub imatrix: Option<PathBuf>,
    /// `--threads`: quantization threads. Default: all cores (rayon's default).
    pub threads: Option<usize>,
    /// `--allow-requantize`: allow quantizing tensors that are already quantized
    /// (lossy twice). Default: false, as llama-quantize.
    pub allow_requantize: bool,
    /// `--force`: overwrite an existing output. Default: false.
    pub overwrite: bool,
    /// Show a progress bar on stderr. Default: true.
    pub progress: bool,
    /// `general.name` for HF input. Default: the directory name.
    pub name: Option<String>,
}

impl QuantizeOptions {
    /// Defaults for `ftype` (see each field).
    pub fn new(ftype: FileType) -> Self {
        Self {
            ftype,
            mixture: MixtureOptions::default(),
            imatrix: None,
            threads: None,
            allow_requantize: false,
            overwrite: false,
            progress: true,
            name: None,
        }
    }
}

/// One input tensor as a source presents it.
#[derive(Debug, Clone)]
pub struct SrcTensor {
    /// GGUF name.
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    /// The type the data is stored in (HF inputs present F32).
    pub ty: GgmlType,
}

impl SrcTensor {
    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }
    /// Number of rows (the product of the other dimensions).
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }
}

/// A model to read tensors from.
pub trait Source: Sync {
    /// Output metadata without `general.file_type` / `general.quantization_version`.
    fn metadata(&self) -> Vec<(String, Value)>;
    fn tensors(&self) -> &[SrcTensor];
    fn shape(&self) -> ModelShape;
    /// The tensor's stored bytes in `tensors()[i].ty` layout, when it can be copied as is.
    fn raw(&self, i: usize) -> Option<&[u8]>;
    /// Rows `row0..row0 + out.len() / row_len` of tensor `i` as f32.
    fn rows_f32(&self, i: usize, row0: usize, out: &mut [f32]) -> Result<()>;
    /// Tells the source that rows `row0..row0 + n_rows` of tensor `i` will not be read
    /// again (drops their mapped pages, so resident memory stays at a few slabs).
    fn release_rows(&self, _i: usize, _row0: usize, _n_rows: usize) {}
    /// Tells the source that tensor `i` will not be read again.
    fn release(&self, i: usize) {
        let t = &self.tensors()[i];
        self.release_rows(i, 0, t.n_rows());
    }
}

/// Drops the resident pages of `map[start..end]` (rounded outwards to pages).
pub(crate) fn drop_pages(map: &memmap2::Mmap, start: usize, end: usize) {
    let start = start & !4095;
    let end = end.min(map.len());
    if end <= start {
        return;
    }
    // SAFETY: `map` is a read-only private file mapping; MADV_DONTNEED only drops its
    // resident pages, which the kernel re-reads from the file if they are touched again,
    // so no slice into the map observes a change.
    let _ = unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
    };
}

/// A GGUF file as a [`Source`].
pub struct GgufSource {
    file: GgufFile,
    tensors: Vec<SrcTensor>,
    shape: ModelShape,
}

impl GgufSource {
    /// Maps `path` and reads its architecture (for the mixture's layer counts).
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let cfg = pith_models::ArchConfig::from_metadata(&file)?;
        let tensors = file
            .tensor_infos()
            .iter()
            .map(|t| SrcTensor {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ty,
            })
            .collect();
        Ok(Self {
            file,
            tensors,
            shape: ModelShape {
                n_layer: cfg.n_layer,
                n_head: cfg.n_head,
                n_head_kv: cfg.n_head_kv,
            },
        })
    }
    /// The underlying file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

impl Source for GgufSource {
    fn metadata(&self) -> Vec<(String, Value)> {
        self.file
            .metadata()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "general.file_type"
                        | "general.quantization_version"
                        | "split.no"
                        | "split.count"
                        | "split.tensors.count"
                )
            })
            .cloned()
            .collect()
    }
    fn tensors(&self) -> &[SrcTensor] {
        &self.tensors
    }
    fn shape(&self) -> ModelShape {
        self.shape
    }
    fn raw(&self, i: usize) -> Option<&[u8]> {
        Some(self.file.tensor_bytes(&self.file.tensor_infos()[i]))
    }
    fn rows_f32(&self, i: usize, row0: usize, out: &mut [f32]) -> Result<()> {
        let info = &self.file.tensor_infos()[i];
        let t = &self.tensors[i];
        let row_bytes = t.row_len() / t.ty.block_size() * t.ty.type_size();
        let n = out.len() / t.row_len();
        let bytes = &self.file.tensor_bytes(info)[row0 * row_bytes..(row0 + n) * row_bytes];
        pith_runtime::quant::dequantize(t.ty, bytes, out).map_err(|e| Error::Tensor {
            name: t.name.clone(),
            reason: e.to_string(),
        })
    }
    fn release_rows(&self, i: usize, row0: usize, n_rows: usize) {
        let info = &self.file.tensor_infos()[i];
        let t = &self.tensors[i];
        let row_bytes = t.row_len() / t.ty.block_size() * t.ty.type_size();
        if let Some(m) = self.file.mmap() {
            let start = info.offset as usize + row0 * row_bytes;
            drop_pages(m, start, start + n_rows * row_bytes);
        }
    }
}

/// Opens `input`: a `.gguf` file or an HF model directory.
pub fn open_source(input: &Path, name: Option<&str>) -> Result<Box<dyn Source>> {
    if input.is_dir() {
        Ok(Box::new(crate::hf::HfSource::open(input, name)?))
    } else if input.is_file() {
        Ok(Box::new(GgufSource::open(input)?))
    } else {
        Err(Error::Input {
            path: input.to_path_buf(),
            reason: "no such file or directory".into(),
        })
    }
}

/// The output type of every tensor, in output order (llama.cpp's order).
pub fn plan_types(src: &dyn Source, opts: &QuantizeOptions) -> Vec<(usize, GgmlType)> {
    let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
    let order = mixture::llama_order(&names);
    let ins: Vec<TensorIn> = order
        .iter()
        .map(|&i| {
            let t = &src.tensors()[i];
            TensorIn {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ty,
            }
        })
        .collect();
    let mut mopts = opts.mixture.clone();
    mopts.has_imatrix |= opts.imatrix.is_some();
    let types = mixture::plan(&ins, src.shape(), opts.ftype, &mopts);
    order.into_iter().zip(types).collect()
}

/// What [`quantize_model`] did.
#[derive(Debug, Clone)]
pub struct QuantizeReport {
    pub output: PathBuf,
    /// (name, input type, output type) in file order.
    pub tensors: Vec<(String, GgmlType, GgmlType)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

/// Quantizes `input` (GGUF or HF directory) into `output`; see the module docs.
pub fn quantize_model(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
) -> Result<QuantizeReport> {
    if !opts.overwrite && output.exists() {
        return Err(Error::OutputExists(output.to_path_buf()));
    }
    let src = open_source(input, opts.name.as_deref())?;
    quantize_source(src.as_ref(), output, opts)
}

/// [`quantize_model`] over an opened source.
pub fn quantize_source(
    src: &dyn Source,
    output: &Path,
    opts: &QuantizeOptions,
) -> Result<QuantizeReport> {
    let start = Instant::now();
    let imatrix = match &opts.imatrix {
        Some(p) => {
            Some(crate::imatrix::ImatrixFile::load(p).map_err(|e| Error::Imatrix(e.to_string()))?)
        }
        None => None,
    };
    let plan = plan_types(src, opts);
    for &(i, ty) in &plan {
        let t = &src.tensors()[i];
        if ty != t.ty && t.ty.is_quantized() && !opts.allow_requantize {
            return Err(Error::Requantize {
                name: t.name.clone(),
                from: t.ty,
            });
        }
        if ty != t.ty && !crate::quants::supports(ty) {
            return Err(Error::Quantize {
                name: t.name.clone(),
                ty,
                reason: "pith has no quantizer for this type".into(),
            });
        }
    }
    let mut meta = src.metadata();
    meta.push((
        "general.quantization_version".into(),
        Value::U32(QUANTIZATION_VERSION),
    ));
    meta.push(("general.file_type".into(), Value::U32(opts.ftype.id())));
    if let (Some(m), Some(path)) = (&imatrix, &opts.imatrix) {
        // llama-quantize's kv overrides (tools/quantize/quantize.cpp): strings cut to
        // 127 bytes, counts as u32.
        let cut = |s: &str| {
            let mut n = s.len().min(127);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            s[..n].to_string()
        };
        let file = path.to_string_lossy();
        meta.push(("quantize.imatrix.file".into(), Value::String(cut(&file))));
        if let Some(d) = m.datasets.first() {
            meta.push(("quantize.imatrix.dataset".into(), Value::String(cut(d))));
        }
        meta.push((
            "quantize.imatrix.entries_count".into(),
            Value::U32(m.len() as u32),
        ));
        if m.chunk_count > 0 {
            meta.push((
                "quantize.imatrix.chunks_count".into(),
                Value::U32(m.chunk_count),
            ));
        }
    }
    let specs: Vec<TensorSpec> = plan
        .iter()
        .map(|&(i, ty)| TensorSpec {
            name: src.tensors()[i].name.clone(),
            dims: src.tensors()[i].dims.clone(),
            ty,
        })
        .collect();
    let mut w = GgufWriter::create(output, &meta, specs, opts.overwrite)?;

    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(n) = opts.threads {
            b = b.num_threads(n.max(1));
        }
        b.build()
            .map_err(|e| Error::Writer(format!("thread pool: {e}")))?
    };
    let bar = if opts.progress {
        let b = ProgressBar::new(plan.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} tensors {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut report = Vec::with_capacity(plan.len());
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    let mut f32_buf: Vec<f32> = Vec::new();
    let mut out_buf: Vec<u8> = Vec::new();
    for &(i, ty) in &plan {
        let t = &src.tensors()[i];
        bar.set_message(format!("{} → {ty}", t.name));
        let n_per_row = t.row_len();
        let n_rows = t.n_rows();
        bytes_in +=
            t.ty.bytes_for(n_per_row as u64 * n_rows as u64)
                .unwrap_or(0);
        if ty == t.ty {
            if let Some(raw) = src.raw(i) {
                w.write(raw)?;
                bytes_out += raw.len() as u64;
                src.release(i);
                report.push((t.name.clone(), t.ty, ty));
                bar.inc(1);
                continue;
            }
        }
        // As llama_model_quantize_impl: a missing entry quantizes without; a wrong size is
        // an error except for the token embedding.
        let imat = match &imatrix {
            Some(m) => match m.get(&t.name) {
                Some(v) if v.len() == n_per_row => Some(v),
                Some(v) if t.name != "token_embd.weight" => {
                    return Err(Error::Imatrix(format!(
                        "imatrix has {} values for '{}', the tensor has {n_per_row} columns",
                        v.len(),
                        t.name
                    )))
                }
                _ => None,
            },
            _ => None,
        };
        let rows_per_slab = (SLAB_BYTES / 4 / n_per_row).max(1);
        let mut row0 = 0;
        while row0 < n_rows {
            let n = rows_per_slab.min(n_rows - row0);
            f32_buf.resize(n * n_per_row, 0.0);
            src.rows_f32(i, row0, &mut f32_buf)?;
            let rs = crate::quants::row_size(ty, n_per_row).map_err(|e| Error::Quantize {
                name: t.name.clone(),
                ty,
                reason: e.to_string(),
            })?;
            out_buf.resize(n * rs, 0);
            pool.install(|| {
                crate::quants::quantize_into(ty, &f32_buf, n_per_row, imat, &mut out_buf)
            })
            .map_err(|e| Error::Quantize {
                name: t.name.clone(),
                ty,
                reason: e.to_string(),
            })?;
            w.write(&out_buf)?;
            bytes_out += out_buf.len() as u64;
            src.release_rows(i, row0, n);
            row0 += n;
        }
        src.release(i);
        report.push((t.name.clone(), t.ty, ty));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let output = w.finish()?;
    Ok(QuantizeReport {
        output,
        tensors: report,
        bytes_in,
        bytes_out,
        elapsed: start.elapsed(),
    })
}
