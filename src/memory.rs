//! Handing memory back to the OS: the bottom of the house, used by the worker (after a job, at unload) and by
//! the mailbox's reader (the caller's thread, which read the texts in). Knows nothing of models or requests.

/// Hands the calling thread's free allocator pages back to the OS (the system allocator does its own).
pub fn release_free_memory() {
    // SAFETY: mi_collect only walks the calling thread's heap and the process's abandoned pages.
    #[cfg(not(feature = "system-allocator"))]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}
