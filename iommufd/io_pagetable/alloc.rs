// SPDX-License-Identifier: GPL-2.0

//! The IOVA allocator of an IOAS: C's first fit, in O(log n) through an
//! index of free holes ([`FreeSpace`]) built on first use, or by walking the
//! trees when the index is missing.

use super::*;

/// Largest alignment the IOVA allocator asks for: the PMD size, so that
/// huge pages can be mapped whole.
const MAX_ALLOC_ALIGNMENT: u64 = if cfg!(CONFIG_TRANSPARENT_HUGEPAGE) {
    1 << 21
} else {
    PAGE_SIZE_U64
};

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
        // INVARIANT: (4) built from every area and reserved range.
        self.free = Some(free);
    }

    /// A spare node for the free-space index, if it is in use.
    pub(super) fn spare_node(&self) -> Result<Option<SpareNode>> {
        self.free.as_ref().map(|_| SpareNode::new()).transpose()
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
    pub(super) fn alloc_iova(&mut self, addr: u64, length: u64) -> Result<u64> {
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
    pub(super) fn alloc_iova_walk(&mut self, addr: u64, length: u64) -> Result<u64> {
        let (align, page_offset) = self.alloc_alignment(addr, length)?;
        let index = self.free.take();
        let found = self.search(length, align, page_offset);
        self.free = index;
        found.ok_or(ENOSPC)
    }
}
