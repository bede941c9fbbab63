// SPDX-License-Identifier: GPL-2.0

//! Pages objects: the user memory behind IOAS areas.
//!
//! A [`Pages`] describes one range of user memory: a range of virtual
//! addresses in one process, or a range of a file (memfd). Areas refer to it
//! by reference count; `IOAS_COPY` makes new areas that share it. (In test
//! builds it may also be a dma-buf's physical memory, which is never pinned
//! nor charged: it is mapped as one run while the exporter lets it be, and
//! the exporter's revocation unmaps it from every domain that maps it.)
//!
//! An area of user memory starts with [`PendingPages`]: what makes the
//! object, kept in the area. The object is made when a domain, an access, a
//! copy or a split needs it ([`AreaPages::make`]); an IOAS without domains
//! maps and unmaps without one.
//!
//! Nothing is pinned until a domain or an in-kernel access needs the pages.
//! A page is then pinned once, and charged once to RLIMIT_MEMLOCK, while
//! any of its users needs it:
//! - a [`DomainUse`], one per area mapped into its IOAS's domains, kept
//!   in an interval tree by page range. These pages' PFNs are not stored:
//!   they are read back from a domain that maps them, its "storage";
//! - access pins, counted per page in a [`PageTable`] next to the PFN.

#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use crate::sys::dmabuf::{Dmabuf, DmabufAttachment, RevokeNotify};
use crate::{
    domain::{IoDomain, NO_PFN},
    page_table::PageTable,
    sys::{
        self,
        interval_tree::{DisjointTree, IntervalTree, NewNode},
        pin::{self, Charge, PinFrom, UserRef},
        shared::{Shared, SharedSlot},
        Capability, DBox, DVec, PAGE_SIZE_U64,
    },
};
use core::num::NonZeroU64;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use kernel::sync::atomic::{Atomic, Relaxed};
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use kernel::sync::SetOnce;
use kernel::{
    fs::File,
    mm::Mm,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
    task::Task,
};

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
    /// A dma-buf's memory from offset `base`, page aligned: physical
    /// memory, never pinned nor charged, mapped while not revoked (test
    /// builds: the test exporter's dma-bufs).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    Dmabuf {
        /// Offset of the first page in the dma-buf.
        base: u64,
        /// The attachment, set once the object exists.
        import: SetOnce<DmabufAttachment>,
        /// Its exporter took the memory back (changed under
        /// `Pages::state`).
        revoked: core::sync::atomic::AtomicBool,
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

/// The process a pages object belongs to and is charged to;
/// `IOAS_CHANGE_PROCESS` replaces it.
struct Owner {
    /// The owner's address space, held with `mmgrab`.
    mm: ARef<Mm>,
    /// The owner's user, whose `locked_vm` is charged in user mode.
    user: UserRef,
    /// The owner's thread group leader, whose RLIMIT_MEMLOCK applies.
    task: ARef<Task>,
}

impl Owner {
    /// The current process.
    fn current(mm: ARef<Mm>) -> Self {
        Self {
            mm,
            user: UserRef::current(),
            task: ARef::from(kernel::current!().group_leader()),
        }
    }

    fn charge(&self) -> Charge<'_> {
        Charge {
            mm: &self.mm,
            user: &self.user,
            task: &self.task,
        }
    }
}

/// Where an area puts its part of a pages object: bytes `[start_byte,
/// end_byte)` at IOVA `base_iova + byte`, in the IO page table `owner`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct AreaSpan {
    /// The address of the area's IO page table, which does not move while
    /// it has areas; only compared, to tell areas of different tables
    /// apart.
    pub(crate) owner: usize,
    /// IOVA of byte 0 of the pages object (wrapping).
    pub(crate) base_iova: u64,
    /// First byte of the pages object in the area.
    pub(crate) start_byte: u64,
    /// One past the last byte in the area.
    pub(crate) end_byte: u64,
}

impl AreaSpan {
    /// The page indexes the area touches, `[first, last]`.
    pub(crate) fn pages(&self) -> (u64, u64) {
        (
            self.start_byte / PAGE_SIZE_U64,
            (self.end_byte - 1) / PAGE_SIZE_U64,
        )
    }

    /// The part of the area in pages `[first, first + n)`: `(iova,
    /// offset in the first page, length)`.
    pub(crate) fn iova_range(&self, first: u64, n: u64) -> (u64, u64, u64) {
        let from = (first * PAGE_SIZE_U64).max(self.start_byte);
        let to = ((first + n) * PAGE_SIZE_U64).min(self.end_byte);
        (
            self.base_iova.wrapping_add(from),
            from - first * PAGE_SIZE_U64,
            to - from,
        )
    }
}

/// One area's use of a pages object for the domains of its IOAS. While it
/// exists, the pages of its node's range stay pinned, and their PFNs are
/// read back from `storage`, which maps the area.
pub(crate) struct DomainUse {
    span: AreaSpan,
    /// One of the domains the area is mapped in.
    storage: Arc<dyn IoDomain>,
}

impl DomainUse {
    /// Reads the PFNs of the pages from index `idx` (all in the area) from
    /// the storage domain into `out`.
    fn read_pfns(&self, idx: u64, out: &mut [u64]) {
        let mut idx = idx;
        let mut out = out;
        if idx * PAGE_SIZE_U64 < self.span.start_byte && !out.is_empty() {
            // The area starts inside this page.
            let iova = self.span.base_iova.wrapping_add(self.span.start_byte);
            self.storage.read_pfns(iova, &mut out[..1]);
            (idx, out) = (idx + 1, &mut out[1..]);
        }
        if !out.is_empty() {
            let iova = self.span.base_iova.wrapping_add(idx * PAGE_SIZE_U64);
            self.storage.read_pfns(iova, out);
        }
    }
}

/// A page buffer for PFNs, on the stack when small.
struct PfnBuf {
    heap: DVec<u64>,
    stack: [u64; 32],
}

impl PfnBuf {
    fn new() -> Self {
        Self {
            heap: DVec::new(),
            stack: [0; 32],
        }
    }

    /// Room for `pages` PFNs, at most a batch; `ENOMEM`.
    fn get(&mut self, pages: u64) -> Result<&mut [u64]> {
        let want = pages.min(batch_pages()) as usize;
        if want <= self.stack.len() {
            return Ok(&mut self.stack[..want]);
        }
        self.heap.resize(want, 0, GFP_KERNEL)?;
        Ok(&mut self.heap[..])
    }

    /// Like [`PfnBuf::get`], but without memory the small buffer will do,
    /// for paths that may not fail.
    fn get_or_small(&mut self, pages: u64) -> &mut [u64] {
        let want = pages.min(batch_pages()) as usize;
        if want > self.stack.len() && self.heap.resize(want, 0, GFP_KERNEL).is_ok() {
            return &mut self.heap[..];
        }
        let small = want.min(self.stack.len());
        &mut self.stack[..small]
    }
}

/// The pinned pages of a pages object, their users and their charge.
///
/// A page is pinned, once, while a domain use covers it or an access pins
/// it. PFNs are kept only for access pins; for the others they are read
/// back from a domain that maps them, so domain-only pages cost no memory
/// here.
///
/// # Invariants
///
/// - Each page index that a domain use covers, or that has a nonzero
///   access record, holds exactly one pin, owned by this object; no other
///   page index holds one.
/// - A nonzero access record is `pfn << USER_BITS | users`, `users >= 1`:
///   the pinned page's PFN and how many access pins need it.
/// - For each page a domain use covers, the use's storage domain maps the
///   page (at its IOVA in the use's area) to the pinned page's PFN, so a
///   PFN read back from it is that pin's page.
/// - Each page index of `pinned_runs` lies in the range of a domain use in
///   the tree (or of the one being filled or released, under this lock),
///   and its PFN there is that of the page's pin.
/// - `npinned` counts the pinned pages, and exactly that many are charged
///   to `owner` in the object's charge mode.
/// - A dma-buf's pages are never pinned (`npinned` stays 0); `dmabuf_maps`
///   names each domain each area maps them into, and once the source's
///   `revoked` is set none maps them.
pub(crate) struct PagesState {
    owner: Owner,
    /// Pages pinned (and charged) now.
    npinned: u64,
    /// Page index -> `pfn << USER_BITS | users`, for pages that accesses
    /// pin.
    access: AccessRecords,
    /// The areas mapped in domains, by page index range.
    domain_uses: IntervalTree<DomainUse>,
    /// Runs of at least [`CACHED_RUN_MIN`] pages pinned for domain uses,
    /// by page index range, with the PFN of the first: what reading them
    /// back from a domain would give, which costs a page-table walk per
    /// page on a real IOMMU. Kept while memory allows; a read falls back
    /// to the storage domain where no run is kept.
    pinned_runs: DisjointTree<u64>,
    /// A dma-buf's: each domain each area maps it into, which a
    /// revocation unmaps (C's dmabuf tracker).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    dmabuf_maps: DVec<(AreaSpan, Arc<dyn IoDomain>)>,
}

impl PagesState {
    /// Nothing pinned yet, owned by `owner`.
    fn new(owner: Owner) -> Self {
        Self {
            owner,
            npinned: 0,
            access: AccessRecords(None),
            domain_uses: IntervalTree::new(),
            pinned_runs: DisjointTree::new(),
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            dmabuf_maps: DVec::new(),
        }
    }
}

/// Shortest run of consecutive PFNs that [`PagesState::pinned_runs`]
/// keeps: its 64-byte node then costs at most 1/4096 of the memory it
/// describes.
const CACHED_RUN_MIN: usize = 64;

/// The access records of a pages object: a [`PageTable`] made on the
/// first access pin and freed with the last (most pages objects never
/// have one, and it would take a quarter of the object).
struct AccessRecords(Option<DBox<PageTable>>);

/// What a pages object without access records reads.
static NO_ACCESS_RECORDS: PageTable = PageTable::new();

impl AccessRecords {
    /// The records (an empty table if there are none).
    fn table(&self) -> &PageTable {
        self.0.as_deref().unwrap_or(&NO_ACCESS_RECORDS)
    }

    /// The records to change, if there are any.
    fn table_mut(&mut self) -> Option<&mut PageTable> {
        self.0.as_deref_mut()
    }

    /// The records to change, made for `npages` pages if there are none
    /// (`ENOMEM`).
    fn table_or_new(&mut self, npages: u64) -> Result<&mut PageTable> {
        if self.0.is_none() {
            self.0 = Some(DBox::new(PageTable::with_limit(npages), GFP_KERNEL)?);
        }
        self.0.as_deref_mut().ok_or(ENOMEM)
    }

    /// Frees the table if it holds no record.
    fn free_if_empty(&mut self) {
        if self.0.as_deref().is_some_and(PageTable::is_empty) {
            self.0 = None;
        }
    }
}

/// Bits of an access record that count the users of a page; the PFN is
/// above them.
const USER_BITS: u32 = 20;
const USER_MASK: u64 = (1 << USER_BITS) - 1;

/// Tags a PFN in a batch as pinned by the call at work, to undo on error.
/// PFNs never reach this bit.
const FRESH: u64 = 1 << 62;

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

// A pages object and its `Shared` count fit a 192-byte kmalloc (128 in
// production builds): one more word takes each area to the next size
// (make bench's `mem_bytes_per_area`).
#[cfg(not(any(CONFIG_DEBUG_LOCK_ALLOC, CONFIG_DEBUG_MUTEXES)))]
const _: () = assert!(core::mem::size_of::<Pages>() <= 184);

/// User memory that an area maps before anything needs its pages object:
/// what makes one. Areas of an IOAS without domains or accesses never pin,
/// and keeping this in the area spares them the object. It is writable
/// exactly when its area is.
///
/// # Invariants
///
/// - `base_mode` is the page-aligned first byte of the first page, in the
///   owner's address space, plus 1 + the account mode's index (so it is
///   never zero, and an area needs no separate tag for pending pages).
/// - `owner` is `Some` until [`AreaPages::make`] moves it into the object.
pub(crate) struct PendingPages {
    base_mode: NonZeroU64,
    owner: Option<Owner>,
}

/// The account modes in [`PendingPages::base_mode`] order.
const PENDING_MODES: [AccountMode; 3] = [AccountMode::None, AccountMode::User, AccountMode::Mm];

impl PendingPages {
    fn new(base: u64, account_mode: AccountMode, owner: Owner) -> Self {
        // INVARIANT: `pack` keeps the first; the owner is there.
        Self {
            base_mode: Self::pack(base, account_mode),
            owner: Some(owner),
        }
    }

    /// `base` (page aligned) plus 1 + the index of `account_mode`.
    fn pack(base: u64, account_mode: AccountMode) -> NonZeroU64 {
        let index = PENDING_MODES
            .iter()
            .position(|m| *m == account_mode)
            .unwrap_or(0) as u64;
        NonZeroU64::MIN.saturating_add(base | index)
    }

    /// The first byte of the first page.
    fn base(&self) -> u64 {
        self.base_mode.get() & !(PAGE_SIZE_U64 - 1)
    }

    /// How pins will be charged.
    fn account_mode(&self) -> AccountMode {
        let index = (self.base_mode.get() & (PAGE_SIZE_U64 - 1)) - 1;
        PENDING_MODES[index as usize % PENDING_MODES.len()]
    }
}

/// The memory behind an area.
pub(crate) enum AreaPages {
    /// User memory whose pages object is not made yet: nothing pins it, no
    /// other area shares it, and the area starts in its first page.
    Pending(PendingPages),
    /// A pages object, which other areas may share.
    Made(Shared<Pages>),
}

impl From<Shared<Pages>> for AreaPages {
    fn from(pages: Shared<Pages>) -> Self {
        Self::Made(pages)
    }
}

impl AreaPages {
    /// The pages object, if it is made.
    pub(crate) fn made(&self) -> Option<&Shared<Pages>> {
        match self {
            Self::Made(pages) => Some(pages),
            Self::Pending(_) => None,
        }
    }

    /// The pages object, made now if it is pending: `len` is the byte
    /// count from the first page's start to the area's end, and `writable`
    /// whether the area is. `ENOMEM`, and then it stays pending.
    pub(crate) fn make(&mut self, len: u64, writable: bool) -> Result<&Shared<Pages>> {
        if let Self::Pending(p) = self {
            let slot = SharedSlot::new()?;
            let owner = p.owner.take().ok_or(EINVAL)?;
            let source = PagesSource::User { base: p.base() };
            let init = Pages::init(source, len, writable, p.account_mode(), owner);
            *self = Self::Made(slot.write(init));
        }
        // Made above if it was not.
        self.made().ok_or(EINVAL)
    }

    /// The user address (or file offset) of byte `offset`.
    pub(crate) fn address_of(&self, offset: u64) -> u64 {
        match self {
            Self::Made(pages) => pages.address_of(offset),
            Self::Pending(p) => p.base().wrapping_add(offset),
        }
    }

    /// Whether the memory is a dma-buf's.
    pub(crate) fn is_dmabuf(&self) -> bool {
        self.made().is_some_and(|pages| pages.is_dmabuf())
    }

    /// Whether the memory is a file's.
    pub(crate) fn is_file(&self) -> bool {
        self.made().is_some_and(|pages| pages.is_file())
    }
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
    /// A dma-buf, taken by descriptor.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    Dmabuf(Dmabuf),
}

impl Pages {
    /// The memory `req` names, owned by the current process, with the
    /// offset of `req.start` inside its first page. User memory comes
    /// pending: its pages object is made when something needs it.
    ///
    /// `EINVAL` for an empty or nearly 2^64-byte length; `ENOMEM`.
    pub(crate) fn for_request(req: PagesRequest) -> Result<(AreaPages, u64)> {
        if req.length == 0 || req.length > u64::MAX - PAGE_SIZE_U64 {
            return Err(EINVAL);
        }
        let mm = kernel::current!()
            .mm()
            .map(|mm| ARef::from(&**mm))
            .ok_or(EINVAL)?;
        let start_byte = req.start % PAGE_SIZE_U64;
        let base = req.start - start_byte;
        let mut account_mode = if sys::capable(Capability::IpcLock) {
            AccountMode::None
        } else {
            AccountMode::User
        };
        if req.ctx_mode == AccountMode::Mm && account_mode == AccountMode::User {
            account_mode = AccountMode::Mm;
        }
        let owner = Owner::current(mm);
        let len = start_byte + req.length;
        // Only user memory waits: a file's reference would not fit in the
        // area, and a dma-buf is attached at once.
        let pages = match req.kind {
            PagesKind::User => AreaPages::Pending(PendingPages::new(base, account_mode, owner)),
            PagesKind::File(file) => AreaPages::Made(Shared::pin_init(Self::init(
                PagesSource::File { file, base },
                len,
                req.writable,
                account_mode,
                owner,
            ))?),
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            PagesKind::Dmabuf(buf) => {
                AreaPages::Made(Self::new_dmabuf(buf, base, len, req.writable, owner)?)
            }
        };
        Ok((pages, start_byte))
    }

    /// A pages object of user memory or a file.
    fn init(
        source: PagesSource,
        len: u64,
        writable: bool,
        account_mode: AccountMode,
        owner: Owner,
    ) -> impl PinInit<Self> {
        pin_init!(Pages {
            source,
            len,
            writable,
            account_mode,
            state <- Mutex::new(
                PagesState::new(owner),
                c"Pages::state",
                kernel::static_lock_class!()
            ),
        })
    }

    /// A pages object for bytes `[base, base + len)` of a dma-buf (not
    /// charged), attached to it.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn new_dmabuf(
        buf: Dmabuf,
        base: u64,
        len: u64,
        writable: bool,
        owner: Owner,
    ) -> Result<Shared<Self>> {
        if base.checked_add(len).is_none_or(|end| buf.size() < end) {
            return Err(EINVAL);
        }
        // A dma-buf's state lock is taken under the dma-buf's reservation
        // lock (a revocation), and never around the mmap lock, which user
        // memory's is: a lock class of its own keeps lockdep from joining
        // the two (as C does).
        let pages = Shared::pin_init(pin_init!(Pages {
            source: PagesSource::Dmabuf {
                base,
                import: SetOnce::new(),
                revoked: core::sync::atomic::AtomicBool::new(false),
            },
            len,
            writable,
            account_mode: AccountMode::None,
            state <- Mutex::new(
                PagesState::new(owner),
                c"Pages::state (dma-buf)",
                kernel::static_lock_class!()
            ),
        }))?;
        if let PagesSource::Dmabuf { import, .. } = &pages.source {
            // SAFETY: The attachment lives in the pages object, which is
            // pinned in its counted box and drops it before it goes.
            let attached = unsafe { DmabufAttachment::attach(buf, &raw const *pages) }?;
            import.populate(attached);
        }
        Ok(pages)
    }

    /// Pages the object spans, from its first page's start.
    fn npages(&self) -> u64 {
        self.len.div_ceil(PAGE_SIZE_U64)
    }

    /// Whether the memory is a dma-buf's.
    pub(crate) fn is_dmabuf(&self) -> bool {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if let PagesSource::Dmabuf { .. } = self.source {
            return true;
        }
        false
    }

    /// A dma-buf's PFN of page `idx`, unless it was revoked (or is not a
    /// dma-buf's).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn dmabuf_pfn(&self, st: &PagesState, idx: u64) -> Option<u64> {
        let PagesSource::Dmabuf { base, import, .. } = &self.source else {
            return None;
        };
        let import = import.as_ref()?;
        (!self.revoked(st)).then(|| (import.paddr + base + idx * PAGE_SIZE_U64) / PAGE_SIZE_U64)
    }

    /// Whether the dma-buf's exporter took its memory back (never for
    /// other memory); `st` shows the lock is held.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn revoked(&self, _st: &PagesState) -> bool {
        match &self.source {
            PagesSource::Dmabuf { revoked, .. } => {
                revoked.load(core::sync::atomic::Ordering::Relaxed)
            }
            _ => false,
        }
    }

    /// A dma-buf's: records that the area at `span` is mapped into each of
    /// `domains` (all or nothing). Nothing for other memory.
    pub(crate) fn track_domains<'a>(
        &self,
        span: AreaSpan,
        domains: impl Iterator<Item = &'a Arc<dyn IoDomain>>,
    ) -> Result {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if self.is_dmabuf() {
            let mut st = self.state.lock();
            let before = st.dmabuf_maps.len();
            for d in domains {
                if let Err(e) = st.dmabuf_maps.push((span, d.clone()), GFP_KERNEL) {
                    st.dmabuf_maps.truncate(before);
                    return Err(e.into());
                }
            }
        }
        #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
        let _ = (span, domains);
        Ok(())
    }

    /// Undoes [`Pages::track_domains`] for the area at `span` and `domain`,
    /// or every domain.
    pub(crate) fn untrack_domains(&self, span: AreaSpan, domain: Option<&Arc<dyn IoDomain>>) {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if self.is_dmabuf() {
            self.state
                .lock()
                .dmabuf_maps
                .retain(|(s, d)| !(*s == span && domain.is_none_or(|want| Arc::ptr_eq(d, want))));
        }
        #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
        let _ = (span, domain);
    }

    /// The user VA or file offset of byte `offset` of the object, the
    /// allocator's hint for IOVA alignment.
    pub(crate) fn address_of(&self, offset: u64) -> u64 {
        match &self.source {
            PagesSource::User { base } | PagesSource::File { base, .. } => {
                base.wrapping_add(offset)
            }
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            PagesSource::Dmabuf { base, .. } => base.wrapping_add(offset),
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
        let new = Owner::current(mm.clone());
        let mode = self.charge_mode();
        pin::account(&new.charge(), mode, st.npinned, true)?;
        let old = core::mem::replace(&mut st.owner, new);
        let _ = pin::account(&old.charge(), mode, st.npinned, false);
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

    /// Pins the pages of the area at `span` for its IOAS's domains and
    /// maps them: `map(index, pfn, count)` is called for each run of
    /// consecutive PFNs, in order, and must map it into every domain;
    /// `storage` must be one of them. Pages already pinned (by another
    /// area or an access) are not pinned again. All or nothing: on error
    /// `unmap(first, last)` is called on the page ranges mapped, before
    /// their pins go.
    pub(crate) fn fill_domains(
        &self,
        span: AreaSpan,
        storage: Arc<dyn IoDomain>,
        mut map: impl FnMut(u64, u64, u64) -> Result,
        mut unmap: impl FnMut(u64, u64),
    ) -> Result {
        let (first, last) = span.pages();
        let node = NewNode::new(first, last, DomainUse { span, storage }, GFP_KERNEL)?;
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if self.is_dmabuf() {
            // Physical memory, one run: mapped unless revoked, never pinned.
            let mut st = self.state.lock();
            if let Some(pfn) = self.dmabuf_pfn(&st, first) {
                map(first, pfn, last - first + 1)?;
            }
            st.domain_uses.insert(node);
            return Ok(());
        }
        let mut buf = PfnBuf::new();
        let batch = buf.get(last - first + 1)?;
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut idx = first;
        while idx <= last {
            let n = (last - idx + 1).min(batch.len() as u64);
            let result = self.fill_batch(st, idx, &mut batch[..n as usize], &mut map, &mut unmap);
            if let Err(e) = result {
                if idx > first {
                    self.release(st, node.value(), first, idx - 1, &mut unmap);
                }
                return Err(e);
            }
            idx += n;
        }
        st.domain_uses.insert(node);
        Ok(())
    }

    /// Pins what is missing of the pages from `idx`, one per entry of
    /// `batch`, and maps them all. On error it leaves nothing: what it
    /// mapped is unmapped and what it pinned unpinned.
    fn fill_batch(
        &self,
        st: &mut PagesState,
        idx: u64,
        batch: &mut [u64],
        map: &mut impl FnMut(u64, u64, u64) -> Result,
        unmap: &mut impl FnMut(u64, u64),
    ) -> Result {
        let n = batch.len() as u64;
        gather(st, idx, batch);
        let nfresh = self.pin_missing(st, idx, batch)?;
        let runs = &mut st.pinned_runs;
        let result = pfn_runs(batch, |at, pfn, count| {
            map(idx + at, pfn, count)?;
            keep_run(runs, idx + at, pfn, count);
            Ok(())
        });
        if let Err(e) = result {
            unmap(idx, idx + n - 1);
            forget_runs(&mut st.pinned_runs, idx, idx + n - 1);
            self.unpin_fresh(st, batch, nfresh);
            return Err(e);
        }
        st.npinned += nfresh;
        Ok(())
    }

    /// Pins and charges the pages of `batch` (from index `idx`) that are
    /// [`NO_PFN`], writing their PFNs tagged with [`FRESH`]. Returns how
    /// many it pinned; on error nothing stays pinned.
    fn pin_missing(&self, st: &PagesState, idx: u64, batch: &mut [u64]) -> Result<u64> {
        let nfresh = self.pin_holes(st, idx, batch)?;
        let charged = match inject_failure() {
            true => Err(ENOMEM),
            false => pin::account(&st.owner.charge(), self.charge_mode(), nfresh, true),
        };
        if let Err(e) = charged {
            self.unpin_tagged(batch);
            return Err(e);
        }
        Ok(nfresh)
    }

    /// Pins the pages of `batch` (from index `idx`) that are [`NO_PFN`],
    /// each run of them with one call, as C's reader does (so GUP answers
    /// for the run: `EOVERFLOW` for one that wraps the address space), and
    /// writes their PFNs tagged with [`FRESH`]. Charges nothing. Returns how
    /// many it pinned; on error nothing stays pinned.
    fn pin_holes(&self, st: &PagesState, idx: u64, batch: &mut [u64]) -> Result<u64> {
        let mut nfresh = 0u64;
        let mut k = 0;
        while k < batch.len() {
            if batch[k] != NO_PFN {
                k += 1;
                continue;
            }
            let n = batch[k..].iter().take_while(|&&p| p == NO_PFN).count();
            let pinned = match inject_failure() {
                true => Err(EFAULT),
                false => self
                    .pin_from(&st.owner, idx + k as u64)
                    .and_then(|from| pin::pin_pages(&from, self.writable, &mut batch[k..k + n])),
            };
            if let Err(e) = pinned {
                self.unpin_tagged(batch);
                return Err(e);
            }
            batch[k..k + n].iter_mut().for_each(|pfn| *pfn |= FRESH);
            nfresh += n as u64;
            k += n;
        }
        Ok(nfresh)
    }

    /// Undoes [`Pages::pin_missing`], which pinned `n` pages.
    fn unpin_fresh(&self, st: &PagesState, batch: &[u64], n: u64) {
        self.unpin_tagged(batch);
        let _ = pin::account(&st.owner.charge(), self.charge_mode(), n, false);
    }

    /// Unpins the pages of `batch` tagged [`FRESH`], a run of consecutive
    /// PFNs per call.
    fn unpin_tagged(&self, batch: &[u64]) {
        let mut runs = PfnRuns::new();
        for (i, &pfn) in batch.iter().enumerate() {
            if pfn == NO_PFN || pfn & FRESH == 0 {
                continue;
            }
            if let Some((_, start, n)) = runs.push(i as u64, pfn & !FRESH) {
                // SAFETY: Pages tagged `FRESH` were pinned by the call at
                // work and recorded nowhere: their pins are ours to drop.
                unsafe { pin::unpin_run(start, n, self.writable) };
            }
        }
        if let Some((_, start, n)) = runs.finish() {
            // SAFETY: As above.
            unsafe { pin::unpin_run(start, n, self.writable) };
        }
    }

    /// Gives up the pages `[first, last]` of domain use `used`, which is
    /// no longer (or not yet) in the tree: batch by batch, their PFNs are
    /// read from its storage domain, `unmap(first, last)` is called, and
    /// the pages nobody else uses are unpinned. Cannot fail.
    ///
    /// A domain may map a run of consecutive PFNs with IO pages larger than
    /// the calls that mapped it, and unmaps such a page whole, past the
    /// range asked for (real IOMMU drivers do). So an unmap never ends
    /// inside a run: a batch that ends in one stops before it, and a run
    /// longer than a batch is unmapped whole before its pages are unpinned.
    fn release(
        &self,
        st: &mut PagesState,
        used: &DomainUse,
        first: u64,
        last: u64,
        unmap: &mut impl FnMut(u64, u64),
    ) {
        let mut buf = PfnBuf::new();
        let buf = buf.get_or_small(last - first + 1);
        let mut freed = 0u64;
        let mut idx = first;
        // The PFNs of the pages from `idx` already read, at the buffer's
        // start: the run the batch before ended in.
        let mut carried = 0;
        while idx <= last {
            let n = (last - idx + 1).min(buf.len() as u64) as usize;
            if carried < n {
                read_cached(
                    &st.pinned_runs,
                    idx + carried as u64,
                    &mut buf[carried..n],
                    |i, piece| used.read_pfns(i, piece),
                );
            }
            let tail = match idx + n as u64 - 1 < last {
                true => trailing_run(&buf[..n]),
                false => n,
            };
            if tail > 0 {
                // The batch up to the run it ends in, if any.
                let pfns = &mut buf[..tail];
                keep_used(st, idx, pfns);
                unmap(idx, idx + tail as u64 - 1);
                // SAFETY: `used` left the tree and its storage gave these
                // pinned PFNs (type invariant); `keep_used` dropped the pages
                // still in use, so the one pin on each of these is unused.
                freed += unsafe { self.unpin_pfns(pfns) };
                buf.copy_within(tail..n, 0);
                carried = n - tail;
                idx += tail as u64;
                continue;
            }
            carried = 0;
            // The whole batch is one run that goes on past it.
            let (start, pfn) = (idx, buf[0]);
            let end = run_end(&st.pinned_runs, used, buf, start, pfn, last);
            unmap(start, end);
            while idx <= end {
                let n = (end - idx + 1).min(buf.len() as u64);
                let pfns = &mut buf[..n as usize];
                for (slot, want) in pfns.iter_mut().zip(pfn + (idx - start)..) {
                    *slot = want;
                }
                keep_used(st, idx, pfns);
                // SAFETY: As above: the storage mapped this run of PFNs.
                freed += unsafe { self.unpin_pfns(pfns) };
                idx += n;
            }
        }
        forget_runs(&mut st.pinned_runs, first, last);
        st.npinned -= freed;
        let _ = pin::account(&st.owner.charge(), self.charge_mode(), freed, false);
    }

    /// Unpins the pages of `pfns` ([`NO_PFN`] entries are skipped), a run
    /// of consecutive PFNs per call; how many it unpinned.
    ///
    /// # Safety
    ///
    /// Each PFN of `pfns` holds a pin of this object that nothing uses
    /// any more.
    unsafe fn unpin_pfns(&self, pfns: &[u64]) -> u64 {
        let mut freed = 0;
        let _ = pfn_runs(pfns, |_, pfn, count| {
            freed += count;
            // SAFETY: The caller gives up these pins.
            unsafe { pin::unpin_run(pfn, count, self.writable) };
            Ok(())
        });
        freed
    }

    /// Undoes [`Pages::fill_domains`] for the area at `span`: `unmap` is
    /// called on its pages, batch by batch, before their pins go.
    pub(crate) fn unfill_domains(&self, span: AreaSpan, mut unmap: impl FnMut(u64, u64)) {
        let (first, last) = span.pages();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut gone = None;
        st.domain_uses.remove_if(
            first,
            last,
            |s, l, u| (s, l) == (first, last) && u.span == span,
            |_, _, u| gone = Some(u),
        );
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if self.is_dmabuf() {
            // Nothing is pinned; a revoked dma-buf is unmapped already.
            if !self.revoked(st) {
                unmap(first, last);
            }
            return;
        }
        match gone {
            Some(used) => self.release(st, &used, first, last, &mut unmap),
            None => unmap(first, last),
        }
    }

    /// Makes `storage` the domain the PFNs of the area at `span` are read
    /// from, before the one it had goes.
    pub(crate) fn set_storage(&self, span: AreaSpan, storage: &Arc<dyn IoDomain>) {
        let (first, last) = span.pages();
        let mut st = self.state.lock();
        st.domain_uses.for_each_mut(first, last, |_, _, u| {
            if u.span == span {
                u.storage = storage.clone();
            }
        });
    }

    /// Splits the domain use of the area at `span` in two at byte `at`,
    /// as the area is split. `ENOMEM`, and then nothing changes.
    pub(crate) fn split_domain_use(&self, span: AreaSpan, at: u64) -> Result {
        let (first, last) = span.pages();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let Some(storage) = st
            .domain_uses
            .iter(first, last)
            .find(|u| u.value.span == span)
            .map(|u| u.value.storage.clone())
        else {
            return Ok(());
        };
        let low = AreaSpan {
            end_byte: at,
            ..span
        };
        let high = AreaSpan {
            start_byte: at,
            ..span
        };
        let (low_first, low_last) = low.pages();
        let (high_first, high_last) = high.pages();
        let low = DomainUse {
            span: low,
            storage: storage.clone(),
        };
        let low = NewNode::new(low_first, low_last, low, GFP_KERNEL)?;
        let high = NewNode::new(
            high_first,
            high_last,
            DomainUse {
                span: high,
                storage,
            },
            GFP_KERNEL,
        )?;
        // One match at most: areas of one table do not overlap.
        st.domain_uses.remove_if(
            first,
            last,
            |s, l, u| (s, l) == (first, last) && u.span == span,
            |_, _, _| {},
        );
        st.domain_uses.insert(low);
        st.domain_uses.insert(high);
        Ok(())
    }

    /// Adds one access pin to each page of `[first, last]` (page indexes),
    /// pinning and charging the pages that were not pinned. All or
    /// nothing: on error (`EFAULT`, `ENOMEM` past RLIMIT_MEMLOCK, ...)
    /// nothing changes.
    pub(crate) fn access_pin(&self, first: u64, last: u64) -> Result {
        // A dma-buf's memory has no pages to pin.
        if self.is_dmabuf() {
            return Err(EINVAL);
        }
        let mut buf = PfnBuf::new();
        let batch = buf.get(last - first + 1)?;
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut idx = first;
        while idx <= last {
            // Pages that accesses pin gain one, up to the first without.
            if let Some(access) = st.access.table_mut() {
                idx = access.modify_while(idx, last, |entry| {
                    let more = *entry != 0 && *entry & USER_MASK != USER_MASK;
                    if more {
                        *entry += 1;
                    }
                    more
                });
            }
            if idx > last {
                break;
            }
            let result = if st.access.table().get(idx) != 0 {
                // The pin count is full.
                Err(ENOMEM)
            } else {
                self.access_pin_new(st, batch, &mut idx, last)
            };
            if let Err(e) = result {
                if idx > first {
                    self.access_unpin_locked(st, first, idx - 1);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Records a first access pin on the pages from `*idx` up to the next
    /// one that has access pins or `last`, at most one batch, pinning those
    /// no domain has pinned, and moves `*idx` past them. On error nothing
    /// changes.
    fn access_pin_new(
        &self,
        st: &mut PagesState,
        batch: &mut [u64],
        idx: &mut u64,
        last: u64,
    ) -> Result {
        let start = *idx;
        let n = st
            .access
            .table()
            .zeros_from(start, last, batch.len() as u64);
        let batch = &mut batch[..n as usize];
        gather(st, start, batch);
        let nfresh = self.pin_missing(st, start, batch)?;
        let recorded = st.access.table_or_new(self.npages()).and_then(|access| {
            access.fill(start, start + n - 1, |i| {
                (batch[(i - start) as usize] & !FRESH) << USER_BITS | 1
            })
        });
        if let Err(e) = recorded {
            st.access.free_if_empty();
            self.unpin_fresh(st, batch, nfresh);
            return Err(e);
        }
        st.npinned += nfresh;
        *idx += n;
        Ok(())
    }

    /// Where page `idx` is pinned from: `EINVAL` for a dma-buf's, which is
    /// never pinned.
    fn pin_from<'a>(&'a self, owner: &'a Owner, idx: u64) -> Result<PinFrom<'a>> {
        let at = idx * PAGE_SIZE_U64;
        match &self.source {
            PagesSource::User { base } => Ok(PinFrom::User {
                mm: &owner.mm,
                addr: base + at,
            }),
            PagesSource::File { file, base } => Ok(PinFrom::File {
                file,
                offset: base + at,
            }),
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            PagesSource::Dmabuf { .. } => Err(EINVAL),
        }
    }

    /// Drops one access pin from each page of `[first, last]`, which
    /// [`Pages::access_pin`] added; pages left unused are unpinned and
    /// their charge given back.
    pub(crate) fn access_unpin(&self, first: u64, last: u64) {
        let mut st = self.state.lock();
        self.access_unpin_locked(&mut st, first, last);
    }

    fn access_unpin_locked(&self, st: &mut PagesState, first: u64, last: u64) {
        let mut freed = 0u64;
        let mut runs = PfnRuns::new();
        let writable = self.writable;
        let (uses, Some(access)) = (&st.domain_uses, st.access.table_mut()) else {
            return;
        };
        for span in uses.spans(first, last) {
            // Pages a domain uses stay pinned.
            let keep = !span.is_hole;
            access.modify(span.start, span.last, |idx, entry| {
                if *entry & USER_MASK > 1 {
                    *entry -= 1;
                    return;
                }
                if !keep {
                    // A run of consecutive PFNs at a time.
                    freed += 1;
                    if let Some((_, start, n)) = runs.push(idx, *entry >> USER_BITS) {
                        // SAFETY: Type invariant: each was its page's last
                        // access user and no domain use covers the page, so
                        // its one pin has no user left (the record is cleared).
                        unsafe { pin::unpin_run(start, n, writable) };
                    }
                }
                *entry = 0;
            });
        }
        if let Some((_, start, n)) = runs.finish() {
            // SAFETY: As above.
            unsafe { pin::unpin_run(start, n, writable) };
        }
        st.access.free_if_empty();
        st.npinned -= freed;
        let _ = pin::account(&st.owner.charge(), self.charge_mode(), freed, false);
    }

    /// Calls `f(index, pfn, count)` for each run of consecutive PFNs over
    /// `[first, last]`, which must all be pinned; `EFAULT` after the runs
    /// before the first page that is not.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) fn for_each_run(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, u64) -> Result,
    ) -> Result {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        if self.is_dmabuf() {
            let st = self.state.lock();
            return match self.dmabuf_pfn(&st, first) {
                Some(pfn) => f(first, pfn, last - first + 1),
                None => Ok(()),
            };
        }
        let mut buf = PfnBuf::new();
        let buf = buf.get(last - first + 1)?;
        let st = self.state.lock();
        let mut idx = first;
        while idx <= last {
            let n = (last - idx + 1).min(buf.len() as u64);
            let batch = &mut buf[..n as usize];
            gather(&st, idx, batch);
            let pinned = batch.iter().take_while(|&&pfn| pfn != NO_PFN).count();
            pfn_runs(&batch[..pinned], |at, pfn, count| f(idx + at, pfn, count))?;
            if pinned < batch.len() {
                return Err(EFAULT);
            }
            idx += n;
        }
        Ok(())
    }

    /// Appends the PFN of each page of `[first, last]` to `out`; `EFAULT`
    /// if an access has not pinned one.
    pub(crate) fn access_pfns(&self, first: u64, last: u64, out: &mut KVec<u64>) -> Result {
        let st = self.state.lock();
        st.access.table().read(first, last, |_, entries| {
            for &entry in entries {
                if entry == 0 {
                    return Err(EFAULT);
                }
                out.push(entry >> USER_BITS, GFP_KERNEL)?;
            }
            Ok(())
        })
    }

    /// Calls `f(idx)` for each page of `[first, last]` (page indexes) that
    /// accesses pin, in order.
    pub(crate) fn for_each_access_pinned(&self, first: u64, last: u64, mut f: impl FnMut(u64)) {
        let st = self.state.lock();
        let _ = st.access.table().read(first, last, |start, entries| {
            for (k, _) in entries.iter().enumerate().filter(|(_, &e)| e != 0) {
                f(start + k as u64);
            }
            Ok(())
        });
    }

    /// Copies between `buf` and the memory from byte `start` of the object
    /// through the pages themselves: pinned pages are used as they are; the
    /// others are pinned for the copy only ([`Pages::pin_holes`]) and go
    /// back dirty if they could be written, as C. Charges nothing.
    pub(crate) fn rw_pages(&self, start: u64, buf: &mut [u8], write: bool) -> Result {
        if buf.is_empty() {
            return Ok(());
        }
        let first = start / PAGE_SIZE_U64;
        let last = (start + buf.len() as u64 - 1) / PAGE_SIZE_U64;
        let mut pfns = KVec::from_elem(NO_PFN, (last - first + 1) as usize, GFP_KERNEL)?;
        let st = self.state.lock();
        gather(&st, first, &mut pfns);
        self.pin_holes(&st, first, &mut pfns)?;
        let mut done = 0usize;
        for &pfn in pfns.iter() {
            let offset = ((start + done as u64) % PAGE_SIZE_U64) as usize;
            let len = (PAGE_SIZE - offset).min(buf.len() - done);
            // SAFETY: Each page is pinned: by this object (type invariant;
            // `st` is held, so it stays pinned) or, tagged `FRESH`, above.
            unsafe { pin::copy_page(pfn & !FRESH, offset, &mut buf[done..done + len], write) };
            done += len;
        }
        self.unpin_tagged(&pfns);
        Ok(())
    }

    /// How an access reads or writes `len` bytes from byte `start`, as C
    /// chooses: the current process's own user memory with plain user
    /// copies; another process's (or any, on the test slow path) through a
    /// fresh pin of the page when the bytes lie in one page; otherwise, and
    /// for files, through the object's pages.
    pub(crate) fn rw_route(&self, start: u64, len: u64, slow_path: bool, kthread: bool) -> RwRoute {
        let PagesSource::User { base } = self.source else {
            return RwRoute::Pages;
        };
        let st = self.state.lock();
        let current = kernel::current!().mm().map(|mm| mm.as_raw());
        let other_mm = slow_path || current != Some(st.owner.mm.as_raw());
        if !other_mm {
            return RwRoute::UserCopy(base + start);
        }
        if kthread {
            return RwRoute::OwnerMm(base + start);
        }
        let last = start + len.max(1) - 1;
        match start / PAGE_SIZE_U64 == last / PAGE_SIZE_U64 {
            true => RwRoute::OnePage,
            false => RwRoute::Pages,
        }
    }

    /// Copies between `buf` and the owner's memory at user address `addr`
    /// (byte `start` of the object) from a kernel thread that borrows the
    /// owner's address space, as C's `IOMMUFD_ACCESS_RW_KTHREAD` path; if
    /// it cannot, goes through the object's pages.
    pub(crate) fn rw_owner_mm(&self, addr: u64, start: u64, buf: &mut [u8], write: bool) -> Result {
        let mm = self.state.lock().owner.mm.clone();
        pin::kthread_copy(&mm, addr, buf, write).unwrap_or_else(|| self.rw_pages(start, buf, write))
    }

    /// Copies between `buf` and the memory from byte `start`, which lie in
    /// one page, through a pin of that page taken from the owner's address
    /// space for the copy only: the pins the object holds are not used, so
    /// the copy sees the address space as it is now. If the address space
    /// is gone, goes through the object's pages instead.
    pub(crate) fn rw_one_page(&self, start: u64, buf: &mut [u8], write: bool) -> Result {
        let PagesSource::User { base } = self.source else {
            return self.rw_pages(start, buf, write);
        };
        let offset = (start % PAGE_SIZE_U64) as usize;
        let addr = base + (start - offset as u64);
        let done = {
            let st = self.state.lock();
            pin::rw_user_page(&st.owner.mm, addr, offset, buf, write)
        };
        done.unwrap_or_else(|| self.rw_pages(start, buf, write))
    }
}

/// How an access's read or write reaches memory: [`Pages::rw_route`].
pub(crate) enum RwRoute {
    /// Plain user copies at this address of the current process.
    UserCopy(u64),
    /// User copies at this address of the owner's address space, borrowed
    /// by the calling kernel thread: [`Pages::rw_owner_mm`].
    OwnerMm(u64),
    /// [`Pages::rw_one_page`].
    OnePage,
    /// [`Pages::rw_pages`].
    Pages,
}

/// The exporter took a dma-buf's memory back: every domain mapping it
/// unmaps it now, and nothing maps it again.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
impl RevokeNotify for Pages {
    fn revoked(&self) {
        let st = self.state.lock();
        let PagesSource::Dmabuf { revoked, .. } = &self.source else {
            return;
        };
        if revoked.load(core::sync::atomic::Ordering::Relaxed) {
            return;
        }
        for (span, domain) in st.dmabuf_maps.iter() {
            let (first, last) = span.pages();
            let (iova, _, length) = span.iova_range(first, last - first + 1);
            domain.unmap(iova, length);
        }
        revoked.store(true, core::sync::atomic::Ordering::Relaxed);
    }
}

#[pinned_drop]
impl PinnedDrop for Pages {
    fn drop(self: Pin<&mut Self>) {
        // Every user gives its pages back before the last area goes. Debug
        // kernels check it: the lock this takes is a fifth of the drop.
        #[cfg(CONFIG_KASAN)]
        if self.state.lock().npinned != 0 {
            pr_warn!("iommufd_rs: pages object freed with pins held\n");
        }
    }
}

/// Whether a fail-nth sweep fails this pin or charge (test builds), where C
/// iommufd's `iommufd_should_fail()` fails its pin (`EFAULT`) and its
/// charge (`ENOMEM`).
fn inject_failure() -> bool {
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    return sys::fail::should_fail();
    #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
    false
}

/// Walks the pages from index `first`, one entry of `out` each, by who
/// uses them: `covered(first index, entries)` for pieces that domain uses
/// cover, `hole(entries)` for the rest, then `accessed(entry, record)` for
/// each of those that accesses pin.
fn walk_users(
    st: &PagesState,
    first: u64,
    out: &mut [u64],
    mut covered: impl FnMut(u64, &mut [u64]),
    mut hole: impl FnMut(&mut [u64]),
    mut accessed: impl FnMut(&mut u64, u64),
) {
    let last = first + out.len() as u64 - 1;
    for span in st.domain_uses.spans(first, last) {
        let piece = &mut out[(span.start - first) as usize..=(span.last - first) as usize];
        if !span.is_hole {
            covered(span.start, piece);
            continue;
        }
        hole(piece);
        let access = st.access.table();
        if access.is_empty() {
            continue;
        }
        let _ = access.read(span.start, span.last, |start, records| {
            let at = (start - span.start) as usize;
            for (slot, &record) in piece[at..].iter_mut().zip(records) {
                if record != 0 {
                    accessed(slot, record);
                }
            }
            Ok(())
        });
    }
}

/// Writes into `out` the PFNs of the pages from index `first` that are
/// pinned, read from a domain that maps them or from the access records,
/// and [`NO_PFN`] for the others.
fn gather(st: &PagesState, first: u64, out: &mut [u64]) {
    walk_users(
        st,
        first,
        out,
        |start, piece| {
            read_cached(&st.pinned_runs, start, piece, |i, p| {
                read_from_domains(&st.domain_uses, i, p)
            })
        },
        |piece| piece.fill(NO_PFN),
        |slot, record| *slot = record >> USER_BITS,
    );
}

/// Sets to [`NO_PFN`] the entries of `pfns` (pages from index `first`)
/// whose pages a domain use in the tree or an access still needs.
fn keep_used(st: &PagesState, first: u64, pfns: &mut [u64]) {
    walk_users(
        st,
        first,
        pfns,
        |_, piece| piece.fill(NO_PFN),
        |_| {},
        |slot, _| *slot = NO_PFN,
    );
}

/// Writes into `out` the PFNs of the pages from index `first`, all pinned
/// for domain uses: from the runs kept where they cover, else by
/// `read(index, piece)`, which reads them back from a domain.
fn read_cached(
    runs: &DisjointTree<u64>,
    first: u64,
    out: &mut [u64],
    mut read: impl FnMut(u64, &mut [u64]),
) {
    let Some(last) = (out.len() as u64).checked_sub(1).map(|n| first + n) else {
        return;
    };
    let mut idx = first;
    for run in runs.iter(first, last) {
        if run.start > idx {
            read(
                idx,
                &mut out[(idx - first) as usize..(run.start - first) as usize],
            );
            idx = run.start;
        }
        let end = run.last.min(last);
        let piece = &mut out[(idx - first) as usize..=(end - first) as usize];
        for (slot, pfn) in piece.iter_mut().zip(*run.value + (idx - run.start)..) {
            *slot = pfn;
        }
        #[cfg(CONFIG_KASAN)]
        check_cached(idx, piece, &mut read);
        idx = end + 1;
    }
    if idx <= last {
        read(idx, &mut out[(idx - first) as usize..]);
    }
}

/// Debug kernels: the PFNs of a kept run, `cached` (pages from `idx`), are
/// what the domain maps.
#[cfg(CONFIG_KASAN)]
fn check_cached(idx: u64, cached: &[u64], read: &mut impl FnMut(u64, &mut [u64])) {
    let mut mapped = [0u64; 32];
    for (k, chunk) in cached.chunks(mapped.len()).enumerate() {
        let at = idx + (k * mapped.len()) as u64;
        read(at, &mut mapped[..chunk.len()]);
        if chunk != &mapped[..chunk.len()] {
            pr_err!("kept PFN run disagrees with the domain at page {at}\n");
            kernel::warn_on!(true);
            return;
        }
    }
}

/// Keeps the run of `count` consecutive PFNs from `pfn` at pages from
/// `first`, all pinned for the domain use being filled, if it is at least
/// [`CACHED_RUN_MIN`] long, meets no run kept, and memory allows.
fn keep_run(runs: &mut DisjointTree<u64>, first: u64, pfn: u64, count: u64) {
    if count < CACHED_RUN_MIN as u64 {
        return;
    }
    let last = first + count - 1;
    if runs.first(first, last).is_some() {
        return;
    }
    if let Ok(node) = NewNode::new(first, last, pfn, GFP_KERNEL) {
        // INVARIANT: the pages are pinned at these PFNs, lie in the use
        // being filled, and no run kept covers them.
        runs.insert(node);
    }
}

/// Drops what the runs kept say of pages `[first, last]`, whose domain use
/// goes. A run that spans past both ends is cut in two, or loses its
/// upper part without memory.
fn forget_runs(runs: &mut DisjointTree<u64>, first: u64, last: u64) {
    let mut upper = None;
    runs.trim(first, last, |s, l, pfn| match (s < first, l > last) {
        (false, false) => None,
        (true, false) => Some((s, first - 1)),
        (false, true) => {
            *pfn += last + 1 - s;
            Some((last + 1, l))
        }
        (true, true) => {
            upper = Some((last + 1, l, *pfn + (last + 1 - s)));
            Some((s, first - 1))
        }
    });
    if let Some((s, l, pfn)) = upper {
        if let Ok(node) = NewNode::new(s, l, pfn, GFP_KERNEL) {
            runs.insert(node);
        }
    }
}

/// Reads the PFNs of the pages from index `first`, all covered by domain
/// uses, from their storage domains.
fn read_from_domains(uses: &IntervalTree<DomainUse>, first: u64, out: &mut [u64]) {
    let last = first + out.len() as u64 - 1;
    let mut idx = first;
    while idx <= last {
        let Some(used) = uses.first(idx, idx) else {
            out[(idx - first) as usize..].fill(NO_PFN);
            return;
        };
        let end = used.last.min(last);
        used.value.read_pfns(
            idx,
            &mut out[(idx - first) as usize..=(end - first) as usize],
        );
        idx = end + 1;
    }
}

/// Where the run of consecutive PFNs that ends `pfns` (nonempty) starts:
/// 0 if all of them are one run; `pfns.len()` if the last is [`NO_PFN`].
fn trailing_run(pfns: &[u64]) -> usize {
    let mut k = pfns.len();
    if pfns.last() == Some(&NO_PFN) {
        return k;
    }
    while k > 1 && pfns[k - 2] != NO_PFN && pfns[k - 2] + 1 == pfns[k - 1] {
        k -= 1;
    }
    k - 1
}

/// The last page of the run of consecutive PFNs that `used` maps from
/// page `start` (PFN `pfn`), which covers all of `buf` and may go on up to
/// page `last`; `buf` is scratch.
fn run_end(
    runs: &DisjointTree<u64>,
    used: &DomainUse,
    buf: &mut [u64],
    start: u64,
    pfn: u64,
    last: u64,
) -> u64 {
    let mut end = start + buf.len() as u64 - 1;
    while end < last {
        let n = (last - end).min(buf.len() as u64);
        let chunk = &mut buf[..n as usize];
        read_cached(runs, end + 1, chunk, |i, p| used.read_pfns(i, p));
        let next = pfn + (end + 1 - start);
        let k = chunk
            .iter()
            .zip(next..)
            .take_while(|&(&p, want)| p == want)
            .count() as u64;
        end += k;
        if k < n {
            break;
        }
    }
    end
}

/// Calls `f(offset, pfn, count)` for each run of consecutive PFNs in
/// `pfns`, skipping [`NO_PFN`] entries and ignoring [`FRESH`] tags. Stops
/// at an error.
fn pfn_runs(pfns: &[u64], mut f: impl FnMut(u64, u64, u64) -> Result) -> Result {
    let mut i = 0;
    while i < pfns.len() {
        if pfns[i] == NO_PFN {
            i += 1;
            continue;
        }
        let pfn = pfns[i] & !FRESH;
        let n = 1 + pfns[i + 1..]
            .iter()
            .zip(pfn + 1..)
            .take_while(|&(&entry, want)| entry & !FRESH == want)
            .count();
        f(i as u64, pfn, n as u64)?;
        i += n;
    }
    Ok(())
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
        match &mut self.run {
            Some((_, start, n)) if *start + *n == pfn => {
                *n += 1;
                None
            }
            run => run.replace((idx, pfn, 1)),
        }
    }

    /// The last run.
    fn finish(self) -> Option<(u64, u64, u64)> {
        self.run
    }
}

/// The memory a batch of PFNs may take, in bytes, as C's
/// `iommufd_test_memory_limit`: the test interface lowers it to force the
/// slow paths (`SET_TEMP_MEMORY_LIMIT`).
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
static TEMP_MEMORY_LIMIT: Atomic<u64> = Atomic::new(65536);

/// Sets the batch memory limit (test interface).
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
pub(crate) fn set_temp_memory_limit(bytes: u64) {
    TEMP_MEMORY_LIMIT.store(bytes, Relaxed);
}

/// Pages pinned per GUP batch: the batch memory limit's worth of 8-byte
/// entries, at least one.
fn batch_pages() -> u64 {
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    let limit = TEMP_MEMORY_LIMIT.load(Relaxed);
    #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
    let limit = 65536;
    (limit / 8).max(1)
}

#[kunit_tests(iommufd_rs_pages)]
mod tests {
    use super::*;

    /// The runs kept, as `(first, last, pfn)`.
    fn kept(runs: &DisjointTree<u64>) -> Result<KVec<(u64, u64, u64)>> {
        let mut v = KVec::new();
        for r in runs.iter(0, u64::MAX) {
            v.push((r.start, r.last, *r.value), GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn pending_pages_keep_base_and_mode() {
        let top = u64::MAX - (PAGE_SIZE_U64 - 1) - PAGE_SIZE_U64;
        for base in [0, PAGE_SIZE_U64, 0x7fff_ffff_f000, top] {
            for mode in PENDING_MODES {
                let p = PendingPages {
                    base_mode: PendingPages::pack(base, mode),
                    owner: None,
                };
                assert_eq!(p.base(), base);
                assert_eq!(p.account_mode(), mode);
            }
        }
        // The area keeps pending pages with no tag of their own.
        assert_eq!(size_of::<AreaPages>(), size_of::<PendingPages>());
    }

    #[test]
    fn kept_runs_are_read_and_forgotten_by_range() -> Result {
        let mut runs = DisjointTree::new();
        runs.insert(NewNode::new(100, 199, 5000, GFP_KERNEL)?);
        runs.insert(NewNode::new(300, 399, 9000, GFP_KERNEL)?);
        // Kept pages read arithmetically, the others from `read`, a fake
        // domain that agrees with the runs (debug kernels ask it about the
        // kept pages too, and check).
        let domain = |i: u64| match i {
            100..=199 => 5000 + (i - 100),
            300..=399 => 9000 + (i - 300),
            _ => i + 1_000_000,
        };
        let mut asked = 0;
        let mut out = [0u64; 8];
        read_cached(&runs, 196, &mut out, |i, piece| {
            asked += piece.len();
            piece.iter_mut().zip(i..).for_each(|(p, i)| *p = domain(i));
        });
        assert_eq!(
            out,
            [5096, 5097, 5098, 5099, 1_000_200, 1_000_201, 1_000_202, 1_000_203]
        );
        // The domain was asked only past the run (and, on debug kernels,
        // for the check of the kept four).
        let expected = if cfg!(CONFIG_KASAN) { 8 } else { 4 };
        assert_eq!(asked, expected);
        let mut none = [0u64; 0];
        read_cached(&runs, 0, &mut none, |_, _| {});
        // Cut the middle out of one, the tail off another, one whole.
        forget_runs(&mut runs, 120, 129);
        assert_eq!(
            &kept(&runs)?[..],
            &[(100, 119, 5000), (130, 199, 5030), (300, 399, 9000)]
        );
        forget_runs(&mut runs, 190, 310);
        assert_eq!(
            &kept(&runs)?[..],
            &[(100, 119, 5000), (130, 189, 5030), (311, 399, 9011)]
        );
        forget_runs(&mut runs, 0, 129);
        forget_runs(&mut runs, 311, 399);
        assert_eq!(&kept(&runs)?[..], &[(130, 189, 5030)]);
        Ok(())
    }

    #[test]
    fn runs_long_enough_and_apart_are_kept() -> Result {
        let mut runs = DisjointTree::new();
        let n = CACHED_RUN_MIN as u64;
        keep_run(&mut runs, 10, 1000, n - 1);
        keep_run(&mut runs, 100, 5000, n);
        // Meeting a run kept: not kept, lest runs overlap.
        keep_run(&mut runs, 100 + n - 1, 7000, n);
        keep_run(&mut runs, 100 + n, 9000, n);
        assert_eq!(
            &kept(&runs)?[..],
            &[(100, 100 + n - 1, 5000), (100 + n, 100 + 2 * n - 1, 9000)]
        );
        Ok(())
    }

    #[test]
    fn pfn_runs_group_consecutive_pfns() -> Result {
        // Holes split runs; the FRESH tag does not.
        let pfns = [10, 11 | FRESH, 12, NO_PFN, 20, 22, 23];
        let mut runs = KVec::new();
        pfn_runs(&pfns, |idx, pfn, n| {
            runs.push((idx, pfn, n), GFP_KERNEL)?;
            Ok(())
        })?;
        assert_eq!(&runs[..], &[(0, 10, 3), (4, 20, 1), (5, 22, 2)]);
        // An error stops the walk after the runs before it.
        let mut seen = 0;
        assert_eq!(
            pfn_runs(&pfns, |_, _, _| {
                seen += 1;
                Err(EFAULT)
            }),
            Err(EFAULT)
        );
        assert_eq!(seen, 1);
        Ok(())
    }

    #[test]
    fn pfn_runs_builder_ends_runs_where_pfns_jump() {
        let mut runs = PfnRuns::new();
        assert_eq!(runs.push(0, 5), None);
        assert_eq!(runs.push(1, 6), None);
        assert_eq!(runs.push(2, 9), Some((0, 5, 2)));
        assert_eq!(runs.push(7, 10), None);
        assert_eq!(runs.finish(), Some((2, 9, 2)));
        assert_eq!(PfnRuns::new().finish(), None);
    }

    #[test]
    fn trailing_run_starts_where_pfns_last_jump() {
        assert_eq!(trailing_run(&[3, 4, 9, 10, 11]), 2);
        assert_eq!(trailing_run(&[5, 6, 7]), 0);
        assert_eq!(trailing_run(&[5]), 0);
        assert_eq!(trailing_run(&[5, 8]), 1);
        // A hole ends nothing that goes on.
        assert_eq!(trailing_run(&[5, 6, NO_PFN]), 3);
        assert_eq!(trailing_run(&[NO_PFN, 6, 7]), 1);
    }

    #[test]
    fn area_span_pages_and_iova_ranges() {
        // An area from byte 0x800 to 0x3400 of its pages, at IOVA 0x10_0800.
        let span = AreaSpan {
            owner: 0,
            base_iova: 0x10_0000,
            start_byte: 0x800,
            end_byte: 0x3400,
        };
        assert_eq!(span.pages(), (0, 3));
        // The first page starts mid-page; the last ends mid-page.
        assert_eq!(span.iova_range(0, 1), (0x10_0800, 0x800, 0x800));
        assert_eq!(span.iova_range(1, 2), (0x10_1000, 0, 0x2000));
        assert_eq!(span.iova_range(3, 1), (0x10_3000, 0, 0x400));
        assert_eq!(span.iova_range(0, 4), (0x10_0800, 0x800, 0x2c00));
    }

    #[test]
    fn batches_hold_at_least_one_page() {
        assert!(batch_pages() >= 1);
    }
}
