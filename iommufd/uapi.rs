// SPDX-License-Identifier: GPL-2.0

//! The iommufd user ABI.
//!
//! The types come from `include/uapi/linux/iommufd.h` through bindgen at
//! build time, so the C header is the one source of truth. This file adds
//! what bindgen cannot: the ioctl numbers (function-like macros in C) and
//! the byte-level traits that let the types cross the user boundary.

use core::mem::size_of;
use kernel::{
    ioctl::_IO,
    transmute::{AsBytes, FromBytes},
};

#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]
mod generated {
    include!("uapi_generated.rs");
}

pub(crate) use generated::*;

/// Marks uAPI structs as plain old data.
macro_rules! uapi_pod {
    ($($ty:ty),* $(,)?) => {$(
        // SAFETY: The struct is made only of integer fields (and arrays of
        // them): every bit pattern is valid. The uAPI header lays every
        // field out at its natural alignment with explicit reserved fields,
        // so there are no padding bytes; `scripts/check-uapi.py` proves the
        // layout equals Linux's.
        unsafe impl FromBytes for $ty {}
        // SAFETY: See above: no padding, no pointers, no invalid values.
        unsafe impl AsBytes for $ty {}
    )*};
}

uapi_pod!(
    iommu_destroy,
    iommu_ioas_alloc,
    iommu_ioas_iova_ranges,
    iommu_iova_range,
);

/// Builds the number of an iommufd ioctl from its command index.
const fn iommufd_ioctl(cmd: u32) -> u32 {
    _IO(IOMMUFD_TYPE as u32, cmd)
}

/// `IOMMU_DESTROY`.
pub(crate) const IOMMU_DESTROY: u32 = iommufd_ioctl(IOMMUFD_CMD_DESTROY);
/// `IOMMU_IOAS_ALLOC`.
pub(crate) const IOMMU_IOAS_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_ALLOC);
/// `IOMMU_IOAS_IOVA_RANGES`.
pub(crate) const IOMMU_IOAS_IOVA_RANGES: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_IOVA_RANGES);

// The header's ioctl structs all start with a `__u32 size`.
const _: () = assert!(size_of::<iommu_destroy>() == 8);
