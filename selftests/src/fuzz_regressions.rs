// SPDX-License-Identifier: GPL-2.0

//! Cases where iommufd_rs once answered differently from C iommufd: found
//! by the differential fuzzer (`fuzz_*`) or by reading C against our code
//! (`audit_*`). Each asserts C's answer, runs against both modules, and
//! checks that nothing stays pinned afterwards.

use crate::check_eq;
use crate::dev::{vm_pin_kb, Iommufd, PageBuf, FIXED, READ, RW, WRITE};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::sys::{self, AnonPages};
use crate::uapi;
use std::os::fd::AsRawFd;

const PAGE: u64 = 4096;
const NEEDS_PIN: u32 = uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
const VFIO_RW: u32 = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// `make fuzz SEED=5550123` and `SEED=271828`: an access pin whose range
/// starts inside a page is `EINVAL` even where the area also lacks the
/// protection asked for; the protection (`EPERM`) is checked second.
fn access_pin_alignment_before_protection() -> TestResult {
    let buf = PageBuf::new(4);
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let pin0 = vm_pin_kb()?;
    // Write-only: an access that reads may not pin it.
    let iova = 0x10_0000;
    ok(
        "map",
        fd.map(ioas, buf.addr(), 4 * PAGE, WRITE | FIXED, iova),
    )?;
    let access = ok("create_access", fd.create_access(ioas, NEEDS_PIN))?;
    let mid = buf.ptr().wrapping_add(0x5ed);
    check_eq!(
        fd.access_pages(&access, iova + 0x5ed, PAGE, mid),
        Err(EINVAL)
    );
    check_eq!(fd.access_pages(&access, iova, PAGE, buf.ptr()), Err(EPERM));
    // Over two areas, the second page-aligned but unreadable: the first
    // piece's pin is dropped again.
    let buf2 = PageBuf::new(1);
    ok(
        "map",
        fd.map(ioas, buf2.addr(), PAGE, READ | FIXED, iova - PAGE),
    )?;
    let at = buf2.ptr();
    check_eq!(
        fd.access_pages(&access, iova - PAGE, 2 * PAGE, at),
        Err(EPERM)
    );
    check_eq!(fd.check_refs(buf.ptr(), 4 * PAGE, 0), 0);
    check_eq!(fd.check_refs(buf2.ptr(), PAGE, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    drop(access);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// A compat container of `kind` whose IOAS holds two areas, both pinned
/// whole by an access: `[0x1000, 0x7000)` and `[0x7000, 0x9000)`.
fn container_with_pinned_areas(
    kind: u32,
    buf: &PageBuf,
) -> Result<(Iommufd, u32, std::fs::File), String> {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    check_eq!(fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas), Ok(ioas));
    check_eq!(fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(kind)), Ok(0));
    check_eq!(fd.vfio_map(VFIO_RW, buf.addr(), 0x1000, 6 * PAGE), 0);
    let second = buf.addr() + 6 * PAGE;
    check_eq!(fd.vfio_map(VFIO_RW, second, 0x7000, 2 * PAGE), 0);
    let access = ok("create_access", fd.create_access(ioas, NEEDS_PIN))?;
    ok(
        "access_pages first",
        fd.access_pages(&access, 0x1000, 6 * PAGE, buf.ptr()),
    )?;
    let at = buf.ptr().wrapping_add(6 * PAGE as usize);
    ok(
        "access_pages second",
        fd.access_pages(&access, 0x7000, 2 * PAGE, at),
    )?;
    check_eq!(fd.check_refs(buf.ptr(), 8 * PAGE, 1), 0);
    Ok((fd, ioas, access))
}

/// `make fuzz SEED=90417`: a type1 (v1) unmap just past, or just before,
/// areas an access holds cuts nothing (its edges are area edges or no
/// area at all) and unmaps nothing: success, 0 bytes. A cut inside a
/// pinned area is `EINVAL`, with `size` left as written; an unmap of a
/// whole pinned area has the access drop its pins first.
fn compat_type1_unmap_beside_pinned_areas() -> TestResult {
    let buf = PageBuf::new(8);
    let pin0 = vm_pin_kb()?;
    let (fd, ioas, access) = container_with_pinned_areas(uapi::VFIO_TYPE1_IOMMU, &buf)?;
    check_eq!(vm_pin_kb()?, pin0 + 32);
    check_eq!(fd.vfio_unmap(0, 0x9000, PAGE), (0, 0));
    check_eq!(fd.vfio_unmap(0, 0, PAGE), (0, 0));
    check_eq!(fd.vfio_unmap(0, 0x9000, 0x10_0000), (0, 0));
    check_eq!(fd.vfio_unmap(0, 0x2000, PAGE), (EINVAL, PAGE));
    check_eq!(fd.vfio_unmap(0, 0x6000, 2 * PAGE), (EINVAL, 2 * PAGE));
    check_eq!(fd.check_refs(buf.ptr(), 8 * PAGE, 1), 0);
    // The second area whole: its pins go, the first area's stay.
    check_eq!(fd.vfio_unmap(0, 0x7000, 2 * PAGE), (0, 2 * PAGE));
    check_eq!(fd.check_refs(buf.ptr(), 6 * PAGE, 1), 0);
    let second = buf.ptr().wrapping_add(6 * PAGE as usize);
    check_eq!(fd.check_refs(second, 2 * PAGE, 0), 0);
    check_eq!(vm_pin_kb()?, pin0 + 24);
    // Unpinned, the first area splits again.
    check_eq!(fd.vfio_unmap(0, 0x1000, 6 * PAGE), (0, 6 * PAGE));
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.vfio_map(VFIO_RW, buf.addr(), 0x1000, 6 * PAGE), 0);
    check_eq!(fd.vfio_unmap(0, 0x2000, PAGE), (0, PAGE));
    check_eq!(
        fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (0, 5 * PAGE)
    );
    drop(access);
    check_eq!(fd.destroy(ioas), 0);
    check_eq!(vm_pin_kb()?, pin0);
    Ok(())
}

/// The same layout under type1v2, which never cuts: past the areas is
/// success with 0 bytes, inside one is `ENOENT`, and both whole areas go.
fn compat_type1v2_unmap_beside_pinned_areas() -> TestResult {
    let buf = PageBuf::new(8);
    let pin0 = vm_pin_kb()?;
    let (fd, ioas, access) = container_with_pinned_areas(uapi::VFIO_TYPE1v2_IOMMU, &buf)?;
    check_eq!(fd.vfio_unmap(0, 0x9000, PAGE), (0, 0));
    check_eq!(fd.vfio_unmap(0, 0x2000, PAGE), (ENOENT, 0));
    check_eq!(fd.vfio_unmap(0, 0x1000, 7 * PAGE), (ENOENT, 6 * PAGE));
    check_eq!(fd.check_refs(buf.ptr(), 6 * PAGE, 0), 0);
    let second = buf.ptr().wrapping_add(6 * PAGE as usize);
    check_eq!(fd.check_refs(second, 2 * PAGE, 1), 0);
    check_eq!(fd.vfio_unmap(0, 0x7000, 2 * PAGE), (0, 2 * PAGE));
    check_eq!(vm_pin_kb()?, pin0);
    drop(access);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// With a mock domain, type1 still cuts at page edges (large pages are
/// off), and the domain keeps mapping both halves; past the areas is 0
/// bytes.
fn compat_type1_split_with_domain() -> TestResult {
    let buf = PageBuf::new(8);
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    check_eq!(fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas), Ok(ioas));
    check_eq!(
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1_IOMMU)),
        Ok(0)
    );
    let (stdev, hwpt, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    let pin0 = vm_pin_kb()?;
    let base = uapi::MOCK_APERTURE_START as u64;
    check_eq!(fd.vfio_map(VFIO_RW, buf.addr(), base, 8 * PAGE), 0);
    check_eq!(vm_pin_kb()?, pin0 + 32);
    check_eq!(fd.vfio_unmap(0, base + 8 * PAGE, PAGE), (0, 0));
    check_eq!(fd.vfio_unmap(0, base + 3 * PAGE, PAGE), (0, PAGE));
    check_eq!(fd.md_check_map(hwpt, base, 3 * PAGE, buf.ptr()), 0);
    let rest = buf.ptr().wrapping_add(4 * PAGE as usize);
    check_eq!(fd.md_check_map(hwpt, base + 4 * PAGE, 4 * PAGE, rest), 0);
    check_eq!(
        fd.md_check_map(hwpt, base + 3 * PAGE, PAGE, buf.ptr()),
        EINVAL
    );
    let third = buf.ptr().wrapping_add(3 * PAGE as usize);
    check_eq!(fd.check_refs(third, PAGE, 0), 0);
    check_eq!(vm_pin_kb()?, pin0 + 28);
    check_eq!(
        fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (0, 7 * PAGE)
    );
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// `make fuzz SEED=200000`: memory "mapped" from the last two pages of the
/// address space (nothing is pinned at map time). A slow-path read over
/// both pins them with one call, which wraps: `EOVERFLOW`; within one page
/// it is `EFAULT`, as is the plain user copy.
fn access_rw_slow_run_wraps() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let iova = 0x10_0000;
    let va = u64::MAX - PAGE;
    check_eq!(fd.map(ioas, va, PAGE, RW | FIXED, iova), Ok(iova));
    let access = ok("create_access", fd.create_access(ioas, 0))?;
    let slow = uapi::MOCK_ACCESS_RW_SLOW_PATH;
    let mut buf = vec![0u8; PAGE as usize];
    check_eq!(fd.access_rw(&access, iova, &mut buf, slow), EOVERFLOW);
    check_eq!(fd.access_rw(&access, iova, &mut buf[..1], slow), EFAULT);
    check_eq!(fd.access_rw(&access, iova, &mut buf, 0), EFAULT);
    drop(access);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// An item that ends at the top of the IOVA space is dropped when its
/// area is unmapped or its access closed (its last IOVA is `u64::MAX`).
fn access_item_at_top_of_iova_space() -> TestResult {
    let buf = PageBuf::new(1);
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let pin0 = vm_pin_kb()?;
    let top = u64::MAX - PAGE + 1;
    let access = ok("create_access", fd.create_access(ioas, NEEDS_PIN))?;
    for close in [false, true] {
        ok("map", fd.map(ioas, buf.addr(), PAGE, RW | FIXED, top))?;
        ok(
            "access_pages",
            fd.access_pages(&access, top, PAGE, buf.ptr()),
        )?;
        check_eq!(fd.check_refs(buf.ptr(), PAGE, 1), 0);
        if close {
            break;
        }
        check_eq!(fd.unmap(ioas, top, PAGE), Ok(PAGE));
        check_eq!(fd.check_refs(buf.ptr(), PAGE, 0), 0);
    }
    drop(access);
    check_eq!(fd.check_refs(buf.ptr(), PAGE, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.unmap(ioas, top, PAGE), Ok(PAGE));
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// Memory mapped from a file offset past `i64::MAX` maps, but every pin of
/// it is refused by the file (`EINVAL`), as it is in C.
fn map_file_offset_past_loff_t() -> TestResult {
    let memfd = sys::memfd(4 * PAGE).map_err(|e| format!("memfd: {e}"))?;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    // Inside the mock domain's aperture.
    let iova = uapi::MOCK_APERTURE_START as u64;
    for start in [1u64 << 63, u64::MAX - PAGE + 1, 4 * PAGE] {
        let raw = memfd.as_raw_fd();
        check_eq!(
            fd.map_file(ioas, raw, start, PAGE, RW | FIXED, iova),
            Ok(iova)
        );
        let access = ok("create_access", fd.create_access(ioas, NEEDS_PIN))?;
        let null = std::ptr::null();
        check_eq!(fd.access_pages(&access, iova, PAGE, null), Err(EINVAL));
        let mut byte = [0u8; 1];
        check_eq!(fd.access_rw(&access, iova, &mut byte, 0), EINVAL);
        drop(access);
        check_eq!(fd.mock_domain(ioas).map(|_| ()), Err(EINVAL));
        check_eq!(fd.unmap(ioas, iova, PAGE), Ok(PAGE));
    }
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// On the test slow path, a read that fits in one page pins that page
/// afresh from the address space, as it is now: after `MADV_DONTNEED` it
/// reads the new zero page, not the page an access still holds.
fn access_rw_one_page_reads_address_space() -> TestResult {
    let Some(va) = sys::mmap_anon(2 << 20, AnonPages::Small) else {
        return Err("mmap".into());
    };
    // SAFETY: Our own fresh writable mapping, one page of it.
    unsafe { std::ptr::write_bytes(va as *mut u8, 0x5a, PAGE as usize) };
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let pin0 = vm_pin_kb()?;
    let iova = 0x10_0000;
    ok("map", fd.map(ioas, va, 2 * PAGE, RW | FIXED, iova))?;
    let access = ok("create_access", fd.create_access(ioas, NEEDS_PIN))?;
    let item = ok(
        "access_pages",
        fd.access_pages(&access, iova, PAGE, va as *const u8),
    )?;
    sys::madvise_dontneed(va, PAGE).map_err(|e| format!("madvise: {e}"))?;
    let slow = uapi::MOCK_ACCESS_RW_SLOW_PATH;
    let mut buf = [0xffu8; 64];
    check_eq!(fd.access_rw(&access, iova + 8, &mut buf, slow), 0);
    check_eq!(buf, [0u8; 64]);
    buf.fill(0xff);
    check_eq!(fd.access_rw(&access, iova + 8, &mut buf, 0), 0);
    check_eq!(buf, [0u8; 64]);
    check_eq!(fd.destroy_access_pages(&access, item), 0);
    drop(access);
    check_eq!(fd.unmap(ioas, iova, 2 * PAGE), Ok(2 * PAGE));
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.destroy(ioas), 0);
    sys::munmap_anon(va, 2 << 20);
    Ok(())
}

/// An access keeps as many items as it is asked for: more than a kmalloc'd
/// array of them could hold (C keeps a list).
fn access_items_unbounded() -> TestResult {
    const ITEMS: u32 = 140_000;
    let buf = PageBuf::new(1);
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let iova = 0x10_0000;
    ok("map", fd.map(ioas, buf.addr(), PAGE, RW | FIXED, iova))?;
    let access = ok("create_access", fd.create_access(ioas, NEEDS_PIN))?;
    let null = std::ptr::null();
    for i in 0..ITEMS {
        check_eq!(fd.access_pages(&access, iova, PAGE, null), Ok(i));
    }
    check_eq!(fd.check_refs(buf.ptr(), PAGE, 1), 0);
    drop(access);
    check_eq!(fd.check_refs(buf.ptr(), PAGE, 0), 0);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// A COPY of two source areas, the first shorter than a page, gives an
/// area that starts mid-page in IOVA but page aligned in its memory. A pin
/// there checks one user page per page of the IOVA range (C's count), so a
/// page the pin did not return is a mismatch (`EBADE`).
fn access_pages_on_area_mid_page() -> TestResult {
    let (a, b) = (PageBuf::new(1), PageBuf::new(2));
    let fd = Iommufd::open()?;
    let (src, dst) = (ok("alloc", fd.ioas_alloc())?, ok("alloc", fd.ioas_alloc())?);
    let s = 0x10_0000;
    ok("map a", fd.map(src, a.addr(), 0x800, RW | FIXED, s))?;
    ok(
        "map b",
        fd.map(src, b.addr(), 0x1800, RW | FIXED, s + 0x800),
    )?;
    let access = ok("create_access", fd.create_access(dst, NEEDS_PIN))?;
    let d = 0x20_0000;
    check_eq!(fd.copy(dst, src, s, 0x2000, RW | FIXED, d), Ok(d));
    let mid = b.ptr().wrapping_add(0x800);
    check_eq!(fd.access_pages(&access, d + 0x800, PAGE, mid), Err(EBADE));
    check_eq!(fd.check_refs(b.ptr(), 2 * PAGE, 0), 0);
    drop(access);
    check_eq!(fd.destroy(dst), 0);
    check_eq!(fd.destroy(src), 0);
    Ok(())
}

/// The fuzz regression tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "fuzz_access_pin_alignment_before_protection",
            run: access_pin_alignment_before_protection,
        },
        Test {
            name: "fuzz_compat_type1_unmap_beside_pinned_areas",
            run: compat_type1_unmap_beside_pinned_areas,
        },
        Test {
            name: "fuzz_compat_type1v2_unmap_beside_pinned_areas",
            run: compat_type1v2_unmap_beside_pinned_areas,
        },
        Test {
            name: "fuzz_compat_type1_split_with_domain",
            run: compat_type1_split_with_domain,
        },
        Test {
            name: "fuzz_access_rw_slow_run_wraps",
            run: access_rw_slow_run_wraps,
        },
        Test {
            name: "audit_access_item_at_top_of_iova_space",
            run: access_item_at_top_of_iova_space,
        },
        Test {
            name: "audit_map_file_offset_past_loff_t",
            run: map_file_offset_past_loff_t,
        },
        Test {
            name: "audit_access_rw_one_page_reads_address_space",
            run: access_rw_one_page_reads_address_space,
        },
        Test {
            name: "audit_access_items_unbounded",
            run: access_items_unbounded,
        },
        Test {
            name: "audit_access_pages_on_area_mid_page",
            run: access_pages_on_area_mid_page,
        },
    ]
}
