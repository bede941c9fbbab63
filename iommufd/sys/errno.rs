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

/// `EBADFD`: a descriptor that is not the kind of file the call wants.
pub(crate) fn ebadfd() -> Error {
    Error::from_errno(-(bindings::EBADFD as i32))
}

/// `EBADE`: a test check found different pages than expected.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn ebade() -> Error {
    Error::from_errno(-(bindings::EBADE as i32))
}

/// `EDEADLOCK`: an unmap kept finding new access pins.
pub(crate) fn edeadlock() -> Error {
    Error::from_errno(-(bindings::EDEADLOCK as i32))
}
