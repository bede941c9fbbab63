// SPDX-License-Identifier: GPL-2.0

//! Raw system calls the tests need that std does not offer.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

extern "C" {
    fn setresgid(r: u32, e: u32, s: u32) -> i32;
    fn setresuid(r: u32, e: u32, s: u32) -> i32;
    fn setgroups(n: usize, list: *const u32) -> i32;
    fn ioctl(fd: i32, request: u64, ...) -> i32;
    fn syscall(num: i64, ...) -> i64;
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn munmap(addr: *mut u8, len: usize) -> i32;
    fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
    fn mprotect(addr: *mut u8, len: usize, prot: i32) -> i32;
    fn setrlimit(resource: i32, limit: *const [u64; 2]) -> i32;
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    fn pread(fd: i32, buf: *mut u8, count: usize, off: i64) -> isize;
    fn read(fd: i32, buf: *mut u8, count: usize) -> isize;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

/// `struct pollfd`.
#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

/// `POLLIN`, `POLLOUT`, `POLLRDNORM`.
pub const POLLIN: i16 = 0x1;
pub const POLLOUT: i16 = 0x4;
pub const POLLRDNORM: i16 = 0x40;

/// The events `poll()` reports at once for `file`, asked for all of
/// `POLLIN | POLLOUT | POLLRDNORM`.
pub fn poll_now(file: &File) -> Result<i16, Errno> {
    let mut pfd = PollFd {
        fd: file.as_raw_fd(),
        events: POLLIN | POLLOUT | POLLRDNORM,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid `struct pollfd` for the call.
    if unsafe { poll(&mut pfd, 1, 0) } < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1));
    }
    Ok(pfd.revents)
}

/// The result of a read or write syscall: the count or the errno.
fn io_result(rc: isize) -> Result<usize, Errno> {
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    } else {
        Ok(rc as usize)
    }
}

/// `read(fd, buf, count)` with `count` up to `buf.len()`, or `pread` at
/// `offset` if given.
pub fn read_fd(
    file: &File,
    buf: &mut [u8],
    count: usize,
    offset: Option<i64>,
) -> Result<usize, Errno> {
    let count = count.min(buf.len());
    let fd = file.as_raw_fd();
    // SAFETY: `buf` has room for `count` bytes.
    io_result(unsafe {
        match offset {
            Some(off) => pread(fd, buf.as_mut_ptr(), count, off),
            None => read(fd, buf.as_mut_ptr(), count),
        }
    })
}

/// `write(fd, buf, buf.len())`.
pub fn write_fd(file: &File, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` holds `buf.len()` readable bytes.
    io_result(unsafe { write(file.as_raw_fd(), buf.as_ptr(), buf.len()) })
}

/// `RLIMIT_MEMLOCK`.
const RLIMIT_MEMLOCK: i32 = 8;

/// Sets this process's RLIMIT_MEMLOCK (soft and hard) to `bytes`.
pub fn set_memlock_limit(bytes: u64) -> io::Result<()> {
    // SAFETY: `limit` is a valid `struct rlimit` for the call's duration.
    if unsafe { setrlimit(RLIMIT_MEMLOCK, &[bytes, bytes]) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const SYS_DELETE_MODULE: i64 = 176;
const SYS_MEMFD_CREATE: i64 = 319;
const O_NONBLOCK: u32 = 0o4000;

/// An errno, or 0 for success.
pub type Errno = i32;

/// Opens a device node read-write.
pub fn open_dev(path: &str) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// `ioctl(fd, request, arg)`: 0 or the errno.
pub fn ioctl_ptr(file: &File, request: u32, arg: *mut u8) -> Errno {
    // SAFETY: The kernel only touches `arg` as the ioctl's documented
    // struct; callers pass a pointer to a buffer at least `size` bytes long,
    // or a deliberately invalid pointer that the kernel must reject.
    let rc = unsafe { ioctl(file.as_raw_fd(), request as u64, arg) };
    if rc < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// `ioctl(fd, request, value)` with a plain integer argument: the return
/// value, or the errno as `Err`.
pub fn ioctl_value(file: &File, request: u32, value: u64) -> Result<i32, Errno> {
    // SAFETY: The kernel reads `value` as a number, not as a pointer.
    let rc = unsafe { ioctl(file.as_raw_fd(), request as u64, value) };
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    } else {
        Ok(rc)
    }
}

/// `ioctl` with a typed struct: what it returned, or the errno.
pub fn ioctl_struct_ret<T>(file: &File, request: u32, arg: &mut T) -> Result<i32, Errno> {
    // SAFETY: As in `ioctl_ptr`: `arg` is the ioctl's struct.
    let rc = unsafe {
        ioctl(
            file.as_raw_fd(),
            request as u64,
            (arg as *mut T).cast::<u8>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    } else {
        Ok(rc)
    }
}

/// `ioctl` with a typed struct; 0 or the errno.
pub fn ioctl_struct<T>(file: &File, request: u32, arg: &mut T) -> Errno {
    ioctl_ptr(file, request, (arg as *mut T).cast())
}

/// `delete_module(name, O_NONBLOCK)`: 0 or the errno.
pub fn delete_module(name: &str) -> Errno {
    let Ok(name) = CString::new(name) else {
        return libc_einval();
    };
    // SAFETY: `name` is a valid C string for the duration of the call.
    let rc = unsafe { syscall(SYS_DELETE_MODULE, name.as_ptr(), O_NONBLOCK) };
    if rc < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// `memfd_create(name, 0)` sized to `len` bytes.
pub fn memfd(len: u64) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    let name = CString::new("iommufd-rs-test").map_err(io::Error::other)?;
    // SAFETY: `name` is a valid C string; the call has no other inputs.
    let fd = unsafe { syscall(SYS_MEMFD_CREATE, name.as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd as i32) };
    file.set_len(len)?;
    Ok(file)
}

/// What backs an anonymous mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonPages {
    /// 4 KiB pages only (`MADV_NOHUGEPAGE`).
    Small,
    /// Transparent huge pages where they fit (`MADV_HUGEPAGE`).
    Thp,
    /// 2 MiB hugetlb pages (`MAP_HUGETLB`); `len` must be a multiple.
    Hugetlb,
}

/// An anonymous private read-write mapping of `len` bytes, 2 MiB aligned
/// and not yet touched; `None` if the kernel refuses it.
pub fn mmap_anon(len: u64, pages: AnonPages) -> Option<u64> {
    mmap_anon_inner(None, len, pages)
}

/// As [`mmap_anon`], but exactly at `addr` (2 MiB aligned), so that runs
/// see the same addresses in every boot; `None` if the kernel refuses it or
/// something is mapped there already.
pub fn mmap_anon_at(addr: u64, len: u64, pages: AnonPages) -> Option<u64> {
    mmap_anon_inner(Some(addr), len, pages)
}

fn mmap_anon_inner(at: Option<u64>, len: u64, pages: AnonPages) -> Option<u64> {
    const PROT_RW: i32 = 3;
    const MAP_PRIVATE_ANON: i32 = 0x02 | 0x20;
    const MAP_HUGETLB: i32 = 0x40000;
    const MAP_FIXED_NOREPLACE: i32 = 0x100000;
    const MADV_HUGEPAGE: i32 = 14;
    const MADV_NOHUGEPAGE: i32 = 15;
    const HUGE: u64 = 2 << 20;
    let huge = pages == AnonPages::Hugetlb;
    let mut flags = MAP_PRIVATE_ANON | if huge { MAP_HUGETLB } else { 0 };
    // Room to align the start to 2 MiB; hugetlb and fixed mappings come
    // aligned.
    let span = if huge || at.is_some() {
        len
    } else {
        len + HUGE
    };
    if at.is_some() {
        flags |= MAP_FIXED_NOREPLACE;
    }
    let hint = at.unwrap_or(0) as *mut u8;
    // SAFETY: A fresh anonymous mapping at an address the kernel picks, or
    // at `hint` only if nothing is mapped there (MAP_FIXED_NOREPLACE).
    let p = unsafe { mmap(hint, span as usize, PROT_RW, flags, -1, 0) };
    if p as isize == -1 || at.is_some_and(|a| a != p as u64) {
        return None;
    }
    let start = (p as u64 + HUGE - 1) & !(HUGE - 1);
    if !huge {
        let advice = match pages {
            AnonPages::Thp => MADV_HUGEPAGE,
            _ => MADV_NOHUGEPAGE,
        };
        // SAFETY: Advice on part of the mapping just made; a refusal only
        // changes the page size.
        unsafe { madvise(start as *mut u8, len as usize, advice) };
    }
    Some(start)
}

/// `madvise(MADV_DONTNEED)` on `[start, start + len)`: private anonymous
/// pages are dropped, and read back as zeroes.
pub fn madvise_dontneed(start: u64, len: u64) -> io::Result<()> {
    const MADV_DONTNEED: i32 = 4;
    // SAFETY: Advice on the caller's own mapping; the caller no longer
    // relies on the contents.
    if unsafe { madvise(start as *mut u8, len as usize, MADV_DONTNEED) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mprotect` of `[start, start + len)` to read-only, or back to
/// read-write.
pub fn set_read_only(start: u64, len: u64, read_only: bool) -> io::Result<()> {
    let prot = if read_only { 1 } else { 3 };
    // SAFETY: The caller's own page-aligned mapping; it stops writing to
    // it while it is read-only.
    if unsafe { mprotect(start as *mut u8, len as usize, prot) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns off address-space randomisation for this process: if it was on,
/// sets `ADDR_NO_RANDOMIZE` and executes this program again with the same
/// arguments (so its stack and heap move too). Returns only if it was
/// already off, or if it cannot be turned off.
pub fn exec_without_aslr() {
    use std::os::unix::process::CommandExt;
    const SYS_PERSONALITY: i64 = 135;
    const ADDR_NO_RANDOMIZE: i64 = 0x0040000;
    const QUERY: i64 = 0xffff_ffff;
    // SAFETY: personality() with 0xffffffff only reads this process's
    // persona.
    let persona = unsafe { syscall(SYS_PERSONALITY, QUERY) };
    if persona < 0 || persona & ADDR_NO_RANDOMIZE != 0 {
        return;
    }
    // SAFETY: Sets a persona bit that takes effect at the next exec.
    if unsafe { syscall(SYS_PERSONALITY, persona | ADDR_NO_RANDOMIZE) } < 0 {
        return;
    }
    let mut args = std::env::args_os();
    let Some(prog) = args.next() else {
        return;
    };
    let exe = std::env::current_exe().map_or(prog.into(), |p| p.into_os_string());
    // exec() returns only on failure; then this run simply keeps ASLR.
    let _ = std::process::Command::new(exe).args(args).exec();
}

/// A shared read-write mapping of the first `len` bytes of `file`; `None`
/// if the kernel refuses it.
pub fn mmap_shared(file: &File, len: u64) -> Option<u64> {
    const PROT_RW: i32 = 3;
    const MAP_SHARED: i32 = 0x01;
    // SAFETY: A fresh mapping of our own file at an address the kernel
    // picks.
    let p = unsafe {
        mmap(
            std::ptr::null_mut(),
            len as usize,
            PROT_RW,
            MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    (p as isize != -1).then_some(p as u64)
}

/// `mmap(NULL, len, prot, flags, file, offset)`: the address or the errno.
pub fn mmap_file(file: &File, len: u64, prot: i32, flags: i32, offset: u64) -> Result<u64, Errno> {
    // SAFETY: A fresh mapping at an address the kernel picks; nothing of
    // ours lives there.
    let p = unsafe {
        mmap(
            std::ptr::null_mut(),
            len as usize,
            prot,
            flags,
            file.as_raw_fd(),
            offset as i64,
        )
    };
    if p as isize == -1 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1));
    }
    Ok(p as u64)
}

/// `munmap(addr, len)` of what [`mmap_file`] returned.
pub fn munmap_file(addr: u64, len: u64) {
    // SAFETY: The caller unmaps a mapping of its own that nothing else
    // refers to.
    unsafe { munmap(addr as *mut u8, len as usize) };
}

/// Unmaps what [`mmap_anon`] returned, with the same `len` and `pages`.
/// The 2 MiB alignment slack stays mapped; it was never touched.
pub fn munmap_anon(start: u64, len: u64) {
    // SAFETY: The caller owns this range of its own mapping and no longer
    // uses it.
    unsafe { munmap(start as *mut u8, len as usize) };
}

/// Writes one byte in each 4 KiB page of `[start, start + len)`, so that
/// every page is present.
pub fn touch(start: u64, len: u64) {
    for off in (0..len).step_by(4096) {
        // SAFETY: The caller's own writable mapping.
        unsafe { ((start + off) as *mut u8).write_volatile(1) };
    }
}

/// Drops to an unprivileged user and group (and no capabilities).
pub fn become_user(uid: u32) -> io::Result<()> {
    // SAFETY: Plain syscalls on this process's credentials; the group list
    // pointer is unused for an empty list.
    let rc = unsafe {
        if setgroups(0, std::ptr::null()) != 0 || setresgid(uid, uid, uid) != 0 {
            -1
        } else {
            setresuid(uid, uid, uid)
        }
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn libc_einval() -> Errno {
    22
}

/// Errno values used by the tests (x86_64 Linux).
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const EFAULT: i32 = 14;
    pub const EBUSY: i32 = 16;
    pub const EINVAL: i32 = 22;
    pub const ENOTTY: i32 = 25;
    pub const EAGAIN: i32 = 11;
    pub const E2BIG: i32 = 7;
    pub const EMSGSIZE: i32 = 90;
    pub const EOPNOTSUPP: i32 = 95;
    pub const EPERM: i32 = 1;
    pub const EBADF: i32 = 9;
    pub const EEXIST: i32 = 17;
    pub const ENOSPC: i32 = 28;
    pub const EOVERFLOW: i32 = 75;
    pub const EADDRINUSE: i32 = 98;
    pub const ENODEV: i32 = 19;
    pub const EACCES: i32 = 13;
    pub const ENOMEM: i32 = 12;
    pub const ESPIPE: i32 = 29;
    pub const ENXIO: i32 = 6;
    pub const EIO: i32 = 5;
    pub const ERANGE: i32 = 34;
    pub const EBADE: i32 = 52;
    pub const EDEADLOCK: i32 = 35;
}
