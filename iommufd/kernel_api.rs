// SPDX-License-Identifier: GPL-2.0

//! The in-kernel API that vfio calls (`include/linux/iommufd.h`), for this
//! module's contexts, devices and accesses. `sys::kapi` turns C's handles
//! into these types and exports the functions.

use crate::{
    access::{Access, AccessOps, RwFlags},
    context::Context,
    device::{self, IDevice},
    sys::{
        iommu::Device,
        kapi::{kernel_api_entry_points, AccessCallbacks, AccessRwFlags, KernelApi},
        misc::{FileHold, OpenFile},
    },
    vfio_compat,
};
use kernel::{bindings, prelude::*, sync::Arc};

/// This module's implementation of the in-kernel API.
pub(crate) struct Api;

/// The owner side of an access made through the in-kernel API: the
/// creator's callbacks.
pub(crate) struct KernelAccess {
    callbacks: Arc<AccessCallbacks>,
}

impl AccessOps for KernelAccess {
    fn unmap(&self, _access: &Access<Self>, iova: u64, length: u64) {
        // C passes the length as an unsigned long; "to the end" wraps the
        // same way.
        self.callbacks.unmap(iova, length);
    }
}

impl KernelApi for Api {
    type Ctx = Context;
    type Device = IDevice;
    type Access = Access<KernelAccess>;

    fn ctx_file(ctx: &Context) -> &OpenFile {
        &ctx.file
    }

    fn ctx_has_group(ctx: &Context, group: *const bindings::iommu_group) -> bool {
        device::has_group(&ctx.objects, group)
    }

    fn device_bind(ctx: &Context, dev: Device) -> Result<(Arc<IDevice>, u32)> {
        IDevice::bind(ctx, dev)
    }

    fn device_unbind(idev: Arc<IDevice>) {
        IDevice::unbind(idev);
    }

    fn device_attach(idev: &IDevice, pasid: u32, pt_id: &mut u32) -> Result {
        idev.change_pt(pasid, pt_id, false)
    }

    fn device_replace(idev: &IDevice, pasid: u32, pt_id: &mut u32) -> Result {
        idev.change_pt(pasid, pt_id, true)
    }

    fn device_detach(idev: &IDevice, pasid: u32) {
        if pasid == 0 {
            idev.detach();
        }
    }

    fn device_ctx(idev: &IDevice) -> &FileHold {
        idev.ctx_file()
    }

    fn device_id(idev: &IDevice) -> u32 {
        idev.id()
    }

    fn access_create(
        ctx: &Context,
        needs_pin: bool,
        callbacks: Arc<AccessCallbacks>,
    ) -> Result<(Arc<Self::Access>, u32)> {
        let access = Access::create_detached(&ctx.objects, needs_pin, KernelAccess { callbacks })?;
        let id = access.id();
        Ok((access, id))
    }

    fn access_destroy(access: &Arc<Self::Access>) {
        Access::destroy(access);
    }

    fn access_callbacks(access: &Self::Access) -> &AccessCallbacks {
        &access.data.callbacks
    }

    fn access_attach(access: &Arc<Self::Access>, ioas_id: u32) -> Result {
        Access::attach_to(access, ioas_id)
    }

    fn access_replace(access: &Arc<Self::Access>, ioas_id: u32) -> Result {
        Access::replace(access, ioas_id)
    }

    fn access_detach(access: &Arc<Self::Access>) {
        Access::detach(access);
    }

    fn access_pin_pages(
        access: &Self::Access,
        iova: u64,
        length: u64,
        write: bool,
    ) -> Result<KVec<u64>> {
        access.pin_pages(iova, length, write)
    }

    fn access_unpin_pages(access: &Self::Access, iova: u64, length: u64) {
        access.unpin_pages(iova, length);
    }

    fn access_rw(access: &Self::Access, iova: u64, buf: &mut [u8], flags: AccessRwFlags) -> Result {
        access.rw(
            iova,
            buf,
            RwFlags {
                write: flags.write,
                slow_path: false,
                kthread: flags.kthread,
            },
        )
    }

    fn compat_ioas_get_id(ctx: &Context) -> Result<u32> {
        Ok(ctx.objects.get_compat()?.object().id)
    }

    fn compat_ioas_create(ctx: &Context) -> Result {
        vfio_compat::compat_ioas_create(&ctx.objects).map(drop)
    }

    fn compat_set_no_iommu(ctx: &Context) -> Result {
        ctx.objects.set_no_iommu()
    }
}

kernel_api_entry_points!(Api);
