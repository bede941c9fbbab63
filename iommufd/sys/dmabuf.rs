// SPDX-License-Identifier: GPL-2.0

//! dma-bufs (test builds): the test interface's exporter (`DMABUF_GET`,
//! `DMABUF_REVOKE`), and the importer side of `IOMMU_IOAS_MAP_FILE`: an
//! attachment, pinned, that says where the memory is and tells its owner
//! when the exporter revokes it. Only the test exporter's dma-bufs tell
//! where their memory is (`EOPNOTSUPP` for others). The C side lives in
//! `helpers.c`.

use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

// The dma-buf types hold types the lint flags; only pointers cross.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_test_dmabuf_get(open_flags: u32, len: u64) -> c_int;
    fn iommufd_rs_test_dmabuf_revoke(fd: c_int, revoked: bool) -> c_int;
    fn iommufd_rs_dmabuf_exit();
    fn iommufd_rs_dmabuf_get(fd: c_int) -> *mut bindings::dma_buf;
    fn iommufd_rs_dmabuf_put(dmabuf: *mut bindings::dma_buf);
    fn iommufd_rs_dmabuf_size(dmabuf: *mut bindings::dma_buf) -> u64;
    fn iommufd_rs_dmabuf_attach(
        dmabuf: *mut bindings::dma_buf,
        private: *mut c_void,
        paddr: *mut u64,
    ) -> *mut bindings::dma_buf_attachment;
    fn iommufd_rs_dmabuf_detach(attach: *mut bindings::dma_buf_attachment);
}

/// The error an `ERR_PTR` carries, if it is one.
fn err_ptr<T>(ptr: *mut T) -> Option<Error> {
    let v = ptr as isize;
    (v < 0 && v >= -(bindings::MAX_ERRNO as isize)).then(|| Error::from_errno(v as i32))
}

/// A new test dma-buf of `len` bytes (page aligned up, at most 512
/// pages): its descriptor, opened with `open_flags`.
pub(crate) fn test_dmabuf_get(open_flags: u32, len: u64) -> Result<i32> {
    // SAFETY: No pointer is passed.
    let rc = unsafe { iommufd_rs_test_dmabuf_get(open_flags, len) };
    if rc < 0 {
        return Err(Error::from_errno(rc));
    }
    Ok(rc)
}

/// Revokes (or restores) the test dma-buf at descriptor `fd`; its
/// importers are told. `EOPNOTSUPP` for another dma-buf.
pub(crate) fn test_dmabuf_revoke(fd: i32, revoked: bool) -> Result {
    // SAFETY: No pointer is passed.
    kernel::error::to_result(unsafe { iommufd_rs_test_dmabuf_revoke(fd, revoked) })
}

/// Frees what importing needed, at module exit.
pub(crate) struct ImportGuard;

impl Drop for ImportGuard {
    fn drop(&mut self) {
        // SAFETY: At module exit no attachment is left: every pages object
        // went with the files that held it.
        unsafe { iommufd_rs_dmabuf_exit() };
    }
}

/// A dma-buf taken by descriptor, with a reference.
///
/// # Invariants
///
/// `ptr` is a dma-buf this value holds one reference on.
pub(crate) struct Dmabuf {
    ptr: NonNull<bindings::dma_buf>,
}

// SAFETY: A dma-buf reference may be used and put from any thread.
unsafe impl Send for Dmabuf {}
// SAFETY: `&Dmabuf` only reads the dma-buf's size.
unsafe impl Sync for Dmabuf {}

impl Dmabuf {
    /// The dma-buf at descriptor `fd`, or `None` if it is not one.
    pub(crate) fn get(fd: i32) -> Option<Self> {
        // SAFETY: No pointer is passed.
        let ptr = unsafe { iommufd_rs_dmabuf_get(fd) };
        if err_ptr(ptr).is_some() {
            return None;
        }
        // INVARIANT: `dma_buf_get()` took a reference for us.
        NonNull::new(ptr).map(|ptr| Self { ptr })
    }

    /// Its size in bytes.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: By the type invariants the dma-buf is live.
        unsafe { iommufd_rs_dmabuf_size(self.ptr.as_ptr()) }
    }
}

impl Drop for Dmabuf {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold one reference.
        unsafe { iommufd_rs_dmabuf_put(self.ptr.as_ptr()) };
    }
}

/// What an attachment's owner does when the exporter revokes the memory.
pub(crate) trait RevokeNotify: Send + Sync {
    /// The memory is gone: stop using it (the dma-buf's lock is held).
    fn revoked(&self);
}

/// Where a revocation goes: the owner, and how to call it.
struct NotifySlot {
    owner: *const c_void,
    call: unsafe fn(*const c_void),
}

/// Calls `T::revoked` on `owner`.
///
/// # Safety
///
/// `owner` points at a live `T`.
unsafe fn call_revoked<T: RevokeNotify>(owner: *const c_void) {
    // SAFETY: The caller promises `owner` is a live `T`.
    unsafe { &*owner.cast::<T>() }.revoked();
}

/// A pinned attachment to a dma-buf, and where its memory is.
///
/// # Invariants
///
/// `attach` is an attachment of `_dmabuf` made by
/// `iommufd_rs_dmabuf_attach()` with `_notify` as its private data; it is
/// detached once, in `Drop`, before the fields go.
pub(crate) struct DmabufAttachment {
    attach: NonNull<bindings::dma_buf_attachment>,
    /// The attachment's private data: kept until it is detached.
    _notify: KBox<NotifySlot>,
    /// Physical address of the memory.
    pub(crate) paddr: u64,
    /// The reference the attachment needs, put after the detach.
    _dmabuf: Dmabuf,
}

// SAFETY: The attachment is only detached, from any thread; `notify`'s
// owner is `Sync` (`RevokeNotify`).
unsafe impl Send for DmabufAttachment {}
// SAFETY: `&DmabufAttachment` only reads plain fields.
unsafe impl Sync for DmabufAttachment {}

impl DmabufAttachment {
    /// Attaches to `dmabuf`, pinned; `owner` is told when it is revoked.
    /// `EOPNOTSUPP` for a dma-buf of another exporter than the test one,
    /// `ENODEV` for a revoked one.
    ///
    /// # Safety
    ///
    /// `owner` stays valid until the attachment is dropped.
    pub(crate) unsafe fn attach<T: RevokeNotify>(dmabuf: Dmabuf, owner: *const T) -> Result<Self> {
        let notify = KBox::new(
            NotifySlot {
                owner: owner.cast(),
                call: call_revoked::<T>,
            },
            GFP_KERNEL,
        )?;
        let mut paddr = 0u64;
        let private = (&raw const *notify).cast_mut().cast();
        let raw = dmabuf.ptr.as_ptr();
        // SAFETY: The dma-buf is live (type invariants of `Dmabuf`);
        // `private` stays valid while the attachment lives (it is detached
        // before `notify` is freed); `paddr` is valid for a write.
        let attach = unsafe { iommufd_rs_dmabuf_attach(raw, private, &mut paddr) };
        if let Some(e) = err_ptr(attach) {
            return Err(e);
        }
        let attach = NonNull::new(attach).ok_or(EINVAL)?;
        // INVARIANT: attached just now, with `notify` as private data.
        Ok(Self {
            attach,
            _notify: notify,
            paddr,
            _dmabuf: dmabuf,
        })
    }
}

impl Drop for DmabufAttachment {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the attachment is live and this is
        // its one detach; after it no revocation can reach `notify`.
        unsafe { iommufd_rs_dmabuf_detach(self.attach.as_ptr()) };
    }
}

/// The importer's revocation callback.
///
/// # Safety
///
/// Called by `helpers.c` with an attachment's private data, a
/// `NotifySlot` of a live attachment.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_dmabuf_revoked(private: *mut c_void) {
    // SAFETY: The caller promises `private` is a live `NotifySlot`.
    let slot = unsafe { &*private.cast::<NotifySlot>() };
    // SAFETY: `attach`'s caller promised the owner outlives the attachment.
    unsafe { (slot.call)(slot.owner) };
}
