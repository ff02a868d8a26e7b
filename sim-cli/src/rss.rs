//! Peak resident memory and CPU time of a process, from the OS.

/// The peak resident set size (`VmHWM` in `/proc/<pid>/status`) of
/// process `pid`, in MiB, or `None` where the OS does not tell.
pub(crate) fn peak_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The CPU time (user and system, all threads) process `pid` has used so
/// far, in seconds (`utime` + `stime` in `/proc/<pid>/stat`), or `None`
/// where the OS does not tell.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // the fields after it start with the state (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = f64::from(u32::try_from(rustix::param::clock_ticks_per_second()).ok()?);
    Some((utime + stime) / ticks)
}

/// The CPU time (user and system) of this process's children that it
/// has waited for, in seconds (`cutime` + `cstime` in `/proc/self/stat`,
/// what `getrusage(RUSAGE_CHILDREN)` reports), or `None` where the OS does
/// not tell. The difference around one child's run and wait is that
/// child's CPU time, all its threads included.
pub(crate) fn children_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    let ticks = f64::from(u32::try_from(rustix::param::clock_ticks_per_second()).ok()?);
    Some((cutime + cstime) / ticks)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_some_cpu_and_more_after_work() {
        let pid = std::process::id();
        let before = super::cpu_seconds(pid).expect("linux /proc");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = super::cpu_seconds(pid).expect("linux /proc");
        assert!(after > before, "{before} → {after}");
    }

    #[test]
    fn a_waited_child_s_cpu_time_is_counted() {
        let before = super::children_cpu_seconds().expect("linux /proc");
        // A child that burns about half a second of CPU.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let after = super::children_cpu_seconds().expect("linux /proc");
        assert!(after > before, "{before} → {after}");
    }
}
