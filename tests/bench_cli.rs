//! End-to-end tests of `pith bench` on the default model: the JSON report's structure and
//! values, the model size and parameter count against the Python `gguf` package, the
//! markdown table, and the error for an empty test plan.

use std::path::PathBuf;
use std::process::{Command, Output};

fn pith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pith"))
        .args(args)
        .output()
        .expect("run pith")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The default model, fetched through the catalog on first use.
fn model() -> PathBuf {
    pith_models::fetch::resolve_model(None)
        .unwrap_or_else(|e| panic!("the default model is not available: {e}"))
}

/// Tensor data bytes and element count of a GGUF file, as the Python `gguf` package
/// reads them.
fn gguf_py_size_and_params(path: &std::path::Path) -> (u64, u64) {
    let script = "import sys, gguf\n\
                  r = gguf.GGUFReader(sys.argv[1])\n\
                  print(sum(int(t.n_bytes) for t in r.tensors), sum(int(t.n_elements) for t in r.tensors))";
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 must be installed (with `pip install gguf==0.19.0 numpy`)");
    assert!(
        o.status.success(),
        "python3 with the `gguf` package is needed (pip install gguf==0.19.0 numpy): {}",
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    let mut it = out
        .split_whitespace()
        .map(|s| s.parse::<u64>().expect("int"));
    (it.next().expect("size"), it.next().expect("params"))
}

fn positive_finite(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x} is not positive");
    x
}

#[test]
fn json_report_has_every_test_and_sane_values() {
    let m = model();
    let m = m.to_str().expect("utf-8 path");
    let o = pith(&[
        "bench", "-m", m, "-p", "16", "-n", "4", "-r", "2", "-t", "1,2", "--json",
    ]);
    assert!(o.status.success(), "pith bench failed: {}", text(&o.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let rows = rows.as_array().expect("a JSON array");
    let got: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["n_threads"].as_u64().unwrap(),
                r["test"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(1, "pp16"), (1, "tg4"), (2, "pp16"), (2, "tg4")]);

    let (size, params) = gguf_py_size_and_params(std::path::Path::new(m));
    for r in rows {
        assert_eq!(r["model_filename"], m);
        assert_eq!(r["model_type"], "gemma3");
        assert_eq!(r["model_size"].as_u64(), Some(size), "{r}");
        assert_eq!(r["model_n_params"].as_u64(), Some(params), "{r}");
        assert_eq!(r["type_kv"], "f16");
        assert_eq!(r["numerics"], "ggml");
        assert_eq!(r["n_depth"], 0);
        let avg = positive_finite(r, "avg_ts");
        let sd = r["stddev_ts"].as_f64().expect("stddev_ts");
        assert!(sd.is_finite() && sd >= 0.0);
        positive_finite(r, "load_time_s");
        let ttft = positive_finite(r, "ttft_ms");
        let rss = positive_finite(r, "peak_rss_mib");
        // The model is memory-mapped and read in full by a forward pass: the peak RSS
        // must be at least most of its tensor data.
        assert!(rss * 1024.0 * 1024.0 > 0.5 * size as f64, "rss {rss} MiB");
        let ts = r["samples_ts"].as_array().expect("samples_ts");
        let ns = r["samples_ns"].as_array().expect("samples_ns");
        assert_eq!((ts.len(), ns.len()), (2, 2));
        let n_tokens = (r["n_prompt"].as_u64().unwrap() + r["n_gen"].as_u64().unwrap()) as f64;
        for (t, n) in ts.iter().zip(ns) {
            let (t, n) = (t.as_f64().unwrap(), n.as_u64().unwrap() as f64);
            assert!((t - n_tokens * 1e9 / n).abs() <= 1e-6 * t, "{t} vs {n} ns");
        }
        let mean = ts.iter().map(|t| t.as_f64().unwrap()).sum::<f64>() / 2.0;
        assert!((avg - mean).abs() <= 1e-9 * mean);
        // Time to first token cannot exceed one repetition's whole time.
        let slowest = ns.iter().map(|n| n.as_u64().unwrap()).max().unwrap() as f64;
        assert!(
            ttft * 1e6 <= slowest * 1.0001,
            "ttft {ttft} ms > {slowest} ns"
        );
    }
}

#[test]
fn markdown_report_with_depth_and_pg() {
    let m = model();
    let m = m.to_str().expect("utf-8 path");
    let o = pith(&[
        "bench", "-m", m, "-p", "0", "-n", "0", "-pg", "8,2", "-d", "8", "-r", "1", "-t", "1",
    ]);
    assert!(o.status.success(), "pith bench failed: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "header, rule, one row: {out}");
    assert!(lines[0].starts_with("| model | size | params | threads | test | t/s |"));
    let cells: Vec<&str> = lines[2].split('|').map(str::trim).collect();
    assert_eq!(cells[1], "gemma3");
    assert_eq!(cells[4], "1");
    assert_eq!(cells[5], "pp8+tg2 @ d8");
    let (mean, sd) = cells[6].split_once(" ± ").expect("mean ± sd");
    assert!(mean.parse::<f64>().unwrap() > 0.0);
    assert_eq!(
        sd.parse::<f64>().unwrap(),
        0.0,
        "one repetition has no spread"
    );
}

#[test]
fn empty_plan_is_a_one_line_error() {
    let o = pith(&["bench", "-p", "0", "-n", "0"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: nothing to benchmark"), "{err}");
}
