// SPDX-License-Identifier: GPL-2.0

//! Typed calls on an open /dev/iommu.

use crate::sys::{self, Errno};
use crate::uapi;
use std::fs::File;
use std::mem::size_of;

/// Path of the node under test.
pub const IOMMU_DEV: &str = "/dev/iommu";

/// An open /dev/iommu.
pub struct Iommufd {
    pub file: File,
}

/// Size of a uAPI struct as the `size` field wants it.
pub fn size_of_u32<T>() -> u32 {
    size_of::<T>() as u32
}

impl Iommufd {
    /// Opens /dev/iommu.
    pub fn open() -> Result<Self, String> {
        let file = sys::open_dev(IOMMU_DEV).map_err(|e| format!("open {IOMMU_DEV}: {e}"))?;
        Ok(Self { file })
    }

    /// IOMMU_IOAS_ALLOC: the new ID or the errno.
    pub fn ioas_alloc(&self) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_ioas_alloc {
            size: size_of_u32::<uapi::iommu_ioas_alloc>(),
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_ALLOC, &mut cmd) {
            0 => Ok(cmd.out_ioas_id),
            e => Err(e),
        }
    }

    /// IOMMU_DESTROY: 0 or the errno.
    pub fn destroy(&self, id: u32) -> Errno {
        let mut cmd = uapi::iommu_destroy {
            size: size_of_u32::<uapi::iommu_destroy>(),
            id,
        };
        sys::ioctl_struct(&self.file, uapi::IOMMU_DESTROY, &mut cmd)
    }

    /// IOMMU_IOAS_IOVA_RANGES with room for `room` ranges: the ranges and
    /// the alignment, or the errno with the count the kernel asked for.
    pub fn iova_ranges(
        &self,
        id: u32,
        room: u32,
    ) -> Result<(Vec<uapi::iommu_iova_range>, u64), (Errno, u32)> {
        let mut ranges = vec![uapi::iommu_iova_range::default(); room as usize];
        let mut cmd = uapi::iommu_ioas_iova_ranges {
            size: size_of_u32::<uapi::iommu_ioas_iova_ranges>(),
            ioas_id: id,
            num_iovas: room,
            allowed_iovas: ranges.as_mut_ptr() as u64,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_IOVA_RANGES, &mut cmd) {
            0 => {
                ranges.truncate(cmd.num_iovas as usize);
                Ok((ranges, cmd.out_iova_alignment))
            }
            e => Err((e, cmd.num_iovas)),
        }
    }
}

/// Reads one number from a /proc or /sys file, or a `key: value kB` line.
pub fn read_number(path: &str, key: Option<&str>) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    let line = match key {
        None => text.lines().next(),
        Some(k) => text.lines().find(|l| l.starts_with(k)),
    }
    .ok_or_else(|| format!("{path}: no {key:?}"))?;
    let value = match key {
        None => line.trim(),
        Some(k) => line[k.len()..]
            .trim_start_matches(':')
            .split_whitespace()
            .next()
            .unwrap_or(""),
    };
    value
        .parse()
        .map_err(|e| format!("{path}: parse {value:?}: {e}"))
}
