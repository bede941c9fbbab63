// SPDX-License-Identifier: GPL-2.0

//! Errnos of the iommufd ABI that `kernel::error::code` does not define.

use kernel::{bindings, error::Error};

/// `EOPNOTSUPP`: a reserved field or flag holds a value this kernel does
/// not know.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// `EADDRINUSE`: an IOVA range is already in use by a mapping, an allowed
/// range or a reserved range.
pub(crate) fn eaddrinuse() -> Error {
    Error::from_errno(-(bindings::EADDRINUSE as i32))
}
