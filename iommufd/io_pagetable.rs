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
    errno::eaddrinuse,
    free_space::{FreeSpace, SpareNode},
    interval_tree::{IntervalTree, NewNode},
    pages::{AreaSpan, Pages, PAGE_SIZE_U64},
    shared::Shared,
    sys::DBox,
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    sync::Arc,
};

/// An IO page table that areas are mapped into: a hardware domain, or the
/// test interface's mock. Every area of an IOAS is mapped into every
/// domain attached to it.
pub(crate) trait IoDomain: Send + Sync {
    /// Maps `[iova, iova + length)` to physical `paddr` with `prot`.
    fn map(&self, iova: u64, paddr: u64, length: u64, prot: Prot) -> Result;
    /// Unmaps `[iova, iova + length)`; what is not mapped is skipped.
    fn unmap(&self, iova: u64, length: u64);
    /// The IO page sizes it supports, as a bitmap.
    fn pgsize_bitmap(&self) -> u64;
    /// The IOVAs it can translate, `[start, last]`.
    fn aperture(&self) -> (u64, u64);
    /// Whether it forces DMA to be cache coherent.
    fn enforces_cache_coherency(&self) -> bool;
    /// The physical address `iova` translates to, or 0 if unmapped.
    fn iova_to_phys(&self, iova: u64) -> u64;
    /// Writes into `out[k]` the PFN that `iova + k * PAGE_SIZE` translates
    /// to, or [`NO_PFN`] if it is unmapped.
    fn read_pfns(&self, iova: u64, out: &mut [u64]);
}

/// No page: an IOVA that is not mapped, a page that is not pinned.
pub(crate) const NO_PFN: u64 = u64::MAX;

/// A domain attached to an IOAS, through a HWPT object.
pub(crate) struct AttachedDomain {
    /// The domain.
    pub(crate) domain: Arc<dyn IoDomain>,
    /// The HWPT object's ID.
    pub(crate) hwpt_id: u32,
    /// Made automatically for a device attached to the IOAS.
    pub(crate) auto: bool,
}

/// Who reserved an IOVA range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReservedBy {
    /// The test interface (`ADD_RESERVED`): kept until the IOAS goes.
    User,
    /// The aperture of the domain of this HWPT: removed with it.
    Domain(u32),
}

/// Maps the run of `n` pages from index `idx` and PFN `pfn` of the area
/// at `span` into `domain`.
fn map_run(
    domain: &dyn IoDomain,
    span: &AreaSpan,
    prot: Prot,
    idx: u64,
    pfn: u64,
    n: u64,
) -> Result {
    let (iova, offset, length) = span.iova_range(idx, n);
    domain.map(iova, pfn * PAGE_SIZE_U64 + offset, length, prot)
}

/// Unmaps pages `[first, last]` of the area at `span` from `domain`.
fn unmap_pages(domain: &dyn IoDomain, span: &AreaSpan, first: u64, last: u64) {
    let (iova, _, length) = span.iova_range(first, last - first + 1);
    domain.unmap(iova, length);
}

/// Maps the memory of `area`, placed at `[iova, iova + length)`, into
/// `domain`, one call per run of consecutive PFNs. The pages must be
/// pinned. On error the part mapped is unmapped.
fn map_area_into(domain: &dyn IoDomain, span: &AreaSpan, area: &Area) -> Result {
    let (first, last) = span.pages();
    let result = area.pages.for_each_run(first, last, |idx, pfn, n| {
        map_run(domain, span, area.prot, idx, pfn, n)
    });
    if result.is_err() {
        unmap_pages(domain, span, first, last);
    }
    result
}

/// Most in-kernel accesses one IOAS takes, as C's access list limit.
const MAX_ACCESSES: usize = 1 << 16;

/// The IOAS side of an in-kernel access: told to drop its pins when an
/// area under them is unmapped.
pub(crate) trait AccessNotify: Send + Sync {
    /// The access's object ID.
    fn id(&self) -> u32;
    /// Whether it pins pages (and so needs page-aligned areas).
    fn needs_pin(&self) -> bool;
    /// Asks it to unpin whatever it pinned in `[iova, iova + length)`.
    fn notify_unmap(&self, iova: u64, length: u64);
}

/// Largest alignment the IOVA allocator asks for: the PMD size, so that
/// huge pages can be mapped whole.
const MAX_ALLOC_ALIGNMENT: u64 = if cfg!(CONFIG_TRANSPARENT_HUGEPAGE) {
    1 << 21
} else {
    PAGE_SIZE_U64
};

/// An inclusive IOVA range `[start, last]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IovaRange {
    /// First IOVA in the range.
    pub(crate) start: u64,
    /// Last IOVA in the range (inclusive).
    pub(crate) last: u64,
}

/// IOMMU protection bits of an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prot {
    /// Devices may read.
    pub(crate) read: bool,
    /// Devices may write.
    pub(crate) write: bool,
}

/// A mapped IOVA range: bytes `start_byte..` of `pages`. Its IOVA range is
/// its node's range in the areas tree.
pub(crate) struct Area {
    /// The memory.
    pub(crate) pages: Shared<Pages>,
    /// Offset of the area's first IOVA inside `pages`.
    pub(crate) start_byte: u64,
    /// Protection.
    pub(crate) prot: Prot,
    /// Access pins held on it; unmap asks the accesses to drop them first.
    num_accesses: Atomic<u32>,
    /// Set while an unmap waits for accesses to unpin; pins and reads
    /// through accesses then fail with `EINVAL`.
    prevent_access: Atomic<bool>,
}

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

    /// Whether an unmap is waiting for accesses to leave.
    pub(crate) fn access_prevented(&self) -> bool {
        self.prevent_access.load(Relaxed)
    }

    /// The byte of the pages object at `iova`, inside the area at `start`.
    fn byte_at(&self, start: u64, iova: u64) -> u64 {
        iova - start + self.start_byte
    }
}

/// A piece of an area that an access works on: `[iova, last]`, starting at
/// byte `start_byte` of `area.pages`.
pub(crate) struct AccessPiece<'a> {
    /// The area.
    pub(crate) area: &'a Area,
    /// First IOVA of the piece.
    pub(crate) iova: u64,
    /// Last IOVA of the piece.
    pub(crate) last: u64,
    /// Byte of the pages object at `iova`.
    pub(crate) start_byte: u64,
    /// Whether the piece runs to the end of the requested range.
    pub(crate) is_final: bool,
}

/// The smallest page size in a page-size bitmap.
fn min_page_size(bitmap: u64) -> u64 {
    1u64.checked_shl(bitmap.trailing_zeros())
        .unwrap_or(u64::MAX)
}

/// The page index range `[first, last]` of `bytes` bytes from `start_byte`.
pub(crate) fn page_span(start_byte: u64, bytes: u64) -> (u64, u64) {
    (
        start_byte / PAGE_SIZE_U64,
        (start_byte + bytes - 1) / PAGE_SIZE_U64,
    )
}

/// A new area not yet in the table; its node's range is a placeholder
/// `[0, length - 1]` until [`IoPagetable::map_areas`] places it.
pub(crate) type NewArea = NewNode<Area>;

/// Allocates an area of `length` (nonzero) bytes from `start_byte` of
/// `pages`.
pub(crate) fn new_area(
    pages: Shared<Pages>,
    start_byte: u64,
    length: u64,
    prot: Prot,
) -> Result<NewArea> {
    NewNode::new(
        0,
        length - 1,
        Area {
            pages,
            start_byte,
            prot,
            num_accesses: Atomic::new(0),
            prevent_access: Atomic::new(false),
        },
        GFP_KERNEL,
    )
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
pub(crate) struct IoPagetable {
    areas: IntervalTree<Area>,
    allowed: IntervalTree<()>,
    reserved: IntervalTree<ReservedBy>,
    /// Every IOVA, length and page offset must be a multiple of this.
    iova_alignment: u64,
    /// `IOMMU_OPTION_HUGE_PAGES` set to 0.
    disable_large_pages: bool,
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

/// The lowest IOVA in `[start, last]` that is aligned to `align`, has
/// `page_offset` ORed in, and leaves room for `length` bytes. `align` is a
/// power of two. A candidate at `last` itself is refused, as in C.
fn fit_in(start: u64, last: u64, length: u64, align: u64, page_offset: u64) -> Option<u64> {
    let aligned = start.checked_add(align - 1)? & !(align - 1);
    let iova = aligned | page_offset;
    if iova >= last || last - iova < length - 1 {
        return None;
    }
    Some(iova)
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
            free: None,
            attached: Attached(None),
        }
    }

    /// Builds the free-space index from the trees, if it is missing. On
    /// allocation failure it stays missing and the allocator walks.
    fn build_free_space(&mut self) {
        if self.free.is_some() {
            return;
        }
        let Ok(mut free) = FreeSpace::new() else {
            return;
        };
        let used = Iterator::chain(
            self.areas.spans(0, u64::MAX),
            self.reserved.spans(0, u64::MAX),
        );
        for span in used.filter(|s| !s.is_hole) {
            let Ok(spare) = SpareNode::new() else {
                return;
            };
            free.occupy_any(span.start, span.last, spare);
        }
        self.free = Some(free);
    }

    /// A spare node for the free-space index, if it is in use.
    fn spare_node(&self) -> Result<Option<SpareNode>> {
        self.free.as_ref().map(|_| SpareNode::new()).transpose()
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
        self.reserved.insert(node);
        if let (Some(free), Some(spare)) = (self.free.as_mut(), spare) {
            free.occupy_any(range.start, range.last, spare);
        }
        Ok(())
    }

    /// Calls `f` on each hole between reserved ranges over the whole 64-bit
    /// IOVA space, in increasing order.
    pub(crate) fn for_each_hole(&self, mut f: impl FnMut(IovaRange) -> Result) -> Result {
        for span in self.reserved.spans(0, u64::MAX).filter(|s| s.is_hole) {
            f(IovaRange {
                start: span.start,
                last: span.last,
            })?;
        }
        Ok(())
    }

    /// The lowest free IOVA range for `length` bytes whose source address
    /// (user VA or file offset) is `addr`.
    ///
    /// The IOVA gets the largest alignment that suits both the length and
    /// `addr` (up to the PMD size), so huge pages can be mapped, and keeps
    /// `addr`'s offset in the page. It stays inside the allowed ranges, if
    /// any, and out of reserved ranges and areas; IOVA 0 and the last page
    /// are never used.
    fn alloc_iova(&mut self, addr: u64, length: u64) -> Result<u64> {
        let (align, page_offset) = self.alloc_alignment(addr, length)?;
        self.build_free_space();
        self.search(length, align, page_offset).ok_or(ENOSPC)
    }

    /// The alignment and page offset an allocation for `length` bytes at
    /// source address `addr` asks for.
    fn alloc_alignment(&self, addr: u64, length: u64) -> Result<(u64, u64)> {
        if length == 0 || length >= u64::MAX / 2 {
            return Err(EOVERFLOW);
        }
        let mut align = length.next_power_of_two();
        if addr != 0 {
            align = align.min(1 << addr.trailing_zeros());
        }
        align = align.min(MAX_ALLOC_ALIGNMENT);
        if align < self.iova_alignment {
            return Err(EINVAL);
        }
        Ok((align, addr % PAGE_SIZE_U64))
    }

    /// First fit inside the allowed ranges, or anywhere if there are none,
    /// never at IOVA 0 or in the last page.
    fn search(&self, length: u64, align: u64, page_offset: u64) -> Option<u64> {
        let (lo, hi) = (PAGE_SIZE_U64, u64::MAX - PAGE_SIZE_U64);
        if self.allowed.is_empty() {
            let whole = [IovaRange {
                start: lo,
                last: hi,
            }];
            return self.alloc_in(whole.into_iter(), length, align, page_offset);
        }
        let spans = self.allowed.spans(lo, hi).filter(|s| !s.is_hole);
        let spans = spans.map(|s| IovaRange {
            start: s.start,
            last: s.last,
        });
        self.alloc_in(spans, length, align, page_offset)
    }

    /// First fit over `spans`, in order, among the holes left by reserved
    /// ranges and areas.
    fn alloc_in(
        &self,
        spans: impl Iterator<Item = IovaRange>,
        length: u64,
        align: u64,
        page_offset: u64,
    ) -> Option<u64> {
        for span in spans {
            let Some(start) = fit_in(span.start, span.last, length, align, page_offset) else {
                continue;
            };
            if let Some(free) = &self.free {
                let fit = |s, l| fit_in(s, l, length, align, page_offset);
                match free.first_fit(start, span.last, length, fit) {
                    Some(iova) => return Some(iova),
                    None => continue,
                }
            }
            // The holes of areas and reserved ranges together, in order:
            // each area hole split by the reserved ranges inside it.
            for area_hole in self.areas.spans(start, span.last).filter(|s| s.is_hole) {
                let holes = self
                    .reserved
                    .spans(area_hole.start, area_hole.last)
                    .filter(|s| s.is_hole);
                for hole in holes {
                    if let Some(iova) = fit_in(hole.start, hole.last, length, align, page_offset) {
                        return Some(iova);
                    }
                }
            }
        }
        None
    }

    /// The allocator's answer from walking the trees, without the index.
    #[cfg(CONFIG_KUNIT)]
    fn alloc_iova_walk(&mut self, addr: u64, length: u64) -> Result<u64> {
        let (align, page_offset) = self.alloc_alignment(addr, length)?;
        let index = self.free.take();
        let found = self.search(length, align, page_offset);
        self.free = index;
        found.ok_or(ENOSPC)
    }

    /// Checks that `[iova, iova + length)` may be mapped exactly there.
    fn check_iova(&self, iova: u64, length: u64) -> Result {
        if iova & (self.iova_alignment - 1) != 0 {
            return Err(EINVAL);
        }
        let last = last_of(iova, length)?;
        if self.reserved.first(iova, last).is_some() {
            return Err(EINVAL);
        }
        if self.areas.first(iova, last).is_some() {
            return Err(EEXIST);
        }
        Ok(())
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
                self.check_iova(iova, length)?;
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
        let mut at = iova;
        for node in areas.iter_mut().flatten() {
            let len = new_area_len(node);
            let area = node.value();
            if area.prot.write && !area.pages.writable {
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
        if !self.attached.domains().is_empty() {
            self.fill_new_areas(areas)?;
        }
        for node in areas.iter_mut() {
            if let Some(node) = node.take() {
                self.areas.insert(node);
            }
        }
        if let (Some(free), Some(spare)) = (self.free.as_mut(), spare) {
            free.occupy(iova, at.wrapping_sub(1), spare);
        }
        Ok(iova)
    }

    /// Unmaps the areas inside `[start, last]`, in order, and returns the
    /// bytes unmapped. Stops at an area that crosses the range's edge
    /// (`ENOENT`) or that accesses hold pins on; the areas before it stay
    /// unmapped, as in C.
    pub(crate) fn unmap_range(&mut self, start: u64, last: u64) -> (Result<(), UnmapStop>, u64) {
        let mut unmapped = 0u64;
        let mut from = start;
        loop {
            // One search finds the area and takes it, unless it must stay.
            let mut stop = None;
            let taken = self.areas.take_first_if(from, last, |s, l, area| {
                if s < start || l > last {
                    stop = Some(UnmapStop::Failed(ENOENT));
                } else if area.num_accesses.load(Relaxed) > 0 {
                    area.prevent_access.store(true, Relaxed);
                    stop = Some(UnmapStop::Accessed {
                        iova: s,
                        length: l - s + 1,
                        after_gap: s != from,
                    });
                }
                stop.is_none()
            });
            let Some((a_start, a_last, area)) = taken else {
                return (Ok(()), unmapped);
            };
            if let Some(stop) = stop {
                return (Err(stop), unmapped);
            }
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

    /// The accesses attached, to tell about an unmap once the lock is
    /// dropped.
    pub(crate) fn accesses(&self) -> Result<KVec<Arc<dyn AccessNotify>>> {
        let mut out = KVec::with_capacity(self.attached.accesses().len(), GFP_KERNEL)?;
        for a in self.attached.accesses().iter() {
            out.push(a.clone(), GFP_KERNEL)?;
        }
        Ok(out)
    }

    /// Attaches an access: `EBUSY` past the limit, `EADDRINUSE` if it needs
    /// page alignment that an area lacks.
    pub(crate) fn add_access(&mut self, access: Arc<dyn AccessNotify>) -> Result {
        if self.attached.accesses().len() >= MAX_ACCESSES {
            return Err(EBUSY);
        }
        let needs_pin = access.needs_pin();
        self.attached
            .get_or_alloc()?
            .accesses
            .push(access, GFP_KERNEL)?;
        if needs_pin {
            if let Err(e) = self.recalc_alignment() {
                if let Some(attached) = self.attached.existing() {
                    attached.accesses.pop();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Detaches the access with object ID `id`.
    pub(crate) fn remove_access(&mut self, id: u32) {
        if let Some(attached) = self.attached.existing() {
            if let Some(pos) = attached.accesses.iter().position(|a| a.id() == id) {
                let _ = attached.accesses.remove(pos);
            }
        }
        // Lowering the alignment cannot fail.
        let _ = self.recalc_alignment();
    }

    /// Sets the IOVA alignment from what needs it: `PAGE_SIZE` when large
    /// pages are disabled or a pinning access is attached, else 1. Raising
    /// it fails with `EADDRINUSE` if an area does not meet it.
    fn recalc_alignment(&mut self) -> Result {
        let mut align = 1;
        if self.disable_large_pages || self.attached.accesses().iter().any(|a| a.needs_pin()) {
            align = PAGE_SIZE_U64;
        }
        for d in self.attached.domains().iter() {
            align = align.max(min_page_size(d.domain.pgsize_bitmap()));
        }
        if align > self.iova_alignment {
            let misaligned = self.areas.iter(0, u64::MAX).any(|a| {
                let len = a.last - a.start + 1;
                (a.start | len | a.value.page_offset()) & (align - 1) != 0
            });
            if misaligned {
                return Err(eaddrinuse());
            }
        }
        self.iova_alignment = align;
        Ok(())
    }

    /// Calls `f` on each piece of the areas covering `[iova, last]` in
    /// order. `ENOENT` if they do not cover it without a hole; `f`'s error
    /// stops the walk. Returns the IOVA reached (one past the last piece
    /// `f` accepted), with the result.
    pub(crate) fn for_each_access_piece(
        &self,
        iova: u64,
        last: u64,
        mut f: impl FnMut(&AccessPiece<'_>) -> Result,
    ) -> (u64, Result) {
        let mut cur = iova;
        for area in self.areas.iter(iova, last) {
            if area.start > cur {
                break;
            }
            let piece_last = last.min(area.last);
            let piece = AccessPiece {
                area: area.value,
                iova: cur,
                last: piece_last,
                start_byte: area.value.byte_at(area.start, cur),
                is_final: piece_last == last,
            };
            if let Err(e) = f(&piece) {
                return (cur, Err(e));
            }
            if piece.is_final {
                return (last.wrapping_add(1), Ok(()));
            }
            cur = piece_last + 1;
        }
        (cur, Err(ENOENT))
    }

    /// New areas for the memory behind `[iova, iova + length)`, which
    /// contiguous areas must cover, sharing their pages objects, with
    /// protection `prot`.
    pub(crate) fn copy_areas(
        &self,
        iova: u64,
        length: u64,
        prot: Prot,
    ) -> Result<KVec<Option<NewArea>>> {
        if length == 0 {
            return Err(EINVAL);
        }
        let last = last_of(iova, length)?;
        let mut out = KVec::new();
        let mut cur = iova;
        for area in self.areas.iter(iova, last) {
            if area.start > cur {
                break;
            }
            let piece_last = last.min(area.last);
            let start_byte = cur - area.start + area.value.start_byte;
            let node = new_area(
                area.value.pages.clone(),
                start_byte,
                piece_last - cur + 1,
                prot,
            )?;
            out.push(Some(node), GFP_KERNEL)?;
            if piece_last == last {
                return Ok(out);
            }
            cur = piece_last + 1;
        }
        Err(ENOENT)
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
        let (start, last, pages, start_byte, prot) = (
            a.start,
            a.last,
            a.value.pages.clone(),
            a.value.start_byte,
            a.value.prot,
        );
        // Access pins only change under the IOAS lock, which `&mut self` holds.
        let accessed = a.value.num_accesses.load(Relaxed) > 0;
        let align = self.iova_alignment;
        let next = p + 1;
        let next_byte = start_byte + (next - start);
        if next % align != 0 || next_byte % align != 0 {
            return Err(EINVAL);
        }
        let mut low = new_area(pages.clone(), start_byte, next - start, prot)?;
        let mut high = new_area(pages.clone(), next_byte, last - p, prot)?;
        if accessed || (!self.attached.domains().is_empty() && !self.disable_large_pages) {
            return Err(EINVAL);
        }
        if !self.attached.domains().is_empty() {
            let span = self.span_of(start, last - start + 1, start_byte);
            pages.split_domain_use(span, next_byte)?;
        }
        drop(self.areas.take_first_if(p, p, |_, _, _| true));
        low.set_range(start, p);
        high.set_range(next, last);
        self.areas.insert(low);
        self.areas.insert(high);
        Ok(())
    }

    /// `IOMMU_OPTION_HUGE_PAGES`: whether large IO pages may be used.
    pub(crate) fn huge_pages(&self) -> bool {
        !self.disable_large_pages
    }

    /// Allows or forbids large IO pages; forbidding raises the alignment to
    /// `PAGE_SIZE`, which fails with `EADDRINUSE` if an area is not page
    /// aligned.
    pub(crate) fn set_huge_pages(&mut self, enable: bool) -> Result {
        if !enable && self.disable_large_pages {
            return Ok(());
        }
        // Areas already in a domain may be mapped with large pages.
        if !enable && !self.attached.domains().is_empty() && !self.areas.is_empty() {
            return Err(EINVAL);
        }
        let was = self.disable_large_pages;
        self.disable_large_pages = !enable;
        if let Err(e) = self.recalc_alignment() {
            self.disable_large_pages = was;
            return Err(e);
        }
        Ok(())
    }

    /// Pins the pages of new areas (already placed) and maps them into
    /// every domain. All or nothing.
    fn fill_new_areas(&self, areas: &[Option<NewArea>]) -> Result {
        for (i, node) in areas.iter().enumerate() {
            let Some(node) = node else { continue };
            let (start, last) = node.range();
            if let Err(e) = self.fill_area(start, last - start + 1, node.value()) {
                for done in areas[..i].iter().flatten() {
                    let (start, last) = done.range();
                    self.unfill_area(start, last - start + 1, done.value());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Where an area at `[iova, iova + length)` from byte `start_byte`
    /// of its pages puts them in this table.
    fn span_of(&self, iova: u64, length: u64, start_byte: u64) -> AreaSpan {
        AreaSpan {
            owner: core::ptr::from_ref(self) as usize,
            base_iova: iova.wrapping_sub(start_byte),
            start_byte,
            end_byte: start_byte + length,
        }
    }

    /// Pins the pages of `area`, at `[iova, iova + length)`, and maps it
    /// into every domain, if there are any. All or nothing.
    fn fill_area(&self, iova: u64, length: u64, area: &Area) -> Result {
        let Some(storage) = self.attached.domains().first() else {
            return Ok(());
        };
        let span = self.span_of(iova, length, area.start_byte);
        area.pages.fill_domains(
            span,
            storage.domain.clone(),
            |idx, pfn, n| {
                for d in self.attached.domains().iter() {
                    map_run(&*d.domain, &span, area.prot, idx, pfn, n)?;
                }
                Ok(())
            },
            |first, last| {
                for d in self.attached.domains().iter() {
                    unmap_pages(&*d.domain, &span, first, last);
                }
            },
        )
    }

    /// Undoes [`IoPagetable::fill_area`], if there are domains.
    fn unfill_area(&self, iova: u64, length: u64, area: &Area) {
        if self.attached.domains().is_empty() {
            return;
        }
        let span = self.span_of(iova, length, area.start_byte);
        area.pages.unfill_domains(span, |first, last| {
            for d in self.attached.domains().iter() {
                unmap_pages(&*d.domain, &span, first, last);
            }
        });
    }

    /// Attaches a domain: its alignment must suit every area (`EINVAL` if
    /// above `PAGE_SIZE`, `EADDRINUSE`), the IOVAs outside its aperture
    /// are reserved (`EADDRINUSE` if an area or allowed range is there),
    /// and every area is mapped into it, pinning the pages if it is the
    /// first domain. All or nothing.
    pub(crate) fn add_domain(&mut self, new: AttachedDomain) -> Result {
        let align = min_page_size(new.domain.pgsize_bitmap()).max(self.iova_alignment);
        if align > PAGE_SIZE_U64 {
            return Err(EINVAL);
        }
        if align != self.iova_alignment {
            let misaligned = self.areas.iter(0, u64::MAX).any(|a| {
                let len = a.last - a.start + 1;
                (a.start | len | a.value.page_offset()) & (align - 1) != 0
            });
            if misaligned {
                return Err(eaddrinuse());
            }
        }
        let (ap_start, ap_last) = new.domain.aperture();
        // The IOVAs below and above the aperture, where there are any.
        let outside = [
            (ap_start != 0).then(|| IovaRange {
                start: 0,
                last: ap_start - 1,
            }),
            (ap_last != u64::MAX).then(|| IovaRange {
                start: ap_last + 1,
                last: u64::MAX,
            }),
        ];
        if outside.iter().flatten().any(|r| self.meets_used(*r)) {
            return Err(eaddrinuse());
        }
        self.attached
            .get_or_alloc()?
            .domains
            .reserve(1, GFP_KERNEL)?;
        let owner = ReservedBy::Domain(new.hwpt_id);
        let mut result = Ok(());
        for r in outside.iter().flatten() {
            result = self.reserve_for(*r, owner);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = self.fill_domain(&new.domain);
        }
        if let Err(e) = result {
            self.remove_reserved(owner);
            return Err(e);
        }
        // Cannot fail: room was reserved above.
        self.attached
            .get_or_alloc()?
            .domains
            .push(new, GFP_KERNEL)?;
        self.iova_alignment = align;
        Ok(())
    }

    /// Maps every area into `domain`, pinning first if there is no other
    /// domain yet. All or nothing.
    fn fill_domain(&self, domain: &Arc<dyn IoDomain>) -> Result {
        let first_domain = self.attached.domains().is_empty();
        let mut result = Ok(());
        let mut failed_at = None;
        for a in self.areas.iter(0, u64::MAX) {
            let span = self.span_of(a.start, a.last - a.start + 1, a.value.start_byte);
            let filled = if first_domain {
                a.value.pages.fill_domains(
                    span,
                    domain.clone(),
                    |idx, pfn, n| map_run(&**domain, &span, a.value.prot, idx, pfn, n),
                    |first, last| unmap_pages(&**domain, &span, first, last),
                )
            } else {
                map_area_into(&**domain, &span, a.value)
            };
            if let Err(e) = filled {
                (result, failed_at) = (Err(e), Some(a.start));
                break;
            }
        }
        if let Some(stop) = failed_at {
            for a in self.areas.iter(0, u64::MAX).take_while(|a| a.start < stop) {
                let span = self.span_of(a.start, a.last - a.start + 1, a.value.start_byte);
                let unmap = |first, last| unmap_pages(&**domain, &span, first, last);
                if first_domain {
                    a.value.pages.unfill_domains(span, unmap);
                } else {
                    let (first, last) = span.pages();
                    unmap(first, last);
                }
            }
        }
        result
    }

    /// Removes the reserved ranges of `owner`.
    fn remove_reserved(&mut self, owner: ReservedBy) {
        self.reserved
            .remove_if(0, u64::MAX, |_, _, by| *by == owner, |_, _, _| {});
        // The free-space index is rebuilt from the trees when next needed.
        self.free = None;
    }

    /// Detaches the domain of HWPT `hwpt_id`: every area is unmapped from
    /// it, pages are unpinned if it was the last domain, and its aperture
    /// reservations go.
    pub(crate) fn remove_domain(&mut self, hwpt_id: u32) {
        let Some(attached) = self.attached.existing() else {
            return;
        };
        let Some(pos) = attached.domains.iter().position(|d| d.hwpt_id == hwpt_id) else {
            return;
        };
        let Ok(gone) = attached.domains.remove(pos) else {
            return;
        };
        // PFNs are read from the first domain; the next one takes over.
        let next_storage = if pos == 0 {
            self.attached.domains().first()
        } else {
            None
        };
        for a in self.areas.iter(0, u64::MAX) {
            let span = self.span_of(a.start, a.last - a.start + 1, a.value.start_byte);
            let unmap = |first, last| unmap_pages(&*gone.domain, &span, first, last);
            if self.attached.domains().is_empty() {
                a.value.pages.unfill_domains(span, unmap);
                continue;
            }
            if let Some(next) = next_storage {
                a.value.pages.set_storage(span, &next.domain);
            }
            let (first, last) = span.pages();
            unmap(first, last);
        }
        self.remove_reserved(ReservedBy::Domain(hwpt_id));
        // Lowering the alignment cannot fail.
        let _ = self.recalc_alignment();
    }

    /// The HWPT ID of the first automatic domain, if any.
    pub(crate) fn auto_domain(&self) -> Option<u32> {
        self.attached
            .domains()
            .iter()
            .find(|d| d.auto)
            .map(|d| d.hwpt_id)
    }

    /// The IO page sizes every domain supports (all sizes with none).
    pub(crate) fn pgsize_bitmap(&self) -> u64 {
        self.attached
            .domains()
            .iter()
            .fold(u64::MAX, |acc, d| acc & d.domain.pgsize_bitmap())
    }

    /// Whether every domain enforces cache coherency (true with none).
    pub(crate) fn cache_coherent(&self) -> bool {
        self.attached
            .domains()
            .iter()
            .all(|d| d.domain.enforces_cache_coherency())
    }

    /// First IOVA of the `nth` area in IOVA order (from 0).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn nth_area_start(&self, nth: u64) -> Option<u64> {
        self.areas
            .iter(0, u64::MAX)
            .nth(usize::try_from(nth).ok()?)
            .map(|a| a.start)
    }

    /// Calls `f` on the pages object of every area, by IOVA.
    pub(crate) fn for_each_area_pages(
        &self,
        mut f: impl FnMut(&Shared<Pages>) -> Result,
    ) -> Result {
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
