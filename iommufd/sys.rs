// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over kernel services the kernel crate does not wrap in
//! 7.2: capability checks, taking a file by descriptor for keeps, and
//! reading one user word the cheap way.

use kernel::{bindings, fs::File, fs::LocalFile, prelude::*, sync::aref::ARef, uaccess::UserPtr};

extern "C" {
    fn iommufd_rs_get_user_u32(out: *mut u32, uptr: *const u32) -> i32;
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
