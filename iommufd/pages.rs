// SPDX-License-Identifier: GPL-2.0

//! Pages objects: the user memory behind IOAS areas.
//!
//! A [`Pages`] describes one range of user memory: a range of virtual
//! addresses in one process, or a range of a file (memfd). Areas refer to it
//! by reference count; `IOAS_COPY` makes new areas that share it.
//!
//! Nothing is pinned until a domain or an in-kernel access needs the pages.
//! Each page index then carries a count of its users (domains' areas and
//! access pins) and, while that is nonzero, exactly one long-term pin,
//! charged once to RLIMIT_MEMLOCK, however many users share it. The PFNs
//! live in a [`PageTable`] next to their counts.

use crate::{
    page_table::PageTable,
    pin::{self, Charge, PinFrom, UserRef},
    sys::{self, Capability},
};
use kernel::{
    fs::File,
    mm::Mm,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
    task::Task,
};

/// `PAGE_SIZE` as a `u64`.
pub(crate) const PAGE_SIZE_U64: u64 = PAGE_SIZE as u64;

/// Where the memory of a pages object lives.
pub(crate) enum PagesSource {
    /// User virtual addresses from `base`, page aligned, of the owner's mm.
    User {
        /// First byte of the first page.
        base: u64,
    },
    /// A file's pages from offset `base`, page aligned.
    File {
        /// The file, held for as long as the pages object lives.
        file: ARef<File>,
        /// File offset of the first page.
        base: u64,
    },
}

/// Whose RLIMIT_MEMLOCK a pin is charged to (`IOMMU_OPTION_RLIMIT_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccountMode {
    /// Not charged: the creator had `CAP_IPC_LOCK`.
    None,
    /// Charged to the user (`user->locked_vm`), as mainline's default.
    User,
    /// Charged to the process (`mm->pinned_vm`), as VFIO type1 does.
    Mm,
}

/// The process a pages object belongs to and is charged to, the pinned
/// pages and their count; `IOAS_CHANGE_PROCESS` moves the charge.
pub(crate) struct PagesState {
    /// The owner's address space, held with `mmgrab`.
    mm: ARef<Mm>,
    /// The owner's user, whose `locked_vm` is charged in user mode.
    user: UserRef,
    /// The owner's thread group leader, whose RLIMIT_MEMLOCK applies.
    task: ARef<Task>,
    /// Pages pinned (and charged) now.
    npinned: u64,
    /// Page index -> `pfn << USER_BITS | users`, for pinned pages only.
    pfns: PageTable,
}

impl PagesState {
    fn charge(&self) -> Charge<'_> {
        Charge {
            mm: &self.mm,
            user: &self.user,
            task: &self.task,
        }
    }
}

/// Bits of a PFN record that count the users of a page; the PFN is above
/// them.
const USER_BITS: u32 = 20;
const USER_MASK: u64 = (1 << USER_BITS) - 1;

/// A range of user memory shared by one or more areas.
#[pin_data(PinnedDrop)]
pub(crate) struct Pages {
    /// Where the memory is.
    pub(crate) source: PagesSource,
    /// Length in bytes from the first page's start.
    pub(crate) len: u64,
    /// Whether the memory may be mapped writable.
    pub(crate) writable: bool,
    /// How pins are charged.
    pub(crate) account_mode: AccountMode,
    /// Who is charged, how much, and the pinned pages.
    #[pin]
    state: Mutex<PagesState>,
}

/// A byte range to turn into a pages object: `[start, start + length)` of
/// user VA or file offset.
pub(crate) struct PagesRequest {
    /// The memory.
    pub(crate) kind: PagesKind,
    /// First byte (user VA or file offset); need not be page aligned.
    pub(crate) start: u64,
    /// Length in bytes, nonzero.
    pub(crate) length: u64,
    /// Whether it will be mapped writable.
    pub(crate) writable: bool,
    /// The file context's accounting mode.
    pub(crate) ctx_mode: AccountMode,
}

/// User memory or a file.
pub(crate) enum PagesKind {
    /// The caller's virtual memory.
    User,
    /// A file, taken by descriptor.
    File(ARef<File>),
}

impl Pages {
    /// Creates a pages object for `req`, owned by the current process.
    /// Returns it with the offset of `req.start` inside its first page.
    ///
    /// `EINVAL` for an empty or nearly 2^64-byte length; `ENOMEM`.
    pub(crate) fn new(req: PagesRequest) -> Result<(Arc<Pages>, u64)> {
        if req.length == 0 || req.length > u64::MAX - PAGE_SIZE_U64 {
            return Err(EINVAL);
        }
        let mm = kernel::current!()
            .mm()
            .map(|mm| ARef::from(&**mm))
            .ok_or(EINVAL)?;
        let start_byte = req.start % PAGE_SIZE_U64;
        let base = req.start - start_byte;
        let source = match req.kind {
            PagesKind::User => PagesSource::User { base },
            PagesKind::File(file) => PagesSource::File { file, base },
        };
        let mut account_mode = if sys::capable(Capability::IpcLock) {
            AccountMode::None
        } else {
            AccountMode::User
        };
        if req.ctx_mode == AccountMode::Mm && account_mode == AccountMode::User {
            account_mode = AccountMode::Mm;
        }
        let task = ARef::from(kernel::current!().group_leader());
        let npages = (start_byte + req.length).div_ceil(PAGE_SIZE_U64);
        let pages = Arc::pin_init(
            pin_init!(Pages {
                source,
                len: start_byte + req.length,
                writable: req.writable,
                account_mode,
                state <- new_mutex!(PagesState {
                    mm,
                    user: UserRef::current(),
                    task,
                    npinned: 0,
                    pfns: PageTable::with_limit(npages),
                }),
            }),
            GFP_KERNEL,
        )?;
        Ok((pages, start_byte))
    }

    /// The user VA or file offset of byte `offset` of the object, the
    /// allocator's hint for IOVA alignment.
    pub(crate) fn address_of(&self, offset: u64) -> u64 {
        match &self.source {
            PagesSource::User { base } | PagesSource::File { base, .. } => {
                base.wrapping_add(offset)
            }
        }
    }

    /// Whether the memory is a file's.
    pub(crate) fn is_file(&self) -> bool {
        matches!(self.source, PagesSource::File { .. })
    }

    /// Makes the current process the owner, as `IOAS_CHANGE_PROCESS` does:
    /// pinned pages are charged to it first (`ENOMEM` past its limit, and
    /// then nothing changes) and given back by the old owner.
    pub(crate) fn change_owner(&self, mm: &ARef<Mm>) -> Result {
        let mut st = self.state.lock();
        let new = PagesState {
            mm: mm.clone(),
            user: UserRef::current(),
            task: ARef::from(kernel::current!().group_leader()),
            npinned: st.npinned,
            pfns: PageTable::with_limit(0),
        };
        let mode = self.charge_mode();
        pin::account(&new.charge(), mode, new.npinned, true)?;
        let mut old = core::mem::replace(&mut *st, new);
        core::mem::swap(&mut st.pfns, &mut old.pfns);
        let _ = pin::account(&old.charge(), mode, old.npinned, false);
        Ok(())
    }

    /// The `locked_vm` to charge: none, the user's, or the mm's.
    fn charge_mode(&self) -> Option<bool> {
        match self.account_mode {
            AccountMode::None => None,
            AccountMode::User => Some(false),
            AccountMode::Mm => Some(true),
        }
    }

    /// Adds one user to each page of `[first, last]` (page indexes), pinning
    /// and charging the pages that had none. All or nothing: on error
    /// (`EFAULT`, `ENOMEM` past RLIMIT_MEMLOCK, ...) nothing changes.
    pub(crate) fn add_users(&self, first: u64, last: u64) -> Result {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut batch = KVec::<u64>::new();
        let mut idx = first;
        while idx <= last {
            // Pages that have users gain one, up to the first that has none.
            idx = st.pfns.modify_while(idx, last, |entry| {
                let more = *entry != 0 && *entry & USER_MASK != USER_MASK;
                if more {
                    *entry += 1;
                }
                more
            });
            if idx > last {
                break;
            }
            let result = if st.pfns.get(idx) != 0 {
                // The user count is full.
                Err(ENOMEM)
            } else {
                self.pin_hole(st, &mut batch, &mut idx, last)
            };
            if let Err(e) = result {
                if idx > first {
                    self.remove_users_locked(st, first, idx - 1);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Pins, charges and records the unpinned pages from `*idx` up to the
    /// next pinned page or `last`, at most one batch, and moves `*idx`
    /// past them. On error nothing changes.
    fn pin_hole(
        &self,
        st: &mut PagesState,
        batch: &mut KVec<u64>,
        idx: &mut u64,
        last: u64,
    ) -> Result {
        let start = *idx;
        let n = st.pfns.zeros_from(start, last, batch_pages());
        batch.clear();
        batch.resize(n as usize, 0, GFP_KERNEL)?;
        pin::pin_pages(&self.pin_from(st, start), self.writable, batch)?;
        if let Err(e) = pin::account(&st.charge(), self.charge_mode(), n, true) {
            self.unpin_pfns(batch);
            return Err(e);
        }
        let recorded = st.pfns.fill(start, start + n - 1, |i| {
            batch[(i - start) as usize] << USER_BITS | 1
        });
        if let Err(e) = recorded {
            self.unpin_pfns(batch);
            let _ = pin::account(&st.charge(), self.charge_mode(), n, false);
            return Err(e);
        }
        st.npinned += n;
        *idx += n;
        Ok(())
    }

    /// Unpins a list of PFNs, a run of consecutive ones per call.
    fn unpin_pfns(&self, pfns: &[u64]) {
        let mut runs = PfnRuns::new();
        for (i, &pfn) in pfns.iter().enumerate() {
            if let Some((_, start, n)) = runs.push(i as u64, pfn) {
                pin::unpin_run(start, n, self.writable);
            }
        }
        if let Some((_, start, n)) = runs.finish() {
            pin::unpin_run(start, n, self.writable);
        }
    }

    /// Where page `idx` is pinned from.
    fn pin_from<'a>(&'a self, st: &'a PagesState, idx: u64) -> PinFrom<'a> {
        let at = idx * PAGE_SIZE_U64;
        match &self.source {
            PagesSource::User { base } => PinFrom::User {
                mm: &st.mm,
                addr: base + at,
            },
            PagesSource::File { file, base } => PinFrom::File {
                file,
                offset: base + at,
            },
        }
    }

    /// Drops one user from each page of `[first, last]`, which
    /// [`Pages::add_users`] added; pages left without users are unpinned
    /// and their charge given back.
    pub(crate) fn remove_users(&self, first: u64, last: u64) {
        let mut st = self.state.lock();
        self.remove_users_locked(&mut st, first, last);
    }

    fn remove_users_locked(&self, st: &mut PagesState, first: u64, last: u64) {
        let mut freed = 0u64;
        let mut runs = PfnRuns::new();
        let writable = self.writable;
        st.pfns.modify(first, last, |idx, entry| {
            if *entry & USER_MASK > 1 {
                *entry -= 1;
                return;
            }
            if *entry == 0 {
                return;
            }
            // The last user: unpin, a run of consecutive PFNs at a time.
            freed += 1;
            if let Some((_, start, n)) = runs.push(idx, *entry >> USER_BITS) {
                pin::unpin_run(start, n, writable);
            }
            *entry = 0;
        });
        if let Some((_, start, n)) = runs.finish() {
            pin::unpin_run(start, n, writable);
        }
        st.npinned -= freed;
        let _ = pin::account(&st.charge(), self.charge_mode(), freed, false);
    }

    /// Calls `f(index, pfn, count)` for each run of consecutive PFNs over
    /// `[first, last]`, which must all be pinned (have users); `EFAULT`
    /// after the runs before the first page that is not.
    pub(crate) fn for_each_run(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, u64) -> Result,
    ) -> Result {
        let st = self.state.lock();
        let mut runs = PfnRuns::new();
        let mut result = st.pfns.read(first, last, |start, entries| {
            let mut i = 0;
            while i < entries.len() {
                if entries[i] == 0 {
                    return Err(EFAULT);
                }
                // The longest run of consecutive PFNs from here in this piece.
                let pfn = entries[i] >> USER_BITS;
                let n = 1 + entries[i + 1..]
                    .iter()
                    .zip(pfn + 1..)
                    .take_while(|&(&e, want)| e != 0 && e >> USER_BITS == want)
                    .count();
                if let Some((idx, pfn, n)) = runs.push_run(start + i as u64, pfn, n as u64) {
                    f(idx, pfn, n)?;
                }
                i += n;
            }
            Ok(())
        });
        if let Some((idx, pfn, n)) = runs.finish() {
            let flushed = f(idx, pfn, n);
            result = result.and(flushed);
        }
        result
    }

    /// Appends the PFN of each page of `[first, last]` to `out`; `EFAULT`
    /// if one is not pinned.
    pub(crate) fn pinned_pfns(&self, first: u64, last: u64, out: &mut KVec<u64>) -> Result {
        let st = self.state.lock();
        st.pfns.read(first, last, |_, entries| {
            for &entry in entries {
                if entry == 0 {
                    return Err(EFAULT);
                }
                out.push(entry >> USER_BITS, GFP_KERNEL)?;
            }
            Ok(())
        })
    }

    /// Copies between `buf` and the memory from byte `start` of the object
    /// through the pages themselves: pinned pages are used as they are,
    /// the others are pinned for the copy only. Charges nothing.
    pub(crate) fn rw_pages(&self, start: u64, buf: &mut [u8], write: bool) -> Result {
        let st = self.state.lock();
        let mut done = 0usize;
        while done < buf.len() {
            let at = start + done as u64;
            let (idx, offset) = (at / PAGE_SIZE_U64, (at % PAGE_SIZE_U64) as usize);
            let n = (PAGE_SIZE - offset).min(buf.len() - done);
            let chunk = &mut buf[done..done + n];
            match st.pfns.get(idx) {
                0 => {
                    let mut pfn = [0u64];
                    pin::pin_pages(&self.pin_from(&st, idx), self.writable, &mut pfn)?;
                    pin::copy_page(pfn[0], offset, chunk, write);
                    pin::unpin_run(pfn[0], 1, write);
                }
                entry => pin::copy_page(entry >> USER_BITS, offset, chunk, write),
            }
            done += n;
        }
        Ok(())
    }

    /// The user address of byte `start`, if the memory is the current
    /// process's own, so that it can be copied with plain user copies.
    pub(crate) fn current_user_address(&self, start: u64) -> Option<u64> {
        let PagesSource::User { base } = self.source else {
            return None;
        };
        let st = self.state.lock();
        let current = kernel::current!().mm().map(|mm| mm.as_raw());
        (current == Some(st.mm.as_raw())).then(|| base + start)
    }
}

#[pinned_drop]
impl PinnedDrop for Pages {
    fn drop(self: Pin<&mut Self>) {
        // Every user gives its pages back before the last area goes.
        if self.state.lock().npinned != 0 {
            pr_warn!("iommufd_rs: pages object freed with pins held\n");
        }
    }
}

/// Groups (index, PFN) pairs, pushed in order, into runs of consecutive
/// PFNs: `(first index, first PFN, count)`.
struct PfnRuns {
    run: Option<(u64, u64, u64)>,
}

impl PfnRuns {
    fn new() -> Self {
        Self { run: None }
    }

    /// Adds a page; returns the run it ends, if it starts a new one.
    fn push(&mut self, idx: u64, pfn: u64) -> Option<(u64, u64, u64)> {
        self.push_run(idx, pfn, 1)
    }

    /// Adds `count` pages of consecutive PFNs from `pfn`; returns the run
    /// it ends, if it starts a new one.
    fn push_run(&mut self, idx: u64, pfn: u64, count: u64) -> Option<(u64, u64, u64)> {
        match &mut self.run {
            Some((_, start, n)) if *start + *n == pfn => {
                *n += count;
                None
            }
            run => run.replace((idx, pfn, count)),
        }
    }

    /// The last run.
    fn finish(self) -> Option<(u64, u64, u64)> {
        self.run
    }
}

/// Pages pinned per GUP batch: the test memory limit's worth of 8-byte
/// entries, at least one.
fn batch_pages() -> u64 {
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    let limit = crate::selftest::temp_memory_limit();
    #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
    let limit = 65536;
    (limit / 8).max(1)
}
