//! A global allocator for the `nc-vqvae` binary that keeps freed large blocks for reuse.
//!
//! Burn's CPU backend allocates a fresh buffer for most tensor results. glibc serves blocks above
//! its mmap threshold (at most 32 MiB) with a new `mmap` each time and unmaps them on free, so
//! every 4096 × 4096 activation, gradient and AdamW moment of the NC-VQVAE projector (64 MiB
//! each) costs 16,384 page faults and a kernel page clear on first touch. Profiles of the
//! stage-1 NC-VQVAE step showed a quarter of the time in the kernel for that reason (see
//! docs/benchmarks.md). [`LargeBlockCache`] wraps the system allocator and keeps up to
//! [`SLOTS`] freed blocks of at least [`MIN_CACHED`] bytes (at most [`MAX_CACHED_BYTES`] in all),
//! handing them back for requests of the same size and alignment. Smaller requests go straight
//! to the system allocator. The cache holds no more than a training step's own peak, since only
//! blocks the program just freed are kept.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks smaller than this go to the system allocator unchanged (16 MiB).
pub(crate) const MIN_CACHED: usize = 16 << 20;
/// The most bytes the cache keeps (6 GiB: the im2col matrices and gradients of a 128 × 500 stage-1
/// step are 100–180 MiB each).
pub(crate) const MAX_CACHED_BYTES: usize = 6 << 30;
/// The most blocks the cache keeps.
pub(crate) const SLOTS: usize = 96;

/// One kept block: its address, size, alignment and when it was kept (`ptr == 0`: empty slot).
#[derive(Clone, Copy)]
struct Slot {
    ptr: usize,
    size: usize,
    align: usize,
    age: u64,
}

const EMPTY: Slot = Slot { ptr: 0, size: 0, align: 0, age: 0 };

struct Cache {
    slots: [Slot; SLOTS],
    bytes: usize,
    clock: u64,
}

/// The system allocator with a cache of freed large blocks (see the module docs). Never
/// allocates inside its own lock.
pub(crate) struct LargeBlockCache {
    cache: Mutex<Cache>,
}

impl LargeBlockCache {
    /// An empty cache.
    pub(crate) const fn new() -> Self {
        Self { cache: Mutex::new(Cache { slots: [EMPTY; SLOTS], bytes: 0, clock: 0 }) }
    }

    /// Takes a kept block of exactly `layout`'s size and alignment, if there is one.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let mut cache = self.cache.lock().ok()?;
        let slot = cache
            .slots
            .iter_mut()
            .find(|s| s.ptr != 0 && s.size == layout.size() && s.align == layout.align())?;
        let ptr = std::mem::replace(slot, EMPTY).ptr;
        cache.bytes -= layout.size();
        Some(ptr as *mut u8)
    }

    /// Keeps a freed block, making room by handing the oldest kept blocks back to the system
    /// (a run moves through phases whose tensors have other sizes, and the cache must follow);
    /// returns whether it was kept.
    fn keep(&self, ptr: *mut u8, layout: Layout) -> bool {
        if layout.size() > MAX_CACHED_BYTES {
            return false;
        }
        let mut evicted = [EMPTY; SLOTS];
        let kept = {
            let Ok(mut cache) = self.cache.lock() else { return false };
            let mut n = 0;
            while cache.bytes + layout.size() > MAX_CACHED_BYTES
                || cache.slots.iter().all(|s| s.ptr != 0)
            {
                let Some(oldest) =
                    cache.slots.iter_mut().filter(|s| s.ptr != 0).min_by_key(|s| s.age)
                else {
                    break;
                };
                evicted[n] = std::mem::replace(oldest, EMPTY);
                cache.bytes -= evicted[n].size;
                n += 1;
            }
            cache.clock += 1;
            let age = cache.clock;
            match cache.slots.iter_mut().find(|s| s.ptr == 0) {
                Some(slot) => {
                    *slot =
                        Slot { ptr: ptr as usize, size: layout.size(), align: layout.align(), age };
                    cache.bytes += layout.size();
                    true
                }
                None => false,
            }
        };
        for slot in evicted.iter().filter(|s| s.ptr != 0) {
            // SAFETY: a kept block was allocated by `System` with exactly this size and alignment,
            // and is owned by the cache alone; it has just been removed from the cache.
            unsafe {
                System.dealloc(
                    slot.ptr as *mut u8,
                    Layout::from_size_align_unchecked(slot.size, slot.align),
                )
            };
        }
        kept
    }

    /// Hands every kept block back to the system allocator.
    pub(crate) fn release(&self) {
        let kept = {
            let Ok(mut cache) = self.cache.lock() else { return };
            cache.bytes = 0;
            std::mem::replace(&mut cache.slots, [EMPTY; SLOTS])
        };
        for slot in kept.iter().filter(|s| s.ptr != 0) {
            // SAFETY: as in `keep`: a kept block came from `System` with exactly this size and
            // alignment, and the cache, its only owner, has just let go of it.
            unsafe {
                System.dealloc(
                    slot.ptr as *mut u8,
                    Layout::from_size_align_unchecked(slot.size, slot.align),
                )
            };
        }
    }

    /// Number of blocks and bytes kept now.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> (usize, usize) {
        self.cache
            .lock()
            .map(|c| (c.slots.iter().filter(|s| s.ptr != 0).count(), c.bytes))
            .unwrap_or((0, 0))
    }
}

impl Default for LargeBlockCache {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out is either fresh from `System` or a block of exactly the same
// size and alignment that was allocated by `System` through this allocator and since freed; kept
// blocks are owned by the cache alone until handed out again.
unsafe impl GlobalAlloc for LargeBlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_CACHED
            && let Some(ptr) = self.take(layout)
        {
            return ptr;
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_CACHED
            && let Some(ptr) = self.take(layout)
        {
            // SAFETY: the block holds `layout.size()` writable bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN_CACHED && self.keep(ptr, layout) {
            return;
        }
        // SAFETY: `ptr` was allocated by `System` with `layout` (blocks from the cache came from
        // `System` with the same layout).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < MIN_CACHED && new_size < MIN_CACHED {
            // SAFETY: forwarded; neither the old nor the new block is ever cached.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` is non-zero and, rounded up to `layout.align()`, does not overflow
        // (the caller's contract for `realloc`).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Returns the free memory glibc keeps (the heap's free top and free pages inside it, which
/// [`tune_system_allocator`] tells it to keep) to the kernel: `malloc_trim(0)`. Nothing on other
/// C libraries. `bench` calls it between cases so that each case's peak resident memory is
/// its own.
pub(crate) fn trim_system_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: `malloc_trim` only releases memory glibc holds free; any thread may call it.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// glibc's `mallopt` settings for a training process (the `nc-vqvae` binary calls this first).
///
/// glibc serves a block above its mmap threshold with a fresh `mmap`, and returns the top of its
/// heap to the kernel once more than `M_TRIM_THRESHOLD` is free there; either way the next tensor
/// of that size pays a page fault and a kernel page clear per 4 KiB on first touch. Burn's CPU
/// backend allocates a new buffer for most results, so a stage-1 step meets that for every im2col
/// matrix and its gradient (1–16 MiB each at the small shapes): measured, the GEMM of a convolution's
/// input gradient ran at 34 GFLOP/s with glibc's defaults and 99 GFLOP/s without the fresh pages; on
/// whole steps the effect was within run-to-run noise in one A/B pair
/// (docs/benchmarks.md). Blocks above 32 MiB are kept by [`LargeBlockCache`]. The memory stays
/// with the process for reuse, bounded by the step's own peak. Does nothing on other C libraries,
/// or when `NC_VQVAE_GLIBC_DEFAULTS` is set (for A/B measurements).
pub(crate) fn tune_system_allocator() {
    if std::env::var_os("NC_VQVAE_GLIBC_DEFAULTS").is_some() {
        return; // for A/B measurements of this setting
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: `mallopt` only changes glibc's tuning parameters; it is called before any thread
        // of ours exists. Both values are in the ranges glibc documents (the mmap threshold may be
        // at most 32 MiB on 64-bit systems).
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, std::ffi::c_int::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_large_block_is_reused_and_small_ones_are_not_kept() {
        let a = LargeBlockCache::new();
        let big = Layout::from_size_align(MIN_CACHED + 4096, 64).unwrap();
        unsafe {
            let p = a.alloc(big);
            assert!(!p.is_null());
            p.write_bytes(7, big.size());
            a.dealloc(p, big);
            assert_eq!(a.kept(), (1, big.size()));
            // Same size and alignment: the same block, zeroed on request.
            let q = a.alloc_zeroed(big);
            assert_eq!(q, p);
            assert!(std::slice::from_raw_parts(q, big.size()).iter().all(|&b| b == 0));
            assert_eq!(a.kept(), (0, 0));
            // Another size is not served from the cache.
            a.dealloc(q, big);
            let other = Layout::from_size_align(MIN_CACHED + 8192, 64).unwrap();
            let r = a.alloc(other);
            assert_ne!(r, q);
            assert_eq!(a.kept().0, 1);
            // realloc keeps the contents.
            r.write_bytes(3, other.size());
            let s = a.realloc(r, other, other.size() * 2);
            assert_eq!(*s, 3);
            assert_eq!(*s.add(other.size() - 1), 3);
            a.dealloc(s, Layout::from_size_align(other.size() * 2, 64).unwrap());
            // Kept now: the blocks of `big`, `other` (freed by realloc) and the doubled one.
            assert_eq!(a.kept().0, 3);
            let small = Layout::from_size_align(1024, 8).unwrap();
            let t = a.alloc(small);
            a.dealloc(t, small);
            assert_eq!(a.kept().0, 3, "small blocks are never kept");
            // Released, nothing is kept, and the cache keeps blocks again afterwards.
            a.release();
            assert_eq!(a.kept(), (0, 0));
            let u = a.alloc(big);
            a.dealloc(u, big);
            assert_eq!(a.kept(), (1, big.size()));
            a.release();
            assert_eq!(a.kept(), (0, 0));
        }
        trim_system_allocator();
    }

    #[test]
    fn the_cache_stops_at_its_byte_limit() {
        let a = LargeBlockCache::new();
        let big = Layout::from_size_align(MAX_CACHED_BYTES / 2 + 1, 64).unwrap();
        unsafe {
            // Not touched, so the address space is reserved but no memory is used.
            let p = a.alloc(big);
            let q = a.alloc(big);
            a.dealloc(p, big);
            a.dealloc(q, big);
        }
        assert_eq!(a.kept(), (1, big.size()));
    }

    #[test]
    fn when_full_the_oldest_blocks_make_room_for_new_sizes() {
        let a = LargeBlockCache::new();
        let layout = |i: usize| Layout::from_size_align(MIN_CACHED + 4096 * i, 64).unwrap();
        unsafe {
            // Not touched: address space only.
            let blocks: Vec<_> = (0..SLOTS + 2).map(|i| (a.alloc(layout(i)), layout(i))).collect();
            for &(p, l) in &blocks {
                a.dealloc(p, l);
            }
            assert_eq!(a.kept().0, SLOTS);
            // The two oldest went back to the system, the newest are served from the cache.
            let newest = a.alloc(layout(SLOTS + 1));
            assert_eq!(newest, blocks[SLOTS + 1].0);
            assert_eq!(a.kept().0, SLOTS - 1);
            a.dealloc(newest, layout(SLOTS + 1));
        }
    }
}
