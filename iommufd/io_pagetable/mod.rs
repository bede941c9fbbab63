// SPDX-License-Identifier: GPL-2.0

//! The IO page table of an IOAS: which IOVA ranges are mapped to which user
//! memory, which may be allocated, and which are reserved.
//!
//! Three interval trees:
//! - `areas`: each maps an IOVA range to a byte range of a [`Pages`];
//!   areas never overlap;
//! - `allowed`: ranges set by `IOAS_ALLOW_IOVAS`; when there are any, the
//!   IOVA allocator only picks from them;
//! - `reserved`: ranges nothing may be mapped at (domain apertures, device
//!   regions, tests).
//!
//! Errnos and choices follow C iommufd exactly, so that both give the same
//! IOVAs for the same calls.

use crate::{
    domain::{IoDomain, Prot},
    free_space::{FreeSpace, SpareNode},
    pages::{AreaPages, AreaSpan, Pages},
    sys::{
        errno::{eaddrinuse, eopnotsupp},
        interval_tree::{DisjointTree, IntervalTree, NewNode},
        shared::Shared,
        DBox, PAGE_SIZE_U64,
    },
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    sync::Arc,
};

// The area table, map, unmap, copy and split are here; the allocator in
// `alloc`, domain fill and unfill in `domains`, accesses in `access`, the
// VFIO container's dirty log in `dirty_log`.
mod access;
mod alloc;
mod dirty_log;
#[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
mod domains;

pub(crate) use access::{page_span, AccessNotify, AccessPiece};
pub(crate) use dirty_log::DirtyPages;
pub(crate) use domains::AttachedDomain;

/// Who reserved an IOVA range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReservedBy {
    /// The test interface (`ADD_RESERVED`): kept until the IOAS goes.
    User,
    /// The aperture of the domain of this HWPT: removed with it.
    Domain(u32),
    /// The reserved regions of the device with this object ID, while it is
    /// attached to a domain of the IOAS.
    Device(u32),
}

/// An inclusive IOVA range `[start, last]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IovaRange {
    /// First IOVA in the range.
    pub(crate) start: u64,
    /// Last IOVA in the range (inclusive).
    pub(crate) last: u64,
}

/// A mapped IOVA range: bytes `start_byte..` of `pages`. Its IOVA range is
/// its node's range in the areas tree.
pub(crate) struct Area {
    /// The memory: pending until a domain, an access, a copy or a split
    /// needs its pages object.
    pub(crate) pages: AreaPages,
    /// Offset of the area's first IOVA inside `pages`.
    pub(crate) start_byte: u64,
    /// Protection.
    pub(crate) prot: Prot,
    /// Access pins held on it; unmap asks the accesses to drop them first.
    num_accesses: Atomic<u32>,
    /// The pins among those that lock the area: an unmap fails with
    /// `EBUSY` while there are any (a HW queue's).
    num_locks: Atomic<u32>,
    /// Set while an unmap waits for accesses to unpin; pins and reads
    /// through accesses then fail with `EINVAL`.
    prevent_access: Atomic<bool>,
    /// While the VFIO container's dirty log runs: the pages accesses
    /// pinned or wrote since it last reported them, bit `k` for the `k`-th
    /// `PAGE_SIZE` page the area spans (type1's per-mapping bitmap).
    dirty: Option<KVVec<u64>>,
}

// An area's node (48 bytes of tree links) fits a 128-byte kmalloc, with
// pending pages in it.
const _: () = assert!(core::mem::size_of::<Area>() <= 80);

impl Area {
    /// Offset in the page of the area's first byte.
    fn page_offset(&self) -> u64 {
        self.start_byte % PAGE_SIZE_U64
    }

    /// Counts one more access pin on the area.
    pub(crate) fn add_access(&self) {
        self.num_accesses.fetch_add(1, Relaxed);
    }

    /// Counts one access pin less.
    pub(crate) fn remove_access(&self) {
        self.num_accesses.fetch_add(u32::MAX, Relaxed);
    }

    /// Counts one more pin that locks the area.
    pub(crate) fn add_lock(&self) {
        self.num_locks.fetch_add(1, Relaxed);
    }

    /// Counts one locking pin less.
    pub(crate) fn remove_lock(&self) {
        self.num_locks.fetch_add(u32::MAX, Relaxed);
    }

    /// Whether an unmap is waiting for accesses to leave.
    pub(crate) fn access_prevented(&self) -> bool {
        self.prevent_access.load(Relaxed)
    }

    /// The byte of the pages object at `iova`, inside the area at `start`.
    fn byte_at(&self, start: u64, iova: u64) -> u64 {
        iova - start + self.start_byte
    }

    /// Its pages object, made now if it is pending (`ENOMEM`), for the
    /// area at `[start, last]`.
    fn make_pages(&mut self, start: u64, last: u64) -> Result<&Shared<Pages>> {
        self.pages
            .make(self.start_byte + (last - start + 1), self.prot.write)
    }

    /// Whether its memory may be mapped writable (pending memory is
    /// exactly when the area is).
    pub(crate) fn writable(&self) -> bool {
        self.pages
            .made()
            .map_or(self.prot.write, |pages| pages.writable)
    }

    /// Its pages object, which the caller made (`EINVAL` if it is still
    /// pending, which is a bug).
    pub(crate) fn made_pages(&self) -> Result<&Shared<Pages>> {
        self.pages.made().ok_or(EINVAL)
    }
}

/// The smallest page size in a page-size bitmap.
fn min_page_size(bitmap: u64) -> u64 {
    1u64.checked_shl(bitmap.trailing_zeros())
        .unwrap_or(u64::MAX)
}

/// A new area not yet in the table; its node's range is a placeholder
/// `[0, length - 1]` until [`IoPagetable::map_areas`] places it.
pub(crate) type NewArea = NewNode<Area>;

/// Allocates an area of `length` (nonzero) bytes from `start_byte` of
/// `pages`. Pending pages must start in their first page (`start_byte`
/// below `PAGE_SIZE`) and end with the area.
pub(crate) fn new_area(
    pages: AreaPages,
    start_byte: u64,
    length: u64,
    prot: Prot,
) -> Result<NewArea> {
    // Written straight into the node's allocation.
    NewNode::new(
        0,
        length - 1,
        init!(Area {
            pages,
            start_byte,
            prot,
            num_accesses: Atomic::new(0),
            num_locks: Atomic::new(0),
            prevent_access: Atomic::new(false),
            dirty: None,
        }),
        GFP_KERNEL,
    )
}

/// How many areas a copy keeps in place before it needs a vector.
const FEW_AREAS: usize = 4;

/// The new areas of one copy, in order: a few in place (a copy of one
/// mapping allocates nothing for the list), more in a vector.
pub(crate) enum NewAreas {
    /// The first `.1` slots are filled.
    Few([Option<NewArea>; FEW_AREAS], usize),
    /// More than [`FEW_AREAS`].
    Many(KVec<Option<NewArea>>),
}

impl NewAreas {
    /// Appends `area`: `ENOMEM` (and `area` is dropped) if a vector is
    /// needed and cannot grow.
    fn push(&mut self, area: NewArea) -> Result {
        match self {
            Self::Few(slots, len) if *len < FEW_AREAS => {
                slots[*len] = Some(area);
                *len += 1;
            }
            Self::Few(slots, _) => {
                let mut all = KVec::with_capacity(2 * FEW_AREAS, GFP_KERNEL)?;
                for slot in slots.iter_mut() {
                    all.push(slot.take(), GFP_KERNEL)?;
                }
                all.push(Some(area), GFP_KERNEL)?;
                *self = Self::Many(all);
            }
            Self::Many(all) => all.push(Some(area), GFP_KERNEL)?,
        }
        Ok(())
    }

    /// The areas, as [`IoPagetable::map_areas`] takes them.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [Option<NewArea>] {
        match self {
            Self::Few(slots, len) => &mut slots[..*len],
            Self::Many(all) => all,
        }
    }
}

/// The length of a new area.
fn new_area_len(area: &NewArea) -> u64 {
    area.range().1 + 1
}

/// A new set of allowed ranges, checked as it is built, before it replaces
/// the old one (`IOAS_ALLOW_IOVAS`).
pub(crate) struct AllowedRanges(IntervalTree<()>);

impl AllowedRanges {
    /// An empty set: the allocator may use the whole space.
    pub(crate) const fn new() -> Self {
        Self(IntervalTree::new())
    }

    /// Adds a range: `EINVAL` if it is empty or a single IOVA
    /// (`start >= last`) or overlaps one already added.
    pub(crate) fn add(&mut self, r: IovaRange) -> Result {
        if r.start >= r.last || self.0.first(r.start, r.last).is_some() {
            return Err(EINVAL);
        }
        self.0
            .insert(NewNode::new(r.start, r.last, (), GFP_KERNEL)?);
        Ok(())
    }
}

/// The IOVA bookkeeping of one IOAS.
///
/// # Invariants
///
/// 1. Areas overlap neither one another (which `areas`, a
///    [`DisjointTree`], relies on) nor a reserved range; reserved ranges do
///    not overlap allowed ranges.
/// 2. Every area's first IOVA, length and page offset are multiples of
///    `iova_alignment`.
/// 3. `iova_alignment` is the largest of 1, `PAGE_SIZE` if large pages
///    are disabled or an attached access pins pages, and each attached
///    domain's smallest page size.
/// 4. `free`, when present, indexes exactly the holes between areas and
///    reserved ranges: a path that cannot keep it in step drops it.
/// 5. While domains are attached, every area's pages object is made, the
///    area is mapped into each domain, and it holds a domain use in its
///    pages object whose storage domain is the first attached (so its
///    pages are pinned, once).
/// 6. An area's `num_accesses` counts the access pins taken on it (its
///    pages object is made if there are any), and `num_locks` those of
///    them that lock it; `prevent_access` is set only by an unmap waiting
///    for them to go.
/// 7. While `dirty_log` is set, every area has a dirty log (`Area::dirty`)
///    with one bit per page it spans; otherwise none has.
pub(crate) struct IoPagetable {
    areas: DisjointTree<Area>,
    allowed: IntervalTree<()>,
    reserved: IntervalTree<ReservedBy>,
    /// Every IOVA, length and page offset must be a multiple of this.
    iova_alignment: u64,
    /// `IOMMU_OPTION_HUGE_PAGES` set to 0.
    disable_large_pages: bool,
    /// The VFIO container's dirty log runs (`VFIO_IOMMU_DIRTY_PAGES`
    /// START, until STOP).
    dirty_log: bool,
    /// Index of the free holes, for O(log n) allocation. Built the first
    /// time the allocator runs, so that IOASes mapped only at fixed IOVAs
    /// never pay for it; dropped after an allocation failure on a path that
    /// may not fail (unmap), when the allocator walks the trees instead.
    free: Option<FreeSpace>,
    /// The domains and accesses attached.
    attached: Attached,
}

/// What is attached to an IOAS, allocated on first use: most IOASes have
/// nothing attached, and this keeps an empty one in a 128-byte kmalloc.
struct Attached(Option<DBox<Attachments>>);

/// The domains and accesses of an [`Attached`].
struct Attachments {
    /// In-kernel accesses attached to the IOAS.
    accesses: KVec<Arc<dyn AccessNotify>>,
    /// Domains attached to the IOAS. While there is one, every area holds
    /// one user (and so a pin) on each of its pages.
    domains: KVec<AttachedDomain>,
}

impl Attached {
    /// The attached domains; the first one is the pages' storage domain.
    fn domains(&self) -> &[AttachedDomain] {
        self.0.as_ref().map_or(&[], |a| &a.domains)
    }

    /// The attached accesses.
    fn accesses(&self) -> &[Arc<dyn AccessNotify>] {
        self.0.as_ref().map_or(&[], |a| &a.accesses)
    }

    /// The attachments, allocated if this is the first: `ENOMEM`.
    fn get_or_alloc(&mut self) -> Result<&mut Attachments> {
        match &mut self.0 {
            Some(attached) => Ok(attached),
            empty @ None => {
                let attached = Attachments {
                    accesses: KVec::new(),
                    domains: KVec::new(),
                };
                Ok(empty.insert(DBox::new(attached, GFP_KERNEL)?))
            }
        }
    }

    /// The attachments, if any were ever allocated.
    fn existing(&mut self) -> Option<&mut Attachments> {
        self.0.as_deref_mut()
    }
}

/// How an unmap stopped before its end.
pub(crate) enum UnmapStop {
    /// At an area crossing the range's edge, or busy: this errno.
    Failed(Error),
    /// At an area accesses hold pins on: `[iova, iova + length)`. The
    /// accesses must be told, and the unmap retried from `iova`. `after_gap`
    /// says whether the area starts past where the search stood (the start
    /// asked for, or the end of the area unmapped before it): only then
    /// does C count the retries afresh.
    Accessed {
        /// First IOVA of the area.
        iova: u64,
        /// Its length.
        length: u64,
        /// Whether a hole precedes it in the search.
        after_gap: bool,
    },
}

/// Where a map goes.
#[derive(Clone, Copy)]
pub(crate) enum Placement {
    /// Exactly at this IOVA.
    Fixed(u64),
    /// Wherever the allocator finds room.
    Allocate,
}

/// `x + len - 1`, or `EOVERFLOW`.
fn last_of(start: u64, len: u64) -> Result<u64> {
    start.checked_add(len.wrapping_sub(1)).ok_or(EOVERFLOW)
}

impl IoPagetable {
    /// An empty table: nothing reserved, byte alignment.
    pub(crate) const fn new() -> Self {
        Self {
            areas: IntervalTree::new(),
            allowed: IntervalTree::new(),
            reserved: IntervalTree::new(),
            iova_alignment: 1,
            disable_large_pages: false,
            dirty_log: false,
            free: None,
            attached: Attached(None),
        }
    }

    /// The alignment every mapping must respect.
    pub(crate) fn iova_alignment(&self) -> u64 {
        self.iova_alignment
    }

    /// Marks `range` reserved: `EADDRINUSE` if an area or an allowed range
    /// meets it.
    #[cfg_attr(not(CONFIG_KUNIT), allow(dead_code))]
    pub(crate) fn reserve(&mut self, range: IovaRange) -> Result {
        self.reserve_for(range, ReservedBy::User)
    }

    /// Reserves the regions of device `dev_id` (`EADDRINUSE` if an area
    /// or an allowed range meets one). All or nothing.
    pub(crate) fn reserve_device(&mut self, dev_id: u32, regions: &[IovaRange]) -> Result {
        for r in regions {
            if let Err(e) = self.reserve_for(*r, ReservedBy::Device(dev_id)) {
                self.unreserve_device(dev_id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops the reservations of device `dev_id`.
    pub(crate) fn unreserve_device(&mut self, dev_id: u32) {
        self.remove_reserved(ReservedBy::Device(dev_id));
    }

    /// Whether `range` meets an area or an allowed range.
    fn meets_used(&self, range: IovaRange) -> bool {
        self.areas.first(range.start, range.last).is_some()
            || self.allowed.first(range.start, range.last).is_some()
    }

    fn reserve_for(&mut self, range: IovaRange, by: ReservedBy) -> Result {
        if self.meets_used(range) {
            return Err(eaddrinuse());
        }
        let node = NewNode::new(range.start, range.last, by, GFP_KERNEL)?;
        let spare = self.spare_node()?;
        // INVARIANT: (1) the range meets no area nor allowed range, checked
        // above; (4) the index loses the range's holes with it.
        self.reserved.insert(node);
        if let (Some(free), Some(spare)) = (self.free.as_mut(), spare) {
            free.occupy_any(range.start, range.last, spare);
        }
        Ok(())
    }

    /// Checks that `[iova, iova + length)` may be mapped exactly there.
    #[cfg_attr(not(CONFIG_KUNIT), allow(dead_code))]
    fn check_iova(&self, iova: u64, length: u64) -> Result {
        let last = self.check_unreserved(iova, length)?;
        self.check_no_area(iova, last)
    }

    /// Checks that `[iova, iova + length)` is aligned and reserved nowhere;
    /// returns its last IOVA.
    #[inline]
    fn check_unreserved(&self, iova: u64, length: u64) -> Result<u64> {
        if iova & (self.iova_alignment - 1) != 0 {
            return Err(EINVAL);
        }
        let last = last_of(iova, length)?;
        if self.reserved.first(iova, last).is_some() {
            return Err(EINVAL);
        }
        Ok(last)
    }

    /// `EEXIST` if an area meets `[iova, last]`.
    fn check_no_area(&self, iova: u64, last: u64) -> Result {
        match self.areas.first(iova, last) {
            Some(_) => Err(EEXIST),
            None => Ok(()),
        }
    }

    /// Whether a new area needs nothing set up with it: no domain to fill,
    /// no dirty log, no free-space index.
    fn inserts_bare(&self) -> bool {
        self.attached.domains().is_empty() && !self.dirty_log && self.free.is_none()
    }

    /// Checks each new area against its memory (`EPERM` if it must be
    /// writable and is not; `EINVAL` for a page offset off the alignment;
    /// `EOVERFLOW`) and places them back to back from `iova`. Returns one
    /// past the last IOVA.
    fn place_new_areas(&self, areas: &mut [Option<NewArea>], iova: u64) -> Result<u64> {
        let mut at = iova;
        for node in areas.iter_mut().flatten() {
            let len = new_area_len(node);
            let area = node.value();
            if area.prot.write && !area.writable() {
                return Err(EPERM);
            }
            if area.page_offset() & (self.iova_alignment - 1) != 0 {
                return Err(EINVAL);
            }
            let last = last_of(at, len)?;
            last_of(area.start_byte, len)?;
            node.set_range(at, last);
            at = last.wrapping_add(1);
        }
        Ok(at)
    }

    /// Maps `areas` back to back at `placement` and returns the first
    /// IOVA. Either every area is inserted (each slot is emptied) or
    /// nothing changes.
    pub(crate) fn map_areas(
        &mut self,
        areas: &mut [Option<NewArea>],
        placement: Placement,
    ) -> Result<u64> {
        let mut length = 0u64;
        for area in areas.iter().flatten() {
            length = length.checked_add(new_area_len(area)).ok_or(EOVERFLOW)?;
        }
        if length & (self.iova_alignment - 1) != 0 || length == 0 {
            return Err(EINVAL);
        }
        let iova = match placement {
            Placement::Fixed(iova) => {
                let last = self.check_unreserved(iova, length)?;
                // One bare area: the descent that inserts it also checks
                // that it meets no area. Its own errors come after
                // `EEXIST`, so they are left to the path below.
                let bare = areas.len() == 1 && self.inserts_bare();
                if let (true, [slot]) = (bare, &mut *areas) {
                    let placed = self.place_new_areas(core::slice::from_mut(slot), iova);
                    // Taken only once placed: an error is reported below.
                    if let Some(node) = placed.ok().and_then(|_| slot.take()) {
                        // INVARIANT: (1) `try_insert` checked the area apart
                        // from the others, and the reserved ranges were
                        // checked; (2) `place_new_areas` checked alignment;
                        // nothing else is set up (`inserts_bare`).
                        return match self.areas.try_insert(node) {
                            Ok(()) => Ok(iova),
                            Err(node) => {
                                *slot = Some(node);
                                Err(EEXIST)
                            }
                        };
                    }
                }
                self.check_no_area(iova, last)?;
                iova
            }
            Placement::Allocate => {
                let first = areas.iter().flatten().next().ok_or(EINVAL)?.value();
                self.alloc_iova(first.pages.address_of(first.start_byte), length)?
            }
        };
        // Allocated after placement: the allocator may have built the index.
        let spare = self.spare_node()?;
        // Check and place every area before inserting any.
        let at = self.place_new_areas(areas, iova)?;
        let logs = self.new_dirty_logs(areas)?;
        if !self.attached.domains().is_empty() {
            self.fill_new_areas(areas)?;
        }
        // INVARIANT: (1, 2) placement and alignment were checked above;
        // (5) the areas are in every domain; (4) the index loses the range;
        // (7) the new areas get their dirty logs if the log runs.
        for node in areas.iter_mut() {
            if let Some(node) = node.take() {
                self.areas.insert(node);
            }
        }
        if let Some(logs) = logs {
            self.give_dirty_logs(iova, at.wrapping_sub(1), logs);
        }
        if let (Some(free), Some(spare)) = (self.free.as_mut(), spare) {
            free.occupy(iova, at.wrapping_sub(1), spare);
        }
        Ok(iova)
    }

    /// Unmaps the areas inside `[start, last]`, in order, and returns the
    /// bytes unmapped. Stops at an area that crosses the range's edge
    /// (`ENOENT`), that is locked (`EBUSY`, checked first) or that accesses
    /// hold pins on; the areas before it stay
    /// unmapped, as in C. With `report`, each area's dirty pages are
    /// reported to it just before the area goes; its error stops the unmap
    /// there, the area kept.
    pub(crate) fn unmap_range(
        &mut self,
        start: u64,
        last: u64,
        mut report: Option<&mut (dyn FnMut(&DirtyPages<'_>) -> Result + '_)>,
    ) -> (Result<(), UnmapStop>, u64) {
        let mut unmapped = 0u64;
        let mut from = start;
        loop {
            // One search finds the area and takes it, unless it must stay.
            let mut stop = None;
            let domains = self.attached.domains();
            let taken = self.areas.take_first_if(from, last, |s, l, area| {
                if area.num_locks.load(Relaxed) > 0 {
                    stop = Some(UnmapStop::Failed(EBUSY));
                } else if s < start || l > last {
                    stop = Some(UnmapStop::Failed(ENOENT));
                } else if area.num_accesses.load(Relaxed) > 0 {
                    area.prevent_access.store(true, Relaxed);
                    stop = Some(UnmapStop::Accessed {
                        iova: s,
                        length: l - s + 1,
                        after_gap: s != from,
                    });
                } else if let Some(report) = report.as_mut() {
                    if let Err(e) =
                        dirty_log::report_before_unmap(s, l, area, domains, &mut **report)
                    {
                        stop = Some(UnmapStop::Failed(e));
                    }
                }
                stop.is_none()
            });
            let Some((a_start, a_last, area)) = taken else {
                return (Ok(()), unmapped);
            };
            if let Some(stop) = stop {
                return (Err(stop), unmapped);
            }
            // INVARIANT: (5) the area leaves every domain before it goes;
            // (4) its range becomes a hole, or the index is dropped.
            if let Some(area) = &area {
                self.unfill_area(a_start, a_last - a_start + 1, area);
            }
            drop(area);
            if let Some(free) = self.free.as_mut() {
                if free.release(a_start, a_last).is_err() {
                    self.free = None;
                }
            }
            unmapped = unmapped.wrapping_add(a_last - a_start + 1);
            if a_last >= last {
                return (Ok(()), unmapped);
            }
            from = a_last + 1;
        }
    }

    /// New areas for the memory behind `[iova, iova + length)`, which
    /// contiguous areas must cover, sharing their pages objects, with
    /// protection `prot`.
    pub(crate) fn copy_areas(&mut self, iova: u64, length: u64, prot: Prot) -> Result<NewAreas> {
        if length == 0 {
            return Err(EINVAL);
        }
        let last = last_of(iova, length)?;
        self.make_pages_in(iova, last)?;
        let mut out = NewAreas::Few([const { None }; FEW_AREAS], 0);
        let mut cur = iova;
        for area in self.areas.iter(iova, last) {
            if area.start > cur {
                break;
            }
            let piece_last = last.min(area.last);
            let start_byte = cur - area.start + area.value.start_byte;
            let node = new_area(
                area.value.made_pages()?.clone().into(),
                start_byte,
                piece_last - cur + 1,
                prot,
            )?;
            out.push(node)?;
            if piece_last == last {
                return Ok(out);
            }
            cur = piece_last + 1;
        }
        Err(ENOENT)
    }

    /// Makes the pending pages objects of the areas meeting `[start,
    /// last]`: `ENOMEM` (those made stay made).
    pub(crate) fn make_pages_in(&mut self, start: u64, last: u64) -> Result {
        let mut result = Ok(());
        self.areas.for_each_mut(start, last, |s, l, area| {
            if result.is_ok() {
                result = area.make_pages(s, l).map(drop);
            }
        });
        result
    }

    /// A handle to the pages object of the area holding `iova`, made now
    /// if it is pending: `ENOMEM`; `ENOENT` if no area holds `iova`.
    fn made_pages_at(&mut self, iova: u64) -> Result<Shared<Pages>> {
        let mut found = Err(ENOENT);
        self.areas.for_each_mut(iova, iova, |s, l, area| {
            found = area.make_pages(s, l).cloned()
        });
        found
    }

    /// Replaces the allowed ranges: `EADDRINUSE` if one meets a reserved
    /// range, and then nothing changes.
    pub(crate) fn set_allowed(&mut self, new: AllowedRanges) -> Result {
        if new
            .0
            .iter(0, u64::MAX)
            .any(|r| self.reserved.first(r.start, r.last).is_some())
        {
            return Err(eaddrinuse());
        }
        self.allowed = new.0;
        Ok(())
    }

    /// Splits the area containing `p` into `[start, p]` and `[p + 1, last]`,
    /// both sharing its pages, so that VFIO type1 (v1) clients can unmap
    /// part of a mapping. In C's order: nothing to do if `p` is in no area
    /// or is already an area's first or last IOVA, whatever holds the
    /// area; `EBUSY` if the area is being unmapped; `EINVAL` if the second
    /// half would not start aligned, in IOVA or in its pages; then, once
    /// the new areas are allocated, `EINVAL` if an access holds pins in it
    /// or a domain may have mapped it with large pages.
    pub(crate) fn split_at(&mut self, p: u64) -> Result {
        let Some(a) = self.areas.first(p, p) else {
            return Ok(());
        };
        if p == a.start || p == a.last {
            return Ok(());
        }
        if a.value.access_prevented() {
            return Err(EBUSY);
        }
        // As C: a dma-buf's area is not split.
        if a.value.pages.is_dmabuf() {
            return Err(eopnotsupp());
        }
        let (start, last, start_byte, prot) = (a.start, a.last, a.value.start_byte, a.value.prot);
        // Access pins only change under the IOAS lock, which `&mut self` holds.
        let accessed = a.value.num_accesses.load(Relaxed) > 0;
        let align = self.iova_alignment;
        let next = p + 1;
        let next_byte = start_byte + (next - start);
        if next % align != 0 || next_byte % align != 0 {
            return Err(EINVAL);
        }
        let logs = dirty_log::split_log(a.value.dirty.as_deref(), start, p, last)?;
        // The halves share the pages object.
        let pages = self.made_pages_at(p)?;
        let mut low = new_area(pages.clone().into(), start_byte, next - start, prot)?;
        let mut high = new_area(pages.clone().into(), next_byte, last - p, prot)?;
        if accessed || (!self.attached.domains().is_empty() && !self.disable_large_pages) {
            return Err(EINVAL);
        }
        if !self.attached.domains().is_empty() {
            let span = self.span_of(start, last - start + 1, start_byte);
            pages.split_domain_use(span, next_byte)?;
        }
        // INVARIANT: (1) the halves cover the old area exactly; (2) `next`
        // was checked; (5) the domain use was split to match; (6) no access
        // held pins in it; (7) the halves split its dirty log.
        drop(self.areas.take_first_if(p, p, |_, _, _| true));
        low.set_range(start, p);
        high.set_range(next, last);
        self.areas.insert(low);
        self.areas.insert(high);
        if let Some((low_log, high_log)) = logs {
            let mut halves = [Some(low_log), Some(high_log)].into_iter();
            self.areas.for_each_mut(start, last, |_, _, area| {
                area.dirty = halves.next().flatten()
            });
        }
        Ok(())
    }

    /// First IOVA of the `nth` area in IOVA order (from 0).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn nth_area_start(&self, nth: u64) -> Option<u64> {
        self.areas
            .iter(0, u64::MAX)
            .nth(usize::try_from(nth).ok()?)
            .map(|a| a.start)
    }

    /// Calls `f(start, last)` for the IOVA range of each area, in order.
    pub(crate) fn for_each_area_range(&self, mut f: impl FnMut(u64, u64)) {
        for area in self.areas.iter(0, u64::MAX) {
            f(area.start, area.last);
        }
    }

    /// Calls `f` on the memory of every area, by IOVA.
    pub(crate) fn for_each_area_pages(&self, mut f: impl FnMut(&AreaPages) -> Result) -> Result {
        for area in self.areas.iter(0, u64::MAX) {
            f(&area.value.pages)?;
        }
        Ok(())
    }
}

#[kunit_tests(iommufd_rs_io_pagetable)]
mod tests {
    use super::*;

    fn holes(t: &IoPagetable) -> Result<KVec<IovaRange>> {
        let mut out = KVec::new();
        t.for_each_hole(|r| Ok(out.push(r, GFP_KERNEL)?))?;
        Ok(out)
    }

    fn range(start: u64, last: u64) -> IovaRange {
        IovaRange { start, last }
    }

    fn allowed(ranges: &[IovaRange]) -> Result<AllowedRanges> {
        let mut set = AllowedRanges::new();
        for &r in ranges {
            set.add(r)?;
        }
        Ok(set)
    }

    /// Occupies `[start, last]` as an area would, without a pages object.
    fn occupy(t: &mut IoPagetable, start: u64, last: u64) -> Result {
        // Reserved ranges block the allocator the same way areas do.
        t.reserve(IovaRange { start, last })
    }

    #[test]
    fn empty_is_whole_space() -> Result {
        let t = IoPagetable::new();
        assert_eq!(&holes(&t)?[..], &[range(0, u64::MAX)]);
        Ok(())
    }

    #[test]
    fn holes_skip_overlapping_reserved() -> Result {
        let mut t = IoPagetable::new();
        t.reserve(range(0x3000, 0x3fff))?;
        t.reserve(range(0x1000, 0x1fff))?;
        t.reserve(range(0x1800, 0x27ff))?;
        t.reserve(range(0xf000, u64::MAX))?;
        assert_eq!(
            &holes(&t)?[..],
            &[
                range(0, 0xfff),
                range(0x2800, 0x2fff),
                range(0x4000, 0xefff)
            ]
        );
        Ok(())
    }

    #[test]
    fn device_regions_reserve_all_or_nothing() -> Result {
        let mut t = IoPagetable::new();
        t.set_allowed(allowed(&[range(0x10_0000, 0x1f_ffff)])?)?;
        // The second region meets the allowed range: nothing is kept.
        let regions = [range(0xfee0_0000, 0xfeef_ffff), range(0x10_0000, 0x10_0fff)];
        assert_eq!(t.reserve_device(7, &regions), Err(eaddrinuse()));
        assert_eq!(t.check_iova(0xfee0_0000, 0x1000), Ok(()));
        // Two devices may reserve the same window; each releases its own.
        t.reserve_device(7, &regions[..1])?;
        t.reserve_device(8, &regions[..1])?;
        assert_eq!(t.check_iova(0xfee0_0000, 0x1000), Err(EINVAL));
        t.unreserve_device(7);
        assert_eq!(t.check_iova(0xfee0_0000, 0x1000), Err(EINVAL));
        t.unreserve_device(8);
        assert_eq!(t.check_iova(0xfee0_0000, 0x1000), Ok(()));
        Ok(())
    }

    #[test]
    fn alloc_alignment_follows_address_and_length() -> Result {
        let mut t = IoPagetable::new();
        // Page-aligned address, one page: the first page after 0.
        assert_eq!(t.alloc_iova(0x7f00_0000_1000, 0x1000), Ok(0x1000));
        // 2 MiB aligned address and length: 2 MiB aligned IOVA.
        assert_eq!(t.alloc_iova(0x7f00_0020_0000, 0x20_0000), Ok(0x20_0000));
        // The page offset is kept; the alignment is the address's.
        assert_eq!(t.alloc_iova(0x7f00_0000_1234, 0x1000), Ok(0x1234));
        // Lengths that cannot be allocated.
        assert_eq!(t.alloc_iova(0x1000, 0), Err(EOVERFLOW));
        assert_eq!(t.alloc_iova(0x1000, u64::MAX / 2), Err(EOVERFLOW));
        Ok(())
    }

    #[test]
    fn alloc_first_fit_skips_used() -> Result {
        let mut t = IoPagetable::new();
        occupy(&mut t, 0x1000, 0x2fff)?;
        occupy(&mut t, 0x4000, 0x4fff)?;
        // One page fits in the hole at 0x3000.
        assert_eq!(t.alloc_iova(0x10_0000, 0x1000), Ok(0x3000));
        // Two pages do not: the next room is after 0x4fff.
        assert_eq!(t.alloc_iova(0x10_0000, 0x2000), Ok(0x6000));
        Ok(())
    }

    #[test]
    fn index_agrees_with_walk() -> Result {
        // A layout of reserved ranges with holes of many sizes; every
        // request must get the same IOVA from the index and from the walk.
        let mut t = IoPagetable::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut at = 0x1000u64;
        for _ in 0..300 {
            let hole = (next() % 8) * 0x800;
            let used = (next() % 4 + 1) * 0x1000;
            at += hole;
            occupy(&mut t, at, at + used - 1)?;
            at += used;
        }
        for _ in 0..500 {
            let length = (next() % 6 + 1) * 0x800 - (next() % 2) * 0x7ff;
            let addr = (next() % 0x1000) * 0x200 + 0x7f00_0000_0000;
            let indexed = t.alloc_iova(addr, length);
            let index = t.free.take();
            let walked = t.alloc_iova_walk(addr, length);
            t.free = index;
            assert_eq!(indexed, walked);
        }
        Ok(())
    }

    #[test]
    fn alloc_stays_in_allowed() -> Result {
        let mut t = IoPagetable::new();
        allowed(&[range(0x10_0000, 0x10_ffff), range(0x40_0000, 0x7f_ffff)])
            .and_then(|a| t.set_allowed(a))?;
        assert_eq!(t.alloc_iova(0x1000, 0x1000), Ok(0x10_0000));
        // Too big for the first allowed range.
        assert_eq!(t.alloc_iova(0x1000, 0x2_0000), Ok(0x40_0000));
        assert_eq!(t.alloc_iova(0x1000, 0x100_0000), Err(ENOSPC));
        Ok(())
    }

    #[test]
    fn allowed_ranges_rules() -> Result {
        let mut t = IoPagetable::new();
        assert_eq!(
            allowed(&[range(5, 5)]).and_then(|a| t.set_allowed(a)),
            Err(EINVAL)
        );
        assert_eq!(
            allowed(&[range(0, 10), range(10, 20)]).and_then(|a| t.set_allowed(a)),
            Err(EINVAL)
        );
        allowed(&[range(0, 10), range(11, 20)]).and_then(|a| t.set_allowed(a))?;
        t.reserve(range(100, 200))?;
        assert_eq!(
            allowed(&[range(150, 300)]).and_then(|a| t.set_allowed(a)),
            Err(eaddrinuse())
        );
        // The failed call left the old ranges.
        assert_eq!(t.reserve(range(5, 6)), Err(eaddrinuse()));
        Ok(())
    }
}
