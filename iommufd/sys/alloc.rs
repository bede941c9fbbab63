// SPDX-License-Identifier: GPL-2.0

//! A direct kmalloc allocator for the small objects made and freed on every
//! map and unmap.

use core::{
    alloc::Layout,
    ptr::{without_provenance_mut, NonNull},
};
use kernel::{
    alloc::{allocator::Kmalloc, kbox::Box, kvec::Vec, AllocError, Allocator, Flags, NumaNode},
    bindings,
    prelude::*,
};

/// kmalloc memory, allocated with `kmalloc()` and freed with `kfree()`.
///
/// The kernel crate's [`Kmalloc`] sends every allocation and every free
/// through `krealloc()`, about 30 instructions more per call, and frees
/// even a vector that never allocated that way. This allocator is for the
/// small objects made and freed on every map and unmap (interval-tree
/// nodes, page-table parts, PFN batch buffers). Anything it does not do itself (resizing,
/// alignment above kmalloc's, other flags, a NUMA node) it leaves to
/// [`Kmalloc`], whose memory is the same kmalloc memory.
pub(crate) struct DirectKmalloc;

/// A [`Box`] in [`DirectKmalloc`] memory.
pub(crate) type DBox<T> = Box<T, DirectKmalloc>;
/// A [`Vec`] in [`DirectKmalloc`] memory.
pub(crate) type DVec<T> = Vec<T, DirectKmalloc>;

// SAFETY: Memory from `kmalloc()` stays valid until `kfree()`; new memory
// comes from `kmalloc()` with at least `MIN_ALIGN` alignment (larger
// alignments go to `Kmalloc`), and everything else is `Kmalloc`'s
// `realloc()`, which accepts any kmalloc pointer.
unsafe impl Allocator for DirectKmalloc {
    const MIN_ALIGN: usize = Kmalloc::MIN_ALIGN;

    unsafe fn realloc(
        ptr: Option<NonNull<u8>>,
        layout: Layout,
        old_layout: Layout,
        flags: Flags,
        nid: NumaNode,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let live = ptr.filter(|_| old_layout.size() != 0);
        if layout.size() == 0 {
            if let Some(ptr) = live {
                // SAFETY: By the caller's guarantee `ptr` is a live
                // allocation of this allocator of `old_layout`.
                unsafe { Self::free(ptr, old_layout) };
            }
            let dangling = NonNull::new(without_provenance_mut::<u8>(layout.align()));
            return Ok(NonNull::slice_from_raw_parts(
                dangling.ok_or(AllocError)?,
                0,
            ));
        }
        if live.is_some()
            || layout.align() > Self::MIN_ALIGN
            || flags != GFP_KERNEL
            || nid != NumaNode::NO_NODE
        {
            // SAFETY: The caller's guarantees are the ones `Kmalloc` needs;
            // our allocations are kmalloc memory like its own.
            return unsafe { Kmalloc::realloc(ptr, layout, old_layout, flags, nid) };
        }
        // SAFETY: `__kmalloc_noprof()` (what `kmalloc()` of a size known
        // only at run time calls) may be called with any size.
        let raw = unsafe { bindings::__kmalloc_noprof(layout.size(), bindings::GFP_KERNEL) };
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    unsafe fn free(ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: By the caller's guarantee `ptr` is a live allocation of
            // this allocator, so kmalloc memory.
            unsafe { bindings::kfree(ptr.as_ptr().cast()) };
        }
    }
}

#[kunit_tests(iommufd_rs_sys)]
mod tests {
    use super::*;

    #[test]
    fn direct_kmalloc_allocates_grows_and_frees() -> Result {
        let boxed = DBox::new(7u64, GFP_KERNEL)?;
        assert_eq!(*boxed, 7);
        // Growing goes through krealloc; the drop frees with kfree.
        let mut v = DVec::new();
        for i in 0..1000u64 {
            v.push(i, GFP_KERNEL)?;
        }
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        drop(v);
        // A vector that never allocated frees nothing.
        drop(DVec::<u64>::new());
        // Alignment above kmalloc's minimum is Kmalloc's job.
        #[repr(align(256))]
        struct Aligned(u8);
        let aligned = DBox::new(Aligned(3), GFP_KERNEL)?;
        assert_eq!(core::ptr::from_ref(&*aligned).addr() % 256, 0);
        assert_eq!(aligned.0, 3);
        Ok(())
    }
}
