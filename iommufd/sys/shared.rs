// SPDX-License-Identifier: GPL-2.0

//! [`Shared`]: a reference-counted object in kmalloc memory whose count its
//! owner can test, and [`SharedPart`], a counted reference to something an
//! object owns.
//!
//! It is the kernel crate's `Arc` with two differences that matter on the
//! map/unmap path:
//! - it is allocated and freed with [`DirectKmalloc`], not through
//!   `krealloc()`;
//! - [`Shared::is_unique`] lets the object table use the one count both to
//!   keep an object's memory and to refuse `IOMMU_DESTROY` while it has
//!   users, as C's single `users` count does. A lookup then costs one
//!   increment, not two.

use crate::sys::DBox;
use core::{marker::PhantomData, mem::MaybeUninit, ops::Deref, pin::Pin, ptr::NonNull};
use kernel::{
    prelude::*,
    sync::{atomic::Acquire, Refcount},
};

/// The allocation behind a [`Shared`].
#[pin_data]
struct SharedInner<T> {
    /// Number of [`Shared`] handles (a [`SharedPart`] holds one).
    refs: Refcount,
    #[pin]
    value: T,
}

/// A counted handle to a `T` in kmalloc memory.
///
/// # Invariants
///
/// `ptr` comes from [`DBox::into_raw`] of a pinned `SharedInner<T>` that
/// is never moved, and stays valid while `refs` is non-zero; `refs` is the
/// number of live `Shared` handles to it, so it is at least 1 while this
/// handle lives.
pub(crate) struct Shared<T> {
    ptr: NonNull<SharedInner<T>>,
    _owns: PhantomData<SharedInner<T>>,
}

// SAFETY: Handles on other threads may use `&T` (needs `Sync`) and the last
// one drops `T` (needs `Send`), as with the kernel crate's `Arc`.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: A `&Shared<T>` gives `&T` and can make a handle: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// Allocates a shared `T` built in place by `init`.
    pub(crate) fn pin_init<E>(init: impl PinInit<T, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        Self::alloc(try_pin_init!(SharedInner {
            refs: Refcount::new(1),
            value <- init,
        }? E))
    }

    /// Allocates a shared `value`.
    pub(crate) fn new(value: T) -> Result<Self> {
        Self::alloc(pin_init!(SharedInner {
            refs: Refcount::new(1),
            value,
        }))
    }

    fn alloc<E>(inner: impl PinInit<SharedInner<T>, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        Ok(Self::from_pinned(DBox::pin_init(inner, GFP_KERNEL)?))
    }

    /// The one handle to a built allocation.
    fn from_pinned(boxed: Pin<DBox<SharedInner<T>>>) -> Self {
        // SAFETY: The allocation is never moved out of: it is only read
        // through `ptr` and freed in place by the last handle.
        let raw = DBox::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
        // INVARIANT: A pinned allocation from `DBox`, with one handle.
        Self {
            // SAFETY: `Box::into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw) },
            _owns: PhantomData,
        }
    }

    fn inner(&self) -> &SharedInner<T> {
        // SAFETY: By the type invariant the allocation is valid while this
        // handle lives.
        unsafe { self.ptr.as_ref() }
    }

    /// Whether this is the only handle. Only meaningful while nothing else
    /// can make a handle (the object table checks it under its lock).
    pub(crate) fn is_unique(&self) -> bool {
        self.inner().refs.as_atomic().load(Acquire) == 1
    }

    /// A counted reference to a part of the object that `part` picks, or
    /// `self` back if it picks none.
    pub(crate) fn project<P>(
        self,
        part: impl for<'a> FnOnce(&'a T) -> Option<&'a P>,
    ) -> Result<SharedPart<T, P>, Self> {
        match part(&self).map(NonNull::from) {
            Some(part) => Ok(SharedPart { owner: self, part }),
            None => Err(self),
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        self.inner().refs.inc();
        // INVARIANT: The count now includes the new handle.
        Self {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        if !self.inner().refs.dec_and_test() {
            return;
        }
        // SAFETY: This was the last handle, so nothing else uses the
        // allocation; it came from `DBox::into_raw` (type invariant).
        // Dropping the box drops `T` in place, as pinning requires.
        drop(unsafe { DBox::from_raw(self.ptr.as_ptr()) });
    }
}

/// The memory of a [`Shared`], allocated before its value is built, so
/// that a caller can move parts of something it must keep on failure into
/// the value only once nothing can fail.
pub(crate) struct SharedSlot<T>(DBox<MaybeUninit<SharedInner<T>>>);

impl<T> SharedSlot<T> {
    /// Allocates the memory: `ENOMEM`.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(DBox::new_uninit(GFP_KERNEL)?))
    }

    /// Builds the value in place with `init`, which cannot fail, and
    /// returns the one handle to it.
    pub(crate) fn write(self, init: impl PinInit<T>) -> Shared<T> {
        let Ok(boxed) = self.0.write_pin_init(pin_init!(SharedInner {
            refs: Refcount::new(1),
            value <- init,
        }));
        Shared::from_pinned(boxed)
    }
}

/// A counted reference to `P`, a part of (or owned by) a shared `O`, from
/// [`Shared::project`]. It keeps the whole object alive.
///
/// # Invariants
///
/// `part` was a `&P` borrowed from `*owner` for as long as `owner` lives;
/// `owner` is never dropped or replaced before `part`.
pub(crate) struct SharedPart<O, P> {
    owner: Shared<O>,
    part: NonNull<P>,
}

// SAFETY: It is a `Shared<O>` plus a `&P` into it.
unsafe impl<O: Send + Sync, P: Sync> Send for SharedPart<O, P> {}
// SAFETY: As for `Send`.
unsafe impl<O: Send + Sync, P: Sync> Sync for SharedPart<O, P> {}

impl<O, P> SharedPart<O, P> {
    /// The object the part belongs to.
    pub(crate) fn owner(&self) -> &Shared<O> {
        &self.owner
    }
}

impl<O, P> Deref for SharedPart<O, P> {
    type Target = P;

    fn deref(&self) -> &P {
        // SAFETY: By the type invariant `part` was borrowed from `*owner`
        // for any lifetime `owner` outlives; `owner` is alive, never handed
        // out mutably, and its allocation never moves.
        unsafe { self.part.as_ref() }
    }
}

#[kunit_tests(iommufd_rs_shared)]
mod tests {
    use super::*;
    use kernel::sync::atomic::{Atomic, Relaxed};

    struct CountsDrops<'a>(&'a Atomic<u32>, u32);

    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn last_handle_drops_once() -> Result {
        let drops = Atomic::new(0u32);
        let a = Shared::new(CountsDrops(&drops, 5))?;
        assert!(a.is_unique());
        let b = a.clone();
        assert!(!a.is_unique());
        assert!(core::ptr::eq(&*a, &*b));
        assert_eq!(b.1, 5);
        drop(a);
        assert!(b.is_unique());
        assert_eq!(drops.load(Relaxed), 0);
        drop(b);
        assert_eq!(drops.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn a_part_keeps_its_owner() -> Result {
        let drops = Atomic::new(0u32);
        let owner = Shared::new((7u64, CountsDrops(&drops, 9)))?;
        let part = owner.clone().project(|o| Some(&o.1)).map_err(|_| EINVAL)?;
        drop(owner);
        assert_eq!(part.1, 9);
        assert!(part.owner().is_unique());
        let none = part.owner().clone().project(|_| None::<&u64>);
        assert!(none.is_err());
        drop(none);
        assert_eq!(drops.load(Relaxed), 0);
        drop(part);
        assert_eq!(drops.load(Relaxed), 1);
        Ok(())
    }
}
