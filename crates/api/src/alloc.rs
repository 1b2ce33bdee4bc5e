//! The allocator of mars-rs's own programs (the `mars` tool, the examples
//! and benches). The library sets none: a program that embeds it chooses.
//!
//! mimalloc rather than the system allocator: glibc hands every buffer over
//! its mmap threshold (a whole parquet row group's column, a shuffle piece)
//! fresh pages from the kernel, faulted in and zeroed on each use (TPC-H Q3
//! 0.155 s -> 0.092 s, Q18 0.19 -> 0.13 on a 2-core machine). v2, not v3:
//! v3 keeps more freed pages (W4 out of core peaked at 109 MiB for a 76 MiB
//! `memory_limit`, v2 at 85-89 MiB).
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: mars::alloc::MiMalloc = mars::alloc::MiMalloc;
//!
//! fn main() {
//!     mars::alloc::keep_freed_pages();
//! }
//! ```

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h` of v2: the option after
/// `mi_option_eager_commit_delay`); libmimalloc-sys names no constant for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_eager_commit_delay + 1;

/// How long freed pages stay with the process before mimalloc returns them
/// to the kernel, in milliseconds.
pub const KEEP_FREED_MS: i64 = 1000;

/// Have mimalloc keep freed pages [`KEEP_FREED_MS`] before returning them
/// to the kernel (its default is 10 ms), unless `MIMALLOC_PURGE_DELAY` says
/// otherwise. A query frees and allocates row-group-sized buffers all along:
/// pages returned after 10 ms come back as fresh pages the kernel zeroes
/// again (9-12% of TPC-H Q3 and Q5's time on this machine). Held a second,
/// they are reused; W4 out of core still peaks at 89 MiB of a 95 MiB bound.
/// Only has an effect when [`MiMalloc`] is the global allocator.
#[allow(unsafe_code)]
pub fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads when it purges
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, KEEP_FREED_MS as _) };
    }
}
