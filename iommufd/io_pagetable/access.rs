// SPDX-License-Identifier: GPL-2.0

//! The in-kernel accesses attached to an IOAS: their list, the alignment
//! those that pin impose, and the walk over the areas behind an IOVA range.

use super::*;

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

/// The page index range `[first, last]` of `bytes` bytes from `start_byte`.
pub(crate) fn page_span(start_byte: u64, bytes: u64) -> (u64, u64) {
    (
        start_byte / PAGE_SIZE_U64,
        (start_byte + bytes - 1) / PAGE_SIZE_U64,
    )
}

impl IoPagetable {
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
    pub(super) fn recalc_alignment(&mut self) -> Result {
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
        // INVARIANT: (3) recomputed from its inputs; (2) a larger value was
        // checked against every area, a smaller one keeps holding.
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
}
