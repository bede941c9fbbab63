// SPDX-License-Identifier: GPL-2.0

//! HWPT_PAGING objects: a domain attached to an IOAS.
//!
//! A device attached to an IOAS gets an automatic HWPT: the first existing
//! automatic one of the IOAS, or a new one. The HWPT holds a user reference
//! on its IOAS (so the IOAS cannot be destroyed under it), and each attached
//! device holds one on the HWPT. An automatic HWPT goes when its last device
//! detaches.

#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use crate::mock::MockDomain;
use crate::{
    context::Context,
    domain::IoDomain,
    io_pagetable::AttachedDomain,
    ioas::{get_ioas_in, ioas_of, IoasRef},
    iova_bitmap::IovaBitmap,
    object::{ObjectKind, ObjectPart, ObjectRef, ObjectTable},
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
    /// Made with `IOMMU_HWPT_ALLOC_PASID`: it may serve PASIDs, and a
    /// device whose PASIDs are attached may attach its RID only to such a
    /// HWPT (C's `pasid_compat`).
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) pasid_compat: bool,
    /// The real IOMMU domain behind `domain`, if it is one.
    kernel: Option<Arc<PagingDomain>>,
    /// The mock domain behind `domain`, if it is one.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    mock: Option<Arc<MockDomain>>,
    /// Its object ID, set once the domain is attached to the IOAS.
    id: SetOnce<u32>,
}

impl HwptPaging {
    /// The real IOMMU domain, if it is one (else the mock's).
    pub(crate) fn paging_domain(&self) -> Option<&Arc<PagingDomain>> {
        self.kernel.as_ref()
    }

    /// The mock domain, if it is one (test interface).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn mock_domain(&self) -> Option<&MockDomain> {
        self.mock.as_deref()
    }

    /// Whether it is an automatic HWPT of the IOAS `ioas_id`.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn auto_on(&self, ioas_id: u32) -> bool {
        self.auto && self.ioas.id() == ioas_id
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

/// The domain of a new HWPT, with what is behind it.
pub(crate) enum NewDomain {
    /// A real IOMMU's paging domain, as a domain and as itself.
    Kernel(Arc<dyn IoDomain>, Arc<PagingDomain>),
    /// The test interface's mock domain.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    Mock(Arc<MockDomain>),
}

/// Creates a HWPT (automatic with `auto`, PASID-compatible with
/// `pasid_compat`) for the domain `new` on `ioas` and returns a user
/// reference to it. The domain is filled from the
/// IOAS's areas first, so this fails (`EADDRINUSE`, `EFAULT`, `ENOMEM`,
/// ...) with nothing changed.
pub(crate) fn alloc_paging(
    table: &ObjectTable,
    ioas: IoasRef,
    new: NewDomain,
    auto: bool,
    pasid_compat: bool,
) -> Result<ObjectRef> {
    let hwpt = match new {
        NewDomain::Kernel(domain, kernel) => HwptPaging {
            ioas,
            domain,
            auto,
            pasid_compat,
            kernel: Some(kernel),
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            mock: None,
            id: SetOnce::new(),
        },
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        NewDomain::Mock(mock) => HwptPaging {
            ioas,
            domain: mock.clone(),
            auto,
            pasid_compat,
            kernel: None,
            mock: Some(mock),
            id: SetOnce::new(),
        },
    };
    let hwpt = Arc::new(hwpt, GFP_KERNEL)?;
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
    new_domain: impl FnOnce() -> Result<Arc<MockDomain>>,
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
    alloc_paging(table, ioas, NewDomain::Mock(new_domain()?), true, false)
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
    // Nested HWPTs (on a HWPT) are not supported yet; other kinds of
    // object are EINVAL, as in C.
    let ioas = match ioas_of(pt) {
        Ok(ioas) => ioas,
        Err(pt) if matches!(pt.object().kind, ObjectKind::HwptPaging(_)) => {
            return Err(eopnotsupp())
        }
        Err(_) => return Err(EINVAL),
    };
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
    // A real driver's data is not supported; there are no fault queues
    // yet, so no fault ID names one. (A PASID-capable HWPT attaches as any
    // other; only mock devices attach PASIDs.)
    if !none && info.kernel.is_some() {
        return Err(eopnotsupp());
    }
    let _selecting = ioas.auto_domain_lock.lock();
    let new = match &info.kernel {
        Some(idev) => {
            let (domain, kernel) = idev.new_domain(flags & !uapi::IOMMU_HWPT_FAULT_ID_VALID)?;
            NewDomain::Kernel(domain, kernel)
        }
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        None => {
            let data = (!none).then_some((cmd.data_type, cmd.data_len, cmd.data_uptr));
            NewDomain::Mock(crate::mock::alloc_hwpt_domain(flags, data)?)
        }
        #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
        None => return Err(eopnotsupp()),
    };
    let ioas = get_ioas_in(&ctx.objects, ioas.id())?;
    let pasid_compat = flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0;
    let hwpt = alloc_paging(&ctx.objects, ioas, new, false, pasid_compat)?;
    let id = hwpt.object().id;
    drop(hwpt);
    // As C, the fault queue is looked up last; none exists yet.
    if flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0 {
        let _ = ctx.objects.destroy(id);
        return Err(ENOENT);
    }
    ucmd.cmd.out_hwpt_id = id;
    if let Err(e) = ucmd.respond() {
        let _ = ctx.objects.destroy(id);
        return Err(e);
    }
    Ok(())
}

/// The paging HWPT `id`: `ENOENT` if there is no such HWPT.
fn get_hwpt_paging(ctx: &Context, id: u32) -> Result<ObjectPart<HwptPaging>> {
    ctx.objects
        .get(id)?
        .project(|kind| match kind {
            ObjectKind::HwptPaging(hwpt) => Some(&**hwpt),
            _ => None,
        })
        .map_err(|_| ENOENT)
}

/// `IOMMU_HWPT_SET_DIRTY_TRACKING`: turns the domain's dirty tracking on
/// (clearing what it had recorded) or off. `EOPNOTSUPP` if it cannot
/// track.
pub(crate) fn set_dirty_tracking_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<uapi::iommu_hwpt_set_dirty_tracking>,
) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags & !uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0 {
        return Err(eopnotsupp());
    }
    let enable = cmd.flags & uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
    let hwpt = get_hwpt_paging(ctx, cmd.hwpt_id)?;
    if !hwpt.domain.has_dirty_tracking() {
        return Err(eopnotsupp());
    }
    let iopt = hwpt.ioas.iopt.lock();
    if enable {
        // A clean start: what was recorded before is dropped.
        iopt.for_each_area_range(|start, last| {
            hwpt.domain
                .read_and_clear_dirty(start, last - start + 1, false, &mut |_, _| {});
        });
    }
    hwpt.domain.set_dirty_tracking(enable)
}

/// `IOMMU_HWPT_GET_DIRTY_BITMAP`: sets, in the user bitmap, the bit of
/// each `page_size` page of `[iova, iova + length)` the domain recorded
/// dirty, and clears the record unless `NO_CLEAR`. Checks the range as C;
/// like C, it stops quietly at a hole in the areas or at a bitmap it
/// cannot write.
pub(crate) fn get_dirty_bitmap_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<uapi::iommu_hwpt_get_dirty_bitmap>,
) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags & !uapi::IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0 || cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let no_clear = cmd.flags & uapi::IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0;
    let hwpt = get_hwpt_paging(ctx, cmd.hwpt_id)?;
    let (iova, length, page_size) = (cmd.iova, cmd.length, cmd.page_size);
    let iopt = hwpt.ioas.iopt.lock();
    // C's range check, with its wrapping arithmetic for a zero length.
    let last = iova.checked_add(length.wrapping_sub(1)).ok_or(EOVERFLOW)?;
    let align = iopt.iova_alignment();
    if iova & (align - 1) != 0 || last.wrapping_add(1) & (align - 1) != 0 {
        return Err(EINVAL);
    }
    if page_size == 0 {
        return Err(EINVAL);
    }
    if iova & (page_size.wrapping_sub(1)) != 0
        || last.wrapping_add(1) & (page_size.wrapping_sub(1)) != 0
    {
        return Err(EINVAL);
    }
    if !hwpt.domain.has_dirty_tracking() {
        return Err(eopnotsupp());
    }
    let mut bitmap = IovaBitmap::new(iova, length, page_size, cmd.data)?;
    // As C, the walk stops quietly at the first hole, and bits the bitmap
    // cannot take are dropped: the answer is 0 either way.
    let _ = iopt.for_each_access_piece(iova, last, |p| {
        hwpt.domain
            .read_and_clear_dirty(p.iova, p.last - p.iova + 1, no_clear, &mut |at, len| {
                bitmap.record(at, len)
            });
        Ok(())
    });
    bitmap.finish();
    Ok(())
}
