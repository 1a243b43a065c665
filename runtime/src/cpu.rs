//! CPU topology for the default thread count.
//!
//! Like llama.cpp (`cpu_get_num_physical_cores`), the default is one worker per physical
//! core: two hyper-threads of one core share its SIMD units, and a second thread on a
//! core slows the bandwidth-bound decode down rather than up.

use std::collections::HashSet;

/// Physical cores this process may run on: distinct `(package, core)` pairs of the CPUs
/// in its affinity set on Linux, capped by [`std::thread::available_parallelism`] (which
/// honours cgroup quotas); elsewhere, or when the topology cannot be read,
/// `available_parallelism` itself. Never 0.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    linux_physical_cores()
        .map_or(logical, |p| p.min(logical))
        .max(1)
}

#[cfg(target_os = "linux")]
fn linux_physical_cores() -> Option<usize> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut cores = HashSet::new();
    for cpu in parse_cpu_list(online.trim())? {
        let topo = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let read = |f: &str| {
            std::fs::read_to_string(format!("{topo}/{f}"))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
        };
        cores.insert((read("physical_package_id")?, read("core_id")?));
    }
    (!cores.is_empty()).then_some(cores.len())
}

#[cfg(not(target_os = "linux"))]
fn linux_physical_cores() -> Option<usize> {
    None
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn physical_cores_is_between_one_and_the_logical_count() {
        let p = physical_cores();
        let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!((1..=logical).contains(&p), "{p} of {logical}");
    }
}
