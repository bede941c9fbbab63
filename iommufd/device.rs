// SPDX-License-Identifier: GPL-2.0

//! Device objects and `IOMMU_GET_HW_INFO`.
//!
//! A device bound to the file has an object of its own (`idev`), whose ID
//! userspace passes to device ioctls. Real devices bind through the
//! in-kernel API ([`IDevice`]); the test interface's mock device binds
//! too, and reports the mock IOMMU's data.
//!
//! Devices of one IOMMU group share its attachment: the first device
//! attached to a HWPT attaches the whole group, the last one detached
//! detaches it ([`Group`]). Each attached device's reserved regions are
//! reserved in the HWPT's IOAS.

use crate::{
    context::Context,
    domain::{IoDomain, KernelDomain},
    hw_pagetable::{self, HwptPaging},
    io_pagetable::IovaRange,
    ioas::{get_ioas_in, ioas_of, IoasRef},
    object::{ObjectKind, ObjectRef, ObjectTable},
    sys::{
        errno::eopnotsupp,
        iommu::{self, Device, DmaOwner, GroupAttachment, IommuGroup, PagingDomain},
        misc::FileHold,
        param,
    },
    uapi,
    ucmd::Ucmd,
};
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use kernel::transmute::AsBytes;
use kernel::{
    new_mutex,
    sync::{Arc, Mutex, SetOnce},
};
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
    /// The real device, if it is one (else the test interface's mock).
    pub(crate) kernel: Option<Arc<IDevice>>,
    /// The test interface's mock device, if it is one.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) mock: Option<Arc<crate::mock::MockDevice>>,
}

/// The HWPT a group is attached to, and its attached devices.
struct GroupAttach {
    /// A user reference on the HWPT.
    hwpt: ObjectRef,
    /// The group's attachment to the HWPT's domain.
    attachment: GroupAttachment,
    /// The attached devices of this context in the group: object ID and
    /// device, whose reserved regions are reserved in the HWPT's IOAS.
    devices: KVec<(u32, Device)>,
}

/// An IOMMU group as one context sees it: the devices bound and the
/// attachment they share.
#[pin_data]
pub(crate) struct Group {
    /// The core's group.
    iommu: IommuGroup,
    /// Devices of the group bound to this context (the group leaves the
    /// context's list with the last).
    #[pin]
    state: Mutex<GroupState>,
}

/// A group's state under its lock.
struct GroupState {
    bound: u32,
    attach: Option<GroupAttach>,
}

/// A real device bound to a context (`struct iommufd_device`).
pub(crate) struct IDevice {
    /// The device.
    dev: Device,
    /// Its group in this context.
    group: Arc<Group>,
    /// The context's object table.
    table: Arc<ObjectTable>,
    /// A reference on the context's file, as C's `iommufd_ctx_get()`.
    ctx_file: FileHold,
    /// Its object ID, set once it is in the table.
    id: SetOnce<u32>,
    /// Its IOMMU can force cache-coherent DMA, so its domains do.
    enforce_cc: bool,
    /// DMA ownership, claimed for the context.
    _owner: DmaOwner,
}

/// Finds or adds the group `iommu` in `table`'s list and counts one more
/// bound device in it.
fn get_group(table: &ObjectTable, iommu: IommuGroup) -> Result<Arc<Group>> {
    let mut groups = table.groups.lock();
    for g in groups.iter() {
        if g.iommu.id() == iommu.id() {
            g.state.lock().bound += 1;
            return Ok(g.clone());
        }
    }
    groups.reserve(1, GFP_KERNEL)?;
    let group = Arc::pin_init(
        pin_init!(Group {
            iommu,
            state <- new_mutex!(GroupState { bound: 1, attach: None }),
        }),
        GFP_KERNEL,
    )?;
    groups.push(group.clone(), GFP_KERNEL)?;
    Ok(group)
}

/// Counts one bound device less in `group`; the last one takes it out of
/// `table`'s list.
fn put_group(table: &ObjectTable, group: &Arc<Group>) {
    let mut groups = table.groups.lock();
    let mut st = group.state.lock();
    st.bound = st.bound.saturating_sub(1);
    if st.bound == 0 {
        groups.retain(|g| !Arc::ptr_eq(g, group));
    }
}

/// Whether a device of the core group at `raw` is bound to `table`.
pub(crate) fn has_group(table: &ObjectTable, raw: *const kernel::bindings::iommu_group) -> bool {
    table.groups.lock().iter().any(|g| g.iommu.is(raw))
}

impl IDevice {
    /// Binds `dev` to `ctx`, in C's order: `EINVAL` if its DMA is not
    /// cache coherent, `ENODEV` without a group, `EPERM` if its MSIs cannot
    /// be isolated (unless allowed), `EPERM` if another owner has its
    /// group. Returns the device and its object ID.
    pub(crate) fn bind(ctx: &Context, dev: Device) -> Result<(Arc<Self>, u32)> {
        if !iommu::device_capable(&dev, iommu::Capability::CacheCoherency) {
            return Err(EINVAL);
        }
        let table = &ctx.objects;
        let group = get_group(table, IommuGroup::of(&dev)?)?;
        match Self::bind_in_group(ctx, dev, &group) {
            Ok(r) => Ok(r),
            Err(e) => {
                put_group(table, &group);
                Err(e)
            }
        }
    }

    fn bind_in_group(ctx: &Context, dev: Device, group: &Arc<Group>) -> Result<(Arc<Self>, u32)> {
        if !group.iommu.has_isolated_msi() {
            if !param::allow_unsafe_interrupts() {
                return Err(EPERM);
            }
            dev.warn_unsafe_msi();
        }
        let owner = DmaOwner::claim(&dev, Arc::as_ptr(&ctx.objects).cast())?;
        let idev = Arc::new(
            IDevice {
                enforce_cc: iommu::device_capable(&dev, iommu::Capability::EnforceCacheCoherency),
                dev,
                group: group.clone(),
                table: ctx.objects.clone(),
                ctx_file: ctx.file.hold(),
                id: SetOnce::new(),
                _owner: owner,
            },
            GFP_KERNEL,
        )?;
        let info = DeviceInfo {
            dirty_tracking: false,
            max_pasid_log2: 0,
            kernel: Some(idev.clone()),
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            mock: None,
        };
        let id = ctx.objects.reserve(ObjectKind::Device(info))?.finalize();
        idev.id.populate(id);
        Ok((idev, id))
    }

    /// The object ID.
    pub(crate) fn id(&self) -> u32 {
        self.id.copy().unwrap_or(0)
    }

    /// The reference on the context's file.
    pub(crate) fn ctx_file(&self) -> &FileHold {
        &self.ctx_file
    }

    /// Unbinds the device: its object goes once no ioctl uses it any more,
    /// then DMA ownership is released and the group put. The caller has
    /// detached it.
    pub(crate) fn unbind(this: Arc<Self>) {
        let id = this.id();
        kernel::warn_on!(this
            .group
            .state
            .lock()
            .attach
            .as_ref()
            .is_some_and(|a| a.devices.iter().any(|(d, _)| *d == id)));
        this.table.remove_waiting(id);
        put_group(&this.table, &this.group);
    }

    /// Attaches the device to `*pt_id` (or moves it there, with
    /// `replace`): a HWPT, or an IOAS, whose automatic HWPTs are tried in
    /// turn before a new one is made. Sets `*pt_id` to the HWPT.
    pub(crate) fn change_pt(&self, pasid: u32, pt_id: &mut u32, replace: bool) -> Result {
        let obj = self.table.get(*pt_id)?;
        if !matches!(
            obj.object().kind,
            ObjectKind::Ioas(_) | ObjectKind::HwptPaging(_)
        ) {
            return Err(EINVAL);
        }
        // PASID attach needs a PASID-capable HWPT; none is made yet.
        if pasid != 0 {
            return Err(EINVAL);
        }
        let old = match ioas_of(obj) {
            Ok(ioas) => self.auto_domain(ioas, pt_id, replace)?,
            Err(hwpt) => self.attach_hwpt(&hwpt, replace)?,
        };
        if let Some(old) = old {
            hw_pagetable::detach(&self.table, old);
        }
        Ok(())
    }

    /// Attaches to an automatic HWPT of `ioas`: an existing one that takes
    /// the device, or a new one. Returns the HWPT replaced, if any.
    fn auto_domain(
        &self,
        ioas: IoasRef,
        pt_id: &mut u32,
        replace: bool,
    ) -> Result<Option<ObjectRef>> {
        let _selecting = ioas.auto_domain_lock.lock();
        let candidates = ioas.iopt.lock().auto_domains()?;
        for id in candidates {
            let Ok(hwpt) = self.table.get(id) else {
                continue;
            };
            match self.attach_hwpt(&hwpt, replace) {
                // This domain does not take the device: try the next.
                Err(e) if e == EINVAL => continue,
                Err(e) => return Err(e),
                Ok(old) => {
                    *pt_id = id;
                    return Ok(old);
                }
            }
        }
        let (domain, kernel) = self.new_domain(0)?;
        let ioas = get_ioas_in(&self.table, ioas.id())?;
        let new = hw_pagetable::NewDomain::Kernel(domain, kernel);
        let opts = hw_pagetable::PagingOptions {
            auto: true,
            ..Default::default()
        };
        let hwpt = hw_pagetable::alloc_paging(&self.table, ioas, new, opts)?;
        match self.attach_hwpt(&hwpt, replace) {
            Ok(old) => {
                *pt_id = hwpt.object().id;
                Ok(old)
            }
            Err(e) => {
                hw_pagetable::detach(&self.table, hwpt);
                Err(e)
            }
        }
    }

    /// A new paging domain of the device's IOMMU (`IOMMU_HWPT_ALLOC_*`
    /// `flags`), forcing cache-coherent DMA if the IOMMU can.
    pub(crate) fn new_domain(&self, flags: u32) -> Result<(Arc<dyn IoDomain>, Arc<PagingDomain>)> {
        let domain = PagingDomain::alloc(&self.dev, flags)?;
        let enforce_cc = self.enforce_cc;
        if enforce_cc && !domain.enforce_cache_coherency() {
            // The IOMMU said it could.
            kernel::warn_on!(true);
            return Err(EINVAL);
        }
        let io_domain: Arc<dyn IoDomain> = Arc::new(
            KernelDomain {
                domain: domain.clone(),
                enforce_cc,
            },
            GFP_KERNEL,
        )?;
        Ok((io_domain, domain))
    }

    /// Whether the device's IOMMU can track dirty pages.
    pub(crate) fn dirty_tracking(&self) -> bool {
        iommu::device_capable(&self.dev, iommu::Capability::DirtyTracking)
    }

    /// Attaches to (or moves to, with `replace`) the HWPT `hwpt`: `EINVAL`
    /// if it is not a domain of this device's IOMMU or the group is on
    /// another HWPT (attach), or if the device is not attached (replace).
    /// Returns the HWPT replaced, whose reference the caller drops.
    fn attach_hwpt(&self, hwpt: &ObjectRef, replace: bool) -> Result<Option<ObjectRef>> {
        let ObjectKind::HwptPaging(new) = &hwpt.object().kind else {
            return Err(EINVAL);
        };
        let domain = new.paging_domain().ok_or(EINVAL)?;
        let id = self.id();
        let mut st = self.group.state.lock();
        if replace {
            return self.replace_locked(&mut st, hwpt, new, domain);
        }
        if let Some(a) = &st.attach {
            if a.hwpt.object().id != hwpt.object().id {
                return Err(EINVAL);
            }
            if a.devices.iter().any(|(d, _)| *d == id) {
                return Err(EBUSY);
            }
        }
        let regions = reserved_ranges(&self.dev)?;
        let mut devices = KVec::new();
        devices.reserve(1, GFP_KERNEL)?;
        if let Some(a) = &mut st.attach {
            a.devices.reserve(1, GFP_KERNEL)?;
        }
        new.ioas().iopt.lock().reserve_device(id, &regions)?;
        match &mut st.attach {
            Some(a) => a.devices.push((id, self.dev.clone()), GFP_KERNEL)?,
            None => {
                let attachment = match GroupAttachment::attach(&self.dev, domain) {
                    Ok(a) => a,
                    Err(e) => {
                        new.ioas().iopt.lock().unreserve_device(id);
                        return Err(e);
                    }
                };
                devices.push((id, self.dev.clone()), GFP_KERNEL)?;
                st.attach = Some(GroupAttach {
                    hwpt: hwpt.clone(),
                    attachment,
                    devices,
                });
            }
        }
        Ok(None)
    }

    /// Replace, under the group lock: the group moves to `domain` in one
    /// step; when the IOAS changes, every attached device's regions are
    /// reserved in the new one first and released from the old one after.
    fn replace_locked(
        &self,
        st: &mut GroupState,
        hwpt: &ObjectRef,
        new: &HwptPaging,
        domain: &Arc<PagingDomain>,
    ) -> Result<Option<ObjectRef>> {
        let id = self.id();
        let Some(a) = &mut st.attach else {
            return Err(EINVAL);
        };
        if !a.devices.iter().any(|(d, _)| *d == id) {
            return Err(EINVAL);
        }
        if a.hwpt.object().id == hwpt.object().id {
            return Ok(None);
        }
        let ObjectKind::HwptPaging(old) = &a.hwpt.object().kind else {
            return Err(EINVAL);
        };
        let same_ioas = old.ioas().id() == new.ioas().id();
        if !same_ioas {
            let mut iopt = new.ioas().iopt.lock();
            for (k, (dev_id, dev)) in a.devices.iter().enumerate() {
                let res = reserved_ranges(dev).and_then(|r| iopt.reserve_device(*dev_id, &r));
                if let Err(e) = res {
                    for (undo, _) in &a.devices[..k] {
                        iopt.unreserve_device(*undo);
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = a.attachment.replace(domain) {
            if !same_ioas {
                let mut iopt = new.ioas().iopt.lock();
                for (dev_id, _) in a.devices.iter() {
                    iopt.unreserve_device(*dev_id);
                }
            }
            return Err(e);
        }
        if !same_ioas {
            let mut iopt = old.ioas().iopt.lock();
            for (dev_id, _) in a.devices.iter() {
                iopt.unreserve_device(*dev_id);
            }
        }
        Ok(Some(core::mem::replace(&mut a.hwpt, hwpt.clone())))
    }

    /// Detaches the device; the last of its group detaches the group,
    /// which then blocks DMA, before an automatic HWPT left unused is
    /// destroyed (unmapping its domain). Nothing if it is not attached.
    pub(crate) fn detach(&self) {
        let id = self.id();
        let mut st = self.group.state.lock();
        let Some(a) = &mut st.attach else {
            return;
        };
        let Some(pos) = a.devices.iter().position(|(d, _)| *d == id) else {
            return;
        };
        let _ = a.devices.remove(pos);
        if let ObjectKind::HwptPaging(h) = &a.hwpt.object().kind {
            h.ioas().iopt.lock().unreserve_device(id);
        }
        let gone = if a.devices.is_empty() {
            st.attach.take()
        } else {
            None
        };
        drop(st);
        if let Some(GroupAttach {
            hwpt, attachment, ..
        }) = gone
        {
            drop(attachment);
            hw_pagetable::detach(&self.table, hwpt);
        }
    }
}

/// The reserved regions of `dev` as IOVA ranges.
fn reserved_ranges(dev: &Device) -> Result<KVec<IovaRange>> {
    let regions = iommu::reserved_regions(dev)?;
    let mut out = KVec::with_capacity(regions.len(), GFP_KERNEL)?;
    for r in regions.iter() {
        out.push(
            IovaRange {
                start: r.start,
                last: r.last,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(out)
}

/// Copies as much of `data` as the user buffer of `cmd` takes, zeroes the
/// rest of it, and reports the full length.
fn write_hw_data(cmd: &mut uapi::iommu_hw_info, data: &[u8]) -> Result {
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
    Ok(())
}

/// `IOMMU_GET_HW_INFO`: the IOMMU's information about device `dev_id`.
/// Copies as much of the data as `data_len` allows, zeroes the rest of the
/// user buffer, and reports the full length.
pub(crate) fn get_hw_info_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_hw_info>) -> Result {
    let cmd = &mut *ucmd.cmd;
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
    if let Some(idev) = &info.kernel {
        let hw = idev.dev.hw_info(in_type)?;
        write_hw_data(cmd, hw.data())?;
        cmd.__bindgen_anon_1.out_data_type = hw.kind;
        cmd.out_capabilities = hw.capabilities;
        cmd.out_max_pasid_log2 = hw.max_pasid_log2;
        return ucmd.respond();
    }
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
    write_hw_data(cmd, data)?;
    cmd.__bindgen_anon_1.out_data_type = out_type;
    cmd.out_capabilities = u64::from(uapi::IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED);
    if info.dirty_tracking {
        cmd.out_capabilities |= u64::from(uapi::IOMMU_HW_CAP_DIRTY_TRACKING);
    }
    cmd.out_max_pasid_log2 = info.max_pasid_log2;
    ucmd.respond()
}
