// SPDX-License-Identifier: GPL-2.0

//! Device objects and `IOMMU_GET_HW_INFO`.
//!
//! A device bound to the file has an object of its own (`idev`), whose ID
//! userspace passes to device ioctls. Only the test interface's mock device
//! binds for now; what it reports is the mock IOMMU's.

use crate::{context::Context, object::ObjectKind, sys::errno::eopnotsupp, uapi, ucmd::Ucmd};
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use kernel::transmute::AsBytes;
use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// What a bound device's IOMMU reports about it.
pub(crate) struct DeviceInfo {
    /// The IOMMU can track dirty pages for this device.
    pub(crate) dirty_tracking: bool,
    /// log2 of the PASIDs the device has, 0 for none.
    pub(crate) max_pasid_log2: u8,
}

/// `IOMMU_GET_HW_INFO`: the IOMMU's information about device `dev_id`.
/// Copies as much of the data as `data_len` allows, zeroes the rest of the
/// user buffer, and reports the full length.
pub(crate) fn get_hw_info_ioctl(ctx: &Context, ucmd: &mut Ucmd<uapi::iommu_hw_info>) -> Result {
    let cmd = &mut ucmd.cmd;
    if cmd.flags & !uapi::IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 || cmd.__reserved != [0; 3] {
        return Err(eopnotsupp());
    }
    if cmd.flags & uapi::IOMMU_HW_INFO_FLAG_INPUT_TYPE == 0 {
        cmd.__bindgen_anon_1.in_data_type = uapi::IOMMU_HW_INFO_TYPE_DEFAULT;
    }
    let obj = ctx.objects.get(cmd.dev_id)?;
    let ObjectKind::Device(info) = &obj.object().kind else {
        return Err(ENOENT);
    };
    let in_type = cmd.in_data_type();
    // Only the test interface's mock IOMMU has data of its own yet.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    let mock = uapi::iommu_test_hw_info {
        flags: 0,
        test_reg: uapi::IOMMU_HW_INFO_SELFTEST_REGVAL,
    };
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    let (out_type, data) = (uapi::IOMMU_HW_INFO_TYPE_SELFTEST, mock.as_bytes());
    #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
    let (out_type, data): (u32, &[u8]) = (uapi::IOMMU_HW_INFO_TYPE_NONE, &[]);
    if in_type != uapi::IOMMU_HW_INFO_TYPE_DEFAULT && in_type != out_type {
        return Err(eopnotsupp());
    }
    let user_len = cmd.data_len as usize;
    let copy_len = user_len.min(data.len());
    let user = UserPtr::from_addr(cmd.data_uptr as usize);
    let mut writer = UserSlice::new(user, user_len).writer();
    writer.write_slice(&data[..copy_len])?;
    let zeros = [0u8; 64];
    while !writer.is_empty() {
        let n = writer.len().min(zeros.len());
        writer.write_slice(&zeros[..n])?;
    }
    cmd.data_len = data.len() as u32;
    cmd.__bindgen_anon_1.out_data_type = out_type;
    cmd.out_capabilities = u64::from(uapi::IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED);
    if info.dirty_tracking {
        cmd.out_capabilities |= u64::from(uapi::IOMMU_HW_CAP_DIRTY_TRACKING);
    }
    cmd.out_max_pasid_log2 = info.max_pasid_log2;
    ucmd.respond()
}
