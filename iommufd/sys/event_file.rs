// SPDX-License-Identifier: GPL-2.0

//! Anonymous-inode files for event queues (the fault queue's fd).
//!
//! The file owns an [`EventQueue`] and hands it its reads, writes and
//! polls; the queue is dropped when the file's last reference goes. A
//! read or write at a position other than 0 is `ESPIPE` before the queue
//! sees it. The file operations live in `helpers.c`.

use kernel::{
    bindings,
    fs::{file::FileDescriptorReservation, File},
    prelude::*,
    sync::{
        aref::ARef,
        poll::{PollCondVar, PollTable},
    },
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};

/// `EPOLLIN | EPOLLRDNORM`: an event can be read.
pub(crate) const POLL_READABLE: u32 = 0x0001 | 0x0040;
/// `EPOLLOUT`: the file takes writes.
pub(crate) const POLL_WRITABLE: u32 = 0x0004;

/// What an event-queue file serves.
pub(crate) trait EventQueue: Send + Sync {
    /// Reads events into `out`, whose length is the count asked for.
    /// Returns the bytes written; an error only if none was.
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize>;
    /// Takes what userspace wrote from `input`, as [`EventQueue::read`].
    /// Files made read-only never call it.
    fn write(&self, input: &mut UserSliceReader) -> Result<usize>;
    /// The poll mask now: [`POLL_READABLE`], [`POLL_WRITABLE`].
    fn poll_mask(&self) -> u32;
    /// What pollers wait on: notified when an event arrives.
    fn wait(&self) -> &PollCondVar;
}

/// What a file owns: boxed twice, so that the file holds a thin pointer.
type Owned = KBox<dyn EventQueue>;

// `struct file` holds an empty arch spinlock type on this config, which the
// lint flags; only pointers cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    fn iommufd_rs_eventq_file_new(
        name: *const kernel::ffi::c_char,
        data: *mut c_void,
        writable: bool,
    ) -> *mut bindings::file;
}

/// An event-queue file not installed at a descriptor yet; dropping it
/// releases the file, and so the queue.
pub(crate) struct EventFile {
    file: ARef<File>,
}

impl EventFile {
    /// A new file named `name` serving `queue`; `writable` gives it a
    /// `write`. On error `queue` is dropped.
    pub(crate) fn new(name: &'static CStr, writable: bool, queue: Owned) -> Result<Self> {
        let ptr = KBox::new(queue, GFP_KERNEL)?.into_foreign();
        // SAFETY: `name` is a NUL-terminated static string; `ptr` is a valid
        // foreign pointer, owned by the file from now on: its release gives
        // it back.
        let file = unsafe { iommufd_rs_eventq_file_new(name.as_char_ptr(), ptr, writable) };
        let raw = file as isize;
        if raw < 0 && raw >= -(bindings::MAX_ERRNO as isize) {
            // SAFETY: The file was not created, so `ptr` is still ours.
            drop(unsafe { KBox::<Owned>::from_foreign(ptr) });
            return Err(Error::from_errno(raw as i32));
        }
        // SAFETY: `anon_inode_getfile` returned a new file with one
        // reference, which is handed over; it is not an error pointer.
        let file =
            unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file.cast::<File>())) };
        Ok(Self { file })
    }

    /// Installs the file at the reserved descriptor.
    pub(crate) fn install(self, fd: FileDescriptorReservation) {
        fd.fd_install(self.file);
    }
}

/// The queue behind a file's `private_data`.
///
/// # Safety
///
/// `data` is the `private_data` of a live event-queue file, set by
/// [`EventFile::new`], and the file is not being released.
unsafe fn queue<'a>(data: *mut c_void) -> &'a dyn EventQueue {
    // SAFETY: The caller promises `data` came from `into_foreign` in
    // `EventFile::new` and is not given back while the borrow lives.
    let owned: &'a Owned = unsafe { <KBox<Owned> as ForeignOwnable>::borrow(data) };
    &**owned
}

/// A byte count or an error, as a `ssize_t`.
fn to_ssize(r: Result<usize>) -> isize {
    match r {
        // Counts are at most MAX_RW_COUNT, which fits.
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The file's `read`, at position 0.
///
/// # Safety
///
/// Called by the event-queue file's `read` with its `private_data` and
/// the user buffer of `count` bytes it was given.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_eventq_read(
    data: *mut c_void,
    buf: *mut c_void,
    count: usize,
) -> isize {
    // SAFETY: A read runs on a live file, never during its release.
    let queue = unsafe { queue(data) };
    let mut out = UserSlice::new(UserPtr::from_ptr(buf), count).writer();
    to_ssize(queue.read(&mut out))
}

/// The file's `write`, at position 0.
///
/// # Safety
///
/// As [`iommufd_rs_eventq_read`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_eventq_write(
    data: *mut c_void,
    buf: *mut c_void,
    count: usize,
) -> isize {
    // SAFETY: A write runs on a live file, never during its release.
    let queue = unsafe { queue(data) };
    let mut input = UserSlice::new(UserPtr::from_ptr(buf), count).reader();
    to_ssize(queue.write(&mut input))
}

/// The file's `poll`.
///
/// # Safety
///
/// Called by the event-queue file's `poll` with its `private_data`, the
/// file, and the poll table the VFS passed (or null).
#[no_mangle]
unsafe extern "C" fn iommufd_rs_eventq_poll(
    data: *mut c_void,
    file: *mut bindings::file,
    wait: *mut bindings::poll_table,
) -> u32 {
    // SAFETY: A poll runs on a live file, never during its release.
    let queue = unsafe { queue(data) };
    // SAFETY: The VFS holds a reference on `file` for the call.
    let file = unsafe { File::from_raw_file(file) };
    // SAFETY: `wait` is null or a valid poll table for the call.
    let table = unsafe { PollTable::from_raw(wait) };
    table.register_wait(file, queue.wait());
    queue.poll_mask()
}

/// The file's `release`: drops the queue.
///
/// # Safety
///
/// Called once, by the event-queue file's `release`, with the
/// `private_data` that [`EventFile::new`] stored.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_eventq_release(data: *mut c_void) {
    // SAFETY: `data` came from `into_foreign` in `EventFile::new`, and
    // release runs once per file, after every other file operation.
    drop(unsafe { KBox::<Owned>::from_foreign(data) });
}
