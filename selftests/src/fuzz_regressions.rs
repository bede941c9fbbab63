// SPDX-License-Identifier: GPL-2.0

//! Cases where the differential fuzzer once saw iommufd_rs answer
//! differently from C iommufd. Each asserts C's answer, runs against both
//! modules, and checks that nothing stays pinned afterwards.

use crate::check_eq;
use crate::dev::{vm_pin_kb, Iommufd, PageBuf, FIXED, READ, WRITE};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;

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
    ]
}
