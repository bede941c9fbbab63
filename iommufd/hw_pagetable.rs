// SPDX-License-Identifier: GPL-2.0

//! HWPT_PAGING objects: a domain attached to an IOAS.
//!
//! A device attached to an IOAS gets an automatic HWPT: the first existing
//! automatic one of the IOAS, or a new one. The HWPT holds a user reference
//! on its IOAS (so the IOAS cannot be destroyed under it), and each attached
//! device holds one on the HWPT. An automatic HWPT goes when its last device
//! detaches.

use crate::{
    context::Context,
    domain::IoDomain,
    io_pagetable::AttachedDomain,
    ioas::{get_ioas_in, ioas_of, IoasRef},
    object::{ObjectKind, ObjectRef, ObjectTable},
    sys::{errno::eopnotsupp, iommu::PagingDomain},
    uapi,
    ucmd::Ucmd,
};
use kernel::{prelude::*, sync::Arc, sync::SetOnce};

/// A domain attached to an IOAS, as an object.
pub(crate) struct HwptPaging {
    /// The IOAS whose areas the domain maps.
    ioas: IoasRef,
    /// The domain.
    pub(crate) domain: Arc<dyn IoDomain>,
    /// Made for a device attaching to the IOAS (else by `HWPT_ALLOC`).
    auto: bool,
    /// The real IOMMU domain behind `domain`, if it is one.
    kernel: Option<Arc<PagingDomain>>,
    /// Its object ID, set once the domain is attached to the IOAS.
    id: SetOnce<u32>,
}

impl HwptPaging {
    /// The real IOMMU domain, if it is one (else the mock's).
    pub(crate) fn paging_domain(&self) -> Option<&Arc<PagingDomain>> {
        self.kernel.as_ref()
    }

    /// The IOAS whose areas it maps.
    pub(crate) fn ioas(&self) -> &IoasRef {
        &self.ioas
    }
}

impl Drop for HwptPaging {
    fn drop(&mut self) {
        if let Some(id) = self.id.copy() {
            self.ioas.iopt.lock().remove_domain(id);
        }
    }
}

/// Creates a HWPT (automatic with `auto`) for `domain` on `ioas` and
/// returns a user reference to it. The domain is filled from the IOAS's
/// areas first, so this fails (`EADDRINUSE`, `EFAULT`, `ENOMEM`, ...) with
/// nothing changed.
pub(crate) fn alloc_paging(
    table: &ObjectTable,
    ioas: IoasRef,
    domain: Arc<dyn IoDomain>,
    kernel: Option<Arc<PagingDomain>>,
    auto: bool,
) -> Result<ObjectRef> {
    let hwpt = Arc::new(
        HwptPaging {
            ioas,
            domain,
            auto,
            kernel,
            id: SetOnce::new(),
        },
        GFP_KERNEL,
    )?;
    let reservation = table.reserve(ObjectKind::HwptPaging(hwpt.clone()))?;
    hwpt.ioas.iopt.lock().add_domain(AttachedDomain {
        domain: hwpt.domain.clone(),
        hwpt_id: reservation.id,
        auto,
    })?;
    hwpt.id.populate(reservation.id);
    reservation.finalize_get()
}

/// Attaches a device to `pt_id`: an existing HWPT, or an IOAS, which gives
/// its automatic HWPT or a new one with the domain `new_domain` makes.
/// Returns a user reference on the HWPT. `ENOENT` for a bad ID, `EINVAL`
/// for an object that is neither. The test interface's mock device
/// attaches so.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn attach(
    table: &ObjectTable,
    pt_id: u32,
    new_domain: impl FnOnce() -> Result<Arc<dyn IoDomain>>,
) -> Result<ObjectRef> {
    let obj = table.get(pt_id)?;
    let ioas = match ioas_of(obj) {
        Ok(ioas) => ioas,
        Err(obj) if matches!(obj.object().kind, ObjectKind::HwptPaging(_)) => return Ok(obj),
        Err(_) => return Err(EINVAL),
    };
    let existing = ioas.iopt.lock().auto_domain();
    if let Some(hwpt_id) = existing {
        if let Ok(hwpt) = table.get(hwpt_id) {
            return Ok(hwpt);
        }
    }
    alloc_paging(table, ioas, new_domain()?, None, true)
}

/// Drops a device's reference on a HWPT; an automatic HWPT with no device
/// left is destroyed.
pub(crate) fn detach(table: &ObjectTable, hwpt: ObjectRef) {
    let id = hwpt.object().id;
    let auto = matches!(&hwpt.object().kind, ObjectKind::HwptPaging(h) if h.auto);
    drop(hwpt);
    if auto {
        // Busy if another device still uses it.
        let _ = table.destroy(id);
    }
}

/// `IOMMU_HWPT_ALLOC` of a paging HWPT on an IOAS, for a real device or a
/// mock one, with C's checks in C's order. Nested HWPTs, PASID-capable
/// ones and driver data answer `EOPNOTSUPP`.
pub(crate) fn alloc_ioctl(ctx: &Context, ucmd: &mut Ucmd<uapi::iommu_hwpt_alloc>) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let none = cmd.data_type == uapi::IOMMU_HWPT_DATA_NONE;
    if (none && cmd.data_len != 0) || (!none && cmd.data_len == 0) {
        return Err(EINVAL);
    }
    let dev = ctx.objects.get(cmd.dev_id)?;
    let ObjectKind::Device(info) = &dev.object().kind else {
        return Err(ENOENT);
    };
    let pt = ctx.objects.get(cmd.pt_id).map_err(|_| EINVAL)?;
    // Nested HWPTs (on a HWPT) are not supported yet.
    let ioas = ioas_of(pt).map_err(|_| eopnotsupp())?;
    const VALID: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT
        | uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING
        | uapi::IOMMU_HWPT_FAULT_ID_VALID
        | uapi::IOMMU_HWPT_ALLOC_PASID;
    let flags = cmd.flags;
    if flags & !VALID != 0 {
        return Err(eopnotsupp());
    }
    let dirty_capable = match &info.kernel {
        Some(idev) => idev.dirty_tracking(),
        None => info.dirty_tracking,
    };
    if flags & uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0 && !dirty_capable {
        return Err(eopnotsupp());
    }
    if flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0
        && flags & uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0
    {
        return Err(eopnotsupp());
    }
    // PASID-capable HWPTs and driver data are not supported; there are no
    // fault queues yet, so no fault ID names one.
    if flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0 || !none {
        return Err(eopnotsupp());
    }
    if flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0 {
        return Err(ENOENT);
    }
    let _selecting = ioas.auto_domain_lock.lock();
    let (domain, kernel) = match &info.kernel {
        Some(idev) => {
            let (domain, kernel) = idev.new_domain(flags)?;
            (domain, Some(kernel))
        }
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        None => (crate::mock::new_mock_domain()?, None),
        #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
        None => return Err(eopnotsupp()),
    };
    let ioas = get_ioas_in(&ctx.objects, ioas.id())?;
    let hwpt = alloc_paging(&ctx.objects, ioas, domain, kernel, false)?;
    let id = hwpt.object().id;
    drop(hwpt);
    ucmd.cmd.out_hwpt_id = id;
    if let Err(e) = ucmd.respond() {
        let _ = ctx.objects.destroy(id);
        return Err(e);
    }
    Ok(())
}
