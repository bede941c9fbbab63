// SPDX-License-Identifier: GPL-2.0

//! Pages objects: the user memory behind IOAS areas.
//!
//! A [`Pages`] describes one range of user memory: a range of virtual
//! addresses in one process, or a range of a file (memfd). Areas refer to it
//! by reference count; `IOAS_COPY` makes new areas that share it. Nothing is
//! pinned until a domain or an in-kernel access needs the pages, so for now
//! a pages object records where the memory is, who it is charged to, and
//! whether it may be written.

use crate::sys::{self, Capability};
use kernel::{
    fs::File,
    mm::Mm,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
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
        #[expect(dead_code, reason = "read when file pages are pinned")]
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

/// The process a pages object belongs to; `IOAS_CHANGE_PROCESS` moves it.
pub(crate) struct PagesOwner {
    /// The owner's address space, held with `mmgrab`.
    pub(crate) mm: ARef<Mm>,
}

/// A range of user memory shared by one or more areas.
#[pin_data]
pub(crate) struct Pages {
    /// Where the memory is.
    pub(crate) source: PagesSource,
    /// Length in bytes from the first page's start.
    pub(crate) len: u64,
    /// Whether the memory may be mapped writable.
    pub(crate) writable: bool,
    /// How pins are charged.
    pub(crate) account_mode: AccountMode,
    /// Who is charged.
    #[pin]
    pub(crate) owner: Mutex<PagesOwner>,
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
        let pages = Arc::pin_init(
            pin_init!(Pages {
                source,
                len: start_byte + req.length,
                writable: req.writable,
                account_mode,
                owner <- new_mutex!(PagesOwner { mm }),
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

    /// Makes the current process the owner, as `IOAS_CHANGE_PROCESS` does.
    pub(crate) fn change_owner(&self, mm: &ARef<Mm>) {
        self.owner.lock().mm = mm.clone();
    }
}
