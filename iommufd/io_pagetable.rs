// SPDX-License-Identifier: GPL-2.0

//! The IO page table of an IOAS: which IOVA ranges are reserved, allowed and
//! mapped.
//!
//! For now it holds only the reserved ranges and the IOVA alignment; the
//! areas and allowed ranges arrive with the IOAS core.

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
    /// Reserved ranges, sorted by start; they may overlap.
    reserved: KVec<IovaRange>,
    /// Every IOVA and length must be a multiple of this.
    iova_alignment: u64,
}

impl IoPagetable {
    /// An empty table: nothing reserved, byte alignment.
    pub(crate) const fn new() -> Self {
        Self {
            reserved: KVec::new(),
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
        let at = self
            .reserved
            .iter()
            .position(|r| r.start > range.start)
            .unwrap_or(self.reserved.len());
        self.reserved
            .insert_within_capacity(at, range)
            .or_else(|_| {
                self.reserved.reserve(1, GFP_KERNEL)?;
                self.reserved
                    .insert_within_capacity(at, range)
                    .map_err(|_| ENOMEM)
            })
    }

    /// Calls `f` on each hole between reserved ranges over the whole 64-bit
    /// IOVA space, in increasing order.
    pub(crate) fn for_each_hole(&self, mut f: impl FnMut(IovaRange) -> Result) -> Result {
        // Next IOVA not known to be reserved; `None` once past U64_MAX.
        let mut next = Some(0u64);
        for r in self.reserved.iter() {
            let Some(start) = next else { break };
            if r.start > start {
                f(IovaRange {
                    start,
                    last: r.start - 1,
                })?;
            }
            if r.last >= start {
                next = r.last.checked_add(1);
            }
        }
        match next {
            Some(start) => f(IovaRange {
                start,
                last: u64::MAX,
            }),
            None => Ok(()),
        }
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
