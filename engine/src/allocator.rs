//! The process's allocator: mimalloc, told to hand freed memory back to the OS after 50 ms.
//!
//! mimalloc 3 keeps freed pages for 1 s by default before it returns them ("purging"). Ingest
//! frees a few MiB of column buffers with every sealed batch, so that second holds tens of
//! MiB the process no longer uses (the live heap at the ingest benchmark's peak is about 80 MB,
//! its RSS 240-270 MB with the default); 50 ms keeps the peak under 200 MB for about 10 us of
//! CPU per event (measurements in docs/benchmarks.md). `MIMALLOC_PURGE_DELAY` in the
//! environment still wins, so an operator can choose another trade-off.
//!
//! This is the crate's only `unsafe`: one call of mimalloc's documented `mi_option_set`.

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (include/mimalloc.h); the sys crate
/// has no constant for it. A test checks the index by its documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds a freed page stays with the allocator before it goes back to the OS.
pub const PURGE_DELAY_MS: i64 = 50;

/// Applies [`PURGE_DELAY_MS`] unless the environment sets a delay of its own.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set_purge_delay(PURGE_DELAY_MS);
    }
}

fn set_purge_delay(ms: i64) {
    // SAFETY: `mi_option_set` only stores the value in mimalloc's option table (an atomic); it
    // may be called at any time from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms as std::ffi::c_long);
    }
}

/// The purge delay mimalloc uses now.
pub fn purge_delay() -> i64 {
    // SAFETY: `mi_option_get` reads mimalloc's option table; callable at any time.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    value as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_index_is_the_purge_delay_and_setting_it_sticks() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // mimalloc 3's documented default for purge_delay; no neighbouring option has it.
            assert_eq!(purge_delay(), 1000);
        }
        set_purge_delay(PURGE_DELAY_MS);
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
