// SPDX-License-Identifier: GPL-2.0

//! A user command: an ioctl's struct, read from userspace under the
//! extensible-struct rules, and answered by writing it back.

use crate::sys;
use core::mem::{size_of, MaybeUninit};
use kernel::{
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

/// A decoded ioctl call with its command struct in kernel memory (the
/// caller's stack frame).
pub(crate) struct Ucmd<'a, T> {
    /// The command, copied in from userspace and zero-extended.
    pub(crate) cmd: &'a mut T,
    user: UserPtr,
    user_size: usize,
}

impl<T: AsBytes> Ucmd<'_, T> {
    /// Copies the command struct back to userspace, truncated to the size
    /// userspace passed.
    pub(crate) fn respond(&self) -> Result {
        let bytes = self.cmd.as_bytes();
        let len = bytes.len().min(self.user_size);
        let mut writer = UserSlice::new(self.user, len).writer();
        if len == bytes.len() {
            // The usual case: one fixed-size copy.
            return writer.write(&*self.cmd);
        }
        writer.write_slice(&bytes[..len])
    }

    /// Copies back only the field at `offset` of `len` bytes, which must lie
    /// within the mandatory part of the struct.
    pub(crate) fn respond_field(&self, offset: usize, len: usize) -> Result {
        let bytes = self
            .cmd
            .as_bytes()
            .get(offset..offset + len)
            .ok_or(EINVAL)?;
        UserSlice::new(self.user.wrapping_byte_add(offset), len)
            .writer()
            .write_slice(bytes)
    }
}

impl<'a, T: FromBytes + AsBytes> Ucmd<'a, T> {
    /// Reads the `user_size`-byte command struct at `user` into `slot`,
    /// applying the extensible-struct rules: bytes past the kernel's
    /// struct must be zero (`E2BIG`); a missing tail reads as zero. A full
    /// struct is copied in with nothing zeroed first.
    #[inline(always)]
    pub(crate) fn read(
        slot: &'a mut MaybeUninit<T>,
        user: UserPtr,
        user_size: usize,
    ) -> Result<Self> {
        let size = size_of::<T>();
        if user_size > size {
            check_zeroed(user.wrapping_byte_add(size), user_size - size)?;
        }
        let cmd = sys::read_user_prefix(slot, user, user_size)?;
        Ok(Self {
            cmd,
            user,
            user_size,
        })
    }
}

/// Reads a driver data struct of `len` user bytes at `uptr` with the rules
/// of C's `iommu_copy_struct_from_user()`: `EINVAL` if shorter than
/// `min_len` or longer than `T`; a short tail reads as zero. (The test
/// interface's mock driver data, for now.)
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn read_user_struct<T: FromBytes + AsBytes + Default>(
    uptr: u64,
    len: usize,
    min_len: usize,
) -> Result<T> {
    if len < min_len || len > size_of::<T>() {
        return Err(EINVAL);
    }
    let user = UserPtr::from_addr(usize::try_from(uptr).map_err(|_| EFAULT)?);
    read_prefix(user, len)
}

/// Fails with `E2BIG` unless the `len` user bytes at `user` are all zero.
fn check_zeroed(user: UserPtr, len: usize) -> Result {
    let mut reader = UserSlice::new(user, len).reader();
    let mut chunk = [0u8; 64];
    while !reader.is_empty() {
        let n = reader.len().min(chunk.len());
        reader.read_slice(&mut chunk[..n])?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
    }
    Ok(())
}

/// Reads the first `len` bytes of a `T` from `user`; bytes past `len` read
/// as zero, and bytes past `T`'s size are not read. For small structs off
/// the hot paths; the others read into place ([`sys::read_user_prefix`]).
pub(crate) fn read_prefix<T: FromBytes + Default>(user: UserPtr, len: usize) -> Result<T> {
    let mut slot = MaybeUninit::<T>::uninit();
    Ok(core::mem::take(sys::read_user_prefix(
        &mut slot, user, len,
    )?))
}
