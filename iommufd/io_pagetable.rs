// SPDX-License-Identifier: GPL-2.0

//! The IO page table of an IOAS: which IOVA ranges are reserved, allowed and
//! mapped.
//!
//! For now it holds only the reserved ranges and the IOVA alignment; the
//! areas and allowed ranges arrive with the IOAS core.

use crate::interval_tree::{IntervalTree, NewNode};
use kernel::prelude::*;

/// An inclusive IOVA range `[start, last]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IovaRange {
    /// First IOVA in the range.
    pub(crate) start: u64,
    /// Last IOVA in the range (inclusive).
    pub(crate) last: u64,
}

/// The IOVA bookkeeping of one IOAS.
pub(crate) struct IoPagetable {
    /// Reserved ranges; they may overlap.
    reserved: IntervalTree<()>,
    /// Every IOVA and length must be a multiple of this.
    iova_alignment: u64,
}

impl IoPagetable {
    /// An empty table: nothing reserved, byte alignment.
    pub(crate) const fn new() -> Self {
        Self {
            reserved: IntervalTree::new(),
            iova_alignment: 1,
        }
    }

    /// The alignment every mapping must respect.
    pub(crate) fn iova_alignment(&self) -> u64 {
        self.iova_alignment
    }

    /// Marks `range` reserved.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn reserve(&mut self, range: IovaRange) -> Result {
        self.reserved
            .insert(NewNode::new(range.start, range.last, (), GFP_KERNEL)?);
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
    fn reserved_from_zero() -> Result {
        let mut t = IoPagetable::new();
        t.reserve(range(0, 0))?;
        assert_eq!(&holes(&t)?[..], &[range(1, u64::MAX)]);
        Ok(())
    }
}
