// SPDX-License-Identifier: GPL-2.0

//! The per-file object table.
//!
//! Objects are keyed by u32 IDs. Like mainline's `xa_alloc()` on an
//! `XA_FLAGS_ALLOC1` array, a new object takes the lowest free ID from 1 up,
//! so IDs match C iommufd's for the same sequence of calls.
//!
//! An object's life: [`ObjectTable::reserve`] takes an ID that nobody can
//! look up yet; the caller builds the object; [`Reservation::finalize`] makes
//! it visible. Dropping a reservation unfinalized gives the ID back. Lookups
//! take a *user* reference ([`ObjectRef`]); destroy succeeds only when no
//! user is left, else it fails with `EBUSY`. As in C, one count does both
//! jobs: an object is a [`Shared`], and it has users while the table's
//! handle is not the only one.

use crate::{
    device::{DeviceInfo, Group},
    eventq::Fault,
    hw_pagetable::{HwptNested, HwptPaging},
    ioas::Ioas,
    pages::AccountMode,
    sys::shared::{Shared, SharedPart},
};
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use crate::{
    mock::MockDevice,
    viommu::{HwQueue, Vdevice, Veventq, Viommu},
};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Arc, Mutex},
};

/// Largest ID handed out, as mainline's `xa_limit_31b`.
const MAX_ID: u32 = i32::MAX as u32;

/// What an object is.
#[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
pub(crate) enum ObjectKind {
    /// An IO address space.
    Ioas(Arc<Ioas>),
    /// An in-kernel access. Its ID is taken, as in C, but never reported;
    /// it is destroyed with the access, never by `IOMMU_DESTROY`.
    Access,
    /// A domain attached to an IOAS.
    HwptPaging(Arc<HwptPaging>),
    /// A nested domain over a paging HWPT.
    HwptNested(Arc<HwptNested>),
    /// A fault queue.
    Fault(Arc<Fault>),
    /// A device bound to the file: destroyed with its owner, never by
    /// `IOMMU_DESTROY`.
    Device(DeviceInfo),
    /// A mock device of the test interface (`stdev`).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    MockDevice(Arc<MockDevice>),
    /// A vIOMMU of the mock IOMMU.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    Viommu(Arc<Viommu>),
    /// A virtual device on a vIOMMU; only held (its drop takes it off).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    #[allow(dead_code)]
    Vdevice(Arc<Vdevice>),
    /// A vIOMMU's event queue; only held (its drop takes it off).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    #[allow(dead_code)]
    Veventq(Arc<Veventq>),
    /// A vIOMMU's HW queue; only held (its drop unpins its memory).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    #[allow(dead_code)]
    HwQueue(Arc<HwQueue>),
}

/// An object in the table.
pub(crate) struct Object {
    /// Its ID in the table.
    pub(crate) id: u32,
    /// What it is.
    pub(crate) kind: ObjectKind,
}

/// One ID's entry: `None` while the object is being built. The table's
/// handle is the one that is not a user.
type Slot = Option<Shared<Object>>;

/// The state behind the table lock.
struct TableInner {
    ids: RBTree<u32, Slot>,
    /// No ID below this one is free.
    free_hint: u32,
    /// The IOAS the VFIO container ioctls work on (`IOMMU_VFIO_IOAS`). Not
    /// a reference: destroying that IOAS clears it, under this lock.
    compat_ioas: Option<u32>,
    /// How new pages objects are charged (`IOMMU_OPTION_RLIMIT_MODE`): may
    /// change only while the table is empty, so it lives under its lock.
    account_mode: AccountMode,
    /// VFIO's no-IOMMU mode: no compat IOAS may be made.
    no_iommu: bool,
}

impl TableInner {
    /// A user reference to the visible object `id`, if there is one.
    #[inline]
    fn get(&self, id: u32) -> Option<ObjectRef> {
        let obj = self.ids.get(&id).and_then(Option::as_ref)?;
        Some(ObjectRef { obj: obj.clone() })
    }
}

/// The object table of one open file.
#[pin_data]
pub(crate) struct ObjectTable {
    #[pin]
    inner: Mutex<TableInner>,
    /// The IOMMU groups of the real devices bound to this context.
    #[pin]
    pub(crate) groups: Mutex<KVec<Arc<Group>>>,
}

impl ObjectTable {
    /// Creates an empty table.
    pub(crate) fn new(account_mode: AccountMode) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(TableInner {
                ids: RBTree::new(),
                free_hint: 1,
                compat_ioas: None,
                account_mode,
                no_iommu: false,
            }),
            groups <- new_mutex!(KVec::new()),
        })
    }

    /// Takes the lowest free ID for a new object; the object stays
    /// invisible until [`Reservation::finalize`].
    pub(crate) fn reserve(&self, kind: ObjectKind) -> Result<Reservation<'_>> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let id = {
            let mut inner = self.inner.lock();
            let hint = inner.free_hint;
            let id = lowest_free(&mut inner.ids, hint).ok_or(ENOSPC)?;
            inner.free_hint = id + 1;
            inner.ids.insert(node.into_node(id, None));
            id
        };
        // The object holds its ID, so it is allocated once the ID is known;
        // if that fails the ID goes back (and `kind` is dropped unlocked).
        let obj = match Shared::new(Object { id, kind }) {
            Ok(obj) => obj,
            Err(e) => {
                self.remove_internal(id);
                return Err(e);
            }
        };
        Ok(Reservation {
            table: self,
            id,
            obj: Some(obj),
        })
    }

    /// Looks up a visible object and takes a user reference on it. In test
    /// builds a fail-nth sweep may make it fail (`ENOENT`), as C's lookup.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> Result<ObjectRef> {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if crate::sys::fail::should_fail() {
            return Err(ENOENT);
        }
        self.inner.lock().get(id).ok_or(ENOENT)
    }

    /// Looks up the compat IOAS's object, as [`ObjectTable::get`], under
    /// one lock: `ENODEV` if none is set.
    #[inline]
    pub(crate) fn get_compat(&self) -> Result<ObjectRef> {
        let inner = self.inner.lock();
        inner.compat_ioas.and_then(|id| inner.get(id)).ok_or(ENODEV)
    }

    /// Removes an object by ID: `ENOENT` if there is none, `EBUSY` if it has
    /// users. The object is freed when the last reference goes.
    pub(crate) fn destroy(&self, id: u32) -> Result {
        self.remove(id).map(drop)
    }

    /// Removes an object by ID, as [`ObjectTable::destroy`], and returns it.
    #[inline(always)]
    pub(crate) fn remove(&self, id: u32) -> Result<Option<Shared<Object>>> {
        let removed = {
            let mut inner = self.inner.lock();
            let obj = inner.ids.get(&id).and_then(Option::as_ref).ok_or(ENOENT)?;
            // Under the lock nobody can take a new user reference, so a
            // unique handle stays unique until it is removed.
            if matches!(obj.kind, ObjectKind::Access | ObjectKind::Device(_)) || !obj.is_unique() {
                return Err(EBUSY);
            }
            inner.free_hint = inner.free_hint.min(id);
            if inner.compat_ioas == Some(id) {
                inner.compat_ioas = None;
            }
            inner.ids.remove(&id)
        };
        Ok(removed.flatten())
    }

    /// Removes an object that only its creator destroys (an access),
    /// whatever its users.
    pub(crate) fn remove_internal(&self, id: u32) {
        let removed = {
            let mut inner = self.inner.lock();
            inner.free_hint = inner.free_hint.min(id);
            inner.ids.remove(&id)
        };
        drop(removed);
    }

    /// Removes object `id` whatever its users, and keeps its ID taken (a
    /// tombstone): lookups and `IOMMU_DESTROY` find nothing there, and no
    /// new object gets the ID until the file closes (a virtual device whose
    /// device went).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn tombstone(&self, id: u32) {
        let removed = {
            let mut inner = self.inner.lock();
            inner.ids.get_mut(&id).and_then(Option::take)
        };
        drop(removed);
    }

    /// Empties the table, when its file closes: each object goes once
    /// nothing else holds it. (A HW queue's access holds the table: this
    /// breaks that cycle.)
    pub(crate) fn clear(&self) {
        loop {
            let removed = {
                let mut inner = self.inner.lock();
                let Some(id) = inner.ids.keys().next().copied() else {
                    return;
                };
                inner.ids.remove(&id)
            };
            // Dropped unlocked: a drop may remove other objects.
            drop(removed);
        }
    }

    /// Removes object `id` whatever its kind (an unbound device), once no
    /// ioctl holds a user reference on it: waits up to 60 s, as C.
    pub(crate) fn remove_waiting(&self, id: u32) {
        let removed = {
            let mut inner = self.inner.lock();
            inner.free_hint = inner.free_hint.min(id);
            inner.ids.remove(&id).flatten()
        };
        let Some(obj) = removed else {
            return;
        };
        for _ in 0..60_000 {
            if obj.is_unique() {
                break;
            }
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1));
        }
        drop(obj);
    }

    /// Makes the compat IOAS with `make` if there is none (`EINVAL` in
    /// no-IOMMU mode). Returns its ID.
    pub(crate) fn create_compat(&self, make: impl FnOnce() -> Result<ObjectKind>) -> Result<u32> {
        let kind = make()?;
        let reservation = self.reserve(kind)?;
        {
            let inner = self.inner.lock();
            if inner.no_iommu {
                return Err(EINVAL);
            }
            if let Some(id) = inner.compat_ioas.filter(|id| inner.get(*id).is_some()) {
                return Ok(id);
            }
        }
        self.inner.lock().compat_ioas = Some(reservation.id);
        Ok(reservation.finalize())
    }

    /// Whether VFIO's no-IOMMU mode was selected.
    pub(crate) fn no_iommu(&self) -> bool {
        self.inner.lock().no_iommu
    }

    /// Selects no-IOMMU mode: `EINVAL` if there is a compat IOAS.
    pub(crate) fn set_no_iommu(&self) -> Result {
        let mut inner = self.inner.lock();
        if inner.compat_ioas.is_some() {
            return Err(EINVAL);
        }
        inner.no_iommu = true;
        Ok(())
    }

    /// Sets or clears the compat IOAS.
    pub(crate) fn set_compat_ioas(&self, id: Option<u32>) {
        self.inner.lock().compat_ioas = id;
    }

    /// How new pages objects are charged.
    pub(crate) fn account_mode(&self) -> AccountMode {
        self.inner.lock().account_mode
    }

    /// Sets how new pages objects are charged to what `mode` returns, if
    /// the table holds no object at all, built or not (`EBUSY` otherwise,
    /// checked first).
    pub(crate) fn set_account_mode(&self, mode: impl FnOnce() -> Result<AccountMode>) -> Result {
        let mut inner = self.inner.lock();
        if inner.ids.iter().next().is_some() {
            return Err(EBUSY);
        }
        inner.account_mode = mode()?;
        Ok(())
    }

    /// Every IOAS in the table, by ID.
    pub(crate) fn ioas_list(&self) -> Result<KVec<Arc<Ioas>>> {
        let inner = self.inner.lock();
        let mut out = KVec::new();
        for obj in inner.ids.values().flatten() {
            if let ObjectKind::Ioas(ioas) = &obj.kind {
                out.push(ioas.clone(), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Number of IDs in use, built or not.
    #[cfg(CONFIG_KUNIT)]
    fn len(&self) -> usize {
        self.inner.lock().ids.iter().count()
    }
}

/// Lowest ID at or above `from` that is not in `ids`.
fn lowest_free(ids: &mut RBTree<u32, Slot>, from: u32) -> Option<u32> {
    let mut want = from.max(1);
    let mut cursor = ids.cursor_lower_bound_mut(&want);
    while let Some(cur) = cursor {
        let (&id, _) = cur.current();
        if id != want {
            break;
        }
        want = want.checked_add(1)?;
        cursor = cur.move_next();
    }
    (want <= MAX_ID).then_some(want)
}

/// A new object with an ID taken by [`ObjectTable::reserve`], not yet
/// visible. Dropping it unfinalized frees the object and the ID.
pub(crate) struct Reservation<'a> {
    table: &'a ObjectTable,
    /// The reserved ID.
    pub(crate) id: u32,
    /// The object; `None` once `finalize` moved it into the table.
    obj: Option<Shared<Object>>,
}

impl Reservation<'_> {
    /// Makes the object visible under the reserved ID. Cannot fail: the
    /// table entry was allocated by `reserve`.
    pub(crate) fn finalize(mut self) -> u32 {
        let obj = self.obj.take();
        let mut inner = self.table.inner.lock();
        if let Some(slot) = inner.ids.get_mut(&self.id) {
            *slot = obj;
        }
        self.id
    }

    /// Makes the object visible, as [`Reservation::finalize`], and returns
    /// a user reference to it, taken before anyone can destroy it.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) fn finalize_get(mut self) -> Result<ObjectRef> {
        // `reserve` always sets `obj`.
        let obj = self.obj.take().ok_or(EINVAL)?;
        let mut inner = self.table.inner.lock();
        if let Some(slot) = inner.ids.get_mut(&self.id) {
            *slot = Some(obj.clone());
        }
        Ok(ObjectRef { obj })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.obj.is_none() {
            return;
        }
        let removed = {
            let mut inner = self.table.inner.lock();
            inner.free_hint = inner.free_hint.min(self.id);
            inner.ids.remove(&self.id)
        };
        drop(removed);
    }
}

/// A user reference to an object, from [`ObjectTable::get`]. While it lives,
/// destroying the object fails with `EBUSY`.
#[derive(Clone)]
pub(crate) struct ObjectRef {
    obj: Shared<Object>,
}

impl ObjectRef {
    /// The object.
    pub(crate) fn object(&self) -> &Object {
        &self.obj
    }

    /// A user reference to the part of the object's kind that `part`
    /// picks, or this reference back if it picks none.
    pub(crate) fn project<P>(
        self,
        part: impl for<'a> FnOnce(&'a ObjectKind) -> Option<&'a P>,
    ) -> Result<ObjectPart<P>, ObjectRef> {
        self.obj
            .project(|obj| part(&obj.kind))
            .map(|part| ObjectPart { part })
            .map_err(|obj| ObjectRef { obj })
    }
}

/// A user reference to a part of an object, from [`ObjectRef::project`]:
/// it counts as a user of the whole object.
pub(crate) struct ObjectPart<P> {
    part: SharedPart<Object, P>,
}

impl<P> ObjectPart<P> {
    /// The object's ID.
    pub(crate) fn id(&self) -> u32 {
        self.part.owner().id
    }
}

impl<P> core::ops::Deref for ObjectPart<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.part
    }
}

#[kunit_tests(iommufd_rs_object)]
mod tests {
    use super::*;
    use crate::ioas::Ioas;

    fn table() -> Result<Pin<KBox<ObjectTable>>> {
        KBox::pin_init(ObjectTable::new(AccountMode::None), GFP_KERNEL)
    }

    fn new_ioas(t: &ObjectTable) -> Result<u32> {
        Ok(t.reserve(ObjectKind::Ioas(Ioas::new()?))?.finalize())
    }

    #[test]
    fn ids_are_lowest_free_from_one() -> Result {
        let t = table()?;
        let a = new_ioas(&t)?;
        let b = new_ioas(&t)?;
        let c = new_ioas(&t)?;
        assert_eq!((a, b, c), (1, 2, 3));
        t.destroy(2)?;
        assert_eq!(new_ioas(&t)?, 2);
        assert_eq!(new_ioas(&t)?, 4);
        Ok(())
    }

    #[test]
    fn reservation_is_invisible_and_returned() -> Result {
        let t = table()?;
        let r = t.reserve(ObjectKind::Ioas(Ioas::new()?))?;
        assert_eq!(r.id, 1);
        assert_eq!(t.get(1).err(), Some(ENOENT));
        assert_eq!(t.destroy(1), Err(ENOENT));
        drop(r);
        assert_eq!(t.len(), 0);
        assert_eq!(new_ioas(&t)?, 1);
        Ok(())
    }

    #[test]
    fn destroy_busy_while_used() -> Result {
        let t = table()?;
        let id = new_ioas(&t)?;
        let user = t.get(id)?;
        assert_eq!(user.object().id, id);
        assert_eq!(t.destroy(id), Err(EBUSY));
        drop(user);
        t.destroy(id)?;
        assert_eq!(t.destroy(id), Err(ENOENT));
        assert_eq!(t.len(), 0);
        Ok(())
    }
}
