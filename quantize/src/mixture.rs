//! Per-tensor type selection, a port of llama.cpp's `llama_tensor_get_type`
//! (`src/llama-quant.cpp`) for the file types pith writes.
//!
//! A file type (`Q4_K_M`, …) names a default tensor type plus a mixture: attn_v and
//! ffn_down get more bits on some layers, the output (or a tied token embedding) gets
//! Q6_K, 1-D tensors and norms are never quantized, and rows whose length is not a
//! multiple of the block size fall back to a compatible type. [`plan`] reproduces
//! llama.cpp's choice for every tensor, including its tensor order (llama.cpp sorts
//! tensors by layer, then by name) and its counters.

use pith_runtime::quant::GgmlType;
use regex::Regex;

use crate::error::{Error, Result};

/// A llama.cpp file type (`llama_ftype`): the `--type` argument of `pith quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3KS,
    Q3KM,
    Q3KL,
    Q4KS,
    Q4KM,
    Q5KS,
    Q5KM,
    Q6K,
}

impl FileType {
    /// Every file type, in llama-quantize's listing order.
    pub const ALL: [FileType; 17] = [
        FileType::F32,
        FileType::F16,
        FileType::BF16,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q8_0,
        FileType::Q2K,
        FileType::Q3KS,
        FileType::Q3KM,
        FileType::Q3KL,
        FileType::Q4KS,
        FileType::Q4KM,
        FileType::Q5KS,
        FileType::Q5KM,
        FileType::Q6K,
    ];

    /// llama-quantize's name (`Q4_K_M`).
    pub fn name(self) -> &'static str {
        match self {
            FileType::F32 => "F32",
            FileType::F16 => "F16",
            FileType::BF16 => "BF16",
            FileType::Q4_0 => "Q4_0",
            FileType::Q4_1 => "Q4_1",
            FileType::Q5_0 => "Q5_0",
            FileType::Q5_1 => "Q5_1",
            FileType::Q8_0 => "Q8_0",
            FileType::Q2K => "Q2_K",
            FileType::Q3KS => "Q3_K_S",
            FileType::Q3KM => "Q3_K_M",
            FileType::Q3KL => "Q3_K_L",
            FileType::Q4KS => "Q4_K_S",
            FileType::Q4KM => "Q4_K_M",
            FileType::Q5KS => "Q5_K_S",
            FileType::Q5KM => "Q5_K_M",
            FileType::Q6K => "Q6_K",
        }
    }

    /// All names, for error messages and `--help`.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|t| t.name()).collect()
    }

    /// Parses a name, case-insensitively (`q4_k_m`, `Q4_K`=`Q4_K_M` and `Q3_K`=`Q3_K_M`
    /// and `Q5_K`=`Q5_K_M` as llama-quantize).
    pub fn parse(s: &str) -> Result<Self> {
        let u = s.to_ascii_uppercase();
        let alias = match u.as_str() {
            "Q4_K" => "Q4_K_M",
            "Q3_K" => "Q3_K_M",
            "Q5_K" => "Q5_K_M",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|t| t.name() == alias)
            .ok_or_else(|| Error::UnknownType(s.to_string()))
    }

    /// The `general.file_type` value (`llama_ftype`).
    pub fn id(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q2K => 10,
            FileType::Q3KS => 11,
            FileType::Q3KM => 12,
            FileType::Q3KL => 13,
            FileType::Q4KS => 14,
            FileType::Q4KM => 15,
            FileType::Q5KS => 16,
            FileType::Q5KM => 17,
            FileType::Q6K => 18,
            FileType::BF16 => 32,
        }
    }

    /// The default tensor type (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::BF16 => GgmlType::BF16,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4_1 => GgmlType::Q4_1,
            FileType::Q5_0 => GgmlType::Q5_0,
            FileType::Q5_1 => GgmlType::Q5_1,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q2K => GgmlType::Q2K,
            FileType::Q3KS | FileType::Q3KM | FileType::Q3KL => GgmlType::Q3K,
            FileType::Q4KS | FileType::Q4KM => GgmlType::Q4K,
            FileType::Q5KS | FileType::Q5KM => GgmlType::Q5K,
            FileType::Q6K => GgmlType::Q6K,
        }
    }
}

/// Parses a tensor type name (`q6_k`, `Q8_0`, `f16`, …) for `--tensor-type` and friends.
pub fn parse_tensor_type(s: &str) -> Result<GgmlType> {
    let u = s.to_ascii_uppercase();
    GgmlType::ALL
        .into_iter()
        .filter(|t| !matches!(t, GgmlType::Q8_1 | GgmlType::Q8K))
        .find(|t| t.name() == u)
        .ok_or_else(|| Error::UnknownTensorType(s.to_string()))
}

/// Type-selection options (the llama-quantize flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct MixtureOptions {
    /// `--tensor-type REGEX=TYPE`: the first pattern found anywhere in a tensor's name
    /// (`regex_search`) sets its type, replacing the mixture's choice. Default: none.
    pub tensor_types: Vec<(Regex, GgmlType)>,
    /// `--output-tensor-type`: type of `output.weight`. Default: the mixture's (Q6_K).
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`: type of `token_embd.weight`. Default: the mixture's.
    pub token_embedding_type: Option<GgmlType>,
    /// `--leave-output-tensor`: keep `output.weight` in its input type. Default: false.
    pub leave_output_tensor: bool,
    /// Whether an importance matrix is used (changes Q4_0/Q5_0's ffn_down choice).
    pub has_imatrix: bool,
}

impl MixtureOptions {
    /// Parses one `--tensor-type REGEX=TYPE` argument.
    pub fn parse_tensor_type_spec(spec: &str) -> Result<(Regex, GgmlType)> {
        let bad = |reason: String| Error::BadTensorTypeSpec {
            spec: spec.to_string(),
            reason,
        };
        let (pat, ty) = spec
            .rsplit_once('=')
            .ok_or_else(|| bad("expected REGEX=TYPE".into()))?;
        if pat.is_empty() {
            return Err(bad("empty pattern".into()));
        }
        let ty = parse_tensor_type(ty).map_err(|e| bad(e.to_string()))?;
        let re = Regex::new(pat).map_err(|e| bad(e.to_string()))?;
        Ok((re, ty))
    }
}

/// What [`plan`] needs to know about the model (`llama_hparams`).
#[derive(Debug, Clone, Copy)]
pub struct ModelShape {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
}

impl ModelShape {
    fn n_gqa(&self) -> usize {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }
}

/// One input tensor: name, dims (ggml order) and current type.
#[derive(Debug, Clone)]
pub struct TensorIn {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Category::TokenEmbd
    } else if name.contains("attn_qkv.weight") {
        Category::AttnQkv
    } else if name.contains("attn_v.weight") {
        Category::AttnV
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else if name.contains("attn_q.weight") {
        Category::AttnQ
    } else if name.contains("attn_output.weight") {
        Category::AttnOutput
    } else if name.contains("ffn_up") {
        Category::FfnUp
    } else if name.contains("ffn_gate") {
        Category::FfnGate
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

/// `tensor_allows_quantization` for the tensors of the supported architectures.
pub fn allows_quantization(t: &TensorIn, opts: &MixtureOptions) -> bool {
    let n_dims = t.dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    if n_dims < 2 {
        return false;
    }
    let n = &t.name;
    n.ends_with("weight")
        && !n.contains("_norm.weight")
        && (!opts.leave_output_tensor || n != "output.weight")
        && !n.contains("ffn_gate_inp.weight")
        && n != "position_embd.weight"
        && n != "token_types.weight"
}

/// llama.cpp's layer order: tensors outside `blk.N.` first, then by layer, then by name.
pub fn llama_order(names: &[&str]) -> Vec<usize> {
    fn layer(n: &str) -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(-1)
    }
    let mut idx: Vec<usize> = (0..names.len()).collect();
    idx.sort_by(|&a, &b| {
        (layer(names[a]), names[a].as_bytes()).cmp(&(layer(names[b]), names[b].as_bytes()))
    });
    idx
}

fn is_quantized(t: GgmlType) -> bool {
    t.is_quantized()
}

/// Chooses every tensor's output type for `ftype`, as llama.cpp does. `tensors` must be
/// in llama.cpp's order ([`llama_order`]) for the per-layer counters to match.
pub fn plan(
    tensors: &[TensorIn],
    shape: ModelShape,
    ftype: FileType,
    opts: &MixtureOptions,
) -> Vec<GgmlType> {
    let default_type = ftype.default_type();
    let cats: Vec<Category> = tensors.iter().map(|t| category(&t.name)).collect();
    let has_tied = !cats.contains(&Category::Output);
    let mut st = State {
        n_attention_wv: cats
            .iter()
            .filter(|c| matches!(c, Category::AttnV | Category::AttnQkv))
            .count(),
        n_layer: shape.n_layer,
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        has_tied,
    };
    tensors
        .iter()
        .zip(&cats)
        .map(|(t, &cat)| {
            if !allows_quantization(t, opts) {
                return t.ty;
            }
            if let (Some(ty), Category::TokenEmbd) = (opts.token_embedding_type, cat) {
                return ty;
            }
            if let (Some(ty), Category::Output) = (opts.output_tensor_type, cat) {
                return ty;
            }
            let mut new_type = default_type;
            if is_quantized(default_type) {
                let manual = opts
                    .tensor_types
                    .iter()
                    .find(|(re, _)| re.is_match(&t.name))
                    .map(|&(_, ty)| ty);
                match manual {
                    Some(ty) => new_type = ty,
                    None => new_type = st.get_type(new_type, t, ftype, cat, shape, opts),
                }
                new_type = fallback(t, new_type);
            }
            new_type
        })
        .collect()
}

struct State {
    n_attention_wv: usize,
    n_layer: usize,
    i_attention_wv: usize,
    i_ffn_down: usize,
    i_ffn_gate: usize,
    i_ffn_up: usize,
    has_tied: bool,
}

fn use_more_bits(i_layer: usize, n_layers: usize) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

impl State {
    /// `llama_tensor_get_type_impl` restricted to the k-quant and legacy file types.
    fn get_type(
        &mut self,
        mut new_type: GgmlType,
        t: &TensorIn,
        ftype: FileType,
        cat: Category,
        shape: ModelShape,
        opts: &MixtureOptions,
    ) -> GgmlType {
        use FileType as F;
        use GgmlType as G;
        if cat == Category::Output || (self.has_tied && cat == Category::TokenEmbd) {
            if let Some(ty) = opts.output_tensor_type {
                return ty;
            }
            let nx = t.dims[0] as usize;
            if !nx.is_multiple_of(new_type.block_size()) {
                new_type = G::Q8_0;
            } else if new_type != G::Q8_0 {
                new_type = G::Q6K;
            }
            return new_type;
        }
        match cat {
            Category::TokenEmbd => {
                if let Some(ty) = opts.token_embedding_type {
                    new_type = ty;
                }
            }
            // category_is_attn_v: a fused qkv follows the attn_v rules (llama.cpp's own
            // ATTENTION_QKV branch comes after and is never reached).
            Category::AttnV | Category::AttnQkv => {
                match ftype {
                    F::Q2K => {
                        new_type = if shape.n_gqa() >= 4 { G::Q4K } else { G::Q3K };
                    }
                    F::Q3KM => {
                        new_type = if self.i_attention_wv < 2 {
                            G::Q5K
                        } else {
                            G::Q4K
                        };
                    }
                    F::Q3KL => new_type = G::Q5K,
                    F::Q4KM | F::Q5KM
                        if use_more_bits(self.i_attention_wv, self.n_attention_wv) =>
                    {
                        new_type = G::Q6K
                    }
                    F::Q4KS if self.i_attention_wv < 4 => new_type = G::Q5K,
                    _ => {}
                }
                self.i_attention_wv += 1;
            }
            Category::FfnDown => {
                let (i_layer, n_layer) = (self.i_ffn_down, self.n_layer);
                match ftype {
                    F::Q2K => new_type = G::Q3K,
                    F::Q3KM => {
                        // arch != FALCON || use_more_bits → Q4_K (always, for pith's archs)
                        new_type = if i_layer < n_layer / 16 {
                            G::Q5K
                        } else {
                            G::Q4K
                        };
                    }
                    F::Q3KL => new_type = G::Q5K,
                    F::Q4KM if use_more_bits(i_layer, n_layer) => new_type = G::Q6K,
                    F::Q5KM if use_more_bits(i_layer, n_layer) => new_type = G::Q6K,
                    F::Q4KS if i_layer < n_layer / 8 => new_type = G::Q5K,
                    F::Q4_0 | F::Q5_0 if opts.has_imatrix && i_layer < n_layer / 8 => {
                        new_type = if ftype == F::Q4_0 { G::Q4_1 } else { G::Q5_1 };
                    }
                    _ => {}
                }
                self.i_ffn_down += 1;
            }
            Category::AttnOutput => match ftype {
                F::Q2K => new_type = G::Q3K,
                F::Q3KM => new_type = G::Q4K,
                F::Q3KL => new_type = G::Q5K,
                _ => {}
            },
            Category::FfnGate => self.i_ffn_gate += 1,
            Category::FfnUp => self.i_ffn_up += 1,
            _ => {}
        }
        new_type
    }
}

/// `tensor_type_fallback`: rows not divisible by the block size.
fn fallback(t: &TensorIn, target: GgmlType) -> GgmlType {
    let ncols = t.dims[0] as usize;
    if ncols.is_multiple_of(target.block_size()) {
        return target;
    }
    let ret = match target {
        GgmlType::Q2K | GgmlType::Q3K => GgmlType::Q4_0,
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        other => other,
    };
    if !ncols.is_multiple_of(ret.block_size()) {
        GgmlType::F16
    } else {
        ret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, dims: &[u64]) -> TensorIn {
        TensorIn {
            name: name.into(),
            dims: dims.to_vec(),
            ty: GgmlType::F32,
        }
    }

    #[test]
    fn fallback_table() {
        assert_eq!(fallback(&t("x", &[640, 2]), GgmlType::Q4K), GgmlType::Q5_0);
        assert_eq!(fallback(&t("x", &[640, 2]), GgmlType::Q6K), GgmlType::Q8_0);
        assert_eq!(fallback(&t("x", &[640, 2]), GgmlType::Q5K), GgmlType::Q5_1);
        assert_eq!(fallback(&t("x", &[640, 2]), GgmlType::Q3K), GgmlType::Q4_0);
        assert_eq!(fallback(&t("x", &[48, 2]), GgmlType::Q4K), GgmlType::F16);
        assert_eq!(fallback(&t("x", &[48, 2]), GgmlType::Q8_0), GgmlType::F16);
        assert_eq!(fallback(&t("x", &[512, 2]), GgmlType::Q4K), GgmlType::Q4K);
    }

    #[test]
    fn names_parse() {
        assert_eq!(FileType::parse("q4_k_m").unwrap(), FileType::Q4KM);
        assert_eq!(FileType::parse("Q4_K").unwrap(), FileType::Q4KM);
        assert!(matches!(FileType::parse("Q7"), Err(Error::UnknownType(_))));
        assert_eq!(parse_tensor_type("q6_k").unwrap(), GgmlType::Q6K);
        let (re, ty) = MixtureOptions::parse_tensor_type_spec("attn_v=q8_0").unwrap();
        assert!(re.is_match("blk.0.attn_v.weight"));
        assert_eq!(ty, GgmlType::Q8_0);
        assert!(MixtureOptions::parse_tensor_type_spec("attn_v").is_err());
        assert!(MixtureOptions::parse_tensor_type_spec("(=q8_0").is_err());
    }

    #[test]
    fn order_is_layer_then_name() {
        let names = [
            "blk.10.a",
            "blk.2.b",
            "output.weight",
            "blk.2.a",
            "token_embd.weight",
        ];
        let o: Vec<&str> = llama_order(&names).iter().map(|&i| names[i]).collect();
        assert_eq!(
            o,
            [
                "output.weight",
                "token_embd.weight",
                "blk.2.a",
                "blk.2.b",
                "blk.10.a"
            ]
        );
    }
}
