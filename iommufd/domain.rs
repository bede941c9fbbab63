// SPDX-License-Identifier: GPL-2.0

//! The domain contract: what an IO page table (a domain) that an IOAS maps
//! its areas into must provide. The test interface's mock domain and a
//! real IOMMU's paging domain ([`KernelDomain`]) provide it.

use crate::sys::{iommu::PagingDomain, PAGE_SIZE_U64};
use core::ops::ControlFlow;
use kernel::{prelude::*, sync::Arc};

/// An IO page table that areas are mapped into: a hardware domain, or the
/// test interface's mock. Every area of an IOAS is mapped into every
/// domain attached to it.
///
/// # Safety
///
/// Pages objects unpin the PFNs that [`IoDomain::read_pfns`] reports, so an
/// implementation must report, for every IOVA, exactly the PFN last mapped
/// there by [`IoDomain::map`] and not unmapped since, and [`NO_PFN`]
/// elsewhere. A wrong answer would drop a pin that someone else owns.
pub(crate) unsafe trait IoDomain: Send + Sync {
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
    /// The physical address `iova` translates to, or 0 if unmapped (for
    /// the test interface's checks).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn iova_to_phys(&self, iova: u64) -> u64;
    /// Whether it can track the pages DMA writes (C's `dirty_ops`).
    fn has_dirty_tracking(&self) -> bool {
        false
    }
    /// Turns dirty tracking on or off (`EOPNOTSUPP` without it).
    fn set_dirty_tracking(&self, _enable: bool) -> Result {
        Err(crate::sys::errno::eopnotsupp())
    }
    /// Whether dirty tracking is on: what [`IoDomain::set_dirty_tracking`]
    /// last set.
    fn dirty_tracking_on(&self) -> bool {
        false
    }
    /// Calls `record(iova, length)` for each dirty IO page in
    /// `[iova, iova + length)`, in order, and clears its dirty bit unless
    /// `no_clear`. The lengths are those C's bitmap iterator sees (see the
    /// mock's). `record` may run under the domain's locks, so it must not
    /// sleep on user memory; it answers `Break` to stop the walk after its
    /// page, which returns the IOVA to resume from (`None`: the walk got
    /// to the end).
    fn read_and_clear_dirty(
        &self,
        _iova: u64,
        _length: u64,
        _no_clear: bool,
        _record: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Option<u64> {
        None
    }
    /// As [`IoDomain::read_and_clear_dirty`], but each dirty IO page is
    /// recorded whole: from the IOVA visited to the page's end, within the
    /// range. The VFIO container's dirty log reads domains so, where a
    /// short record would lose pages.
    fn read_dirty_pages(
        &self,
        iova: u64,
        length: u64,
        no_clear: bool,
        record: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Option<u64> {
        self.read_and_clear_dirty(iova, length, no_clear, record)
    }
    /// Whether [`IoDomain::map`] may install IO pages larger than
    /// `PAGE_SIZE` (which a later partial unmap would remove whole).
    fn maps_large_pages(&self) -> bool {
        false
    }
    /// Writes into `out[k]` the PFN that `iova + k * PAGE_SIZE` translates
    /// to, or [`NO_PFN`] if it is unmapped.
    fn read_pfns(&self, iova: u64, out: &mut [u64]);
}

/// No page: an IOVA that is not mapped, a page that is not pinned.
pub(crate) const NO_PFN: u64 = u64::MAX;

/// IOMMU protection bits of an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prot {
    /// Devices may read.
    pub(crate) read: bool,
    /// Devices may write.
    pub(crate) write: bool,
}

/// A real IOMMU's paging domain, as a domain.
pub(crate) struct KernelDomain {
    /// The IOMMU core's domain.
    pub(crate) domain: Arc<PagingDomain>,
    /// It was made to force cache-coherent DMA.
    pub(crate) enforce_cc: bool,
}

// SAFETY: The domain is `IOMMU_DOMAIN_UNMANAGED` and only this module maps
// it (the `PagingDomain` invariants), so `iova_to_phys`, which `read_pfns`
// uses, reports exactly what `map` installed and `unmap` has not removed.
unsafe impl IoDomain for KernelDomain {
    fn map(&self, iova: u64, paddr: u64, length: u64, prot: Prot) -> Result {
        PagingDomain::map(&self.domain, iova, paddr, length, prot.read, prot.write)
    }

    fn unmap(&self, iova: u64, length: u64) {
        let Some(last) = length.checked_sub(1).and_then(|l| iova.checked_add(l)) else {
            return;
        };
        // The core stops at the first hole: step over holes page by page.
        let mut cur = iova;
        loop {
            let done = match PagingDomain::unmap(&self.domain, cur, last - cur + 1) {
                0 if self.domain.iova_to_phys(cur) == 0 => PAGE_SIZE_U64 - cur % PAGE_SIZE_U64,
                0 => return,
                n => n,
            };
            match cur.checked_add(done) {
                Some(next) if next <= last => cur = next,
                _ => return,
            }
        }
    }

    fn pgsize_bitmap(&self) -> u64 {
        self.domain.pgsize_bitmap()
    }

    fn aperture(&self) -> (u64, u64) {
        self.domain.aperture()
    }

    fn enforces_cache_coherency(&self) -> bool {
        self.enforce_cc
    }

    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn iova_to_phys(&self, iova: u64) -> u64 {
        self.domain.iova_to_phys(iova)
    }

    fn maps_large_pages(&self) -> bool {
        true
    }

    fn read_pfns(&self, iova: u64, out: &mut [u64]) {
        for (k, slot) in out.iter_mut().enumerate() {
            let phys = self
                .domain
                .iova_to_phys(iova.wrapping_add(k as u64 * PAGE_SIZE_U64));
            *slot = if phys == 0 {
                NO_PFN
            } else {
                phys / PAGE_SIZE_U64
            };
        }
    }
}
