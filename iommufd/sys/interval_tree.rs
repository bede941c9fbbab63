// SPDX-License-Identifier: GPL-2.0

//! Safe bindings to the kernel's interval tree (`lib/interval_tree.c`).
//!
//! An [`IntervalTree<T>`] owns nodes, each an inclusive range
//! `[start, last]` of `u64` with a value `T`. Ranges may overlap. Lookups
//! find every node that overlaps a query range, in order of `start`; the
//! span iterator walks a range as alternating used and hole spans. This is
//! the only file that calls the C interval tree or touches its structs.

use crate::sys::DBox;
use core::{
    marker::PhantomData,
    mem::{offset_of, size_of},
    ptr::NonNull,
};
use kernel::{bindings, prelude::*, types::Opaque};

/// The C tree's index type is `unsigned long`; this module needs 64 bits.
const _: () = assert!(size_of::<usize>() == size_of::<u64>());

/// A `u64` index as the C tree's `unsigned long`.
fn to_c(v: u64) -> usize {
    v as usize
}

/// The C tree's `unsigned long` as a `u64` index.
fn from_c(v: usize) -> u64 {
    v as u64
}

/// A node: the C tree node and the value it carries.
#[pin_data]
struct Node<T> {
    #[pin]
    itree: Opaque<bindings::interval_tree_node>,
    value: T,
}

/// A node allocated ahead of insertion, so that inserting cannot fail.
pub(crate) struct NewNode<T> {
    node: Pin<DBox<Node<T>>>,
}

impl<T> NewNode<T> {
    /// Allocates a node for `[start, last]` holding `value`.
    pub(crate) fn new(
        start: u64,
        last: u64,
        value: T,
        flags: kernel::alloc::Flags,
    ) -> Result<Self> {
        let itree = bindings::interval_tree_node {
            start: to_c(start),
            last: to_c(last),
            ..Default::default()
        };
        let node = DBox::pin_init(
            pin_init!(Node {
                itree: Opaque::new(itree),
                value
            }),
            flags,
        )?;
        Ok(Self { node })
    }

    /// The node's range.
    pub(crate) fn range(&self) -> (u64, u64) {
        // SAFETY: The node is owned here and not in any tree; reading its
        // C fields races with nothing.
        let raw = unsafe { &*self.node.itree.get() };
        (from_c(raw.start), from_c(raw.last))
    }

    /// Moves the node to `[start, last]` before it is inserted.
    pub(crate) fn set_range(&mut self, start: u64, last: u64) {
        let raw = self.node.itree.get();
        // SAFETY: The node is owned here and not in any tree, so nothing
        // else reads or writes its C fields.
        unsafe {
            (*raw).start = to_c(start);
            (*raw).last = to_c(last);
        }
    }

    /// The node's value.
    pub(crate) fn value(&self) -> &T {
        &self.node.value
    }
}

/// An interval tree owning its nodes.
///
/// # Invariants
///
/// - `root` is a valid `rb_root_cached` whose nodes are exactly the
///   `interval_tree_node`s embedded in `Node<T>`s leaked from `DBox`es by
///   [`IntervalTree::insert`]; each is freed once, by `remove` or `Drop`.
/// - The C tree keeps no pointer to `root` itself, only node-to-node links,
///   so the tree may move; the nodes are heap-allocated and pinned.
pub(crate) struct IntervalTree<T> {
    root: bindings::rb_root_cached,
    _owns: PhantomData<DBox<Node<T>>>,
}

// SAFETY: The tree owns its values; sending the tree sends them.
unsafe impl<T: Send> Send for IntervalTree<T> {}
// SAFETY: Shared access only reads the tree and hands out `&T`.
unsafe impl<T: Sync> Sync for IntervalTree<T> {}

/// A span of a range, from [`IntervalTree::spans`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// First index of the span.
    pub(crate) start: u64,
    /// Last index of the span (inclusive).
    pub(crate) last: u64,
    /// Whether no node covers the span.
    pub(crate) is_hole: bool,
}

impl<T> IntervalTree<T> {
    /// An empty tree.
    pub(crate) const fn new() -> Self {
        Self {
            root: bindings::rb_root_cached {
                rb_root: bindings::rb_root {
                    rb_node: core::ptr::null_mut(),
                },
                rb_leftmost: core::ptr::null_mut(),
            },
            _owns: PhantomData,
        }
    }

    /// Whether the tree has no node.
    pub(crate) fn is_empty(&self) -> bool {
        self.root.rb_root.rb_node.is_null()
    }

    /// Number of nodes, counted.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn len(&self) -> usize {
        self.iter(0, u64::MAX).count()
    }

    fn root_ptr(&self) -> *mut bindings::rb_root_cached {
        (&raw const self.root).cast_mut()
    }

    /// The `Node` that embeds the C node `itree`.
    ///
    /// # Safety
    ///
    /// `itree` must be a node of this tree.
    unsafe fn node_of(itree: *mut bindings::interval_tree_node) -> *mut Node<T> {
        // SAFETY: Per the caller, `itree` is embedded in a live `Node<T>`;
        // `Opaque` is `repr(transparent)`.
        unsafe { itree.byte_sub(offset_of!(Node<T>, itree)).cast::<Node<T>>() }
    }

    /// Inserts a node. Cannot fail: the node was allocated beforehand.
    pub(crate) fn insert(&mut self, node: NewNode<T>) {
        // SAFETY: The node is pinned on the heap; leaking the box hands its
        // ownership to the tree, as the type invariants require.
        let raw = DBox::into_raw(unsafe { Pin::into_inner_unchecked(node.node) });
        // SAFETY: `raw` is valid and its C node was initialised with its
        // range; `root` is a valid tree per the type invariants.
        unsafe {
            bindings::interval_tree_insert(
                Opaque::cast_into(&raw const (*raw).itree),
                self.root_ptr(),
            )
        };
    }

    /// The first node overlapping `[start, last]`, as a raw C node.
    fn first_raw(&self, start: u64, last: u64) -> *mut bindings::interval_tree_node {
        // SAFETY: `root` is a valid tree; the search does not modify it.
        unsafe { bindings::interval_tree_iter_first(self.root_ptr(), to_c(start), to_c(last)) }
    }

    /// Iterates over the nodes overlapping `[start, last]`, by `start`.
    pub(crate) fn iter(&self, start: u64, last: u64) -> Iter<'_, T> {
        Iter {
            next: NonNull::new(self.first_raw(start, last)),
            start,
            last,
            _tree: PhantomData,
        }
    }

    /// The first node overlapping `[start, last]`.
    pub(crate) fn first(&self, start: u64, last: u64) -> Option<Entry<'_, T>> {
        self.iter(start, last).next()
    }

    /// Finds the first node overlapping `[start, last]` and removes it if
    /// `take` says so, with one search. Returns its range and, if removed,
    /// its value; `None` if no node overlaps.
    pub(crate) fn take_first_if(
        &mut self,
        start: u64,
        last: u64,
        take: impl FnOnce(u64, u64, &T) -> bool,
    ) -> Option<(u64, u64, Option<T>)> {
        let raw = NonNull::new(self.first_raw(start, last))?;
        // SAFETY: `raw` is a node of this tree; if removed, the tree no
        // longer points to it and the box leaked by `insert` is rebuilt
        // and consumed once.
        unsafe {
            let (s, l) = (from_c((*raw.as_ptr()).start), from_c((*raw.as_ptr()).last));
            if !take(s, l, &(*Self::node_of(raw.as_ptr())).value) {
                return Some((s, l, None));
            }
            bindings::interval_tree_remove(raw.as_ptr(), self.root_ptr());
            let node = DBox::from_raw(Self::node_of(raw.as_ptr()));
            Some((s, l, Some(DBox::into_inner(node).value)))
        }
    }

    /// Removes the nodes overlapping `[start, last]` for which `remove`
    /// returns true, in order, passing each removed value to `done`.
    pub(crate) fn remove_if(
        &mut self,
        start: u64,
        last: u64,
        mut remove: impl FnMut(u64, u64, &T) -> bool,
        mut done: impl FnMut(u64, u64, T),
    ) {
        let mut cur = self.first_raw(start, last);
        while let Some(raw) = NonNull::new(cur) {
            // SAFETY: `raw` is a node of this tree. The next node is found
            // before `raw` is removed, and removing one node does not free
            // or move the others.
            unsafe {
                cur = bindings::interval_tree_iter_next(raw.as_ptr(), to_c(start), to_c(last));
                let (s, l) = (from_c((*raw.as_ptr()).start), from_c((*raw.as_ptr()).last));
                if remove(s, l, &(*Self::node_of(raw.as_ptr())).value) {
                    bindings::interval_tree_remove(raw.as_ptr(), self.root_ptr());
                    let node = DBox::from_raw(Self::node_of(raw.as_ptr()));
                    done(s, l, DBox::into_inner(node).value);
                }
            }
        }
    }

    /// Calls `f(start, last, value)` on each node overlapping `[start,
    /// last]`, by `start`, and lets it change the value (not the range).
    pub(crate) fn for_each_mut(
        &mut self,
        start: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, &mut T),
    ) {
        let mut cur = self.first_raw(start, last);
        while let Some(raw) = NonNull::new(cur) {
            // SAFETY: `raw` is a node of this tree, borrowed mutably, so no
            // one else sees its value; the value is not part of the tree's
            // links or order, and the C fields are only read.
            unsafe {
                let (s, l) = (from_c((*raw.as_ptr()).start), from_c((*raw.as_ptr()).last));
                f(s, l, &mut (*Self::node_of(raw.as_ptr())).value);
                cur = bindings::interval_tree_iter_next(raw.as_ptr(), to_c(start), to_c(last));
            }
        }
    }

    /// Walks `[first, last]` as alternating used and hole spans.
    pub(crate) fn spans(&self, first: u64, last: u64) -> Spans<'_, T> {
        let mut state: bindings::interval_tree_span_iter = pin_init::zeroed();
        // SAFETY: `state` is writable and `root` is a valid tree, which the
        // iterator only reads.
        unsafe {
            bindings::interval_tree_span_iter_first(
                &mut state,
                self.root_ptr(),
                to_c(first),
                to_c(last),
            )
        };
        Spans {
            state,
            _tree: PhantomData,
        }
    }
}

impl<T> Drop for IntervalTree<T> {
    fn drop(&mut self) {
        if self.is_empty() {
            return;
        }
        self.remove_if(0, u64::MAX, |_, _, _| true, |_, _, value| drop(value));
    }
}

/// A node seen through a shared borrow of its tree.
pub(crate) struct Entry<'a, T> {
    /// First index of the node's range.
    pub(crate) start: u64,
    /// Last index of the node's range (inclusive).
    pub(crate) last: u64,
    /// The node's value.
    pub(crate) value: &'a T,
}

/// Iterator over the nodes overlapping a range.
pub(crate) struct Iter<'a, T> {
    next: Option<NonNull<bindings::interval_tree_node>>,
    start: u64,
    last: u64,
    _tree: PhantomData<&'a IntervalTree<T>>,
}

impl<'a, T: 'a> Iterator for Iter<'a, T> {
    type Item = Entry<'a, T>;

    fn next(&mut self) -> Option<Entry<'a, T>> {
        let raw = self.next?;
        // SAFETY: `raw` is a node of the tree, which is borrowed for `'a`,
        // so the node and its value live and do not change for `'a`.
        unsafe {
            self.next = NonNull::new(bindings::interval_tree_iter_next(
                raw.as_ptr(),
                to_c(self.start),
                to_c(self.last),
            ));
            let node = &*IntervalTree::<T>::node_of(raw.as_ptr());
            Some(Entry {
                start: from_c((*raw.as_ptr()).start),
                last: from_c((*raw.as_ptr()).last),
                value: &node.value,
            })
        }
    }
}

/// Iterator over the used and hole spans of a range.
pub(crate) struct Spans<'a, T> {
    state: bindings::interval_tree_span_iter,
    _tree: PhantomData<&'a IntervalTree<T>>,
}

impl<T> Iterator for Spans<'_, T> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        // -1 marks the end (`interval_tree_span_iter_done()` in C).
        if self.state.is_hole == -1 {
            return None;
        }
        // SAFETY: The unions hold the hole bounds when `is_hole` is set and
        // the used bounds otherwise; both are plain integers.
        let span = unsafe {
            if self.state.is_hole != 0 {
                Span {
                    start: from_c(self.state.__bindgen_anon_1.start_hole),
                    last: from_c(self.state.__bindgen_anon_2.last_hole),
                    is_hole: true,
                }
            } else {
                Span {
                    start: from_c(self.state.__bindgen_anon_1.start_used),
                    last: from_c(self.state.__bindgen_anon_2.last_used),
                    is_hole: false,
                }
            }
        };
        // SAFETY: `state` was set up by `interval_tree_span_iter_first` on a
        // tree that stays borrowed, unchanged, for the iterator's life.
        unsafe { bindings::interval_tree_span_iter_next(&mut self.state) };
        Some(span)
    }
}

#[kunit_tests(iommufd_rs_interval_tree)]
mod tests {
    use super::*;

    fn tree(ranges: &[(u64, u64)]) -> Result<IntervalTree<usize>> {
        let mut t = IntervalTree::new();
        for (i, &(s, l)) in ranges.iter().enumerate() {
            t.insert(NewNode::new(s, l, i, GFP_KERNEL)?);
        }
        Ok(t)
    }

    fn found(t: &IntervalTree<usize>, s: u64, l: u64) -> Result<KVec<usize>> {
        let mut v = KVec::new();
        for e in t.iter(s, l) {
            v.push(*e.value, GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn overlap_queries() -> Result {
        let t = tree(&[(10, 19), (30, 39), (15, 34), (100, 100), (0, u64::MAX)])?;
        assert_eq!(t.len(), 5);
        // In order of start: (0,MAX) then (10,19), (15,34), (30,39), (100,100).
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[4, 0, 2, 1, 3]);
        assert_eq!(&found(&t, 20, 29)?[..], &[4, 2]);
        assert_eq!(&found(&t, 19, 19)?[..], &[4, 0, 2]);
        assert_eq!(&found(&t, 40, 99)?[..], &[4]);
        assert_eq!(&found(&t, 100, u64::MAX)?[..], &[4, 3]);
        let first = t.first(31, 31).map(|e| (e.start, e.last));
        assert_eq!(first, Some((0, u64::MAX)));
        Ok(())
    }

    #[test]
    fn spans_over_holes() -> Result {
        let t = tree(&[(10, 19), (15, 24), (40, 49)])?;
        let mut spans = KVec::new();
        for s in t.spans(0, 59) {
            spans.push((s.start, s.last, s.is_hole), GFP_KERNEL)?;
        }
        assert_eq!(
            &spans[..],
            &[
                (0, 9, true),
                (10, 24, false),
                (25, 39, true),
                (40, 49, false),
                (50, 59, true)
            ]
        );
        // A range inside one node is one used span; an empty tree is one hole.
        assert_eq!(t.spans(41, 42).count(), 1);
        let empty: IntervalTree<usize> = IntervalTree::new();
        let all: KVec<Span> = {
            let mut v = KVec::new();
            for s in empty.spans(0, u64::MAX) {
                v.push(s, GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(
            &all[..],
            &[Span {
                start: 0,
                last: u64::MAX,
                is_hole: true
            }]
        );
        Ok(())
    }

    #[test]
    fn removal_during_iteration() -> Result {
        let mut t = tree(&[(0, 9), (10, 19), (20, 29), (30, 39), (40, 49)])?;
        let mut removed = KVec::new();
        // Remove every other node overlapping [5, 45].
        let mut push_err = Ok(());
        t.remove_if(
            5,
            45,
            |s, _, _| s % 20 == 0,
            |s, _, v| {
                if let Err(e) = removed.push((s, v), GFP_KERNEL) {
                    push_err = Err(e);
                }
            },
        );
        push_err?;
        assert_eq!(&removed[..], &[(0, 0), (20, 2), (40, 4)]);
        assert_eq!(t.len(), 2);
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[1, 3]);
        assert_eq!(
            t.take_first_if(0, u64::MAX, |_, _, _| true),
            Some((10, 19, Some(1)))
        );
        // Found but kept, then nothing left below 30.
        assert_eq!(
            t.take_first_if(0, u64::MAX, |_, _, _| false),
            Some((30, 39, None))
        );
        assert_eq!(t.take_first_if(0, 29, |_, _, _| true), None);
        assert_eq!(t.len(), 1);
        Ok(())
    }
}
