//! Memory accounting for small boards: how much a model and its KV cache need, how much
//! the machine has, and keeping weights resident.

use crate::gguf::{GgufError, GgufFile};

/// Bytes that can be allocated without swapping: `MemAvailable` from `/proc/meminfo`,
/// lowered to the headroom under the cgroup (v1 or v2) memory limit when the
/// process runs in a memory-limited container. `None` where unknown (non-Linux).
pub fn available_bytes() -> Option<u64> {
    let host = proc_kib("/proc/meminfo", "MemAvailable")?.checked_mul(1024)?;
    Some(match cgroup_headroom() {
        Some(h) => host.min(h),
        None => host,
    })
}

/// Resident set size of this process (`VmRSS`), in MiB; `None` off Linux.
pub fn rss_mib() -> Option<f64> {
    proc_kib("/proc/self/status", "VmRSS").map(|kb| kb as f64 / 1024.0)
}

/// Peak resident set size of this process so far (`VmHWM`), in MiB; `None` off Linux.
pub fn peak_rss_mib() -> Option<f64> {
    proc_kib("/proc/self/status", "VmHWM").map(|kb| kb as f64 / 1024.0)
}

/// The value of a `Key:   N kB` line of a `/proc` file.
fn proc_kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Headroom under this process's cgroup memory limit, if it has one: v2
/// `memory.max - memory.current`, or v1 `memory.limit_in_bytes - memory.usage_in_bytes`
/// (looked up at the process's cgroup path, then at the mount root, which is what a
/// container with a private cgroup namespace sees).
fn cgroup_headroom() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = std::path::Path::new("/sys/fs/cgroup");
    let read = |p: std::path::PathBuf| -> Option<u64> {
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    };
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = rel.trim_start_matches('/');
        let (base, max_file, cur_file) = match controllers {
            "" => (root.to_path_buf(), "memory.max", "memory.current"),
            c if c.split(',').any(|c| c == "memory") => (
                root.join("memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            ),
            _ => continue,
        };
        for dir in [base.join(rel), base.clone()] {
            // "max" (v2, no limit) does not parse: no limit.
            if let (Some(max), Some(cur)) = (read(dir.join(max_file)), read(dir.join(cur_file))) {
                return Some(max.saturating_sub(cur));
            }
        }
    }
    None
}

/// A refusal: the model and its KV cache do not fit.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "not enough memory: {needed_mib} MiB needed (model {model_mib} MiB + KV cache {kv_mib} MiB for a {n_ctx}-token context), {available_mib} MiB available; lower --ctx (each token costs {per_token} bytes) or use a smaller model"
)]
pub struct OutOfMemory {
    pub needed_mib: u64,
    pub model_mib: u64,
    pub kv_mib: u64,
    pub available_mib: u64,
    pub n_ctx: usize,
    pub per_token: u64,
}

/// Checks that `model_bytes` of weights plus `kv_per_token × n_ctx` bytes of KV cache fit
/// in `available` bytes. Weights that are memory-mapped count too: they must stay in the
/// page cache for decoding not to read the disk on every token.
pub fn check_fits(
    model_bytes: u64,
    kv_per_token: u64,
    n_ctx: usize,
    available: u64,
) -> Result<(), OutOfMemory> {
    let kv = kv_per_token.saturating_mul(n_ctx as u64);
    let needed = model_bytes.saturating_add(kv);
    if needed > available {
        const MIB: u64 = 1 << 20;
        return Err(OutOfMemory {
            needed_mib: needed.div_ceil(MIB),
            model_mib: model_bytes.div_ceil(MIB),
            kv_mib: kv.div_ceil(MIB),
            available_mib: available / MIB,
            n_ctx,
            per_token: kv_per_token,
        });
    }
    Ok(())
}

/// How the GGUF file is brought into memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadMode {
    /// Read the whole file into memory instead of mapping it (for filesystems where mmap
    /// is slow or unavailable). Default false: memory-map.
    pub no_mmap: bool,
    /// Lock the mapped weights in RAM (`mlock`) so they are never paged out. Default false.
    /// Needs `RLIMIT_MEMLOCK` (`ulimit -l`) to be large enough.
    pub mlock: bool,
}

/// Errors of [`open_with`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: cannot lock {bytes} bytes in memory (raise `ulimit -l`, or run without --mlock): {source}")]
    Mlock {
        path: String,
        bytes: u64,
        source: std::io::Error,
    },
}

/// Opens a GGUF file as `mode` says.
pub fn open_with(path: &std::path::Path, mode: LoadMode) -> Result<GgufFile, LoadError> {
    let file = if mode.no_mmap {
        GgufFile::read(path)?
    } else {
        GgufFile::open(path)?
    };
    if mode.mlock {
        file.lock().map_err(|source| LoadError::Mlock {
            path: path.display().to_string(),
            bytes: file.len(),
            source,
        })?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_figures() {
        let e = check_fits(300 << 20, 36864, 1 << 20, 1 << 30).unwrap_err();
        assert_eq!(e.model_mib, 300);
        assert_eq!(e.kv_mib, 36864);
        assert_eq!(e.needed_mib, 300 + 36864);
        let msg = e.to_string();
        assert!(
            msg.contains("37164 MiB needed") && msg.contains("1024 MiB available"),
            "{msg}"
        );
        assert!(check_fits(300 << 20, 36864, 4096, 1 << 30).is_ok());
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_bytes().unwrap() > 0);
        }
    }
}
