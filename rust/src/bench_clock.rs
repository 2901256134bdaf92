//! The clock of the ignored speed tests: CPU seconds of the calling thread.

/// CPU seconds this thread has run (Linux schedstat); wall time where unavailable.
pub fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    match stat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse::<f64>().ok())
    {
        Some(ns) => ns / 1e9,
        None => std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0.0, |d| d.as_secs_f64()),
    }
}
