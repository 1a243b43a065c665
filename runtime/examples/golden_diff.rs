//! Prints how pith's next-token log-probs and greedy continuations compare with the
//! llama.cpp golden file (a development aid; the assertions live in tests/).
use pith_runtime::model::{Logits, Model, ModelOptions};
use pith_runtime::sampler::log_softmax_top_k;

fn main() {
    let model_path = std::env::args().nth(1).expect("model path");
    let golden = std::env::args().nth(2).expect("golden json");
    let steps: usize = std::env::args().nth(3).map_or(32, |s| s.parse().unwrap());
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let m = Model::open(&model_path, &ModelOptions::default()).unwrap();
    for case in g["cases"].as_array().unwrap() {
        let ids: Vec<u32> = case["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let kv = if std::env::var_os("PITH_KV32").is_some() { pith_runtime::model::KvType::F32 } else { pith_runtime::model::KvType::F16 };
        let mut cache = m.new_cache_typed(ids.len() + steps + 1, kv);
        let mut logits = m.forward(&mut cache, &ids, Logits::Last).unwrap();
        let ours = log_softmax_top_k(&logits, m.config().n_vocab);
        let lp = |id: u32| ours.iter().find(|(i, _)| *i == id).unwrap().1;
        let mut maxd = 0f32;
        let top: Vec<(u32, f32)> = case["top"].as_array().unwrap().iter().take(5).map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap() as f32)).collect();
        for &(id, l) in &top { maxd = maxd.max((lp(id) - l).abs()); }
        let our5: Vec<u32> = ours[..5].iter().map(|p| p.0).collect();
        let their5: Vec<u32> = top.iter().map(|p| p.0).collect();
        let greedy: Vec<u32> = case["greedy_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let mut out = vec![];
        for _ in 0..steps.min(greedy.len()) {
            let t = pith_runtime::sampler::argmax(&logits).unwrap();
            out.push(t);
            logits = m.forward(&mut cache, &[t], Logits::Last).unwrap();
        }
        let div = out.iter().zip(&greedy).position(|(a, b)| a != b);
        if std::env::var_os("V").is_some() { println!("ours {:?}\ntheirs {:?}", &ours[..5], top); }
        println!("{:22} n={:4} top5 {} maxd {:.4} greedy_div {:?}", case["name"].as_str().unwrap(), ids.len(), if our5 == their5 { "same" } else { "DIFF" }, maxd, div);
    }
}
