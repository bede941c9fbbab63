// SPDX-License-Identifier: GPL-2.0

//! Pinning, mock domains and in-kernel accesses: what is pinned when, that
//! each page is pinned once however many users share it, that the charge
//! (`VmPin`) follows, and that everything is given back.

use crate::dev::{vm_pin_kb, Iommufd, PageBuf};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;
use crate::{check, check_eq};

const PAGE: u64 = 4096;
const APERTURE: u64 = uapi::MOCK_APERTURE_START as u64;
const RW_FIXED: u32 = uapi::IOMMU_IOAS_MAP_READABLE
    | uapi::IOMMU_IOAS_MAP_WRITEABLE
    | uapi::IOMMU_IOAS_MAP_FIXED_IOVA;

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// A domain pins every page once: COPY and a second device add no pin;
/// the last device going unpins and gives the charge back.
fn domain_pins_once() -> TestResult {
    let buf = PageBuf::new(4);
    let len = 4 * PAGE;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(ioas, buf.addr(), len, RW_FIXED, APERTURE))?;
    // No domain: nothing is pinned yet.
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    let (stdev, hwpt, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(vm_pin_kb()?, pin0 + 16);
    check_eq!(fd.md_check_map(hwpt, APERTURE, len, buf.ptr()), 0);
    // A copy shares the pages: mapped, not pinned again.
    let copy = ok(
        "copy",
        fd.copy(ioas, ioas, APERTURE, len, RW_FIXED, APERTURE + len),
    )?;
    check_eq!(copy, APERTURE + len);
    check_eq!(fd.md_check_map(hwpt, copy, len, buf.ptr()), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    // A second device shares the automatic HWPT.
    let (stdev2, hwpt2, _) = ok("mock_domain 2", fd.mock_domain(ioas))?;
    check_eq!(hwpt2, hwpt);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(vm_pin_kb()?, pin0 + 16);
    // Objects in use cannot be destroyed.
    check_eq!(fd.destroy(ioas), EBUSY);
    check_eq!(fd.destroy(hwpt), EBUSY);
    check_eq!(fd.destroy(idev), EBUSY);
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(fd.destroy(stdev2), 0);
    // The last device took the HWPT, the domain and the pins with it.
    check_eq!(fd.destroy(hwpt), ENOENT);
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// Memory mapped with no domain has no pages object until something needs
/// one: a copy to another IOAS makes it, and both IOASes then share it, so
/// their domains pin each page once. The same memory mapped again is an
/// object of its own, pinned and charged again.
fn pending_pages_made_once() -> TestResult {
    let buf = PageBuf::new(4);
    let len = 4 * PAGE;
    let fd = Iommufd::open()?;
    let a = ok("alloc", fd.ioas_alloc())?;
    let b = ok("alloc b", fd.ioas_alloc())?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(a, buf.addr(), len, RW_FIXED, APERTURE))?;
    check_eq!(
        fd.copy(b, a, APERTURE, len, RW_FIXED, APERTURE),
        Ok(APERTURE)
    );
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    let (stdev_a, hwpt_a, _) = ok("mock_domain a", fd.mock_domain(a))?;
    let (stdev_b, hwpt_b, _) = ok("mock_domain b", fd.mock_domain(b))?;
    check!(hwpt_a != hwpt_b);
    check_eq!(fd.md_check_map(hwpt_a, APERTURE, len, buf.ptr()), 0);
    check_eq!(fd.md_check_map(hwpt_b, APERTURE, len, buf.ptr()), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(vm_pin_kb()?, pin0 + 16);
    ok(
        "map again",
        fd.map(b, buf.addr(), len, RW_FIXED, APERTURE + len),
    )?;
    check_eq!(fd.md_check_map(hwpt_b, APERTURE + len, len, buf.ptr()), 0);
    check_eq!(vm_pin_kb()?, pin0 + 32);
    check_eq!(fd.unmap(b, APERTURE + len, len), Ok(len));
    check_eq!(vm_pin_kb()?, pin0 + 16);
    // The shared object keeps its pins while either domain maps it.
    check_eq!(fd.destroy(stdev_a), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(fd.destroy(stdev_b), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.destroy(a), 0);
    check_eq!(fd.destroy(b), 0);
    Ok(())
}

/// A map into an IOAS with a domain pins at once; unmap unpins; a bad
/// address fails with EFAULT and leaves nothing behind.
fn domain_map_pins_now() -> TestResult {
    let buf = PageBuf::new(4);
    let len = 4 * PAGE;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (_, hwpt, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(ioas, buf.addr(), len, RW_FIXED, APERTURE))?;
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(vm_pin_kb()?, pin0 + 16);
    // Outside the aperture: reserved by the domain.
    check_eq!(fd.map(ioas, buf.addr(), len, RW_FIXED, 0), Err(EINVAL));
    // Memory that is not there.
    check_eq!(
        fd.map(ioas, 0x1000, len, RW_FIXED, APERTURE + len),
        Err(EFAULT)
    );
    check_eq!(
        fd.md_check_map(hwpt, APERTURE + len, PAGE, buf.ptr()),
        EINVAL
    );
    check_eq!(vm_pin_kb()?, pin0 + 16);
    check_eq!(fd.unmap(ioas, APERTURE, len), Ok(len));
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    Ok(())
}

/// An access pinning pages the domain already pins adds no pin; the pages
/// stay pinned for the access after the domain goes, until it closes.
fn access_shares_domain_pins() -> TestResult {
    let buf = PageBuf::new(4);
    let len = 4 * PAGE;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (stdev, _, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(ioas, buf.addr(), len, RW_FIXED, APERTURE))?;
    let flags = uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
    let access = ok("create_access", fd.create_access(ioas, flags))?;
    check_eq!(
        ok(
            "access_pages",
            fd.access_pages(&access, APERTURE, len, buf.ptr())
        )?,
        0
    );
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(vm_pin_kb()?, pin0 + 16);
    // The IOAS is busy while the access is attached.
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(fd.destroy(ioas), EBUSY);
    drop(access);
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    check!(fd.destroy(ioas) == 0);
    Ok(())
}

/// Domains and accesses share pins both ways. An access pinning part of
/// a domain's pages keeps just that part pinned after the domain goes; a
/// domain attached over an access's pins adds none, and they stay until
/// both are gone.
fn access_and_domain_hand_over_pins() -> TestResult {
    let buf = PageBuf::new(8);
    let len = 8 * PAGE;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(ioas, buf.addr(), len, RW_FIXED, APERTURE))?;
    let (stdev, hwpt, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    check_eq!(vm_pin_kb()?, pin0 + 32);
    let flags = uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
    let access = ok("create_access", fd.create_access(ioas, flags))?;
    // The access pins pages 2 and 3 of the eight the domain pins.
    let at = buf.ptr().wrapping_add(2 * PAGE as usize);
    let item = ok(
        "access_pages",
        fd.access_pages(&access, APERTURE + 2 * PAGE, 2 * PAGE, at),
    )?;
    check_eq!(vm_pin_kb()?, pin0 + 32);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(vm_pin_kb()?, pin0 + 8);
    check_eq!(fd.check_refs(at, 2 * PAGE, 1), 0);
    check_eq!(fd.check_refs(buf.ptr(), 2 * PAGE, 0), 0);
    let after = buf.ptr().wrapping_add(4 * PAGE as usize);
    check_eq!(fd.check_refs(after, 4 * PAGE, 0), 0);
    // A new domain maps every page, pinning only the six without a pin.
    let (stdev, hwpt2, _) = ok("mock_domain again", fd.mock_domain(ioas))?;
    check_eq!(vm_pin_kb()?, pin0 + 32);
    check_eq!(fd.md_check_map(hwpt2, APERTURE, len, buf.ptr()), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(fd.destroy_access_pages(&access, item), 0);
    check_eq!(vm_pin_kb()?, pin0 + 32);
    check_eq!(fd.check_refs(buf.ptr(), len, 1), 0);
    check_eq!(fd.unmap(ioas, APERTURE, len), Ok(len));
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(fd.md_check_map(hwpt2, APERTURE, PAGE, buf.ptr()), EINVAL);
    let _ = hwpt;
    drop(access);
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// With a mock domain (2 KiB IO pages) areas may start in the middle of
/// a page. A copy of such a piece shares its two pages with the original;
/// they stay pinned and mapped until both areas are gone.
fn copy_mid_page_shares_pages() -> TestResult {
    let buf = PageBuf::new(4);
    let len = 4 * PAGE;
    let half = PAGE / 2;
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (stdev, hwpt, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(ioas, buf.addr(), len, RW_FIXED, APERTURE))?;
    check_eq!(vm_pin_kb()?, pin0 + 16);
    // Copy bytes [half, half + PAGE): pages 0 and 1.
    let dst = APERTURE + 0x10_0000 + half;
    let from = buf.ptr().wrapping_add(half as usize);
    check_eq!(
        fd.copy(ioas, ioas, APERTURE + half, PAGE, RW_FIXED, dst),
        Ok(dst)
    );
    check_eq!(fd.md_check_map(hwpt, dst, PAGE, from), 0);
    check_eq!(vm_pin_kb()?, pin0 + 16);
    // The original goes: pages 2 and 3 are unpinned, 0 and 1 stay.
    check_eq!(fd.unmap(ioas, APERTURE, len), Ok(len));
    check_eq!(vm_pin_kb()?, pin0 + 8);
    check_eq!(fd.check_refs(buf.ptr(), 2 * PAGE, 1), 0);
    let page2 = buf.ptr().wrapping_add(2 * PAGE as usize);
    check_eq!(fd.check_refs(page2, 2 * PAGE, 0), 0);
    check_eq!(fd.md_check_map(hwpt, dst, PAGE, from), 0);
    check_eq!(fd.md_check_map(hwpt, APERTURE, PAGE, buf.ptr()), EINVAL);
    check_eq!(fd.unmap(ioas, dst, PAGE), Ok(PAGE));
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(fd.destroy(stdev), 0);
    Ok(())
}

/// iommufd_rs's PIN_FLOOR test op (`make bench`'s pinning floor) checks
/// its input, pins and unpins, and leaves no pin behind; C does not know
/// it (`EOPNOTSUPP`).
fn pin_floor_leaves_no_pin() -> TestResult {
    let fd = Iommufd::open()?;
    let buf = PageBuf::new(4);
    let len = 4 * PAGE;
    if crate::compat_tests::c_iommufd() {
        check_eq!(fd.pin_floor(buf.addr(), len), EOPNOTSUPP);
        return Err("SKIP: PIN_FLOOR is iommufd_rs's own test op".into());
    }
    let pin0 = vm_pin_kb()?;
    check_eq!(fd.pin_floor(buf.addr(), 0), EINVAL);
    check_eq!(fd.pin_floor(buf.addr() + 1, len), EINVAL);
    check_eq!(fd.pin_floor(buf.addr(), len - 1), EINVAL);
    check_eq!(fd.pin_floor(0x1000, PAGE), EFAULT);
    check_eq!(fd.pin_floor(buf.addr(), len), 0);
    check_eq!(fd.check_refs(buf.ptr(), len, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    Ok(())
}

/// A domain may map a run of consecutive PFNs with large IO pages and
/// unmaps those whole: unmapping huge pages in batches smaller than a
/// page (a 3-page PFN buffer) must still unpin every page. 8 MiB of THP
/// (4 KiB pages where there is none, which tests less).
fn large_ptes_unpin_in_small_batches() -> TestResult {
    const LEN: u64 = 8 << 20;
    let Some(va) = crate::sys::mmap_anon(LEN, crate::sys::AnonPages::Thp) else {
        return Err("mmap failed".into());
    };
    for at in (0..LEN).step_by(PAGE as usize) {
        // SAFETY: Inside the mapping just made.
        unsafe { ((va + at) as *mut u8).write_volatile(1) };
    }
    let fd = Iommufd::open()?;
    let ioas = ok("alloc", fd.ioas_alloc())?;
    let (_, hwpt, _) = ok("mock_domain", fd.mock_domain(ioas))?;
    let pin0 = vm_pin_kb()?;
    ok("map", fd.map(ioas, va, LEN, RW_FIXED, APERTURE))?;
    check_eq!(fd.md_check_map(hwpt, APERTURE, LEN, va as *const u8), 0);
    check_eq!(fd.check_refs(va as *const u8, LEN, 1), 0);
    check_eq!(fd.set_temp_memory_limit(3 * 8), 0);
    let unmapped = fd.unmap(ioas, APERTURE, LEN);
    check_eq!(fd.set_temp_memory_limit(65536), 0);
    check_eq!(unmapped, Ok(LEN));
    check_eq!(fd.check_refs(va as *const u8, LEN, 0), 0);
    check_eq!(vm_pin_kb()?, pin0);
    drop(fd);
    crate::sys::munmap_anon(va, LEN);
    Ok(())
}

/// The tests of this file.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "domain_pins_once",
            run: domain_pins_once,
        },
        Test {
            name: "pending_pages_made_once",
            run: pending_pages_made_once,
        },
        Test {
            name: "domain_map_pins_now",
            run: domain_map_pins_now,
        },
        Test {
            name: "access_shares_domain_pins",
            run: access_shares_domain_pins,
        },
        Test {
            name: "access_and_domain_hand_over_pins",
            run: access_and_domain_hand_over_pins,
        },
        Test {
            name: "copy_mid_page_shares_pages",
            run: copy_mid_page_shares_pages,
        },
        Test {
            name: "pin_floor_leaves_no_pin",
            run: pin_floor_leaves_no_pin,
        },
        Test {
            name: "large_ptes_unpin_in_small_batches",
            run: large_ptes_unpin_in_small_batches,
        },
    ]
}
