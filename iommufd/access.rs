// SPDX-License-Identifier: GPL-2.0

//! In-kernel accesses: the API emulated devices use to reach IOAS memory
//! without a domain.
//!
//! An access attaches to one IOAS. It pins pages at IOVAs for the kernel
//! ([`Access::pin_pages`]) and reads or writes through IOVAs
//! ([`Access::rw`]). When an area under its pins is unmapped, the IOAS asks
//! it to unpin first through [`AccessOps::unmap`], and retries.
//!
//! The access takes an object ID in the file's table, as in C, and holds
//! the table, so that the file's objects outlive the file while it exists.

use crate::{
    io_pagetable::{page_span, AccessNotify, AccessPiece},
    ioas::{get_ioas_in, IoasRef},
    object::{ObjectKind, ObjectTable},
    pages::RwRoute,
    sys::PAGE_SIZE_U64,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// What the owner of an access provides.
pub(crate) trait AccessOps: Send + Sync + Sized + 'static {
    /// Drop every pin taken through `access` in `[iova, iova + length)`
    /// (`length` may run to the end of the IOVA space).
    fn unmap(&self, access: &Access<Self>, iova: u64, length: u64);
}

/// Flags of [`Access::rw`].
#[derive(Clone, Copy)]
pub(crate) struct RwFlags {
    /// Write to IOAS memory (else read from it).
    pub(crate) write: bool,
    /// Go through the pages even when a plain user copy would do.
    pub(crate) slow_path: bool,
    /// The caller is a kernel thread without an address space: it may
    /// borrow the owner's (`IOMMUFD_ACCESS_RW_KTHREAD`).
    pub(crate) kthread: bool,
}

/// The IOAS an access is attached to.
struct Attachment {
    /// The IOAS, holding a user reference on it.
    ioas: Option<IoasRef>,
    /// False while the IOAS is being changed: pins and reads then fail with
    /// `ENOENT`, but unpins still reach `ioas`.
    usable: bool,
}

/// An in-kernel access, with its owner's data `D`.
#[pin_data]
pub(crate) struct Access<D: AccessOps> {
    /// The owner's data and callbacks.
    #[pin]
    pub(crate) data: D,
    /// Whether it pins pages (needing page-aligned areas) or only reads and
    /// writes.
    needs_pin: bool,
    /// Its pins lock their areas: unmapping them fails with `EBUSY`, so
    /// it is never asked to unpin (C's internal accesses).
    locks_areas: bool,
    /// The object table it has its ID in.
    table: Arc<ObjectTable>,
    /// Its object ID.
    id: u32,
    #[pin]
    attachment: Mutex<Attachment>,
}

impl<D: AccessOps> AccessNotify for Access<D> {
    fn id(&self) -> u32 {
        self.id
    }

    fn needs_pin(&self) -> bool {
        self.needs_pin
    }

    fn notify_unmap(&self, iova: u64, length: u64) {
        self.data.unmap(self, iova, length);
    }
}

impl<D: AccessOps> Access<D> {
    /// Creates an access in `table` and attaches it to IOAS `ioas_id`
    /// (`ENOENT` if there is none; `EADDRINUSE` if `needs_pin` and an area
    /// is not page aligned). The test interface's accesses are made so.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn create(
        table: &Arc<ObjectTable>,
        ioas_id: u32,
        needs_pin: bool,
        data: impl PinInit<D>,
    ) -> Result<Arc<Self>> {
        let this = Self::create_detached(table, needs_pin, data)?;
        if let Err(e) = Self::attach(&this, Some(ioas_id)) {
            table.remove_internal(this.id);
            return Err(e);
        }
        Ok(this)
    }

    /// Creates an access in `table` whose pins lock their areas, attached
    /// to IOAS `ioas_id` (C's internal accesses).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn create_locking(
        table: &Arc<ObjectTable>,
        ioas_id: u32,
        data: impl PinInit<D>,
    ) -> Result<Arc<Self>> {
        let this = Self::new_detached(table, true, true, data)?;
        if let Err(e) = Self::attach(&this, Some(ioas_id)) {
            table.remove_internal(this.id);
            return Err(e);
        }
        Ok(this)
    }

    /// Creates an access in `table`, attached to nothing (C's
    /// `iommufd_access_create()`).
    pub(crate) fn create_detached(
        table: &Arc<ObjectTable>,
        needs_pin: bool,
        data: impl PinInit<D>,
    ) -> Result<Arc<Self>> {
        Self::new_detached(table, needs_pin, false, data)
    }

    /// Creates an access in `table`, attached to nothing, whose pins lock
    /// their areas if `locks_areas`.
    fn new_detached(
        table: &Arc<ObjectTable>,
        needs_pin: bool,
        locks_areas: bool,
        data: impl PinInit<D>,
    ) -> Result<Arc<Self>> {
        let reservation = table.reserve(ObjectKind::Access)?;
        let this = Arc::pin_init(
            pin_init!(Self {
                data <- data,
                needs_pin,
                locks_areas,
                table: table.clone(),
                id: reservation.id,
                attachment <- new_mutex!(Attachment { ioas: None, usable: false }),
            }),
            GFP_KERNEL,
        )?;
        reservation.finalize();
        Ok(this)
    }

    /// The object ID.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Attaches a detached access to IOAS `ioas_id`: `EINVAL` (and a
    /// warning) if it is attached, `ENOENT` if there is no such IOAS.
    pub(crate) fn attach_to(this: &Arc<Self>, ioas_id: u32) -> Result {
        if kernel::warn_on!(this.attachment.lock().ioas.is_some()) {
            return Err(EINVAL);
        }
        Self::attach(this, Some(ioas_id))
    }

    /// Detaches an attached access (a warning if it is not), after its
    /// owner dropped its pins through [`AccessOps::unmap`].
    pub(crate) fn detach(this: &Arc<Self>) {
        if kernel::warn_on!(this.attachment.lock().ioas.is_none()) {
            return;
        }
        let _ = Self::attach(this, None);
    }

    /// Moves the access to IOAS `ioas_id` (`None`: detaches it). Pins on
    /// the old IOAS are dropped through [`AccessOps::unmap`] first.
    /// `EBUSY` if another change is in progress; `ENOENT` for a bad ID.
    fn attach(this: &Arc<Self>, ioas_id: Option<u32>) -> Result {
        let new = ioas_id.map(|id| get_ioas_in(&this.table, id)).transpose()?;
        let mut att = this.attachment.lock();
        if att.ioas.is_some() && !att.usable {
            return Err(EBUSY);
        }
        if let (Some(cur), Some(new)) = (&att.ioas, &new) {
            if cur.id() == new.id() {
                return Ok(());
            }
        }
        if let Some(new) = &new {
            let handle: Arc<dyn AccessNotify> = this.clone();
            new.iopt.lock().add_access(handle)?;
        }
        att.usable = false;
        if let Some(old) = att.ioas.as_ref().map(|i| i.id()) {
            drop(att);
            this.data.unmap(this, 0, u64::MAX);
            att = this.attachment.lock();
            if let Some(cur) = &att.ioas {
                // Changes are serialised by `usable`: nobody else moved it.
                kernel::warn_on!(cur.id() != old);
                cur.iopt.lock().remove_access(this.id);
            }
        }
        att.usable = new.is_some();
        att.ioas = new;
        Ok(())
    }

    /// `ACCESS_REPLACE_IOAS`: moves an attached access to another IOAS
    /// (`ENOENT` if it is not attached).
    pub(crate) fn replace(this: &Arc<Self>, ioas_id: u32) -> Result {
        if this.attachment.lock().ioas.is_none() {
            return Err(ENOENT);
        }
        Self::attach(this, Some(ioas_id))
    }

    /// Detaches the access and gives its ID back. The owner has dropped its
    /// pins through [`AccessOps::unmap`] by then.
    pub(crate) fn destroy(this: &Arc<Self>) {
        let _ = Self::attach(this, None);
        this.table.remove_internal(this.id);
    }

    /// Whether the access pins pages.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn needs_pin(&self) -> bool {
        self.needs_pin
    }

    /// The syzkaller IOVA encoding of the test interface: the `nth` area
    /// (low 32 bits) of the attached IOAS plus an offset (high 32 bits),
    /// or 0 if there is no such area.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) fn syz_iova(&self, iova: u64) -> u64 {
        let (nth, offset) = (iova & 0xffff_ffff, iova >> 32);
        let att = self.attachment.lock();
        let Some(ioas) = &att.ioas else {
            return 0;
        };
        let start = ioas.iopt.lock().nth_area_start(nth);
        start.map_or(0, |s| s.wrapping_add(offset))
    }

    /// Runs `f` on the attached IOAS: `ENOENT` if there is none or it is
    /// being changed.
    fn with_ioas<R>(&self, f: impl FnOnce(&IoasRef) -> Result<R>) -> Result<R> {
        let att = self.attachment.lock();
        match &att.ioas {
            Some(ioas) if att.usable => f(ioas),
            _ => Err(ENOENT),
        }
    }

    /// Pins the pages behind `[iova, iova + length)` for the kernel and
    /// returns their PFNs, one per page. The range must start page
    /// aligned in its memory, and areas inside it must end on a page
    /// boundary (`EINVAL`); `EPERM` without the needed protection. Each
    /// area is checked in that order as the walk reaches it.
    pub(crate) fn pin_pages(&self, iova: u64, length: u64, write: bool) -> Result<KVec<u64>> {
        if length == 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
        self.with_ioas(|ioas| {
            let mut iopt = ioas.iopt.lock();
            iopt.make_pages_in(iova, last)?;
            let mut pfns = KVec::new();
            let (reached, result) = iopt.for_each_access_piece(iova, last, |p| {
                // As C: a piece being unmapped or not page aligned at its
                // edges is EINVAL before a missing protection is EPERM.
                if p.area.access_prevented()
                    || p.start_byte % PAGE_SIZE_U64 != 0
                    || (!p.is_final && (p.start_byte + (p.last - p.iova) + 1) % PAGE_SIZE_U64 != 0)
                {
                    return Err(EINVAL);
                }
                check_piece(p, write)?;
                if write && !p.area.writable() {
                    return Err(EPERM);
                }
                let pages = p.area.made_pages()?;
                let (first, last_idx) = page_span(p.start_byte, p.last - p.iova + 1);
                pfns.reserve((last_idx - first + 1) as usize, GFP_KERNEL)?;
                pages.access_pin(first, last_idx)?;
                // Room was reserved: cannot fail once pinned.
                if let Err(e) = pages.access_pfns(first, last_idx, &mut pfns) {
                    pages.access_unpin(first, last_idx);
                    return Err(e);
                }
                p.area.add_access();
                if self.locks_areas {
                    p.area.add_lock();
                }
                Ok(())
            });
            if let Err(e) = result {
                if reached > iova {
                    unpin_locked(&iopt, iova, reached - 1, self.locks_areas);
                }
                return Err(e);
            }
            // As type1, a page pinned while the VFIO container's dirty log
            // runs counts as dirty.
            iopt.log_dirty(iova, last);
            Ok(pfns)
        })
    }

    /// Drops the pins [`Access::pin_pages`] took on exactly this range.
    /// Works while the access is being moved to another IOAS.
    pub(crate) fn unpin_pages(&self, iova: u64, length: u64) {
        if length == 0 {
            return;
        }
        let Some(last) = iova.checked_add(length - 1) else {
            return;
        };
        let att = self.attachment.lock();
        if let Some(ioas) = &att.ioas {
            unpin_locked(&ioas.iopt.lock(), iova, last, self.locks_areas);
        }
    }

    /// Reads (or writes, per `flags`) `buf` from (to) IOAS memory at
    /// `iova`. No pin is left behind and nothing is charged.
    pub(crate) fn rw(&self, iova: u64, buf: &mut [u8], flags: RwFlags) -> Result {
        if buf.is_empty() {
            return Err(EINVAL);
        }
        let last = iova.checked_add(buf.len() as u64 - 1).ok_or(EOVERFLOW)?;
        self.with_ioas(|ioas| {
            let mut iopt = ioas.iopt.lock();
            iopt.make_pages_in(iova, last)?;
            let mut done = 0usize;
            let (reached, result) = iopt.for_each_access_piece(iova, last, |p| {
                check_piece(p, flags.write)?;
                if flags.write && !p.area.writable() {
                    return Err(EPERM);
                }
                // A dma-buf's memory is not reached through accesses.
                if p.area.pages.is_dmabuf() {
                    return Err(EINVAL);
                }
                let n = (p.last - p.iova + 1) as usize;
                let chunk = &mut buf[done..done + n];
                let pages = p.area.made_pages()?;
                let route = pages.rw_route(p.start_byte, n as u64, flags.slow_path, flags.kthread);
                match route {
                    RwRoute::UserCopy(addr) => user_copy(addr, chunk, flags.write)?,
                    RwRoute::OwnerMm(addr) => {
                        pages.rw_owner_mm(addr, p.start_byte, chunk, flags.write)?
                    }
                    RwRoute::OnePage => pages.rw_one_page(p.start_byte, chunk, flags.write)?,
                    RwRoute::Pages => pages.rw_pages(p.start_byte, chunk, flags.write)?,
                }
                done += n;
                Ok(())
            });
            // As type1, what was written while the VFIO container's dirty
            // log runs counts as dirty.
            if flags.write {
                match result {
                    Ok(()) => iopt.log_dirty(iova, last),
                    Err(_) if reached > iova => iopt.log_dirty(iova, reached - 1),
                    Err(_) => {}
                }
            }
            result
        })
    }
}

/// The checks every access makes on a piece: not being unmapped
/// (`EINVAL`), and readable or writable as asked (`EPERM`).
fn check_piece(p: &AccessPiece<'_>, write: bool) -> Result {
    if p.area.access_prevented() {
        return Err(EINVAL);
    }
    let allowed = if write {
        p.area.prot.write
    } else {
        p.area.prot.read
    };
    if !allowed {
        return Err(EPERM);
    }
    Ok(())
}

/// Drops one access pin from each piece of `[iova, last]`, and the lock
/// it held on the area if `locks`.
fn unpin_locked(iopt: &crate::io_pagetable::IoPagetable, iova: u64, last: u64, locks: bool) {
    let _ = iopt.for_each_access_piece(iova, last, |p| {
        let (first, last_idx) = page_span(p.start_byte, p.last - p.iova + 1);
        // Pinned pieces have their pages objects.
        if let Some(pages) = p.area.pages.made() {
            pages.access_unpin(first, last_idx);
        }
        p.area.remove_access();
        if locks {
            p.area.remove_lock();
        }
        Ok(())
    });
}

/// Copies between `buf` and the current process's memory at `addr`.
fn user_copy(addr: u64, buf: &mut [u8], to_user: bool) -> Result {
    let ptr = UserPtr::from_addr(usize::try_from(addr).map_err(|_| EFAULT)?);
    let slice = UserSlice::new(ptr, buf.len());
    if to_user {
        slice.writer().write_slice(buf)
    } else {
        slice.reader().read_slice(buf)
    }
}
