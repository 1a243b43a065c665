//! pith's per-tensor type choice against llama-quantize's, tensor by tensor.
//!
//! `tests/golden/quantize/mixture.json` holds, for the real Gemma 3 270M (as F32) and the
//! small `-f32` test models of every architecture, the types `llama-quantize` wrote for
//! each file type (see `tests/py/convert_mixture_golden.py` for the command). This runs
//! `mixture::plan` over the same tensor lists and requires the identical type for every
//! tensor.

use std::path::PathBuf;

use pith_quantize::mixture::{
    llama_order, parse_tensor_type, plan, FileType, MixtureOptions, ModelShape, TensorIn,
};
use serde_json::Value;

fn golden() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/quantize/mixture.json");
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).expect("valid JSON")
}

#[test]
fn mixtures_match_llama_quantize() {
    let g = golden();
    let models = g["models"].as_object().expect("models");
    assert!(
        models.len() >= 6,
        "golden covers the real model and the arch twins"
    );
    let mut checked = 0;
    for (name, m) in models {
        let shape = ModelShape {
            n_layer: m["shape"]["n_layer"].as_u64().unwrap() as usize,
            n_head: m["shape"]["n_head"].as_u64().unwrap() as usize,
            n_head_kv: m["shape"]["n_head_kv"].as_u64().unwrap() as usize,
        };
        let tensors: Vec<TensorIn> = m["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| TensorIn {
                name: t[0].as_str().unwrap().into(),
                dims: t[1]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap())
                    .collect(),
                ty: parse_tensor_type(t[2].as_str().unwrap()).unwrap(),
            })
            .collect();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let ordered: Vec<TensorIn> = llama_order(&names)
            .into_iter()
            .map(|i| tensors[i].clone())
            .collect();
        for (ty_name, expected) in m["types"].as_object().unwrap() {
            let ftype = FileType::parse(ty_name).unwrap();
            let got = plan(&ordered, shape, ftype, &MixtureOptions::default());
            let mut mismatches = Vec::new();
            for (t, ty) in ordered.iter().zip(&got) {
                let want = expected[&t.name].as_str().unwrap_or("<absent>");
                if ty.name() != want {
                    mismatches.push(format!("{}: pith {} llama.cpp {want}", t.name, ty.name()));
                }
            }
            assert_eq!(
                expected.as_object().unwrap().len(),
                ordered.len(),
                "{name} {ty_name}: tensor count"
            );
            assert!(
                mismatches.is_empty(),
                "{name} {ty_name}:\n{}",
                mismatches.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} (model, type) pairs checked");
}

#[test]
fn overrides_follow_llama_quantize_precedence() {
    // --token-embedding-type wins over the tied-output rule; --tensor-type wins over the
    // mixture but is still subject to the row-length fallback (llama_tensor_get_type).
    let t = |name: &str, dims: &[u64]| TensorIn {
        name: name.into(),
        dims: dims.to_vec(),
        ty: pith_quantize::GgmlType::F32,
    };
    let tensors = vec![
        t("token_embd.weight", &[512, 1000]),
        t("blk.0.attn_v.weight", &[640, 256]),
        t("blk.0.attn_norm.weight", &[512]),
    ];
    let mut o = MixtureOptions {
        token_embedding_type: Some(pith_quantize::GgmlType::Q8_0),
        ..Default::default()
    };
    o.tensor_types
        .push(MixtureOptions::parse_tensor_type_spec("attn_v=q4_k").unwrap());
    let shape = ModelShape {
        n_layer: 1,
        n_head: 4,
        n_head_kv: 1,
    };
    let got = plan(&tensors, shape, FileType::Q4KM, &o);
    use pith_quantize::GgmlType as G;
    assert_eq!(got, vec![G::Q8_0, G::Q5_0, G::F32]);
}
