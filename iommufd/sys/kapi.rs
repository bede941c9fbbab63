// SPDX-License-Identifier: GPL-2.0

//! The in-kernel API vfio calls (`include/linux/iommufd.h`), as C functions
//! named `iommufd_rs_*` (see `kapi.h`; `kapi_exports.c` exports them in
//! namespace `IOMMUFD_RS`, and `iommufd_rs_vfio.ko` gives them the
//! upstream names).
//!
//! The logic implements [`KernelApi`]; [`kernel_api_entry_points!`] makes
//! the C functions for an implementation. Here the handles C holds are
//! turned into references:
//! - a context (`struct iommufd_ctx *`) is the `private_data` of one of our
//!   files, valid while the caller holds a reference to that file (which
//!   C's API requires);
//! - a device or an access is an `Arc` given to the caller by bind or
//!   create and taken back by unbind or destroy.

use super::misc::{is_our_file, FileHold, FileOps, OpenFile};
use super::{errno::ebadfd, iommu::Device};
use core::{
    ffi::{c_int, c_ulong, c_void},
    ptr::NonNull,
};
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    types::ForeignOwnable,
};

// `struct page` holds an empty arch spinlock type on this config, which the
// lint flags; only pointers cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_pfn_to_page(pfn: usize) -> *mut bindings::page;
}

/// `IOMMUFD_ACCESS_RW_WRITE`.
const ACCESS_RW_WRITE: u32 = 1 << 0;
/// `IOMMUFD_ACCESS_RW_KTHREAD`.
const ACCESS_RW_KTHREAD: u32 = 1 << 1;

/// The flags of `iommufd_access_rw()`.
#[derive(Clone, Copy)]
pub(crate) struct AccessRwFlags {
    /// Write to IOAS memory (else read).
    pub(crate) write: bool,
    /// The caller is a kernel thread without an address space.
    pub(crate) kthread: bool,
}

/// The C `unmap` callback of an access and its data.
type UnmapFn = unsafe extern "C" fn(data: *mut c_void, iova: c_ulong, length: c_ulong);

/// The callbacks of an access made through the C API, until it is closed.
///
/// # Invariants
///
/// While `open` holds a callback, calling it with its data is sound: the
/// creator of the access promised that until `iommufd_access_destroy()`
/// returns, and the destroy entry point closes this first.
#[pin_data]
pub(crate) struct AccessCallbacks {
    #[pin]
    open: Mutex<Option<(UnmapFn, usize)>>,
}

impl AccessCallbacks {
    /// Asks the creator to drop its pins in `[iova, iova + length)`; does
    /// nothing once closed. Callers hold no lock of ours.
    pub(crate) fn unmap(&self, iova: u64, length: u64) {
        let open = self.open.lock();
        if let Some((unmap, data)) = *open {
            // SAFETY: Open, so the callback and its data are valid (type
            // invariants). The lock only keeps `close` waiting for us.
            unsafe { unmap(data as *mut c_void, iova, length) };
        }
    }

    /// Closes the callbacks, waiting for any call in flight.
    fn close(&self) {
        *self.open.lock() = None;
    }
}

/// What the logic provides for the in-kernel API. The methods follow
/// `include/linux/iommufd.h`; the handles are typed here.
pub(crate) trait KernelApi: 'static {
    /// An open file's state (`struct iommufd_ctx`).
    type Ctx: FileOps;
    /// A bound device (`struct iommufd_device`).
    type Device: Send + Sync + 'static;
    /// An in-kernel access (`struct iommufd_access`).
    type Access: Send + Sync + 'static;

    /// The file `ctx` is the state of.
    fn ctx_file(ctx: &Self::Ctx) -> &OpenFile;
    /// Whether a device of the group at `group` is bound to `ctx`.
    fn ctx_has_group(ctx: &Self::Ctx, group: *const bindings::iommu_group) -> bool;
    /// Binds `dev` to `ctx`; returns the device and its object ID.
    fn device_bind(ctx: &Self::Ctx, dev: Device) -> Result<(Arc<Self::Device>, u32)>;
    /// Unbinds a device, waiting for its other users.
    fn device_unbind(idev: Arc<Self::Device>);
    /// Attaches a device to the IOAS or HWPT `*pt_id`; sets `*pt_id` to
    /// the HWPT.
    fn device_attach(idev: &Self::Device, pasid: u32, pt_id: &mut u32) -> Result;
    /// Moves an attached device to `*pt_id`, as attach.
    fn device_replace(idev: &Self::Device, pasid: u32, pt_id: &mut u32) -> Result;
    /// Detaches a device; nothing if it is not attached.
    fn device_detach(idev: &Self::Device, pasid: u32);
    /// The file reference a device holds on its context.
    fn device_ctx(idev: &Self::Device) -> &FileHold;
    /// A device's object ID.
    fn device_id(idev: &Self::Device) -> u32;
    /// Creates an unattached access in `ctx`; returns it and its ID.
    fn access_create(
        ctx: &Self::Ctx,
        needs_pin: bool,
        callbacks: Arc<AccessCallbacks>,
    ) -> Result<(Arc<Self::Access>, u32)>;
    /// Detaches and destroys an access (its callbacks are closed after).
    fn access_destroy(access: &Arc<Self::Access>);
    /// The callbacks an access was created with.
    fn access_callbacks(access: &Self::Access) -> &AccessCallbacks;
    /// Attaches an access to IOAS `ioas_id`.
    fn access_attach(access: &Arc<Self::Access>, ioas_id: u32) -> Result;
    /// Moves an attached access to IOAS `ioas_id`.
    fn access_replace(access: &Arc<Self::Access>, ioas_id: u32) -> Result;
    /// Detaches an access.
    fn access_detach(access: &Arc<Self::Access>);
    /// Pins the pages behind `[iova, iova + length)`; returns their PFNs.
    fn access_pin_pages(
        access: &Self::Access,
        iova: u64,
        length: u64,
        write: bool,
    ) -> Result<KVec<u64>>;
    /// Drops the pins of a [`KernelApi::access_pin_pages`].
    fn access_unpin_pages(access: &Self::Access, iova: u64, length: u64);
    /// Reads (or writes) `buf` from (to) IOAS memory at `iova`.
    fn access_rw(access: &Self::Access, iova: u64, buf: &mut [u8], flags: AccessRwFlags) -> Result;
    /// The compat IOAS's ID (`ENODEV` if none).
    fn compat_ioas_get_id(ctx: &Self::Ctx) -> Result<u32>;
    /// Makes sure there is a compat IOAS.
    fn compat_ioas_create(ctx: &Self::Ctx) -> Result;
    /// Selects no-IOMMU mode, if there is no compat IOAS yet.
    fn compat_set_no_iommu(ctx: &Self::Ctx) -> Result;
}

/// Errno of a result, as the C API returns it.
fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The state of one of our files.
///
/// # Safety
///
/// `ctx` is the `private_data` of a file of ours made by `A::Ctx`'s
/// registration, and the caller holds a reference to that file for `'a`.
unsafe fn ctx_ref<'a, A: KernelApi>(ctx: *mut c_void) -> Pin<&'a A::Ctx> {
    // SAFETY: `open` stored a `Pin<KBox<A::Ctx>>` there, freed only by the
    // file's release, which the caller's reference holds off.
    unsafe { <Pin<KBox<A::Ctx>> as ForeignOwnable>::borrow(ctx) }
}

/// A device handle given out by bind.
///
/// # Safety
///
/// `idev` came from `device_bind` and was not unbound; the reference is
/// used only until unbind, which the caller does not run concurrently.
unsafe fn dev_ref<'a, A: KernelApi>(idev: *mut c_void) -> ArcBorrow<'a, A::Device> {
    // SAFETY: From `Arc::into_foreign` in bind, still owned by the caller.
    unsafe { <Arc<A::Device> as ForeignOwnable>::borrow(idev) }
}

/// An access handle given out by create.
///
/// # Safety
///
/// As [`dev_ref`], for `access_create` and `access_destroy`.
unsafe fn access_ref<'a, A: KernelApi>(access: *mut c_void) -> ArcBorrow<'a, A::Access> {
    // SAFETY: From `Arc::into_foreign` in create, still owned by the
    // caller.
    unsafe { <Arc<A::Access> as ForeignOwnable>::borrow(access) }
}

/// `iommufd_ctx_from_file()`: `EBADFD` unless `file` is ours; on success
/// takes a file reference for the caller.
///
/// # Safety
///
/// `file` is a live file; `out` is valid for a write.
pub(crate) unsafe fn ctx_from_file(file: *mut bindings::file, out: *mut *mut c_void) -> c_int {
    // SAFETY: The caller holds `file`.
    if !unsafe { is_our_file(file) } {
        return ebadfd().to_errno();
    }
    // SAFETY: `file` is live; the reference is the caller's from now on.
    unsafe {
        bindings::get_file(file);
        *out = (*file).private_data;
    }
    0
}

/// `iommufd_ctx_from_fd()`: `EBADF` for no file, `EBADFD` for a file not
/// ours; on success the reference `fget` took is the caller's.
///
/// # Safety
///
/// `out` is valid for a write.
pub(crate) unsafe fn ctx_from_fd(fd: c_int, out: *mut *mut c_void) -> c_int {
    let Ok(fd) = u32::try_from(fd) else {
        return EBADF.to_errno();
    };
    // SAFETY: `fget` takes a reference to the file or returns NULL.
    let file = unsafe { bindings::fget(fd) };
    let Some(file) = NonNull::new(file) else {
        return EBADF.to_errno();
    };
    // SAFETY: We hold a reference to `file`.
    if !unsafe { is_our_file(file.as_ptr()) } {
        // SAFETY: Drops the reference `fget` took.
        unsafe { bindings::fput(file.as_ptr()) };
        return ebadfd().to_errno();
    }
    // SAFETY: `out` is writable (caller); the `fget` reference moves to
    // the caller.
    unsafe { *out = (*file.as_ptr()).private_data };
    0
}

/// `iommufd_ctx_get()`.
///
/// # Safety
///
/// `ctx` is one of our contexts and the caller holds a reference to it.
pub(crate) unsafe fn ctx_get<A: KernelApi>(ctx: *mut c_void) {
    // SAFETY: Per this function's contract.
    let ctx = unsafe { ctx_ref::<A>(ctx) };
    // The reference is the caller's, given back by `ctx_put`.
    let _ = A::ctx_file(&ctx).hold().into_raw();
}

/// `iommufd_ctx_put()`: drops one of the caller's references.
///
/// # Safety
///
/// As [`ctx_get`]; the caller gives up one reference.
pub(crate) unsafe fn ctx_put<A: KernelApi>(ctx: *mut c_void) {
    let file = {
        // SAFETY: Per this function's contract.
        let ctx = unsafe { ctx_ref::<A>(ctx) };
        A::ctx_file(&ctx).as_raw()
    };
    if let Some(file) = NonNull::new(file) {
        // SAFETY: The caller's reference becomes this value, which puts
        // it; `ctx` is not used after.
        drop(unsafe { FileHold::from_raw(file) });
    }
}

/// `iommufd_ctx_has_group()`: NULL-safe.
///
/// # Safety
///
/// `ctx` is NULL or as in [`ctx_get`].
pub(crate) unsafe fn ctx_has_group<A: KernelApi>(
    ctx: *mut c_void,
    group: *const bindings::iommu_group,
) -> bool {
    if ctx.is_null() || group.is_null() {
        return false;
    }
    // SAFETY: Per this function's contract.
    let ctx = unsafe { ctx_ref::<A>(ctx) };
    A::ctx_has_group(&ctx, group)
}

/// `iommufd_device_bind()`.
///
/// # Safety
///
/// `ctx` as in [`ctx_get`]; `dev` is a live device; `id` and `out` are
/// valid for writes.
pub(crate) unsafe fn device_bind<A: KernelApi>(
    ctx: *mut c_void,
    dev: *mut bindings::device,
    id: *mut u32,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: Per this function's contract.
    let ctx = unsafe { ctx_ref::<A>(ctx) };
    let Some(dev) = NonNull::new(dev) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `dev` is live; this takes a reference of our own.
    let dev = unsafe { Device::get(dev) };
    match A::device_bind(&ctx, dev) {
        Ok((idev, new_id)) => {
            // SAFETY: Both are writable (caller).
            unsafe {
                *id = new_id;
                *out = idev.into_foreign();
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `iommufd_device_unbind()`.
///
/// # Safety
///
/// `idev` came from [`device_bind`] and is not used again.
pub(crate) unsafe fn device_unbind<A: KernelApi>(idev: *mut c_void) {
    // SAFETY: The caller gives back the reference bind gave out.
    let idev = unsafe { <Arc<A::Device> as ForeignOwnable>::from_foreign(idev) };
    A::device_unbind(idev);
}

/// `iommufd_device_attach()` (or `_replace()` if `replace`).
///
/// # Safety
///
/// `idev` as in [`dev_ref`]; `pt_id` valid for reads and writes.
pub(crate) unsafe fn device_attach<A: KernelApi>(
    idev: *mut c_void,
    pasid: u32,
    pt_id: *mut u32,
    replace: bool,
) -> c_int {
    // SAFETY: Per this function's contract.
    let (idev, pt_id) = unsafe { (dev_ref::<A>(idev), &mut *pt_id) };
    errno(if replace {
        A::device_replace(&*idev, pasid, pt_id)
    } else {
        A::device_attach(&*idev, pasid, pt_id)
    })
}

/// `iommufd_device_detach()`.
///
/// # Safety
///
/// `idev` as in [`dev_ref`].
pub(crate) unsafe fn device_detach<A: KernelApi>(idev: *mut c_void, pasid: u32) {
    // SAFETY: Per this function's contract.
    A::device_detach(&*unsafe { dev_ref::<A>(idev) }, pasid);
}

/// `iommufd_device_to_ictx()`.
///
/// # Safety
///
/// `idev` as in [`dev_ref`].
pub(crate) unsafe fn device_to_ictx<A: KernelApi>(idev: *mut c_void) -> *mut c_void {
    // SAFETY: Per this function's contract.
    A::device_ctx(&*unsafe { dev_ref::<A>(idev) }).state_ptr()
}

/// `iommufd_device_to_id()`.
///
/// # Safety
///
/// `idev` as in [`dev_ref`].
pub(crate) unsafe fn device_to_id<A: KernelApi>(idev: *mut c_void) -> u32 {
    // SAFETY: Per this function's contract.
    A::device_id(&*unsafe { dev_ref::<A>(idev) })
}

/// `iommufd_access_create()`.
///
/// # Safety
///
/// `ctx` as in [`ctx_get`]; `unmap` may be called with `data` from any
/// thread until [`access_destroy`] returns; `id` and `out` are writable.
pub(crate) unsafe fn access_create<A: KernelApi>(
    ctx: *mut c_void,
    needs_pin: bool,
    unmap: Option<UnmapFn>,
    data: *mut c_void,
    id: *mut u32,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: Per this function's contract.
    let ctx = unsafe { ctx_ref::<A>(ctx) };
    // INVARIANT: Valid until destroy, which closes it first.
    let callbacks = match Arc::pin_init(
        pin_init!(AccessCallbacks {
            open <- new_mutex!(unmap.map(|f| (f, data as usize))),
        }),
        GFP_KERNEL,
    ) {
        Ok(cb) => cb,
        Err(e) => return e.to_errno(),
    };
    match A::access_create(&ctx, needs_pin, callbacks) {
        Ok((access, new_id)) => {
            // SAFETY: Both are writable (caller).
            unsafe {
                *id = new_id;
                *out = access.into_foreign();
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `iommufd_access_destroy()`.
///
/// # Safety
///
/// `access` came from [`access_create`] and is not used again.
pub(crate) unsafe fn access_destroy<A: KernelApi>(access: *mut c_void) {
    // SAFETY: The caller gives back the reference create gave out.
    let access = unsafe { <Arc<A::Access> as ForeignOwnable>::from_foreign(access) };
    A::access_destroy(&access);
    // Nobody may call the creator after this returns.
    A::access_callbacks(&access).close();
}

/// `iommufd_access_attach()`, `_replace()` or `_detach()` (`None`).
///
/// # Safety
///
/// `access` as in [`access_ref`].
pub(crate) unsafe fn access_change<A: KernelApi>(
    access: *mut c_void,
    ioas_id: Option<u32>,
    replace: bool,
) -> c_int {
    // SAFETY: Per this function's contract.
    let access: Arc<A::Access> = unsafe { access_ref::<A>(access) }.into();
    errno(match ioas_id {
        None => {
            A::access_detach(&access);
            Ok(())
        }
        Some(id) if replace => A::access_replace(&access, id),
        Some(id) => A::access_attach(&access, id),
    })
}

/// `iommufd_access_pin_pages()`.
///
/// # Safety
///
/// `access` as in [`access_ref`]; `out_pages` has room for one pointer
/// per page the range touches.
pub(crate) unsafe fn access_pin_pages<A: KernelApi>(
    access: *mut c_void,
    iova: c_ulong,
    length: c_ulong,
    out_pages: *mut *mut bindings::page,
    flags: u32,
) -> c_int {
    // SAFETY: Per this function's contract.
    let access = unsafe { access_ref::<A>(access) };
    match A::access_pin_pages(&access, iova, length, flags & ACCESS_RW_WRITE != 0) {
        Ok(pfns) => {
            for (i, &pfn) in pfns.iter().enumerate() {
                // SAFETY: The PFN is of a page we pinned; `out_pages` has
                // room for every page of the range (caller).
                unsafe { *out_pages.add(i) = iommufd_rs_pfn_to_page(pfn as usize) };
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `iommufd_access_unpin_pages()`.
///
/// # Safety
///
/// `access` as in [`access_ref`].
pub(crate) unsafe fn access_unpin_pages<A: KernelApi>(
    access: *mut c_void,
    iova: c_ulong,
    length: c_ulong,
) {
    // SAFETY: Per this function's contract.
    let access = unsafe { access_ref::<A>(access) };
    A::access_unpin_pages(&access, iova, length);
}

/// `iommufd_access_rw()`.
///
/// # Safety
///
/// `access` as in [`access_ref`]; `data` is valid for `len` bytes of
/// reads and writes, and not used by anyone else meanwhile.
pub(crate) unsafe fn access_rw<A: KernelApi>(
    access: *mut c_void,
    iova: c_ulong,
    data: *mut c_void,
    len: usize,
    flags: u32,
) -> c_int {
    // SAFETY: Per this function's contract.
    let access = unsafe { access_ref::<A>(access) };
    let buf: &mut [u8] = if len == 0 {
        &mut []
    } else {
        // SAFETY: `data` holds `len` bytes that are ours for the call.
        unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), len) }
    };
    let flags = AccessRwFlags {
        write: flags & ACCESS_RW_WRITE != 0,
        kthread: flags & ACCESS_RW_KTHREAD != 0,
    };
    errno(A::access_rw(&access, iova, buf, flags))
}

/// `iommufd_vfio_compat_ioas_get_id()`.
///
/// # Safety
///
/// `ctx` as in [`ctx_get`]; `out` writable.
pub(crate) unsafe fn compat_ioas_get_id<A: KernelApi>(ctx: *mut c_void, out: *mut u32) -> c_int {
    // SAFETY: Per this function's contract.
    let ctx = unsafe { ctx_ref::<A>(ctx) };
    match A::compat_ioas_get_id(&ctx) {
        Ok(id) => {
            // SAFETY: Writable (caller).
            unsafe { *out = id };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `iommufd_vfio_compat_ioas_create()` or `_set_no_iommu()`.
///
/// # Safety
///
/// `ctx` as in [`ctx_get`].
pub(crate) unsafe fn compat_mode<A: KernelApi>(ctx: *mut c_void, no_iommu: bool) -> c_int {
    // SAFETY: Per this function's contract.
    let ctx = unsafe { ctx_ref::<A>(ctx) };
    errno(if no_iommu {
        A::compat_set_no_iommu(&ctx)
    } else {
        A::compat_ioas_create(&ctx)
    })
}

/// Defines the C functions of `kapi.h` for the [`KernelApi`] `$api`. Each is
/// `unsafe`: its C caller keeps the contract of the upstream function of
/// the same name, which is the contract of the function it calls here.
macro_rules! kernel_api_entry_points {
    ($api:ty) => {
        const _: () = {
            use core::ffi::{c_int, c_ulong, c_void};
            use kernel::bindings;
            use $crate::sys::kapi as k;

            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_ctx_from_file(
                f: *mut bindings::file,
                out: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::ctx_from_file(f, out) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_ctx_from_fd(fd: c_int, out: *mut *mut c_void) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::ctx_from_fd(fd, out) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_ctx_get(ctx: *mut c_void) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::ctx_get::<$api>(ctx) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_ctx_put(ctx: *mut c_void) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::ctx_put::<$api>(ctx) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_ctx_has_group(
                ctx: *mut c_void,
                group: *const bindings::iommu_group,
            ) -> bool {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::ctx_has_group::<$api>(ctx, group) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_bind(
                ctx: *mut c_void,
                dev: *mut bindings::device,
                id: *mut u32,
                out: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_bind::<$api>(ctx, dev, id, out) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_unbind(idev: *mut c_void) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_unbind::<$api>(idev) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_attach(
                idev: *mut c_void,
                pasid: u32,
                pt_id: *mut u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_attach::<$api>(idev, pasid, pt_id, false) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_replace(
                idev: *mut c_void,
                pasid: u32,
                pt_id: *mut u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_attach::<$api>(idev, pasid, pt_id, true) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_detach(idev: *mut c_void, pasid: u32) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_detach::<$api>(idev, pasid) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_to_ictx(idev: *mut c_void) -> *mut c_void {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_to_ictx::<$api>(idev) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_device_to_id(idev: *mut c_void) -> u32 {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::device_to_id::<$api>(idev) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_create(
                ctx: *mut c_void,
                needs_pin: bool,
                unmap: Option<unsafe extern "C" fn(*mut c_void, c_ulong, c_ulong)>,
                data: *mut c_void,
                id: *mut u32,
                out: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_create::<$api>(ctx, needs_pin, unmap, data, id, out) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_destroy(access: *mut c_void) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_destroy::<$api>(access) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_attach(
                access: *mut c_void,
                ioas_id: u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_change::<$api>(access, Some(ioas_id), false) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_replace(
                access: *mut c_void,
                ioas_id: u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_change::<$api>(access, Some(ioas_id), true) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_detach(access: *mut c_void) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_change::<$api>(access, None, false) };
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_pin_pages(
                access: *mut c_void,
                iova: c_ulong,
                length: c_ulong,
                out_pages: *mut *mut bindings::page,
                flags: u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_pin_pages::<$api>(access, iova, length, out_pages, flags) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_unpin_pages(
                access: *mut c_void,
                iova: c_ulong,
                length: c_ulong,
            ) {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_unpin_pages::<$api>(access, iova, length) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_access_rw(
                access: *mut c_void,
                iova: c_ulong,
                data: *mut c_void,
                len: usize,
                flags: u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::access_rw::<$api>(access, iova, data, len, flags) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_vfio_compat_ioas_get_id(
                ctx: *mut c_void,
                out: *mut u32,
            ) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::compat_ioas_get_id::<$api>(ctx, out) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_vfio_compat_ioas_create(ctx: *mut c_void) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::compat_mode::<$api>(ctx, false) }
            }
            #[allow(clippy::missing_safety_doc)]
            #[no_mangle]
            unsafe extern "C" fn iommufd_rs_vfio_compat_set_no_iommu(ctx: *mut c_void) -> c_int {
                // SAFETY: The C caller keeps the upstream contract.
                unsafe { k::compat_mode::<$api>(ctx, true) }
            }
        };
    };
}
pub(crate) use kernel_api_entry_points;
