// SPDX-License-Identifier: GPL-2.0

//! Page pinning and page reference FFI.
//!
//! For now this holds what the test interface needs to look at user pages:
//! how many pins a page carries. All calls into the kernel's GUP and page
//! refcount code live here.

use kernel::{bindings, page::PAGE_SIZE, prelude::*};

// `struct page` holds an empty arch spinlock type on this config, which the
// lint flags; only pointers cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_page_ref_count(page: *mut bindings::page) -> u32;
    fn iommufd_rs_page_compound(page: *mut bindings::page) -> bool;
    fn iommufd_rs_put_page(page: *mut bindings::page);
}

/// The number of long-term pins on the page at user address `uaddr` of the
/// current process, or `None` for a page of a compound (huge) page, whose
/// count is not per page.
pub(crate) fn user_page_pins(uaddr: usize) -> Result<Option<u32>> {
    let mut page: *mut bindings::page = core::ptr::null_mut();
    // SAFETY: `page` has room for the one page asked for; GUP takes a
    // reference on it that is dropped below.
    let got = unsafe { bindings::get_user_pages_fast(uaddr, 1, 0, &mut page) };
    if got < 0 {
        return Err(Error::from_errno(got as i32));
    }
    if got != 1 || page.is_null() {
        return Err(EFAULT);
    }
    // SAFETY: `page` is a valid page with a reference held by us.
    let pins = unsafe {
        let pins = (!iommufd_rs_page_compound(page))
            .then(|| iommufd_rs_page_ref_count(page) / bindings::GUP_PIN_COUNTING_BIAS);
        iommufd_rs_put_page(page);
        pins
    };
    Ok(pins)
}

/// Checks that every page of `[uptr, uptr + length)` carries `refs` pins:
/// `EINVAL` for an unaligned range, `EIO` on a mismatch.
pub(crate) fn check_user_page_pins(uptr: usize, length: usize, refs: u32) -> Result {
    if length % PAGE_SIZE != 0 || uptr % PAGE_SIZE != 0 || uptr.checked_add(length).is_none() {
        return Err(EINVAL);
    }
    for page in (uptr..uptr + length).step_by(PAGE_SIZE) {
        if let Some(pins) = user_page_pins(page)? {
            if pins != refs {
                return Err(EIO);
            }
        }
    }
    Ok(())
}
