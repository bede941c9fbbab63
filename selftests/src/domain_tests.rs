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

/// The tests of this file.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "domain_pins_once",
            run: domain_pins_once,
        },
        Test {
            name: "domain_map_pins_now",
            run: domain_map_pins_now,
        },
        Test {
            name: "access_shares_domain_pins",
            run: access_shares_domain_pins,
        },
    ]
}
