//! `pith quantize` and `pith convert`: thin front ends over `pith_quantize`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pith_quantize::convert::{convert_to_hf, ConvertOptions, HfDtype};
use pith_quantize::mixture::{parse_tensor_type, FileType, MixtureOptions};
use pith_quantize::pipeline::{open_source, plan_types, quantize_source, QuantizeOptions};

/// Flags of `pith quantize` (named as llama-quantize's).
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Input: an HF model directory (config.json, *.safetensors, tokenizer files) or a
    /// GGUF file (requantize).
    input: PathBuf,
    /// Output GGUF file. Refused if it exists, unless --force.
    output: PathBuf,
    /// File type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M,
    /// Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K.
    #[arg(short = 't', long = "type", default_value = "Q4_K_M")]
    ftype: String,
    /// Override the type of tensors whose name matches REGEX (searched anywhere in the
    /// name; the first matching pattern wins). Repeatable: `--tensor-type attn_v=q8_0`.
    #[arg(long = "tensor-type", value_name = "REGEX=TYPE")]
    tensor_type: Vec<String>,
    /// Type of output.weight. Default: the mixture's (Q6_K, or Q8_0 for odd widths).
    #[arg(long)]
    output_tensor_type: Option<String>,
    /// Type of token_embd.weight. Default: the mixture's.
    #[arg(long)]
    token_embedding_type: Option<String>,
    /// Leave output.weight in its input type.
    #[arg(long)]
    leave_output_tensor: bool,
    /// Importance matrix (llama.cpp's imatrix file, GGUF or legacy .dat).
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Quantization threads. Default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Allow requantizing tensors that are already quantized (lossy twice).
    #[arg(long)]
    allow_requantize: bool,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// general.name for HF input. Default: the directory name.
    #[arg(long)]
    name: Option<String>,
    /// Print the per-tensor types as JSON ({"name": "TYPE", ...}) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs `pith quantize`.
pub fn quantize(a: QuantizeArgs) -> Result<()> {
    let ftype = FileType::parse(&a.ftype)?;
    let mut mixture = MixtureOptions {
        leave_output_tensor: a.leave_output_tensor,
        ..Default::default()
    };
    for spec in &a.tensor_type {
        mixture
            .tensor_types
            .push(MixtureOptions::parse_tensor_type_spec(spec)?);
    }
    mixture.output_tensor_type = a
        .output_tensor_type
        .as_deref()
        .map(parse_tensor_type)
        .transpose()?;
    mixture.token_embedding_type = a
        .token_embedding_type
        .as_deref()
        .map(parse_tensor_type)
        .transpose()?;
    let opts = QuantizeOptions {
        mixture,
        imatrix: a.imatrix.clone(),
        threads: a.threads,
        allow_requantize: a.allow_requantize,
        overwrite: a.force,
        progress: !a.quiet,
        name: a.name.clone(),
        ..QuantizeOptions::new(ftype)
    };
    if !a.dry_run && !a.force && a.output.exists() {
        bail!(
            "output '{}' already exists (pass --force to overwrite)",
            a.output.display()
        );
    }
    let src = open_source(&a.input, a.name.as_deref())
        .with_context(|| format!("reading {}", a.input.display()))?;
    if a.dry_run {
        let map: serde_json::Map<String, serde_json::Value> = plan_types(src.as_ref(), &opts)
            .into_iter()
            .map(|(i, ty)| (src.tensors()[i].name.clone(), ty.name().into()))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(());
    }
    let r = quantize_source(src.as_ref(), &a.output, &opts)?;
    eprintln!(
        "quantized {} tensors to {} in {:.2} s: {:.1} MiB -> {:.1} MiB ({})",
        r.tensors.len(),
        ftype.name(),
        r.elapsed.as_secs_f64(),
        r.bytes_in as f64 / (1 << 20) as f64,
        r.bytes_out as f64 / (1 << 20) as f64,
        r.output.display()
    );
    Ok(())
}

/// Target format of `pith convert`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertTarget {
    /// A Hugging Face directory (config.json, model.safetensors, tokenizer files).
    Hf,
}

/// Element type of `pith convert --to hf`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtypeArg {
    F32,
    Bf16,
}

/// Flags of `pith convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input GGUF file.
    input: PathBuf,
    /// Output directory. Refused if it exists, unless --force.
    outdir: PathBuf,
    /// Target format.
    #[arg(long = "to", value_enum, default_value = "hf")]
    to: ConvertTarget,
    /// Element type of the safetensors.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs `pith convert`.
pub fn convert(a: ConvertArgs) -> Result<()> {
    let ConvertTarget::Hf = a.to;
    let opts = ConvertOptions {
        dtype: match a.dtype {
            DtypeArg::F32 => HfDtype::F32,
            DtypeArg::Bf16 => HfDtype::Bf16,
        },
        overwrite: a.force,
        progress: !a.quiet,
    };
    let files = convert_to_hf(&a.input, &a.outdir, &opts)
        .with_context(|| format!("converting {}", a.input.display()))?;
    eprintln!("wrote {} files to {}", files.len(), a.outdir.display());
    Ok(())
}
