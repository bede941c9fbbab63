// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over kernel services the kernel crate does not wrap in
//! 7.2: capability checks, taking a file by descriptor for keeps, reading
//! one user word or struct the cheap way, and a direct kmalloc allocator.

use core::{
    alloc::Layout,
    ptr::{without_provenance_mut, NonNull},
};
use kernel::{
    alloc::{allocator::Kmalloc, kbox::Box, kvec::Vec, AllocError, Allocator, Flags, NumaNode},
    bindings,
    fs::File,
    fs::LocalFile,
    prelude::*,
    sync::aref::ARef,
    transmute::{AsBytes, FromBytes},
    uaccess::UserPtr,
};

extern "C" {
    fn iommufd_rs_get_user_u32(out: *mut u32, uptr: *const u32) -> i32;
    fn iommufd_rs_kmalloc(size: usize) -> *mut core::ffi::c_void;
}

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
        // SAFETY: `kmalloc()` may be called with any size.
        let raw = unsafe { iommufd_rs_kmalloc(layout.size()) };
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

/// Reads the `u32` at `uptr` with `get_user()` (one inline access, where a
/// `UserSlice` read is a full `copy_from_user()` call): `EFAULT` if it
/// cannot be read.
pub(crate) fn get_user_u32(uptr: UserPtr) -> Result<u32> {
    let mut value = 0u32;
    // SAFETY: `value` is a valid place for the result; `get_user()` checks
    // `uptr` itself and faults safely.
    let rc = unsafe { iommufd_rs_get_user_u32(&mut value, uptr.as_const_ptr().cast()) };
    if rc != 0 {
        return Err(EFAULT);
    }
    Ok(value)
}

/// Fills `out` from the `size_of::<T>()` bytes at `user`, with one
/// fixed-size `copy_from_user()` (the path a constant-size copy takes in
/// C): `EFAULT` if they cannot all be read, and then `out` may hold some of
/// them. Unlike `UserSliceReader::read`, it writes in place, so a large
/// struct is not copied again on its way to the caller.
pub(crate) fn read_user<T: FromBytes + AsBytes>(out: &mut T, user: UserPtr) -> Result {
    // SAFETY: `out` is valid for writing `size_of::<T>()` bytes, and any
    // bytes are a valid `T` (`FromBytes`); `_copy_from_user()` checks and
    // faults on `user` itself.
    let left = unsafe {
        bindings::_copy_from_user(
            core::ptr::from_mut(out).cast(),
            user.as_const_ptr(),
            size_of::<T>(),
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// Capabilities this module checks.
#[derive(Clone, Copy)]
pub(crate) enum Capability {
    /// `CAP_IPC_LOCK`: may lock memory without RLIMIT_MEMLOCK accounting.
    IpcLock,
    /// `CAP_SYS_RESOURCE`: may change global resource accounting.
    SysResource,
}

/// Whether the current task has `cap` (in the initial user namespace).
pub(crate) fn capable(cap: Capability) -> bool {
    let cap = match cap {
        Capability::IpcLock => bindings::CAP_IPC_LOCK,
        Capability::SysResource => bindings::CAP_SYS_RESOURCE,
    };
    // SAFETY: `capable()` only reads the current task's credentials.
    unsafe { bindings::capable(cap as i32) }
}

/// Takes a reference to the file behind descriptor `fd` of the current
/// process: `EBADF` if there is none.
pub(crate) fn file_from_fd(fd: i32) -> Result<ARef<File>> {
    let fd = u32::try_from(fd).map_err(|_| EBADF)?;
    let file = LocalFile::fget(fd).map_err(|_| EBADF)?;
    // SAFETY: This module never calls `fdget_pos()`, and the reference is
    // only used to identify and later read the file's pages, never its
    // position.
    Ok(unsafe { LocalFile::assume_no_fdget_pos(file) })
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
