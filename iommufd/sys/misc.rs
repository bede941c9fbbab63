// SPDX-License-Identifier: GPL-2.0

//! Misc character device registration.
//!
//! `kernel::miscdevice` in Linux 7.2 leaves `file_operations.owner` unset, so
//! the module could be unloaded under an open file, and it cannot choose the
//! minor, node name or mode. This wrapper registers a misc device whose file
//! operations pin the module while a file is open, and lets the caller pick
//! those options. All FFI for the character device lives here.

use core::{marker::PhantomData, mem::offset_of, ptr};
use kernel::{bindings, ffi, prelude::*, types::ForeignOwnable, types::Opaque, ThisModule};

/// What an open file of a misc device does.
pub(crate) trait FileOps: Sized + Send + Sync {
    /// Data fixed at registration and handed to every `open`.
    type NodeData: Send + Sync;

    /// Creates the per-file state for a new open.
    fn open(node: &Self::NodeData) -> Result<Pin<KBox<Self>>>;

    /// Handles one `ioctl` on an open file.
    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> Result<isize>;
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
///   whose callbacks are this type's `open`/`release`/`ioctl`.
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
                // SAFETY: `slot.misc` was fully initialised above.
                // INVARIANT: on success the device is registered with our fops.
                kernel::error::to_result(unsafe { bindings::misc_register(&raw mut (*slot).misc) })
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
        match T::open(&reg.node) {
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
        match T::ioctl(state, cmd, arg) {
            Ok(ret) => ret as ffi::c_long,
            Err(e) => e.to_errno() as ffi::c_long,
        }
    }
}

#[pinned_drop]
impl<T: FileOps> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants the device is registered, and this
        // is the one deregistration.
        unsafe { bindings::misc_deregister(&raw mut (*self.raw.get()).misc) };
    }
}

const _: () = assert!(offset_of!(RawMisc, misc) == 0);
