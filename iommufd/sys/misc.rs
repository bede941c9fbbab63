// SPDX-License-Identifier: GPL-2.0

//! Misc character device registration.
//!
//! `kernel::miscdevice` in Linux 7.2 leaves `file_operations.owner` unset, so
//! the module could be unloaded under an open file, and it cannot choose the
//! minor, node name or mode. This wrapper registers a misc device whose file
//! operations pin the module while a file is open, and lets the caller pick
//! those options. All FFI for the character device lives here.

use core::{
    ffi::c_void,
    marker::PhantomData,
    mem::offset_of,
    ptr::{self, NonNull},
};
use kernel::{
    bindings, ffi,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    types::ForeignOwnable,
    types::Opaque,
    ThisModule,
};

/// What an open file of a misc device does.
pub(crate) trait FileOps: Sized + Send + Sync {
    /// Data fixed at registration and handed to every `open`.
    type NodeData: Send + Sync;

    /// Creates the per-file state for a new open of `file`.
    fn open(node: &Self::NodeData, file: OpenFile) -> Result<Pin<KBox<Self>>>;

    /// Handles one `ioctl` on an open file: its return value, or a negated
    /// errno ([`ioctl_return`] makes one of a `Result`). A bare integer
    /// comes back in a register through every layer down to the VFS.
    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> isize;

    /// Handles `mmap()` of an open file, setting up `vma` (`ENODEV`:
    /// nothing to map).
    fn mmap(_this: Pin<&Self>, _vma: &kernel::mm::virt::VmaNew) -> Result {
        Err(ENODEV)
    }
}

/// An ioctl's return value for `result`: the value, or the negated errno.
#[inline(always)]
pub(crate) fn ioctl_return(result: Result<isize>) -> isize {
    match result {
        Ok(value) => value,
        Err(e) => e.to_errno() as isize,
    }
}

/// The file an open created its state for, as that state keeps it.
///
/// # Invariants
///
/// `ptr` is a file opened through a [`Registration`]. The state `open`
/// made for it holds this value, and the VFS frees that state only in the
/// file's `release`, so the file is live whenever this value is reachable.
pub(crate) struct OpenFile {
    ptr: NonNull<bindings::file>,
}

// SAFETY: A `struct file` is reference counted and may be used and put from
// any thread.
unsafe impl Send for OpenFile {}
// SAFETY: As for `Send`: `&OpenFile` only takes references.
unsafe impl Sync for OpenFile {}

impl OpenFile {
    /// Takes a reference to the file (C's `get_file()`).
    pub(crate) fn hold(&self) -> FileHold {
        // SAFETY: By the type invariants the file is live.
        unsafe { bindings::get_file(self.ptr.as_ptr()) };
        // INVARIANT: We took one reference for it.
        FileHold { ptr: self.ptr }
    }

    /// The `struct file`.
    pub(crate) fn as_raw(&self) -> *mut bindings::file {
        self.ptr.as_ptr()
    }
}

/// A counted reference to a file opened through a [`Registration`]: the
/// file, and so its state, stays alive while it lives.
///
/// # Invariants
///
/// The value owns one reference to the live file at `ptr`.
pub(crate) struct FileHold {
    ptr: NonNull<bindings::file>,
}

// SAFETY: See `OpenFile`: a file reference may move between threads.
unsafe impl Send for FileHold {}
// SAFETY: See `OpenFile`.
unsafe impl Sync for FileHold {}

impl FileHold {
    /// Takes over a reference the caller owns to `file`, a file of one of
    /// our registrations.
    ///
    /// # Safety
    ///
    /// The caller owns one reference to `file` and gives it to the value.
    pub(crate) unsafe fn from_raw(file: NonNull<bindings::file>) -> Self {
        // INVARIANT: The caller gave us its reference.
        Self { ptr: file }
    }

    /// Gives up the reference without putting it; `from_raw` takes it back.
    pub(crate) fn into_raw(self) -> NonNull<bindings::file> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    /// The file's state pointer, as [`OpenFile::state_ptr`].
    pub(crate) fn state_ptr(&self) -> *mut c_void {
        // SAFETY: By the type invariants we hold a reference: it is live.
        unsafe { (*self.ptr.as_ptr()).private_data }
    }
}

impl Drop for FileHold {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we own one reference.
        unsafe { bindings::fput(self.ptr.as_ptr()) };
    }
}

/// Most misc devices registered at once (`/dev/iommu`, `/dev/vfio/vfio`).
const MAX_REGISTRATIONS: usize = 4;

/// The file operations of every live registration, to tell our files from
/// others (C compares `f_op` with its one `iommufd_fops`).
static OUR_FOPS: [Atomic<usize>; MAX_REGISTRATIONS] = [const { Atomic::new(0) }; MAX_REGISTRATIONS];

/// Whether `file` was opened through one of our registrations.
///
/// # Safety
///
/// `file` is a live file.
pub(crate) unsafe fn is_our_file(file: *mut bindings::file) -> bool {
    // SAFETY: The caller promises the file is live.
    let fops = unsafe { (*file).f_op } as usize;
    fops != 0 && OUR_FOPS.iter().any(|f| f.load(Relaxed) == fops)
}

/// Records `fops` as ours: `EBUSY` when the table is full.
fn add_our_fops(fops: usize) -> Result {
    for slot in OUR_FOPS.iter() {
        if slot.cmpxchg(0, fops, Relaxed).is_ok() {
            return Ok(());
        }
    }
    Err(EBUSY)
}

/// Forgets `fops` (the registration is going).
fn remove_our_fops(fops: usize) {
    for slot in OUR_FOPS.iter() {
        let _ = slot.cmpxchg(fops, 0, Relaxed);
    }
}

/// Options of a misc device node.
#[derive(Clone, Copy)]
pub(crate) struct MiscOptions {
    /// Device name; also the node name under /dev unless `nodename` is set.
    pub(crate) name: &'static CStr,
    /// Fixed minor number, or `None` for a dynamic one.
    pub(crate) minor: Option<i32>,
    /// Node path below /dev, for example `vfio/vfio`.
    pub(crate) nodename: Option<&'static CStr>,
    /// Node permission bits; 0 keeps the devtmpfs default (0600).
    pub(crate) mode: u16,
}

/// The C objects of one registration. `misc.fops` points at `fops`.
#[repr(C)]
struct RawMisc {
    misc: bindings::miscdevice,
    fops: bindings::file_operations,
}

/// A registered misc device.
///
/// # Invariants
///
/// - `raw` holds a `struct miscdevice` registered with `misc_register()`
///   whose `fops` points at `raw.fops`, whose owner is this module, and
///   whose callbacks are this type's `open`/`release`/`ioctl`/`mmap`.
/// - It stays registered until [`Drop`], which deregisters it exactly once.
/// - `raw` is the first field of this `repr(C)` struct, so a pointer to the
///   `miscdevice` is also a pointer to the registration.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: FileOps> {
    #[pin]
    raw: Opaque<RawMisc>,
    node: T::NodeData,
    _t: PhantomData<T>,
}

// SAFETY: `misc_deregister` may be called from any thread, and the only
// shared state besides the C object is `node`, which is `Send`.
unsafe impl<T: FileOps> Send for Registration<T> {}
// SAFETY: After registration the C object is only touched by the misc core
// under its own lock, and `node` is `Sync`.
unsafe impl<T: FileOps> Sync for Registration<T> {}

impl<T: FileOps> Registration<T> {
    /// Registers a misc device that pins `module` while any file is open.
    pub(crate) fn register(
        opts: MiscOptions,
        module: &'static ThisModule,
        node: T::NodeData,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            raw <- Opaque::try_ffi_init(move |slot: *mut RawMisc| {
                let mut fops: bindings::file_operations = pin_init::zeroed();
                fops.owner = module.as_ptr();
                fops.open = Some(Self::open);
                fops.release = Some(Self::release);
                fops.unlocked_ioctl = Some(Self::ioctl);
                fops.mmap = Some(Self::mmap);
                #[cfg(CONFIG_COMPAT)]
                {
                    fops.compat_ioctl = Some(bindings::compat_ptr_ioctl);
                }
                let mut misc: bindings::miscdevice = pin_init::zeroed();
                misc.minor = opts.minor.unwrap_or(bindings::MISC_DYNAMIC_MINOR as i32);
                misc.name = opts.name.as_char_ptr();
                misc.nodename = opts.nodename.map_or(ptr::null(), |n| n.as_char_ptr());
                misc.mode = opts.mode;
                // SAFETY: `slot` is valid for writes and pinned: the
                // registration's memory does not move or go away before
                // `Drop` deregisters the device.
                unsafe {
                    (&raw mut (*slot).fops).write(fops);
                    misc.fops = &raw const (*slot).fops;
                    (&raw mut (*slot).misc).write(misc);
                }
                // SAFETY: `slot` is valid (see above); only the address is taken.
                let fops_addr = unsafe { &raw const (*slot).fops } as usize;
                add_our_fops(fops_addr)?;
                // SAFETY: `slot.misc` was fully initialised above.
                // INVARIANT: on success the device is registered with our fops.
                let rc = unsafe { bindings::misc_register(&raw mut (*slot).misc) };
                if rc != 0 {
                    remove_our_fops(fops_addr);
                }
                kernel::error::to_result(rc)
            }),
            node,
            _t: PhantomData,
        })
    }

    /// Called by the misc core for every open of the node.
    ///
    /// # Safety
    ///
    /// Only the VFS may call this, with `file` being opened through our node.
    unsafe extern "C" fn open(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> ffi::c_int {
        // SAFETY: `misc_open()` stored our `miscdevice` in `private_data`
        // before calling us; by the type invariants it is the first field of
        // a live `Registration<T>` (the module is pinned while we run).
        let reg = unsafe { &*(*file).private_data.cast::<Self>() };
        // INVARIANT: `file` is being opened through our registration, and
        // the state made here holds the value.
        let Some(ptr) = NonNull::new(file) else {
            return EINVAL.to_errno();
        };
        match T::open(&reg.node, OpenFile { ptr }) {
            Ok(state) => {
                // SAFETY: `file` is valid; `private_data` is ours from now on
                // and is given back in `release`.
                unsafe { (*file).private_data = state.into_foreign() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the VFS when the last reference to the file goes.
    ///
    /// # Safety
    ///
    /// Only the VFS may call this, for a file whose `open` succeeded.
    unsafe extern "C" fn release(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> ffi::c_int {
        // SAFETY: `open` stored a `Pin<KBox<T>>` in `private_data`, and this
        // is the last use of the file.
        drop(unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// Called by the VFS for `ioctl(2)`.
    ///
    /// # Safety
    ///
    /// Only the VFS may call this, for an open file of our node.
    unsafe extern "C" fn ioctl(
        file: *mut bindings::file,
        cmd: ffi::c_uint,
        arg: ffi::c_ulong,
    ) -> ffi::c_long {
        // SAFETY: `private_data` holds the state stored by `open`; `release`
        // cannot run while the VFS is inside an ioctl on the file.
        let state = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*file).private_data) };
        T::ioctl(state, cmd, arg) as ffi::c_long
    }
}

impl<T: FileOps> Registration<T> {
    /// Called by the VFS for `mmap(2)`.
    ///
    /// # Safety
    ///
    /// Only the VFS may call this, for an open file of our node, with a VMA
    /// being set up.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> ffi::c_int {
        // SAFETY: `private_data` holds the state stored by `open`; `release`
        // cannot run while the VFS is inside an mmap of the file.
        let state = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*file).private_data) };
        // SAFETY: The VFS calls `mmap` with a VMA under initial setup.
        let vma = unsafe { kernel::mm::virt::VmaNew::from_raw(vma) };
        match T::mmap(state, vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

#[pinned_drop]
impl<T: FileOps> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants the device is registered, and this
        // is the one deregistration.
        unsafe { bindings::misc_deregister(&raw mut (*self.raw.get()).misc) };
        // No new file can be opened with these fops now.
        // SAFETY: `raw` is pinned and initialised (type invariants).
        remove_our_fops(unsafe { &raw const (*self.raw.get()).fops } as usize);
    }
}

const _: () = assert!(offset_of!(RawMisc, misc) == 0);
