// SPDX-License-Identifier: GPL-2.0

//! An index of the free IOVA holes of an IOAS, for an O(log n) allocator.
//!
//! The holes (the complement of areas and reserved ranges) are kept in an
//! AVL tree keyed by start, each node knowing the largest hole in its
//! subtree. A first-fit search then skips every subtree whose holes are all
//! too small, instead of walking every hole as C iommufd does, and still
//! returns exactly the hole C's walk would pick.
//!
//! The index is an accelerator: the interval trees stay the truth. Keeping
//! it up to date may need memory; when an allocation fails on a path that
//! must not fail (unmap), the owner drops the index and falls back to the
//! walk until it is rebuilt.

use kernel::prelude::*;

/// A free hole `[start, last]`.
struct Node {
    start: u64,
    last: u64,
    /// Largest `last - start` in this subtree.
    max_span: u64,
    height: u8,
    left: Link,
    right: Link,
}

type Link = Option<KBox<Node>>;

fn height(link: &Link) -> u8 {
    link.as_ref().map_or(0, |n| n.height)
}

fn max_span(link: &Link) -> u64 {
    link.as_ref().map_or(0, |n| n.max_span)
}

impl Node {
    fn update(&mut self) {
        self.height = 1 + height(&self.left).max(height(&self.right));
        let own = self.last - self.start;
        self.max_span = own.max(max_span(&self.left)).max(max_span(&self.right));
    }
}

/// Rotations and rebalancing of the AVL tree.
fn rotate_right(mut node: KBox<Node>) -> KBox<Node> {
    match node.left.take() {
        Some(mut l) => {
            node.left = l.right.take();
            node.update();
            l.right = Some(node);
            l.update();
            l
        }
        None => node,
    }
}

fn rotate_left(mut node: KBox<Node>) -> KBox<Node> {
    match node.right.take() {
        Some(mut r) => {
            node.right = r.left.take();
            node.update();
            r.left = Some(node);
            r.update();
            r
        }
        None => node,
    }
}

fn balance(mut node: KBox<Node>) -> KBox<Node> {
    node.update();
    let (hl, hr) = (height(&node.left), height(&node.right));
    if hl > hr + 1 {
        if let Some(l) = node.left.take() {
            let l = if height(&l.right) > height(&l.left) {
                rotate_left(l)
            } else {
                l
            };
            node.left = Some(l);
        }
        return rotate_right(node);
    }
    if hr > hl + 1 {
        if let Some(r) = node.right.take() {
            let r = if height(&r.left) > height(&r.right) {
                rotate_right(r)
            } else {
                r
            };
            node.right = Some(r);
        }
        return rotate_left(node);
    }
    node
}

fn insert(link: Link, new: KBox<Node>) -> KBox<Node> {
    match link {
        None => new,
        Some(mut node) => {
            if new.start < node.start {
                node.left = Some(insert(node.left.take(), new));
            } else {
                node.right = Some(insert(node.right.take(), new));
            }
            balance(node)
        }
    }
}

/// Removes the smallest node of a non-empty subtree: (rest, smallest).
fn remove_min(mut node: KBox<Node>) -> (Link, KBox<Node>) {
    match node.left.take() {
        None => (node.right.take(), node),
        Some(l) => {
            let (rest, min) = remove_min(l);
            node.left = rest;
            (Some(balance(node)), min)
        }
    }
}

/// Removes the node starting at `start`: (new subtree, removed node).
fn remove(link: Link, start: u64) -> (Link, Option<KBox<Node>>) {
    let Some(mut node) = link else {
        return (None, None);
    };
    if start < node.start {
        let (l, removed) = remove(node.left.take(), start);
        node.left = l;
        return (Some(balance(node)), removed);
    }
    if start > node.start {
        let (r, removed) = remove(node.right.take(), start);
        node.right = r;
        return (Some(balance(node)), removed);
    }
    let (left, right) = (node.left.take(), node.right.take());
    let rest = match right {
        None => left,
        Some(r) => {
            let (r_rest, mut min) = remove_min(r);
            min.left = left;
            min.right = r_rest;
            Some(balance(min))
        }
    };
    (rest, Some(node))
}

/// The hole containing `addr`, if any.
fn containing(mut link: &Link, addr: u64) -> Option<(u64, u64)> {
    while let Some(node) = link {
        if addr < node.start {
            link = &node.left;
        } else if addr > node.last {
            link = &node.right;
        } else {
            return Some((node.start, node.last));
        }
    }
    None
}

/// In-order search of holes meeting `[lo, hi]` with a span of at least
/// `span`, clipped to `[lo, hi]`, for the first one `fit` accepts.
fn first_fit(
    link: &Link,
    lo: u64,
    hi: u64,
    span: u64,
    fit: &mut impl FnMut(u64, u64) -> Option<u64>,
) -> Option<u64> {
    let node = link.as_ref()?;
    if node.max_span < span {
        return None;
    }
    // Holes to the left end before this one starts.
    if node.start > lo {
        if let Some(found) = first_fit(&node.left, lo, hi, span, fit) {
            return Some(found);
        }
    }
    if node.start > hi {
        return None;
    }
    let (s, l) = (node.start.max(lo), node.last.min(hi));
    if s <= l && l - s >= span {
        if let Some(found) = fit(s, l) {
            return Some(found);
        }
    }
    first_fit(&node.right, lo, hi, span, fit)
}

/// The free holes of an IOAS.
pub(crate) struct FreeSpace {
    root: Link,
}

/// A node allocated ahead, so that carving a hole cannot fail.
pub(crate) struct SpareNode(KBox<Node>);

impl SpareNode {
    /// Allocates a spare node.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(KBox::new(
            Node {
                start: 0,
                last: 0,
                max_span: 0,
                height: 1,
                left: None,
                right: None,
            },
            GFP_KERNEL,
        )?))
    }
}

impl FreeSpace {
    /// The whole 64-bit space free.
    pub(crate) fn new() -> Result<Self> {
        let mut s = Self { root: None };
        s.put(SpareNode::new()?.0, 0, u64::MAX);
        Ok(s)
    }

    fn put(&mut self, mut node: KBox<Node>, start: u64, last: u64) {
        *node = Node {
            start,
            last,
            max_span: last - start,
            height: 1,
            left: None,
            right: None,
        };
        self.root = Some(insert(self.root.take(), node));
    }

    fn take(&mut self, start: u64) -> Option<KBox<Node>> {
        let (root, removed) = remove(self.root.take(), start);
        self.root = root;
        removed
    }

    /// Marks `[start, last]` used. The range must lie inside one hole;
    /// `spare` covers a split into two holes.
    pub(crate) fn occupy(&mut self, start: u64, last: u64, spare: SpareNode) {
        let mut spare = Some(spare.0);
        self.carve(start, last, &mut spare);
    }

    /// Cuts `[start, last]`, inside the hole containing `start`, out of it,
    /// using `spare` if the hole splits in two.
    fn carve(&mut self, start: u64, last: u64, spare: &mut Option<KBox<Node>>) {
        let Some((hs, hl)) = containing(&self.root, start) else {
            return;
        };
        let mut node = self.take(hs);
        if hs < start {
            if let Some(n) = node.take().or_else(|| spare.take()) {
                self.put(n, hs, start - 1);
            }
        }
        if last < hl {
            if let Some(n) = node.take().or_else(|| spare.take()) {
                self.put(n, last + 1, hl);
            }
        }
    }

    /// Marks the parts of `[start, last]` that are free as used; the range
    /// may cover several holes (a reserved range overlapping others). Only
    /// the first hole can split in two, which `spare` covers; the others
    /// are cut at one end and keep their own node.
    pub(crate) fn occupy_any(&mut self, start: u64, last: u64, spare: SpareNode) {
        let mut spare = Some(spare.0);
        let mut at = start;
        while let Some(s) = first_fit(&self.root, at, last, 0, &mut |s, _| Some(s)) {
            let Some((_, hl)) = containing(&self.root, s) else {
                return;
            };
            let l = hl.min(last);
            self.carve(s, l, &mut spare);
            if l >= last {
                return;
            }
            at = l + 1;
        }
    }

    /// Marks `[start, last]` free again, merging with neighbouring holes.
    /// Fails only if a new node is needed and cannot be allocated.
    pub(crate) fn release(&mut self, start: u64, last: u64) -> Result {
        let mut new_start = start;
        let mut new_last = last;
        let mut reuse = None;
        if start > 0 {
            if let Some((ls, _)) = containing(&self.root, start - 1) {
                new_start = ls;
                reuse = self.take(ls);
            }
        }
        if last < u64::MAX {
            if let Some((_, rl)) = containing(&self.root, last + 1) {
                new_last = rl;
                let right = self.take(last + 1);
                reuse = reuse.or(right);
            }
        }
        let node = match reuse {
            Some(n) => n,
            None => SpareNode::new()?.0,
        };
        self.put(node, new_start, new_last);
        Ok(())
    }

    /// The lowest IOVA `fit` accepts among the holes meeting `[lo, hi]`
    /// that span at least `length` bytes, each clipped to `[lo, hi]`.
    pub(crate) fn first_fit(
        &self,
        lo: u64,
        hi: u64,
        length: u64,
        mut fit: impl FnMut(u64, u64) -> Option<u64>,
    ) -> Option<u64> {
        first_fit(&self.root, lo, hi, length.saturating_sub(1), &mut fit)
    }
}

impl Drop for FreeSpace {
    fn drop(&mut self) {
        // Unlink iteratively so that a deep tree cannot overflow the stack.
        let mut stack = KVec::new();
        if let Some(root) = self.root.take() {
            if stack.push(root, GFP_KERNEL).is_err() {
                return;
            }
        }
        while let Some(mut node) = stack.pop() {
            for child in [node.left.take(), node.right.take()].into_iter().flatten() {
                // On allocation failure the child is dropped recursively,
                // which the AVL height (at most ~90) keeps shallow.
                let _ = stack.push(child, GFP_KERNEL);
            }
        }
    }
}

#[kunit_tests(iommufd_rs_free_space)]
mod tests {
    use super::*;

    fn holes(f: &FreeSpace) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        let mut at = 0u64;
        loop {
            let Some(s) = f.first_fit(at, u64::MAX, 1, |s, _| Some(s)) else {
                return Ok(out);
            };
            let Some((hs, hl)) = containing(&f.root, s) else {
                return Ok(out);
            };
            out.push((hs, hl), GFP_KERNEL)?;
            if hl == u64::MAX {
                return Ok(out);
            }
            at = hl + 1;
        }
    }

    #[test]
    fn occupy_and_release_merge() -> Result {
        let mut f = FreeSpace::new()?;
        f.occupy(0x1000, 0x1fff, SpareNode::new()?);
        f.occupy(0x3000, 0x3fff, SpareNode::new()?);
        assert_eq!(
            &holes(&f)?[..],
            &[(0, 0xfff), (0x2000, 0x2fff), (0x4000, u64::MAX)]
        );
        f.release(0x1000, 0x1fff)?;
        assert_eq!(&holes(&f)?[..], &[(0, 0x2fff), (0x4000, u64::MAX)]);
        f.release(0x3000, 0x3fff)?;
        assert_eq!(&holes(&f)?[..], &[(0, u64::MAX)]);
        Ok(())
    }

    #[test]
    fn occupy_any_twice_then_fit() -> Result {
        let mut f = FreeSpace::new()?;
        f.occupy_any(0x1000, 0x2fff, SpareNode::new()?);
        assert_eq!(&holes(&f)?[..], &[(0, 0xfff), (0x3000, u64::MAX)]);
        f.occupy_any(0x4000, 0x4fff, SpareNode::new()?);
        assert_eq!(
            &holes(&f)?[..],
            &[(0, 0xfff), (0x3000, 0x3fff), (0x5000, u64::MAX)]
        );
        assert_eq!(
            f.first_fit(0x1000, u64::MAX - 0x1000, 0x1000, |s, _| Some(s)),
            Some(0x3000)
        );
        Ok(())
    }

    #[test]
    fn occupy_any_spans_holes() -> Result {
        let mut f = FreeSpace::new()?;
        f.occupy(0x2000, 0x2fff, SpareNode::new()?);
        f.occupy(0x4000, 0x4fff, SpareNode::new()?);
        f.occupy_any(0x1800, 0x5fff, SpareNode::new()?);
        assert_eq!(&holes(&f)?[..], &[(0, 0x17ff), (0x6000, u64::MAX)]);
        Ok(())
    }

    #[test]
    fn first_fit_skips_small_holes() -> Result {
        let mut f = FreeSpace::new()?;
        // Many one-page holes, then room for four pages.
        for i in 0..1000u64 {
            f.occupy(
                0x10000 + i * 0x2000,
                0x10fff + i * 0x2000,
                SpareNode::new()?,
            );
        }
        f.occupy(0, 0xffff, SpareNode::new()?);
        let end = 0x10000 + 1000 * 0x2000;
        f.occupy(end + 0x4000, u64::MAX, SpareNode::new()?);
        assert_eq!(
            f.first_fit(0, u64::MAX, 0x1000, |s, _| Some(s)),
            Some(0x11000)
        );
        assert_eq!(
            f.first_fit(0, u64::MAX, 0x4000, |s, _| Some(s)),
            Some(end - 0x1000)
        );
        assert_eq!(f.first_fit(0, u64::MAX, 0x5001, |s, _| Some(s)), None);
        Ok(())
    }
}
