// SPDX-License-Identifier: GPL-2.0

//! Mapping kernel pages into an iommufd file's `mmap()`: the pages a
//! driver shows userspace (the mock vIOMMU's MMIO page), and what every
//! VMA of them keeps alive. The VMA operations live in `helpers.c`.

use core::any::Any;
use kernel::{
    bindings,
    mm::virt::{flags as vm_flags, VmaNew},
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// Zeroed pages a driver maps to userspace.
pub(crate) struct MappedPages {
    pages: KVec<Page>,
}

impl MappedPages {
    /// `n` zeroed pages, the first starting with `first_word`.
    pub(crate) fn new(n: usize, first_word: u32) -> Result<Self> {
        let mut pages = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
            // Room was made above.
            pages.push_within_capacity(page).map_err(|_| ENOMEM)?;
        }
        if let Some(first) = pages.first() {
            let bytes = first_word.to_ne_bytes();
            // SAFETY: `bytes` is valid for reads of its length, which fits
            // in the page at offset 0.
            unsafe { first.write_raw(bytes.as_ptr(), 0, bytes.len())? };
        }
        Ok(Self { pages })
    }

    /// Their length in bytes.
    pub(crate) fn len(&self) -> u64 {
        (self.pages.len() * PAGE_SIZE) as u64
    }
}

/// What the VMAs of a mapping share: one strong count each.
pub(crate) struct MapOwner {
    _held: KBox<dyn Any + Send + Sync>,
}

// `struct vm_area_struct` holds types the lint flags; only pointers cross.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_vma_set_ops(vma: *mut bindings::vm_area_struct, private: *mut c_void);
}

/// The VMA checks of an iommufd `mmap()`: `EINVAL` for a private mapping,
/// `EPERM` for an executable one. Returns the byte offset asked for and
/// the length.
pub(crate) fn vma_request(vma: &VmaNew) -> Result<(u64, u64)> {
    let flags = vma.flags();
    if flags & vm_flags::SHARED == 0 {
        return Err(EINVAL);
    }
    if flags & vm_flags::EXEC != 0 {
        return Err(EPERM);
    }
    // SAFETY: The VMA is being set up by our `mmap`: reading its offset
    // races with nothing.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
    let length = (vma.end() - vma.start()) as u64;
    Ok((pgoff << bindings::PAGE_SHIFT, length))
}

/// Maps `pages` into `vma`, from its start, and keeps `held` alive while
/// any VMA of the mapping (split or copied ones too) lives.
pub(crate) fn map_pages(vma: &VmaNew, pages: &MappedPages, held: impl Any + Send + Sync) -> Result {
    let held: KBox<dyn Any + Send + Sync> = KBox::new(held, GFP_KERNEL)?;
    let owner = Arc::new(MapOwner { _held: held }, GFP_KERNEL)?;
    vma.set_dontexpand();
    vma.set_dontdump();
    let mixed = vma.set_mixedmap();
    for (i, page) in pages.pages.iter().enumerate() {
        mixed.vm_insert_page(vma.start() + i * PAGE_SIZE, page)?;
    }
    // SAFETY: The VMA is being set up by our `mmap`; its private data is
    // ours, and the strong count handed over here is given back by the
    // VMA's `close`.
    unsafe { iommufd_rs_vma_set_ops(vma.as_ptr(), Arc::into_raw(owner).cast_mut().cast()) };
    Ok(())
}

/// A VMA of a mapping was copied or split: one more count.
///
/// # Safety
///
/// Called by the VMA operations of `helpers.c` with a VMA's private data,
/// which holds a strong count of a `MapOwner`.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_vma_open(private: *mut c_void) {
    // SAFETY: The caller promises `private` came from `Arc::into_raw` of a
    // `MapOwner` whose count the VMA being copied still holds.
    let owner = unsafe { ArcBorrow::<MapOwner>::from_raw(private.cast()) };
    let copy: Arc<MapOwner> = owner.into();
    let _ = Arc::into_raw(copy);
}

/// A VMA of a mapping went: its count goes.
///
/// # Safety
///
/// As [`iommufd_rs_vma_open`]; called once per VMA.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_vma_close(private: *mut c_void) {
    // SAFETY: The VMA held this count, and this is its last use.
    drop(unsafe { Arc::<MapOwner>::from_raw(private.cast()) });
}
