//! A count of the bytes redaction's own scans read, so tests can hold the work linear in the
//! input without timing anything. Outside tests it compiles to nothing.

#[cfg(test)]
thread_local! {
    static BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Records that a scan read `n` bytes.
#[inline(always)]
pub fn add(n: usize) {
    #[cfg(test)]
    BYTES.with(|c| c.set(c.get() + n as u64));
    #[cfg(not(test))]
    let _ = n;
}

/// Bytes recorded on this thread since the last `take`, and reset.
#[cfg(test)]
pub fn take() -> u64 {
    BYTES.with(|c| c.replace(0))
}
