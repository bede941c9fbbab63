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
    missing_docs,
    unreachable_pub
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
    vfio_info_cap_header,
    vfio_iommu_type1_dma_map,
    vfio_iommu_type1_dma_unmap,
    vfio_iommu_type1_info,
    vfio_iommu_type1_info_cap_iova_range,
    vfio_iommu_type1_info_dma_avail,
    vfio_iova_range,
    iommu_destroy,
    iommu_fault_alloc,
    iommu_hw_info,
    iommu_hw_queue_alloc,
    iommu_hwpt_alloc,
    iommu_hwpt_get_dirty_bitmap,
    iommu_hwpt_invalidate,
    iommu_hwpt_page_response,
    iommu_hwpt_pgfault,
    iommufd_vevent_header,
    iommu_hwpt_set_dirty_tracking,
    iommu_ioas_alloc,
    iommu_ioas_allow_iovas,
    iommu_ioas_change_process,
    iommu_ioas_copy,
    iommu_ioas_iova_ranges,
    iommu_ioas_map,
    iommu_ioas_map_file,
    iommu_ioas_unmap,
    iommu_iova_range,
    iommu_option,
    iommu_vdevice_alloc,
    iommu_veventq_alloc,
    iommu_vfio_ioas,
    iommu_viommu_alloc,
);

#[cfg(CONFIG_IOMMUFD_RS_TEST)]
uapi_pod!(
    iommu_test_hw_info,
    iommu_hwpt_selftest,
    iommu_hwpt_invalidate_selftest,
    iommu_viommu_invalidate_selftest,
    iommu_viommu_selftest
);

impl iommu_hw_info {
    /// `in_data_type`, the input member of the data-type union.
    pub(crate) fn in_data_type(&self) -> u32 {
        // SAFETY: Both members of the union are a `u32`.
        unsafe { self.__bindgen_anon_1.in_data_type }
    }
}

// SAFETY: As above: integers and a union of integer-only structs, every
// field naturally aligned (checked against Linux's header).
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
unsafe impl FromBytes for iommu_test_cmd {}
// SAFETY: As above. The union's largest member fills it, so no byte of
// the struct is padding.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
unsafe impl AsBytes for iommu_test_cmd {}

/// `IOMMU_TEST_CMD`: the selftest interface (`iommufd_test.h`).
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) const IOMMU_TEST_CMD: u32 = iommufd_ioctl(IOMMUFD_CMD_BASE + 32);

#[cfg(CONFIG_IOMMUFD_RS_TEST)]
impl iommu_test_cmd {
    /// `add_reserved`: (start, length).
    pub(crate) fn add_reserved(&self) -> (u64, u64) {
        // SAFETY: Every member of the union is plain integers, so any bytes
        // read as any member are valid.
        let r = unsafe { self.__bindgen_anon_1.add_reserved };
        (r.start, r.length)
    }

    /// `check_refs`: (length, uptr, refs).
    pub(crate) fn check_refs(&self) -> (u64, u64, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.check_refs };
        (r.length, r.uptr, r.refs)
    }

    /// `memory_limit.limit`.
    pub(crate) fn memory_limit(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.memory_limit.limit }
    }

    /// `create_access.flags`.
    pub(crate) fn create_access_flags(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.create_access.flags }
    }

    /// `destroy_access_pages.access_pages_id`.
    pub(crate) fn access_pages_id(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.destroy_access_pages.access_pages_id }
    }

    /// `access_pages`.
    pub(crate) fn access_pages(&self) -> TestAccessPages {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.access_pages }
    }

    /// `access_rw`.
    pub(crate) fn access_rw(&self) -> TestAccessRw {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.access_rw }
    }

    /// `access_replace_ioas.ioas_id`.
    pub(crate) fn replace_ioas_id(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.access_replace_ioas.ioas_id }
    }

    /// `mock_domain_flags.dev_flags`.
    pub(crate) fn mock_dev_flags(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.mock_domain_flags.dev_flags }
    }

    /// `pasid_attach` (also `pasid_replace`): (PASID, pt_id).
    pub(crate) fn pasid_attach(&self) -> (u32, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.pasid_attach };
        (r.pasid, r.pt_id)
    }

    /// `pasid_detach.pasid`.
    pub(crate) fn pasid_detach(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.pasid_detach.pasid }
    }

    /// `pasid_check`: (PASID, hwpt_id).
    pub(crate) fn pasid_check(&self) -> (u32, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.pasid_check };
        (r.pasid, r.hwpt_id)
    }

    /// `mock_domain_replace.pt_id`.
    pub(crate) fn replace_pt_id(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.mock_domain_replace.pt_id }
    }

    /// `check_dev_cache`: (cache index, expected value).
    pub(crate) fn check_dev_cache(&self) -> (u32, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.check_dev_cache };
        (r.id, r.cache)
    }

    /// `dirty`: (iova, length, page_size, uptr).
    pub(crate) fn dirty(&self) -> (u64, u64, u64, u64) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.dirty };
        (r.iova, r.length, r.page_size, r.uptr)
    }

    /// Sets `dirty.out_nr_dirty`; writing a union field is safe, and the
    /// member's other fields keep their bytes.
    pub(crate) fn set_out_nr_dirty(&mut self, n: u64) {
        self.__bindgen_anon_1.dirty.out_nr_dirty = n;
    }

    /// `check_iotlb`: (IOTLB entry, expected value).
    pub(crate) fn check_iotlb(&self) -> (u32, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.check_iotlb };
        (r.id, r.iotlb)
    }

    /// `dmabuf_get`: (open flags, length).
    pub(crate) fn dmabuf_get(&self) -> (u32, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.dmabuf_get };
        (r.open_flags, r.length)
    }

    /// `dmabuf_revoke`: (descriptor, revoked).
    pub(crate) fn dmabuf_revoke(&self) -> (i32, u32) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.dmabuf_revoke };
        (r.dmabuf_fd, r.revoked)
    }

    /// `trigger_vevent.dev_id`.
    pub(crate) fn trigger_vevent_dev_id(&self) -> u32 {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.trigger_vevent.dev_id }
    }

    /// `trigger_iopf`.
    pub(crate) fn trigger_iopf(&self) -> TestTriggerIopf {
        // SAFETY: As in `add_reserved`.
        unsafe { self.__bindgen_anon_1.trigger_iopf }
    }

    /// `check_map`: (iova, length, uptr).
    pub(crate) fn check_map(&self) -> (u64, u64, u64) {
        // SAFETY: As in `add_reserved`.
        let r = unsafe { self.__bindgen_anon_1.check_map };
        (r.iova, r.length, r.uptr)
    }
}

/// iommufd_rs's own test op, which C does not know (`EOPNOTSUPP` there):
/// pins and unpins the `check_refs` range (`refs` must be 0) with nothing
/// but GUP, for `make bench`'s pinning floor. The number stays clear of
/// C's sequential ops.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) const IOMMU_TEST_OP_RS_PIN_FLOOR: u32 = 0x7273_0001;

/// `iommu_test_cmd.access_pages`.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) type TestAccessPages = iommu_test_cmd__bindgen_ty_1__bindgen_ty_9;
/// `iommu_test_cmd.access_rw`.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) type TestAccessRw = iommu_test_cmd__bindgen_ty_1__bindgen_ty_10;
/// `iommu_test_cmd.trigger_iopf`.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) type TestTriggerIopf = iommu_test_cmd__bindgen_ty_1__bindgen_ty_15;
/// `iommu_test_cmd.mock_domain` (and the first fields of `mock_domain_flags`).
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) type TestMockDomain = iommu_test_cmd__bindgen_ty_1__bindgen_ty_2;

/// Builds the number of an iommufd ioctl from its command index.
const fn iommufd_ioctl(cmd: u32) -> u32 {
    _IO(IOMMUFD_TYPE as u32, cmd)
}

/// `IOMMU_DESTROY`.
pub(crate) const IOMMU_DESTROY: u32 = iommufd_ioctl(IOMMUFD_CMD_DESTROY);
/// `IOMMU_IOAS_ALLOC`.
pub(crate) const IOMMU_IOAS_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_ALLOC);
/// `IOMMU_IOAS_ALLOW_IOVAS`.
pub(crate) const IOMMU_IOAS_ALLOW_IOVAS: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
/// `IOMMU_IOAS_COPY`.
pub(crate) const IOMMU_IOAS_COPY: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_COPY);
/// `IOMMU_IOAS_IOVA_RANGES`.
pub(crate) const IOMMU_IOAS_IOVA_RANGES: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_IOVA_RANGES);
/// `IOMMU_IOAS_MAP`.
pub(crate) const IOMMU_IOAS_MAP: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_MAP);
/// `IOMMU_IOAS_UNMAP`.
pub(crate) const IOMMU_IOAS_UNMAP: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_UNMAP);
/// `IOMMU_OPTION`.
pub(crate) const IOMMU_OPTION: u32 = iommufd_ioctl(IOMMUFD_CMD_OPTION);
/// `IOMMU_VFIO_IOAS`.
pub(crate) const IOMMU_VFIO_IOAS: u32 = iommufd_ioctl(IOMMUFD_CMD_VFIO_IOAS);
/// `IOMMU_HWPT_ALLOC`.
pub(crate) const IOMMU_HWPT_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_HWPT_ALLOC);
/// `IOMMU_GET_HW_INFO`.
pub(crate) const IOMMU_GET_HW_INFO: u32 = iommufd_ioctl(IOMMUFD_CMD_GET_HW_INFO);
/// `IOMMU_HWPT_SET_DIRTY_TRACKING`.
pub(crate) const IOMMU_HWPT_SET_DIRTY_TRACKING: u32 =
    iommufd_ioctl(IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);
/// `IOMMU_HWPT_GET_DIRTY_BITMAP`.
pub(crate) const IOMMU_HWPT_GET_DIRTY_BITMAP: u32 =
    iommufd_ioctl(IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);
/// `IOMMU_HWPT_INVALIDATE`.
pub(crate) const IOMMU_HWPT_INVALIDATE: u32 = iommufd_ioctl(IOMMUFD_CMD_HWPT_INVALIDATE);
/// `IOMMU_FAULT_QUEUE_ALLOC`.
pub(crate) const IOMMU_FAULT_QUEUE_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_FAULT_QUEUE_ALLOC);
/// `IOMMU_IOAS_MAP_FILE`.
pub(crate) const IOMMU_IOAS_MAP_FILE: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_MAP_FILE);
/// `IOMMU_VIOMMU_ALLOC`.
pub(crate) const IOMMU_VIOMMU_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_VIOMMU_ALLOC);
/// `IOMMU_VDEVICE_ALLOC`.
pub(crate) const IOMMU_VDEVICE_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_VDEVICE_ALLOC);
/// `IOMMU_IOAS_CHANGE_PROCESS`.
pub(crate) const IOMMU_IOAS_CHANGE_PROCESS: u32 = iommufd_ioctl(IOMMUFD_CMD_IOAS_CHANGE_PROCESS);
/// `IOMMU_VEVENTQ_ALLOC`.
pub(crate) const IOMMU_VEVENTQ_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_VEVENTQ_ALLOC);
/// `IOMMU_HW_QUEUE_ALLOC`.
pub(crate) const IOMMU_HW_QUEUE_ALLOC: u32 = iommufd_ioctl(IOMMUFD_CMD_HW_QUEUE_ALLOC);

// The header's ioctl structs all start with a `__u32 size`.
const _: () = assert!(size_of::<iommu_destroy>() == 8);
