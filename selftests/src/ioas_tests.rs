// SPDX-License-Identifier: GPL-2.0

//! Tests of the IOAS ioctls with no domain attached: MAP, MAP_FILE, COPY,
//! UNMAP, ALLOW_IOVAS, IOVA_RANGES, OPTION and CHANGE_PROCESS.
//!
//! Nothing is pinned without a domain, so user addresses here are plain
//! numbers; both C iommufd and iommufd_rs must answer exactly as written.

use crate::dev::{Iommufd, FIXED, READ, RW, WRITE};
use crate::ktap::{Test, TestResult};
use crate::sys::{self, errno::*};
use crate::uapi;
use crate::{check, check_eq};
use std::os::fd::AsRawFd;

/// A page-aligned user address that is not 2 MiB aligned.
const VA: u64 = 0x7f00_0001_0000;
const PAGE: u64 = 4096;
const MB2: u64 = 2 << 20;

fn setup() -> Result<(Iommufd, u32), String> {
    let fd = Iommufd::open()?;
    let ioas = fd
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    Ok((fd, ioas))
}

fn map_allocates_lowest_aligned() -> TestResult {
    let (fd, ioas) = setup()?;
    // First fit from one page up, aligned like the user address.
    check_eq!(fd.map(ioas, VA, PAGE, RW, 0), Ok(PAGE));
    check_eq!(fd.map(ioas, VA, PAGE, RW, 0), Ok(2 * PAGE));
    check_eq!(fd.map(ioas, VA, 2 * PAGE, READ, 0), Ok(4 * PAGE));
    // A 2 MiB aligned address and length get a 2 MiB aligned IOVA.
    check_eq!(fd.map(ioas, 0x7f00_0020_0000, MB2, RW, 0), Ok(MB2));
    // The offset in the page is kept.
    check_eq!(fd.map(ioas, VA + 0x234, 0x100, RW, 0), Ok(3 * PAGE + 0x234));
    Ok(())
}

fn map_fixed_rules() -> TestResult {
    let (fd, ioas) = setup()?;
    check_eq!(
        fd.map(ioas, VA, 4 * PAGE, RW | FIXED, 0x10_0000),
        Ok(0x10_0000)
    );
    // Any overlap with an area.
    check_eq!(fd.map(ioas, VA, PAGE, RW | FIXED, 0x10_3000), Err(EEXIST));
    check_eq!(
        fd.map(ioas, VA, 2 * PAGE, RW | FIXED, 0xf_f000),
        Err(EEXIST)
    );
    // Byte alignment by default; IOVA 0 is fine when fixed.
    check_eq!(fd.map(ioas, VA, 1, RW | FIXED, 0), Ok(0));
    check_eq!(
        fd.map(ioas, VA + 3, 5, RW | FIXED, 0x20_0003),
        Ok(0x20_0003)
    );
    // Overflow.
    check_eq!(fd.map(ioas, VA, PAGE, RW | FIXED, u64::MAX), Err(EOVERFLOW));
    check_eq!(fd.map(ioas, VA, u64::MAX, RW | FIXED, 0), Err(EOVERFLOW));
    check_eq!(
        fd.map(ioas, VA, 2 * PAGE, RW | FIXED, u64::MAX - PAGE),
        Err(EOVERFLOW)
    );
    check_eq!(
        fd.map(ioas, u64::MAX - PAGE, 2 * PAGE, RW | FIXED, 0x30_0000),
        Err(EOVERFLOW)
    );
    Ok(())
}

fn map_bad_input() -> TestResult {
    let (fd, ioas) = setup()?;
    check_eq!(fd.map(ioas, VA, PAGE, 0, 0), Err(EINVAL));
    check_eq!(fd.map(ioas, VA, PAGE, FIXED, 0x1000), Err(EINVAL));
    check_eq!(fd.map(ioas, VA, PAGE, RW | 8, 0), Err(EOPNOTSUPP));
    check_eq!(fd.map(ioas, VA, PAGE, RW | 0x8000_0000, 0), Err(EOPNOTSUPP));
    check_eq!(fd.map(ioas + 1, VA, PAGE, RW, 0), Err(ENOENT));
    check_eq!(fd.map(ioas, VA, 0, RW, 0), Err(EINVAL));
    check_eq!(fd.map(ioas, VA, u64::MAX - 1, RW, 0), Err(EOVERFLOW));
    // Not allocatable: half the address space or more.
    check_eq!(fd.map(ioas, 0, u64::MAX / 2, RW, 0), Err(EOVERFLOW));
    let mut cmd = uapi::iommu_ioas_map {
        size: 40,
        flags: RW,
        ioas_id: ioas,
        __reserved: 1,
        user_va: VA,
        length: PAGE,
        iova: 0,
    };
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_MAP, &mut cmd),
        EOPNOTSUPP
    );
    // Nothing was mapped by any of these.
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(0));
    Ok(())
}

fn unmap_whole_areas_only() -> TestResult {
    let (fd, ioas) = setup()?;
    for i in 0..4 {
        check_eq!(
            fd.map(ioas, VA, PAGE, RW | FIXED, 0x10_0000 + i * PAGE),
            Ok(0x10_0000 + i * PAGE)
        );
    }
    // Cutting an area fails.
    check_eq!(fd.unmap(ioas, 0x10_0000, PAGE / 2), Err(ENOENT));
    check_eq!(fd.unmap(ioas, 0x10_0800, PAGE), Err(ENOENT));
    // Nothing there.
    check_eq!(fd.unmap(ioas, 0x20_0000, PAGE), Err(ENOENT));
    // Two whole areas at once, and the bytes unmapped.
    check_eq!(fd.unmap(ioas, 0x10_0000, 2 * PAGE), Ok(2 * PAGE));
    check_eq!(fd.unmap(ioas, 0x10_0000, 2 * PAGE), Err(ENOENT));
    // A range wider than the areas it covers.
    check_eq!(fd.unmap(ioas, 0xf_0000, 0x10_0000), Ok(2 * PAGE));
    // Bad ranges.
    check_eq!(fd.unmap(ioas, 0x10_0000, 0), Err(EINVAL));
    check_eq!(fd.unmap(ioas, u64::MAX, 1), Err(EOVERFLOW));
    check_eq!(fd.unmap(ioas, 3, u64::MAX - 1), Err(EOVERFLOW));
    check_eq!(fd.unmap(ioas + 1, 0, u64::MAX), Err(ENOENT));
    Ok(())
}

fn unmap_all() -> TestResult {
    let (fd, ioas) = setup()?;
    // An empty IOAS: success, nothing unmapped.
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(0));
    for _ in 0..10 {
        fd.map(ioas, VA, 3 * PAGE, RW, 0)
            .map_err(|e| format!("map: {e}"))?;
    }
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(30 * PAGE));
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(0));
    // The space is free again: the allocator starts over.
    check_eq!(fd.map(ioas, VA, PAGE, RW, 0), Ok(PAGE));
    Ok(())
}

fn copy_shares_and_checks() -> TestResult {
    let (fd, src) = setup()?;
    let dst = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(
        fd.map(src, VA, 4 * PAGE, RW | FIXED, 0x10_0000),
        Ok(0x10_0000)
    );
    check_eq!(
        fd.map(src, VA, 2 * PAGE, READ | FIXED, 0x10_4000),
        Ok(0x10_4000)
    );
    // Whole, allocated: aligned like the source address.
    check_eq!(fd.copy(dst, src, 0x10_0000, 4 * PAGE, RW, 0), Ok(4 * PAGE));
    // A sub-range, fixed.
    check_eq!(
        fd.copy(dst, src, 0x10_1000, PAGE, RW | FIXED, 0x40_0000),
        Ok(0x40_0000)
    );
    // Across two adjacent areas.
    check_eq!(
        fd.copy(dst, src, 0x10_3000, 2 * PAGE, READ | FIXED, 0x50_0000),
        Ok(0x50_0000)
    );
    // Across more areas than a copy keeps in place: six of one page.
    for i in 0..6 {
        let iova = 0x60_0000 + i * PAGE;
        check_eq!(fd.map(src, VA, PAGE, RW | FIXED, iova), Ok(iova));
    }
    check_eq!(
        fd.copy(dst, src, 0x60_0000, 6 * PAGE, RW | FIXED, 0x70_0000),
        Ok(0x70_0000)
    );
    check_eq!(fd.unmap(dst, 0x70_0000, 6 * PAGE), Ok(6 * PAGE));
    // Writable from a read-only source.
    check_eq!(fd.copy(dst, src, 0x10_4000, PAGE, RW, 0), Err(EPERM));
    // Holes and missing objects.
    check_eq!(fd.copy(dst, src, 0x10_5000, 2 * PAGE, READ, 0), Err(ENOENT));
    check_eq!(fd.copy(dst, src, 0x20_0000, PAGE, READ, 0), Err(ENOENT));
    check_eq!(fd.copy(dst + 1, src, 0x10_0000, PAGE, READ, 0), Err(ENOENT));
    check_eq!(fd.copy(dst, src, 0x10_0000, 0, READ, 0), Err(EINVAL));
    check_eq!(fd.copy(dst, src, 0x10_0000, PAGE, 0, 0), Err(EINVAL));
    check_eq!(
        fd.copy(dst, src, 0x10_0000, PAGE, READ | 8, 0),
        Err(EOPNOTSUPP)
    );
    check_eq!(
        fd.copy(dst, src, 0x10_0000, u64::MAX, READ, 0),
        Err(EOVERFLOW)
    );
    // Overlap in the destination.
    check_eq!(
        fd.copy(dst, src, 0x10_0000, PAGE, READ | FIXED, 0x40_0000),
        Err(EEXIST)
    );
    // The copies outlive the source IOAS.
    check_eq!(fd.destroy(src), 0);
    check_eq!(fd.unmap(dst, 0, u64::MAX), Ok(7 * PAGE));
    Ok(())
}

fn allow_iovas_steers_allocation() -> TestResult {
    let (fd, ioas) = setup()?;
    check_eq!(
        fd.allow_iovas(ioas, &[(0x10_0000, 0x10_ffff), (0x40_0000, 0x7f_ffff)]),
        0
    );
    check_eq!(fd.map(ioas, VA, PAGE, RW, 0), Ok(0x10_0000));
    check_eq!(fd.map(ioas, VA, 0x2_0000, RW, 0), Ok(0x40_0000));
    check_eq!(fd.map(ioas, VA, 0x100_0000, RW, 0), Err(ENOSPC));
    // Fixed maps ignore the allowed ranges, as C iommufd does.
    check_eq!(
        fd.map(ioas, VA, PAGE, RW | FIXED, 0x900_0000),
        Ok(0x900_0000)
    );
    // Clearing them lets the allocator use everything again.
    check_eq!(fd.allow_iovas(ioas, &[]), 0);
    check_eq!(fd.map(ioas, VA, PAGE, RW, 0), Ok(PAGE));
    // Bad lists change nothing.
    check_eq!(fd.allow_iovas(ioas, &[(5, 5)]), EINVAL);
    check_eq!(fd.allow_iovas(ioas, &[(10, 5)]), EINVAL);
    check_eq!(
        fd.allow_iovas(ioas, &[(0, 0x1000), (0x1000, 0x2000)]),
        EINVAL
    );
    check_eq!(fd.allow_iovas(ioas + 1, &[(0, 0x1000)]), ENOENT);
    check_eq!(fd.map(ioas, VA, PAGE, RW, 0), Ok(2 * PAGE));
    let mut cmd = uapi::iommu_ioas_allow_iovas {
        size: 24,
        ioas_id: ioas,
        num_iovas: 1,
        allowed_iovas: 16,
        ..Default::default()
    };
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_ALLOW_IOVAS, &mut cmd),
        EFAULT
    );
    cmd.__reserved = 1;
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_ALLOW_IOVAS, &mut cmd),
        EOPNOTSUPP
    );
    Ok(())
}

fn map_file_memfd() -> TestResult {
    let (fd, ioas) = setup()?;
    let memfd = sys::memfd(8 * PAGE).map_err(|e| format!("memfd: {e}"))?;
    let mfd = memfd.as_raw_fd();
    check_eq!(fd.map_file(ioas, mfd, 0, 4 * PAGE, RW, 0), Ok(4 * PAGE));
    check_eq!(
        fd.map_file(ioas, mfd, PAGE, PAGE, RW | FIXED, 0x10_0000),
        Ok(0x10_0000)
    );
    check_eq!(fd.map_file(ioas, -1, 0, PAGE, RW, 0), Err(EBADF));
    check_eq!(fd.map_file(ioas, 1 << 30, 0, PAGE, RW, 0), Err(EBADF));
    check_eq!(fd.map_file(ioas, mfd, 0, 0, RW, 0), Err(EINVAL));
    check_eq!(
        fd.map_file(ioas, mfd, 3, u64::MAX - 1, RW, 0),
        Err(EOVERFLOW)
    );
    check_eq!(fd.map_file(ioas, mfd, 2, u64::MAX - 1, RW, 0), Err(EINVAL));
    check_eq!(fd.map_file(ioas, mfd, 0, PAGE, 0, 0), Err(EINVAL));
    check_eq!(fd.map_file(ioas, mfd, 0, PAGE, RW | 8, 0), Err(EOPNOTSUPP));
    check_eq!(fd.map_file(ioas + 1, mfd, 0, PAGE, RW, 0), Err(ENOENT));
    // The file stays referenced by the mapping after the fd is closed.
    drop(memfd);
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(5 * PAGE));
    Ok(())
}

fn iova_ranges_report_alignment() -> TestResult {
    let (fd, ioas) = setup()?;
    let (ranges, align) = fd.iova_ranges(ioas, 2).map_err(|e| format!("{e:?}"))?;
    check_eq!(
        (ranges.len(), ranges[0].start, ranges[0].last, align),
        (1, 0, u64::MAX, 1)
    );
    check_eq!(
        fd.option(
            uapi::IOMMU_OPTION_HUGE_PAGES,
            uapi::IOMMU_OPTION_OP_SET,
            ioas,
            0
        ),
        Ok(0)
    );
    let (_, align) = fd.iova_ranges(ioas, 2).map_err(|e| format!("{e:?}"))?;
    check_eq!(align, PAGE);
    Ok(())
}

fn option_huge_pages() -> TestResult {
    let (fd, ioas) = setup()?;
    let (get, set) = (uapi::IOMMU_OPTION_OP_GET, uapi::IOMMU_OPTION_OP_SET);
    let huge = uapi::IOMMU_OPTION_HUGE_PAGES;
    check_eq!(fd.option(huge, get, ioas, 0), Ok(1));
    // A byte-aligned area blocks page alignment.
    check_eq!(fd.map(ioas, VA, 10, RW | FIXED, 0x10_0003), Ok(0x10_0003));
    check_eq!(fd.option(huge, set, ioas, 0), Err(EADDRINUSE));
    check_eq!(fd.option(huge, get, ioas, 0), Ok(1));
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(10));
    check_eq!(fd.option(huge, set, ioas, 0), Ok(0));
    check_eq!(fd.option(huge, get, ioas, 0), Ok(0));
    // Now maps must be page aligned.
    check_eq!(fd.map(ioas, VA, 10, RW | FIXED, 0x10_0000), Err(EINVAL));
    check_eq!(fd.map(ioas, VA, PAGE, RW | FIXED, 0x10_0800), Err(EINVAL));
    check_eq!(
        fd.map(ioas, VA + 8, PAGE, RW | FIXED, 0x10_0000),
        Err(EINVAL)
    );
    check_eq!(fd.map(ioas, VA, PAGE, RW | FIXED, 0x10_0000), Ok(0x10_0000));
    check_eq!(fd.option(huge, set, ioas, 1), Ok(1));
    check_eq!(fd.option(huge, set, ioas, 2), Err(EINVAL));
    check_eq!(fd.option(huge, 2, ioas, 0), Err(EOPNOTSUPP));
    check_eq!(fd.option(huge, get, ioas + 1, 0), Err(ENOENT));
    check_eq!(fd.option(huge, get, 0, 0), Err(ENOENT));
    check_eq!(fd.option(7, get, ioas, 0), Err(EOPNOTSUPP));
    Ok(())
}

fn option_rlimit_mode() -> TestResult {
    let fd = Iommufd::open()?;
    let (get, set) = (uapi::IOMMU_OPTION_OP_GET, uapi::IOMMU_OPTION_OP_SET);
    let mode = uapi::IOMMU_OPTION_RLIMIT_MODE;
    check_eq!(fd.option(mode, get, 0, 0), Ok(0));
    check_eq!(fd.option(mode, set, 0, 1), Ok(1));
    check_eq!(fd.option(mode, get, 0, 0), Ok(1));
    check_eq!(fd.option(mode, set, 0, 2), Err(EINVAL));
    check_eq!(fd.option(mode, get, 1, 0), Err(EOPNOTSUPP));
    check_eq!(fd.option(mode, 5, 0, 0), Err(EOPNOTSUPP));
    // Global: only while the file has no object.
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.option(mode, set, 0, 0), Err(EBUSY));
    check_eq!(fd.option(mode, set, 0, 2), Err(EBUSY));
    check_eq!(fd.destroy(ioas), 0);
    check_eq!(fd.option(mode, set, 0, 0), Ok(0));
    check_eq!(fd.option(mode, get, 0, 0), Ok(0));
    let mut cmd = uapi::iommu_option {
        size: 24,
        option_id: mode,
        op: get as u16,
        __reserved: 1,
        ..Default::default()
    };
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_OPTION, &mut cmd),
        EOPNOTSUPP
    );
    Ok(())
}

fn change_process_file_only() -> TestResult {
    let (fd, ioas) = setup()?;
    // No memory: nothing to move.
    check_eq!(fd.change_process(), 0);
    let memfd = sys::memfd(4 * PAGE).map_err(|e| format!("memfd: {e}"))?;
    check_eq!(
        fd.map_file(ioas, memfd.as_raw_fd(), 0, 4 * PAGE, RW, 0),
        Ok(4 * PAGE)
    );
    check_eq!(fd.change_process(), 0);
    // User VA memory cannot move.
    let other = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.map(other, VA, PAGE, WRITE, 0), Ok(PAGE));
    check_eq!(fd.change_process(), EINVAL);
    check_eq!(fd.unmap(other, 0, u64::MAX), Ok(PAGE));
    check_eq!(fd.change_process(), 0);
    let mut cmd = uapi::iommu_ioas_change_process {
        size: 8,
        __reserved: 1,
    };
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_CHANGE_PROCESS, &mut cmd),
        EOPNOTSUPP
    );
    Ok(())
}

fn destroy_ioas_with_areas() -> TestResult {
    let (fd, ioas) = setup()?;
    for _ in 0..100 {
        fd.map(ioas, VA, PAGE, RW, 0)
            .map_err(|e| format!("map: {e}"))?;
    }
    check_eq!(fd.destroy(ioas), 0);
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Err(ENOENT));
    check!(fd.ioas_alloc() == Ok(ioas));
    Ok(())
}

/// The IOAS tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "map_allocates_lowest_aligned",
            run: map_allocates_lowest_aligned,
        },
        Test {
            name: "map_fixed_rules",
            run: map_fixed_rules,
        },
        Test {
            name: "map_bad_input",
            run: map_bad_input,
        },
        Test {
            name: "unmap_whole_areas_only",
            run: unmap_whole_areas_only,
        },
        Test {
            name: "unmap_all",
            run: unmap_all,
        },
        Test {
            name: "copy_shares_and_checks",
            run: copy_shares_and_checks,
        },
        Test {
            name: "allow_iovas_steers_allocation",
            run: allow_iovas_steers_allocation,
        },
        Test {
            name: "map_file_memfd",
            run: map_file_memfd,
        },
        Test {
            name: "iova_ranges_report_alignment",
            run: iova_ranges_report_alignment,
        },
        Test {
            name: "option_huge_pages",
            run: option_huge_pages,
        },
        Test {
            name: "option_rlimit_mode",
            run: option_rlimit_mode,
        },
        Test {
            name: "change_process_file_only",
            run: change_process_file_only,
        },
        Test {
            name: "destroy_ioas_with_areas",
            run: destroy_ioas_with_areas,
        },
    ]
}
