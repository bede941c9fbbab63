// SPDX-License-Identifier: GPL-2.0

//! The mock domain's IO page table.
//!
//! Entries are 8 bytes, as in the 7.2 mock's table (generic PT, AMDv1
//! format), and a PTE lives at the level its size picks there: a PTE
//! smaller than 1 MiB is a run of 2 KiB items, one entry each; a larger
//! one is a run of 1 MiB items. So a GiB of 2 MiB PTEs is 1024 entries,
//! not half a million. (The 512 MiB level of that format is kept as runs
//! of 1 MiB items; nothing maps that much in one PTE here but the odd
//! test.)
//!
//! A PTE is unmapped whole, even when the range asked for covers only a
//! part of it, as real IOMMU drivers do.

use crate::{page_table::PageTable, sys::PAGE_SIZE_U64};
use kernel::prelude::*;

/// log2 of the mock IO page size.
pub(super) const MOCK_PAGE_SHIFT: u32 = 11;
/// The mock IO page size: 2 KiB.
pub(super) const MOCK_PAGE_SIZE: u64 = 1 << MOCK_PAGE_SHIFT;
/// The dirty bit of an entry; only a PTE's first entry holds it.
pub(super) const DIRTY: u64 = 1 << 63;
/// Where an entry keeps log2 of the size of the PTE it is part of.
const PTE_LG2_SHIFT: u32 = 56;
/// The bits of an entry holding its physical page, in 2 KiB units, + 1.
const PFN_MASK: u64 = (1 << PTE_LG2_SHIFT) - 1;
/// log2 of the items of each level of the 7.2 mock's table: 2 KiB, then
/// 512 times more per level.
const LEVEL_BITS: u32 = 9;
/// log2 of the size of a large item: PTEs this large or larger are kept
/// as runs of them.
const LARGE_SHIFT: u32 = MOCK_PAGE_SHIFT + LEVEL_BITS;
/// log2 of the size of a small item (a CPU page): PTEs of 4 KiB to 512 KiB
/// are kept as runs of them.
const SMALL_SHIFT: u32 = 12;
/// The mask of an address within a small item.
const SMALL_MASK: u64 = (1 << SMALL_SHIFT) - 1;
/// 2 KiB items per large item.
const ITEMS_PER_LARGE: u64 = 1 << LEVEL_BITS;

/// The largest IO page the table uses for `[iova, iova + len)` at
/// physical `paddr`: the largest size of `pgsizes` that both addresses are
/// aligned to and that is not larger than the length (generic PT's
/// choice, and the IOMMU core's).
fn best_pte_lg2(pgsizes: u64, iova: u64, paddr: u64, len: u64) -> u32 {
    let align = (iova | paddr).trailing_zeros();
    let fit = 63 - len.leading_zeros();
    let limit = align.min(fit);
    let allowed = pgsizes & (u64::MAX >> (63 - limit.min(63)));
    63 - allowed.leading_zeros()
}

/// log2 of the item size of the level of the 7.2 mock's table that a PTE
/// of `2^pte_lg2` bytes lives in: a PTE larger than its level's item is a
/// contiguous run of items.
#[inline]
pub(super) fn item_lg2(pte_lg2: u32) -> u32 {
    let level = (pte_lg2 - MOCK_PAGE_SHIFT) / LEVEL_BITS;
    MOCK_PAGE_SHIFT + LEVEL_BITS * level
}

/// What an entry says: the log2 of its PTE's size.
#[inline]
pub(super) fn pte_lg2(entry: u64) -> u32 {
    (entry >> PTE_LG2_SHIFT & 0x7f) as u32
}

/// The physical address an entry of a 2 KiB item maps, 0 if none.
fn entry_phys(entry: u64) -> Option<u64> {
    match entry & PFN_MASK {
        0 => None,
        pfn => Some((pfn - 1) << MOCK_PAGE_SHIFT),
    }
}

/// Cuts a mapping into PTEs as it is written, item by item: each entry
/// gets the size tag of the PTE it is part of.
struct PteCursor {
    /// The IO page sizes the table may use.
    pgsizes: u64,
    /// log2 of the item size of the entries written.
    shift: u32,
    /// The mapping: IOVA, physical address and length.
    iova: u64,
    paddr: u64,
    length: u64,
    /// The first item past the current PTE.
    end: u64,
    /// The current PTE's size, as entries record it.
    tag: u64,
}

impl PteCursor {
    /// Moves on to the PTE that starts at item `i` (once per PTE, so kept
    /// out of the per-entry loop).
    #[inline(never)]
    fn advance(&mut self, i: u64) {
        let at = i << self.shift;
        let done = at - self.iova;
        let lg2 = best_pte_lg2(self.pgsizes, at, self.paddr + done, self.length - done);
        self.end = i + (1u64 << (lg2 - self.shift));
        self.tag = u64::from(lg2) << PTE_LG2_SHIFT;
    }

    /// No PTE is larger than the alignment the two addresses share: when
    /// that is the item size, every item is a PTE of its own, and the
    /// cursor need not cut.
    fn fixed_size_items(&mut self) {
        let shift = self.shift;
        if (self.iova ^ self.paddr).trailing_zeros() == shift && self.pgsizes & (1 << shift) != 0 {
            (self.end, self.tag) = (u64::MAX, u64::from(shift) << PTE_LG2_SHIFT);
        }
    }

    /// The entry of item `i`, which follows the items already written.
    #[inline(always)]
    fn entry(&mut self, i: u64) -> u64 {
        if i >= self.end {
            self.advance(i);
        }
        let at = i << self.shift;
        (((self.paddr + (at - self.iova)) >> MOCK_PAGE_SHIFT) + 1) | self.tag
    }
}

/// log2 of the item size of each store of a [`MockTable`], in look-up
/// order: PTEs of 4 KiB to 512 KiB, of 1 MiB and more, of 2 KiB.
const STORE_SHIFTS: [u32; 3] = [SMALL_SHIFT, LARGE_SHIFT, MOCK_PAGE_SHIFT];
/// The store of PTEs of 4 KiB to 512 KiB.
const SMALL: usize = 0;
/// The store of PTEs of 1 MiB and more.
const LARGE: usize = 1;
/// The store of 2 KiB PTEs.
const HALF: usize = 2;

/// The store that keeps PTEs of `2^pte_lg2` bytes.
fn store_of(pte_lg2: u32) -> usize {
    match pte_lg2 {
        MOCK_PAGE_SHIFT => HALF,
        lg2 if lg2 < LARGE_SHIFT => SMALL,
        _ => LARGE,
    }
}

/// The mock domain's IO page table.
///
/// # Invariants
///
/// Each mapped 2 KiB IO page has exactly one entry, in the store its PTE's
/// size picks ([`store_of`]), indexed by item of that store's size
/// ([`STORE_SHIFTS`]). Every item of a PTE has its entry, which records
/// the PTE's size and the physical address of the item; only the PTE's
/// first entry may hold [`DIRTY`].
pub(super) struct MockTable {
    stores: [PageTable; 3],
}

/// What the items of store `store` that meet `[start, end)` are:
/// `(first, last)`.
fn items(store: usize, start: u64, end: u64) -> (u64, u64) {
    let shift = STORE_SHIFTS[store];
    (start >> shift, (end - 1) >> shift)
}

impl MockTable {
    /// An empty table; allocates nothing.
    pub(super) const fn new() -> Self {
        Self {
            stores: [PageTable::new(), PageTable::new(), PageTable::new()],
        }
    }

    /// The entry of the 2 KiB IO page `idx`, as if every 2 KiB item had
    /// one (the dirty bit as the entry of its item holds it); 0 if
    /// unmapped.
    pub(super) fn entry(&self, idx: u64) -> u64 {
        match self.stores[SMALL].get(idx >> 1) {
            0 => {}
            e => return e + (idx & 1),
        }
        match self.stores[LARGE].get(idx >> LEVEL_BITS) {
            0 => self.stores[HALF].get(idx),
            e => e + (idx & (ITEMS_PER_LARGE - 1)),
        }
    }

    /// Finds the PTE that maps 2 KiB page `idx`: the log2 of its size, and,
    /// if `idx` is in the PTE's first item, that item's entry before `f`
    /// changed it (as [`MockTable::update_head`]). One look-up per store.
    pub(super) fn update_pte(
        &mut self,
        idx: u64,
        f: impl FnOnce(&mut u64),
    ) -> Option<(u32, Option<u64>)> {
        let mut f = Some(f);
        self.probe(SMALL, idx, &mut f)
            .or_else(|| self.probe(LARGE, idx, &mut f))
            .or_else(|| self.probe(HALF, idx, &mut f))
    }

    /// [`MockTable::update_pte`] in one store.
    #[inline(always)]
    fn probe(
        &mut self,
        store: usize,
        idx: u64,
        f: &mut Option<impl FnOnce(&mut u64)>,
    ) -> Option<(u32, Option<u64>)> {
        let shift = STORE_SHIFTS[store];
        let item = idx >> (shift - MOCK_PAGE_SHIFT);
        let mut found = None;
        let old = self.stores[store].update(item, |e| {
            let lg2 = pte_lg2(*e);
            // Items are never larger than their PTEs.
            let head = (item << shift) & ((1u64 << lg2) - 1) == 0;
            if let Some(f) = f.take().filter(|_| head) {
                f(e);
            }
            found = Some((lg2, head));
        });
        found.map(|(lg2, head)| (lg2, head.then_some(old)))
    }

    /// Visits the PTEs of the size class of `2^lg2` bytes (2 KiB; 4 KiB to
    /// 512 KiB; 1 MiB and more) from IOVA `from` (where one starts) on, up
    /// to IOVA `last`, while they follow one another: `f(start, lg2, head
    /// entry)` for each, which may change the bits of the entry outside the
    /// address, and returns whether to go on. Returns the IOVA where it
    /// stopped (a hole, a PTE of another class, or the end of the PTE `f`
    /// stopped at), `None` past the end.
    pub(super) fn sweep(
        &mut self,
        lg2: u32,
        from: u64,
        last: u64,
        mut f: impl FnMut(u64, u32, &mut u64) -> bool,
    ) -> Option<u64> {
        let store = store_of(lg2);
        let shift = STORE_SHIFTS[store];
        let (first, last) = (from >> shift, last >> shift);
        let mut item = first;
        let mut stopped_after = None;
        // From one PTE's first item to the next's.
        let stop = self.stores[store].modify_stride(first, last, |e| {
            if *e == 0 {
                return 0;
            }
            let lg2 = pte_lg2(*e);
            let start = item << shift;
            let into = start & ((1u64 << lg2) - 1);
            if into == 0 && !f(start, lg2, e) {
                stopped_after = Some((start | ((1u64 << lg2) - 1)).checked_add(1));
                return 0;
            }
            // Items are never larger than their PTEs.
            let step = ((((1u64 << lg2) - 1) - into) >> shift) + 1;
            item += step;
            step
        });
        stopped_after.unwrap_or_else(|| stop.checked_mul(1 << shift))
    }

    /// The physical address IOVA `iova` maps, if any.
    pub(super) fn phys(&self, iova: u64) -> Option<u64> {
        entry_phys(self.entry(iova >> MOCK_PAGE_SHIFT)).map(|p| p | (iova & (MOCK_PAGE_SIZE - 1)))
    }

    /// Lets `f` change the first entry of the PTE of `2^lg2` bytes at
    /// `start` (it may only change bits outside the address, such as
    /// [`DIRTY`]); the entry before (0 if unmapped).
    pub(super) fn update_head(&mut self, start: u64, lg2: u32, f: impl FnOnce(&mut u64)) -> u64 {
        let store = store_of(lg2);
        self.stores[store].update(start >> STORE_SHIFTS[store], f)
    }

    /// How many unmapped 2 KiB IO pages follow page `idx` (unmapped
    /// itself), counting `idx`, up to page `last`.
    pub(super) fn holes_from(&self, idx: u64, last: u64) -> u64 {
        let mut holes = last - idx + 1;
        for (store, shift) in self.stores.iter().zip(STORE_SHIFTS) {
            if store.is_empty() {
                continue;
            }
            let sub = shift - MOCK_PAGE_SHIFT;
            let item = idx >> sub;
            let free = store.zeros_from(item, last >> sub, u64::MAX);
            holes = holes.min(((item + free) << sub).saturating_sub(idx));
        }
        holes
    }

    /// Maps `[iova, iova + length)` to `paddr` with the largest PTEs of
    /// `pgsizes` that fit, all aligned to the smallest of them. All or
    /// nothing: `EEXIST` if a page there is mapped, `ENOMEM`.
    pub(super) fn map(&mut self, iova: u64, paddr: u64, length: u64, pgsizes: u64) -> Result {
        let end = iova + length;
        let cursor = |shift| PteCursor {
            pgsizes,
            shift,
            iova,
            paddr,
            length,
            end: 0,
            tag: 0,
        };
        // The common case first: PTEs of 4 KiB to 512 KiB alone, in a table
        // that holds no other.
        let large = 1u64 << LARGE_SHIFT;
        let no_large =
            (iova ^ paddr) & (large - 1) != 0 || iova.next_multiple_of(large) >= end & !(large - 1);
        if (iova | end) & SMALL_MASK == 0
            && (iova ^ paddr) & SMALL_MASK == 0
            && no_large
            && self.stores[LARGE].is_empty()
            && self.stores[HALF].is_empty()
        {
            let mut pte = cursor(STORE_SHIFTS[SMALL]);
            pte.fixed_size_items();
            let (first, last) = items(SMALL, iova, end);
            return self.stores[SMALL].fill(first, last, |i| pte.entry(i));
        }
        // The PTEs, cut as best_pte_lg2 cuts them, fall in at most five
        // runs by store: a 2 KiB PTE where an end is not 4 KiB aligned,
        // PTEs of 1 MiB or more where both addresses are 1 MiB aligned, the
        // rest in between (no PTE smaller than 1 MiB crosses a 1 MiB line).
        let mut runs = [
            (HALF, iova, end),
            (HALF, end, end),
            (HALF, end, end),
            (HALF, end, end),
            (HALF, end, end),
        ];
        if (iova ^ paddr) & SMALL_MASK == 0 && pgsizes >> SMALL_SHIFT != 0 {
            let small_start = iova.next_multiple_of(1 << SMALL_SHIFT);
            let small_end = (end & !SMALL_MASK).max(small_start);
            let (mut large_start, mut large_end) = (small_end, small_end);
            if (iova ^ paddr) & (large - 1) == 0 && pgsizes >> LARGE_SHIFT != 0 {
                let (a, b) = (iova.next_multiple_of(large), end & !(large - 1));
                if a < b {
                    (large_start, large_end) = (a, b);
                }
            }
            runs = [
                (HALF, iova, small_start),
                (SMALL, small_start, large_start),
                (LARGE, large_start, large_end),
                (SMALL, large_end, small_end),
                (HALF, small_end, end),
            ];
        }
        // Each run's IOVAs must be free in the other stores; a store's own
        // fill checks its items.
        for &(store, start, end) in runs.iter().filter(|r| r.1 < r.2) {
            for other in (0..self.stores.len()).filter(|&o| o != store) {
                let table = &self.stores[other];
                if table.is_empty() {
                    continue;
                }
                let (first, last) = items(other, start, end);
                if table.zeros_from(first, last, u64::MAX) <= last - first {
                    return Err(EEXIST);
                }
            }
        }
        for (done, &(store, start, end)) in runs.iter().enumerate() {
            if start >= end {
                continue;
            }
            let mut pte = cursor(STORE_SHIFTS[store]);
            pte.fixed_size_items();
            let (first, last) = items(store, start, end);
            if let Err(err) = self.stores[store].fill(first, last, |i| pte.entry(i)) {
                for &(store, start, end) in runs[..done].iter().filter(|r| r.1 < r.2) {
                    self.clear(store, start, end - 1);
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Unmaps every PTE that meets `[iova, iova + length)`, whole.
    pub(super) fn unmap(&mut self, iova: u64, length: u64) {
        let Some(last) = length.checked_sub(1).map(|l| iova.saturating_add(l)) else {
            return;
        };
        // Out to the edges of the PTEs at either end.
        let pte_mask = |t: &Self, at: u64| match t.entry(at >> MOCK_PAGE_SHIFT) {
            0 => 0,
            e => (1u64 << pte_lg2(e)) - 1,
        };
        let start = iova & !pte_mask(self, iova);
        let last = last | pte_mask(self, last);
        self.clear(SMALL, start, last);
        self.clear(LARGE, start, last);
        self.clear(HALF, start, last);
    }

    /// Clears the items of store `store` that meet `[start, last]`.
    #[inline(always)]
    fn clear(&mut self, store: usize, start: u64, last: u64) {
        let shift = STORE_SHIFTS[store];
        let table = &mut self.stores[store];
        if !table.is_empty() {
            table.modify(start >> shift, last >> shift, |_, e| *e = 0);
        }
    }

    /// The PFNs (CPU pages) mapped at `iova` and the `out.len() - 1`
    /// CPU pages after it, `no_pfn` where unmapped.
    pub(super) fn read_pfns(&self, iova: u64, out: &mut [u64], no_pfn: u64) {
        let Some(pages) = (out.len() as u64).checked_sub(1) else {
            return;
        };
        let offset = iova & (MOCK_PAGE_SIZE - 1);
        let first = iova >> MOCK_PAGE_SHIFT;
        // Each CPU page's PFN is where its first 2 KiB IO page points, and
        // one store holds that. 4 KiB items are CPU pages, one per slot.
        let small = &self.stores[SMALL];
        let odd = first & 1;
        if small.is_empty() {
            out.fill(no_pfn);
        } else {
            let item = first >> 1;
            let _ = small.read(item, item + pages, |start, entries| {
                let at = (start - item) as usize;
                for (slot, &e) in out[at..].iter_mut().zip(entries) {
                    *slot = match e {
                        0 => no_pfn,
                        e => pfn_of(e + odd, offset, no_pfn),
                    };
                }
                Ok(())
            });
        }
        let half = &self.stores[HALF];
        if !half.is_empty() {
            let _ = half.read(first, first + pages * STRIDE, |start, entries| {
                let skip = ((STRIDE - (start - first) % STRIDE) % STRIDE) as usize;
                let at = ((start - first) as usize + skip) / STRIDE as usize;
                let slots = out.get_mut(at..).unwrap_or_default();
                let starts = entries.get(skip..).unwrap_or_default();
                for (slot, &e) in slots.iter_mut().zip(starts.iter().step_by(STRIDE as usize)) {
                    if e != 0 {
                        *slot = pfn_of(e, offset, no_pfn);
                    }
                }
                Ok(())
            });
        }
        let large = &self.stores[LARGE];
        if large.is_empty() {
            return;
        }
        // One large item at a time: its pages' PFNs follow from its entry.
        let mut k = 0;
        while k < out.len() {
            let idx = first + k as u64 * STRIDE;
            let item = idx >> LEVEL_BITS;
            let in_item = (((item + 1) << LEVEL_BITS) - idx).div_ceil(STRIDE) as usize;
            let end = (k + in_item).min(out.len());
            let chunk = &mut out[k..end];
            let entry = large.get(item);
            if entry != 0 {
                let base = pfn_of(entry + (idx & (ITEMS_PER_LARGE - 1)), offset, no_pfn);
                for (slot, pfn) in chunk.iter_mut().zip(base..) {
                    *slot = pfn;
                }
            }
            k = end;
        }
    }
}

/// 2 KiB items per CPU page: every `STRIDE`-th item starts one.
const STRIDE: u64 = PAGE_SIZE_U64 >> MOCK_PAGE_SHIFT;

/// The PFN of the CPU page holding byte `offset` of the 2 KiB item that
/// `entry` maps; `no_pfn` if it maps none.
fn pfn_of(entry: u64, offset: u64, no_pfn: u64) -> u64 {
    match entry_phys(entry) {
        None => no_pfn,
        Some(phys) => (phys | offset) / PAGE_SIZE_U64,
    }
}

#[kunit_tests(iommufd_rs_mock_table)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    /// Every size from 2 KiB to 64 GiB, as the default mock format.
    const ALL_SIZES: u64 = 0x1f_ffff_f800;

    #[test]
    fn large_ptes_take_one_entry_per_mib() -> Result {
        let mut t = MockTable::new();
        // 2 KiB short of a MiB boundary, up to 2 KiB past 5 MiB: a small
        // head, 4 MiB of large PTEs, a small tail.
        let (iova, paddr, len) = (MIB - 0x800, 0x4000_0000 + MIB - 0x800, 4 * MIB + 0x1000);
        t.map(iova, paddr, len, ALL_SIZES)?;
        assert_eq!(t.phys(iova), Some(paddr));
        assert_eq!(t.phys(MIB + 0x1234), Some(0x4010_1234));
        assert_eq!(t.phys(5 * MIB + 0x7ff), Some(0x4050_07ff));
        assert_eq!(t.phys(5 * MIB + 0x800), None);
        // The middle: PTEs of 1 MiB, 2 MiB (two large items) and 1 MiB.
        assert_eq!(pte_lg2(t.entry(MIB >> MOCK_PAGE_SHIFT)), 20);
        assert_eq!(pte_lg2(t.entry((3 * MIB) >> MOCK_PAGE_SHIFT)), 21);
        assert_eq!(pte_lg2(t.entry((4 * MIB) >> MOCK_PAGE_SHIFT)), 20);
        assert_eq!(pte_lg2(t.entry(iova >> MOCK_PAGE_SHIFT)), 11);
        assert_eq!(t.stores[SMALL].get(MIB >> 12), 0);
        // Overlaps fail and change nothing.
        assert_eq!(t.map(3 * MIB, 0, 0x800, ALL_SIZES), Err(EEXIST));
        assert_eq!(t.map(0, 0, MIB, ALL_SIZES), Err(EEXIST));
        assert_eq!(t.phys(0), None);
        // PFNs, page by page, across the three parts.
        let mut out = [0u64; 4];
        t.read_pfns(MIB - 0x1000, &mut out, u64::MAX);
        assert_eq!(out[0], u64::MAX);
        assert_eq!(out[1], 0x4_0100);
        assert_eq!(out[3], 0x4_0102);
        // The holes up to the next mapping.
        assert_eq!(t.holes_from(0, 1 << 20), (MIB - 0x800) >> MOCK_PAGE_SHIFT);
        // An unmap that meets a PTE takes it whole, and no other.
        t.unmap(3 * MIB, 0x800);
        assert_eq!(t.phys(2 * MIB), None);
        assert_eq!(t.phys(4 * MIB - 1), None);
        assert_eq!(t.phys(2 * MIB - 1), Some(0x4020_0000 - 1));
        assert_eq!(t.phys(4 * MIB), Some(0x4040_0000));
        assert_eq!(t.map(2 * MIB, 0x4020_0000, 2 * MIB, ALL_SIZES), Ok(()));
        t.unmap(0, 8 * MIB);
        assert!(t.stores.iter().all(PageTable::is_empty));
        Ok(())
    }

    #[test]
    fn two_kib_ptes_where_an_end_is_not_page_aligned() -> Result {
        let mut t = MockTable::new();
        // A 2 KiB PTE, 8 KiB of 4 KiB-aligned ones, a 2 KiB PTE.
        t.map(0x800, 0x10800, 0x3000, ALL_SIZES)?;
        assert_eq!(pte_lg2(t.entry(1)), 11);
        assert_eq!(pte_lg2(t.entry(2)), 12);
        assert_eq!(pte_lg2(t.entry(6)), 11);
        assert_eq!(t.phys(0x2fff), Some(0x12fff));
        let mut out = [0u64; 4];
        t.read_pfns(0x800, &mut out, u64::MAX);
        assert_eq!(out, [0x10, 0x11, 0x12, u64::MAX]);
        // Addresses 2 KiB apart modulo 4 KiB: every PTE is 2 KiB.
        t.map(0x10_0000, 0x20_0800, 0x2000, ALL_SIZES)?;
        assert_eq!(pte_lg2(t.entry(0x10_0000 >> 11)), 11);
        assert_eq!(t.map(0x10_1000, 0, 0x1000, ALL_SIZES), Err(EEXIST));
        assert_eq!(t.map(0x3000, 0, 0x1000, ALL_SIZES), Err(EEXIST));
        t.map(0x3800, 0x5800, 0x800, ALL_SIZES)?;
        t.map(0x20_0800, 0x30_0000, 0x3000, ALL_SIZES)?;
        assert_eq!(t.phys(0x20_37ff), Some(0x30_2fff));
        // Addresses 4 KiB apart modulo 8 KiB: every PTE is 4 KiB.
        t.map(0x40_0000, 0x50_1000, 0x4000, ALL_SIZES)?;
        assert_eq!(pte_lg2(t.entry(0x40_2000 >> 11)), 12);
        assert_eq!(t.phys(0x40_3fff), Some(0x50_4fff));
        assert_eq!(t.holes_from(8, 0x1000), 0x10_0000 / 0x800 - 8);
        t.unmap(0, 1 << 30);
        assert!(t.stores.iter().all(PageTable::is_empty));
        Ok(())
    }

    #[test]
    fn dirty_bit_stays_on_the_head() -> Result {
        let mut t = MockTable::new();
        t.map(2 * MIB, 2 * MIB, 2 * MIB, ALL_SIZES)?;
        assert_eq!(t.update_head(2 * MIB, 21, |e| *e |= DIRTY) & DIRTY, 0);
        assert_ne!(t.entry((2 * MIB) >> MOCK_PAGE_SHIFT) & DIRTY, 0);
        assert_eq!(t.entry((3 * MIB) >> MOCK_PAGE_SHIFT) & DIRTY, 0);
        assert_ne!(t.update_head(2 * MIB, 21, |e| *e &= !DIRTY) & DIRTY, 0);
        assert_eq!(t.entry((2 * MIB) >> MOCK_PAGE_SHIFT) & DIRTY, 0);
        Ok(())
    }
}
