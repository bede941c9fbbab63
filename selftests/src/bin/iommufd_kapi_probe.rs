// SPDX-License-Identifier: GPL-2.0

//! The in-kernel access API as vfio uses it for an emulated device, through
//! the C test module kapi_probe.ko (iommufd/kapi_probe.c, /dev/kapi_probe):
//! contexts from file descriptors, access create/attach/replace/detach/
//! destroy, pin_pages checked against the user's own pages, reads and
//! writes from the caller's process and from a kthread, the unmap callback
//! on IOAS_UNMAP, replace and destroy, pin balance, the compat IOAS, and
//! the errnos of each call.
//!
//! kapi_probe calls the upstream names (`iommufd_access_pin_pages()`, ...),
//! so the same run works on C iommufd.ko and on iommufd_rs.ko with
//! iommufd_rs_vfio.ko. Usage: `iommufd_kapi_probe [--module NAME]`, NAME
//! being the module behind /dev/iommu (default `iommufd`), whose reference
//! count must come back. Test names and results do not depend on the
//! provider, addresses or timing, so two providers' result lines can be
//! diffed; every expected errno is C iommufd's. Prints KTAP, ending with
//! `# kapi probe: N passed, M failed`; exits 1 if a test failed.

use iommufd_rs_selftests::dev::{read_number, vm_pin_kb, Iommufd, FIXED, READ, RW, WRITE};
use iommufd_rs_selftests::ktap::{run, Test, TestResult};
use iommufd_rs_selftests::sys::{self, errno::*, AnonPages, Errno};
use iommufd_rs_selftests::{check, check_eq, uapi};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

/// `EBADFD`: a file that is not an iommufd.
const EBADFD: i32 = 77;
/// What kapi_probe answers when its own state forbids an op.
const ENXIO: i32 = 6;

const PAGE: u64 = 4096;
/// The main area: 4 pages at a fixed IOVA.
const IOVA_A: u64 = 0x10_0000;
const LEN: u64 = 4 * PAGE;
/// An area right after it.
const IOVA_B: u64 = IOVA_A + LEN;
/// Nothing is mapped here.
const IOVA_HOLE: u64 = 0x100_0000;

// kapi_probe's uAPI (iommufd/kapi_probe.c).
const KAPI_CTX_FROM_FD: u32 = 1;
const KAPI_CTX_PUT: u32 = 2;
const KAPI_ACCESS_CREATE: u32 = 3;
const KAPI_ACCESS_ATTACH: u32 = 4;
const KAPI_ACCESS_REPLACE: u32 = 5;
const KAPI_ACCESS_DETACH: u32 = 6;
const KAPI_ACCESS_DESTROY: u32 = 7;
const KAPI_PIN: u32 = 8;
const KAPI_UNPIN: u32 = 9;
const KAPI_RW: u32 = 10;
const KAPI_UNMAP_LOG: u32 = 11;
const KAPI_COMPAT_CREATE: u32 = 12;
const KAPI_COMPAT_GET_ID: u32 = 13;
const KAPI_COMPAT_NO_IOMMU: u32 = 14;

/// `IOMMUFD_ACCESS_RW_*`.
const RW_WRITE: u32 = 1 << 0;
const RW_KTHREAD: u32 = 1 << 1;
const KAPI_IN_WORKER: u32 = 1 << 8;
const KAPI_NEEDS_PIN: u32 = 1 << 9;
const KAPI_BY_FILE: u32 = 1 << 10;
const KAPI_POKE: u32 = 1 << 11;

/// `struct kapi_probe_cmd`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Cmd {
    op: u32,
    flags: u32,
    fd: i32,
    id: u32,
    iova: u64,
    length: u64,
    uptr: u64,
    out: u64,
}

/// `struct kapi_unmap_entry`: one call of the access's unmap callback.
#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Unmap {
    iova: u64,
    length: u64,
    /// Errno of a 1-byte read at `iova` made from the callback.
    rw_errno: i32,
    /// Pins the callback dropped.
    pins_dropped: u32,
}

/// `_IOWR('k', 0x70, struct kapi_probe_cmd)`.
const KAPI_PROBE_CMD: u32 =
    (3 << 30) | ((std::mem::size_of::<Cmd>() as u32) << 16) | ((b'k' as u32) << 8) | 0x70;

/// The callback's range for "everything" (0, ULONG_MAX).
const ALL: (u64, u64) = (0, u64::MAX);

/// An open /dev/kapi_probe: one emulated device.
struct Probe {
    file: File,
}

impl Probe {
    fn open() -> Result<Self, String> {
        let file = sys::open_dev("/dev/kapi_probe").map_err(|e| format!("open probe: {e}"))?;
        Ok(Self { file })
    }

    fn call(&self, cmd: &mut Cmd) -> Errno {
        sys::ioctl_struct(&self.file, KAPI_PROBE_CMD, cmd)
    }

    fn op(&self, op: u32, flags: u32, fd: i32, id: u32) -> (Errno, Cmd) {
        let mut cmd = Cmd {
            op,
            flags,
            fd,
            id,
            ..Default::default()
        };
        (self.call(&mut cmd), cmd)
    }

    /// `iommufd_ctx_from_fd()` (or `_from_file()` with `by_file`).
    fn ctx(&self, fd: i32, by_file: bool) -> Errno {
        self.op(
            KAPI_CTX_FROM_FD,
            if by_file { KAPI_BY_FILE } else { 0 },
            fd,
            0,
        )
        .0
    }

    fn ctx_put(&self) -> Errno {
        self.op(KAPI_CTX_PUT, 0, 0, 0).0
    }

    /// `iommufd_access_create()`: the access's ID.
    fn create(&self, needs_pin: bool) -> Result<u32, Errno> {
        let flags = if needs_pin { KAPI_NEEDS_PIN } else { 0 };
        match self.op(KAPI_ACCESS_CREATE, flags, 0, 0) {
            (0, cmd) => Ok(cmd.out as u32),
            (e, _) => Err(e),
        }
    }

    fn attach(&self, ioas: u32) -> Errno {
        self.op(KAPI_ACCESS_ATTACH, 0, 0, ioas).0
    }

    fn replace(&self, ioas: u32) -> Errno {
        self.op(KAPI_ACCESS_REPLACE, 0, 0, ioas).0
    }

    fn detach(&self) -> Errno {
        self.op(KAPI_ACCESS_DETACH, 0, 0, 0).0
    }

    /// `iommufd_access_destroy()`: the pins its callbacks left behind.
    fn destroy(&self) -> Result<u64, Errno> {
        match self.op(KAPI_ACCESS_DESTROY, 0, 0, 0) {
            (0, cmd) => Ok(cmd.out),
            (e, _) => Err(e),
        }
    }

    /// `iommufd_access_pin_pages()`; each page is compared with the user's
    /// page at `uva` onwards (0: not compared). The pages that differ.
    fn pin(&self, iova: u64, length: u64, flags: u32, uva: u64) -> Result<u64, Errno> {
        let mut cmd = Cmd {
            op: KAPI_PIN,
            flags,
            iova,
            length,
            uptr: uva,
            ..Default::default()
        };
        match self.call(&mut cmd) {
            0 => Ok(cmd.out),
            e => Err(e),
        }
    }

    fn unpin(&self, iova: u64, length: u64) -> Errno {
        let mut cmd = Cmd {
            op: KAPI_UNPIN,
            iova,
            length,
            ..Default::default()
        };
        self.call(&mut cmd)
    }

    /// `iommufd_access_rw()` of `buf` at `iova` (`RW_WRITE` in `flags`
    /// writes it, else reads into it).
    fn rw(&self, iova: u64, buf: &mut [u8], flags: u32) -> Errno {
        let mut cmd = Cmd {
            op: KAPI_RW,
            flags,
            iova,
            length: buf.len() as u64,
            uptr: buf.as_mut_ptr() as u64,
            ..Default::default()
        };
        self.call(&mut cmd)
    }

    /// The unmap callback's calls since the last look, and the pins held.
    fn log(&self) -> Result<(Vec<Unmap>, u32), String> {
        let mut entries = [Unmap::default(); 16];
        let mut cmd = Cmd {
            op: KAPI_UNMAP_LOG,
            length: entries.len() as u64,
            uptr: entries.as_mut_ptr() as u64,
            ..Default::default()
        };
        match self.call(&mut cmd) {
            0 => Ok((entries[..(cmd.out as usize).min(16)].to_vec(), cmd.id)),
            e => Err(format!("KAPI_UNMAP_LOG: errno {e}")),
        }
    }

    fn compat_get_id(&self) -> Result<u32, Errno> {
        match self.op(KAPI_COMPAT_GET_ID, 0, 0, 0) {
            (0, cmd) => Ok(cmd.out as u32),
            (e, _) => Err(e),
        }
    }
}

/// A callback log entry.
fn unmap(range: (u64, u64), rw_errno: i32, pins_dropped: u32) -> Unmap {
    Unmap {
        iova: range.0,
        length: range.1,
        rw_errno,
        pins_dropped,
    }
}

/// User memory: anonymous 4 KiB pages, each byte a function of its offset
/// and `seed`.
struct Buf {
    addr: u64,
    len: u64,
}

impl Buf {
    fn new(len: u64, seed: u8) -> Result<Self, String> {
        let addr = sys::mmap_anon(len, AnonPages::Small).ok_or("mmap failed")?;
        let buf = Self { addr, len };
        buf.fill(seed);
        Ok(buf)
    }

    fn bytes(&self) -> &mut [u8] {
        // SAFETY: Our own mapping of `len` bytes; the tests are single
        // threaded, and the kernel writes it only inside the ioctls.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len as usize) }
    }

    fn fill(&self, seed: u8) {
        for (i, b) in self.bytes().iter_mut().enumerate() {
            *b = pattern(seed, i);
        }
    }

    fn at(&self, off: u64) -> u64 {
        self.addr + off
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        sys::munmap_anon(self.addr, self.len);
    }
}

fn pattern(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i % 251) as u8)
        .wrapping_add((i / 4096) as u8 * 17)
}

fn pattern_vec(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| pattern(seed, i)).collect()
}

/// An iommufd with an IOAS mapping a 4-page buffer read-write at IOVA_A,
/// and a probe holding its context and an access (not attached). Dropped
/// in this order: the probe (as a vfio device closed), the iommufd, the
/// memory.
struct Env {
    probe: Probe,
    fd: Iommufd,
    buf: Buf,
    ioas: u32,
    access: u32,
}

fn env_with(needs_pin: bool) -> Result<Env, String> {
    let fd = Iommufd::open()?;
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let buf = Buf::new(LEN, 0x11)?;
    check_eq!(fd.map(ioas, buf.addr, LEN, RW | FIXED, IOVA_A), Ok(IOVA_A));
    let probe = Probe::open()?;
    check_eq!(probe.ctx(fd.file.as_raw_fd(), false), 0);
    let access = probe
        .create(needs_pin)
        .map_err(|e| format!("access_create: errno {e}"))?;
    Ok(Env {
        probe,
        fd,
        buf,
        ioas,
        access,
    })
}

/// As [`env_with`], a pinning access (vfio's emulated devices), attached.
fn env() -> Result<Env, String> {
    let e = env_with(true)?;
    check_eq!(e.probe.attach(e.ioas), 0);
    Ok(e)
}

/// FOLL_PIN references held system-wide (acquired - released).
fn foll_pins() -> Result<i64, String> {
    // Folds per-CPU counters (SMP kernels only; harmless elsewhere).
    let _ = std::fs::write("/proc/sys/vm/stat_refresh", "1");
    let acquired = read_number("/proc/vmstat", Some("nr_foll_pin_acquired "))?;
    let released = read_number("/proc/vmstat", Some("nr_foll_pin_released "))?;
    Ok(acquired as i64 - released as i64)
}

static MODULE: OnceLock<String> = OnceLock::new();

/// The reference count of the module behind /dev/iommu.
fn module_refs() -> Result<u64, String> {
    let name = MODULE.get().map_or("iommufd", |m| m.as_str());
    read_number(&format!("/sys/module/{name}/refcnt"), None)
}

/// Pins in use when the program started.
static PINS_AT_START: OnceLock<i64> = OnceLock::new();

// ---- contexts ----

fn ctx_bad_fd() -> TestResult {
    let probe = Probe::open()?;
    check_eq!(probe.ctx(-1, false), EBADF);
    Ok(())
}

fn ctx_closed_fd() -> TestResult {
    let probe = Probe::open()?;
    check_eq!(probe.ctx(1000, false), EBADF);
    const O_PATH: i32 = 0o10000000;
    let path = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_PATH)
        .open("/dev/iommu")
        .map_err(|e| format!("open O_PATH: {e}"))?;
    check_eq!(probe.ctx(path.as_raw_fd(), false), EBADF);
    Ok(())
}

fn ctx_dev_null() -> TestResult {
    let probe = Probe::open()?;
    let null = File::open("/dev/null").map_err(|e| e.to_string())?;
    check_eq!(probe.ctx(null.as_raw_fd(), false), EBADFD);
    check_eq!(probe.ctx(null.as_raw_fd(), true), EBADFD);
    let other = Probe::open()?;
    check_eq!(probe.ctx(other.file.as_raw_fd(), false), EBADFD);
    check_eq!(probe.ctx(other.file.as_raw_fd(), true), EBADFD);
    Ok(())
}

fn ctx_from_file() -> TestResult {
    let fd = Iommufd::open()?;
    let probe = Probe::open()?;
    check_eq!(probe.ctx(fd.file.as_raw_fd(), true), 0);
    check_eq!(probe.create(true), Ok(1));
    check_eq!(probe.destroy(), Ok(0));
    // Never attached: no callback.
    check_eq!(probe.log()?, (vec![], 0));
    check_eq!(probe.ctx_put(), 0);
    Ok(())
}

/// As vfio holds its iommufd: the context lives on after userspace closes
/// the fd, until the last put.
fn ctx_outlives_fd() -> TestResult {
    let refs0 = module_refs()?;
    let fd = Iommufd::open()?;
    check_eq!(module_refs()?, refs0 + 1);
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let buf = Buf::new(LEN, 0x22)?;
    check_eq!(fd.map(ioas, buf.addr, LEN, RW | FIXED, IOVA_A), Ok(IOVA_A));
    let probe = Probe::open()?;
    check_eq!(probe.ctx(fd.file.as_raw_fd(), false), 0);
    drop(fd);
    check_eq!(module_refs()?, refs0 + 1);
    check_eq!(probe.create(true), Ok(2));
    check_eq!(probe.attach(ioas), 0);
    let mut got = vec![0u8; 100];
    check_eq!(probe.rw(IOVA_A + 5000, &mut got, 0), 0);
    check!(got[..] == buf.bytes()[5000..5100]);
    check_eq!(probe.pin(IOVA_A, PAGE, 0, buf.addr), Ok(0));
    check_eq!(probe.destroy(), Ok(0));
    check_eq!(probe.log()?, (vec![unmap(ALL, ENOENT, 1)], 0));
    check_eq!(module_refs()?, refs0 + 1);
    check_eq!(probe.ctx_put(), 0);
    check_eq!(module_refs()?, refs0);
    Ok(())
}

// ---- create, attach, replace, detach, destroy ----

fn access_id() -> TestResult {
    let e = env_with(true)?;
    check_eq!((e.ioas, e.access), (1, 2));
    let p2 = Probe::open()?;
    check_eq!(p2.ctx(e.fd.file.as_raw_fd(), false), 0);
    check_eq!(p2.create(false), Ok(3));
    // A destroyed access's ID is free again.
    check_eq!(p2.destroy(), Ok(0));
    check_eq!(p2.create(true), Ok(3));
    Ok(())
}

fn attach_missing() -> TestResult {
    let e = env_with(true)?;
    check_eq!(e.probe.attach(99), ENOENT);
    check_eq!(e.probe.attach(0), ENOENT);
    Ok(())
}

fn attach_not_ioas() -> TestResult {
    let e = env_with(true)?;
    check_eq!(e.probe.attach(e.access), ENOENT);
    Ok(())
}

fn unattached_calls() -> TestResult {
    let e = env_with(true)?;
    check_eq!(e.probe.replace(e.ioas), ENOENT);
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, 0), Err(ENOENT));
    check_eq!(e.probe.rw(IOVA_A, &mut [0u8; 8], 0), ENOENT);
    // The arguments are checked first.
    check_eq!(e.probe.pin(IOVA_A, 0, 0, 0), Err(EINVAL));
    check_eq!(e.probe.pin(u64::MAX, 2, 0, 0), Err(EOVERFLOW));
    check_eq!(e.probe.rw(IOVA_A, &mut [], 0), EINVAL);
    check_eq!(e.probe.rw(u64::MAX, &mut [0u8; 2], 0), EOVERFLOW);
    check_eq!(e.probe.log()?, (vec![], 0));
    Ok(())
}

fn attach_unaligned_area() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let buf = Buf::new(LEN, 0x33)?;
    // 100 bytes into a page, over 3 pages.
    let len = 2 * PAGE + 1000;
    check_eq!(
        fd.map(ioas, buf.at(100), len, RW | FIXED, IOVA_A + 100),
        Ok(IOVA_A + 100)
    );
    let p = Probe::open()?;
    check_eq!(p.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(p.create(true), Ok(2));
    check_eq!(p.attach(ioas), EADDRINUSE);
    check_eq!(p.pin(IOVA_A, PAGE, 0, 0), Err(ENOENT));
    check_eq!(p.destroy(), Ok(0));
    // An access that only reads and writes takes any alignment.
    check_eq!(p.create(false), Ok(2));
    check_eq!(p.attach(ioas), 0);
    for (i, flags) in [0, KAPI_IN_WORKER, KAPI_IN_WORKER | RW_KTHREAD]
        .into_iter()
        .enumerate()
    {
        let (off, n) = (100 + 1000 * i as u64, PAGE as usize + 500);
        let mut data = pattern_vec(0x80 + i as u8, n);
        check_eq!(p.rw(IOVA_A + off, &mut data, flags | RW_WRITE), 0);
        check!(buf.bytes()[off as usize..off as usize + n] == data[..]);
        buf.fill(0x90 + i as u8);
        let mut got = vec![0u8; len as usize];
        check_eq!(p.rw(IOVA_A + 100, &mut got, flags), 0);
        check!(got[..] == buf.bytes()[100..100 + len as usize]);
    }
    check_eq!(p.rw(IOVA_A + 99, &mut [0u8; 2], 0), ENOENT);
    check_eq!(p.rw(IOVA_A + 99 + len, &mut [0u8; 2], 0), ENOENT);
    Ok(())
}

fn map_unaligned_attached() -> TestResult {
    let e = env()?;
    let buf = Buf::new(LEN, 0x44)?;
    check_eq!(
        e.fd.map(e.ioas, buf.at(100), 1000, RW | FIXED, IOVA_B + 100),
        Err(EINVAL)
    );
    check_eq!(
        e.fd.map(e.ioas, buf.at(100), 1000, RW | FIXED, IOVA_B),
        Err(EINVAL)
    );
    check_eq!(
        e.fd.map(e.ioas, buf.at(0), 1000, RW | FIXED, IOVA_B),
        Err(EINVAL)
    );
    check_eq!(
        e.fd.map(e.ioas, buf.at(100), 1000, RW, 0).map(|_| ()),
        Err(EINVAL)
    );
    check_eq!(
        e.fd.map(e.ioas, buf.addr, PAGE, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    Ok(())
}

fn destroy_ioas_attached() -> TestResult {
    let e = env()?;
    check_eq!(e.fd.destroy(e.ioas), EBUSY);
    check_eq!(e.fd.destroy(e.access), EBUSY);
    check_eq!(e.probe.detach(), 0);
    check_eq!(e.probe.log()?, (vec![unmap(ALL, ENOENT, 0)], 0));
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.fd.destroy(e.ioas), 0);
    check_eq!(e.probe.attach(e.ioas), ENOENT);
    Ok(())
}

fn detach_reattach() -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, 2 * PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(e.probe.detach(), 0);
    check_eq!(e.probe.log()?, (vec![unmap(ALL, ENOENT, 1)], 0));
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, 0), Err(ENOENT));
    check_eq!(e.probe.rw(IOVA_A, &mut [0u8; 8], 0), ENOENT);
    check_eq!(e.probe.replace(e.ioas), ENOENT);
    check_eq!(e.probe.attach(e.ioas), 0);
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(e.probe.unpin(IOVA_A, PAGE), 0);
    check_eq!(e.probe.log()?, (vec![], 0));
    Ok(())
}

fn replace_other_ioas() -> TestResult {
    let e = env()?;
    let ioas2 =
        e.fd.ioas_alloc()
            .map_err(|x| format!("IOAS_ALLOC: errno {x}"))?;
    let buf2 = Buf::new(LEN, 0x55)?;
    check_eq!(
        e.fd.map(ioas2, buf2.addr, LEN, RW | FIXED, IOVA_A),
        Ok(IOVA_A)
    );
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(
        e.probe
            .pin(IOVA_A + 2 * PAGE, 2 * PAGE, 0, e.buf.at(2 * PAGE)),
        Ok(0)
    );
    check_eq!(e.probe.replace(ioas2), 0);
    check_eq!(e.probe.log()?, (vec![unmap(ALL, ENOENT, 2)], 0));
    // The same IOVA now reaches the other IOAS's memory.
    check_eq!(e.probe.pin(IOVA_A, LEN, 0, buf2.addr), Ok(0));
    let mut got = vec![0u8; 64];
    check_eq!(e.probe.rw(IOVA_A + PAGE, &mut got, 0), 0);
    check!(got[..] == buf2.bytes()[PAGE as usize..PAGE as usize + 64]);
    // The old IOAS is free of the access; the new one is not.
    check_eq!(e.fd.destroy(ioas2), EBUSY);
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![], 1));
    check_eq!(e.fd.destroy(e.ioas), 0);
    Ok(())
}

fn replace_same_ioas() -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(e.probe.replace(e.ioas), 0);
    check_eq!(e.probe.log()?, (vec![], 1));
    check_eq!(e.probe.unpin(IOVA_A, PAGE), 0);
    Ok(())
}

fn replace_missing() -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(e.probe.replace(99), ENOENT);
    check_eq!(e.probe.replace(e.access), ENOENT);
    // An IOAS with an area not page aligned cannot take a pinning access.
    let ioas2 =
        e.fd.ioas_alloc()
            .map_err(|x| format!("IOAS_ALLOC: errno {x}"))?;
    let buf2 = Buf::new(LEN, 0x19)?;
    check_eq!(
        e.fd.map(ioas2, buf2.at(100), 1000, RW | FIXED, IOVA_A + 100),
        Ok(IOVA_A + 100)
    );
    check_eq!(e.probe.replace(ioas2), EADDRINUSE);
    check_eq!(e.probe.log()?, (vec![], 1));
    // Still attached to the first IOAS.
    check_eq!(e.probe.pin(IOVA_A + PAGE, PAGE, 0, e.buf.at(PAGE)), Ok(0));
    check_eq!(e.fd.destroy(e.ioas), EBUSY);
    Ok(())
}

fn destroy_with_pins() -> TestResult {
    let pins0 = foll_pins()?;
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(
        e.probe
            .pin(IOVA_A + PAGE, 3 * PAGE, RW_WRITE, e.buf.at(PAGE)),
        Ok(0)
    );
    check_eq!(foll_pins()? - pins0, 4);
    check_eq!(e.probe.destroy(), Ok(0));
    check_eq!(e.probe.log()?, (vec![unmap(ALL, ENOENT, 2)], 0));
    check_eq!(foll_pins()? - pins0, 0);
    // The IOAS is free again.
    check_eq!(e.fd.destroy(e.ioas), 0);
    Ok(())
}

/// A probe closed with an attached access holding pins: as a vfio device
/// closed, everything is dropped.
fn close_with_pins() -> TestResult {
    let pins0 = foll_pins()?;
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, LEN, RW_WRITE, e.buf.addr), Ok(0));
    check_eq!(foll_pins()? - pins0, 4);
    let Env {
        fd, ioas, probe, ..
    } = e;
    drop(probe);
    check_eq!(foll_pins()? - pins0, 0);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

// ---- pin_pages ----

fn pin_pages_match() -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, LEN, 0, e.buf.addr), Ok(0));
    check_eq!(
        e.probe.pin(IOVA_A + PAGE, PAGE, RW_WRITE, e.buf.at(PAGE)),
        Ok(0)
    );
    // Checked against the wrong user pages, every page differs.
    check_eq!(e.probe.pin(IOVA_A, 2 * PAGE, 0, e.buf.at(2 * PAGE)), Ok(2));
    check_eq!(e.probe.unpin(IOVA_A, LEN), 0);
    check_eq!(e.probe.unpin(IOVA_A + PAGE, PAGE), 0);
    check_eq!(e.probe.unpin(IOVA_A, 2 * PAGE), 0);
    check_eq!(e.probe.log()?, (vec![], 0));
    Ok(())
}

fn pin_two_areas() -> TestResult {
    let e = env()?;
    let buf2 = Buf::new(LEN, 0x66)?;
    check_eq!(
        e.fd.map(e.ioas, buf2.addr, LEN, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    // Pages from both areas, in IOVA order: compare the two halves.
    check_eq!(
        e.probe.pin(IOVA_B - PAGE, PAGE, 0, e.buf.at(3 * PAGE)),
        Ok(0)
    );
    check_eq!(
        e.probe
            .pin(IOVA_B - 2 * PAGE, 3 * PAGE, 0, e.buf.at(2 * PAGE)),
        Ok(1)
    );
    check_eq!(e.probe.pin(IOVA_B, 2 * PAGE, 0, buf2.addr), Ok(0));
    check_eq!(e.probe.unpin(IOVA_B - PAGE, PAGE), 0);
    check_eq!(e.probe.unpin(IOVA_B - 2 * PAGE, 3 * PAGE), 0);
    check_eq!(e.probe.unpin(IOVA_B, 2 * PAGE), 0);
    Ok(())
}

fn pin_memfd_area() -> TestResult {
    let e = env()?;
    let file = sys::memfd(LEN).map_err(|x| format!("memfd: {x}"))?;
    let va = sys::mmap_shared(&file, LEN).ok_or("mmap memfd")?;
    // SAFETY: Our own shared mapping of LEN bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(va as *mut u8, LEN as usize) };
    bytes.copy_from_slice(&pattern_vec(0x77, LEN as usize));
    let fdn = file.as_raw_fd();
    check_eq!(
        e.fd.map_file(e.ioas, fdn, 0, LEN, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    check_eq!(e.probe.pin(IOVA_B, LEN, RW_WRITE, va), Ok(0));
    let mut got = vec![0u8; 3 * PAGE as usize];
    check_eq!(e.probe.rw(IOVA_B + 10, &mut got, 0), 0);
    check!(got[..] == bytes[10..10 + 3 * PAGE as usize]);
    let mut data = pattern_vec(0x99, 2 * PAGE as usize);
    check_eq!(e.probe.rw(IOVA_B + PAGE + 7, &mut data, RW_WRITE), 0);
    check!(bytes[PAGE as usize + 7..3 * PAGE as usize + 7] == data[..]);
    check_eq!(e.fd.unmap(e.ioas, IOVA_B, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![unmap((IOVA_B, LEN), EINVAL, 1)], 0));
    sys::munmap_anon(va, LEN);
    Ok(())
}

fn pin_poke() -> TestResult {
    let e = env()?;
    let before: Vec<u8> = (0..4).map(|i| e.buf.bytes()[i * PAGE as usize]).collect();
    check_eq!(
        e.probe.pin(IOVA_A, LEN, RW_WRITE | KAPI_POKE, e.buf.addr),
        Ok(0)
    );
    for (i, b) in before.iter().enumerate() {
        check_eq!(e.buf.bytes()[i * PAGE as usize], b.wrapping_add(1));
    }
    check_eq!(e.probe.unpin(IOVA_A, LEN), 0);
    Ok(())
}

fn pin_errors() -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_HOLE, PAGE, 0, 0), Err(ENOENT));
    check_eq!(e.probe.pin(IOVA_A - PAGE, 2 * PAGE, 0, 0), Err(ENOENT));
    check_eq!(e.probe.pin(IOVA_A + 3 * PAGE, 2 * PAGE, 0, 0), Err(ENOENT));
    check_eq!(e.probe.pin(IOVA_A, 0, 0, 0), Err(EINVAL));
    check_eq!(
        e.probe.pin(u64::MAX - PAGE + 1, 2 * PAGE, 0, 0),
        Err(EOVERFLOW)
    );
    check_eq!(e.probe.pin(IOVA_A + 1, PAGE, 0, 0), Err(EINVAL));
    check_eq!(e.probe.pin(IOVA_A + 1, 10, 0, 0), Err(EINVAL));
    // Not page aligned at its end is fine: the last page is pinned whole.
    check_eq!(e.probe.pin(IOVA_A, 10, 0, e.buf.addr), Ok(0));
    check_eq!(e.probe.unpin(IOVA_A, 10), 0);
    check_eq!(e.probe.log()?, (vec![], 0));
    Ok(())
}

fn pin_prot() -> TestResult {
    let e = env()?;
    let ro = Buf::new(LEN, 0x12)?;
    let wo = Buf::new(LEN, 0x13)?;
    check_eq!(
        e.fd.map(e.ioas, ro.addr, LEN, READ | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    check_eq!(
        e.fd.map(e.ioas, wo.addr, LEN, WRITE | FIXED, IOVA_B + LEN),
        Ok(IOVA_B + LEN)
    );
    check_eq!(e.probe.pin(IOVA_B, PAGE, RW_WRITE, 0), Err(EPERM));
    check_eq!(e.probe.pin(IOVA_B, PAGE, 0, ro.addr), Ok(0));
    check_eq!(e.probe.pin(IOVA_B + LEN, PAGE, 0, 0), Err(EPERM));
    check_eq!(e.probe.pin(IOVA_B + LEN, PAGE, RW_WRITE, wo.addr), Ok(0));
    // Across a writable area into a read-only one: nothing stays pinned.
    let pins0 = foll_pins()?;
    check_eq!(e.probe.pin(IOVA_A, LEN + PAGE, RW_WRITE, 0), Err(EPERM));
    check_eq!(foll_pins()? - pins0, 0);
    check_eq!(e.probe.unpin(IOVA_B, PAGE), 0);
    check_eq!(e.probe.unpin(IOVA_B + LEN, PAGE), 0);
    check_eq!(e.probe.log()?, (vec![], 0));
    Ok(())
}

fn pins_balance() -> TestResult {
    let pins0 = foll_pins()?;
    let pin_kb0 = vm_pin_kb()?;
    let e = env()?;
    check_eq!(foll_pins()? - pins0, 0);
    check_eq!(e.probe.pin(IOVA_A, 2 * PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(foll_pins()? - pins0, 2);
    check_eq!(vm_pin_kb()? - pin_kb0, 8);
    // Pinned again, by the same access or another: no new page pin.
    check_eq!(e.probe.pin(IOVA_A, 3 * PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(foll_pins()? - pins0, 3);
    let p2 = Probe::open()?;
    check_eq!(p2.ctx(e.fd.file.as_raw_fd(), false), 0);
    check_eq!(p2.create(true), Ok(3));
    check_eq!(p2.attach(e.ioas), 0);
    check_eq!(p2.pin(IOVA_A, LEN, 0, e.buf.addr), Ok(0));
    check_eq!(foll_pins()? - pins0, 4);
    check_eq!(vm_pin_kb()? - pin_kb0, 16);
    // A failed pin leaves nothing behind.
    check_eq!(p2.pin(IOVA_A, LEN + PAGE, 0, 0), Err(ENOENT));
    check_eq!(foll_pins()? - pins0, 4);
    check_eq!(e.probe.unpin(IOVA_A, 2 * PAGE), 0);
    check_eq!(e.probe.unpin(IOVA_A, 3 * PAGE), 0);
    check_eq!(foll_pins()? - pins0, 4);
    check_eq!(p2.destroy(), Ok(0));
    check_eq!(foll_pins()? - pins0, 0);
    check_eq!(vm_pin_kb()? - pin_kb0, 0);
    // Reads and writes leave no pin, from any context.
    for flags in [0, KAPI_IN_WORKER, KAPI_IN_WORKER | RW_KTHREAD] {
        let mut b = vec![0u8; 3 * PAGE as usize];
        check_eq!(e.probe.rw(IOVA_A + 1, &mut b, flags), 0);
        check_eq!(e.probe.rw(IOVA_A + 1, &mut b, flags | RW_WRITE), 0);
    }
    check_eq!(foll_pins()? - pins0, 0);
    Ok(())
}

// ---- the unmap callback ----

fn unmap_pinned() -> TestResult {
    let pins0 = foll_pins()?;
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A + PAGE, PAGE, 0, e.buf.at(PAGE)), Ok(0));
    check_eq!(e.probe.pin(IOVA_A, LEN, RW_WRITE, e.buf.addr), Ok(0));
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![unmap((IOVA_A, LEN), EINVAL, 2)], 0));
    check_eq!(foll_pins()? - pins0, 0);
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, 0), Err(ENOENT));
    Ok(())
}

fn unmap_unpinned_area() -> TestResult {
    let e = env()?;
    let buf2 = Buf::new(LEN, 0x21)?;
    check_eq!(
        e.fd.map(e.ioas, buf2.addr, LEN, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(e.fd.unmap(e.ioas, IOVA_B, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![], 1));
    // Part of a pinned area: ENOENT, no callback.
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, PAGE), Err(ENOENT));
    check_eq!(e.probe.log()?, (vec![], 1));
    check_eq!(e.probe.unpin(IOVA_A, PAGE), 0);
    Ok(())
}

fn unmap_all_two_areas() -> TestResult {
    let e = env()?;
    let buf2 = Buf::new(LEN, 0x31)?;
    let buf3 = Buf::new(LEN, 0x32)?;
    check_eq!(
        e.fd.map(e.ioas, buf2.addr, LEN, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    check_eq!(
        e.fd.map(e.ioas, buf3.addr, LEN, RW | FIXED, IOVA_HOLE),
        Ok(IOVA_HOLE)
    );
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(
        e.probe.pin(IOVA_HOLE + PAGE, 2 * PAGE, 0, buf3.at(PAGE)),
        Ok(0)
    );
    check_eq!(e.fd.unmap(e.ioas, 0, u64::MAX), Ok(3 * LEN));
    check_eq!(
        e.probe.log()?,
        (
            vec![
                unmap((IOVA_A, LEN), EINVAL, 1),
                unmap((IOVA_HOLE, LEN), EINVAL, 1)
            ],
            0
        )
    );
    Ok(())
}

/// A pin across two areas: the first area's callback drops it whole.
fn unmap_pin_across_areas() -> TestResult {
    let e = env()?;
    let buf2 = Buf::new(LEN, 0x41)?;
    check_eq!(
        e.fd.map(e.ioas, buf2.addr, LEN, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    check_eq!(e.probe.pin(IOVA_B - PAGE, 2 * PAGE, 0, 0), Ok(0));
    check_eq!(e.fd.unmap(e.ioas, IOVA_B, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![unmap((IOVA_B, LEN), EINVAL, 1)], 0));
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![], 0));
    Ok(())
}

fn unmap_two_accesses() -> TestResult {
    let e = env()?;
    let p2 = Probe::open()?;
    check_eq!(p2.ctx(e.fd.file.as_raw_fd(), false), 0);
    check_eq!(p2.create(true), Ok(3));
    check_eq!(p2.attach(e.ioas), 0);
    check_eq!(e.probe.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(p2.pin(IOVA_A, PAGE, 0, e.buf.addr), Ok(0));
    check_eq!(e.fd.unmap(e.ioas, 0, u64::MAX), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![unmap((IOVA_A, LEN), EINVAL, 1)], 0));
    check_eq!(p2.log()?, (vec![unmap((IOVA_A, LEN), EINVAL, 1)], 0));
    Ok(())
}

/// An access that only reads and writes never pins: no callback.
fn unmap_rw_access() -> TestResult {
    let e = env_with(false)?;
    check_eq!(e.probe.attach(e.ioas), 0);
    let mut b = [0u8; 16];
    check_eq!(e.probe.rw(IOVA_A, &mut b, 0), 0);
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![], 0));
    check_eq!(e.probe.rw(IOVA_A, &mut b, 0), ENOENT);
    Ok(())
}

// ---- rw ----

/// Writes `len` bytes at IOVA_A + `off` through the access, checks the
/// user's memory; then changes the memory and reads it back.
fn roundtrip(off: u64, len: usize, flags: u32) -> TestResult {
    let e = env()?;
    let mut data = pattern_vec(0xa0, len);
    check_eq!(e.probe.rw(IOVA_A + off, &mut data, flags | RW_WRITE), 0);
    check!(e.buf.bytes()[off as usize..off as usize + len] == data[..]);
    e.buf.fill(0x3c);
    let mut got = vec![0u8; len];
    check_eq!(e.probe.rw(IOVA_A + off, &mut got, flags), 0);
    check!(got[..] == e.buf.bytes()[off as usize..off as usize + len]);
    Ok(())
}

fn rw_ioctl_pages() -> TestResult {
    roundtrip(100, 3 * PAGE as usize, 0)
}

fn rw_ioctl_kthread_flag() -> TestResult {
    roundtrip(100, 3 * PAGE as usize, RW_KTHREAD)
}

fn rw_worker_kthread_pages() -> TestResult {
    roundtrip(100, 3 * PAGE as usize, KAPI_IN_WORKER | RW_KTHREAD)
}

fn rw_worker_pages() -> TestResult {
    roundtrip(100, 3 * PAGE as usize, KAPI_IN_WORKER)
}

fn rw_worker_one_page() -> TestResult {
    roundtrip(PAGE + 10, 100, KAPI_IN_WORKER)
}

fn rw_worker_kthread_one_page() -> TestResult {
    roundtrip(PAGE + 10, 100, KAPI_IN_WORKER | RW_KTHREAD)
}

fn rw_whole_area() -> TestResult {
    roundtrip(0, LEN as usize, KAPI_IN_WORKER)
}

fn rw_two_areas() -> TestResult {
    let e = env()?;
    let buf2 = Buf::new(LEN, 0x51)?;
    check_eq!(
        e.fd.map(e.ioas, buf2.addr, LEN, RW | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    for flags in [0, KAPI_IN_WORKER, KAPI_IN_WORKER | RW_KTHREAD] {
        let mut got = vec![0u8; 2 * PAGE as usize];
        check_eq!(e.probe.rw(IOVA_B - PAGE, &mut got, flags), 0);
        check!(got[..PAGE as usize] == e.buf.bytes()[3 * PAGE as usize..]);
        check!(got[PAGE as usize..] == buf2.bytes()[..PAGE as usize]);
    }
    Ok(())
}

fn rw_errors() -> TestResult {
    let e = env()?;
    let mut b = [0u8; 16];
    check_eq!(e.probe.rw(IOVA_A, &mut [], 0), EINVAL);
    check_eq!(e.probe.rw(IOVA_HOLE, &mut b, 0), ENOENT);
    check_eq!(e.probe.rw(IOVA_A - 8, &mut b, 0), ENOENT);
    check_eq!(e.probe.rw(u64::MAX - 7, &mut b, 0), EOVERFLOW);
    check_eq!(e.probe.rw(u64::MAX - 15, &mut b, 0), ENOENT);
    let ro = Buf::new(LEN, 0x14)?;
    let wo = Buf::new(LEN, 0x15)?;
    check_eq!(
        e.fd.map(e.ioas, ro.addr, LEN, READ | FIXED, IOVA_B),
        Ok(IOVA_B)
    );
    check_eq!(
        e.fd.map(e.ioas, wo.addr, LEN, WRITE | FIXED, IOVA_B + LEN),
        Ok(IOVA_B + LEN)
    );
    for flags in [0, KAPI_IN_WORKER] {
        check_eq!(e.probe.rw(IOVA_B, &mut b, flags | RW_WRITE), EPERM);
        check_eq!(e.probe.rw(IOVA_B, &mut b, flags), 0);
        check!(b[..] == ro.bytes()[..16]);
        check_eq!(e.probe.rw(IOVA_B + LEN, &mut b, flags), EPERM);
        check_eq!(e.probe.rw(IOVA_B + LEN, &mut b, flags | RW_WRITE), 0);
    }
    Ok(())
}

/// A write running past the end of the mapped IOVA: ENOENT, after the
/// mapped part was written.
fn rw_past_end() -> TestResult {
    let e = env()?;
    for (i, flags) in [0, KAPI_IN_WORKER, KAPI_IN_WORKER | RW_KTHREAD]
        .into_iter()
        .enumerate()
    {
        let mut data = vec![0xe0 + i as u8; 2 * PAGE as usize];
        check_eq!(
            e.probe.rw(IOVA_B - PAGE, &mut data, flags | RW_WRITE),
            ENOENT
        );
        check!(e.buf.bytes()[3 * PAGE as usize..]
            .iter()
            .all(|&x| x == 0xe0 + i as u8));
    }
    Ok(())
}

/// Reads and writes through pages the access pinned after the user
/// dropped them from its mapping (MADV_DONTNEED): the user then sees new
/// zeroed pages, the pins hold the old ones. Which ones each context
/// reaches, as C: `want` is "read X, write Y", X and Y being "user" or
/// "pinned".
fn rw_dropped_pinned(flags: u32, len: usize, want: &str) -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, LEN, RW_WRITE, e.buf.addr), Ok(0));
    let old = e.buf.bytes()[..len].to_vec();
    sys::madvise_dontneed(e.buf.addr, LEN).map_err(|x| x.to_string())?;
    check!(e.buf.bytes()[..len].iter().all(|&x| x == 0));
    let mut got = vec![0xffu8; len];
    check_eq!(e.probe.rw(IOVA_A, &mut got, flags), 0);
    let read = if got == old {
        "pinned"
    } else if got.iter().all(|&x| x == 0) {
        "user"
    } else {
        "neither"
    };
    // A write the user does not see went to the pinned pages.
    let mut data = vec![0xc3u8; len];
    check_eq!(e.probe.rw(IOVA_A, &mut data, flags | RW_WRITE), 0);
    let user = &e.buf.bytes()[..len];
    let write = if user == data {
        "user"
    } else if user.iter().all(|&x| x == 0) {
        "pinned"
    } else {
        "neither"
    };
    check_eq!(format!("read {read}, write {write}"), want);
    check_eq!(e.probe.unpin(IOVA_A, LEN), 0);
    Ok(())
}

fn dropped_ioctl() -> TestResult {
    rw_dropped_pinned(0, 2 * PAGE as usize, "read user, write user")
}

fn dropped_worker_one_page() -> TestResult {
    rw_dropped_pinned(KAPI_IN_WORKER, 100, "read user, write user")
}

fn dropped_worker_pages() -> TestResult {
    rw_dropped_pinned(
        KAPI_IN_WORKER,
        2 * PAGE as usize,
        "read pinned, write pinned",
    )
}

fn dropped_worker_kthread_pages() -> TestResult {
    rw_dropped_pinned(
        KAPI_IN_WORKER | RW_KTHREAD,
        2 * PAGE as usize,
        "read user, write user",
    )
}

// ---- memory the access reaches in other ways ----

extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
}

/// Runs `f` in a child process (this program is single threaded); the
/// child's exit status, what `f` returned.
fn in_child(f: impl FnOnce() -> i32) -> Result<i32, String> {
    // SAFETY: No other thread exists to leave locks held in the child.
    match unsafe { fork() } {
        -1 => Err("fork failed".into()),
        0 => {
            let code = f();
            // SAFETY: Ends the child without running the parent's exit
            // handlers or flushing its buffers.
            unsafe { _exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: Waits for our own child.
            if unsafe { waitpid(pid, &mut status, 0) } != pid {
                return Err("waitpid failed".into());
            }
            match status & 0x7f {
                0 => Ok((status >> 8) & 0xff),
                signal => Err(format!("child killed by signal {signal}")),
            }
        }
    }
}

/// A process maps its memory and pins a page through the access, then
/// exits: the pinned page stays reachable, the rest is gone with the
/// address space.
fn exited_mapper() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let probe = Probe::open()?;
    check_eq!(probe.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(probe.create(true), Ok(2));
    check_eq!(probe.attach(ioas), 0);
    let child = in_child(|| {
        let Ok(buf) = Buf::new(LEN, 0x70) else {
            return 1;
        };
        let ok = fd.map(ioas, buf.addr, LEN, RW | FIXED, IOVA_A) == Ok(IOVA_A)
            && probe.pin(IOVA_A, PAGE, 0, buf.addr) == Ok(0);
        i32::from(!ok)
    })?;
    check_eq!(child, 0);
    check_eq!(probe.log()?, (vec![], 1));
    let old = pattern_vec(0x70, LEN as usize);
    for flags in [0, KAPI_IN_WORKER, KAPI_IN_WORKER | RW_KTHREAD] {
        let mut got = vec![0u8; 100];
        check_eq!(probe.rw(IOVA_A + 10, &mut got, flags), 0);
        check!(got[..] == old[10..110]);
        check_eq!(probe.rw(IOVA_A + 10, &mut got, flags | RW_WRITE), 0);
        check_eq!(probe.rw(IOVA_A + 2 * PAGE, &mut got, flags), EFAULT);
        check_eq!(probe.rw(IOVA_A + PAGE - 50, &mut got, flags), EFAULT);
    }
    check_eq!(probe.pin(IOVA_A + PAGE, PAGE, 0, 0), Err(EFAULT));
    check_eq!(probe.pin(IOVA_A, PAGE, 0, 0), Ok(0));
    check_eq!(fd.unmap(ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(probe.log()?, (vec![unmap((IOVA_A, LEN), EINVAL, 2)], 0));
    Ok(())
}

/// Reads and pins after the user unmapped (munmap) memory the access
/// pinned: only the pinned pages remain, where each context reaches them.
fn rw_unmapped_pinned() -> TestResult {
    let e = env()?;
    check_eq!(e.probe.pin(IOVA_A, 2 * PAGE, RW_WRITE, e.buf.addr), Ok(0));
    let old = e.buf.bytes()[..2 * PAGE as usize].to_vec();
    sys::munmap_anon(e.buf.addr, LEN);
    let mut rcs = Vec::new();
    for (flags, len) in [
        (0, 2 * PAGE),
        (KAPI_IN_WORKER, 100),
        (KAPI_IN_WORKER, 2 * PAGE),
        (KAPI_IN_WORKER | RW_KTHREAD, 100),
        (KAPI_IN_WORKER | RW_KTHREAD, 2 * PAGE),
    ] {
        let mut b = vec![0u8; len as usize];
        let rc = e.probe.rw(IOVA_A, &mut b, flags);
        check!(rc != 0 || b[..] == old[..len as usize]);
        rcs.push(rc);
    }
    check_eq!(rcs, vec![EFAULT, EFAULT, 0, EFAULT, EFAULT]);
    check_eq!(e.probe.pin(IOVA_A + PAGE, PAGE, 0, 0), Ok(0));
    check_eq!(e.probe.pin(IOVA_A + 2 * PAGE, PAGE, 0, 0), Err(EFAULT));
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![unmap((IOVA_A, LEN), EINVAL, 2)], 0));
    Ok(())
}

/// An unprivileged user's memory is charged to its RLIMIT_MEMLOCK when an
/// access pins it, once per page: beyond the limit, ENOMEM. The child's
/// steps answer the number of the first that goes otherwise.
fn pin_memlock() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let probe = Probe::open()?;
    check_eq!(probe.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(probe.create(true), Ok(2));
    check_eq!(probe.attach(ioas), 0);
    let step = in_child(|| {
        if sys::become_user(65534).is_err() || sys::set_memlock_limit(2 * PAGE).is_err() {
            return 1;
        }
        let Ok(buf) = Buf::new(LEN, 0x18) else {
            return 2;
        };
        let steps = [
            fd.map(ioas, buf.addr, LEN, RW | FIXED, IOVA_A) == Ok(IOVA_A),
            probe.pin(IOVA_A, 3 * PAGE, 0, buf.addr) == Err(ENOMEM),
            probe.pin(IOVA_A, 2 * PAGE, 0, buf.addr) == Ok(0),
            probe.pin(IOVA_A + 2 * PAGE, PAGE, 0, buf.at(2 * PAGE)) == Err(ENOMEM),
            // Pinned again: no new charge.
            probe.pin(IOVA_A + PAGE, PAGE, 0, buf.at(PAGE)) == Ok(0),
            probe.unpin(IOVA_A, 2 * PAGE) == 0,
            probe.pin(IOVA_A + 2 * PAGE, PAGE, 0, buf.at(2 * PAGE)) == Ok(0),
            fd.unmap(ioas, IOVA_A, LEN) == Ok(LEN),
        ];
        steps.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 3)
    })?;
    check_eq!(step, 0);
    check_eq!(probe.log()?, (vec![unmap((IOVA_A, LEN), EINVAL, 2)], 0));
    Ok(())
}

/// IOAS_COPY shares the pages: the access reaches them through either
/// IOAS, and only its own IOAS's unmaps call it.
fn ioas_copy() -> TestResult {
    let pins0 = foll_pins()?;
    let e = env()?;
    let ioas2 =
        e.fd.ioas_alloc()
            .map_err(|x| format!("IOAS_ALLOC: errno {x}"))?;
    check_eq!(
        e.fd.copy(ioas2, e.ioas, IOVA_A, LEN, RW | FIXED, IOVA_HOLE),
        Ok(IOVA_HOLE)
    );
    check_eq!(e.probe.pin(IOVA_A, LEN, 0, e.buf.addr), Ok(0));
    check_eq!(foll_pins()? - pins0, 4);
    check_eq!(e.fd.unmap(ioas2, IOVA_HOLE, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![], 1));
    check_eq!(
        e.fd.copy(ioas2, e.ioas, IOVA_A, LEN, RW | FIXED, IOVA_HOLE),
        Ok(IOVA_HOLE)
    );
    check_eq!(e.probe.replace(ioas2), 0);
    check_eq!(e.probe.log()?, (vec![unmap(ALL, ENOENT, 1)], 0));
    check_eq!(
        e.probe
            .pin(IOVA_HOLE + PAGE, 2 * PAGE, RW_WRITE, e.buf.at(PAGE)),
        Ok(0)
    );
    check_eq!(foll_pins()? - pins0, 2);
    check_eq!(e.fd.unmap(e.ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(e.probe.log()?, (vec![], 1));
    let mut got = vec![0u8; 3 * PAGE as usize];
    check_eq!(e.probe.rw(IOVA_HOLE + 1, &mut got, KAPI_IN_WORKER), 0);
    check!(got[..] == e.buf.bytes()[1..1 + 3 * PAGE as usize]);
    check_eq!(e.fd.unmap(ioas2, IOVA_HOLE, LEN), Ok(LEN));
    check_eq!(
        e.probe.log()?,
        (vec![unmap((IOVA_HOLE, LEN), EINVAL, 1)], 0)
    );
    check_eq!(foll_pins()? - pins0, 0);
    Ok(())
}

/// Large folios (THP where the kernel gives them, hugetlb): the pages
/// pinned are the right subpages, one FOLL_PIN reference each.
fn pin_large_folios() -> TestResult {
    const HUGE: u64 = 2 << 20;
    const IOVA_H: u64 = 0x40_0000;
    let e = env()?;
    for kind in [AnonPages::Thp, AnonPages::Hugetlb] {
        let Some(h) = sys::mmap_anon(HUGE, kind) else {
            return Err(format!("{kind:?}: mmap failed"));
        };
        let buf = Buf { addr: h, len: HUGE };
        buf.fill(0x24);
        let pins0 = foll_pins()?;
        check_eq!(e.fd.map(e.ioas, h, HUGE, RW | FIXED, IOVA_H), Ok(IOVA_H));
        check_eq!(
            e.probe
                .pin(IOVA_H + 5 * PAGE, 3 * PAGE, RW_WRITE, buf.at(5 * PAGE)),
            Ok(0)
        );
        check_eq!(foll_pins()? - pins0, 3);
        let mut got = vec![0u8; 5 * PAGE as usize];
        check_eq!(
            e.probe.rw(IOVA_H + 3 * PAGE + 1, &mut got, KAPI_IN_WORKER),
            0
        );
        check!(got[..] == buf.bytes()[3 * PAGE as usize + 1..8 * PAGE as usize + 1]);
        check_eq!(e.fd.unmap(e.ioas, IOVA_H, HUGE), Ok(HUGE));
        check_eq!(e.probe.log()?, (vec![unmap((IOVA_H, HUGE), EINVAL, 1)], 0));
        check_eq!(foll_pins()? - pins0, 0);
    }
    Ok(())
}

/// A device's domain on the IOAS (the mock domain, whose aperture starts
/// at 16 MiB) beside the access: the access takes the pages the domain
/// pinned.
fn with_domain() -> TestResult {
    const IOVA_D: u64 = 0x200_0000;
    let pins0 = foll_pins()?;
    let fd = Iommufd::open()?;
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let (stdev, _, _) = fd
        .mock_domain(ioas)
        .map_err(|x| format!("MOCK_DOMAIN: errno {x}"))?;
    let buf = Buf::new(LEN, 0x17)?;
    check_eq!(fd.map(ioas, buf.addr, LEN, RW | FIXED, IOVA_D), Ok(IOVA_D));
    check_eq!(foll_pins()? - pins0, 4);
    let probe = Probe::open()?;
    check_eq!(probe.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(probe.create(true), Ok(5));
    check_eq!(probe.attach(ioas), 0);
    check_eq!(probe.pin(IOVA_D, LEN, RW_WRITE, buf.addr), Ok(0));
    check_eq!(foll_pins()? - pins0, 4);
    let mut got = vec![0u8; 2 * PAGE as usize];
    check_eq!(probe.rw(IOVA_D + 100, &mut got, KAPI_IN_WORKER), 0);
    check!(got[..] == buf.bytes()[100..100 + 2 * PAGE as usize]);
    check_eq!(fd.unmap(ioas, IOVA_D, LEN), Ok(LEN));
    check_eq!(probe.log()?, (vec![unmap((IOVA_D, LEN), EINVAL, 1)], 0));
    check_eq!(foll_pins()? - pins0, 0);
    check_eq!(fd.destroy(stdev), 0);
    Ok(())
}

// ---- the compat IOAS ----

fn compat_ioas() -> TestResult {
    let fd = Iommufd::open()?;
    let p = Probe::open()?;
    check_eq!(p.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(p.compat_get_id(), Err(ENODEV));
    check_eq!(p.op(KAPI_COMPAT_CREATE, 0, 0, 0).0, 0);
    let id = p
        .compat_get_id()
        .map_err(|x| format!("compat_ioas_get_id: errno {x}"))?;
    check_eq!(id, 1);
    check_eq!(fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_GET, 0), Ok(id));
    check_eq!(p.op(KAPI_COMPAT_CREATE, 0, 0, 0).0, 0);
    check_eq!(p.compat_get_id(), Ok(id));
    check_eq!(p.op(KAPI_COMPAT_NO_IOMMU, 0, 0, 0).0, EINVAL);
    // An emulated device on the compat IOAS, as vfio's group path does.
    let buf = Buf::new(LEN, 0x61)?;
    check_eq!(fd.map(id, buf.addr, LEN, RW | FIXED, IOVA_A), Ok(IOVA_A));
    check_eq!(p.create(true), Ok(2));
    check_eq!(p.attach(id), 0);
    check_eq!(p.pin(IOVA_A, LEN, RW_WRITE, buf.addr), Ok(0));
    // A legacy client's type1 map and unmap on it (vfio's group path).
    const VFIO_RW: u32 = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    let type1 = u64::from(uapi::VFIO_TYPE1v2_IOMMU);
    check_eq!(fd.vfio_value(uapi::VFIO_SET_IOMMU, type1), Ok(0));
    check_eq!(fd.vfio_map(VFIO_RW, buf.addr, IOVA_B, LEN), 0);
    check_eq!(p.pin(IOVA_B + PAGE, PAGE, RW_WRITE, buf.at(PAGE)), Ok(0));
    check_eq!(fd.vfio_unmap(0, IOVA_B, LEN), (0, LEN));
    check_eq!(p.log()?, (vec![unmap((IOVA_B, LEN), EINVAL, 1)], 1));
    check_eq!(p.destroy(), Ok(0));
    check_eq!(p.log()?, (vec![unmap(ALL, ENOENT, 1)], 0));
    // Destroyed by userspace, the compat IOAS is gone for the kernel too.
    check_eq!(fd.destroy(id), 0);
    check_eq!(p.compat_get_id(), Err(ENODEV));
    Ok(())
}

fn compat_no_iommu() -> TestResult {
    let fd = Iommufd::open()?;
    let p = Probe::open()?;
    check_eq!(p.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(p.op(KAPI_COMPAT_NO_IOMMU, 0, 0, 0).0, 0);
    check_eq!(p.op(KAPI_COMPAT_CREATE, 0, 0, 0).0, EINVAL);
    check_eq!(p.compat_get_id(), Err(ENODEV));
    check_eq!(fd.ioas_alloc(), Ok(1));
    Ok(())
}

/// The probe's own rules: ops needing a context or an access without one.
fn probe_state() -> TestResult {
    let p = Probe::open()?;
    check_eq!(p.create(true), Err(ENXIO));
    check_eq!(p.ctx_put(), ENXIO);
    let fd = Iommufd::open()?;
    check_eq!(p.ctx(fd.file.as_raw_fd(), false), 0);
    check_eq!(p.ctx(fd.file.as_raw_fd(), false), ENXIO);
    check_eq!(p.attach(1), ENXIO);
    check_eq!(p.create(true), Ok(1));
    check_eq!(p.ctx_put(), ENXIO);
    check_eq!(p.unpin(IOVA_A, PAGE), ENXIO);
    Ok(())
}

/// Every FOLL_PIN reference taken in this run was given back, and the
/// module behind /dev/iommu holds no reference for it.
fn run_balanced() -> TestResult {
    check_eq!(foll_pins()?, *PINS_AT_START.get().unwrap_or(&0));
    Ok(())
}

fn tests() -> Vec<Test> {
    macro_rules! t {
        ($name:expr, $f:ident) => {
            Test {
                name: $name,
                run: $f,
            }
        };
    }
    vec![
        t!("probe: ops need a context and an access", probe_state),
        t!("ctx_from_fd(-1): EBADF", ctx_bad_fd),
        t!("ctx_from_fd of a closed or O_PATH descriptor: EBADF", ctx_closed_fd),
        t!("ctx_from_fd and ctx_from_file of files that are no iommufd: EBADFD", ctx_dev_null),
        t!("ctx_from_file of an iommufd, create, destroy, put", ctx_from_file),
        t!("the context outlives the closed iommufd until ctx_put", ctx_outlives_fd),
        t!("access_create: the next object ID", access_id),
        t!("access_attach to a missing ID: ENOENT", attach_missing),
        t!("access_attach to an ID that is no IOAS: ENOENT", attach_not_ioas),
        t!("unattached: replace, pin_pages and rw give ENOENT, after EINVAL, EOVERFLOW", unattached_calls),
        t!("access_attach needing pins to an unaligned area: EADDRINUSE; rw-only access: 0", attach_unaligned_area),
        t!("with a pinning access, IOAS_MAP not page aligned: EINVAL", map_unaligned_attached),
        t!("IOMMU_DESTROY of an IOAS an access is on, or of the access: EBUSY", destroy_ioas_attached),
        t!("access_detach: one callback for everything; attach again", detach_reattach),
        t!("access_replace to another IOAS: one callback for everything", replace_other_ioas),
        t!("access_replace to the same IOAS: no callback, pins kept", replace_same_ioas),
        t!("access_replace to a missing or unfit IOAS: ENOENT, EADDRINUSE, still attached", replace_missing),
        t!("access_destroy with pins: one callback for everything", destroy_with_pins),
        t!("closing the device with pins drops them", close_with_pins),
        t!("pin_pages: the user's own pages", pin_pages_match),
        t!("pin_pages across two adjacent areas", pin_two_areas),
        t!("pin_pages and rw of a memfd area (IOAS_MAP_FILE)", pin_memfd_area),
        t!("a write through pinned pages reaches the user's memory", pin_poke),
        t!("pin_pages errnos: hole, past an end ENOENT; 0 length, unaligned EINVAL; overflow EOVERFLOW", pin_errors),
        t!("pin_pages of read-only and write-only areas: EPERM for the missing right", pin_prot),
        t!("pins balance: one FOLL_PIN per page, VmPin, none left by rw", pins_balance),
        t!("IOAS_UNMAP of a pinned area: one callback that unpins, then success", unmap_pinned),
        t!("IOAS_UNMAP of an area without pins: no callback", unmap_unpinned_area),
        t!("IOAS_UNMAP of everything: one callback per pinned area", unmap_all_two_areas),
        t!("IOAS_UNMAP of the second area a pin spans: the callback drops it", unmap_pin_across_areas),
        t!("IOAS_UNMAP with two accesses pinning one page: both called", unmap_two_accesses),
        t!("IOAS_UNMAP under an rw-only access: no callback", unmap_rw_access),
        t!("rw from the ioctl: 3 pages from offset 100", rw_ioctl_pages),
        t!("rw from the ioctl with RW_KTHREAD: 3 pages", rw_ioctl_kthread_flag),
        t!("rw from a kthread with RW_KTHREAD: 3 pages", rw_worker_kthread_pages),
        t!("rw from a kthread without RW_KTHREAD: 3 pages", rw_worker_pages),
        t!("rw from a kthread without RW_KTHREAD: within one page", rw_worker_one_page),
        t!("rw from a kthread with RW_KTHREAD: within one page", rw_worker_kthread_one_page),
        t!("rw from a kthread: a whole area", rw_whole_area),
        t!("rw across two adjacent areas, from each context", rw_two_areas),
        t!("rw errnos: 0 length EINVAL, hole ENOENT, overflow EOVERFLOW, missing right EPERM", rw_errors),
        t!("rw write running past the mapped IOVA: ENOENT, mapped part written", rw_past_end),
        t!("rw over pinned pages the user dropped, from the ioctl: the user's pages", dropped_ioctl),
        t!("rw over a pinned page the user dropped, kthread, within one page: the user's page", dropped_worker_one_page),
        t!("rw over pinned pages the user dropped, kthread, 2 pages: the pinned pages", dropped_worker_pages),
        t!("rw over pinned pages the user dropped, kthread with RW_KTHREAD, 2 pages: the user's pages", dropped_worker_kthread_pages),
        t!("rw and pin_pages after the mapping process exited: only pinned pages, else EFAULT", exited_mapper),
        t!("rw over pinned pages the user unmapped: ioctl EFAULT; kthread: one page EFAULT, 2 pages 0; RW_KTHREAD EFAULT", rw_unmapped_pinned),
        t!("pin_pages beyond the mapping user's RLIMIT_MEMLOCK: ENOMEM, one charge per page", pin_memlock),
        t!("IOAS_COPY: the access reaches the shared pages; only its IOAS's unmaps call it", ioas_copy),
        t!("pin_pages and rw of THP and hugetlb areas: the right subpages, one pin each", pin_large_folios),
        t!("beside a device's domain: the access uses the domain's pinned pages", with_domain),
        t!("compat_ioas_create, _get_id: the IOMMU_VFIO_IOAS IOAS, type1 map/unmap; ENODEV before and after", compat_ioas),
        t!("compat_set_no_iommu, then compat_ioas_create: EINVAL", compat_no_iommu),
        t!("the run leaves no FOLL_PIN reference", run_balanced),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--module", Some(m)) => {
                let _ = MODULE.set(m);
            }
            _ => {
                eprintln!("usage: iommufd_kapi_probe [--module NAME]");
                std::process::exit(2);
            }
        }
    }
    let _ = PINS_AT_START.set(foll_pins().unwrap_or(0));
    let failed = run("kapi probe", &tests());
    std::process::exit(i32::from(failed != 0));
}
