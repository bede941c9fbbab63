// SPDX-License-Identifier: GPL-2.0

//! The VFIO container ioctls, replayed the way a legacy client (QEMU's
//! container backend) issues them, with no domain attached. Both C iommufd
//! and iommufd_rs must answer exactly as written, but for the MIGRATION
//! capability of GET_INFO, which only iommufd_rs has (its dirty tracking:
//! `compat_dirty_tests`).

use crate::dev::{vm_pin_kb, Iommufd, PageBuf};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;
use crate::{check, check_eq};

const PAGE: u64 = 4096;
const VA: u64 = 0x7f00_0001_0000;
const RW: u32 = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
const GET: u32 = uapi::IOMMU_VFIO_IOAS_GET;
const SET: u32 = uapi::IOMMU_VFIO_IOAS_SET;
const CLEAR: u32 = uapi::IOMMU_VFIO_IOAS_CLEAR;

/// Whether the module under test is C iommufd (`IOMMUFD_TEST_MODULE`).
pub(crate) fn c_iommufd() -> bool {
    std::env::var("IOMMUFD_TEST_MODULE").is_ok_and(|m| m == "iommufd")
}

/// GET_INFO's size with one IOVA range: C's chain (DMA_AVAIL, IOVA_RANGE)
/// is 72 bytes; iommufd_rs puts type1's MIGRATION capability (32) first.
fn info_size_one_range() -> usize {
    if c_iommufd() {
        72
    } else {
        104
    }
}

/// The node a legacy client opens: `IOMMUFD_COMPAT_NODE`, else /dev/iommu.
pub(crate) fn open_container() -> Result<Iommufd, String> {
    match std::env::var("IOMMUFD_COMPAT_NODE") {
        Ok(path) => Iommufd::open_path(&path),
        Err(_) => Iommufd::open(),
    }
}

/// An open fd with an IOAS set as the compat IOAS and `SET_IOMMU(kind)`.
pub(crate) fn container(kind: u32) -> Result<(Iommufd, u32), String> {
    let fd = open_container()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.vfio_ioas(SET, ioas), Ok(ioas));
    check_eq!(fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(kind)), Ok(0));
    Ok((fd, ioas))
}

pub(crate) fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}

pub(crate) fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from(u32_at(buf, off)) | (u64::from(u32_at(buf, off + 4)) << 32)
}

fn probe_and_set_iommu() -> TestResult {
    let fd = open_container()?;
    check_eq!(fd.vfio_value(uapi::VFIO_GET_API_VERSION, 0), Ok(0));
    for ext in [
        uapi::VFIO_TYPE1_IOMMU,
        uapi::VFIO_TYPE1v2_IOMMU,
        uapi::VFIO_UNMAP_ALL,
    ] {
        check_eq!(
            fd.vfio_value(uapi::VFIO_CHECK_EXTENSION, u64::from(ext)),
            Ok(1)
        );
    }
    for ext in [0, 2, 5, 6, 7, 10, 11, 1 << 32] {
        check_eq!(fd.vfio_value(uapi::VFIO_CHECK_EXTENSION, ext), Ok(0));
    }
    // No compat IOAS yet.
    check_eq!(
        fd.vfio_value(
            uapi::VFIO_CHECK_EXTENSION,
            u64::from(uapi::VFIO_DMA_CC_IOMMU)
        ),
        Err(ENODEV)
    );
    check_eq!(
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU)),
        Err(ENODEV)
    );
    check_eq!(fd.vfio_ioas(GET, 0), Err(ENODEV));
    check_eq!(fd.vfio_ioas(SET, 1), Err(ENOENT));
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.vfio_ioas(SET, ioas), Ok(ioas));
    check_eq!(fd.vfio_ioas(GET, 0), Ok(ioas));
    check_eq!(fd.vfio_ioas(7, 0), Err(EOPNOTSUPP));
    check_eq!(
        fd.vfio_value(
            uapi::VFIO_CHECK_EXTENSION,
            u64::from(uapi::VFIO_DMA_CC_IOMMU)
        ),
        Ok(1)
    );
    check_eq!(fd.vfio_value(uapi::VFIO_SET_IOMMU, 2), Err(EINVAL));
    check_eq!(
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU)),
        Ok(0)
    );
    // Container ioctls this layer does not serve.
    check_eq!(fd.vfio_value(uapi::VFIO_IOMMU_ENABLE, 0), Err(ENOTTY));
    // Destroying the compat IOAS clears it; CLEAR clears it too.
    check_eq!(fd.destroy(ioas), 0);
    check_eq!(fd.vfio_ioas(GET, 0), Err(ENODEV));
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.vfio_ioas(SET, ioas), Ok(ioas));
    check_eq!(fd.vfio_ioas(CLEAR, 0), Ok(0));
    check_eq!(fd.vfio_ioas(GET, 0), Err(ENODEV));
    Ok(())
}

fn get_info_twice_and_walk_caps() -> TestResult {
    let (fd, _) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    // First call with only the fixed part: learn the size needed.
    let (rc, buf) = fd.vfio_get_info(16, 16);
    check_eq!(rc, 0);
    let need = u32_at(&buf, 0) as usize;
    check_eq!(
        u32_at(&buf, 4),
        uapi::VFIO_IOMMU_INFO_PGSIZES | uapi::VFIO_IOMMU_INFO_CAPS
    );
    check_eq!(u64_at(&buf, 8), !(PAGE - 1));
    check_eq!(need, info_size_one_range());
    // Too small for the chain: no cap_offset, nothing written past argsz.
    let (rc, buf) = fd.vfio_get_info(40, 56);
    check_eq!(rc, 0);
    check_eq!(u32_at(&buf, 16), 0);
    check!(buf[40..].iter().all(|&b| b == 0xaa));
    // Second call with what it asked for: walk the chain.
    let (rc, buf) = fd.vfio_get_info(need as u32, need);
    check_eq!(rc, 0);
    let mut off = u32_at(&buf, 16) as usize;
    check_eq!(off, 24);
    let mut seen = Vec::new();
    while off != 0 {
        check!(off % 8 == 0 && off + 8 <= need);
        let id = u32_at(&buf, off) & 0xffff;
        seen.push(id);
        if id == uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL {
            check_eq!(u32_at(&buf, off + 8), u32::MAX);
        }
        if id == uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            check_eq!(u32_at(&buf, off + 8), 1);
            check_eq!(
                (u64_at(&buf, off + 16), u64_at(&buf, off + 24)),
                (0, u64::MAX)
            );
        }
        off = u32_at(&buf, off + 4) as usize;
    }
    let mut want = vec![
        uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
        uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    ];
    if !c_iommufd() {
        want.insert(0, uapi::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
    }
    check_eq!(seen, want);
    check_eq!(fd.vfio_get_info(15, 16).0, EINVAL);
    Ok(())
}

fn map_many_then_overlap() -> TestResult {
    let (fd, _) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    for i in 0..64 {
        check_eq!(
            fd.vfio_map(RW, VA + i * PAGE, 0x10_0000 + i * PAGE, PAGE),
            0
        );
    }
    check_eq!(fd.vfio_map(RW, VA, 0x10_0000 + 10 * PAGE, PAGE), EEXIST);
    check_eq!(fd.vfio_map(RW, VA, 0x10_0000 - PAGE, 2 * PAGE), EEXIST);
    check_eq!(fd.vfio_map(RW | 4, VA, 0x20_0000, PAGE), EINVAL);
    check_eq!(fd.vfio_map(RW, VA, 0x20_0000, 0), EINVAL);
    check_eq!(
        fd.vfio_map(RW, u64::MAX - PAGE, 0x20_0000, 2 * PAGE),
        EOVERFLOW
    );
    // Flags 0 is accepted, as in C.
    check_eq!(fd.vfio_map(0, VA, 0x30_0000, PAGE), 0);
    check_eq!(
        fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (0, 65 * PAGE)
    );
    Ok(())
}

fn type1v2_partial_unmap_fails() -> TestResult {
    let (fd, _) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    check_eq!(fd.vfio_map(RW, VA, 0x10_0000, 4 * PAGE), 0);
    check_eq!(fd.vfio_unmap(0, 0x10_1000, PAGE), (ENOENT, 0));
    check_eq!(fd.vfio_unmap(0, 0x10_0000, 2 * PAGE), (ENOENT, 0));
    // Empty is success; the whole mapping goes at once.
    check_eq!(fd.vfio_unmap(0, 0x40_0000, PAGE), (0, 0));
    check_eq!(fd.vfio_unmap(0, 0x10_0000, 4 * PAGE), (0, 4 * PAGE));
    // Bad flags and UNMAP_ALL with a range.
    check_eq!(fd.vfio_unmap(1, 0, PAGE), (EINVAL, PAGE));
    check_eq!(
        fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0x1000, 0),
        (EINVAL, 0)
    );
    Ok(())
}

fn type1_partial_unmap_splits() -> TestResult {
    let (fd, ioas) = container(uapi::VFIO_TYPE1_IOMMU)?;
    let huge = uapi::IOMMU_OPTION_HUGE_PAGES;
    check_eq!(fd.option(huge, uapi::IOMMU_OPTION_OP_GET, ioas, 0), Ok(0));
    check_eq!(fd.vfio_map(RW, VA, 0x10_0000, 8 * PAGE), 0);
    // Any page-aligned piece can go, in any order.
    check_eq!(fd.vfio_unmap(0, 0x10_3000, PAGE), (0, PAGE));
    check_eq!(fd.vfio_unmap(0, 0x10_0000, PAGE), (0, PAGE));
    check_eq!(fd.vfio_unmap(0, 0x10_6000, 2 * PAGE), (0, 2 * PAGE));
    // Unaligned cuts are refused before anything is unmapped, and `size`
    // is left as the caller wrote it.
    check_eq!(fd.vfio_unmap(0, 0x10_1800, PAGE), (EINVAL, PAGE));
    // A range over a hole counts only mapped bytes.
    check_eq!(fd.vfio_unmap(0, 0x10_0000, 8 * PAGE), (0, 4 * PAGE));
    check_eq!(fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0, 0), (0, 0));
    Ok(())
}

fn node_account_mode() -> TestResult {
    // Opened through /dev/vfio/vfio, pins are charged to the process
    // (RLIMIT_MODE 1), as VFIO type1 does; through /dev/iommu, to the user.
    let fd = open_container()?;
    let want = u64::from(std::env::var("IOMMUFD_COMPAT_EXPECT_MM").is_ok_and(|v| v == "1"));
    let mode = uapi::IOMMU_OPTION_RLIMIT_MODE;
    check_eq!(fd.option(mode, uapi::IOMMU_OPTION_OP_GET, 0, 0), Ok(want));
    Ok(())
}

/// The mock domain's aperture start: the IOVA the domain tests map at.
const APERTURE: u64 = uapi::MOCK_APERTURE_START as u64;
/// The mock domain's aperture end (inclusive).
const APERTURE_LAST: u64 = uapi::MOCK_APERTURE_LAST as u64;

/// What a mock domain sees of `pages` pages at `first` (page index from
/// the start of `buf` and of the aperture): each mapped page maps `buf`,
/// each unmapped one is absent, and each page carries `mapped` pins.
fn check_domain(
    fd: &Iommufd,
    hwpt: u32,
    buf: &PageBuf,
    first: u64,
    pages: u64,
    mapped: bool,
) -> TestResult {
    for i in first..first + pages {
        // SAFETY: `i` is inside `buf`; only the address is used.
        let ptr = unsafe { buf.ptr().add((i * PAGE) as usize) };
        let want = if mapped { 0 } else { EINVAL };
        check_eq!(
            (i, fd.md_check_map(hwpt, APERTURE + i * PAGE, PAGE, ptr)),
            (i, want)
        );
        check_eq!((i, fd.check_refs(ptr, PAGE, u32::from(mapped))), (i, 0));
    }
    Ok(())
}

/// A legacy client's session against a mock domain, step by step, with
/// what the domain maps and what is pinned checked after every step.
fn legacy_replay(kind: u32) -> TestResult {
    const MAPS: u64 = 32;
    let buf = PageBuf::new((2 * MAPS) as usize);
    let pin0 = vm_pin_kb()?;
    let fd = open_container()?;
    check_eq!(fd.vfio_value(uapi::VFIO_GET_API_VERSION, 0), Ok(0));
    for ext in [uapi::VFIO_TYPE1_IOMMU, uapi::VFIO_TYPE1v2_IOMMU] {
        check_eq!(
            fd.vfio_value(uapi::VFIO_CHECK_EXTENSION, u64::from(ext)),
            Ok(1)
        );
    }
    // The group attach: an IOAS becomes the compat IOAS, a device joins.
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.vfio_ioas(SET, ioas), Ok(ioas));
    let (stdev, hwpt, _) = fd
        .mock_domain(ioas)
        .map_err(|e| format!("mock_domain: {e}"))?;
    check_eq!(fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(kind)), Ok(0));
    // A plain mock domain does not enforce cache coherency.
    check_eq!(
        fd.vfio_value(
            uapi::VFIO_CHECK_EXTENSION,
            u64::from(uapi::VFIO_DMA_CC_IOMMU)
        ),
        Ok(0)
    );
    // GET_INFO: learn the size, then read the chain. The domain's IO page
    // sizes, folded to the CPU page, and its aperture as the one range.
    let (rc, short) = fd.vfio_get_info(16, 16);
    check_eq!(rc, 0);
    let need = u32_at(&short, 0) as usize;
    check_eq!(need, info_size_one_range());
    check_eq!(u64_at(&short, 8), 0x1f_ffff_f000);
    let (rc, info) = fd.vfio_get_info(need as u32, need);
    check_eq!(rc, 0);
    let mut off = u32_at(&info, 16) as usize;
    let mut ranges = Vec::new();
    while off != 0 {
        check!(off % 8 == 0 && off + 8 <= need);
        if u32_at(&info, off) & 0xffff == uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            for r in 0..u32_at(&info, off + 8) as usize {
                let at = off + 16 + 16 * r;
                ranges.push((u64_at(&info, at), u64_at(&info, at + 8)));
            }
        }
        off = u32_at(&info, off + 4) as usize;
    }
    check_eq!(ranges, vec![(APERTURE, APERTURE_LAST)]);
    check_domain(&fd, hwpt, &buf, 0, 2 * MAPS, false)?;
    // Many maps of two pages each, back to back in IOVA.
    for i in 0..MAPS {
        let at = 2 * i * PAGE;
        check_eq!(fd.vfio_map(RW, buf.addr() + at, APERTURE + at, 2 * PAGE), 0);
        check_domain(&fd, hwpt, &buf, 2 * i, 2, true)?;
    }
    check_eq!(vm_pin_kb()?, pin0 + 2 * MAPS * PAGE / 1024);
    // An overlapping map fails and changes nothing.
    check_eq!(
        fd.vfio_map(RW, buf.addr(), APERTURE + PAGE, 2 * PAGE),
        EEXIST
    );
    check_domain(&fd, hwpt, &buf, 0, 2 * MAPS, true)?;
    if kind == uapi::VFIO_TYPE1_IOMMU {
        // Type1: a page out of one map, then a range cutting two maps and
        // swallowing the one between; the pieces left stay mapped.
        check_eq!(fd.vfio_unmap(0, APERTURE + 7 * PAGE, PAGE), (0, PAGE));
        check_domain(&fd, hwpt, &buf, 6, 1, true)?;
        check_domain(&fd, hwpt, &buf, 7, 1, false)?;
        check_eq!(
            fd.vfio_unmap(0, APERTURE + 9 * PAGE, 4 * PAGE),
            (0, 4 * PAGE)
        );
        check_domain(&fd, hwpt, &buf, 8, 1, true)?;
        check_domain(&fd, hwpt, &buf, 9, 4, false)?;
        check_domain(&fd, hwpt, &buf, 13, 1, true)?;
        check_eq!(vm_pin_kb()?, pin0 + (2 * MAPS - 5) * PAGE / 1024);
    } else {
        // Type1v2: a cut through a map fails, whole maps go.
        check_eq!(fd.vfio_unmap(0, APERTURE + 7 * PAGE, PAGE), (ENOENT, 0));
        check_eq!(fd.vfio_unmap(0, APERTURE + 9 * PAGE, 4 * PAGE), (ENOENT, 0));
        check_domain(&fd, hwpt, &buf, 0, 2 * MAPS, true)?;
        check_eq!(
            fd.vfio_unmap(0, APERTURE + 8 * PAGE, 6 * PAGE),
            (0, 6 * PAGE)
        );
        check_domain(&fd, hwpt, &buf, 7, 1, true)?;
        check_domain(&fd, hwpt, &buf, 8, 6, false)?;
        check_domain(&fd, hwpt, &buf, 14, 1, true)?;
    }
    let left = if kind == uapi::VFIO_TYPE1_IOMMU { 5 } else { 6 };
    check_eq!(
        fd.vfio_unmap(uapi::VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (0, (2 * MAPS - left) * PAGE)
    );
    check_domain(&fd, hwpt, &buf, 0, 2 * MAPS, false)?;
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.destroy(stdev), 0);
    drop(fd);
    check_eq!(vm_pin_kb()?, pin0);
    Ok(())
}

fn legacy_replay_type1() -> TestResult {
    legacy_replay(uapi::VFIO_TYPE1_IOMMU)
}

fn legacy_replay_type1v2() -> TestResult {
    legacy_replay(uapi::VFIO_TYPE1v2_IOMMU)
}

/// IOAS_MAP on the compat IOAS undone by VFIO_IOMMU_UNMAP_DMA, and
/// VFIO_IOMMU_MAP_DMA undone by IOAS_UNMAP, with a domain watching.
fn mixed_native_and_compat() -> TestResult {
    let buf = PageBuf::new(8);
    let pin0 = vm_pin_kb()?;
    let (fd, ioas) = container(uapi::VFIO_TYPE1v2_IOMMU)?;
    let (stdev, hwpt, _) = fd
        .mock_domain(ioas)
        .map_err(|e| format!("mock_domain: {e}"))?;
    let native = uapi::IOMMU_IOAS_MAP_READABLE
        | uapi::IOMMU_IOAS_MAP_WRITEABLE
        | uapi::IOMMU_IOAS_MAP_FIXED_IOVA;
    check_eq!(
        fd.map(ioas, buf.addr(), 4 * PAGE, native, APERTURE),
        Ok(APERTURE)
    );
    check_domain(&fd, hwpt, &buf, 0, 4, true)?;
    // The compat map sees the native one.
    check_eq!(
        fd.vfio_map(RW, buf.addr(), APERTURE + 2 * PAGE, 2 * PAGE),
        EEXIST
    );
    check_eq!(fd.vfio_unmap(0, APERTURE, 4 * PAGE), (0, 4 * PAGE));
    check_domain(&fd, hwpt, &buf, 0, 4, false)?;
    // And the reverse.
    let at = 4 * PAGE;
    check_eq!(fd.vfio_map(RW, buf.addr() + at, APERTURE + at, 4 * PAGE), 0);
    check_domain(&fd, hwpt, &buf, 4, 4, true)?;
    check_eq!(
        fd.map(ioas, buf.addr(), PAGE, native, APERTURE + at),
        Err(EEXIST)
    );
    check_eq!(fd.unmap(ioas, APERTURE + at, 4 * PAGE), Ok(4 * PAGE));
    check_domain(&fd, hwpt, &buf, 4, 4, false)?;
    check_eq!(vm_pin_kb()?, pin0);
    check_eq!(fd.destroy(stdev), 0);
    Ok(())
}

/// The VFIO container tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "compat_probe_and_set_iommu",
            run: probe_and_set_iommu,
        },
        Test {
            name: "compat_get_info_twice_and_walk_caps",
            run: get_info_twice_and_walk_caps,
        },
        Test {
            name: "compat_map_many_then_overlap",
            run: map_many_then_overlap,
        },
        Test {
            name: "compat_type1v2_partial_unmap_fails",
            run: type1v2_partial_unmap_fails,
        },
        Test {
            name: "compat_type1_partial_unmap_splits",
            run: type1_partial_unmap_splits,
        },
        Test {
            name: "compat_node_account_mode",
            run: node_account_mode,
        },
        Test {
            name: "compat_legacy_replay_type1",
            run: legacy_replay_type1,
        },
        Test {
            name: "compat_legacy_replay_type1v2",
            run: legacy_replay_type1v2,
        },
        Test {
            name: "compat_mixed_native_and_compat",
            run: mixed_native_and_compat,
        },
    ]
}
