// SPDX-License-Identifier: GPL-2.0

//! The domains attached to an IOAS: filling a domain with every area,
//! keeping every area mapped in every domain, and emptying them again.

use super::*;

/// A domain attached to an IOAS, through a HWPT object.
pub(crate) struct AttachedDomain {
    /// The domain.
    pub(crate) domain: Arc<dyn IoDomain>,
    /// The HWPT object's ID.
    pub(crate) hwpt_id: u32,
    /// Made automatically for a device attached to the IOAS.
    pub(crate) auto: bool,
}

/// Maps the run of `n` pages from index `idx` and PFN `pfn` of the area
/// at `span` into `domain`. With `small` (large IO pages disabled), a
/// domain that would use large IO pages gets one call per page, so that
/// any page-aligned part can be unmapped later, as C does.
fn map_run(
    domain: &dyn IoDomain,
    span: &AreaSpan,
    prot: Prot,
    (idx, pfn, n): (u64, u64, u64),
    small: bool,
) -> Result {
    if small && n > 1 && domain.maps_large_pages() {
        for k in 0..n {
            if let Err(e) = map_run(domain, span, prot, (idx + k, pfn + k, 1), false) {
                if k > 0 {
                    unmap_pages(domain, span, idx, idx + k - 1);
                }
                return Err(e);
            }
        }
        return Ok(());
    }
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
fn map_area_into(domain: &dyn IoDomain, span: &AreaSpan, area: &Area, small: bool) -> Result {
    let (first, last) = span.pages();
    let result = area.made_pages().and_then(|pages| {
        pages.for_each_run(first, last, |idx, pfn, n| {
            map_run(domain, span, area.prot, (idx, pfn, n), small)
        })
    });
    if result.is_err() {
        unmap_pages(domain, span, first, last);
    }
    result
}

impl IoPagetable {
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
    /// every domain. All or nothing (pages objects made stay made).
    pub(super) fn fill_new_areas(&self, areas: &mut [Option<NewArea>]) -> Result {
        for node in areas.iter_mut().flatten() {
            let (start, last) = node.range();
            node.value_mut().make_pages(start, last)?;
        }
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
    pub(super) fn span_of(&self, iova: u64, length: u64, start_byte: u64) -> AreaSpan {
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
        let small = self.disable_large_pages;
        let pages = area.made_pages()?;
        pages.fill_domains(
            span,
            storage.domain.clone(),
            |idx, pfn, n| {
                for d in self.attached.domains().iter() {
                    map_run(&*d.domain, &span, area.prot, (idx, pfn, n), small)?;
                }
                Ok(())
            },
            |first, last| {
                for d in self.attached.domains().iter() {
                    unmap_pages(&*d.domain, &span, first, last);
                }
            },
        )?;
        let domains = self.attached.domains().iter().map(|d| &d.domain);
        if let Err(e) = pages.track_domains(span, domains) {
            self.unfill_area(iova, length, area);
            return Err(e);
        }
        Ok(())
    }

    /// Undoes [`IoPagetable::fill_area`], if there are domains.
    #[inline]
    pub(super) fn unfill_area(&self, iova: u64, length: u64, area: &Area) {
        if !self.attached.domains().is_empty() {
            self.unfill_area_from_domains(iova, length, area);
        }
    }

    /// [`Self::unfill_area`] with domains attached.
    fn unfill_area_from_domains(&self, iova: u64, length: u64, area: &Area) {
        // Areas in domains have their pages objects (invariant 5).
        let Some(pages) = area.pages.made() else {
            return;
        };
        let span = self.span_of(iova, length, area.start_byte);
        pages.unfill_domains(span, |first, last| {
            for d in self.attached.domains().iter() {
                unmap_pages(&*d.domain, &span, first, last);
            }
        });
        // After the unmap: a revocation meanwhile unmaps again, harmlessly.
        pages.untrack_domains(span, None);
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
        self.make_pages_in(0, u64::MAX)?;
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
        // INVARIANT: (5) `fill_domain` mapped every area into the domain
        // (and pinned them if it is the first); (2, 3) every area meets the
        // new alignment, checked above. The push cannot fail: room was
        // reserved above.
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
        let small = self.disable_large_pages;
        // Takes area `a`, at `span`, out of `domain` again.
        let unfill = |a: &Area, span: AreaSpan| {
            let unmap = |first, last| unmap_pages(&**domain, &span, first, last);
            if first_domain {
                if let Some(pages) = a.pages.made() {
                    pages.unfill_domains(span, unmap);
                }
            } else {
                let (first, last) = span.pages();
                unmap(first, last);
            }
        };
        let mut result = Ok(());
        let mut failed_at = None;
        for a in self.areas.iter(0, u64::MAX) {
            let span = self.span_of(a.start, a.last - a.start + 1, a.value.start_byte);
            // `add_domain` made every pages object.
            let Ok(pages) = a.value.made_pages() else {
                (result, failed_at) = (Err(EINVAL), Some(a.start));
                break;
            };
            let filled = if first_domain {
                pages.fill_domains(
                    span,
                    domain.clone(),
                    |idx, pfn, n| map_run(&**domain, &span, a.value.prot, (idx, pfn, n), small),
                    |first, last| unmap_pages(&**domain, &span, first, last),
                )
            } else {
                map_area_into(&**domain, &span, a.value, small)
            };
            let tracked = filled.and_then(|()| {
                let tracked = pages.track_domains(span, core::iter::once(domain));
                if tracked.is_err() {
                    unfill(a.value, span);
                }
                tracked
            });
            if let Err(e) = tracked {
                (result, failed_at) = (Err(e), Some(a.start));
                break;
            }
        }
        if let Some(stop) = failed_at {
            for a in self.areas.iter(0, u64::MAX).take_while(|a| a.start < stop) {
                let span = self.span_of(a.start, a.last - a.start + 1, a.value.start_byte);
                unfill(a.value, span);
                if let Some(pages) = a.value.pages.made() {
                    pages.untrack_domains(span, Some(domain));
                }
            }
        }
        result
    }

    /// Removes the reserved ranges of `owner`.
    pub(super) fn remove_reserved(&mut self, owner: ReservedBy) {
        self.reserved
            .remove_if(0, u64::MAX, |_, _, by| *by == owner, |_, _, _| {});
        // INVARIANT: (4) the index is rebuilt from the trees when next
        // needed.
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
        // INVARIANT: (5) each area leaves the domain; with none left its
        // domain uses go (and the pins they held), else a new first domain
        // becomes their storage.
        for a in self.areas.iter(0, u64::MAX) {
            let Some(pages) = a.value.pages.made() else {
                continue;
            };
            let span = self.span_of(a.start, a.last - a.start + 1, a.value.start_byte);
            let unmap = |first, last| unmap_pages(&*gone.domain, &span, first, last);
            if self.attached.domains().is_empty() {
                pages.unfill_domains(span, unmap);
            } else {
                if let Some(next) = next_storage {
                    pages.set_storage(span, &next.domain);
                }
                let (first, last) = span.pages();
                unmap(first, last);
            }
            pages.untrack_domains(span, Some(&gone.domain));
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

    /// The HWPT IDs of the automatic domains, in attach order.
    pub(crate) fn auto_domains(&self) -> Result<KVec<u32>> {
        let mut out = KVec::new();
        for d in self.attached.domains().iter().filter(|d| d.auto) {
            out.push(d.hwpt_id, GFP_KERNEL)?;
        }
        Ok(out)
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
}
