//! The node's resource use for heartbeats: load average and memory, from `/proc`. Where those
//! are missing (not Linux), the figures are zero.

/// What a heartbeat says of the node.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub cpu_load_1m: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
}

/// Reads the node's resource use now.
pub fn sample() -> Usage {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse(&load, &meminfo)
}

/// Reads `/proc/loadavg` and `/proc/meminfo` texts; used = total − available.
pub fn parse(loadavg: &str, meminfo: &str) -> Usage {
    let kib = |key: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let total = kib("MemTotal:") * 1024;
    let available = kib("MemAvailable:") * 1024;
    Usage {
        cpu_load_1m: loadavg
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        memory_used_bytes: total.saturating_sub(available),
        memory_total_bytes: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_and_memory_are_read_from_proc_texts() {
        let usage = parse(
            "0.42 0.30 0.25 2/345 6789\n",
            "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    6000000 kB\n",
        );
        assert_eq!(usage.cpu_load_1m, 0.42);
        assert_eq!(usage.memory_total_bytes, 8_000_000 * 1024);
        assert_eq!(usage.memory_used_bytes, 2_000_000 * 1024);
        assert_eq!(parse("", ""), Usage::default());
    }

    #[test]
    fn this_machine_reports_its_memory() {
        let usage = sample();
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(usage.memory_total_bytes > 0);
            assert!(usage.memory_used_bytes <= usage.memory_total_bytes);
        }
    }
}
