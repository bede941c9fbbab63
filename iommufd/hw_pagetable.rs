// SPDX-License-Identifier: GPL-2.0

//! HWPT objects: paging HWPTs (a domain attached to an IOAS) and nested
//! HWPTs (a stage-1 domain over a paging HWPT).
//!
//! A device attached to an IOAS gets an automatic HWPT: the first existing
//! automatic one of the IOAS, or a new one. The HWPT holds a user reference
//! on its IOAS (so the IOAS cannot be destroyed under it), and each attached
//! device holds one on the HWPT. An automatic HWPT goes when its last device
//! detaches. A nested HWPT holds a user reference on its parent, and a HWPT
//! made with a fault queue one on the queue.

use crate::{
    context::Context,
    device::DeviceInfo,
    domain::IoDomain,
    eventq::{fault_of, get_fault, Fault},
    io_pagetable::AttachedDomain,
    ioas::{get_ioas_in, ioas_of, IoasRef},
    iova_bitmap::IovaBitmap,
    object::{ObjectKind, ObjectPart, ObjectRef, ObjectTable},
    sys::{errno::eopnotsupp, iommu::PagingDomain, PAGE_SIZE_U64},
    uapi,
    ucmd::Ucmd,
};
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use crate::{mock::MockDomain, viommu::Viommu};
use core::ops::ControlFlow;
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
    /// Made with `IOMMU_HWPT_ALLOC_NEST_PARENT`: nested HWPTs may sit on it.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    nest_parent: bool,
    /// A user reference on the fault queue its faults go to, if any.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    fault: Option<ObjectRef>,
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

    /// Made with `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn nest_parent(&self) -> bool {
        self.nest_parent
    }
}

/// A nested HWPT (`IOMMUFD_OBJ_HWPT_NESTED`): a stage-1 domain that
/// translates through the stage 2 of a paging HWPT, its parent. Only the
/// mock driver makes them (real IOMMUs: not yet).
#[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
pub(crate) struct HwptNested {
    /// A user reference on the parent paging HWPT, or on the vIOMMU it was
    /// made on, which cannot be destroyed while this one lives.
    _parent: ObjectRef,
    /// The vIOMMU it was made on, if any.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    viommu: Option<Arc<Viommu>>,
    /// Made with `IOMMU_HWPT_ALLOC_PASID` (see [`HwptPaging`]).
    pub(crate) pasid_compat: bool,
    /// A user reference on the fault queue its faults go to, if any.
    fault: Option<ObjectRef>,
    /// The mock driver's nested domain.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) mock: crate::mock::MockNested,
}

impl HwptNested {
    /// The vIOMMU it was made on, if any.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn viommu(&self) -> Option<&Arc<Viommu>> {
        self.viommu.as_ref()
    }
}

/// The fault queue of the HWPT `hwpt` (paging or nested), if it has one.
#[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
pub(crate) fn fault_queue(hwpt: &ObjectRef) -> Option<&Arc<Fault>> {
    let fault = match &hwpt.object().kind {
        ObjectKind::HwptPaging(h) => h.fault.as_ref(),
        ObjectKind::HwptNested(h) => h.fault.as_ref(),
        _ => None,
    };
    fault.and_then(fault_of)
}

/// Whether `obj` is a HWPT, paging or nested.
#[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
pub(crate) fn is_hwpt(obj: &ObjectRef) -> bool {
    matches!(
        obj.object().kind,
        ObjectKind::HwptPaging(_) | ObjectKind::HwptNested(_)
    )
}

/// Whether `obj` is a HWPT made with `IOMMU_HWPT_ALLOC_PASID`.
#[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
pub(crate) fn is_pasid_compat(obj: &ObjectRef) -> bool {
    match &obj.object().kind {
        ObjectKind::HwptPaging(h) => h.pasid_compat,
        ObjectKind::HwptNested(h) => h.pasid_compat,
        _ => false,
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

/// How a new paging HWPT is made.
#[derive(Default)]
pub(crate) struct PagingOptions {
    /// Made for a device attaching to the IOAS (else by `HWPT_ALLOC`).
    pub(crate) auto: bool,
    /// Made with `IOMMU_HWPT_ALLOC_PASID`.
    pub(crate) pasid_compat: bool,
    /// Made with `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    pub(crate) nest_parent: bool,
    /// A user reference on the fault queue its faults go to.
    pub(crate) fault: Option<ObjectRef>,
}

/// Creates a HWPT made as `opts` says for the domain `new` on `ioas` and
/// returns a user reference to it. The domain is filled from the IOAS's
/// areas first, so this fails (`EADDRINUSE`, `EFAULT`, `ENOMEM`, ...) with
/// nothing changed.
pub(crate) fn alloc_paging(
    table: &ObjectTable,
    ioas: IoasRef,
    new: NewDomain,
    opts: PagingOptions,
) -> Result<ObjectRef> {
    let PagingOptions {
        auto,
        pasid_compat,
        nest_parent,
        fault,
    } = opts;
    let hwpt = match new {
        NewDomain::Kernel(domain, kernel) => HwptPaging {
            ioas,
            domain,
            auto,
            pasid_compat,
            nest_parent,
            fault,
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
            nest_parent,
            fault,
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
        Err(obj) if is_hwpt(&obj) => return Ok(obj),
        Err(_) => return Err(EINVAL),
    };
    let existing = ioas.iopt.lock().auto_domain();
    if let Some(hwpt_id) = existing {
        if let Ok(hwpt) = table.get(hwpt_id) {
            return Ok(hwpt);
        }
    }
    let opts = PagingOptions {
        auto: true,
        ..Default::default()
    };
    alloc_paging(table, ioas, NewDomain::Mock(new_domain()?), opts)
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

/// `IOMMU_HWPT_ALLOC`: a paging HWPT on an IOAS, for a real device or a
/// mock one, or a nested HWPT on a paging one (mock devices only), with
/// C's checks in C's order. The fault queue is looked up first but, as C
/// finds it last, its `ENOENT` comes only once the HWPT could be made.
pub(crate) fn alloc_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>) -> Result {
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
    let fault = if cmd.flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0 {
        Some(get_fault(&ctx.objects, cmd.fault_id))
    } else {
        None
    };
    let fault_ref = fault.as_ref().and_then(|f| f.as_ref().ok().cloned());
    let id = match ioas_of(pt) {
        Ok(ioas) => alloc_paging_ioctl(ctx, info, ioas, cmd, fault_ref)?,
        Err(pt) if matches!(pt.object().kind, ObjectKind::HwptPaging(_)) => {
            alloc_nested(ctx, info, pt, cmd, fault_ref)?
        }
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        Err(pt) if matches!(pt.object().kind, ObjectKind::Viommu(_)) => {
            alloc_nested(ctx, info, pt, cmd, fault_ref)?
        }
        Err(_) => return Err(EINVAL),
    };
    if let Some(Err(e)) = fault {
        let _ = ctx.objects.destroy(id);
        return Err(e);
    }
    ucmd.cmd.out_hwpt_id = id;
    if let Err(e) = ucmd.respond() {
        let _ = ctx.objects.destroy(id);
        return Err(e);
    }
    Ok(())
}

/// `IOMMU_HWPT_ALLOC` of a paging HWPT on `ioas`: its ID.
fn alloc_paging_ioctl(
    ctx: &Context,
    info: &DeviceInfo,
    ioas: IoasRef,
    cmd: &uapi::iommu_hwpt_alloc,
    fault: Option<ObjectRef>,
) -> Result<u32> {
    const VALID: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT
        | uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING
        | uapi::IOMMU_HWPT_FAULT_ID_VALID
        | uapi::IOMMU_HWPT_ALLOC_PASID;
    let flags = cmd.flags;
    let none = cmd.data_type == uapi::IOMMU_HWPT_DATA_NONE;
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
    // A real driver's data is not supported, nor are its I/O page faults
    // (a PASID-capable HWPT attaches as any other; only mock devices
    // attach PASIDs).
    if info.kernel.is_some() && (!none || fault.is_some()) {
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
    let opts = PagingOptions {
        auto: false,
        pasid_compat: flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0,
        nest_parent: flags & uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0,
        fault,
    };
    let hwpt = alloc_paging(&ctx.objects, ioas, new, opts)?;
    Ok(hwpt.object().id)
}

/// `IOMMU_HWPT_ALLOC` of a nested HWPT on the paging HWPT or vIOMMU
/// `parent`: its ID. `EOPNOTSUPP` for flags a nested HWPT cannot take, no
/// driver data or a real device; `EINVAL` for a parent that is automatic,
/// not made as a nest parent, or not the mock driver's, and for a vIOMMU
/// of another IOMMU than the device's.
fn alloc_nested(
    ctx: &Context,
    info: &DeviceInfo,
    parent: ObjectRef,
    cmd: &uapi::iommu_hwpt_alloc,
    fault: Option<ObjectRef>,
) -> Result<u32> {
    let flags = cmd.flags;
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    let viommu = match &parent.object().kind {
        // vIOMMUs are the mock IOMMU's: a real device's IOMMU is another.
        ObjectKind::Viommu(_) if info.kernel.is_some() => return Err(EINVAL),
        ObjectKind::Viommu(v) => Some(v.clone()),
        _ => None,
    };
    if flags & !(uapi::IOMMU_HWPT_FAULT_ID_VALID | uapi::IOMMU_HWPT_ALLOC_PASID) != 0
        || cmd.data_len == 0
        || info.kernel.is_some()
    {
        return Err(eopnotsupp());
    }
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    {
        if let ObjectKind::HwptPaging(paging) = &parent.object().kind {
            if paging.auto || !paging.nest_parent || paging.mock.is_none() {
                return Err(EINVAL);
            }
        }
        let mock = crate::mock::MockNested::new(cmd.data_type, cmd.data_len, cmd.data_uptr)?;
        let hwpt = HwptNested {
            _parent: parent,
            viommu,
            pasid_compat: flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0,
            fault,
            mock,
        };
        let hwpt = Arc::new(hwpt, GFP_KERNEL)?;
        Ok(ctx
            .objects
            .reserve(ObjectKind::HwptNested(hwpt))?
            .finalize())
    }
    #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
    {
        let _ = (ctx, parent, fault);
        Err(eopnotsupp())
    }
}

/// The number of entries `IOMMU_HWPT_INVALIDATE` takes at most.
const INVALIDATE_ENTRY_NUM_MAX: u32 = 1 << 19;

/// `IOMMU_HWPT_INVALIDATE`: hands the array of invalidation requests to
/// the nested HWPT's driver, which reports in `entry_num` how many it
/// handled, on error too. A paging HWPT or any other object: `EINVAL`.
pub(crate) fn invalidate_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_invalidate>,
) -> Result {
    let (done, result) = invalidate(ctx, ucmd.cmd);
    ucmd.cmd.entry_num = done;
    if ucmd.respond().is_err() {
        return Err(EFAULT);
    }
    result
}

/// The requests `IOMMU_HWPT_INVALIDATE` handled, and its answer.
fn invalidate(ctx: &Context, cmd: &uapi::iommu_hwpt_invalidate) -> (u32, Result) {
    if cmd.__reserved != 0 {
        return (0, Err(eopnotsupp()));
    }
    // Bounded, so that one call cannot keep the CPU.
    if cmd.entry_num != 0
        && (cmd.data_uptr == 0
            || cmd.entry_len == 0
            || u64::from(cmd.entry_len) > PAGE_SIZE_U64
            || cmd.entry_num > INVALIDATE_ENTRY_NUM_MAX)
    {
        return (0, Err(EINVAL));
    }
    let pt = match ctx.objects.get(cmd.hwpt_id) {
        Ok(pt) => pt,
        Err(e) => return (0, Err(e)),
    };
    match &pt.object().kind {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        ObjectKind::HwptNested(nested) => {
            nested
                .mock
                .invalidate(cmd.data_type, cmd.data_uptr, cmd.entry_len, cmd.entry_num)
        }
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        ObjectKind::Viommu(viommu) => {
            viommu.invalidate(cmd.data_type, cmd.data_uptr, cmd.entry_len, cmd.entry_num)
        }
        _ => (0, Err(EINVAL)),
    }
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
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_set_dirty_tracking>,
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
                .read_and_clear_dirty(start, last - start + 1, false, &mut |_, _| {
                    ControlFlow::Continue(())
                });
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
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_get_dirty_bitmap>,
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
    // The domain's walk stops at each record the pinned window cannot
    // take; the record is made unlocked, then the walk goes on.
    let _ = iopt.for_each_access_piece(iova, last, |p| {
        let mut at = p.iova;
        loop {
            let resume =
                hwpt.domain
                    .read_and_clear_dirty(at, p.last - at + 1, no_clear, &mut |at, len| {
                        bitmap.record_in_window(at, len)
                    });
            bitmap.record_held_back();
            match resume {
                Some(next) => at = next,
                None => return Ok(()),
            }
        }
    });
    bitmap.finish();
    Ok(())
}
