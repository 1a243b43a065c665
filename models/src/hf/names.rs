//! HF ⇄ GGUF tensor names and Llama's rope permutation of q/k rows.

use crate::arch::Arch;

/// Per-layer tensor names: (HF suffix after `model.layers.N.`, GGUF suffix after
/// `blk.N.`). Gemma's `post_attention_layernorm` is a post-norm; elsewhere it is the
/// FFN's pre-norm, handled in [`hf_to_gguf_name`].
const LAYER_NAMES: [(&str, &str); 14] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("self_attn.qkv_proj", "attn_qkv"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"),
    ("post_feedforward_layernorm", "post_ffw_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("mlp.gate_up_proj", "ffn_up"),
];

/// Maps an HF tensor name to its GGUF name, or `None` for tensors the converter drops
/// (`rotary_emb.inv_freq`) or does not know.
pub fn hf_to_gguf_name(arch: Arch, name: &str) -> Option<String> {
    let name = name
        .strip_prefix("language_model.")
        .or_else(|| name.strip_prefix("model.language_model."))
        .map(|n| {
            if n.starts_with("model.") || n.starts_with("lm_head") {
                n.to_string()
            } else {
                format!("model.{n}")
            }
        })
        .unwrap_or_else(|| name.to_string());
    match name.as_str() {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let il: usize = layer.parse().ok()?;
    let (stem, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let g = if stem == "post_attention_layernorm" {
        if arch == Arch::Gemma3 {
            "post_attention_norm"
        } else {
            "ffn_norm"
        }
    } else {
        let (_, g) = LAYER_NAMES.iter().find(|(h, _)| *h == stem)?;
        if *g == "ffn_up" && stem == "mlp.gate_up_proj" && arch != Arch::Phi3 {
            return None;
        }
        g
    };
    Some(format!("blk.{il}.{g}.{kind}"))
}

/// Maps a GGUF tensor name to its HF name (inverse of [`hf_to_gguf_name`]); `None` for
/// tensors HF does not store (`rope_freqs.weight`).
pub fn gguf_to_hf_name(arch: Arch, name: &str) -> Option<String> {
    match name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let il: usize = layer.parse().ok()?;
    let (stem, kind) = rest.rsplit_once('.')?;
    let h = match (stem, arch) {
        ("post_attention_norm", Arch::Gemma3) => "post_attention_layernorm",
        ("ffn_norm", a) if a != Arch::Gemma3 => "post_attention_layernorm",
        ("ffn_up", Arch::Phi3) => "mlp.gate_up_proj",
        _ => LAYER_NAMES.iter().find(|(_, g)| *g == stem)?.0,
    };
    Some(format!("model.layers.{il}.{h}.{kind}"))
}

/// Llama's q/k row permutation for rope (`LlamaModel.permute`): HF stores rotary pairs
/// as halves of each head, llama.cpp as adjacent pairs. For a weight of `rows` rows
/// (`n_head` heads) returns, for each output row, the input row it comes from.
pub fn llama_permute_rows(rows: usize, n_head: usize) -> Vec<usize> {
    // reshape(n_head, 2, half, ...) .swapaxes(1, 2) → out[h][i][j] = in[h][j][i]
    let per = rows / n_head;
    let half = per / 2;
    let mut src = Vec::with_capacity(rows);
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                src.push(h * per + j * half + i);
            }
        }
    }
    src
}
