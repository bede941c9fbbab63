// SPDX-License-Identifier: GPL-2.0

//! Real IOMMUs: a device's IOMMU group and capabilities, DMA ownership,
//! reserved regions, paging domains, and attaching a group to a domain.
//!
//! All FFI to the IOMMU core lives here. The group attach calls are in the
//! core's private header, so `helpers.c` wraps them.

use core::{ffi::c_void, ptr::NonNull};
use kernel::{bindings, prelude::*, sync::Arc};

// The C shims in helpers.c. Device and group structs hold an empty arch
// spinlock type on this config, which the lint flags; only pointers cross.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_dev_resv_regions(
        dev: *mut bindings::device,
        starts: *mut u64,
        lengths: *mut u64,
        max: u32,
    ) -> i32;
    fn iommufd_rs_dev_warn_unsafe_msi(dev: *mut bindings::device);
    fn iommufd_rs_dev_hw_info(
        dev: *mut bindings::device,
        kind: *mut u32,
        len: *mut u32,
        caps: *mut u64,
        max_pasid_log2: *mut u8,
    ) -> *mut c_void;
    fn iommufd_rs_kfree(p: *const c_void);
    fn iommufd_rs_domain_enforce_cc(domain: *mut bindings::iommu_domain) -> bool;
    fn iommufd_rs_group_attach(
        domain: *mut bindings::iommu_domain,
        group: *mut bindings::iommu_group,
        handle: *mut *mut c_void,
    ) -> i32;
    fn iommufd_rs_group_replace(
        domain: *mut bindings::iommu_domain,
        group: *mut bindings::iommu_group,
        old: *mut c_void,
        handle: *mut *mut c_void,
    ) -> i32;
    fn iommufd_rs_group_detach(
        domain: *mut bindings::iommu_domain,
        group: *mut bindings::iommu_group,
        handle: *mut c_void,
    );
}

/// A counted reference to a device.
///
/// # Invariants
///
/// `ptr` is a live `struct device` this value holds one reference to.
pub(crate) struct Device {
    ptr: NonNull<bindings::device>,
}

// SAFETY: Device references may be taken and put from any thread.
unsafe impl Send for Device {}
// SAFETY: The methods through `&Device` only call thread-safe functions.
unsafe impl Sync for Device {}

impl Device {
    /// Takes a reference to `dev`.
    ///
    /// # Safety
    ///
    /// `dev` is a live device.
    pub(crate) unsafe fn get(dev: NonNull<bindings::device>) -> Self {
        // SAFETY: The caller promises `dev` is live.
        unsafe { bindings::get_device(dev.as_ptr()) };
        // INVARIANT: We took a reference.
        Self { ptr: dev }
    }

    fn as_raw(&self) -> *mut bindings::device {
        self.ptr.as_ptr()
    }

    /// Warns, on the device, that its MSIs cannot be isolated and it is
    /// bound anyway.
    pub(crate) fn warn_unsafe_msi(&self) {
        // SAFETY: The device is live (type invariants).
        unsafe { iommufd_rs_dev_warn_unsafe_msi(self.as_raw()) };
    }
}

/// What a device's IOMMU reports about it (`IOMMU_GET_HW_INFO`).
///
/// # Invariants
///
/// `data` is NULL with `len` 0, or a kmalloc allocation of at least `len`
/// bytes that the value owns.
pub(crate) struct HwInfo {
    data: *mut c_void,
    len: u32,
    /// The data's type (`IOMMU_HW_INFO_TYPE_*`).
    pub(crate) kind: u32,
    /// `IOMMU_HW_CAP_*` bits.
    pub(crate) capabilities: u64,
    /// log2 of the PASIDs the device has, 0 for none.
    pub(crate) max_pasid_log2: u8,
}

impl HwInfo {
    /// The driver's data.
    pub(crate) fn data(&self) -> &[u8] {
        if self.data.is_null() {
            return &[];
        }
        // SAFETY: `len` bytes at `data` are ours (type invariants).
        unsafe { core::slice::from_raw_parts(self.data.cast::<u8>(), self.len as usize) }
    }
}

impl Drop for HwInfo {
    fn drop(&mut self) {
        // SAFETY: NULL or a kmalloc allocation we own (type invariants).
        unsafe { iommufd_rs_kfree(self.data) };
    }
}

impl Device {
    /// Asks the IOMMU driver about the device, for data of type `kind`
    /// (`IOMMU_HW_INFO_TYPE_DEFAULT` for the driver's own).
    pub(crate) fn hw_info(&self, kind: u32) -> Result<HwInfo> {
        let (mut kind, mut len, mut capabilities, mut max_pasid_log2) = (kind, 0u32, 0u64, 0u8);
        // SAFETY: The device is live and bound to an IOMMU (it has a
        // group); the out pointers are valid.
        let data = unsafe {
            iommufd_rs_dev_hw_info(
                self.as_raw(),
                &mut kind,
                &mut len,
                &mut capabilities,
                &mut max_pasid_log2,
            )
        };
        let data = kernel::error::from_err_ptr(data)?;
        // INVARIANT: The driver returned `len` bytes we now own, or NULL.
        Ok(HwInfo {
            data,
            len: if data.is_null() { 0 } else { len },
            kind,
            capabilities,
            max_pasid_log2,
        })
    }
}

impl Clone for Device {
    fn clone(&self) -> Self {
        // SAFETY: The device is live (type invariants).
        unsafe { Self::get(self.ptr) }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariants).
        unsafe { bindings::put_device(self.as_raw()) };
    }
}

/// A reference to a device's IOMMU group.
///
/// # Invariants
///
/// `ptr` is a live `struct iommu_group` this value holds one reference to.
pub(crate) struct IommuGroup {
    ptr: NonNull<bindings::iommu_group>,
}

// SAFETY: Group references may be taken and put from any thread.
unsafe impl Send for IommuGroup {}
// SAFETY: The methods through `&IommuGroup` only call thread-safe core
// functions.
unsafe impl Sync for IommuGroup {}

impl IommuGroup {
    /// The group of `dev`: `ENODEV` if it has none.
    pub(crate) fn of(dev: &Device) -> Result<Self> {
        // SAFETY: `dev` is a live device.
        let ptr = unsafe { bindings::iommu_group_get(dev.as_raw()) };
        // INVARIANT: `iommu_group_get` took a reference for us.
        NonNull::new(ptr).map(|ptr| Self { ptr }).ok_or(ENODEV)
    }

    /// The group's ID.
    pub(crate) fn id(&self) -> i32 {
        // SAFETY: The group is live (type invariants).
        unsafe { bindings::iommu_group_id(self.ptr.as_ptr()) }
    }

    /// Whether a device of the group cannot raise interrupts outside its
    /// domain (interrupt remapping).
    pub(crate) fn has_isolated_msi(&self) -> bool {
        // SAFETY: The group is live (type invariants).
        unsafe { bindings::iommu_group_has_isolated_msi(self.ptr.as_ptr()) }
    }

    /// Whether this is the group at `raw` (compared by address only).
    pub(crate) fn is(&self, raw: *const bindings::iommu_group) -> bool {
        core::ptr::eq(self.ptr.as_ptr(), raw)
    }
}

impl Drop for IommuGroup {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariants).
        unsafe { bindings::iommu_group_put(self.ptr.as_ptr()) };
    }
}

/// IOMMU capabilities of a device.
#[derive(Clone, Copy)]
pub(crate) enum Capability {
    /// DMA is cache coherent (C's `IOMMU_CAP_CACHE_COHERENCY`).
    CacheCoherency,
    /// A domain can force cache-coherent DMA.
    EnforceCacheCoherency,
    /// Domains can track the pages DMA wrote.
    DirtyTracking,
}

/// Whether the IOMMU of `dev` has `cap`.
pub(crate) fn device_capable(dev: &Device, cap: Capability) -> bool {
    let cap = match cap {
        Capability::CacheCoherency => bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY,
        Capability::EnforceCacheCoherency => bindings::iommu_cap_IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
        Capability::DirtyTracking => bindings::iommu_cap_IOMMU_CAP_DIRTY_TRACKING,
    };
    // SAFETY: `dev` is a live device.
    unsafe { bindings::device_iommu_capable(dev.as_raw(), cap) }
}

/// DMA ownership of a device, claimed for an owner: devices of one group
/// may share an owner, other owners are refused. Dropping it releases the
/// claim.
///
/// # Invariants
///
/// The claim on `dev` was made by [`DmaOwner::claim`] and not released.
pub(crate) struct DmaOwner {
    dev: Device,
}

impl DmaOwner {
    /// Claims DMA ownership of `dev` for the owner identified by `owner`
    /// (an address only compared): `EPERM` if another owner has the group,
    /// `EBUSY` if a kernel driver is using it.
    pub(crate) fn claim(dev: &Device, owner: *const c_void) -> Result<Self> {
        // SAFETY: `dev` is live; the core only compares `owner`.
        let rc = unsafe { bindings::iommu_device_claim_dma_owner(dev.as_raw(), owner.cast_mut()) };
        kernel::error::to_result(rc)?;
        // INVARIANT: The claim succeeded.
        Ok(Self { dev: dev.clone() })
    }
}

impl Drop for DmaOwner {
    fn drop(&mut self) {
        // SAFETY: We hold the claim (type invariants).
        unsafe { bindings::iommu_device_release_dma_owner(self.dev.as_raw()) };
    }
}

/// A reserved region of a device: IOVAs no mapping may use.
#[derive(Clone, Copy, Default)]
pub(crate) struct ReservedRegion {
    /// First IOVA.
    pub(crate) start: u64,
    /// Last IOVA (inclusive).
    pub(crate) last: u64,
}

/// The reserved regions of `dev` that a domain must keep free (the MSI
/// window, RMRRs); the relaxable direct ones are left out, as in C.
pub(crate) fn reserved_regions(dev: &Device) -> Result<KVec<ReservedRegion>> {
    let mut cap = 8usize;
    loop {
        let mut starts = KVec::<u64>::with_capacity(cap, GFP_KERNEL)?;
        let mut lengths = KVec::<u64>::with_capacity(cap, GFP_KERNEL)?;
        // SAFETY: `dev` is live; both buffers have room for `cap` entries,
        // and the helper writes at most `cap` of each.
        let n = unsafe {
            iommufd_rs_dev_resv_regions(
                dev.as_raw(),
                starts.as_mut_ptr(),
                lengths.as_mut_ptr(),
                cap as u32,
            )
        };
        let n = usize::try_from(n).map_err(|_| ENOMEM)?;
        if n > cap {
            cap = n;
            continue;
        }
        // SAFETY: The helper wrote the first `n <= cap` entries of both.
        unsafe {
            starts.inc_len(n);
            lengths.inc_len(n);
        }
        let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
        for (&start, &len) in starts.iter().zip(lengths.iter()) {
            if len == 0 {
                continue;
            }
            out.push(
                ReservedRegion {
                    start,
                    last: start.saturating_add(len - 1),
                },
                GFP_KERNEL,
            )?;
        }
        return Ok(out);
    }
}

/// A paging domain of a real IOMMU, owned by this module (type
/// `IOMMU_DOMAIN_UNMANAGED`).
///
/// # Invariants
///
/// `ptr` is a domain from `iommu_paging_domain_alloc_flags()` that nobody
/// else maps or frees; it is freed in [`Drop`], after every group attached
/// to it was detached (a [`GroupAttachment`] holds the domain).
pub(crate) struct PagingDomain {
    ptr: NonNull<bindings::iommu_domain>,
}

// SAFETY: The core's map, unmap and lookup functions may be called from
// any thread; the domain's page table does its own locking.
unsafe impl Send for PagingDomain {}
// SAFETY: As for `Send`.
unsafe impl Sync for PagingDomain {}

/// Largest length one `iommu_map`/`iommu_unmap` call is given (`size_t`).
const MAX_CALL: u64 = 1 << 62;

impl PagingDomain {
    /// Allocates a paging domain that `dev`'s IOMMU can attach, with the
    /// `IOMMU_HWPT_ALLOC_*` `flags` the driver knows.
    pub(crate) fn alloc(dev: &Device, flags: u32) -> Result<Arc<Self>> {
        // SAFETY: `dev` is a live device.
        let ptr = unsafe { bindings::iommu_paging_domain_alloc_flags(dev.as_raw(), flags) };
        let ptr = kernel::error::from_err_ptr(ptr)?;
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // INVARIANT: A new domain, owned by the value from here on.
        let this = Self { ptr };
        Ok(Arc::new(this, GFP_KERNEL)?)
    }

    fn raw(&self) -> *mut bindings::iommu_domain {
        self.ptr.as_ptr()
    }

    /// Maps `[iova, iova + length)` to `paddr`, cache coherent, with the
    /// given permissions. The IOTLB is synced before it returns.
    pub(crate) fn map(
        &self,
        iova: u64,
        paddr: u64,
        length: u64,
        read: bool,
        write: bool,
    ) -> Result {
        let mut prot = bindings::IOMMU_CACHE;
        if read {
            prot |= bindings::IOMMU_READ;
        }
        if write {
            prot |= bindings::IOMMU_WRITE;
        }
        if length > MAX_CALL {
            return Err(EINVAL);
        }
        // SAFETY: The domain is live and ours (type invariants).
        let rc = unsafe {
            bindings::iommu_map(
                self.raw(),
                iova as usize,
                paddr,
                length as usize,
                prot as i32,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        };
        kernel::error::to_result(rc)
    }

    /// Unmaps up to `length` bytes from `iova` and flushes the IOTLB;
    /// returns the bytes unmapped. The core stops at the first hole.
    pub(crate) fn unmap(&self, iova: u64, length: u64) -> u64 {
        // SAFETY: The domain is live and ours (type invariants).
        let n = unsafe {
            bindings::iommu_unmap(self.raw(), iova as usize, length.min(MAX_CALL) as usize)
        };
        n as u64
    }

    /// The physical address `iova` translates to, 0 if unmapped.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> u64 {
        // SAFETY: The domain is live (type invariants).
        unsafe { bindings::iommu_iova_to_phys(self.raw(), iova) }
    }

    /// The IO page sizes the domain supports.
    pub(crate) fn pgsize_bitmap(&self) -> u64 {
        // SAFETY: The domain is live; the field is fixed once allocated.
        unsafe { (*self.raw()).pgsize_bitmap as u64 }
    }

    /// The IOVAs the domain translates, `[start, last]`.
    pub(crate) fn aperture(&self) -> (u64, u64) {
        // SAFETY: The domain is live; the geometry is fixed once allocated.
        let g = unsafe { &(*self.raw()).geometry };
        (g.aperture_start, g.aperture_end)
    }

    /// Makes the domain force cache-coherent DMA; whether it could.
    pub(crate) fn enforce_cache_coherency(&self) -> bool {
        // SAFETY: The domain is live and has no mapping users yet that
        // could race with the change (callers do this before mapping).
        unsafe { iommufd_rs_domain_enforce_cc(self.raw()) }
    }
}

impl Drop for PagingDomain {
    fn drop(&mut self) {
        // SAFETY: The domain is ours and no group is attached to it (type
        // invariants: attachments hold a reference).
        unsafe { bindings::iommu_domain_free(self.raw()) };
    }
}

/// A group attached to a paging domain. Dropping it detaches the group,
/// which then blocks DMA.
///
/// # Invariants
///
/// `group` is attached to `domain` with the handle at `handle`, a kmalloc
/// allocation the core keeps a pointer to until the detach or the next
/// replace.
pub(crate) struct GroupAttachment {
    group: IommuGroup,
    domain: Arc<PagingDomain>,
    handle: NonNull<c_void>,
}

// SAFETY: Attach, replace and detach may run on any thread.
unsafe impl Send for GroupAttachment {}
// SAFETY: `&GroupAttachment` only reads `domain`.
unsafe impl Sync for GroupAttachment {}

impl GroupAttachment {
    /// Attaches the group of `dev` to `domain`.
    pub(crate) fn attach(dev: &Device, domain: &Arc<PagingDomain>) -> Result<Self> {
        let group = IommuGroup::of(dev)?;
        let mut handle = core::ptr::null_mut();
        // SAFETY: The domain and group are live; the helper allocates the
        // handle and frees it itself on failure.
        let rc = unsafe { iommufd_rs_group_attach(domain.raw(), group.ptr.as_ptr(), &mut handle) };
        kernel::error::to_result(rc)?;
        let handle = NonNull::new(handle).ok_or(ENOMEM)?;
        // INVARIANT: The group is attached with `handle`.
        Ok(Self {
            group,
            domain: domain.clone(),
            handle,
        })
    }

    /// Moves the group to `domain` with no window of blocked DMA; on error
    /// it stays where it was.
    pub(crate) fn replace(&mut self, domain: &Arc<PagingDomain>) -> Result {
        let mut handle = core::ptr::null_mut();
        // SAFETY: The group is attached (type invariants) and the new
        // domain is live; on success the helper frees the old handle, on
        // failure the new one.
        let rc = unsafe {
            iommufd_rs_group_replace(
                domain.raw(),
                self.group.ptr.as_ptr(),
                self.handle.as_ptr(),
                &mut handle,
            )
        };
        kernel::error::to_result(rc)?;
        // INVARIANT: The group is now attached to `domain` with `handle`.
        self.handle = NonNull::new(handle).ok_or(ENOMEM)?;
        self.domain = domain.clone();
        Ok(())
    }
}

impl Drop for GroupAttachment {
    fn drop(&mut self) {
        // SAFETY: The group is attached to `domain` with `handle` (type
        // invariants); the helper detaches it and frees the handle.
        unsafe {
            iommufd_rs_group_detach(
                self.domain.raw(),
                self.group.ptr.as_ptr(),
                self.handle.as_ptr(),
            )
        };
    }
}
