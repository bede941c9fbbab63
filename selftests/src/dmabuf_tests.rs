// SPDX-License-Identifier: GPL-2.0

//! dma-bufs mapped into an IOAS (`IOMMU_IOAS_MAP_FILE` of the test
//! exporter's dma-bufs) and their revocation. Every expectation is C
//! iommufd's: the suite runs against C too.

use crate::dev::{Iommufd, PageBuf, FIXED, RW};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;
use crate::{check, check_eq};
use std::os::fd::AsRawFd;

const PAGE: u64 = 4096;

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// MAP_FILE of a dma-buf: its bounds, what a revoked one answers, and
/// what accesses and other calls answer on its areas.
fn dmabuf_map_rules() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("ioas_alloc", fd.ioas_alloc())?;
    check_eq!(fd.dmabuf_get(0).err(), Some(EINVAL));
    check_eq!(fd.dmabuf_get(513 * PAGE as u32).err(), Some(EINVAL));
    // The length is rounded up to pages.
    let buf = ok("dmabuf_get", fd.dmabuf_get(3 * PAGE as u32 + 1))?;
    let dfd = buf.as_raw_fd();
    check_eq!(fd.map_file(ioas, dfd, 0, 0, RW, 0), Err(EINVAL));
    check_eq!(fd.map_file(ioas, dfd, 0, 4 * PAGE + 1, RW, 0), Err(EINVAL));
    check_eq!(fd.map_file(ioas, dfd, 4 * PAGE, PAGE, RW, 0), Err(EINVAL));
    let iova = ok("map_file", fd.map_file(ioas, dfd, 0, 4 * PAGE, RW, 0))?;
    // Not reached through accesses; not moved to another process.
    let access = ok("create_access", fd.create_access(ioas, 0))?;
    let mut data = [0u8; 16];
    check_eq!(fd.access_rw(&access, iova, &mut data, 0), EINVAL);
    drop(access);
    check_eq!(fd.change_process(), EINVAL);
    // A copy shares it.
    let ioas2 = ok("ioas_alloc", fd.ioas_alloc())?;
    let copied = ok("copy", fd.copy(ioas2, ioas, iova, 2 * PAGE, RW, 0))?;
    check_eq!(fd.unmap(ioas2, copied, 2 * PAGE), Ok(2 * PAGE));
    // Revoked: no new map; restored: maps again.
    check_eq!(fd.dmabuf_revoke(&buf, true), 0);
    check_eq!(fd.map_file(ioas, dfd, 0, PAGE, RW, 0), Err(ENODEV));
    check_eq!(fd.dmabuf_revoke(&buf, false), 0);
    let iova2 = ok("map_file", fd.map_file(ioas, dfd, 0, PAGE, RW, 0))?;
    // The revoked area still unmaps, and its IOVA maps again.
    check_eq!(fd.unmap(ioas, iova, 4 * PAGE), Ok(4 * PAGE));
    check_eq!(
        fd.map_file(ioas, dfd, 0, 4 * PAGE, RW | FIXED, iova),
        Ok(iova)
    );
    check_eq!(fd.unmap(ioas, 0, u64::MAX).map(|_| ()), Ok(()));
    let _ = iova2;
    // Not a dma-buf: the test op refuses other files.
    let plain = PageBuf::new(1);
    let _ = plain.addr();
    check_eq!(fd.dmabuf_revoke(&fd.file, true), EINVAL);
    Ok(())
}

/// A revocation unmaps the dma-buf from every domain: a dirty-tracking
/// domain sees its IO pages, then none.
fn dmabuf_revoke_unmaps_domains() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("ioas_alloc", fd.ioas_alloc())?;
    let (_, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let hwpt = ok(
        "hwpt",
        fd.hwpt_alloc(idev, ioas, uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None),
    )?;
    let buf = ok("dmabuf_get", fd.dmabuf_get(4 * PAGE as u32))?;
    let iova = ok(
        "map_file",
        fd.map_file(ioas, buf.as_raw_fd(), 0, 4 * PAGE, RW, 0),
    )?;
    check_eq!(
        fd.set_dirty_tracking(hwpt, uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE),
        0
    );
    let dirty_bits = |fd: &Iommufd| -> Result<u8, String> {
        let marks = [0xffu8; 8];
        ok(
            "mock_set_dirty",
            fd.mock_set_dirty(hwpt, iova, 4 * PAGE, PAGE, marks.as_ptr()),
        )?;
        let mut bitmap = [0u8; 8];
        let rc = fd.get_dirty_bitmap(hwpt, iova, 4 * PAGE, PAGE, bitmap.as_mut_ptr() as u64, 0);
        check_eq!(rc, 0);
        Ok(bitmap[0])
    };
    check_eq!(dirty_bits(&fd)?, 0x0f);
    check_eq!(fd.dmabuf_revoke(&buf, true), 0);
    check_eq!(dirty_bits(&fd)?, 0);
    // A new domain maps nothing of it either; it still unmaps.
    let hwpt2 = ok(
        "hwpt2",
        fd.hwpt_alloc(idev, ioas, uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None),
    )?;
    check!(hwpt2 != hwpt);
    check_eq!(fd.destroy(hwpt2), 0);
    check_eq!(fd.unmap(ioas, iova, 4 * PAGE), Ok(4 * PAGE));
    check_eq!(fd.destroy(hwpt), 0);
    Ok(())
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "dmabuf_map_rules",
            run: dmabuf_map_rules,
        },
        Test {
            name: "dmabuf_revoke_unmaps_domains",
            run: dmabuf_revoke_unmaps_domains,
        },
    ]
}
