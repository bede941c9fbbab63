// SPDX-License-Identifier: GPL-2.0

//! Reading one user word or struct the cheap way.

use kernel::{bindings, prelude::*, transmute::FromBytes, uaccess::UserPtr};

#[cfg(not(target_arch = "x86_64"))]
extern "C" {
    fn iommufd_rs_get_user_u32(uptr: *const u32) -> u64;
}

extern "C" {
    fn iommufd_rs_access_ok(uptr: *const core::ffi::c_void, size: core::ffi::c_ulong) -> bool;
}

/// Whether `[addr, addr + size)` lies in user space (`access_ok()`): a
/// range that could be user memory, not that it is mapped.
pub(crate) fn access_ok(addr: u64, size: u64) -> bool {
    let (Ok(addr), Ok(size)) = (usize::try_from(addr), usize::try_from(size)) else {
        return false;
    };
    // SAFETY: `access_ok()` only compares the range with the user address
    // limit; it dereferences nothing.
    unsafe {
        iommufd_rs_access_ok(
            core::ptr::without_provenance(addr),
            size as core::ffi::c_ulong,
        )
    }
}

/// Reads the `u32` at `uptr` with `get_user()` (one inline access, where a
/// `UserSlice` read is a full `copy_from_user()` call): `EFAULT` if it
/// cannot be read.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn get_user_u32(uptr: UserPtr) -> Result<u32> {
    extern "C" {
        fn __get_user_4();
    }
    let err: usize;
    let value: u32;
    // What x86's `get_user()` of 4 bytes expands to: `__get_user_4` takes
    // the address in rax, clamps it to user space, reads it under an
    // exception-table entry (a fault is an error, not an oops), and answers
    // 0 or `-EFAULT` in rax and the value in edx.
    // SAFETY: It changes no register but rax, rdx and the flags, all
    // declared here, and no memory of ours.
    unsafe {
        core::arch::asm!(
            "call {get_user}",
            get_user = sym __get_user_4,
            inout("rax") uptr.as_const_ptr().addr() => err,
            out("edx") value,
        )
    };
    if err != 0 {
        return Err(EFAULT);
    }
    Ok(value)
}

/// Reads the `u32` at `uptr` with `get_user()`: `EFAULT` if it cannot be
/// read.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn get_user_u32(uptr: UserPtr) -> Result<u32> {
    // SAFETY: `get_user()` checks `uptr` itself and faults safely.
    let word = unsafe { iommufd_rs_get_user_u32(uptr.as_const_ptr().cast()) };
    // The helper answers the value, or `u64::MAX` (no `u32`) for a fault,
    // in one register.
    u32::try_from(word).map_err(|_| EFAULT)
}

/// Reads the first `len` bytes of a `T` from `user` into `slot`; bytes
/// past `len` read as zero, bytes past `T`'s size are not read: `EFAULT`
/// if they cannot all be read. A whole `T` is one fixed-size
/// `copy_from_user()`, with nothing zeroed first.
#[inline(always)]
pub(crate) fn read_user_prefix<T: FromBytes>(
    slot: &mut core::mem::MaybeUninit<T>,
    user: UserPtr,
    len: usize,
) -> Result<&mut T> {
    let size = size_of::<T>();
    let len = if len >= size {
        size
    } else {
        // SAFETY: `slot` is valid for writing one `T`.
        unsafe { slot.as_mut_ptr().write_bytes(0, 1) };
        len
    };
    // SAFETY: `slot` is valid for writing `size >= len` bytes;
    // `_copy_from_user()` checks and faults on `user` itself.
    let left =
        unsafe { bindings::_copy_from_user(slot.as_mut_ptr().cast(), user.as_const_ptr(), len) };
    if left != 0 {
        return Err(EFAULT);
    }
    // SAFETY: Every byte of `slot` was written, copied or zeroed, and any
    // bytes are a valid `T` (`FromBytes`).
    Ok(unsafe { slot.assume_init_mut() })
}
