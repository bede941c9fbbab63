// SPDX-License-Identifier: GPL-2.0

//! An XArray of plain integers (XArray "value entries").
//!
//! `kernel::xarray` stores owned pointers; pinned PFNs and mock IO page
//! table entries are integers, which the XArray can hold inline without any
//! allocation per entry beyond its own nodes.

use kernel::{bindings, prelude::*, types::Opaque};

/// Largest value an entry can hold (`xa_mk_value` keeps one tag bit).
pub(crate) const MAX_VALUE: u64 = (i64::MAX as u64) >> 1;

/// An XArray mapping `usize` indexes to integers up to [`MAX_VALUE`].
///
/// # Invariants
///
/// `xa` is initialised, and holds only value entries.
#[pin_data(PinnedDrop)]
pub(crate) struct ValueXArray {
    #[pin]
    xa: Opaque<bindings::xarray>,
}

// SAFETY: The XArray takes its own lock for every change and holds no
// pointers, so it may be used and dropped from any thread.
unsafe impl Send for ValueXArray {}
// SAFETY: As above: every method goes through the XArray's own locking.
unsafe impl Sync for ValueXArray {}

fn to_entry(value: u64) -> *mut c_void {
    ((value << 1) | 1) as usize as *mut c_void
}

fn from_entry(entry: *mut c_void) -> Option<u64> {
    let raw = entry as usize as u64;
    (raw & 1 == 1).then_some(raw >> 1)
}

impl ValueXArray {
    /// An empty array.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `xa_init_flags` initialises the slot in place.
            xa <- Opaque::ffi_init(|xa| unsafe { bindings::xa_init_flags(xa, 0) }),
        })
    }

    /// The value at `index`, if any.
    pub(crate) fn load(&self, index: usize) -> Option<u64> {
        // SAFETY: `xa` is initialised by the type invariant.
        from_entry(unsafe { bindings::xa_load(self.xa.get(), index) })
    }

    /// Stores `value` (at most [`MAX_VALUE`]) at `index`. Replacing an
    /// existing entry never allocates and cannot fail; a new entry may
    /// fail with `ENOMEM`.
    pub(crate) fn store(&self, index: usize, value: u64) -> Result {
        if value > MAX_VALUE {
            return Err(EINVAL);
        }
        // SAFETY: `xa` is initialised; value entries need no ownership.
        let old = unsafe {
            bindings::xa_store(self.xa.get(), index, to_entry(value), bindings::GFP_KERNEL)
        };
        // SAFETY: `xa_err` only decodes the returned entry.
        let rc = unsafe { bindings::xa_err(old) };
        if rc != 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(())
    }

    /// Removes and returns the value at `index`.
    pub(crate) fn erase(&self, index: usize) -> Option<u64> {
        // SAFETY: `xa` is initialised by the type invariant.
        from_entry(unsafe { bindings::xa_erase(self.xa.get(), index) })
    }
}

#[pinned_drop]
impl PinnedDrop for ValueXArray {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Value entries own nothing, so the array can be freed as
        // is; nobody uses it after drop.
        unsafe { bindings::xa_destroy(self.xa.get()) };
    }
}

#[kunit_tests(iommufd_rs_value_xarray)]
mod tests {
    use super::*;

    #[test]
    fn store_load_take() -> Result {
        let xa = KBox::pin_init(ValueXArray::new(), GFP_KERNEL)?;
        assert_eq!(xa.load(7), None);
        xa.store(7, 0)?;
        xa.store(1 << 40, MAX_VALUE)?;
        assert_eq!(xa.load(7), Some(0));
        assert_eq!(xa.load(1 << 40), Some(MAX_VALUE));
        assert_eq!(xa.store(8, MAX_VALUE + 1), Err(EINVAL));
        xa.store(7, 5)?;
        assert_eq!(xa.erase(7), Some(5));
        assert_eq!(xa.load(7), None);
        Ok(())
    }
}
