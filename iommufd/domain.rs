// SPDX-License-Identifier: GPL-2.0

//! The domain contract: what an IO page table (a domain) that an IOAS maps
//! its areas into must provide. The test interface's mock domain provides
//! it; a real IOMMU domain will too.

use kernel::prelude::*;

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
    /// The physical address `iova` translates to, or 0 if unmapped.
    fn iova_to_phys(&self, iova: u64) -> u64;
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
