// SPDX-License-Identifier: GPL-2.0

//! The VFIO container's dirty tracking, as vfio's type1 serves it and C
//! iommufd does not: `VFIO_IOMMU_DIRTY_PAGES` (START, STOP, GET_BITMAP),
//! `VFIO_IOMMU_UNMAP_DMA` with `GET_DIRTY_BITMAP`, and GET_INFO's
//! MIGRATION capability, through the legacy migration flow on /dev/iommu.
//! Dirty pages come from a dirty-tracking mock HWPT on the compat IOAS
//! (`IOMMU_TEST_OP_DIRTY`), from an automatic mock domain (which cannot
//! track: every mapped page is dirty), or, with no domain, from in-kernel
//! accesses (the pages they pin or write). Every errno is type1's.
//!
//! C iommufd answers `VFIO_IOMMU_DIRTY_PAGES` with `ENOTTY`: against it
//! (`IOMMUFD_TEST_MODULE=iommufd`) each test checks that, and skips.

use crate::compat_tests::{c_iommufd, container, open_container, u32_at, u64_at};
use crate::dev::{Iommufd, PageBuf};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;
use crate::{check, check_eq};

const PAGE: u64 = 4096;
const RW: u32 = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
const START: u32 = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
const STOP: u32 = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
const GET: u32 = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
const GET_DIRTY: u32 = uapi::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
const APERTURE: u64 = uapi::MOCK_APERTURE_START as u64;
/// type1's `DIRTY_BITMAP_SIZE_MAX`.
const BITMAP_MAX: u64 = 256 << 20;
/// An address no user mapping can have (below `vm.mmap_min_addr`), but in
/// user space: `access_ok()` passes, a copy faults.
const UNMAPPED: u64 = 0x1000;
/// A kernel address: `access_ok()` fails.
const KERNEL: u64 = 0xffff_8000_0000_0000;

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// C iommufd has no dirty tracking on its container: it answers
/// `VFIO_IOMMU_DIRTY_PAGES` with `ENOTTY`, and the test is skipped.
fn skip_on_c() -> TestResult {
    if !c_iommufd() {
        return Ok(());
    }
    let (fd, _) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), ENOTTY);
    Err("SKIP: C iommufd's VFIO container has no dirty tracking (ENOTTY)".into())
}

/// A GET_BITMAP of `pages` pages from `iova`: the bitmap's words, or the
/// errno.
fn get_bitmap(fd: &Iommufd, iova: u64, pages: u64) -> Result<Vec<u64>, i32> {
    let mut bitmap = vec![0u64; pages.div_ceil(64) as usize];
    match fd.vfio_dirty_bitmap(iova, pages * PAGE, PAGE, &mut bitmap) {
        0 => Ok(bitmap),
        e => Err(e),
    }
}

/// A bitmap's words with the bits `set` set.
fn bits(words: usize, set: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; words];
    for &b in set {
        out[(b / 64) as usize] |= 1 << (b % 64);
    }
    out
}

/// Marks dirty, in the mock domain of `hwpt`, the pages `pages` (page
/// numbers from `APERTURE`).
fn mark(fd: &Iommufd, hwpt: u32, pages: &[u64]) -> Result<(), String> {
    let span = pages.iter().max().map_or(0, |m| m + 1);
    let mut bitmap = vec![0u8; span.div_ceil(8) as usize];
    for &p in pages {
        bitmap[(p / 8) as usize] |= 1 << (p % 8);
    }
    let n = ok(
        "TEST_OP_DIRTY",
        fd.mock_set_dirty(hwpt, APERTURE, span * PAGE, PAGE, bitmap.as_ptr()),
    )?;
    check_eq!(n, pages.len() as u64);
    Ok(())
}

/// GET_INFO's chain: MIGRATION first (type1's order), then C's two; the
/// MIGRATION capability as type1 fills it; each capability written only
/// when it fits.
fn get_info_migration_cap() -> TestResult {
    skip_on_c()?;
    let (fd, ioas) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    let caps = ok("GET_INFO", fd.vfio_info_caps())?;
    let ids: Vec<u16> = caps.iter().map(|c| c.0).collect();
    check_eq!(
        ids,
        vec![
            uapi::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION as u16,
            uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL as u16,
            uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16,
        ]
    );
    let mig = &caps[0].2;
    check_eq!(caps[0].1, 1);
    check_eq!(mig.len(), 32);
    // flags, the hole after them, the bitmap page size, the largest bitmap.
    check_eq!((u32_at(mig, 8), u32_at(mig, 12)), (0, 0));
    check_eq!(u64_at(mig, 16), PAGE);
    check_eq!(u64_at(mig, 24), BITMAP_MAX);
    // The offsets: MIGRATION at 24 (32 bytes), DMA_AVAIL at 56, IOVA_RANGE
    // at 72, 104 in all with one range.
    let (rc, info) = fd.vfio_get_info(104, 104);
    check_eq!(rc, 0);
    check_eq!((u32_at(&info, 0), u32_at(&info, 16)), (104, 24));
    check_eq!((u32_at(&info, 28), u32_at(&info, 60)), (56, 72));
    // One byte short of MIGRATION: nothing of it is written.
    let (rc, info) = fd.vfio_get_info(55, 64);
    check_eq!(rc, 0);
    check_eq!(u32_at(&info, 0), 104);
    check!(info[24..].iter().all(|&b| b == 0xaa));
    // MIGRATION alone fits: written, and linked to where DMA_AVAIL would
    // be (C's rule: a link is written once its target's offset is within
    // argsz).
    let (rc, info) = fd.vfio_get_info(56, 64);
    check_eq!(rc, 0);
    check_eq!(u32_at(&info, 16), 0);
    check_eq!(
        u32_at(&info, 24),
        uapi::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION | 1 << 16
    );
    check_eq!(u32_at(&info, 28), 56);
    check!(info[56..].iter().all(|&b| b == 0xaa));
    // With a mock domain: its pages fold to 4 KiB, still the bitmap's.
    let (stdev, _, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    let caps = ok("GET_INFO", fd.vfio_info_caps())?;
    check_eq!(u64_at(&caps[0].2, 16), PAGE);
    check_eq!(fd.destroy(stdev), 0);
    Ok(())
}

/// `VFIO_IOMMU_DIRTY_PAGES`'s errnos, in type1's order, with no domain.
fn dirty_pages_errnos() -> TestResult {
    skip_on_c()?;
    // No compat IOAS (type1: no container set up).
    let fd = open_container()?;
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), ENODEV);
    // A type1 (v1) container has no dirty tracking: EACCES before
    // anything is read.
    let (v1, _) = container(uapi::VFIO_TYPE1_IOMMU)?;
    for flags in [START, STOP, GET, 0] {
        check_eq!(v1.vfio_dirty_pages(8, flags, &[]), EACCES);
    }
    check_eq!(
        crate::sys::ioctl_ptr(&v1.file, uapi::VFIO_IOMMU_DIRTY_PAGES, std::ptr::null_mut()),
        EACCES
    );
    let (fd, _) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    check_eq!(
        crate::sys::ioctl_ptr(&fd.file, uapi::VFIO_IOMMU_DIRTY_PAGES, std::ptr::null_mut()),
        EFAULT
    );
    check_eq!(fd.vfio_dirty_pages(7, START, &[]), EINVAL);
    for flags in [0, 8, 1 << 31, START | STOP, START | GET, STOP | GET, 7] {
        check_eq!((flags, fd.vfio_dirty_pages(8, flags, &[])), (flags, EINVAL));
    }
    // STOP with nothing started is fine.
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    // Two maps: 4 pages at 1 MiB, 2 pages at 2 MiB.
    let buf = PageBuf::new(8);
    check_eq!(fd.vfio_map(RW, buf.addr(), 0x10_0000, 4 * PAGE), 0);
    check_eq!(
        fd.vfio_map(RW, buf.addr() + 4 * PAGE, 0x20_0000, 2 * PAGE),
        0
    );
    // Not started: GET_BITMAP is EINVAL.
    check_eq!(get_bitmap(&fd, 0x10_0000, 4), Err(EINVAL));
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    // The range and bitmap: (iova, size, pgsize, bytes, data).
    let mut words = [u64::MAX; 5];
    let good = words.as_mut_ptr() as u64;
    let get = |argsz: u32, d: [u64; 5]| fd.vfio_dirty_pages(argsz, GET, &d);
    // 258 pages, [1 MiB, 2 MiB + 8 KiB): both maps, 40 bytes of bitmap.
    let whole = 0x10_2000u64;
    check_eq!(get(48, [0x10_0000, whole, PAGE, 40, good]), 0);
    // type1 writes each map's words: the first, and the fifth.
    check_eq!(words, [0, u64::MAX, u64::MAX, u64::MAX, 0]);
    // Too short for the range (argsz 8 is no data at all).
    check_eq!(get(8, [0x10_0000, whole, PAGE, 32, good]), EINVAL);
    check_eq!(get(47, [0x10_0000, whole, PAGE, 32, good]), EINVAL);
    check_eq!(get(48, [0x10_0000, 0, PAGE, 32, good]), EINVAL);
    check_eq!(
        get(48, [u64::MAX - 0xfff, 2 * PAGE, PAGE, 8, good]),
        EOVERFLOW
    );
    // The bitmap: not user memory, empty, beyond type1's largest, or too
    // small for the pages (258 need 40 bytes).
    check_eq!(get(48, [0x10_0000, whole, PAGE, 32, KERNEL]), EINVAL);
    check_eq!(get(48, [0x10_0000, whole, PAGE, 0, good]), EINVAL);
    check_eq!(
        get(48, [0x10_0000, whole, PAGE, BITMAP_MAX + 8, good]),
        EINVAL
    );
    check_eq!(get(48, [0x10_0000, whole, PAGE, 32, good]), EINVAL);
    check_eq!(get(48, [0x10_0000, 4 * PAGE, 0, 8, good]), EINVAL);
    // Only the smallest IO page size, aligned ranges.
    check_eq!(get(48, [0x10_0000, 4 * PAGE, 2 * PAGE, 8, good]), EINVAL);
    check_eq!(get(48, [0x10_0800, 4 * PAGE, PAGE, 8, good]), EINVAL);
    check_eq!(get(48, [0x10_0000, 0x1800, PAGE, 8, good]), EINVAL);
    // A range must not cut a map, at either end.
    check_eq!(get(48, [0x10_1000, 3 * PAGE, PAGE, 8, good]), EINVAL);
    check_eq!(get(48, [0x10_0000, 2 * PAGE, PAGE, 8, good]), EINVAL);
    // A bitmap that cannot be written: EFAULT where a map is, nothing
    // written (so no fault) where none is.
    check_eq!(get(48, [0x10_0000, 4 * PAGE, PAGE, 8, UNMAPPED]), EFAULT);
    check_eq!(get(48, [0x30_0000, 4 * PAGE, PAGE, 8, UNMAPPED]), 0);
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    check_eq!(get_bitmap(&fd, 0x10_0000, 4), Err(EINVAL));
    Ok(())
}

/// `VFIO_IOMMU_UNMAP_DMA` with `GET_DIRTY_BITMAP`: type1's errnos, in its
/// order; a failed call unmaps nothing and writes `size` back only on
/// success.
fn unmap_bitmap_errnos() -> TestResult {
    skip_on_c()?;
    let buf = PageBuf::new(8);
    let mut words = [0u64; 2];
    let good = words.as_mut_ptr() as u64;
    // No compat IOAS, once the bitmap's own checks pass.
    let fd = open_container()?;
    let un = |fd: &Iommufd, argsz: u32, flags: u32, range: (u64, u64), b: (u64, u64, u64)| {
        fd.vfio_unmap_bitmap(argsz, flags, range, b)
    };
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x10_0000, PAGE), (PAGE, 8, good)),
        (ENODEV, PAGE)
    );
    let (fd, _) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    check_eq!(fd.vfio_map(RW, buf.addr(), 0x10_0000, 4 * PAGE), 0);
    let range = (0x10_0000, 4 * PAGE);
    let b = (PAGE, 8, good);
    // Not started: EINVAL, and the map stays.
    check_eq!(un(&fd, 48, GET_DIRTY, range, b), (EINVAL, 4 * PAGE));
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    // With UNMAP_ALL, or VADDR (which this container does not serve).
    let all = uapi::VFIO_DMA_UNMAP_FLAG_ALL;
    check_eq!(un(&fd, 48, GET_DIRTY | all, (0, 0), b), (EINVAL, 0));
    check_eq!(un(&fd, 48, GET_DIRTY | 4, range, b), (EINVAL, 4 * PAGE));
    // No room for the bitmap after the struct.
    check_eq!(un(&fd, 24, GET_DIRTY, range, b), (EINVAL, 4 * PAGE));
    check_eq!(un(&fd, 47, GET_DIRTY, range, b), (EINVAL, 4 * PAGE));
    // The bitmap: not user memory, empty, too small, a zero page size.
    check_eq!(
        un(&fd, 48, GET_DIRTY, range, (PAGE, 8, KERNEL)),
        (EINVAL, 4 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, range, (PAGE, 0, good)),
        (EINVAL, 4 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x10_0000, 65 * PAGE), b),
        (EINVAL, 65 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, range, (0, 8, good)),
        (EINVAL, 4 * PAGE)
    );
    check_eq!(un(&fd, 48, GET_DIRTY, (0x10_0000, 0), b), (EINVAL, 0));
    // The range: aligned to the smallest IO page, not wrapping, not
    // cutting a map; the bitmap in that page size.
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x10_0800, 4 * PAGE), b),
        (EINVAL, 4 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x10_0000, 0x1800), b),
        (EINVAL, 0x1800)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, (u64::MAX - 0xfff, 2 * PAGE), b),
        (EOVERFLOW, 2 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, range, (2 * PAGE, 8, good)),
        (EINVAL, 4 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x10_1000, 3 * PAGE), b),
        (EINVAL, 3 * PAGE)
    );
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x10_0000, 2 * PAGE), b),
        (EINVAL, 2 * PAGE)
    );
    // A bitmap that cannot be written: EFAULT, the map stays.
    check_eq!(
        un(&fd, 48, GET_DIRTY, range, (PAGE, 8, UNMAPPED)),
        (EFAULT, 4 * PAGE)
    );
    check_eq!(fd.vfio_map(RW, buf.addr(), 0x10_0000, PAGE), EEXIST);
    // An empty range unmaps nothing and writes nothing.
    check_eq!(
        un(&fd, 48, GET_DIRTY, (0x30_0000, PAGE), (PAGE, 8, UNMAPPED)),
        (0, 0)
    );
    // At last, the unmap: nothing dirty without a domain or an access.
    words = [u64::MAX; 2];
    check_eq!(
        fd.vfio_unmap_dirty(0x10_0000, 4 * PAGE, PAGE, &mut words),
        (0, 4 * PAGE)
    );
    // type1 writes whole words from the map's first bit: zeros here.
    check_eq!(words, [0, u64::MAX]);
    check_eq!(fd.vfio_map(RW, buf.addr(), 0x10_0000, PAGE), 0);
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    check_eq!(un(&fd, 48, GET_DIRTY, (0x10_0000, PAGE), b), (EINVAL, PAGE));
    Ok(())
}

/// The legacy migration flow: a mock device moved onto a dirty-tracking
/// HWPT of the compat IOAS, MAP_DMA, START, device writes (TEST_OP_DIRTY),
/// GET_BITMAP (read and cleared), UNMAP_DMA with a bitmap, a map made
/// while tracking, STOP.
fn mock_dirty_flow() -> TestResult {
    skip_on_c()?;
    let buf = PageBuf::new(24);
    let fd = open_container()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    check_eq!(fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas), Ok(ioas));
    let (stdev, auto, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(
        fd.vfio_value(uapi::VFIO_SET_IOMMU, uapi::VFIO_TYPE1v2_IOMMU.into()),
        Ok(0)
    );
    let dirty = uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    let hwpt = ok("HWPT_ALLOC", fd.hwpt_alloc(idev, ioas, dirty, None))?;
    check_eq!(fd.mock_domain_replace(stdev, hwpt), Ok(hwpt));
    // The automatic HWPT went with its last device.
    check_eq!(fd.destroy(auto), ENOENT);
    // 16 maps of one page, then one of 4 pages at page 32.
    for i in 0..16 {
        check_eq!(
            fd.vfio_map(RW, buf.addr() + i * PAGE, APERTURE + i * PAGE, PAGE),
            0
        );
    }
    check_eq!(
        fd.vfio_map(RW, buf.addr() + 16 * PAGE, APERTURE + 32 * PAGE, 4 * PAGE),
        0
    );
    // Tracking is off in the domain until START.
    check_eq!(
        fd.mock_set_dirty(hwpt, APERTURE, PAGE, PAGE, [1u8].as_ptr()),
        Err(EINVAL)
    );
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    check_eq!(get_bitmap(&fd, APERTURE, 36), Ok(vec![0]));
    // Device writes: pages 1, 5, 10, and the whole 4-page map.
    mark(&fd, hwpt, &[1, 5, 10, 32, 33, 34, 35])?;
    let want = bits(1, &[1, 5, 10, 32, 33, 34, 35]);
    check_eq!(get_bitmap(&fd, APERTURE, 36), Ok(want));
    // Read and cleared.
    check_eq!(get_bitmap(&fd, APERTURE, 36), Ok(vec![0]));
    // A part of the maps: bit 0 is page 2.
    mark(&fd, hwpt, &[3, 7, 12])?;
    check_eq!(
        get_bitmap(&fd, APERTURE + 2 * PAGE, 6),
        Ok(bits(1, &[1, 5]))
    );
    check_eq!(get_bitmap(&fd, APERTURE, 36), Ok(bits(1, &[12])));
    // A range from a hole before the first map: the bits of the user's
    // first word are kept (type1 ORs them in).
    mark(&fd, hwpt, &[0])?;
    let mut words = [1u64 << 40];
    check_eq!(
        fd.vfio_dirty_bitmap(APERTURE - PAGE, 17 * PAGE, PAGE, &mut words),
        0
    );
    check_eq!(words, [1 << 40 | 1 << 1]);
    // UNMAP_DMA with a bitmap: the dirty pages of what goes, then gone.
    mark(&fd, hwpt, &[12, 13])?;
    let mut words = [0u64];
    check_eq!(
        fd.vfio_unmap_dirty(APERTURE + 12 * PAGE, 4 * PAGE, PAGE, &mut words),
        (0, 4 * PAGE)
    );
    check_eq!(words, [0b11]);
    let page12 = page_ptr(&buf, 12);
    check_eq!(
        fd.md_check_map(hwpt, APERTURE + 12 * PAGE, PAGE, page12),
        EINVAL
    );
    // A map made while tracking is tracked.
    check_eq!(
        fd.vfio_map(RW, buf.addr() + 12 * PAGE, APERTURE + 12 * PAGE, PAGE),
        0
    );
    mark(&fd, hwpt, &[12])?;
    check_eq!(get_bitmap(&fd, APERTURE + 12 * PAGE, 1), Ok(vec![1]));
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    // STOP turns the domain's tracking off.
    check_eq!(
        fd.mock_set_dirty(hwpt, APERTURE, PAGE, PAGE, [1u8].as_ptr()),
        Err(EINVAL)
    );
    check_eq!(get_bitmap(&fd, APERTURE, 36), Err(EINVAL));
    check_eq!(
        fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (0, 17 * PAGE)
    );
    check_eq!(fd.destroy(stdev), 0);
    Ok(())
}

/// The address of page `i` of `buf`.
fn page_ptr(buf: &PageBuf, i: u64) -> *const u8 {
    (buf.addr() + i * PAGE) as *const u8
}

/// A domain that cannot track dirty pages (an automatic mock domain, as
/// type1's IOMMU-backed group) makes every mapped page dirty, at each
/// GET_BITMAP and at UNMAP_DMA; holes stay clean. A second device's
/// automatic domain beside a dirty-tracking HWPT does the same, until it
/// goes.
fn all_dirty_auto_domain() -> TestResult {
    skip_on_c()?;
    let buf = PageBuf::new(16);
    let (fd, ioas) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    let (stdev, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(fd.vfio_map(RW, buf.addr(), APERTURE, 8 * PAGE), 0);
    check_eq!(
        fd.vfio_map(RW, buf.addr() + 8 * PAGE, APERTURE + 10 * PAGE, PAGE),
        0
    );
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    let want = vec![0xff | 1 << 10];
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(want.clone()));
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(want));
    let mut words = [0u64];
    check_eq!(
        fd.vfio_unmap_dirty(APERTURE, 8 * PAGE, PAGE, &mut words),
        (0, 8 * PAGE)
    );
    check_eq!(words, [0xff]);
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(vec![1 << 10]));
    // The device moves to a dirty-tracking HWPT made while the log runs:
    // its tracking is off, so every page still counts.
    let dirty = uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    let hwpt = ok("HWPT_ALLOC", fd.hwpt_alloc(idev, ioas, dirty, None))?;
    check_eq!(fd.mock_domain_replace(stdev, hwpt), Ok(hwpt));
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(vec![1 << 10]));
    // STOP and START again: tracking on in the HWPT, nothing dirty.
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(vec![0]));
    // A second device with its own automatic domain: all dirty again.
    let (stdev2, _, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(vec![1 << 10]));
    check_eq!(fd.destroy(stdev2), 0);
    check_eq!(get_bitmap(&fd, APERTURE, 11), Ok(vec![0]));
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    check_eq!(fd.destroy(stdev), 0);
    Ok(())
}

/// No domain: as type1 with only emulated devices, the dirty pages are
/// those in-kernel accesses pinned (pinned at START, pinned since, or
/// still pinned at the last GET_BITMAP) or wrote; reads do not count.
fn access_pins_no_domain() -> TestResult {
    skip_on_c()?;
    let buf = PageBuf::new(8);
    let (fd, ioas) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    let base = 0x10_0000u64;
    check_eq!(fd.vfio_map(RW, buf.addr(), base, 8 * PAGE), 0);
    let access = ok(
        "CREATE_ACCESS",
        fd.create_access(ioas, uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES),
    )?;
    let pin = |i: u64| fd.access_pages(&access, base + i * PAGE, PAGE, page_ptr(&buf, i));
    let item6 = ok("pin 6", pin(6))?;
    check_eq!(fd.vfio_dirty_pages(8, START, &[]), 0);
    // Pinned when the log started, and still pinned.
    check_eq!(get_bitmap(&fd, base, 8), Ok(bits(1, &[6])));
    check_eq!(get_bitmap(&fd, base, 8), Ok(bits(1, &[6])));
    let item2 = ok("pin 2", pin(2))?;
    check_eq!(fd.destroy_access_pages(&access, item6), 0);
    // 6 was pinned at the last report: dirty once more, then clean.
    check_eq!(get_bitmap(&fd, base, 8), Ok(bits(1, &[2, 6])));
    check_eq!(get_bitmap(&fd, base, 8), Ok(bits(1, &[2])));
    // A write counts, a read does not.
    let mut data = [0x5au8; 16];
    let write = uapi::MOCK_ACCESS_RW_WRITE;
    check_eq!(
        fd.access_rw(&access, base + 4 * PAGE + 8, &mut data, write),
        0
    );
    check_eq!(fd.access_rw(&access, base + 5 * PAGE, &mut data, 0), 0);
    check_eq!(get_bitmap(&fd, base, 8), Ok(bits(1, &[2, 4])));
    // A write across two pages marks both.
    let mut wide = [0x6bu8; 32];
    check_eq!(
        fd.access_rw(&access, base + 6 * PAGE - 16, &mut wide, write),
        0
    );
    check_eq!(get_bitmap(&fd, base, 8), Ok(bits(1, &[2, 5, 6])));
    // UNMAP_DMA with a bitmap while page 2 is pinned: the access is told
    // to unpin, and page 2 is reported.
    let mut words = [0u64];
    check_eq!(
        fd.vfio_unmap_dirty(base, 8 * PAGE, PAGE, &mut words),
        (0, 8 * PAGE)
    );
    check_eq!(words.to_vec(), bits(1, &[2]));
    check_eq!(fd.destroy_access_pages(&access, item2), ENOENT);
    check_eq!(fd.vfio_dirty_pages(8, STOP, &[]), 0);
    Ok(())
}

/// The container dirty-tracking tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "compat_dirty_get_info_migration_cap",
            run: get_info_migration_cap,
        },
        Test {
            name: "compat_dirty_pages_errnos",
            run: dirty_pages_errnos,
        },
        Test {
            name: "compat_dirty_unmap_bitmap_errnos",
            run: unmap_bitmap_errnos,
        },
        Test {
            name: "compat_dirty_mock_domain_flow",
            run: mock_dirty_flow,
        },
        Test {
            name: "compat_dirty_all_dirty_auto_domain",
            run: all_dirty_auto_domain,
        },
        Test {
            name: "compat_dirty_access_pins_no_domain",
            run: access_pins_no_domain,
        },
    ]
}
