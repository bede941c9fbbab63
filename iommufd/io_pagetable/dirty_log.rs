// SPDX-License-Identifier: GPL-2.0

//! The VFIO container's dirty log (`VFIO_IOMMU_DIRTY_PAGES`), as vfio's
//! type1 keeps it: while it runs, each area carries a bitmap of its pages
//! (type1's per-mapping bitmap) where in-kernel accesses leave the pages
//! they pin and write. A report adds what the attached domains that track
//! dirty pages recorded; with a domain that does not track them attached,
//! every page counts as dirty, as type1 counts every page of an
//! IOMMU-backed group's mappings. After a report, a log starts again from
//! the pages accesses still pin.

use super::*;
use core::ops::ControlFlow;

/// Most pages one area's log may cover: type1's `DIRTY_BITMAP_PAGES_MAX`.
const LOG_PAGES_MAX: u64 = i32::MAX as u64;

/// The dirty pages of one area, as a report gives them.
pub(crate) struct DirtyPages<'a> {
    /// First IOVA of the area.
    pub(crate) start: u64,
    /// Last IOVA of the area.
    pub(crate) last: u64,
    /// Every page is dirty: a domain that does not track dirty pages is
    /// attached (type1's IOMMU-backed group).
    pub(crate) all: bool,
    /// Bit `k`: the `k`-th `PAGE_SIZE` page the area spans is dirty.
    bits: &'a [u64],
}

impl DirtyPages<'_> {
    /// How many `1 << shift` byte blocks (IOVA aligned) the area spans.
    pub(crate) fn blocks(&self, shift: u32) -> u64 {
        (self.last >> shift) - (self.start >> shift) + 1
    }

    /// Whether a page of `[first, last]` (IOVAs inside the area) is dirty.
    fn any_page(&self, first: u64, last: u64) -> bool {
        let base = self.start / PAGE_SIZE_U64;
        (first / PAGE_SIZE_U64 - base..=last / PAGE_SIZE_U64 - base).any(|k| {
            self.bits
                .get((k / 64) as usize)
                .is_some_and(|w| w & (1 << (k % 64)) != 0)
        })
    }

    /// Word `k` of the area's bitmap in `1 << shift` byte blocks: bit `i`
    /// for block `64 * k + i` from the one holding the area's first IOVA;
    /// bits past the area are 0.
    pub(crate) fn word(&self, k: u64, shift: u32) -> u64 {
        let n = self.blocks(shift);
        let Some(left) = n.checked_sub(k.saturating_mul(64)).filter(|&l| l > 0) else {
            return 0;
        };
        let mask = if left >= 64 {
            u64::MAX
        } else {
            (1 << left) - 1
        };
        if self.all {
            return mask;
        }
        if shift == kernel::page::PAGE_SHIFT as u32 {
            return self.bits.get(k as usize).copied().unwrap_or(0) & mask;
        }
        let mut w = 0u64;
        for i in 0..left.min(64) {
            let block = (self.start >> shift) + 64 * k + i;
            let first = (block << shift).max(self.start);
            let last = ((block << shift) | ((1u64 << shift) - 1)).min(self.last);
            if self.any_page(first, last) {
                w |= 1 << i;
            }
        }
        w
    }
}

/// An empty log for an area at `[start, last]`: `EINVAL` past
/// [`LOG_PAGES_MAX`] pages (as type1's bitmap), `ENOMEM`.
fn new_log(start: u64, last: u64) -> Result<KVVec<u64>> {
    let pages = last / PAGE_SIZE_U64 - start / PAGE_SIZE_U64 + 1;
    if pages > LOG_PAGES_MAX {
        return Err(EINVAL);
    }
    Ok(KVVec::from_elem(
        0,
        pages.div_ceil(64) as usize,
        GFP_KERNEL,
    )?)
}

/// Marks dirty, in the log of the area starting at `start`, the pages of
/// `[first, last]` (IOVAs; the part outside the log is ignored).
fn log_pages(bits: &mut [u64], start: u64, first: u64, last: u64) {
    if first > last {
        return;
    }
    let base = start / PAGE_SIZE_U64;
    let (Some(lo), Some(hi)) = (
        (first / PAGE_SIZE_U64).checked_sub(base),
        (last / PAGE_SIZE_U64).checked_sub(base),
    ) else {
        return;
    };
    let hi = hi.min((bits.len() as u64 * 64).saturating_sub(1));
    let mut k = lo;
    while k <= hi {
        let (word, bit) = ((k / 64) as usize, k % 64);
        let n = (64 - bit).min(hi - k + 1);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1 << n) - 1) << bit
        };
        if let Some(w) = bits.get_mut(word) {
            *w |= mask;
        }
        k += n;
    }
}

/// Logs the pages of the area at `[start, last]` (bytes from `start_byte`
/// of `pages`) that accesses pin now (type1's `vfio_dma_populate_bitmap`).
fn log_access_pins(start: u64, last: u64, pages: &Pages, start_byte: u64, bits: &mut [u64]) {
    let end_byte = start_byte + (last - start);
    let (first, last_idx) = page_span(start_byte, last - start + 1);
    pages.for_each_access_pinned(first, last_idx, |idx| {
        let lo = (idx * PAGE_SIZE_U64).max(start_byte);
        let hi = (idx * PAGE_SIZE_U64 + PAGE_SIZE_U64 - 1).min(end_byte);
        log_pages(
            bits,
            start,
            start + (lo - start_byte),
            start + (hi - start_byte),
        );
    });
}

/// Whether the dirty pages `domain` records count: it tracks them, and
/// tracking is on.
fn reports(domain: &AttachedDomain) -> bool {
    domain.domain.has_dirty_tracking() && domain.domain.dirty_tracking_on()
}

/// Reports to `report` the dirty pages of the area at `[start, last]`,
/// about to be unmapped: its log, and what the domains recorded (left in
/// them, should the report fail and the area stay). `ENOMEM`, or the
/// report's error.
pub(super) fn report_before_unmap(
    start: u64,
    last: u64,
    area: &Area,
    domains: &[AttachedDomain],
    report: &mut dyn FnMut(&DirtyPages<'_>) -> Result,
) -> Result {
    let all = domains.iter().any(|d| !reports(d));
    let mut bits = KVVec::new();
    if !all {
        bits = new_log(start, last)?;
        if let Some(log) = &area.dirty {
            for (w, l) in bits.iter_mut().zip(log.iter()) {
                *w |= l;
            }
        }
        for d in domains {
            d.domain
                .read_dirty_pages(start, last - start + 1, true, &mut |at, len| {
                    log_pages(
                        &mut bits,
                        start,
                        at,
                        at.saturating_add(len.saturating_sub(1)),
                    );
                    ControlFlow::Continue(())
                });
        }
    }
    report(&DirtyPages {
        start,
        last,
        all,
        bits: &bits,
    })
}

/// The logs of the halves `[start, p]` and `[p + 1, last]` of an area
/// whose log is `log`, if it has one. `EINVAL` or `ENOMEM` (see
/// [`new_log`]).
pub(super) fn split_log(
    log: Option<&[u64]>,
    start: u64,
    p: u64,
    last: u64,
) -> Result<Option<(KVVec<u64>, KVVec<u64>)>> {
    let Some(log) = log else {
        return Ok(None);
    };
    let old = DirtyPages {
        start,
        last,
        all: false,
        bits: log,
    };
    let mut halves = (new_log(start, p)?, new_log(p + 1, last)?);
    for (bits, first, last) in [(&mut halves.0, start, p), (&mut halves.1, p + 1, last)] {
        let base = first / PAGE_SIZE_U64;
        for page in base..=last / PAGE_SIZE_U64 {
            let at = (page * PAGE_SIZE_U64).max(first);
            if old.any_page(at, at) {
                log_pages(bits, first, at, at);
            }
        }
    }
    Ok(Some(halves))
}

impl IoPagetable {
    /// Whether the VFIO container's dirty log runs.
    pub(crate) fn dirty_log_running(&self) -> bool {
        self.dirty_log
    }

    /// The first and last IOVA of the area holding `iova`, if any.
    pub(crate) fn area_around(&self, iova: u64) -> Option<(u64, u64)> {
        self.areas.first(iova, iova).map(|a| (a.start, a.last))
    }

    /// Starts the dirty log (nothing to do if it runs): a log for every
    /// area, holding the pages accesses pin now, and dirty tracking on in
    /// every domain that can track, from a clean start. All or nothing:
    /// `EINVAL` for an area of more than `INT_MAX` pages, `ENOMEM`, or a
    /// domain's error.
    pub(crate) fn start_dirty_log(&mut self) -> Result {
        if self.dirty_log {
            return Ok(());
        }
        let mut logs = KVec::with_capacity(self.areas.len(), GFP_KERNEL)?;
        for a in self.areas.iter(0, u64::MAX) {
            logs.push(new_log(a.start, a.last)?, GFP_KERNEL)?;
        }
        let domains = self.attached.domains();
        for (i, d) in domains.iter().enumerate() {
            if !d.domain.has_dirty_tracking() {
                continue;
            }
            // A clean start: what was recorded before is dropped.
            for a in self.areas.iter(0, u64::MAX) {
                d.domain
                    .read_and_clear_dirty(a.start, a.last - a.start + 1, false, &mut |_, _| {
                        ControlFlow::Continue(())
                    });
            }
            if let Err(e) = d.domain.set_dirty_tracking(true) {
                for d in domains[..i].iter() {
                    if d.domain.has_dirty_tracking() {
                        let _ = d.domain.set_dirty_tracking(false);
                    }
                }
                return Err(e);
            }
        }
        // INVARIANT: (7) every area gets its log, in order; the log runs.
        let mut logs = logs.drain_all();
        self.areas.for_each_mut(0, u64::MAX, |start, last, area| {
            let mut log = logs.next();
            if let (Some(bits), Some(pages)) = (log.as_mut(), area.pages.made()) {
                if area.num_accesses.load(Relaxed) > 0 {
                    log_access_pins(start, last, pages, area.start_byte, bits);
                }
            }
            area.dirty = log;
        });
        self.dirty_log = true;
        Ok(())
    }

    /// Stops the dirty log, if it runs: the logs go, and dirty tracking is
    /// turned off in every domain that can track.
    pub(crate) fn stop_dirty_log(&mut self) {
        if !self.dirty_log {
            return;
        }
        // INVARIANT: (7) no area keeps a log once it stops.
        self.dirty_log = false;
        self.areas
            .for_each_mut(0, u64::MAX, |_, _, area| area.dirty = None);
        for d in self.attached.domains() {
            if d.domain.has_dirty_tracking() {
                let _ = d.domain.set_dirty_tracking(false);
            }
        }
    }

    /// Logs `[iova, last]` dirty, if the log runs: an access pinned or
    /// wrote it.
    pub(crate) fn log_dirty(&mut self, iova: u64, last: u64) {
        if !self.dirty_log {
            return;
        }
        self.areas.for_each_mut(iova, last, |start, end, area| {
            if let Some(bits) = area.dirty.as_mut() {
                log_pages(bits, start, iova.max(start), last.min(end));
            }
        });
    }

    /// Reports to `report`, in order, the dirty pages of each area that
    /// starts in `[first, last]`: its log, with what the domains that
    /// track recorded (which they forget). Once reported, an area's log
    /// starts again from the pages accesses pin. Stops at the report's
    /// error; that area and those after it keep their logs.
    pub(crate) fn read_dirty_log(
        &mut self,
        first: u64,
        last: u64,
        mut report: impl FnMut(&DirtyPages<'_>) -> Result,
    ) -> Result {
        let domains = self.attached.domains();
        let all = domains.iter().any(|d| !reports(d));
        let mut result = Ok(());
        self.areas.for_each_mut(first, last, |start, end, area| {
            if result.is_err() || start < first {
                return;
            }
            let Some(bits) = area.dirty.as_mut() else {
                return;
            };
            for d in domains.iter().filter(|d| reports(d)) {
                d.domain
                    .read_dirty_pages(start, end - start + 1, false, &mut |at, len| {
                        log_pages(bits, start, at, at.saturating_add(len.saturating_sub(1)));
                        ControlFlow::Continue(())
                    });
            }
            result = report(&DirtyPages {
                start,
                last: end,
                all,
                bits: &bits[..],
            });
            if result.is_ok() {
                bits.fill(0);
                if let (Some(pages), true) =
                    (area.pages.made(), area.num_accesses.load(Relaxed) > 0)
                {
                    log_access_pins(start, end, pages, area.start_byte, bits);
                }
            }
        });
        result
    }

    /// Empty logs for `areas` (placed, not yet inserted), if the log runs.
    #[inline(always)]
    pub(super) fn new_dirty_logs(
        &self,
        areas: &[Option<NewArea>],
    ) -> Result<Option<KVec<KVVec<u64>>>> {
        if !self.dirty_log {
            return Ok(None);
        }
        Self::new_running_logs(areas).map(Some)
    }

    /// [`Self::new_dirty_logs`] while the log runs.
    fn new_running_logs(areas: &[Option<NewArea>]) -> Result<KVec<KVVec<u64>>> {
        let mut logs = KVec::with_capacity(areas.len(), GFP_KERNEL)?;
        for node in areas.iter().flatten() {
            let (start, last) = node.range();
            logs.push(new_log(start, last)?, GFP_KERNEL)?;
        }
        Ok(logs)
    }

    /// Gives the areas of `[first, last]`, just inserted, their `logs`,
    /// in order.
    pub(super) fn give_dirty_logs(&mut self, first: u64, last: u64, mut logs: KVec<KVVec<u64>>) {
        let mut logs = logs.drain_all();
        self.areas
            .for_each_mut(first, last, |_, _, area| area.dirty = logs.next());
    }
}

#[kunit_tests(iommufd_rs_dirty_log)]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE_U64;

    #[test]
    fn log_pages_sets_page_bits() -> Result {
        let mut bits = new_log(0x10_0000, 0x10_0000 + 130 * P - 1)?;
        assert_eq!(bits.len(), 3);
        // A byte range inside one page marks it; one across words marks
        // every page it touches; what lies before the area is ignored.
        log_pages(
            &mut bits,
            0x10_0000,
            0x10_0000 + 5 * P + 7,
            0x10_0000 + 5 * P + 9,
        );
        log_pages(&mut bits, 0x10_0000, 0x10_0000 + 62 * P, 0x10_0000 + 65 * P);
        log_pages(
            &mut bits,
            0x10_0000,
            0x10_0000 + 129 * P,
            0x10_0000 + 130 * P - 1,
        );
        log_pages(&mut bits, 0x10_0000, 0, 0x10_0000 - 1);
        assert_eq!(bits[0], 1 << 5 | 3 << 62);
        assert_eq!(bits[1], 3);
        assert_eq!(bits[2], 1 << 1);
        // Nothing is written past the log's last word.
        let mut one = new_log(0, P - 1)?;
        log_pages(&mut one, 0, 0, u64::MAX);
        assert_eq!(&one[..], &[u64::MAX]);
        Ok(())
    }

    #[test]
    fn words_in_other_block_sizes() -> Result {
        let start = 0x20_0000 + P;
        let mut bits = new_log(start, start + 8 * P - 1)?;
        log_pages(&mut bits, start, start + 2 * P, start + 2 * P);
        let pages = DirtyPages {
            start,
            last: start + 8 * P - 1,
            all: false,
            bits: &bits,
        };
        let shift = kernel::page::PAGE_SHIFT as u32;
        assert_eq!(pages.word(0, shift), 1 << 2);
        assert_eq!(pages.word(1, shift), 0);
        // In 2-page blocks the area spans 5 (it starts in the second page
        // of one): the dirty page is in block 1.
        assert_eq!(pages.blocks(shift + 1), 5);
        assert_eq!(pages.word(0, shift + 1), 1 << 1);
        let all = DirtyPages { all: true, ..pages };
        assert_eq!(all.word(0, shift), 0xff);
        assert_eq!(all.word(0, shift + 1), 0x1f);
        Ok(())
    }

    #[test]
    fn split_keeps_each_page() -> Result {
        let start = 0x40_0000;
        let last = start + 100 * P - 1;
        let mut log = new_log(start, last)?;
        for k in [0u64, 63, 64, 70, 99] {
            log_pages(&mut log, start, start + k * P, start + k * P);
        }
        let Some((low, high)) = split_log(Some(&log), start, start + 64 * P - 1, last)? else {
            return Err(EINVAL);
        };
        assert_eq!(&low[..], &[1 | 1 << 63]);
        assert_eq!(&high[..], &[1 | 1 << 6 | 1 << 35]);
        assert!(split_log(None, start, start + P - 1, last)?.is_none());
        Ok(())
    }

    #[test]
    fn huge_areas_have_no_log() {
        assert_eq!(new_log(0, (LOG_PAGES_MAX + 1) * P - 1).err(), Some(EINVAL));
    }
}
