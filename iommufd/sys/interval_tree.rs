// SPDX-License-Identifier: GPL-2.0

//! Safe bindings to the kernel's interval tree (`lib/interval_tree.c`).
//!
//! An [`IntervalTree<T>`] owns nodes, each an inclusive range
//! `[start, last]` of `u64` with a value `T`. Ranges may overlap. Lookups
//! find every node that overlaps a query range, in order of `start`; the
//! span iterator walks a range as alternating used and hole spans. This is
//! the only file that calls the C interval tree or touches its structs.
//!
//! A [`DisjointTree<T>`] holds ranges that never overlap (an IOAS's
//! areas). It keeps the same nodes in a plain red-black tree ordered by
//! `start`, without the interval tree's `__subtree_last`: a lookup is one
//! descent to the last node starting at or before the query, and inserting
//! or removing a node updates no ancestor (the interval tree walks up to
//! the root whenever the node held its ancestors' largest `last`).

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

/// A value taken out of a tree, still in its node: dropping it drops the
/// value and frees the node, without moving the value out first.
pub(crate) struct Removed<T>(DBox<Node<T>>);

impl<T> Removed<T> {
    /// Moves the value out of its node.
    pub(crate) fn into_inner(self) -> T {
        DBox::into_inner(self.0).value
    }
}

impl<T> core::ops::Deref for Removed<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

/// A node allocated ahead of insertion, so that inserting cannot fail.
pub(crate) struct NewNode<T> {
    node: Pin<DBox<Node<T>>>,
}

impl<T> NewNode<T> {
    /// Allocates a node for `[start, last]` holding `value` (a `T`, or an
    /// initializer that writes one straight into the node).
    pub(crate) fn new(
        start: u64,
        last: u64,
        value: impl Init<T>,
        flags: kernel::alloc::Flags,
    ) -> Result<Self> {
        let node = DBox::pin_init(
            pin_init!(Node {
                itree <- Opaque::ffi_init(|slot: *mut bindings::interval_tree_node| {
                    // SAFETY: `ffi_init` hands over the node's C part,
                    // valid for writes.
                    unsafe {
                        slot.write(bindings::interval_tree_node {
                            start: to_c(start),
                            last: to_c(last),
                            ..Default::default()
                        })
                    };
                }),
                value <- value,
            }? Error),
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

    /// The node's value, to change before the node is inserted.
    pub(crate) fn value_mut(&mut self) -> &mut T {
        self.node.as_mut().project().value
    }
}

/// An interval tree owning its nodes; with `DISJOINT`, a plain red-black
/// tree by `start` whose ranges must not overlap ([`DisjointTree`]).
///
/// # Invariants
///
/// - `root` is a valid `rb_root_cached` whose nodes are exactly the
///   `interval_tree_node`s embedded in `Node<T>`s leaked from `DBox`es by
///   [`IntervalTree::insert`]; each is freed once, by `remove` or `Drop`.
/// - Without `DISJOINT`, every node's `__subtree_last` is kept by the C
///   interval tree; with it, `rb_leftmost` is the first node and
///   `__subtree_last` is unused.
/// - The C tree keeps no pointer to `root` itself, only node-to-node links,
///   so the tree may move; the nodes are heap-allocated and pinned.
///
/// A disjoint tree given overlapping ranges stays memory-safe, but its
/// lookups may miss nodes: its owner must keep ranges apart.
pub(crate) struct IntervalTree<T, const DISJOINT: bool = false> {
    root: bindings::rb_root_cached,
    _owns: PhantomData<DBox<Node<T>>>,
}

/// A tree of ranges that never overlap, searched by one descent.
pub(crate) type DisjointTree<T> = IntervalTree<T, true>;

// SAFETY: The tree owns its values; sending the tree sends them.
unsafe impl<T: Send, const D: bool> Send for IntervalTree<T, D> {}
// SAFETY: Shared access only reads the tree and hands out `&T`.
unsafe impl<T: Sync, const D: bool> Sync for IntervalTree<T, D> {}

/// The `interval_tree_node` whose `rb` is `rb`.
///
/// # Safety
///
/// `rb` must be the `rb` field of an `interval_tree_node`.
unsafe fn itree_of(rb: *mut bindings::rb_node) -> *mut bindings::interval_tree_node {
    // SAFETY: Per the caller, `rb` is embedded in an `interval_tree_node`.
    unsafe {
        rb.byte_sub(offset_of!(bindings::interval_tree_node, rb))
            .cast()
    }
}

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

impl<T, const DISJOINT: bool> IntervalTree<T, DISJOINT> {
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
        // SAFETY: `raw` is valid: it was just leaked.
        let itree = Opaque::cast_into(unsafe { &raw const (*raw).itree });
        if DISJOINT {
            // SAFETY: `itree` is valid, initialised with its range and in
            // no tree; `root` is a valid tree per the type invariants.
            unsafe { self.insert_disjoint(itree) };
            return;
        }
        // SAFETY: As above.
        unsafe { bindings::interval_tree_insert(itree, self.root_ptr()) };
    }

    /// Links `node` into the plain tree by `start` (after nodes of the
    /// same start) and rebalances, as `rb_add_cached` does.
    ///
    /// # Safety
    ///
    /// `node` must be valid and in no tree, and `root` a plain tree.
    unsafe fn insert_disjoint(&mut self, node: *mut bindings::interval_tree_node) {
        // SAFETY: Every pointer followed is `node` or a live node of this
        // tree (the caller's promise and the type invariants).
        unsafe {
            let start = (*node).start;
            let mut link = &raw mut self.root.rb_root.rb_node;
            let mut parent = core::ptr::null_mut();
            let mut leftmost = true;
            while !(*link).is_null() {
                parent = *link;
                if start < (*itree_of(parent)).start {
                    link = &raw mut (*parent).rb_left;
                } else {
                    link = &raw mut (*parent).rb_right;
                    leftmost = false;
                }
            }
            self.link_at(node, parent, link, leftmost);
        }
    }

    /// Hangs `node` from `link`, a child link of `parent` (or the root
    /// link, `parent` null) that a descent by `node`'s start stopped at,
    /// and rebalances.
    ///
    /// # Safety
    ///
    /// `node` must be valid and in no tree; `link` and `parent` must come
    /// from a descent of this plain tree by `node`'s start, with no change
    /// since; `leftmost` says whether that descent never went right.
    unsafe fn link_at(
        &mut self,
        node: *mut bindings::interval_tree_node,
        parent: *mut bindings::rb_node,
        link: *mut *mut bindings::rb_node,
        leftmost: bool,
    ) {
        // `rb_link_node` is written out (it is inline): the new node is
        // red, childless, hung from the link the descent stopped at.
        // SAFETY: Per the caller, `node`, `parent` and `link` are valid.
        unsafe {
            let rb = &raw mut (*node).rb;
            (*rb).__rb_parent_color = parent as usize;
            (*rb).rb_left = core::ptr::null_mut();
            (*rb).rb_right = core::ptr::null_mut();
            *link = rb;
            if leftmost {
                self.root.rb_leftmost = rb;
            }
            bindings::rb_insert_color(rb, &raw mut self.root.rb_root);
        }
    }

    /// Unlinks `node` from the tree.
    ///
    /// # Safety
    ///
    /// `node` must be a node of this tree.
    unsafe fn remove_raw(&mut self, node: *mut bindings::interval_tree_node) {
        if !DISJOINT {
            // SAFETY: Per the caller; `root` is a valid tree.
            unsafe { bindings::interval_tree_remove(node, self.root_ptr()) };
            return;
        }
        // SAFETY: Per the caller, `rb` is in this plain tree; this is
        // `rb_erase_cached`, which is inline.
        unsafe {
            let rb = &raw mut (*node).rb;
            if self.root.rb_leftmost == rb {
                self.root.rb_leftmost = bindings::rb_next(rb);
            }
            bindings::rb_erase(rb, &raw mut self.root.rb_root);
        }
    }

    /// The first node overlapping `[start, last]`, as a raw C node.
    fn first_raw(&self, start: u64, last: u64) -> *mut bindings::interval_tree_node {
        if !DISJOINT {
            // SAFETY: `root` is a valid tree; the search does not modify it.
            return unsafe {
                bindings::interval_tree_iter_first(self.root_ptr(), to_c(start), to_c(last))
            };
        }
        // The last node starting at or before `start`, if it reaches
        // `start`; else the first node after, if it starts by `last`.
        let (mut below, mut above) = (core::ptr::null_mut(), core::ptr::null_mut());
        let mut n = self.root.rb_root.rb_node;
        // SAFETY: Every pointer followed is a live node of this tree, which
        // is borrowed, so nothing changes it.
        unsafe {
            while !n.is_null() {
                let e = itree_of(n);
                if from_c((*e).start) <= start {
                    below = e;
                    n = (*n).rb_right;
                } else {
                    above = e;
                    n = (*n).rb_left;
                }
            }
            if !below.is_null() && from_c((*below).last) >= start {
                return below;
            }
            if !above.is_null() && from_c((*above).start) <= last {
                return above;
            }
        }
        core::ptr::null_mut()
    }

    /// The node after `node` overlapping `[start, last]`, as a raw C node.
    ///
    /// # Safety
    ///
    /// `node` must be a node of this tree overlapping `[start, last]`.
    unsafe fn next_raw(
        node: *mut bindings::interval_tree_node,
        start: u64,
        last: u64,
    ) -> *mut bindings::interval_tree_node {
        if !DISJOINT {
            // SAFETY: Per the caller.
            return unsafe { bindings::interval_tree_iter_next(node, to_c(start), to_c(last)) };
        }
        // Ranges are apart, so each node after one that overlaps the query
        // ends past `start`: it overlaps if it starts by `last`.
        // SAFETY: Per the caller, `node` and its successor are live nodes.
        unsafe {
            let next = bindings::rb_next(&raw const (*node).rb);
            if next.is_null() {
                return core::ptr::null_mut();
            }
            let e = itree_of(next);
            if from_c((*e).start) <= last {
                e
            } else {
                core::ptr::null_mut()
            }
        }
    }

    /// Iterates over the nodes overlapping `[start, last]`, by `start`.
    pub(crate) fn iter(&self, start: u64, last: u64) -> Iter<'_, T, DISJOINT> {
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
    /// its value (left in its node); `None` if no node overlaps.
    pub(crate) fn take_first_if(
        &mut self,
        start: u64,
        last: u64,
        take: impl FnOnce(u64, u64, &T) -> bool,
    ) -> Option<(u64, u64, Option<Removed<T>>)> {
        let raw = NonNull::new(self.first_raw(start, last))?;
        // SAFETY: `raw` is a node of this tree; if removed, the tree no
        // longer points to it and the box leaked by `insert` is rebuilt
        // and consumed once.
        unsafe {
            let (s, l) = (from_c((*raw.as_ptr()).start), from_c((*raw.as_ptr()).last));
            if !take(s, l, &(*Self::node_of(raw.as_ptr())).value) {
                return Some((s, l, None));
            }
            self.remove_raw(raw.as_ptr());
            Some((
                s,
                l,
                Some(Removed(DBox::from_raw(Self::node_of(raw.as_ptr())))),
            ))
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
                cur = Self::next_raw(raw.as_ptr(), start, last);
                let (s, l) = (from_c((*raw.as_ptr()).start), from_c((*raw.as_ptr()).last));
                if remove(s, l, &(*Self::node_of(raw.as_ptr())).value) {
                    self.remove_raw(raw.as_ptr());
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
                cur = Self::next_raw(raw.as_ptr(), start, last);
            }
        }
    }

    /// Walks `[first, last]` as alternating used and hole spans: a used
    /// span is a longest run of indices some node covers (nodes that
    /// overlap or touch join), as C's `interval_tree_span_iter` gives them
    /// (which does the walk for trees that may overlap; a disjoint tree's
    /// has no `__subtree_last` for it, so it is walked here the same way).
    pub(crate) fn spans(&self, first: u64, last: u64) -> Spans<'_, T, DISJOINT> {
        let mut spans = Spans {
            _tree: PhantomData,
            c_state: pin_init::zeroed(),
            first,
            last,
            reach: core::ptr::null_mut(),
            next: core::ptr::null_mut(),
            span: None,
        };
        if !DISJOINT {
            // SAFETY: `c_state` is writable and `root` is a valid interval
            // tree, which the iterator only reads.
            unsafe {
                bindings::interval_tree_span_iter_first(
                    &mut spans.c_state,
                    self.root_ptr(),
                    to_c(first),
                    to_c(last),
                )
            };
            return spans;
        }
        spans.next = self.first_raw(first, last);
        let next = spans.next;
        // SAFETY: `next`, if not null, is a node of the tree, which the
        // iterator borrows.
        let next_start = (!next.is_null()).then(|| from_c(unsafe { (*next).start }));
        spans.span = Some(match next_start {
            // No node meets the range: one hole.
            None => Span::hole(first, last),
            Some(start) if start > first => {
                spans.skip_used();
                Span::hole(first, start - 1)
            }
            // Starting inside a used span.
            Some(_) => {
                spans.skip_used();
                spans.used_from(first)
            }
        });
        spans
    }
}

impl<T> DisjointTree<T> {
    /// Inserts `node` unless its range meets a node's, which one descent
    /// finds out: then the node comes back.
    pub(crate) fn try_insert(&mut self, node: NewNode<T>) -> Result<(), NewNode<T>> {
        let (start, last) = node.range();
        let mut link = &raw mut self.root.rb_root.rb_node;
        let mut parent = core::ptr::null_mut();
        // The nodes before and after `start`, as `first_raw` finds them.
        let (mut below, mut above) = (core::ptr::null_mut(), core::ptr::null_mut());
        // SAFETY: Every pointer followed is a live node of this tree, which
        // is borrowed mutably, so nothing else changes it.
        let meets = unsafe {
            while !(*link).is_null() {
                parent = *link;
                let e = itree_of(parent);
                if start < from_c((*e).start) {
                    above = e;
                    link = &raw mut (*parent).rb_left;
                } else {
                    below = e;
                    link = &raw mut (*parent).rb_right;
                }
            }
            (!below.is_null() && from_c((*below).last) >= start)
                || (!above.is_null() && from_c((*above).start) <= last)
        };
        if meets {
            return Err(node);
        }
        // SAFETY: The node is pinned on the heap; leaking the box hands its
        // ownership to the tree, as the type invariants require.
        let raw = DBox::into_raw(unsafe { Pin::into_inner_unchecked(node.node) });
        // SAFETY: `raw` is valid: it was just leaked. `link` and `parent`
        // come from the descent above by its start, and nothing changed
        // the tree since; it never went right if there is no `below`.
        unsafe {
            let itree = Opaque::cast_into(&raw const (*raw).itree);
            self.link_at(itree, parent, link, below.is_null());
        }
        Ok(())
    }

    /// Calls `f(start, last, value)` on each node overlapping `[start,
    /// last]`, in order: `None` removes the node (dropping its value);
    /// `Some((s, l))` moves it to `[s, l]`, which must lie within its range
    /// (else it stays): the nodes stay apart and in order, so a plain tree
    /// needs no relinking.
    pub(crate) fn trim(
        &mut self,
        start: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, &mut T) -> Option<(u64, u64)>,
    ) {
        let mut cur = self.first_raw(start, last);
        while let Some(raw) = NonNull::new(cur) {
            // A range kept inside the old one keeps the nodes apart and
            // ordered by `start`, all a plain tree relies on.
            // SAFETY: `raw` is a node of this tree, borrowed mutably; the
            // next is found before `raw` changes or goes.
            unsafe {
                let node = raw.as_ptr();
                cur = Self::next_raw(node, start, last);
                let (s, l) = (from_c((*node).start), from_c((*node).last));
                match f(s, l, &mut (*Self::node_of(node)).value) {
                    Some((ns, nl)) if s <= ns && ns <= nl && nl <= l => {
                        (*node).start = to_c(ns);
                        (*node).last = to_c(nl);
                    }
                    Some(_) => {}
                    None => {
                        self.remove_raw(node);
                        drop(DBox::from_raw(Self::node_of(node)));
                    }
                }
            }
        }
    }
}

impl<T, const DISJOINT: bool> Drop for IntervalTree<T, DISJOINT> {
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
pub(crate) struct Iter<'a, T, const DISJOINT: bool> {
    next: Option<NonNull<bindings::interval_tree_node>>,
    start: u64,
    last: u64,
    _tree: PhantomData<&'a IntervalTree<T, DISJOINT>>,
}

impl<'a, T: 'a, const DISJOINT: bool> Iterator for Iter<'a, T, DISJOINT> {
    type Item = Entry<'a, T>;

    fn next(&mut self) -> Option<Entry<'a, T>> {
        let raw = self.next?;
        // SAFETY: `raw` is a node of the tree, which is borrowed for `'a`,
        // so the node and its value live and do not change for `'a`.
        unsafe {
            self.next = NonNull::new(IntervalTree::<T, DISJOINT>::next_raw(
                raw.as_ptr(),
                self.start,
                self.last,
            ));
            let node = &*IntervalTree::<T, DISJOINT>::node_of(raw.as_ptr());
            Some(Entry {
                start: from_c((*raw.as_ptr()).start),
                last: from_c((*raw.as_ptr()).last),
                value: &node.value,
            })
        }
    }
}

/// Iterator over the used and hole spans of a range.
///
/// # Invariants
///
/// `reach` and `next` are null or nodes of the tree, which is borrowed;
/// without `DISJOINT`, `c_state` was set up by
/// `interval_tree_span_iter_first` on it.
pub(crate) struct Spans<'a, T, const DISJOINT: bool> {
    _tree: PhantomData<&'a IntervalTree<T, DISJOINT>>,
    /// C's iterator, for trees whose nodes may overlap.
    c_state: bindings::interval_tree_span_iter,
    first: u64,
    last: u64,
    /// Of the nodes of the used span at or before `span`, the one that
    /// reaches furthest (C's `nodes[0]`).
    reach: *mut bindings::interval_tree_node,
    /// The first node past that used span (C's `nodes[1]`).
    next: *mut bindings::interval_tree_node,
    /// The span to give next; `None` at the end.
    span: Option<Span>,
}

impl Span {
    fn hole(start: u64, last: u64) -> Self {
        Self {
            start,
            last,
            is_hole: true,
        }
    }
}

impl<T, const DISJOINT: bool> Spans<'_, T, DISJOINT> {
    /// The `last` of node `n`.
    fn last_of(n: *mut bindings::interval_tree_node) -> u64 {
        // SAFETY: Callers pass `reach` or `next` when not null: a node of
        // the borrowed tree (type invariant).
        from_c(unsafe { (*n).last })
    }

    /// The `start` of node `n`.
    fn start_of(n: *mut bindings::interval_tree_node) -> u64 {
        // SAFETY: As in `last_of`.
        from_c(unsafe { (*n).start })
    }

    /// From `next`, takes the nodes that overlap or touch one another as
    /// one used span: `reach` becomes the one reaching furthest, `next`
    /// the first node after them.
    fn skip_used(&mut self) {
        let mut cur = self.next;
        self.reach = cur;
        loop {
            if Self::last_of(cur) > Self::last_of(self.reach) {
                self.reach = cur;
            }
            // SAFETY: `cur` is a node of the tree (type invariant) that
            // overlaps `[first, last]`.
            cur = unsafe { IntervalTree::<T, DISJOINT>::next_raw(cur, self.first, self.last) };
            let reach = Self::last_of(self.reach);
            if cur.is_null()
                || !(reach >= Self::start_of(cur) || reach.wrapping_add(1) == Self::start_of(cur))
            {
                break;
            }
        }
        // INVARIANT: null or a node of the tree.
        self.next = cur;
    }

    /// The used span from `start` to `reach`'s end, cut at the range's
    /// end (after which nothing is left).
    fn used_from(&mut self, start: u64) -> Span {
        let mut last = Self::last_of(self.reach);
        if last >= self.last {
            last = self.last;
            self.reach = core::ptr::null_mut();
            self.next = core::ptr::null_mut();
        }
        Span {
            start,
            last,
            is_hole: false,
        }
    }

    /// The next span from C's iterator.
    fn next_c(&mut self) -> Option<Span> {
        let state = &mut self.c_state;
        // -1 marks the end (`interval_tree_span_iter_done()` in C).
        if state.is_hole == -1 {
            return None;
        }
        // SAFETY: The unions hold the hole bounds when `is_hole` is set and
        // the used bounds otherwise; both are plain integers.
        let span = unsafe {
            if state.is_hole != 0 {
                Span::hole(
                    from_c(state.__bindgen_anon_1.start_hole),
                    from_c(state.__bindgen_anon_2.last_hole),
                )
            } else {
                Span {
                    start: from_c(state.__bindgen_anon_1.start_used),
                    last: from_c(state.__bindgen_anon_2.last_used),
                    is_hole: false,
                }
            }
        };
        // SAFETY: `state` was set up by `interval_tree_span_iter_first` on
        // a tree that stays borrowed, unchanged, for the iterator's life
        // (type invariant).
        unsafe { bindings::interval_tree_span_iter_next(state) };
        Some(span)
    }

    /// The span after `cur`.
    fn after(&mut self, cur: Span) -> Option<Span> {
        if self.reach.is_null() && self.next.is_null() {
            return None;
        }
        if cur.is_hole {
            return Some(self.used_from(cur.last + 1));
        }
        let start = Self::last_of(self.reach) + 1;
        if self.next.is_null() {
            // The trailing hole.
            self.reach = core::ptr::null_mut();
            return Some(Span::hole(start, self.last));
        }
        let hole = Span::hole(start, Self::start_of(self.next) - 1);
        self.skip_used();
        Some(hole)
    }
}

impl<T, const DISJOINT: bool> Iterator for Spans<'_, T, DISJOINT> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if !DISJOINT {
            return self.next_c();
        }
        let span = self.span?;
        self.span = self.after(span);
        Some(span)
    }
}

#[kunit_tests(iommufd_rs_interval_tree)]
mod tests {
    use super::*;

    fn tree<const D: bool>(ranges: &[(u64, u64)]) -> Result<IntervalTree<usize, D>> {
        let mut t = IntervalTree::new();
        for (i, &(s, l)) in ranges.iter().enumerate() {
            t.insert(NewNode::new(s, l, i, GFP_KERNEL)?);
        }
        Ok(t)
    }

    /// `take_first_if` on `[s, l]` answering `take`, the value moved out.
    fn take<const D: bool>(
        t: &mut IntervalTree<usize, D>,
        s: u64,
        l: u64,
        take: bool,
    ) -> Option<(u64, u64, Option<usize>)> {
        t.take_first_if(s, l, |_, _, _| take)
            .map(|(s, l, v)| (s, l, v.map(Removed::into_inner)))
    }

    /// The spans of `[s, l]`, as `(start, last, is_hole)`.
    fn spans_of<const D: bool>(
        t: &IntervalTree<usize, D>,
        s: u64,
        l: u64,
    ) -> Result<KVec<(u64, u64, bool)>> {
        let mut v = KVec::new();
        for span in t.spans(s, l) {
            v.push((span.start, span.last, span.is_hole), GFP_KERNEL)?;
        }
        Ok(v)
    }

    fn found<const D: bool>(t: &IntervalTree<usize, D>, s: u64, l: u64) -> Result<KVec<usize>> {
        let mut v = KVec::new();
        for e in t.iter(s, l) {
            v.push(*e.value, GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn overlap_queries() -> Result {
        let t: IntervalTree<usize> =
            tree(&[(10, 19), (30, 39), (15, 34), (100, 100), (0, u64::MAX)])?;
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
    fn try_insert_refuses_overlaps_only() -> Result {
        let mut t: DisjointTree<usize> = tree(&[(10, 19), (30, 39)])?;
        // Meeting either neighbour, or both, or sharing a start: refused.
        for (i, (s, l)) in [
            (5, 10),
            (19, 25),
            (15, 35),
            (30, 30),
            (39, 50),
            (0, u64::MAX),
        ]
        .into_iter()
        .enumerate()
        {
            let back = t.try_insert(NewNode::new(s, l, 100 + i, GFP_KERNEL)?);
            assert_eq!(back.err().map(|n| n.range()), Some((s, l)));
        }
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[0, 1]);
        // Touching is not meeting; a new first node becomes the leftmost.
        for (v, (s, l)) in [(2, (20, 29)), (3, (0, 9)), (4, (40, u64::MAX))] {
            assert!(t.try_insert(NewNode::new(s, l, v, GFP_KERNEL)?).is_ok());
        }
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[3, 0, 2, 1, 4]);
        assert_eq!(t.first(0, 0).map(|e| *e.value), Some(3));
        assert_eq!(take(&mut t, 0, 0, true), Some((0, 9, Some(3))));
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[0, 2, 1, 4]);
        Ok(())
    }

    #[test]
    fn spans_over_holes() -> Result {
        let t: IntervalTree<usize> = tree(&[(10, 19), (15, 24), (40, 49)])?;
        assert_eq!(
            &spans_of(&t, 0, 59)?[..],
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
        assert_eq!(&spans_of(&empty, 0, u64::MAX)?[..], &[(0, u64::MAX, true)]);
        Ok(())
    }

    #[test]
    fn disjoint_lookups_and_spans() -> Result {
        let mut t: DisjointTree<usize> = tree(&[
            (30, 39),
            (10, 19),
            (20, 24),
            (50, 50),
            (u64::MAX - 9, u64::MAX),
        ])?;
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[1, 2, 0, 3, 4]);
        assert_eq!(&found(&t, 15, 31)?[..], &[1, 2, 0]);
        assert_eq!(&found(&t, 25, 29)?[..], &[] as &[usize]);
        assert_eq!(&found(&t, 25, 30)?[..], &[0]);
        assert_eq!(&found(&t, 39, 49)?[..], &[0]);
        assert_eq!(&found(&t, 51, u64::MAX - 10)?[..], &[] as &[usize]);
        assert_eq!(&found(&t, u64::MAX, u64::MAX)?[..], &[4]);
        // Touching areas make one used span, as in the interval tree.
        assert_eq!(
            &spans_of(&t, 5, 60)?[..],
            &[
                (5, 9, true),
                (10, 24, false),
                (25, 29, true),
                (30, 39, false),
                (40, 49, true),
                (50, 50, false),
                (51, 60, true)
            ]
        );
        assert_eq!(t.spans(u64::MAX - 20, u64::MAX).count(), 2);
        // The first node removed, then one in the middle: lookups hold.
        assert_eq!(take(&mut t, 0, 12, true), Some((10, 19, Some(1))));
        assert_eq!(take(&mut t, 31, 31, true), Some((30, 39, Some(0))));
        assert_eq!(&found(&t, 0, u64::MAX)?[..], &[2, 3, 4]);
        assert_eq!(t.first(0, 100).map(|e| e.start), Some(20));
        Ok(())
    }

    #[test]
    fn removal_during_iteration() -> Result {
        let mut t: IntervalTree<usize> = tree(&[(0, 9), (10, 19), (20, 29), (30, 39), (40, 49)])?;
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
        assert_eq!(take(&mut t, 0, u64::MAX, true), Some((10, 19, Some(1))));
        // Found but kept, then nothing left below 30.
        assert_eq!(take(&mut t, 0, u64::MAX, false), Some((30, 39, None)));
        assert_eq!(take(&mut t, 0, 29, true), None);
        assert_eq!(t.len(), 1);
        Ok(())
    }
}
