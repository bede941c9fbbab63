// SPDX-License-Identifier: GPL-2.0

//! The user bitmap of `IOMMU_HWPT_GET_DIRTY_BITMAP`, written in place a
//! window at a time, as Linux 7.2's `iova_bitmap` does.
//!
//! Bit `i` stands for the `page_size` bytes at `iova + i * page_size`. The
//! bitmap is not copied: a record outside the pinned window moves it,
//! pinning (writable, short term) the user pages holding its bits, up to
//! one page of page pointers' worth, and sets the bits in place. Records
//! come from a domain's walk, under its locks, where nothing may wait on
//! the mmap lock: a record that needs the window moved is held back, and
//! the walk stops for it and goes on afterwards. The arithmetic wraps as C's
//! `unsigned long` does, so that odd requests (a zero-length record, a
//! record past the range, a bitmap partly unwritable) set the very bits C
//! sets: every bit the pinned pages reach, and none past a page GUP could
//! not pin. See docs/c-behaviour/hwpt-and-dirty.md.

use crate::sys::pin::{PinnedWindow, BITS_PER_PAGE};
use crate::sys::PAGE_SIZE_U64;
use core::ops::ControlFlow;
use kernel::prelude::*;

/// A user dirty bitmap being filled.
///
/// # Invariants
///
/// While `window` holds pages, `[mapped_iova, mapped_iova + mapped_length)`
/// is the IOVA range whose bits lie in them, from byte `pgoff` of its first
/// page, and `base_index` is the bitmap byte at `pgoff`.
pub(crate) struct IovaBitmap {
    /// The pinned pages of the current window.
    window: PinnedWindow,
    /// User address of the bitmap.
    user: u64,
    /// log2 of the bytes per bit (of `page_size`'s lowest set bit).
    pgshift: u32,
    /// IOVA of bit 0.
    iova: u64,
    /// Length of the IOVA range asked for.
    length: u64,
    /// Bitmap bytes in all.
    total_index: u64,
    /// First bitmap byte of the window.
    base_index: u64,
    /// IOVA of the window's first bit.
    mapped_iova: u64,
    /// IOVA bytes the window covers.
    mapped_length: u64,
    /// Offset of the window's first byte in its first page.
    pgoff: u64,
    /// Records not set yet, joined.
    run: Option<Run>,
    /// A record the window could not take, not set yet.
    held_back: Option<(u64, u64)>,
}

/// Dirty records joined into one range of IOVAs, all inside the window,
/// whose bits are not set yet.
struct Run {
    /// First IOVA.
    first: u64,
    /// Last IOVA.
    last: u64,
    /// The bit of `last`, counted from the window's first.
    last_bit: u64,
    /// The window's last IOVA: the window does not move while a run is
    /// held.
    window_last: u64,
}

impl IovaBitmap {
    /// A bitmap at user address `user` for `[iova, iova + length)` (a zero
    /// length wraps to the whole space, as in C), one bit per `page_size`
    /// (not zero). Nothing is pinned yet.
    pub(crate) fn new(iova: u64, length: u64, page_size: u64, user: u64) -> Result<Self> {
        let pgshift = page_size.trailing_zeros();
        let mut bitmap = Self {
            window: PinnedWindow::new()?,
            user,
            pgshift,
            iova,
            length,
            total_index: 0,
            base_index: 0,
            mapped_iova: iova,
            mapped_length: 0,
            pgoff: 0,
            run: None,
            held_back: None,
        };
        bitmap.total_index = bitmap
            .offset_to_index(length.wrapping_sub(1))
            .wrapping_add(1);
        Ok(bitmap)
    }

    /// The bitmap byte holding the bit of IOVA offset `offset`.
    fn offset_to_index(&self, offset: u64) -> u64 {
        (offset >> self.pgshift) / 8
    }

    /// The IOVA offset of the first bit of bitmap byte `index`.
    fn index_to_offset(&self, index: u64) -> u64 {
        index.wrapping_mul(8) << self.pgshift
    }

    /// Pins the window from byte `base_index` on.
    fn get(&mut self) -> Result {
        let bytes = self.total_index.wrapping_sub(self.base_index);
        let addr = self.user.wrapping_add(self.base_index);
        let pgoff = addr % PAGE_SIZE_U64;
        let npages = bytes.div_ceil(PAGE_SIZE_U64) + u64::from(pgoff != 0);
        let npages = npages.min(PinnedWindow::MAX_PAGES as u64) as usize;
        let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
        let got = self.window.pin(addr, npages)? as u64;
        self.mapped_iova = self
            .iova
            .wrapping_add(self.index_to_offset(self.base_index));
        self.pgoff = pgoff;
        // The bytes pinned, capped by the bitmap's end, then the IOVAs
        // they stand for, capped by the range's end.
        let pinned = (got * PAGE_SIZE_U64) - pgoff;
        let remaining = self.index_to_offset(bytes.min(pinned));
        let max_iova = self.iova.wrapping_add(self.length).wrapping_sub(1);
        let end = self.mapped_iova.wrapping_add(remaining).wrapping_sub(1);
        self.mapped_length = if end > max_iova {
            remaining.wrapping_sub(end - max_iova)
        } else {
            remaining
        };
        Ok(())
    }

    /// Whether the window covers `[iova, iova + length)`.
    fn mapped_range(&self, iova: u64, length: u64) -> bool {
        self.window.npages() != 0
            && iova >= self.mapped_iova
            && iova.wrapping_add(length).wrapping_sub(1)
                <= self
                    .mapped_iova
                    .wrapping_add(self.mapped_length)
                    .wrapping_sub(1)
    }

    /// Moves the window to the byte holding `iova`'s bit.
    fn advance_to(&mut self, iova: u64) -> Result {
        let index = self.offset_to_index(iova.wrapping_sub(self.iova));
        if index >= self.total_index {
            return Err(EINVAL);
        }
        self.base_index = index;
        self.window.unpin();
        self.get()
    }

    /// Records that `[iova, iova + length)` is dirty, without pinning:
    /// the same as [`Self::set`], but records inside the pinned window
    /// whose bits touch or overlap are set together, by [`Self::finish`] or
    /// by the next record that does not join them (inside the window
    /// nothing can fail or move, and the bits of the joined range are the
    /// union of theirs). A record the window cannot take is held back for
    /// [`Self::record_held_back`], and the answer is `Break`: the caller
    /// must make it before the next record.
    #[inline]
    pub(crate) fn record_in_window(&mut self, iova: u64, length: u64) -> ControlFlow<()> {
        if let Some(run) = &mut self.run {
            if length != 0 && iova >= run.first {
                let bit = (iova - self.mapped_iova) >> self.pgshift;
                let last = iova.wrapping_add(length - 1);
                if bit <= run.last_bit + 1 && last >= iova && last <= run.window_last {
                    if last > run.last {
                        run.last = last;
                        run.last_bit = (last - self.mapped_iova) >> self.pgshift;
                    }
                    return ControlFlow::Continue(());
                }
            }
        }
        self.record_apart(iova, length)
    }

    /// A record that does not join the run: sets the run's bits, then
    /// starts a new run with it if it lies in the window, else holds it
    /// back.
    fn record_apart(&mut self, iova: u64, length: u64) -> ControlFlow<()> {
        self.finish();
        match length.checked_sub(1).and_then(|l| iova.checked_add(l)) {
            Some(last) if self.mapped_range(iova, length) => {
                self.run = Some(Run {
                    first: iova,
                    last,
                    last_bit: (last - self.mapped_iova) >> self.pgshift,
                    window_last: self
                        .mapped_iova
                        .wrapping_add(self.mapped_length)
                        .wrapping_sub(1),
                });
                ControlFlow::Continue(())
            }
            // Outside the window, or a zero-length or wrapping record,
            // which keeps C's odd ways.
            _ => {
                self.held_back = Some((iova, length));
                ControlFlow::Break(())
            }
        }
    }

    /// Makes the record [`Self::record_in_window`] held back, if any,
    /// moving the window (which pins user pages) as it needs.
    pub(crate) fn record_held_back(&mut self) {
        if let Some((iova, length)) = self.held_back.take() {
            self.set(iova, length);
        }
    }

    /// Sets the bits of the records [`Self::record`] holds back.
    pub(crate) fn finish(&mut self) {
        if let Some(run) = self.run.take() {
            self.set(run.first, run.last - run.first + 1);
        }
    }

    /// Sets the bits of `[iova, iova + length)`, moving the window as
    /// needed; stops quietly where the bitmap ends or cannot be pinned.
    fn set(&mut self, mut iova: u64, mut length: u64) {
        'window: loop {
            if !self.mapped_range(iova, length) && self.advance_to(iova).is_err() {
                return;
            }
            let last_page = self.window.npages() as u64 - 1;
            let bit0 = self.pgoff * 8;
            let mut cur_bit =
                (iova.wrapping_sub(self.mapped_iova) >> self.pgshift).wrapping_add(bit0);
            let last_bit = (iova
                .wrapping_add(length)
                .wrapping_sub(1)
                .wrapping_sub(self.mapped_iova)
                >> self.pgshift)
                .wrapping_add(bit0);
            loop {
                let page = cur_bit / BITS_PER_PAGE;
                let offset = cur_bit % BITS_PER_PAGE;
                let nbits =
                    (BITS_PER_PAGE - offset).min(last_bit.wrapping_sub(cur_bit).wrapping_add(1));
                if page > last_page {
                    // The rest lies past the window: move on with it.
                    let left = last_bit.wrapping_sub(cur_bit).wrapping_add(1) << self.pgshift;
                    iova = iova.wrapping_add(length.wrapping_sub(left));
                    length = left;
                    if self.mapped_range(iova, length) {
                        // Only a wrapped length (a zero-length record) gets
                        // here: C would come back to this very state
                        // forever. Stop instead.
                        return;
                    }
                    continue 'window;
                }
                if nbits == 0 {
                    // The same with one byte per bit: C spins; stop.
                    return;
                }
                self.window
                    .set_bits(page as usize, offset as u32, nbits as u32);
                cur_bit = cur_bit.wrapping_add(nbits);
                if cur_bit > last_bit {
                    return;
                }
            }
        }
    }
}
