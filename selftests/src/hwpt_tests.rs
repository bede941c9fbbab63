// SPDX-License-Identifier: GPL-2.0

//! HWPTs made by hand (`IOMMU_HWPT_ALLOC`) beside the automatic ones, and
//! dirty tracking on mock domains. Every expectation is C iommufd's: the
//! suite runs against C too.

use crate::dev::{Iommufd, PageBuf};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;
use crate::{check, check_eq};

const PAGE: u64 = 4096;
const MOCK_PAGE: u64 = 2048;
const APERTURE: u64 = uapi::MOCK_APERTURE_START as u64;
const RW_FIXED: u32 = uapi::IOMMU_IOAS_MAP_READABLE
    | uapi::IOMMU_IOAS_MAP_WRITEABLE
    | uapi::IOMMU_IOAS_MAP_FIXED_IOVA;
const DIRTY: u32 = uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
const ENABLE: u32 = uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
const NO_CLEAR: u32 = uapi::IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR;

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// The mock driver's data: `iommu_hwpt_selftest` with `pagetable_type`.
fn selftest_data(pagetable_type: u32) -> [u8; 8] {
    let mut d = [0u8; 8];
    d[4..].copy_from_slice(&pagetable_type.to_ne_bytes());
    d
}

/// HWPT_ALLOC's answers to its flags and driver data, in C's order.
fn hwpt_alloc_checks() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (_, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let (_, _, idev_nd) = ok(
        "mock_domain_flags",
        fd.mock_domain_flags(ioas, uapi::MOCK_FLAGS_DEVICE_NO_DIRTY),
    )?;
    let st = uapi::IOMMU_HWPT_DATA_SELFTEST;
    check_eq!(fd.hwpt_alloc(idev, ioas, 1 << 30, None), Err(EOPNOTSUPP));
    check_eq!(fd.hwpt_alloc(idev_nd, ioas, DIRTY, None), Err(EOPNOTSUPP));
    let fault_nest = uapi::IOMMU_HWPT_FAULT_ID_VALID | uapi::IOMMU_HWPT_ALLOC_NEST_PARENT;
    check_eq!(fd.hwpt_alloc(idev, ioas, fault_nest, None), Err(EOPNOTSUPP));
    // No fault queue has ID 0.
    check_eq!(
        fd.hwpt_alloc(idev, ioas, uapi::IOMMU_HWPT_FAULT_ID_VALID, None),
        Err(ENOENT)
    );
    check_eq!(fd.hwpt_alloc(ioas, ioas, 0, None), Err(ENOENT));
    check_eq!(fd.hwpt_alloc(idev, 0xffff, 0, None), Err(EINVAL));
    // Driver data: the type, the length, the format.
    check_eq!(
        fd.hwpt_alloc(idev, ioas, 0, Some((st + 100, &[0; 8]))),
        Err(EOPNOTSUPP)
    );
    check_eq!(
        fd.hwpt_alloc(idev, ioas, 0, Some((st, &[0; 2]))),
        Err(EINVAL)
    );
    check_eq!(
        fd.hwpt_alloc(idev, ioas, 0, Some((st, &[0; 16]))),
        Err(EINVAL)
    );
    check_eq!(
        fd.hwpt_alloc(idev, ioas, 0, Some((st, &selftest_data(7)))),
        Err(EOPNOTSUPP)
    );
    for flags in [
        0,
        uapi::IOMMU_HWPT_ALLOC_NEST_PARENT,
        DIRTY,
        uapi::IOMMU_HWPT_ALLOC_PASID,
    ] {
        let hwpt = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, flags, None))?;
        check_eq!(fd.destroy(hwpt), 0);
    }
    let huge = ok(
        "hwpt_alloc huge",
        fd.hwpt_alloc(
            idev,
            ioas,
            0,
            Some((st, &selftest_data(uapi::MOCK_IOMMUPT_HUGE))),
        ),
    )?;
    let short = ok(
        "hwpt_alloc iotlb only",
        fd.hwpt_alloc(idev, ioas, 0, Some((st, &[0; 4]))),
    )?;
    check_eq!(fd.destroy(huge), 0);
    check_eq!(fd.destroy(short), 0);
    Ok(())
}

/// A manual HWPT on an IOAS that has areas and an automatic domain: it is
/// filled from them, maps what is mapped next, survives the automatic
/// domain's going, and is busy while a device uses it.
fn hwpt_second_domain() -> TestResult {
    let buf = PageBuf::new(8);
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    ok(
        "map",
        fd.map(ioas, buf.addr(), 4 * PAGE, RW_FIXED, APERTURE),
    )?;
    let (stdev, auto, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let manual = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, 0, None))?;
    check_eq!(fd.md_check_map(manual, APERTURE, 4 * PAGE, buf.ptr()), 0);
    // One pin per page, however many domains.
    check_eq!(fd.check_refs(buf.ptr(), 4 * PAGE, 1), 0);
    let second = buf.addr() + 4 * PAGE;
    ok(
        "map",
        fd.map(ioas, second, 4 * PAGE, RW_FIXED, APERTURE + 4 * PAGE),
    )?;
    check_eq!(
        fd.md_check_map(manual, APERTURE + 4 * PAGE, 4 * PAGE, second as *const u8),
        0
    );
    check_eq!(
        fd.md_check_map(auto, APERTURE + 4 * PAGE, 4 * PAGE, second as *const u8),
        0
    );
    // The device moves: the automatic domain goes, the manual keeps all.
    check_eq!(fd.mock_domain_replace(stdev, manual), Ok(manual));
    check_eq!(fd.destroy(auto), ENOENT);
    check_eq!(fd.md_check_map(manual, APERTURE, 8 * PAGE, buf.ptr()), 0);
    check_eq!(fd.check_refs(buf.ptr(), 8 * PAGE, 1), 0);
    check_eq!(fd.destroy(manual), EBUSY);
    check_eq!(fd.unmap(ioas, APERTURE, 4 * PAGE), Ok(4 * PAGE));
    check_eq!(fd.check_refs(buf.ptr(), 4 * PAGE, 0), 0);
    // Back to the IOAS: a new automatic domain; the manual one is free.
    let auto2 = ok("replace", fd.mock_domain_replace(stdev, ioas))?;
    check!(auto2 != manual);
    check_eq!(fd.destroy(manual), 0);
    check_eq!(
        fd.md_check_map(auto2, APERTURE + 4 * PAGE, 4 * PAGE, second as *const u8),
        0
    );
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.check_refs(buf.ptr(), 8 * PAGE, 0), 0);
    Ok(())
}

/// A huge-format HWPT: its aperture and alignment as C reports them.
fn hwpt_huge_format_ranges() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (stdev, auto, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(fd.mock_domain_replace(stdev, ioas), Ok(auto));
    let data = selftest_data(uapi::MOCK_IOMMUPT_HUGE);
    let huge = ok(
        "hwpt_alloc",
        fd.hwpt_alloc(idev, ioas, 0, Some((uapi::IOMMU_HWPT_DATA_SELFTEST, &data))),
    )?;
    let (ranges, align) = fd
        .iova_ranges(ioas, 8)
        .map_err(|(e, _)| format!("IOVA_RANGES: errno {e}"))?;
    let got: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.last)).collect();
    println!("# huge format with the default: {got:x?}, alignment {align:#x}");
    check_eq!(got, vec![(APERTURE, uapi::MOCK_APERTURE_LAST as u64)]);
    check_eq!(align, PAGE);
    check_eq!(fd.destroy(stdev), 0);
    // Alone, the huge format's own aperture.
    let (ranges, align) = fd
        .iova_ranges(ioas, 8)
        .map_err(|(e, _)| format!("IOVA_RANGES: errno {e}"))?;
    let got: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.last)).collect();
    println!("# huge format alone: {got:x?}, alignment {align:#x}");
    check_eq!(got, vec![(0, (1u64 << 38) - 1)]);
    check_eq!(align, PAGE);
    check_eq!(fd.destroy(huge), 0);
    Ok(())
}

/// A mock device without dirty tracking cannot join a dirty domain.
fn hwpt_dirty_refuses_device() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (stdev, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let dirty = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, DIRTY, None))?;
    let nd = uapi::MOCK_FLAGS_DEVICE_NO_DIRTY;
    check_eq!(fd.mock_domain_flags(dirty, nd).err(), Some(EINVAL));
    let (stdev_nd, _, _) = ok("mock_domain_flags", fd.mock_domain_flags(ioas, nd))?;
    check_eq!(fd.mock_domain_replace(stdev_nd, dirty), Err(EINVAL));
    check_eq!(fd.mock_domain_replace(stdev, dirty), Ok(dirty));
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(stdev_nd), 0);
    check_eq!(fd.destroy(dirty), 0);
    Ok(())
}

/// Bits `[first, first + n)` of a byte bitmap.
fn bits(map: &[u8], first: usize, n: usize) -> Vec<bool> {
    (first..first + n)
        .map(|i| map[i / 8] & (1 << (i % 8)) != 0)
        .collect()
}

/// A new IOAS with large pages off (one PTE per 4 KiB page) and the first
/// `len` bytes of `buf` mapped at the aperture's start, and a mock device
/// moved from its automatic HWPT (gone then) to a dirty-tracking one:
/// (file, IOAS, device, HWPT).
fn dirty_hwpt_over(buf: &PageBuf, len: u64) -> Result<(Iommufd, u32, u32, u32), String> {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let off = uapi::IOMMU_OPTION_HUGE_PAGES;
    check_eq!(
        fd.option(off, uapi::IOMMU_OPTION_OP_SET, ioas, 0)
            .map(|_| ()),
        Ok(())
    );
    ok("map", fd.map(ioas, buf.addr(), len, RW_FIXED, APERTURE))?;
    let (stdev, auto, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let hwpt = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, DIRTY, None))?;
    check_eq!(fd.mock_domain_replace(stdev, hwpt), Ok(hwpt));
    check_eq!(fd.destroy(auto), ENOENT);
    Ok((fd, ioas, stdev, hwpt))
}

/// The dirty flow: tracking on, pages marked, read with and without
/// clearing, the range and flag checks, and C's quiet answers for a hole
/// and for a bitmap it cannot write.
fn hwpt_dirty_bitmap() -> TestResult {
    let buf = PageBuf::new(16);
    let len = 16 * PAGE;
    let (fd, ioas, stdev, hwpt) = dirty_hwpt_over(&buf, len)?;
    let nbits = (len / MOCK_PAGE) as usize;
    let mut marks = vec![0u8; nbits / 8];
    for i in (0..nbits).step_by(3) {
        marks[i / 8] |= 1 << (i % 8);
    }
    // Tracking is off: marking fails.
    check_eq!(
        fd.mock_set_dirty(hwpt, APERTURE, len, MOCK_PAGE, marks.as_ptr()),
        Err(EINVAL)
    );
    check_eq!(fd.set_dirty_tracking(hwpt, 2), EOPNOTSUPP);
    check_eq!(fd.set_dirty_tracking(ioas, ENABLE), ENOENT);
    check_eq!(fd.set_dirty_tracking(hwpt, ENABLE), 0);
    check_eq!(
        fd.mock_set_dirty(hwpt, APERTURE, len, MOCK_PAGE, marks.as_ptr()),
        Ok(nbits.div_ceil(3) as u64)
    );
    // With large pages off every 4 KiB is one PTE of two 2 KiB items; the
    // mock's table reports a dirty PTE of several items from its start,
    // one item short (C's generic PT), so only its first 2 KiB bit.
    let want: Vec<bool> = (0..nbits)
        .map(|i| i % 2 == 0 && (i % 3 == 0 || (i + 1) % 3 == 0))
        .collect();
    let mut out = vec![0u8; nbits / 8 + 16];
    let get = |out: &mut Vec<u8>, off: usize, page: u64, flags: u32| {
        fd.get_dirty_bitmap(
            hwpt,
            APERTURE,
            len,
            page,
            out.as_mut_ptr() as u64 + off as u64,
            flags,
        )
    };
    check_eq!(get(&mut out, 0, MOCK_PAGE, NO_CLEAR), 0);
    check_eq!(bits(&out, 0, nbits), want);
    // 4 KiB bits: a bit is set if either half is dirty; at an odd offset.
    out.fill(0);
    check_eq!(get(&mut out, 3, PAGE, NO_CLEAR), 0);
    let want4k: Vec<bool> = (0..nbits / 2)
        .map(|i| (2 * i) % 3 == 0 || (2 * i + 1) % 3 == 0)
        .collect();
    check_eq!(bits(&out[3..], 0, nbits / 2), want4k);
    // A page size that is not a power of two counts in its lowest bit.
    out.fill(0);
    check_eq!(get(&mut out, 0, 3 * MOCK_PAGE, NO_CLEAR), 0);
    check_eq!(bits(&out, 0, nbits), want);
    check_eq!(get(&mut out, 0, 0, NO_CLEAR), EINVAL);
    // Bad flags, ranges and HWPTs.
    check_eq!(get(&mut out, 0, MOCK_PAGE, 2), EOPNOTSUPP);
    check_eq!(
        fd.get_dirty_bitmap(
            hwpt,
            APERTURE + 1,
            len,
            MOCK_PAGE,
            out.as_mut_ptr() as u64,
            0
        ),
        EINVAL
    );
    check_eq!(
        fd.get_dirty_bitmap(
            hwpt,
            u64::MAX - PAGE + 1,
            2 * PAGE,
            PAGE,
            out.as_mut_ptr() as u64,
            0
        ),
        EOVERFLOW
    );
    check_eq!(
        fd.get_dirty_bitmap(ioas, APERTURE, len, MOCK_PAGE, out.as_mut_ptr() as u64, 0),
        ENOENT
    );
    // Reading with clearing, then again: nothing left.
    out.fill(0);
    check_eq!(get(&mut out, 0, MOCK_PAGE, 0), 0);
    check_eq!(bits(&out, 0, nbits), want);
    out.fill(0);
    check_eq!(get(&mut out, 0, MOCK_PAGE, 0), 0);
    check!(out.iter().all(|&b| b == 0));
    // A bitmap it cannot write: C answers 0, and the record is gone.
    check_eq!(
        fd.mock_set_dirty(hwpt, APERTURE, len, MOCK_PAGE, marks.as_ptr()),
        Ok(nbits.div_ceil(3) as u64)
    );
    check_eq!(fd.get_dirty_bitmap(hwpt, APERTURE, len, MOCK_PAGE, 8, 0), 0);
    check_eq!(get(&mut out, 0, MOCK_PAGE, 0), 0);
    check!(out.iter().all(|&b| b == 0));
    // A range over a hole: C stops quietly at the hole.
    check_eq!(fd.unmap(ioas, APERTURE, len), Ok(len));
    let rest = buf.addr() + 4 * PAGE;
    check_eq!(
        fd.map(ioas, rest, 12 * PAGE, RW_FIXED, APERTURE + 4 * PAGE),
        Ok(APERTURE + 4 * PAGE)
    );
    check_eq!(
        fd.mock_set_dirty(
            hwpt,
            APERTURE + 4 * PAGE,
            12 * PAGE,
            MOCK_PAGE,
            marks.as_ptr()
        ),
        Ok((12 * PAGE / MOCK_PAGE).div_ceil(3))
    );
    check_eq!(get(&mut out, 0, MOCK_PAGE, 0), 0);
    check!(out.iter().all(|&b| b == 0));
    // Turning tracking on again drops what was recorded.
    check_eq!(fd.set_dirty_tracking(hwpt, 0), 0);
    check_eq!(fd.set_dirty_tracking(hwpt, ENABLE), 0);
    out.fill(0);
    check_eq!(
        fd.get_dirty_bitmap(
            hwpt,
            APERTURE + 4 * PAGE,
            12 * PAGE,
            MOCK_PAGE,
            out.as_mut_ptr() as u64,
            0
        ),
        0
    );
    check!(out.iter().all(|&b| b == 0));
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(hwpt), 0);
    Ok(())
}

/// The bitmap is written in place, window by window, as C's
/// `iova_bitmap` pins it: bits whose page can be pinned writable are set,
/// the rest dropped, and the record is cleared all the same.
fn hwpt_dirty_bitmap_in_place() -> TestResult {
    let pages = 64u64;
    let buf = PageBuf::new(pages as usize);
    let len = pages * PAGE;
    let (fd, _, stdev, hwpt) = dirty_hwpt_over(&buf, len)?;
    check_eq!(fd.set_dirty_tracking(hwpt, ENABLE), 0);
    let all = vec![0xffu8; (pages / 8) as usize];
    let mark = || fd.mock_set_dirty(hwpt, APERTURE, len, PAGE, all.as_ptr());
    // Three pages for the bitmap; the middle one read-only.
    let bitmap = PageBuf::new(3);
    let at = |off: u64| bitmap.addr() + off;
    let byte = |off: u64| {
        // SAFETY: Inside the three pages, all readable.
        unsafe { *bitmap.ptr().add(off as usize) }
    };
    // SAFETY: The three pages are ours and writable.
    unsafe { std::ptr::write_bytes(bitmap.ptr() as *mut u8, 0, 3 * PAGE as usize) };
    crate::sys::set_read_only(at(PAGE), PAGE, true).map_err(|e| e.to_string())?;
    let read = |data: u64| fd.get_dirty_bitmap(hwpt, APERTURE, len, PAGE, data, 0);
    // Writable again whatever the checks find (the allocator writes there).
    let checks = || -> TestResult {
        // 8 bytes across the read-only page's start: the first 4 are set.
        check_eq!(mark(), Ok(pages));
        check_eq!(read(at(PAGE - 4)), 0);
        check_eq!(
            (PAGE - 4..PAGE).map(byte).collect::<Vec<_>>(),
            vec![0xff; 4]
        );
        check_eq!((PAGE..PAGE + 4).map(byte).collect::<Vec<_>>(), vec![0; 4]);
        // The record is gone, bits written or not.
        check_eq!(read(at(2 * PAGE)), 0);
        check_eq!(byte(2 * PAGE), 0);
        // 8 bytes across the read-only page's end: the last 4 are set (each
        // record tries its own byte again).
        check_eq!(mark(), Ok(pages));
        check_eq!(read(at(2 * PAGE - 4)), 0);
        check_eq!(
            (2 * PAGE - 4..2 * PAGE).map(byte).collect::<Vec<_>>(),
            vec![0; 4]
        );
        check_eq!(
            (2 * PAGE..2 * PAGE + 4).map(byte).collect::<Vec<_>>(),
            vec![0xff; 4]
        );
        Ok(())
    };
    let result = checks();
    crate::sys::set_read_only(at(PAGE), PAGE, false).map_err(|e| e.to_string())?;
    result?;
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(hwpt), 0);
    Ok(())
}

/// PASIDs of mock devices on paging HWPTs: only PASID-compatible HWPTs
/// serve them, with the RID on one too; attach does not overwrite,
/// replace needs an attach, detach always answers 0; a HWPT serving a
/// PASID is busy; PASID 0 is the RID; the mock's planted `ENOMEM` for
/// PASID 1024.
fn hwpt_pasid_attach() -> TestResult {
    const PASID_FLAGS: u32 = uapi::MOCK_FLAGS_DEVICE_PASID;
    const ALLOC_PASID: u32 = uapi::IOMMU_HWPT_ALLOC_PASID;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (stdev, auto, idev) = ok("mock_domain", fd.mock_domain_flags(ioas, PASID_FLAGS))?;
    let plain = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, 0, None))?;
    let s2 = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, ALLOC_PASID, None))?;
    let s2b = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, ALLOC_PASID, None))?;
    // Detaching what is not attached is fine.
    check_eq!(fd.pasid_detach(stdev, 100), 0);
    // The RID is on the automatic HWPT: no PASID may attach.
    check_eq!(fd.pasid_attach(stdev, 100, s2, false), Err(EINVAL));
    check_eq!(fd.pasid_check(stdev, 0, auto), 0);
    check_eq!(fd.pasid_check(stdev, 100, 0), 0);
    check_eq!(fd.mock_domain_replace(stdev, s2), Ok(s2));
    // Not PASID-compatible, an IOAS, a missing object, a device.
    check_eq!(fd.pasid_attach(stdev, 100, plain, false), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 100, ioas, false), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 100, 9999, false), Err(ENOENT));
    check_eq!(fd.pasid_attach(stdev, 100, idev, false), Err(EINVAL));
    check_eq!(fd.pasid_attach(9999, 100, s2, false), Err(ENOENT));
    // Past the device's 20 PASID bits.
    check_eq!(fd.pasid_attach(stdev, 1 << 20, s2, false), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 200, s2, true), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 100, s2b, false), Ok(s2b));
    check_eq!(fd.pasid_check(stdev, 100, s2b), 0);
    check_eq!(fd.pasid_check(stdev, 100, s2), EINVAL);
    check_eq!(fd.pasid_check(stdev, 100, 0), EINVAL);
    check_eq!(fd.pasid_check(stdev, 100, ioas), EINVAL);
    check_eq!(fd.pasid_check(stdev, 100, 9999), ENOENT);
    check_eq!(fd.pasid_attach(stdev, 100, s2, false), Err(EBUSY));
    check_eq!(fd.pasid_attach(stdev, 100, ioas, false), Err(EBUSY));
    check_eq!(fd.destroy(s2b), EBUSY);
    // With a PASID attached the RID may not leave PASID-compatible HWPTs.
    check_eq!(fd.mock_domain_replace(stdev, plain), Err(EINVAL));
    check_eq!(fd.mock_domain_replace(stdev, ioas), Err(EINVAL));
    check_eq!(fd.mock_domain_replace(stdev, s2b), Ok(s2b));
    check_eq!(fd.mock_domain_replace(stdev, s2), Ok(s2));
    // Replace, to a HWPT that does not suit, to itself, to another.
    check_eq!(fd.pasid_attach(stdev, 100, plain, true), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 100, ioas, true), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 100, s2b, true), Ok(s2b));
    check_eq!(fd.pasid_attach(stdev, 100, s2, true), Ok(s2));
    check_eq!(fd.pasid_check(stdev, 100, s2), 0);
    check_eq!(fd.destroy(s2b), 0);
    // PASID 1024: the replace after an attach fails and changes nothing.
    check_eq!(fd.pasid_attach(stdev, 1024, s2, false), Ok(s2));
    let s2c = ok("hwpt_alloc", fd.hwpt_alloc(idev, ioas, ALLOC_PASID, None))?;
    check_eq!(fd.pasid_attach(stdev, 1024, s2c, true), Err(ENOMEM));
    check_eq!(fd.pasid_check(stdev, 1024, s2), 0);
    check_eq!(fd.pasid_attach(stdev, 1024, s2c, true), Ok(s2c));
    check_eq!(fd.pasid_detach(stdev, 1024), 0);
    check_eq!(fd.pasid_check(stdev, 1024, 0), 0);
    // PASID 0 is the RID: attached already; detached, then back.
    check_eq!(fd.pasid_attach(stdev, 0, s2c, false), Err(EBUSY));
    check_eq!(fd.pasid_attach(stdev, 0, s2c, true), Ok(s2c));
    check_eq!(fd.pasid_detach(stdev, 0), 0);
    check_eq!(fd.pasid_check(stdev, 0, 0), 0);
    check_eq!(fd.mock_domain_replace(stdev, s2), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 0, ioas, false), Err(EINVAL));
    check_eq!(fd.pasid_attach(stdev, 0, s2, false), Ok(s2));
    check_eq!(fd.pasid_detach(stdev, 100), 0);
    // Back to an automatic HWPT of the IOAS (a new one: the first went
    // with its last device).
    let auto2 = ok("pasid_replace 0", fd.pasid_attach(stdev, 0, ioas, true))?;
    check_eq!(fd.pasid_check(stdev, 0, auto2), 0);
    check_eq!(fd.pasid_attach(stdev, 100, s2, false), Err(EINVAL));
    check_eq!(fd.destroy(stdev), 0);
    for id in [plain, s2, s2c] {
        check_eq!(fd.destroy(id), 0);
    }
    Ok(())
}

/// A HWPT without dirty tracking answers the dirty ioctls EOPNOTSUPP.
fn hwpt_no_dirty_ops() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (_, auto, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(fd.set_dirty_tracking(auto, ENABLE), EOPNOTSUPP);
    check_eq!(fd.set_dirty_tracking(auto, 0), EOPNOTSUPP);
    let mut out = [0u8; 8];
    check_eq!(
        fd.get_dirty_bitmap(auto, APERTURE, PAGE, MOCK_PAGE, out.as_mut_ptr() as u64, 0),
        EOPNOTSUPP
    );
    Ok(())
}

/// The suite.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "hwpt_alloc_checks",
            run: hwpt_alloc_checks,
        },
        Test {
            name: "hwpt_second_domain",
            run: hwpt_second_domain,
        },
        Test {
            name: "hwpt_huge_format_ranges",
            run: hwpt_huge_format_ranges,
        },
        Test {
            name: "hwpt_dirty_refuses_device",
            run: hwpt_dirty_refuses_device,
        },
        Test {
            name: "hwpt_dirty_bitmap",
            run: hwpt_dirty_bitmap,
        },
        Test {
            name: "hwpt_dirty_bitmap_in_place",
            run: hwpt_dirty_bitmap_in_place,
        },
        Test {
            name: "hwpt_pasid_attach",
            run: hwpt_pasid_attach,
        },
        Test {
            name: "hwpt_no_dirty_ops",
            run: hwpt_no_dirty_ops,
        },
    ]
}
