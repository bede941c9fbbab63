// SPDX-License-Identifier: GPL-2.0

//! Anonymous-inode files for in-kernel accesses of the test interface
//! (`IOMMU_TEST_OP_CREATE_ACCESS` hands one to userspace as an fd).
//!
//! The file owns its data, of any `'static` type; the data is dropped when
//! the file's last reference goes, and found again by type. The file
//! operations (`release` only, owner this module) live in `helpers.c`.

use super::errno::ebadfd;
use core::any::Any;
use kernel::{
    bindings,
    fs::{file::FileDescriptorReservation, File, LocalFile},
    prelude::*,
    sync::aref::ARef,
    types::ForeignOwnable,
};

// `struct file` holds an empty arch spinlock type on this config, which the
// lint flags; only pointers cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_access_file_new(data: *mut c_void) -> *mut bindings::file;
    fn iommufd_rs_access_file_data(file: *mut bindings::file) -> *mut c_void;
}

/// What a file owns: boxed twice, so that the file holds a thin pointer.
type Owned = KBox<dyn Any + Send + Sync>;

/// The file's data is dropped here, when the file is released.
///
/// # Safety
///
/// Called only by the access file's `release`, with the `private_data`
/// that [`install`] stored, once.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_file_release(data: *mut c_void) {
    // SAFETY: `data` came from `into_foreign` in `install`, and release
    // runs once per file.
    drop(unsafe { KBox::<Owned>::from_foreign(data) });
}

/// Creates an access file owning `data` and installs it at the reserved
/// descriptor. On error `data` is dropped.
pub(crate) fn install<T: Any + Send + Sync>(
    fd: FileDescriptorReservation,
    data: KBox<T>,
) -> Result {
    let data: Owned = data;
    let ptr = KBox::new(data, GFP_KERNEL)?.into_foreign();
    // SAFETY: `ptr` is a valid foreign pointer, owned by the file from now
    // on; its release gives it back.
    let file = unsafe { iommufd_rs_access_file_new(ptr) };
    if let Some(rc) = err_ptr(file) {
        // SAFETY: The file was not created, so `ptr` is still ours.
        drop(unsafe { KBox::<Owned>::from_foreign(ptr) });
        return Err(rc);
    }
    // SAFETY: `anon_inode_getfile` returned a new file with one reference,
    // which is handed over.
    let file = unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file.cast::<File>())) };
    fd.fd_install(file);
    Ok(())
}

/// The error an `ERR_PTR` carries, if it is one.
fn err_ptr(ptr: *mut bindings::file) -> Option<Error> {
    let v = ptr as isize;
    (v < 0 && v >= -(bindings::MAX_ERRNO as isize)).then(|| Error::from_errno(v as i32))
}

/// Runs `f` on the data of the access file at descriptor `fd`: `EBADFD` if
/// `fd` is not an access file or its data is not a `T`.
pub(crate) fn with_access_file<T: Any, R>(fd: u32, f: impl FnOnce(&T) -> Result<R>) -> Result<R> {
    let file = LocalFile::fget(fd).map_err(|_| ebadfd())?;
    // SAFETY: `file` is a valid file we hold a reference on.
    let data = unsafe { iommufd_rs_access_file_data(file.as_ptr()) };
    if data.is_null() {
        return Err(ebadfd());
    }
    // SAFETY: `data` is the access file's `private_data`, alive while we
    // hold the file reference, and only borrowed here.
    let data = unsafe { <KBox<Owned> as ForeignOwnable>::borrow(data) };
    let data: &(dyn Any + Send + Sync) = &**data;
    f(data.downcast_ref::<T>().ok_or_else(ebadfd)?)
}
