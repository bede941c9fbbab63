// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over kernel services: every `unsafe` block and FFI call of
//! the module lives under this folder, and nothing here imports the
//! module's logic (`scripts/check-layers.py` checks that).
//!
//! Here: capability checks and taking a file by descriptor for keeps;
//! in the submodules, the allocator, user reads, errnos, the interval
//! tree, page pinning and accounting, counted boxes, the misc device, the
//! string parameter, event-queue files, pages mapped by `mmap()` and the
//! test interface's access files. `helpers.c`
//! holds the C shims for static inline kernel functions.

pub(crate) mod alloc;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) mod anon_file;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) mod dmabuf;
pub(crate) mod errno;
pub(crate) mod event_file;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) mod fail;
pub(crate) mod interval_tree;
pub(crate) mod iommu;
pub(crate) mod kapi;
pub(crate) mod misc;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) mod mmap;
pub(crate) mod param;
pub(crate) mod pin;
pub(crate) mod shared;
pub(crate) mod user;

pub(crate) use self::alloc::{DBox, DVec};
pub(crate) use self::user::{get_user_u32, read_user_prefix};

use kernel::{bindings, fs::File, fs::LocalFile, prelude::*, sync::aref::ARef};

/// `PAGE_SIZE` as a `u64`, the type IOVAs and lengths are kept in.
pub(crate) const PAGE_SIZE_U64: u64 = kernel::page::PAGE_SIZE as u64;

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
