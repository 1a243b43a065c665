//! `pith info`: what is in a GGUF file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result};
use pith_models::{ArchConfig, Metadata};
use pith_runtime::gguf::{Array, GgufFile, Value};
use pith_runtime::tokenizer::Tokenizer;

/// Arrays longer than this are abbreviated unless `--all-metadata`.
const SHOW_ARRAY: usize = 8;

/// `println!` into a String (the report is written at once, so a closed pipe is handled in
/// one place).
macro_rules! outln {
    ($o:expr) => { $o.push('\n') };
    ($o:expr, $($arg:tt)*) => {{ let _ = writeln!($o, $($arg)*); }};
}

pub fn info(spec: &str, all_metadata: bool) -> Result<()> {
    let path = crate::resolve_model(Some(spec))?;
    let file = GgufFile::open(&path)?;
    let mut o = String::new();
    let arch = report(&mut o, &path, &file, all_metadata);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(o.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
    }
    arch.map(|_| ())
        .with_context(|| format!("{}", path.display()))
}

fn report(
    o: &mut String,
    path: &std::path::Path,
    file: &GgufFile,
    all_metadata: bool,
) -> Result<ArchConfig, pith_models::ArchError> {
    outln!(o, "file: {}", path.display());
    outln!(
        o,
        "size: {} bytes, GGUF v{}, alignment {}, {} metadata keys, {} tensors",
        file.len(),
        file.version(),
        file.header().alignment,
        file.metadata().len(),
        file.tensor_infos().len()
    );

    outln!(o, "\n## metadata");
    for (k, v) in file.metadata() {
        outln!(o, "{k} = {}", show_value(v, all_metadata));
    }

    // The architecture: printed when supported; an unsupported one is the error at the end.
    let arch = ArchConfig::from_metadata(file);
    if let Ok(c) = &arch {
        outln!(o, "\n## architecture: {}", c.arch);
        outln!(
            o,
            "layers {} | embedding {} | ffn {} | heads {} (kv {}) | head dim {} (v {})",
            c.n_layer,
            c.n_embd,
            c.n_ff,
            c.n_head,
            c.n_head_kv,
            c.head_dim,
            c.head_dim_v
        );
        outln!(
            o,
            "vocab {} | context {} | rms eps {:e}",
            c.n_vocab,
            c.context_length,
            c.rms_eps
        );
        outln!(
            o,
            "rope: {:?}, dim {}, base {} (sliding-window layers {}), freq scale {}",
            c.rope.style,
            c.rope.dim,
            c.rope.base,
            c.rope.base_swa,
            c.rope.freq_scale
        );
        if let Some(w) = c.sliding_window {
            let global: Vec<usize> = (0..c.n_layer).filter(|&il| !c.is_swa(il)).collect();
            outln!(o, "sliding window {w} tokens; global layers {global:?}");
        }
        outln!(o,
            "activation {:?} | post-norms {} | q/k norm {} | fused qkv {} | fused gate/up {} | embedding scale {:?} | final logit soft-cap {:?}",
            c.activation, c.post_norms, c.qk_norm, c.fused_qkv, c.fused_gate_up, c.embed_scale, c.final_logit_softcap
        );
    }

    outln!(o, "\n## tokenizer");
    match Tokenizer::from_gguf(file) {
        Ok(t) => outln!(o, "{}", t.summary()),
        Err(e) => outln!(o, "(cannot build: {e})"),
    }
    if let Some(t) = file.meta_str("tokenizer.chat_template") {
        outln!(o, "chat template: {} bytes", t.len());
    } else {
        outln!(o, "chat template: none");
    }

    outln!(o, "\n## tensors");
    outln!(
        o,
        "{:<40} {:>6} {:>22} {:>12}",
        "name",
        "type",
        "shape",
        "bytes"
    );
    let mut by_type: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    let (mut total_bytes, mut total_params) = (0u64, 0u64);
    for t in file.tensor_infos() {
        let shape = format!("{:?}", t.dims);
        outln!(
            o,
            "{:<40} {:>6} {:>22} {:>12}",
            t.name,
            t.ty.name(),
            shape,
            t.size
        );
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.size;
        e.2 += t.n_elements();
        total_bytes += t.size;
        total_params += t.n_elements();
    }
    outln!(o, "\n## totals");
    for (ty, (n, bytes, params)) in &by_type {
        outln!(
            o,
            "{ty:>6}: {n:4} tensors, {params:>12} parameters, {bytes:>12} bytes"
        );
    }
    let bpw = if total_params > 0 {
        total_bytes as f64 * 8.0 / total_params as f64
    } else {
        0.0
    };
    outln!(o, " total: {:4} tensors, {total_params:>12} parameters, {total_bytes:>12} bytes ({bpw:.2} bits/weight)", file.tensor_infos().len());

    arch
}

fn show_value(v: &Value, all: bool) -> String {
    match v {
        Value::String(s) if !all && s.len() > 120 => format!(
            "{:?}… ({} bytes)",
            &s[..(0..=120)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0)],
            s.len()
        ),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => show_array(a, all),
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
    }
}

fn show_array(a: &Array, all: bool) -> String {
    let n = a.len();
    let limit = if all { n } else { n.min(SHOW_ARRAY) };
    let items: Vec<String> = match a {
        Array::String(v) => v[..limit].iter().map(|s| format!("{s:?}")).collect(),
        Array::Array(v) => v[..limit].iter().map(|x| show_array(x, all)).collect(),
        Array::F32(v) => v[..limit].iter().map(|x| x.to_string()).collect(),
        Array::F64(v) => v[..limit].iter().map(|x| x.to_string()).collect(),
        Array::Bool(v) => v[..limit].iter().map(|x| x.to_string()).collect(),
        other => other.to_i64_vec().unwrap_or_default()[..limit]
            .iter()
            .map(|x| x.to_string())
            .collect(),
    };
    let more = if limit < n {
        format!(", … {} more", n - limit)
    } else {
        String::new()
    };
    format!(
        "[{}{more}] ({} × {})",
        items.join(", "),
        n,
        a.element_type_name()
    )
}
