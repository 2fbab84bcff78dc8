//! Tuning of the C allocator (glibc malloc) so memory a large request used goes back to the
//! system once the request is done.
//!
//! glibc serves a large allocation from `mmap` (returned to the system by `free`) only while it
//! is above a threshold that rises to the size of every mmapped block freed, up to 32 MiB: after
//! one 2.5 MB object had been handled, every later one was carved from the heap arenas, whose
//! free space glibc keeps. Eight such writes, a LIST and their deletion left the server ~100 MB
//! larger than before. Fixing the threshold keeps large buffers (request bodies, decoded
//! objects, encoded lists) in their own mappings; a matching trim threshold gives back the
//! top of the heap as soon as that much is free. Measured in tests/memory.rs.

/// Allocations of at least this many bytes get their own mapping. glibc's own starting value:
/// small objects (the bulk of a server's allocations) stay in the arenas, where reuse is fast.
pub const DEFAULT_MMAP_THRESHOLD: i32 = 128 << 10;
/// Free space at the top of a heap beyond this is returned to the system at once.
pub const DEFAULT_TRIM_THRESHOLD: i32 = 128 << 10;

/// Applies the tuning, unless `GLIBC_TUNABLES` is set: an operator's own malloc settings win.
pub fn tune() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD);
    }
}
