// SPDX-License-Identifier: GPL-2.0

//! Page pinning, pin accounting and page access: the FFI to GUP, the memfd
//! folio pinning API, RLIMIT_MEMLOCK accounting and page copies.
//!
//! Pinned pages are handed around as PFNs (`u64`). A PFN returned by
//! [`pin_pages`] carries one `FOLL_PIN` pin that must go back through
//! [`unpin_run`] exactly once.

use super::PAGE_SIZE_U64;
use kernel::{
    bindings,
    fs::File,
    mm::Mm,
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef,
    sync::atomic::{Atomic, Relaxed},
    task::Task,
};

// `struct page` holds an empty arch spinlock type on this config, which the
// lint flags; only pointers cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn iommufd_rs_page_ref_count(page: *mut bindings::page) -> u32;
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn iommufd_rs_page_compound(page: *mut bindings::page) -> bool;
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn iommufd_rs_put_page(page: *mut bindings::page);
    fn iommufd_rs_page_to_pfn(page: *mut bindings::page) -> usize;
    fn iommufd_rs_pages_to_pfns(slots: *mut u64, n: usize);
    fn iommufd_rs_pfn_to_page(pfn: usize) -> *mut bindings::page;
    fn iommufd_rs_kthread_copy(
        mm: *mut bindings::mm_struct,
        addr: usize,
        buf: *mut core::ffi::c_void,
        len: usize,
        to_user: bool,
    ) -> i32;
    fn iommufd_rs_folio_page(folio: *mut bindings::folio, n: usize) -> *mut bindings::page;
    fn iommufd_rs_folio_nr_pages(folio: *mut bindings::folio) -> usize;
    fn iommufd_rs_current_user_get() -> *mut bindings::user_struct;
    fn iommufd_rs_task_memlock_pages(task: *mut bindings::task_struct) -> usize;
    fn iommufd_rs_mm_pinned_vm_add(mm: *mut bindings::mm_struct, npages: i64);
    fn iommufd_rs_account_locked_vm(
        mm: *mut bindings::mm_struct,
        npages: usize,
        inc: bool,
        task: *mut bindings::task_struct,
    ) -> i32;
    fn iommufd_rs_memcpy_page(pfn: usize, offset: usize, buf: *mut u8, len: usize, to_page: bool);
    fn iommufd_rs_page_address(pfn: usize) -> *mut u8;
}

/// Runs `f` on the page at user address `uaddr` of the current process,
/// faulted in for reading and referenced (not pinned) for the call.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
fn with_user_page<R>(uaddr: usize, f: impl FnOnce(*mut bindings::page) -> R) -> Result<R> {
    let mut page: *mut bindings::page = core::ptr::null_mut();
    // SAFETY: `page` has room for the one page asked for; the reference
    // GUP takes is dropped below.
    let got = unsafe { bindings::get_user_pages_fast(uaddr, 1, 0, &mut page) };
    if got < 0 {
        return Err(Error::from_errno(got as i32));
    }
    if got != 1 || page.is_null() {
        return Err(EFAULT);
    }
    let result = f(page);
    // SAFETY: Drops the reference GUP took.
    unsafe { iommufd_rs_put_page(page) };
    Ok(result)
}

/// The number of long-term pins on the page at user address `uaddr` of the
/// current process, or `None` for a page of a compound (huge) page, whose
/// count is not per page.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn user_page_pins(uaddr: usize) -> Result<Option<u32>> {
    with_user_page(uaddr, |page| {
        // SAFETY: `page` is valid and referenced for the call.
        unsafe {
            (!iommufd_rs_page_compound(page))
                .then(|| iommufd_rs_page_ref_count(page) / bindings::GUP_PIN_COUNTING_BIAS)
        }
    })
}

/// The PFN of the page at user address `uaddr` of the current process.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn user_page_pfn(uaddr: usize) -> Result<u64> {
    // SAFETY: `page` is valid and referenced for the call.
    with_user_page(uaddr, |page| unsafe { iommufd_rs_page_to_pfn(page) } as u64)
}

/// Checks that every page of `[uptr, uptr + length)` carries `refs` pins:
/// `EINVAL` for an unaligned range, `EIO` on a mismatch.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn check_user_page_pins(uptr: usize, length: usize, refs: u32) -> Result {
    if length % PAGE_SIZE != 0 || uptr % PAGE_SIZE != 0 || uptr.checked_add(length).is_none() {
        return Err(EINVAL);
    }
    for page in (uptr..uptr + length).step_by(PAGE_SIZE) {
        if let Some(pins) = user_page_pins(page)? {
            if pins != refs {
                return Err(EIO);
            }
        }
    }
    Ok(())
}

/// Where pages to pin come from.
pub(crate) enum PinFrom<'a> {
    /// User memory of `mm` from page-aligned address `addr`.
    User {
        /// The address space; pinned through GUP-fast when it is the
        /// current one, else remotely under its mmap lock.
        mm: &'a Mm,
        /// First byte of the first page.
        addr: u64,
    },
    /// A memfd from page-aligned offset `offset`.
    File {
        /// The file.
        file: &'a File,
        /// First byte of the first page.
        offset: u64,
    },
}

/// Pins `out.len()` pages from `from` and writes their PFNs to `out`, each
/// with one long-term pin. All or nothing: on error nothing stays pinned.
/// `EFAULT` when the memory is not there or its process is gone.
pub(crate) fn pin_pages(from: &PinFrom<'_>, writable: bool, out: &mut [u64]) -> Result {
    let mut done = 0;
    while done < out.len() {
        let step = match from {
            PinFrom::User { mm, addr } => pin_user(
                mm,
                addr + done as u64 * PAGE_SIZE_U64,
                writable,
                &mut out[done..],
            ),
            PinFrom::File { file, offset } => {
                pin_file(file, offset + done as u64 * PAGE_SIZE_U64, &mut out[done..])
            }
        };
        match step {
            Ok(n) if n > 0 => done += n,
            other => {
                for &pfn in &out[..done] {
                    // SAFETY: GUP or `memfd_pin_folios` gave us one pin on
                    // each of these pages in this call; we give it back.
                    unsafe { unpin_run(pfn, 1, false) };
                }
                return Err(match other {
                    Err(e) => e,
                    Ok(_) => EFAULT,
                });
            }
        }
    }
    Ok(())
}

/// One GUP call: pins up to `out.len()` pages at `addr` of `mm` and
/// returns how many it pinned.
fn pin_user(mm: &Mm, addr: u64, writable: bool, out: &mut [u64]) -> Result<usize> {
    let mut flags = bindings::FOLL_LONGTERM;
    if writable {
        flags |= bindings::FOLL_WRITE;
    }
    // GUP writes page pointers into `out`, which are then turned into PFNs
    // in place: `u64` and pointers have the same size and alignment here.
    const _: () = assert!(size_of::<u64>() == size_of::<*mut bindings::page>());
    let pages = out.as_mut_ptr().cast::<*mut bindings::page>();
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    // SAFETY: `current` is always valid in process context.
    let current_mm = unsafe { (*bindings::get_current()).mm };
    let got = if core::ptr::eq(current_mm, mm.as_raw()) {
        // SAFETY: `pages` has room for `out.len()` entries; the range is
        // checked by GUP itself.
        i64::from(unsafe { bindings::pin_user_pages_fast(addr, out.len() as i32, flags, pages) })
    } else {
        let Some(user) = mm.mmget_not_zero() else {
            return Err(EFAULT);
        };
        let _lock = user.mmap_read_lock();
        // SAFETY: `user` holds the mm's users count and we hold its mmap
        // lock for reading, as GUP requires with a NULL `locked`; `pages`
        // has room for `out.len()` entries.
        unsafe {
            bindings::pin_user_pages_remote(
                user.as_raw(),
                addr,
                out.len(),
                flags,
                pages,
                core::ptr::null_mut(),
            ) as i64
        }
    };
    if got < 0 {
        return Err(Error::from_errno(got as i32));
    }
    let got = got as usize;
    // SAFETY: GUP wrote a valid pinned page pointer into each of the first
    // `got` slots, which are ours to rewrite in place.
    unsafe { iommufd_rs_pages_to_pfns(out.as_mut_ptr(), got) };
    Ok(got)
}

/// Most folios asked for in one `memfd_pin_folios` call.
const MAX_FOLIOS: usize = 64;

/// One `memfd_pin_folios` call: pins the pages of up to `out.len()` pages
/// at `offset` of `file`, one pin per page, and returns how many.
fn pin_file(file: &File, offset: u64, out: &mut [u64]) -> Result<usize> {
    let mut folios = [core::ptr::null_mut::<bindings::folio>(); MAX_FOLIOS];
    // As C, offsets past `i64::MAX` (and ranges that wrap) reach
    // `memfd_pin_folios` as negative `loff_t`s, which it refuses (EINVAL).
    let last = offset.wrapping_add(out.len() as u64 * PAGE_SIZE_U64 - 1) as i64;
    let start = offset as i64;
    let mut first_offset: kernel::ffi::c_ulong = 0;
    // SAFETY: `folios` has room for `MAX_FOLIOS` entries; the file is
    // referenced by the caller for the whole call.
    let nfolios = unsafe {
        bindings::memfd_pin_folios(
            file.as_ptr(),
            start,
            last,
            folios.as_mut_ptr(),
            MAX_FOLIOS as u32,
            &mut first_offset,
        )
    };
    if nfolios < 0 {
        return Err(Error::from_errno(nfolios as i32));
    }
    let nfolios = nfolios as usize;
    let mut page_in_folio = first_offset as usize / PAGE_SIZE;
    let mut done = 0;
    let mut result = Ok(());
    for &folio in &folios[..nfolios] {
        // SAFETY: `memfd_pin_folios` returned this folio pinned once.
        let nr = unsafe { iommufd_rs_folio_nr_pages(folio) };
        let npin = (nr - page_in_folio).min(out.len() - done);
        if result.is_ok() && npin > 1 {
            // SAFETY: The folio is pinned, so more pins may be added.
            let rc = unsafe { bindings::folio_add_pins(folio, (npin - 1) as u32) };
            if rc != 0 {
                result = Err(Error::from_errno(rc));
            }
        }
        if result.is_err() {
            // Give back the folio pin; pages already recorded are unpinned
            // below.
            // SAFETY: The folio holds the pin `memfd_pin_folios` took.
            unsafe { bindings::unpin_folio(folio) };
            continue;
        }
        for i in 0..npin {
            // SAFETY: `page_in_folio + i` is inside the folio.
            let page = unsafe { iommufd_rs_folio_page(folio, page_in_folio + i) };
            // SAFETY: `page` is a valid page.
            out[done] = unsafe { iommufd_rs_page_to_pfn(page) } as u64;
            done += 1;
        }
        page_in_folio = 0;
    }
    if let Err(e) = result {
        for &pfn in &out[..done] {
            // SAFETY: Each page recorded holds one pin taken in this call
            // (the folio's own, or one `folio_add_pins` added).
            unsafe { unpin_run(pfn, 1, false) };
        }
        return Err(e);
    }
    Ok(done)
}

/// Drops one pin from each of the `npages` pages from `pfn`, marking them
/// dirty if `dirty`.
///
/// # Safety
///
/// The caller owns one pin on each of those pages, taken by [`pin_pages`]
/// (or GUP), and gives it up here: nobody may use the pin afterwards.
pub(crate) unsafe fn unpin_run(pfn: u64, npages: u64, dirty: bool) {
    // SAFETY: By the caller's promise each page of the run is pinned, so
    // its `struct page` is live; the range call walks the pages of
    // consecutive PFNs itself.
    unsafe {
        let page = iommufd_rs_pfn_to_page(pfn as usize);
        bindings::unpin_user_page_range_dirty_lock(page, npages as usize, dirty);
    }
}

/// From a kernel thread without an address space (vfio's
/// `IOMMUFD_ACCESS_RW_KTHREAD` callers), copies between `buf` and user
/// address `addr` of `mm` by borrowing that address space. `None` if the
/// current thread is not such a thread or the address space is gone.
pub(crate) fn kthread_copy(mm: &Mm, addr: u64, buf: &mut [u8], write: bool) -> Option<Result> {
    let Ok(addr) = usize::try_from(addr) else {
        return Some(Err(EFAULT));
    };
    // SAFETY: `mm` is a live mm (we hold a reference); the helper takes a
    // users count before borrowing it and checks that the current thread
    // is a kernel thread without one; `buf` is valid for its length.
    let rc = unsafe {
        iommufd_rs_kthread_copy(mm.as_raw(), addr, buf.as_mut_ptr().cast(), buf.len(), write)
    };
    match rc {
        0 => Some(Ok(())),
        1 => None,
        e => Some(Err(Error::from_errno(e))),
    }
}

/// Copies between `buf` and the page at page-aligned user address `addr`
/// of `mm`, from byte `offset` (the range must lie in the page), through a
/// pin held for the copy only: taken from the address space as it is now,
/// writable only for a write, not long-term. `None` if the address space
/// is gone.
pub(crate) fn rw_user_page(
    mm: &Mm,
    addr: u64,
    offset: usize,
    buf: &mut [u8],
    write: bool,
) -> Option<Result> {
    if offset + buf.len() > PAGE_SIZE {
        return Some(Err(EINVAL));
    }
    let user = mm.mmget_not_zero()?;
    let Ok(addr) = usize::try_from(addr) else {
        return Some(Err(EFAULT));
    };
    let flags = if write { bindings::FOLL_WRITE } else { 0 };
    let mut page: *mut bindings::page = core::ptr::null_mut();
    let got = {
        let _lock = user.mmap_read_lock();
        // SAFETY: `user` holds the mm's users count and we hold its mmap
        // lock for reading, as GUP requires with a NULL `locked`; `page`
        // has room for the one page asked for.
        unsafe {
            bindings::pin_user_pages_remote(
                user.as_raw(),
                addr,
                1,
                flags,
                &mut page,
                core::ptr::null_mut(),
            )
        }
    };
    if got != 1 || page.is_null() {
        return Some(Err(if got < 0 {
            Error::from_errno(got as i32)
        } else {
            EINVAL
        }));
    }
    // SAFETY: GUP returned `page` pinned.
    let pfn = unsafe { iommufd_rs_page_to_pfn(page) } as u64;
    // SAFETY: The pin taken above holds the page until it is dropped below.
    unsafe { copy_page(pfn, offset, buf, write) };
    // Not marked dirty, as C's single-page path.
    // SAFETY: The pin taken above is ours, and nothing uses it any more.
    unsafe { unpin_run(pfn, 1, false) };
    Some(Ok(()))
}

/// Copies between `buf` and the page `pfn` at byte `offset`, which must
/// lie inside the page with `buf` (else nothing is copied).
///
/// # Safety
///
/// Page `pfn` is pinned, by the caller or by an owner the caller keeps
/// from unpinning it, for the whole call.
pub(crate) unsafe fn copy_page(pfn: u64, offset: usize, buf: &mut [u8], to_page: bool) {
    if offset + buf.len() > PAGE_SIZE {
        return;
    }
    // SAFETY: The page is pinned (the caller's promise), and the range was
    // checked to lie inside it; `buf` is valid for `buf.len()` bytes.
    unsafe { iommufd_rs_memcpy_page(pfn as usize, offset, buf.as_mut_ptr(), buf.len(), to_page) };
}

/// Pins and unpins the `npages` pages at page-aligned user address `addr`
/// of the current process, [`PinnedWindow::MAX_PAGES`] at a time, with
/// nothing but `pin_user_pages_fast` (long-term and writable, as a map
/// pins) and `unpin_user_pages`: the floor under the cost of a map that
/// pins. `EFAULT` if a page cannot be pinned.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn pin_unpin_floor(addr: usize, npages: usize) -> Result {
    let mut pages: KVec<*mut bindings::page> =
        KVec::with_capacity(PinnedWindow::MAX_PAGES, GFP_KERNEL)?;
    let mut done = 0;
    while done < npages {
        let want = (npages - done).min(PinnedWindow::MAX_PAGES);
        let at = addr.checked_add(done * PAGE_SIZE).ok_or(EFAULT)?;
        // SAFETY: `pages` has room for `MAX_PAGES` pointers; GUP checks the
        // range itself.
        let got = unsafe {
            bindings::pin_user_pages_fast(
                at,
                want as i32,
                bindings::FOLL_WRITE | bindings::FOLL_LONGTERM,
                pages.as_mut_ptr(),
            )
        };
        if got <= 0 {
            return Err(EFAULT);
        }
        // SAFETY: GUP pinned the first `got` pages of `pages` once each in
        // this call; the pins go back here and nothing keeps them.
        unsafe { bindings::unpin_user_pages(pages.as_mut_ptr(), got as usize) };
        done += got as usize;
    }
    Ok(())
}

/// Bits per page of a bitmap.
pub(crate) const BITS_PER_PAGE: u64 = PAGE_SIZE_U64 * 8;

/// A window of a user buffer of the current process pinned writable for a
/// short while (not long-term), as C's `iova_bitmap` pins the bitmap of a
/// dirty-bitmap read: at most [`PinnedWindow::MAX_PAGES`] pages at a time.
///
/// # Invariants
///
/// The entries of `pfns` are pages this window pinned once each (with
/// `FOLL_WRITE`), and holds until [`PinnedWindow::unpin`] or drop;
/// `addrs[i]` is the direct-map address of page `pfns[i]`. Both have room
/// for [`PinnedWindow::MAX_PAGES`] entries.
pub(crate) struct PinnedWindow {
    pfns: KVec<u64>,
    addrs: KVec<usize>,
}

// Pages are reached through the direct map, which holds every page only
// without highmem.
#[cfg(CONFIG_HIGHMEM)]
compile_error!("PinnedWindow needs every page in the direct map (no CONFIG_HIGHMEM)");

impl PinnedWindow {
    /// Most pages pinned at once: one page of page pointers, as C.
    pub(crate) const MAX_PAGES: usize = PAGE_SIZE / size_of::<*mut bindings::page>();

    /// An empty window (`ENOMEM` if its page lists cannot be allocated).
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            pfns: KVec::with_capacity(Self::MAX_PAGES, GFP_KERNEL)?,
            addrs: KVec::with_capacity(Self::MAX_PAGES, GFP_KERNEL)?,
        })
    }

    /// Pages pinned now.
    pub(crate) fn npages(&self) -> usize {
        self.pfns.len()
    }

    /// Drops the pages pinned.
    pub(crate) fn unpin(&mut self) {
        for &pfn in &self.pfns {
            // SAFETY: By the type invariant each page holds one pin of
            // ours; the list is emptied below.
            unsafe { unpin_run(pfn, 1, false) };
        }
        self.pfns.clear();
        self.addrs.clear();
    }

    /// Pins up to `npages` (at most [`Self::MAX_PAGES`]) writable pages of
    /// the current process from the page holding `addr`, after dropping
    /// those pinned before, and returns how many it pinned (GUP stops at
    /// the first page it cannot pin): `EFAULT` if none.
    pub(crate) fn pin(&mut self, addr: usize, npages: usize) -> Result<usize> {
        self.unpin();
        let npages = npages.min(Self::MAX_PAGES);
        if npages == 0 {
            return Err(EFAULT);
        }
        let pages = self.pfns.as_mut_ptr().cast::<*mut bindings::page>();
        // `u64` and pointers have the same size (asserted in `pin_user`).
        // SAFETY: `pfns` has room for `MAX_PAGES` pointers (type
        // invariant); GUP checks the range itself.
        let got = unsafe {
            bindings::pin_user_pages_fast(addr, npages as i32, bindings::FOLL_WRITE, pages)
        };
        if got <= 0 {
            return Err(EFAULT);
        }
        let got = (got as usize).min(npages);
        // SAFETY: GUP wrote a pinned page pointer into each of the first
        // `got` slots of the empty list, rewritten here as PFNs in place.
        unsafe {
            iommufd_rs_pages_to_pfns(self.pfns.as_mut_ptr(), got);
            self.pfns.inc_len(got);
        }
        for &pfn in &self.pfns {
            // SAFETY: The page is pinned, so its `struct page` is live.
            let addr = unsafe { iommufd_rs_page_address(pfn as usize) } as usize;
            // Cannot fail: `addrs` has room for `MAX_PAGES` (type invariant).
            let _ = self.addrs.push_within_capacity(addr);
        }
        // INVARIANT: those `got` pages are pinned once each, by this call,
        // and their addresses recorded.
        Ok(got)
    }

    /// Sets `nbits` bits from bit `offset` of pinned page `index`, as
    /// `bitmap_set` on the page's longs; out of range does nothing.
    pub(crate) fn set_bits(&self, index: usize, offset: u32, nbits: u32) {
        let (first, end) = (u64::from(offset), u64::from(offset) + u64::from(nbits));
        let Some(&addr) = self.addrs.get(index) else {
            return;
        };
        if nbits == 0 || end > BITS_PER_PAGE {
            return;
        }
        let words = addr as *mut u64;
        let (w0, w1) = ((first / 64) as usize, ((end - 1) / 64) as usize);
        for w in w0..=w1 {
            let lo = if w == w0 { first % 64 } else { 0 };
            let hi = if w == w1 { (end - 1) % 64 } else { 63 };
            let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
            // The user may write the page meanwhile, as with C's
            // `bitmap_set`: volatile accesses, no assumption on the value.
            // SAFETY: The page is pinned and mapped at `addrs[index]` (type
            // invariant); `w` is below `PAGE_SIZE / 8`, checked above.
            unsafe {
                let p = words.add(w);
                let old = if mask == u64::MAX {
                    0
                } else {
                    p.read_volatile()
                };
                p.write_volatile(old | mask);
            }
        }
    }
}

impl Drop for PinnedWindow {
    fn drop(&mut self) {
        self.unpin();
    }
}

/// A user (`struct user_struct`) whose `locked_vm` pins are charged to.
///
/// # Invariants
///
/// `ptr` is valid and holds a reference taken by `get_uid`.
pub(crate) struct UserRef {
    ptr: *mut bindings::user_struct,
}

// SAFETY: `user_struct` is refcounted and its `locked_vm` is atomic; the
// reference may be used and dropped from any thread.
unsafe impl Send for UserRef {}
// SAFETY: Only atomic fields are touched through a shared reference.
unsafe impl Sync for UserRef {}

impl UserRef {
    /// The current task's user.
    pub(crate) fn current() -> Self {
        // SAFETY: Always valid in process context; returns a new reference.
        let ptr = unsafe { iommufd_rs_current_user_get() };
        Self { ptr }
    }

    fn locked_vm(&self) -> &Atomic<i64> {
        // SAFETY: `ptr` is valid by the type invariant, and `locked_vm` is
        // only accessed atomically, by this module and by the kernel.
        unsafe { Atomic::from_ptr(&raw mut (*self.ptr).locked_vm.counter) }
    }
}

impl Drop for UserRef {
    fn drop(&mut self) {
        // SAFETY: Drops the reference taken in `current`.
        unsafe { bindings::free_uid(self.ptr) };
    }
}

/// Who a pages object's pins are charged to.
pub(crate) struct Charge<'a> {
    /// The owner's address space.
    pub(crate) mm: &'a Mm,
    /// The owner's user.
    pub(crate) user: &'a UserRef,
    /// The owner's thread group leader, whose RLIMIT_MEMLOCK applies.
    pub(crate) task: &'a ARef<Task>,
}

/// Charges (`inc`) or gives back `npages` pinned pages: to the user's
/// `locked_vm` (`per_mm` false) or the mm's (`per_mm` true), and, on
/// success, to the mm's `pinned_vm`. `ENOMEM` past RLIMIT_MEMLOCK.
pub(crate) fn account(c: &Charge<'_>, mode: Option<bool>, npages: u64, inc: bool) -> Result {
    if npages == 0 {
        return Ok(());
    }
    let n = i64::try_from(npages).map_err(|_| ENOMEM)?;
    match mode {
        None => {}
        Some(false) => {
            let locked = c.user.locked_vm();
            if inc {
                // SAFETY: The task is referenced by `c.task`.
                let limit = unsafe { iommufd_rs_task_memlock_pages(c.task.as_ptr()) };
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let mut cur = locked.load(Relaxed);
                loop {
                    let new = cur.checked_add(n).ok_or(ENOMEM)?;
                    if new > limit {
                        return Err(ENOMEM);
                    }
                    match locked.cmpxchg(cur, new, Relaxed) {
                        Ok(_) => break,
                        Err(seen) => cur = seen,
                    }
                }
            } else {
                locked.fetch_add(-n, Relaxed);
            }
        }
        Some(true) => {
            // A process that is gone has no lock count left to give back to.
            match c.mm.mmget_not_zero() {
                None if inc => return Err(EINVAL),
                None => {}
                Some(user) => {
                    // SAFETY: `user` holds the mm's users count for the
                    // call; the task is referenced by `c.task`.
                    let rc = unsafe {
                        iommufd_rs_account_locked_vm(
                            user.as_raw(),
                            npages as usize,
                            inc,
                            c.task.as_ptr(),
                        )
                    };
                    if rc != 0 {
                        return Err(Error::from_errno(rc));
                    }
                }
            }
        }
    }
    // SAFETY: `c.mm` is a grabbed mm; `pinned_vm` is an atomic counter.
    unsafe { iommufd_rs_mm_pinned_vm_add(c.mm.as_raw(), if inc { n } else { -n }) };
    Ok(())
}
