// SPDX-License-Identifier: GPL-2.0

//! A sparse table of `u64` values indexed by page number: the PFN records
//! of a pages object and the mock domain's IO page table.
//!
//! Two levels of 512-entry nodes under a growable top vector: a leaf holds
//! 512 values (one 4 KiB allocation), a middle node points at 512 leaves,
//! and the top vector holds one middle node per 2^18 indexes. Zero means
//! "no value"; a leaf is freed when its last value goes and a middle node
//! when its last leaf goes, except one spare of each, kept so that a table
//! that fills and empties one page over and over does not allocate each
//! time. Range operations find each leaf once, so the cost per value is a
//! few instructions, unlike one XArray walk per value.
//!
//! A table made for at most 512 indexes ([`PageTable::with_limit`], a pages
//! object of up to 2 MiB) is one vector of exactly that many values, so a
//! 4 KiB map records its PFN in 8 bytes.
//!
//! The table has no lock of its own: it lives inside its owner's lock.

use crate::sys::{DBox, DVec};
use kernel::prelude::*;

/// log2 of the entries per node.
const SHIFT: u32 = 9;
/// Entries per node.
const FANOUT: usize = 1 << SHIFT;
/// Mask of an index within a node.
const MASK: u64 = FANOUT as u64 - 1;

/// 512 values; a leaf of the table.
type Leaf = [u64; FANOUT];

/// A leaf with nothing in it, read in place of an absent one.
static EMPTY_LEAF: Leaf = [0; FANOUT];

/// A middle node: 512 leaves and the count of values in each.
#[derive(Zeroable)]
struct Middle {
    /// The leaves, `None` where all 512 values are zero.
    leaves: [Option<DBox<Leaf>>; FANOUT],
    /// Nonzero values in each leaf.
    used: [u16; FANOUT],
    /// Leaves present.
    nleaves: u16,
}

/// A sparse map from `u64` index to nonzero `u64` value.
///
/// # Invariants
///
/// `Middle::used[i]` is the number of nonzero values in `leaves[i]`, which
/// is `Some` exactly when that number is nonzero, outside a call in
/// progress; `nleaves` counts the `Some` leaves; a middle node with no
/// leaves is `None`. The spares are all zeros (`used` too).
pub(crate) struct PageTable {
    top: DVec<Option<DBox<Middle>>>,
    spare_leaf: Option<DBox<Leaf>>,
    spare_middle: Option<DBox<Middle>>,
    /// Small tables: the values of indexes `0..limit`; `top` is then
    /// unused.
    small: Option<SmallTable>,
}

/// The values of a table of at most 512 indexes.
///
/// # Invariants
///
/// `values` is empty or `limit` long; `used` counts its nonzero values,
/// and it is empty when that is 0.
struct SmallTable {
    values: DVec<u64>,
    limit: u32,
    used: u32,
}

/// Where index `idx` lives: (top slot, leaf slot, entry).
fn split(idx: u64) -> (usize, usize, usize) {
    (
        (idx >> (2 * SHIFT)) as usize,
        ((idx >> SHIFT) & MASK) as usize,
        (idx & MASK) as usize,
    )
}

/// The pieces of `[first, last]` that fall in one leaf each:
/// `(first index, entries)`.
fn leaf_pieces(first: u64, last: u64) -> impl Iterator<Item = (u64, usize)> {
    let mut at = Some(first);
    core::iter::from_fn(move || {
        let start = at.filter(|&a| a <= last)?;
        let leaf_last = start | MASK;
        let end = leaf_last.min(last);
        at = end.checked_add(1);
        Some((start, (end - start + 1) as usize))
    })
}

impl PageTable {
    /// An empty table; allocates nothing.
    pub(crate) const fn new() -> Self {
        Self {
            top: DVec::new(),
            spare_leaf: None,
            spare_middle: None,
            small: None,
        }
    }

    /// An empty table for indexes below `limit` only.
    pub(crate) fn with_limit(limit: u64) -> Self {
        Self {
            small: (limit <= FANOUT as u64).then(|| SmallTable {
                values: DVec::new(),
                limit: limit as u32,
                used: 0,
            }),
            ..Self::new()
        }
    }

    /// Whether no value is set.
    pub(crate) fn is_empty(&self) -> bool {
        match &self.small {
            Some(small) => small.used == 0,
            None => self.top.is_empty(),
        }
    }

    /// The leaf holding `idx`, if present.
    fn leaf(&self, idx: u64) -> Option<&[u64]> {
        if let Some(small) = &self.small {
            return (idx < FANOUT as u64 && !small.values.is_empty()).then_some(&small.values[..]);
        }
        let (t, l, _) = split(idx);
        self.top.get(t)?.as_ref()?.leaves[l]
            .as_deref()
            .map(|leaf| &leaf[..])
    }

    /// The value at `idx`; 0 if none.
    pub(crate) fn get(&self, idx: u64) -> u64 {
        let (_, _, e) = split(idx);
        self.leaf(idx)
            .and_then(|leaf| leaf.get(e))
            .copied()
            .unwrap_or(0)
    }

    /// Calls `f(index, values)` for `[first, last]`, one call per leaf
    /// piece in order; absent leaves read as zeros. Stops at an error.
    pub(crate) fn read(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, &[u64]) -> Result,
    ) -> Result {
        for (start, n) in leaf_pieces(first, last) {
            let e = (start & MASK) as usize;
            let leaf = self.leaf(start).unwrap_or(&EMPTY_LEAF);
            f(start, leaf.get(e..e + n).ok_or(EINVAL)?)?;
        }
        Ok(())
    }

    /// Counts the zero values from `first` on, up to `last` and at most
    /// `max`.
    pub(crate) fn zeros_from(&self, first: u64, last: u64, max: u64) -> u64 {
        let mut n = 0u64;
        let _ = self.read(first, last, |start, values| {
            if self.leaf(start).is_none() {
                // An absent leaf: all zeros.
                n += values.len() as u64;
                return if n >= max { Err(EEXIST) } else { Ok(()) };
            }
            let zeros = values.iter().take_while(|&&v| v == 0).count() as u64;
            n += zeros;
            if zeros < values.len() as u64 || n >= max {
                return Err(EEXIST);
            }
            Ok(())
        });
        n.min(max)
    }

    /// Calls `f(index, value)` on each value of `[first, last]`, present
    /// leaves only (zeros elsewhere are skipped), and lets it change them
    /// or make them zero, but not make a zero nonzero; leaves left empty
    /// are freed. Never allocates.
    pub(crate) fn modify(&mut self, first: u64, last: u64, mut f: impl FnMut(u64, &mut u64)) {
        if let Some(small) = &mut self.small {
            small.modify(first, last, f);
            return;
        }
        let mut at = first;
        while at <= last {
            let (t, l, e) = split(at);
            let Some(slot) = self.top.get_mut(t) else {
                break;
            };
            let Some(mid) = slot else {
                // Skip to the next middle node.
                at = ((t as u64) + 1) << (2 * SHIFT);
                continue;
            };
            let end = (at | MASK).min(last);
            if let Some(leaf) = mid.leaves[l].as_deref_mut() {
                let mut cleared = 0u16;
                for (i, v) in leaf[e..=e + (end - at) as usize].iter_mut().enumerate() {
                    if *v != 0 {
                        f(at + i as u64, v);
                        cleared += u16::from(*v == 0);
                    }
                }
                mid.used[l] -= cleared;
                if mid.used[l] == 0 {
                    if let Some(leaf) = mid.leaves[l].take() {
                        self.spare_leaf.get_or_insert(leaf);
                    }
                    mid.nleaves -= 1;
                    if mid.nleaves == 0 {
                        if let Some(mid) = slot.take() {
                            self.spare_middle.get_or_insert(mid);
                        }
                    }
                }
            }
            match end.checked_add(1) {
                Some(next) => at = next,
                None => break,
            }
        }
        // Trailing empty top slots are not kept.
        while matches!(self.top.last(), Some(None)) {
            self.top.pop();
        }
    }

    /// Lets `f` change the value at `idx` in place, if it is nonzero, and
    /// returns the value it had (0 if none). A change to zero is undone:
    /// `f` may only change which bits of a nonzero value are set.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) fn update(&mut self, idx: u64, f: impl FnOnce(&mut u64)) -> u64 {
        let slot = match &mut self.small {
            Some(small) => small.values.get_mut(idx as usize),
            None => {
                let (t, l, e) = split(idx);
                self.top
                    .get_mut(t)
                    .and_then(|m| m.as_mut())
                    .and_then(|m| m.leaves[l].as_deref_mut())
                    .map(|leaf| &mut leaf[e])
            }
        };
        let Some(v) = slot else {
            return 0;
        };
        let old = *v;
        if old != 0 {
            f(v);
            if *v == 0 {
                *v = old;
            }
        }
        old
    }

    /// Like [`PageTable::modify`] from `first`, but stops before the
    /// first value for which `f` returns false, or at the first absent
    /// leaf. Returns the index it stopped at (`last + 1` if it did not).
    /// `f` must not change whether a value is zero.
    pub(crate) fn modify_while(
        &mut self,
        first: u64,
        last: u64,
        mut f: impl FnMut(&mut u64) -> bool,
    ) -> u64 {
        self.modify_stride(first, last, |v| u64::from(f(v)))
    }

    /// Like [`PageTable::modify_while`] from `first`, but `f` answers how
    /// many values to move on by, so that values it has no use for are
    /// skipped unread: 0 stops before the value. Returns the index it
    /// stopped at (past `last` if it did not). `f` must not change whether
    /// a value is zero.
    pub(crate) fn modify_stride(
        &mut self,
        first: u64,
        last: u64,
        mut f: impl FnMut(&mut u64) -> u64,
    ) -> u64 {
        let mut at = first;
        if let Some(small) = &mut self.small {
            while at <= last {
                let Some(v) = small.values.get_mut(at as usize) else {
                    break;
                };
                match f(v) {
                    0 => break,
                    step => at = at.saturating_add(step),
                }
            }
            return at;
        }
        while at <= last {
            let (t, l, e) = split(at);
            let Some(leaf) = self
                .top
                .get_mut(t)
                .and_then(|m| m.as_mut())
                .and_then(|m| m.leaves[l].as_deref_mut())
            else {
                return at;
            };
            let end = (e as u64 + (last - at)).min(MASK) as usize;
            let mut i = e;
            while i <= end {
                match f(&mut leaf[i]) {
                    0 => return at + (i - e) as u64,
                    step => i = i.saturating_add(step as usize),
                }
            }
            at = at.saturating_add((i - e) as u64);
        }
        at
    }

    /// Sets each value of `[first, last]` to `value(index)`, which must
    /// be nonzero. All or nothing: `EEXIST` if a value there is already
    /// set, `ENOMEM` if a node cannot be allocated, and then nothing
    /// changes.
    pub(crate) fn fill(
        &mut self,
        first: u64,
        last: u64,
        mut value: impl FnMut(u64) -> u64,
    ) -> Result {
        if let Some(small) = &mut self.small {
            return small.fill(first, last, value);
        }
        let mut result = self.make_leaves(first, last);
        let mut written_to = None;
        if result.is_ok() {
            'pieces: for (start, n) in leaf_pieces(first, last) {
                let (t, l, e) = split(start);
                // Present: made above.
                let Some(Some(mid)) = self.top.get_mut(t) else {
                    continue;
                };
                let Some(leaf) = mid.leaves[l].as_deref_mut() else {
                    continue;
                };
                for (i, v) in leaf[e..e + n].iter_mut().enumerate() {
                    let idx = start + i as u64;
                    if *v != 0 {
                        mid.used[l] += i as u16;
                        result = Err(EEXIST);
                        written_to = idx.checked_sub(1).filter(|&w| w >= first);
                        break 'pieces;
                    }
                    *v = value(idx);
                }
                mid.used[l] += n as u16;
            }
        }
        if result.is_err() {
            if let Some(w) = written_to {
                self.modify(first, w, |_, v| *v = 0);
            }
            self.prune(first, last);
        }
        result
    }

    /// Allocates every node `[first, last]` needs, from the spares first.
    fn make_leaves(&mut self, first: u64, last: u64) -> Result {
        for (start, _) in leaf_pieces(first, last) {
            let (t, l, _) = split(start);
            while self.top.len() <= t {
                self.top.push(None, GFP_KERNEL)?;
            }
            let mid = match &mut self.top[t] {
                Some(mid) => mid,
                slot => slot.insert(match self.spare_middle.take() {
                    Some(mid) => mid,
                    None => DBox::init(pin_init::init_zeroed(), GFP_KERNEL)?,
                }),
            };
            if mid.leaves[l].is_none() {
                mid.leaves[l] = Some(match self.spare_leaf.take() {
                    Some(leaf) => leaf,
                    None => DBox::init(pin_init::init_zeroed(), GFP_KERNEL)?,
                });
                mid.nleaves += 1;
            }
        }
        Ok(())
    }

    /// Frees the empty nodes over `[first, last]`.
    fn prune(&mut self, first: u64, last: u64) {
        self.modify(first, last, |_, _| {});
    }
}

impl SmallTable {
    /// [`PageTable::modify`] for a small table.
    fn modify(&mut self, first: u64, last: u64, mut f: impl FnMut(u64, &mut u64)) {
        let end = last.saturating_add(1).min(self.values.len() as u64) as usize;
        let start = (first as usize).min(end);
        for (i, v) in self.values[start..end].iter_mut().enumerate() {
            if *v != 0 {
                f((start + i) as u64, v);
                self.used -= u32::from(*v == 0);
            }
        }
        if self.used == 0 {
            self.values = DVec::new();
        }
    }

    /// [`PageTable::fill`] for a small table; `EINVAL` past its limit.
    fn fill(&mut self, first: u64, last: u64, mut value: impl FnMut(u64) -> u64) -> Result {
        if last >= u64::from(self.limit) || first > last {
            return Err(EINVAL);
        }
        if self.values.is_empty() {
            self.values.resize(self.limit as usize, 0, GFP_KERNEL)?;
        }
        let (first, last) = (first as usize, last as usize);
        if self.values[first..=last].iter().any(|&v| v != 0) {
            return Err(EEXIST);
        }
        for (i, v) in self.values[first..=last].iter_mut().enumerate() {
            *v = value((first + i) as u64);
        }
        self.used += (last - first + 1) as u32;
        Ok(())
    }
}

#[kunit_tests(iommufd_rs_page_table)]
mod tests {
    use super::*;

    #[test]
    fn fill_read_modify() -> Result {
        let mut t = PageTable::new();
        // Across a leaf and a middle-node boundary.
        let (first, last) = ((1 << 18) - 3, (1 << 18) + 600);
        t.fill(first, last, |i| i + 1)?;
        assert_eq!(t.get(first), first + 1);
        assert_eq!(t.get(last), last + 1);
        assert_eq!(t.get(first - 1), 0);
        assert_eq!(t.zeros_from(0, first, u64::MAX), first);
        let mut sum = 0u64;
        t.read(first - 10, last + 10, |_, v| {
            sum += v.iter().sum::<u64>();
            Ok(())
        })?;
        let n = last - first + 1;
        assert_eq!(sum, n * (first + 1) + n * (n - 1) / 2);
        // Incrementing stops at the first zero.
        let grow = |v: &mut u64| {
            let more = *v != 0;
            if more {
                *v += 1;
            }
            more
        };
        assert_eq!(t.modify_while(first, last + 5, grow), last + 1);
        assert_eq!(t.get(last), last + 2);
        // It also stops at an absent leaf.
        assert_eq!(t.modify_while(1 << 20, 1 << 21, grow), 1 << 20);
        // Clearing everything frees every node.
        t.modify(0, u64::MAX, |_, v| *v = 0);
        assert!(t.top.is_empty());
        Ok(())
    }

    #[test]
    fn update_changes_bits_in_place() -> Result {
        let mut t = PageTable::new();
        t.fill(1 << 18, (1 << 18) + 1, |_| 6)?;
        assert_eq!(t.update(1 << 18, |v| *v |= 1), 6);
        assert_eq!(t.get(1 << 18), 7);
        // A change to zero is undone; an absent value is left alone.
        assert_eq!(t.update((1 << 18) + 1, |v| *v = 0), 6);
        assert_eq!(t.get((1 << 18) + 1), 6);
        assert_eq!(t.update(5, |v| *v = 1), 0);
        assert_eq!(t.get(5), 0);
        let mut small = PageTable::with_limit(4);
        small.fill(2, 2, |_| 8)?;
        assert_eq!(small.update(2, |v| *v &= !8), 8);
        assert_eq!((small.get(2), small.update(9, |v| *v = 1)), (8, 0));
        Ok(())
    }

    #[test]
    fn small_table() -> Result {
        let mut t = PageTable::with_limit(3);
        assert_eq!(t.get(1), 0);
        t.fill(1, 2, |i| i * 10)?;
        assert_eq!((t.get(0), t.get(1), t.get(2), t.get(600)), (0, 10, 20, 0));
        assert_eq!(t.fill(0, 1, |_| 5), Err(EEXIST));
        assert_eq!(t.fill(2, 3, |_| 5), Err(EINVAL));
        assert_eq!(t.zeros_from(0, 2, 9), 1);
        assert_eq!(t.modify_while(1, 2, |v| *v != 0), 3);
        t.modify(0, 1, |_, v| *v = 0);
        assert_eq!(t.get(2), 20);
        t.modify(0, u64::MAX, |_, v| *v = 0);
        assert!(t.small.as_ref().is_some_and(|s| s.values.is_empty()));
        Ok(())
    }

    #[test]
    fn stride_visits_and_stops() -> Result {
        let mut t = PageTable::new();
        // Values 1..=1400 across three leaves; visit every third.
        t.fill(1, 1400, |i| i)?;
        let mut seen = KVec::new();
        let mut visit = |v: &mut u64| {
            let _ = seen.push(*v, GFP_KERNEL);
            3
        };
        assert_eq!(t.modify_stride(1, 1400, &mut visit), 1402);
        assert_eq!(seen.len(), 467);
        assert_eq!((seen[170], seen[171], seen[466]), (511, 514, 1399));
        // A step past the last index, a stop, an absent leaf.
        assert_eq!(t.modify_stride(1398, 1399, |_| 1000), 2398);
        assert_eq!(
            t.modify_stride(5, 1400, |v| if *v == 700 { 0 } else { 5 }),
            700
        );
        assert_eq!(t.modify_stride(1 << 20, 1 << 21, |_| 1), 1 << 20);
        let mut small = PageTable::with_limit(8);
        small.fill(1, 6, |i| i)?;
        assert_eq!(small.modify_stride(1, 7, |_| 2), 9);
        assert_eq!(small.modify_stride(2, 7, |v| u64::from(*v < 4) * 2), 4);
        Ok(())
    }

    #[test]
    fn partial_clear_keeps_the_rest() -> Result {
        let mut t = PageTable::new();
        t.fill(100, 2000, |_| 7)?;
        t.modify(600, 1200, |_, v| *v = 0);
        assert_eq!(t.get(599), 7);
        assert_eq!(t.get(600), 0);
        assert_eq!(t.get(1201), 7);
        // The leaf for 512..1023 still holds 512..599.
        assert!(t.leaf(700).is_some());
        assert_eq!(t.zeros_from(600, 2000, u64::MAX), 601);
        assert_eq!(t.zeros_from(600, 2000, 10), 10);
        // A fill over a set value changes nothing.
        assert_eq!(t.fill(1000, 1300, |_| 9), Err(EEXIST));
        assert_eq!(t.get(1000), 0);
        assert_eq!(t.get(1201), 7);
        assert_eq!(t.zeros_from(600, 2000, u64::MAX), 601);
        t.modify(0, 4000, |_, v| *v = 0);
        assert!(t.top.is_empty());
        Ok(())
    }
}
