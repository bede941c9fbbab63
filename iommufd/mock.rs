// SPDX-License-Identifier: GPL-2.0

//! The test interface's mock domain and mock device, with the geometry of
//! Linux 7.2's (`iommufd_test.h`): 2 KiB IO pages, the aperture
//! `[MOCK_APERTURE_START, MOCK_APERTURE_LAST]`, never cache coherent.
//!
//! The mock domain keeps its translations in a [`MockTable`], so that
//! `MD_CHECK_MAP` can read back where each IOVA points.

mod table;

use crate::{
    device::DeviceInfo,
    domain::{IoDomain, Prot, NO_PFN},
    eventq::PageFault,
    hw_pagetable,
    object::{ObjectKind, ObjectRef, ObjectTable},
    sys::{
        errno::{eaddrinuse, eopnotsupp},
        pin, PAGE_SIZE_U64,
    },
    uapi,
    ucmd::{read_user_struct, Ucmd},
    viommu::Viommu,
};
use core::{
    mem::size_of,
    ops::ControlFlow,
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::SetOnce,
    sync::{Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};
use table::{item_lg2, pte_lg2, MockTable, DIRTY, MOCK_PAGE_SHIFT, MOCK_PAGE_SIZE};

/// Page sizes of the mock domain: 2 KiB to 64 GiB, as 7.2's mock page
/// table format.
const MOCK_PGSIZE_BITMAP: u64 = 0x1f_ffff_f800;
/// PASID bits of a mock device made with `MOCK_FLAGS_DEVICE_PASID`.
const MOCK_PASID_WIDTH: u8 = 20;
/// Device flags `MOCK_DOMAIN_FLAGS` accepts.
const MOCK_DEVICE_FLAGS: u32 = uapi::MOCK_FLAGS_DEVICE_NO_DIRTY | uapi::MOCK_FLAGS_DEVICE_PASID;

/// The mock huge IO page: 512 mock pages (1 MiB).
const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_PAGE_SIZE;
/// Last IOVA of the `MOCK_IOMMUPT_HUGE` format: its three-level table of
/// 2 KiB pages covers 2^38 bytes.
const MOCK_HUGE_APERTURE_LAST: u64 = (1 << 38) - 1;

/// A mock IO page table.
#[pin_data]
pub(crate) struct MockDomain {
    /// The translations.
    #[pin]
    table: Mutex<MockTable>,
    /// The `MOCK_IOMMUPT_HUGE` format: 1 MiB and `PAGE_SIZE` IO pages, and
    /// the format's own aperture.
    huge: bool,
    /// Made with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`: it can track dirty pages.
    dirty_ops: bool,
    /// Dirty tracking is on (C's `MOCK_DIRTY_TRACK`).
    tracking: AtomicBool,
}

impl MockDomain {
    /// An empty mock domain.
    fn new(huge: bool, dirty_ops: bool) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                table <- new_mutex!(MockTable::new()),
                huge,
                dirty_ops,
                tracking: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// Visits each PTE of `[iova, iova + length)` from `iova` on, as C's
    /// table walk does, and records the dirty ones from the IOVA visited,
    /// as long as [`dirty_len`] says. Clears what it records unless
    /// `no_clear`. `record` runs under the table lock: when it asks to
    /// stop, the walk returns the IOVA to resume from (see
    /// [`IoDomain::read_and_clear_dirty`]).
    fn walk_dirty(
        &self,
        iova: u64,
        length: u64,
        no_clear: bool,
        whole: bool,
        record: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Option<u64> {
        let last = length.checked_sub(1).and_then(|l| iova.checked_add(l))?;
        let mut table = self.table.lock();
        let clear = |e: &mut u64| {
            if !no_clear {
                *e &= !DIRTY;
            }
        };
        let mut cur = iova;
        loop {
            let idx = cur >> MOCK_PAGE_SHIFT;
            let next = if let Some((lg2, head)) = table.update_pte(idx, clear) {
                // Only a PTE's first entry holds its dirty bit.
                let size = 1u64 << lg2;
                let start = cur & !(size - 1);
                let end = start + (size - 1);
                let head = match head {
                    Some(head) => head,
                    None => table.update_head(start, lg2, clear),
                };
                let mut stopped = head & DIRTY != 0
                    && record(cur, dirty_len(cur, start, lg2, last, whole)).is_break();
                // The PTEs of its size class that follow, in one sweep.
                let next = match end.checked_add(1) {
                    Some(n) if n <= last && !stopped => {
                        table.sweep(lg2, n, last, |start, lg2, e| {
                            if *e & DIRTY == 0 {
                                return true;
                            }
                            clear(e);
                            stopped =
                                record(start, dirty_len(start, start, lg2, last, whole)).is_break();
                            !stopped
                        })
                    }
                    n => n,
                };
                if stopped {
                    return next.filter(|&n| n <= last);
                }
                next
            } else {
                // A hole: on to the next mapped entry, if any.
                let holes = table.holes_from(idx, last >> MOCK_PAGE_SHIFT);
                (idx + holes).checked_mul(MOCK_PAGE_SIZE)
            };
            match next {
                Some(n) if n <= last => cur = n,
                _ => return None,
            }
        }
    }

    /// Marks the PTE holding `iova` dirty, if mapped (C's mock sets the
    /// bit of the one table entry at `iova`; a PTE reads dirty if any of
    /// its entries is, so the bit is kept on the PTE's first entry, and a
    /// walk reads one entry per PTE).
    fn set_dirty(&self, iova: u64) {
        let mut table = self.table.lock();
        let entry = table.entry(iova >> MOCK_PAGE_SHIFT);
        if entry == 0 {
            return;
        }
        let lg2 = pte_lg2(entry);
        let start = iova & !((1u64 << lg2) - 1);
        table.update_head(start, lg2, |e| *e |= DIRTY);
    }
}

// SAFETY: `read_pfns` reads the table that `map` fills and `unmap` clears:
// each entry is the physical page last mapped at that IO page (absent and
// cleared entries read as zero, reported as `NO_PFN`), and `map` refuses to
// map over a mapping.
unsafe impl IoDomain for MockDomain {
    fn map(&self, iova: u64, paddr: u64, length: u64, prot: Prot) -> Result {
        if !prot.read && !prot.write {
            return Err(EINVAL);
        }
        // Aligned to the smallest IO page of the format.
        let pgsizes = self.pgsize_bitmap();
        let align = 1u64 << pgsizes.trailing_zeros();
        if (iova | paddr | length) & (align - 1) != 0 || length == 0 {
            return Err(ENXIO);
        }
        let last = iova.checked_add(length - 1).ok_or(ERANGE)?;
        if last > self.aperture().1 {
            return Err(ERANGE);
        }
        // Mapping over a mapping fails, as with a real IO page table.
        self.table
            .lock()
            .map(iova, paddr, length, pgsizes)
            .map_err(|e| if e == EEXIST { eaddrinuse() } else { e })
    }

    fn has_dirty_tracking(&self) -> bool {
        self.dirty_ops
    }

    fn set_dirty_tracking(&self, enable: bool) -> Result {
        if enable && !self.dirty_ops {
            return Err(EINVAL);
        }
        self.tracking.store(enable, Ordering::Relaxed);
        Ok(())
    }

    fn dirty_tracking_on(&self) -> bool {
        self.tracking.load(Ordering::Relaxed)
    }

    fn read_and_clear_dirty(
        &self,
        iova: u64,
        length: u64,
        no_clear: bool,
        record: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Option<u64> {
        self.walk_dirty(iova, length, no_clear, false, record)
    }

    fn read_dirty_pages(
        &self,
        iova: u64,
        length: u64,
        no_clear: bool,
        record: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Option<u64> {
        self.walk_dirty(iova, length, no_clear, true, record)
    }

    fn unmap(&self, iova: u64, length: u64) {
        self.table.lock().unmap(iova, length);
    }

    fn pgsize_bitmap(&self) -> u64 {
        if self.huge {
            MOCK_HUGE_PAGE_SIZE | PAGE_SIZE_U64
        } else {
            MOCK_PGSIZE_BITMAP
        }
    }

    fn aperture(&self) -> (u64, u64) {
        if self.huge {
            return (0, MOCK_HUGE_APERTURE_LAST);
        }
        (
            u64::from(uapi::MOCK_APERTURE_START),
            u64::from(uapi::MOCK_APERTURE_LAST),
        )
    }

    fn enforces_cache_coherency(&self) -> bool {
        false
    }

    fn maps_large_pages(&self) -> bool {
        // Its PTEs follow the sizes mapped, as a real table's: with large
        // pages off, pages are mapped one by one, as C does.
        true
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        self.table.lock().phys(iova).unwrap_or(0)
    }

    fn read_pfns(&self, iova: u64, out: &mut [u64]) {
        self.table.lock().read_pfns(iova, out, NO_PFN);
    }
}

/// How much of the dirty PTE of `2^lg2` bytes at `start`, visited from
/// `cur`, a walk up to `last` records: with `whole`, to the PTE's end
/// (within the range); else as C's generic PT does, which for a contiguous
/// run of items stops at the start of its last item (or at the end of the
/// range): one item short.
#[inline(always)]
fn dirty_len(cur: u64, start: u64, lg2: u32, last: u64, whole: bool) -> u64 {
    let size = 1u64 << lg2;
    let item = 1u64 << item_lg2(lg2);
    if whole {
        (start + (size - 1)).min(last) - cur + 1
    } else if size > item {
        let span_last_item = start + size - item;
        let range_end_item = (last & !(item - 1)).saturating_add(item);
        span_last_item
            .min(range_end_item)
            .saturating_sub(cur & !(item - 1))
    } else {
        item
    }
}

/// A mock device (`stdev`): its device object and the HWPT it is
/// attached to.
#[pin_data]
pub(crate) struct MockDevice {
    /// `MOCK_FLAGS_DEVICE_*` it was made with.
    dev_flags: u32,
    /// The ID of its device object (`idev`), set once it is bound.
    idev_id: SetOnce<u32>,
    /// A user reference on the HWPT its RID is attached to (none after a
    /// `PASID_DETACH` of PASID 0).
    #[pin]
    hwpt: Mutex<Option<ObjectRef>>,
    /// The PASIDs attached, each with a user reference on its paging HWPT.
    /// Taken inside `hwpt`.
    #[pin]
    pasids: Mutex<KVec<(u32, ObjectRef)>>,
    /// C's mock fails (`ENOMEM`) the next domain change of PASID 1024 after
    /// one succeeded, to test the core's unwinding; blocking it disarms.
    pasid_1024_armed: AtomicBool,
    /// The object ID of its virtual device, if it has one (0 while one is
    /// being made).
    #[pin]
    vdev: Mutex<Option<u32>>,
    /// The vIOMMU and virtual ID its events go to: set when its RID moves
    /// to a HWPT of another vIOMMU (or none), as C's mock does.
    #[pin]
    viommu: Mutex<Option<(Arc<Viommu>, u64)>>,
    /// Its cache entries, which vIOMMU invalidation clears.
    cache: [AtomicU32; uapi::MOCK_DEV_CACHE_NUM as usize],
}

impl MockDevice {
    /// The slot of its virtual device's object ID, locked.
    pub(crate) fn vdev_slot(&self) -> kernel::sync::MutexGuard<'_, Option<u32>> {
        self.vdev.lock()
    }

    /// Its virtual device went.
    pub(crate) fn vdev_gone(&self) {
        *self.vdev.lock() = None;
    }

    /// The vIOMMU and virtual ID its events go to, if any.
    pub(crate) fn viommu_cache(&self) -> Option<(Arc<Viommu>, u64)> {
        self.viommu.lock().clone()
    }

    /// Clears cache entry `index`, or all of them.
    pub(crate) fn clear_cache(&self, index: Option<u32>) {
        for (i, entry) in self.cache.iter().enumerate() {
            if index.is_none_or(|at| at as usize == i) {
                entry.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Detaches the device, tombstones its virtual device and removes its
    /// device object, once its own object is gone from `table`.
    pub(crate) fn destroyed(&self, table: &ObjectTable) {
        let mut rid = self.hwpt.lock();
        // C leaves PASIDs attached here (and WARNs when the group goes);
        // they are let go instead.
        for (pasid, hwpt) in self.pasids.lock().drain_all() {
            release_attachment(table, self, pasid, hwpt);
        }
        if let Some(hwpt) = rid.take() {
            release_attachment(table, self, NO_PASID, hwpt);
        }
        *self.viommu.lock() = None;
        drop(rid);
        let vdev = *self.vdev.lock();
        if let Some(id) = vdev.filter(|&id| id != 0) {
            table.tombstone(id);
        }
        if let Some(id) = self.idev_id.copy() {
            table.remove_internal(id);
        }
    }
}

/// A new mock domain of the default format.
fn new_mock_domain() -> Result<Arc<MockDomain>> {
    MockDomain::new(false, false)
}

/// The mock driver's domain for `IOMMU_HWPT_ALLOC`: `flags` have passed
/// the generic checks; `data` is the user data (type, length, pointer),
/// if any. `EOPNOTSUPP` for data of another type or an unknown format.
pub(crate) fn alloc_hwpt_domain(
    flags: u32,
    data: Option<(u32, u32, u64)>,
) -> Result<Arc<MockDomain>> {
    let mut format = uapi::MOCK_IOMMUPT_DEFAULT;
    if let Some((kind, len, uptr)) = data {
        if kind != uapi::IOMMU_HWPT_DATA_SELFTEST {
            return Err(eopnotsupp());
        }
        // The struct must reach past `iotlb`, as C's copy asks.
        let min_len = core::mem::offset_of!(uapi::iommu_hwpt_selftest, pagetable_type);
        let cfg: uapi::iommu_hwpt_selftest = read_user_struct(uptr, len as usize, min_len)?;
        format = cfg.pagetable_type;
    }
    let huge = match format {
        uapi::MOCK_IOMMUPT_DEFAULT => false,
        uapi::MOCK_IOMMUPT_HUGE => true,
        _ => return Err(eopnotsupp()),
    };
    let dirty = flags & uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0;
    MockDomain::new(huge, dirty)
}

/// The mock driver's nested domain: only its IOTLB, four entries that
/// start at the value the user data gives and that invalidation clears.
pub(crate) struct MockNested {
    iotlb: [AtomicU32; uapi::MOCK_NESTED_DOMAIN_IOTLB_NUM as usize],
}

impl MockNested {
    /// A nested domain from the user data `kind`, `len` bytes at `uptr`:
    /// `EOPNOTSUPP` for data of another type, `EINVAL` for data that does
    /// not reach past `iotlb` or is longer than the struct.
    pub(crate) fn new(kind: u32, len: u32, uptr: u64) -> Result<Self> {
        if kind != uapi::IOMMU_HWPT_DATA_SELFTEST {
            return Err(eopnotsupp());
        }
        let min_len = core::mem::offset_of!(uapi::iommu_hwpt_selftest, pagetable_type);
        let cfg: uapi::iommu_hwpt_selftest = read_user_struct(uptr, len as usize, min_len)?;
        Ok(Self {
            iotlb: core::array::from_fn(|_| AtomicU32::new(cfg.iotlb)),
        })
    }

    /// `IOMMU_HWPT_INVALIDATE`: clears the IOTLB entries the `num`
    /// requests of `len` bytes each at `uptr` name, in order, and stops at
    /// the first bad one. Returns how many were done, and the error.
    pub(crate) fn invalidate(&self, kind: u32, uptr: u64, len: u32, num: u32) -> (u32, Result) {
        if kind != uapi::IOMMU_HWPT_INVALIDATE_DATA_SELFTEST {
            return (0, Err(EINVAL));
        }
        let min_len = size_of::<uapi::iommu_hwpt_invalidate_selftest>();
        for i in 0..num {
            let at = uptr.wrapping_add(u64::from(len) * u64::from(i));
            let req: Result<uapi::iommu_hwpt_invalidate_selftest> =
                read_user_struct(at, len as usize, min_len);
            let req = match req {
                Ok(req) => req,
                Err(e) => return (i, Err(e)),
            };
            if req.flags & !uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                return (i, Err(eopnotsupp()));
            }
            if req.iotlb_id > uapi::MOCK_NESTED_DOMAIN_IOTLB_ID_MAX {
                return (i, Err(EINVAL));
            }
            if req.flags & uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                self.iotlb
                    .iter()
                    .for_each(|e| e.store(0, Ordering::Relaxed));
            } else {
                self.iotlb[req.iotlb_id as usize].store(0, Ordering::Relaxed);
            }
        }
        (num, Ok(()))
    }
}

/// `MD_CHECK_IOTLB`: whether IOTLB entry `index` of the nested HWPT `id`
/// holds `value` (`EINVAL` if not, `ENOENT` if `id` is no nested HWPT).
pub(crate) fn check_iotlb(table: &ObjectTable, id: u32, index: u32, value: u32) -> Result {
    let obj = table.get(id)?;
    let ObjectKind::HwptNested(hwpt) = &obj.object().kind else {
        return Err(ENOENT);
    };
    match hwpt.mock.iotlb.get(index as usize) {
        Some(e) if e.load(Ordering::Relaxed) == value => Ok(()),
        _ => Err(EINVAL),
    }
}

/// `TRIGGER_IOPF`: the mock device behind device object `dev_id` reports
/// an I/O page fault, the last of its group. It goes to the fault queue
/// of the HWPT that PASID `pasid` is attached to, or, for a PASID not
/// attached, of the RID's HWPT if that is nested (the mock IOMMU's PASID
/// table is the guest's); for PASID 0, of the RID's. With no such queue it
/// is dropped (the IOMMU core answers it), and the op still succeeds.
pub(crate) fn trigger_iopf(table: &ObjectTable, cmd: &uapi::iommu_test_cmd) -> Result {
    let req = cmd.trigger_iopf();
    let obj = table.get(req.dev_id)?;
    let ObjectKind::Device(info) = &obj.object().kind else {
        return Err(ENOENT);
    };
    let dev = info.mock.as_ref().ok_or(EINVAL)?;
    let mut flags = uapi::IOMMU_PGFAULT_FLAGS_LAST_PAGE;
    if req.pasid != NO_PASID {
        flags |= uapi::IOMMU_PGFAULT_FLAGS_PASID_VALID;
    }
    let rid = dev.hwpt.lock();
    let pasids = dev.pasids.lock();
    let via_pasid = (req.pasid != NO_PASID)
        .then(|| pasid_slot(&pasids, req.pasid).map(|at| &pasids[at].1))
        .flatten();
    let (hwpt, attach_pasid) = match via_pasid {
        Some(hwpt) => (Some(hwpt), req.pasid),
        None if req.pasid == NO_PASID => (rid.as_ref(), NO_PASID),
        None => (
            rid.as_ref()
                .filter(|h| matches!(h.object().kind, ObjectKind::HwptNested(_))),
            NO_PASID,
        ),
    };
    if let Some(fault) = hwpt.and_then(hw_pagetable::fault_queue) {
        fault.report(PageFault {
            dev_id: req.dev_id,
            attach_pasid,
            flags,
            pasid: req.pasid,
            grpid: req.grpid,
            perm: req.perm,
            addr: req.addr,
        });
    }
    Ok(())
}

/// Lets go of a device's attachment of `pasid` (0: the RID) to `hwpt`:
/// the faults raised through it are answered, then the HWPT is detached.
fn release_attachment(table: &ObjectTable, dev: &MockDevice, pasid: u32, hwpt: ObjectRef) {
    if let (Some(fault), Some(dev_id)) = (hw_pagetable::fault_queue(&hwpt), dev.idev_id.copy()) {
        fault.flush(dev_id, pasid);
    }
    hw_pagetable::detach(table, hwpt);
}

/// `MOCK_DOMAIN` and `MOCK_DOMAIN_FLAGS`: a mock device attached to the
/// IOAS or HWPT `cmd.id`. Objects are made in C's order (stdev, idev,
/// HWPT), and on any error none is left.
pub(crate) fn mock_domain(
    table: &ObjectTable,
    ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>,
) -> Result {
    let pt_id = ucmd.cmd.id;
    let dev_flags = if ucmd.cmd.op == uapi::IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS {
        ucmd.cmd.mock_dev_flags()
    } else {
        0
    };
    let dev = Arc::pin_init(
        pin_init!(MockDevice {
            dev_flags,
            idev_id: SetOnce::new(),
            hwpt <- new_mutex!(None),
            pasids <- new_mutex!(KVec::new()),
            pasid_1024_armed: AtomicBool::new(false),
            vdev <- new_mutex!(None),
            viommu <- new_mutex!(None),
            cache: core::array::from_fn(|_| AtomicU32::new(uapi::IOMMU_TEST_DEV_CACHE_DEFAULT)),
        }),
        GFP_KERNEL,
    )?;
    let stdev = table.reserve(ObjectKind::MockDevice(dev.clone()))?;
    if dev_flags & !MOCK_DEVICE_FLAGS != 0 {
        return Err(EINVAL);
    }
    let info = DeviceInfo {
        dirty_tracking: dev_flags & uapi::MOCK_FLAGS_DEVICE_NO_DIRTY == 0,
        max_pasid_log2: if dev_flags & uapi::MOCK_FLAGS_DEVICE_PASID != 0 {
            MOCK_PASID_WIDTH
        } else {
            0
        },
        kernel: None,
        mock: Some(dev.clone()),
    };
    let idev_id = table.reserve(ObjectKind::Device(info))?.finalize();
    // A new device has no virtual device: a vIOMMU's HWPT refuses it.
    let attached = check_dirty_attach(table, pt_id, dev_flags)
        .and_then(|()| match table.get(pt_id) {
            Ok(pt) => rid_viommu(None, &pt).map(drop),
            Err(_) => Ok(()),
        })
        .and_then(|()| hw_pagetable::attach(table, pt_id, new_mock_domain));
    let hwpt = match attached {
        Ok(hwpt) => hwpt,
        Err(e) => {
            table.remove_internal(idev_id);
            return Err(e);
        }
    };
    let out = uapi::TestMockDomain {
        out_stdev_id: stdev.id,
        out_hwpt_id: hwpt.object().id,
        out_idev_id: idev_id,
    };
    // Writing a union field is safe; the others keep their bytes.
    ucmd.cmd.__bindgen_anon_1.mock_domain = out;
    if let Err(e) = ucmd.respond() {
        hw_pagetable::detach(table, hwpt);
        table.remove_internal(idev_id);
        return Err(e);
    }
    dev.idev_id.populate(idev_id);
    *dev.hwpt.lock() = Some(hwpt);
    stdev.finalize();
    Ok(())
}

/// `MOCK_DOMAIN_REPLACE`: moves mock device `stdev_id` to the IOAS or
/// HWPT `pt_id` and reports the HWPT in `pt_id`. The old automatic HWPT
/// goes if no device is left on it. Not undone if the report fails, as C.
pub(crate) fn replace(table: &ObjectTable, ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let dev = get_mock_device(table, ucmd.cmd.id)?;
    let new_id = replace_rid(table, &dev, ucmd.cmd.replace_pt_id())?;
    ucmd.cmd.__bindgen_anon_1.mock_domain_replace.pt_id = new_id;
    ucmd.respond()
}

/// The mock device `id`: `ENOENT` if there is no such object.
fn get_mock_device(table: &ObjectTable, id: u32) -> Result<Arc<MockDevice>> {
    match &table.get(id)?.object().kind {
        ObjectKind::MockDevice(dev) => Ok(dev.clone()),
        _ => Err(ENOENT),
    }
}

/// Whether the object `pt` may take a RID or a PASID of a device whose
/// PASIDs are `pasids` and whose RID is on `rid` (C's
/// iommufd_hwpt_pasid_compat): only PASID-compatible HWPTs serve PASIDs,
/// and then the RID's HWPT must be one too. An IOAS stands for its
/// automatic HWPTs, which never are.
fn pasid_compat(
    pt: &ObjectRef,
    pasid: u32,
    rid: Option<&ObjectRef>,
    pasids: &[(u32, ObjectRef)],
) -> Result {
    let compat = hw_pagetable::is_pasid_compat;
    let ok = if pasid == NO_PASID {
        compat(pt) || pasids.is_empty()
    } else {
        compat(pt) && rid.is_none_or(compat)
    };
    if ok {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

/// The PASID that stands for the RID in the PASID test ops.
const NO_PASID: u32 = 0;

/// Where PASID `pasid` is in a device's list of attached PASIDs.
fn pasid_slot(pasids: &[(u32, ObjectRef)], pasid: u32) -> Option<usize> {
    pasids.iter().position(|(p, _)| *p == pasid)
}

/// Moves the RID of `dev` to the IOAS or HWPT `pt_id`; the HWPT's ID.
/// `EINVAL` if the RID is not attached, or the target does not suit the
/// PASIDs attached or the device's dirty tracking.
fn replace_rid(table: &ObjectTable, dev: &MockDevice, pt_id: u32) -> Result<u32> {
    let target = table.get(pt_id)?;
    if !matches!(target.object().kind, ObjectKind::Ioas(_)) && !hw_pagetable::is_hwpt(&target) {
        return Err(EINVAL);
    }
    let mut cur = dev.hwpt.lock();
    let Some(cur_id) = cur.as_ref().map(|h| h.object().id) else {
        return Err(EINVAL);
    };
    // Staying where it is (on the IOAS's automatic HWPT) always suits.
    let same = cur_id == pt_id
        || cur.as_ref().is_some_and(
            |h| matches!(&h.object().kind, ObjectKind::HwptPaging(hw) if hw.auto_on(pt_id)),
        );
    if !same {
        pasid_compat(&target, NO_PASID, cur.as_ref(), &dev.pasids.lock())?;
    }
    check_dirty_attach(table, pt_id, dev.dev_flags)?;
    let viommu = match same {
        true => None,
        false => Some(rid_viommu(dev.idev_id.copy(), &target)?),
    };
    drop(target);
    let new = hw_pagetable::attach(table, pt_id, new_mock_domain)?;
    if let Some(viommu) = viommu {
        dev.set_viommu(viommu);
    }
    let new_id = new.object().id;
    let old = if cur_id == new_id {
        Some(new)
    } else {
        cur.replace(new)
    };
    drop(cur);
    if let Some(old) = old {
        if old.object().id == new_id {
            hw_pagetable::detach(table, old);
        } else {
            release_attachment(table, dev, NO_PASID, old);
        }
    }
    Ok(new_id)
}

/// The vIOMMU and virtual ID the RID of device object `idev_id` would
/// report events under on the object `target`: those of its virtual
/// device if `target` is a nested HWPT of a vIOMMU (`ENOENT` if it has
/// none there), else none. The mock driver's attach checks this.
fn rid_viommu(idev_id: Option<u32>, target: &ObjectRef) -> Result<Option<(Arc<Viommu>, u64)>> {
    let ObjectKind::HwptNested(nested) = &target.object().kind else {
        return Ok(None);
    };
    let Some(viommu) = nested.viommu() else {
        return Ok(None);
    };
    let virt_id = idev_id.and_then(|id| viommu.virt_id_of(id)).ok_or(ENOENT)?;
    Ok(Some((viommu.clone(), virt_id)))
}

impl MockDevice {
    /// Its RID moved to a HWPT of `viommu` (or of none): events now go
    /// there, if that is another vIOMMU than before.
    fn set_viommu(&self, viommu: Option<(Arc<Viommu>, u64)>) {
        let mut cur = self.viommu.lock();
        let same = match (&*cur, &viommu) {
            (Some((a, _)), Some((b, _))) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            *cur = viommu;
        }
    }

    /// Made with `MOCK_FLAGS_DEVICE_PASID`: the core only asks the driver
    /// about PASIDs of such a device.
    fn pasid_capable(&self) -> bool {
        self.dev_flags & uapi::MOCK_FLAGS_DEVICE_PASID != 0
    }

    /// The mock driver's answer to putting a domain on `pasid` (C's
    /// `set_dev_pasid`), with its planted failure for PASID 1024.
    fn set_dev_pasid(&self, pasid: u32) -> Result {
        if !self.pasid_capable() || pasid != 1024 {
            return Ok(());
        }
        if self.pasid_1024_armed.swap(false, Ordering::Relaxed) {
            return Err(ENOMEM);
        }
        self.pasid_1024_armed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The mock driver's answer to blocking `pasid`.
    fn block_pasid(&self, pasid: u32) {
        if self.pasid_capable() && pasid == 1024 {
            self.pasid_1024_armed.store(false, Ordering::Relaxed);
        }
    }
}

/// `PASID_ATTACH`: attaches PASID `pasid` of mock device `cmd.id` to the
/// HWPT `pt_id` (PASID 0: the RID, to an IOAS or HWPT), in C's order of
/// checks: `EBUSY` if already attached; `EINVAL` for a target that is no
/// HWPT, not PASID-compatible (an IOAS's automatic HWPTs never are) or
/// past the device's PASID width.
pub(crate) fn pasid_attach(
    table: &ObjectTable,
    ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>,
) -> Result {
    let dev = get_mock_device(table, ucmd.cmd.id)?;
    let (pasid, pt_id) = ucmd.cmd.pasid_attach();
    let pt = table.get(pt_id)?;
    let is_ioas = match pt.object().kind {
        ObjectKind::Ioas(_) => true,
        _ if hw_pagetable::is_hwpt(&pt) => false,
        _ => return Err(EINVAL),
    };
    let mut rid = dev.hwpt.lock();
    let mut pasids = dev.pasids.lock();
    let attached = match pasid {
        NO_PASID => rid.is_some(),
        _ => pasid_slot(&pasids, pasid).is_some(),
    };
    if attached {
        return Err(EBUSY);
    }
    pasid_compat(&pt, pasid, rid.as_ref(), &pasids)?;
    let out_id = if pasid == NO_PASID {
        drop(pasids);
        check_dirty_attach(table, pt_id, dev.dev_flags)?;
        let viommu = rid_viommu(dev.idev_id.copy(), &pt)?;
        drop(pt);
        let hwpt = hw_pagetable::attach(table, pt_id, new_mock_domain)?;
        dev.set_viommu(viommu);
        let id = hwpt.object().id;
        *rid = Some(hwpt);
        id
    } else {
        if is_ioas {
            return Err(EINVAL);
        }
        if dev.pasid_capable() && pasid >= 1 << MOCK_PASID_WIDTH {
            return Err(EINVAL);
        }
        pasids.reserve(1, GFP_KERNEL)?;
        dev.set_dev_pasid(pasid)?;
        // Room was made above: this cannot fail.
        pasids
            .push_within_capacity((pasid, pt))
            .map_err(|_| ENOMEM)?;
        pt_id
    };
    drop(rid);
    ucmd.cmd.__bindgen_anon_1.pasid_attach.pt_id = out_id;
    if let Err(e) = ucmd.respond() {
        let _ = pasid_detach(table, ucmd.cmd.id, pasid);
        return Err(e);
    }
    Ok(())
}

/// `PASID_REPLACE`: moves attached PASID `pasid` of mock device `cmd.id`
/// to the HWPT `pt_id` (PASID 0: the RID, as `MOCK_DOMAIN_REPLACE`).
/// `EINVAL` if it is not attached or the target does not suit it; the
/// mock's planted `ENOMEM` for PASID 1024.
pub(crate) fn pasid_replace(
    table: &ObjectTable,
    ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>,
) -> Result {
    let dev = get_mock_device(table, ucmd.cmd.id)?;
    let (pasid, pt_id) = ucmd.cmd.pasid_attach();
    if pasid == NO_PASID {
        let new_id = replace_rid(table, &dev, pt_id)?;
        ucmd.cmd.__bindgen_anon_1.pasid_attach.pt_id = new_id;
        return ucmd.respond();
    }
    let pt = table.get(pt_id)?;
    if !hw_pagetable::is_hwpt(&pt) {
        // An IOAS's automatic HWPTs never serve PASIDs.
        return Err(EINVAL);
    }
    let rid = dev.hwpt.lock();
    let mut pasids = dev.pasids.lock();
    let at = pasid_slot(&pasids, pasid).ok_or(EINVAL)?;
    if pasids[at].1.object().id != pt_id {
        pasid_compat(&pt, pasid, rid.as_ref(), &pasids)?;
        dev.set_dev_pasid(pasid)?;
        let old = core::mem::replace(&mut pasids[at].1, pt);
        // The old HWPT is never automatic: this only answers its faults.
        release_attachment(table, &dev, pasid, old);
    }
    drop(pasids);
    drop(rid);
    ucmd.respond()
}

/// `PASID_DETACH`: detaches PASID `pasid` of mock device `id` (PASID 0:
/// the RID); nothing if it is not attached.
pub(crate) fn pasid_detach(table: &ObjectTable, id: u32, pasid: u32) -> Result {
    let dev = get_mock_device(table, id)?;
    let mut rid = dev.hwpt.lock();
    let hwpt = if pasid == NO_PASID {
        rid.take()
    } else {
        let mut pasids = dev.pasids.lock();
        pasid_slot(&pasids, pasid).and_then(|at| {
            dev.block_pasid(pasid);
            pasids.remove(at).ok().map(|(_, hwpt)| hwpt)
        })
    };
    drop(rid);
    if let Some(hwpt) = hwpt {
        release_attachment(table, &dev, pasid, hwpt);
    }
    Ok(())
}

/// `PASID_CHECK_HWPT`: whether PASID `pasid` of mock device `id` (PASID
/// 0: the RID) is on the paging HWPT `hwpt_id`, or, for 0, on none
/// (`EINVAL` if not, and for an object that is no HWPT).
pub(crate) fn pasid_check_hwpt(table: &ObjectTable, id: u32, pasid: u32, hwpt_id: u32) -> Result {
    let dev = get_mock_device(table, id)?;
    let attached = match pasid {
        NO_PASID => dev.hwpt.lock().as_ref().map(|h| h.object().id),
        _ => {
            let pasids = dev.pasids.lock();
            pasid_slot(&pasids, pasid).map(|at| pasids[at].1.object().id)
        }
    };
    if hwpt_id == 0 {
        return if attached.is_some() {
            Err(EINVAL)
        } else {
            Ok(())
        };
    }
    if !hw_pagetable::is_hwpt(&table.get(hwpt_id)?) {
        return Err(EINVAL);
    }
    if attached != Some(hwpt_id) {
        return Err(EINVAL);
    }
    Ok(())
}

/// `MD_CHECK_MAP`: checks that the mock domain of HWPT `id` maps each
/// smallest IO page of `[iova, iova + length)` to the memory at `uptr`.
pub(crate) fn check_map(table: &ObjectTable, id: u32, iova: u64, length: u64, uptr: u64) -> Result {
    let obj = table.get(id)?;
    let ObjectKind::HwptPaging(hwpt) = &obj.object().kind else {
        return Err(ENOENT);
    };
    let domain = &hwpt.domain;
    // The domain's smallest IO page: 4 KiB in the huge format.
    let ps = 1u64 << domain.pgsize_bitmap().trailing_zeros();
    if iova % ps != 0 || length % ps != 0 || uptr % ps != 0 || uptr.checked_add(length).is_none() {
        return Err(EINVAL);
    }
    for off in (0..length).step_by(ps as usize) {
        let at = uptr + off;
        let page = usize::try_from(at & !(PAGE_SIZE_U64 - 1)).map_err(|_| EFAULT)?;
        let pfn = pin::user_page_pfn(page)?;
        if domain.iova_to_phys(iova + off) != pfn * PAGE_SIZE_U64 + at % PAGE_SIZE_U64 {
            return Err(EINVAL);
        }
    }
    Ok(())
}

/// `IOMMU_TEST_OP_DIRTY`: marks dirty, in the mock domain of HWPT `id`,
/// the IO page at `iova + i * page_size` for each bit `i` set in the user
/// bitmap, and reports how many. Dirty tracking must be on (`EINVAL`).
pub(crate) fn set_dirty(table: &ObjectTable, ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let (iova, length, page_size, uptr) = ucmd.cmd.dirty();
    if page_size == 0
        || length == 0
        || iova % page_size != 0
        || length % page_size != 0
        || uptr == 0
    {
        return Err(EINVAL);
    }
    let max = length / page_size;
    if max > (16 << 20) * 8 {
        return Err(EOVERFLOW);
    }
    let obj = table.get(ucmd.cmd.id)?;
    let ObjectKind::HwptPaging(hwpt) = &obj.object().kind else {
        return Err(ENOENT);
    };
    let mock = hwpt.mock_domain().ok_or(EINVAL)?;
    if !mock.tracking.load(Ordering::Relaxed) {
        return Err(EINVAL);
    }
    let mut bits = KVVec::new();
    bits.resize(max.div_ceil(8) as usize, 0u8, GFP_KERNEL)?;
    let user = UserPtr::from_addr(usize::try_from(uptr).map_err(|_| EFAULT)?);
    UserSlice::new(user, bits.len())
        .reader()
        .read_slice(&mut bits)?;
    let mut count = 0u64;
    for i in 0..max {
        if bits[(i / 8) as usize] & (1 << (i % 8)) != 0 {
            mock.set_dirty(iova.wrapping_add(i * page_size));
            count += 1;
        }
    }
    ucmd.cmd.set_out_nr_dirty(count);
    ucmd.respond()
}

/// Whether a device made with `dev_flags` may attach to the HWPT or IOAS
/// `pt_id`: a device without dirty tracking cannot join a domain that has
/// it (`EINVAL`, from the mock driver's attach in C).
fn check_dirty_attach(table: &ObjectTable, pt_id: u32, dev_flags: u32) -> Result {
    if dev_flags & uapi::MOCK_FLAGS_DEVICE_NO_DIRTY == 0 {
        return Ok(());
    }
    if let Ok(obj) = table.get(pt_id) {
        if let ObjectKind::HwptPaging(hwpt) = &obj.object().kind {
            if hwpt.domain.has_dirty_tracking() {
                return Err(EINVAL);
            }
        }
    }
    Ok(())
}

/// `DEV_CHECK_CACHE`: whether cache entry `index` of the mock device
/// behind device object `id` holds `value` (`EINVAL` if not).
pub(crate) fn check_dev_cache(table: &ObjectTable, id: u32, index: u32, value: u32) -> Result {
    let obj = table.get(id)?;
    let ObjectKind::Device(info) = &obj.object().kind else {
        return Err(ENOENT);
    };
    let dev = info.mock.as_ref().ok_or(EINVAL)?;
    match dev.cache.get(index as usize) {
        Some(entry) if entry.load(Ordering::Relaxed) == value => Ok(()),
        _ => Err(EINVAL),
    }
}
