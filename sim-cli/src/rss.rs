//! Peak resident memory of a process, from the OS.

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
