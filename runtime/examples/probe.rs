use pith_runtime::model::{Logits, Model, ModelOptions};
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let ids: Vec<u32> = std::env::args().nth(2).unwrap().split(',').map(|s| s.trim().parse().unwrap()).collect();
    let t0 = std::time::Instant::now();
    let m = Model::open(&path, &ModelOptions::default()).unwrap();
    eprintln!("load {:?}", t0.elapsed());
    let mut cache = m.new_cache(4096);
    let t0 = std::time::Instant::now();
    let mut logits = m.forward(&mut cache, &ids, Logits::Last).unwrap();
    eprintln!("prefill {:?}", t0.elapsed());
    let mut out = vec![];
    for _ in 0..16 {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if out.is_empty() { for &i in &idx[..5] { println!("{} {:.4}", i, logits[i] - lse); } }
        out.push(idx[0] as u32);
        let t0 = std::time::Instant::now();
        logits = m.forward(&mut cache, &[idx[0] as u32], Logits::Last).unwrap();
        if out.len() == 2 { eprintln!("step {:?}", t0.elapsed()); }
    }
    println!("{:?}", out);
}
