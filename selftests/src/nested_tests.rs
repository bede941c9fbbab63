// SPDX-License-Identifier: GPL-2.0

//! Nested HWPTs, their invalidation, and fault queues with their files.
//! Every expectation is C iommufd's: the suite runs against C too.

use crate::dev::Iommufd;
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::sys::{poll_now, read_fd, write_fd, POLLIN, POLLOUT, POLLRDNORM};
use crate::uapi;
use crate::{check, check_eq};
use std::fs::File;

const NEST_PARENT: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT;
const FAULT_ID_VALID: u32 = uapi::IOMMU_HWPT_FAULT_ID_VALID;
const SELFTEST: u32 = uapi::IOMMU_HWPT_DATA_SELFTEST;
const INV_SELFTEST: u32 = uapi::IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
const IOTLB_DEFAULT: u32 = uapi::IOMMU_TEST_IOTLB_DEFAULT;
const IOTLB_NUM: u32 = uapi::MOCK_NESTED_DOMAIN_IOTLB_NUM;
/// Size of a fault record, and of a response.
const RECORD: usize = std::mem::size_of::<uapi::iommu_hwpt_pgfault>();
const RESPONSE: usize = std::mem::size_of::<uapi::iommu_hwpt_page_response>();

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// The mock driver's nested data: `iommu_hwpt_selftest` with `iotlb`.
fn nested_data(iotlb: u32) -> [u8; 8] {
    let mut d = [0u8; 8];
    d[..4].copy_from_slice(&iotlb.to_ne_bytes());
    d
}

/// Invalidation requests: (flags, iotlb_id) each.
fn requests(reqs: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(flags, id) in reqs {
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&id.to_ne_bytes());
    }
    out
}

/// The IOTLB entries of nested HWPT `hwpt` that do not hold `value`.
fn iotlb_differs(fd: &Iommufd, hwpt: u32, value: u32) -> Vec<u32> {
    (0..IOTLB_NUM)
        .filter(|&i| fd.check_iotlb(hwpt, i, value) != 0)
        .collect()
}

/// A file, an IOAS, a mock device on it, and a nest parent on the IOAS:
/// (fd, ioas, stdev, idev, parent).
fn with_parent() -> Result<(Iommufd, u32, u32, u32, u32), String> {
    let fd = Iommufd::open()?;
    let ioas = ok("ioas_alloc", fd.ioas_alloc())?;
    let (stdev, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let parent = ok("parent", fd.hwpt_alloc(idev, ioas, NEST_PARENT, None))?;
    Ok((fd, ioas, stdev, idev, parent))
}

/// Nested HWPTs: what HWPT_ALLOC refuses, who holds whom, and that
/// everything goes once let go.
fn nested_hwpt_references() -> TestResult {
    let (fd, ioas, stdev, idev, parent) = with_parent()?;
    let data = nested_data(IOTLB_DEFAULT);
    let plain = ok("plain", fd.hwpt_alloc(idev, ioas, 0, None))?;
    // On a HWPT that is no nest parent, or an automatic one.
    check_eq!(
        fd.hwpt_alloc(idev, plain, 0, Some((SELFTEST, &data))),
        Err(EINVAL)
    );
    let auto = ok("replace", fd.mock_domain_replace(stdev, ioas))?;
    check_eq!(
        fd.hwpt_alloc(idev, auto, 0, Some((SELFTEST, &data))),
        Err(EINVAL)
    );
    // No data, data too long, flags a nested HWPT cannot take.
    check_eq!(fd.hwpt_alloc(idev, parent, 0, None), Err(EOPNOTSUPP));
    check_eq!(
        fd.hwpt_alloc(idev, parent, 0, Some((SELFTEST, &[0; 12]))),
        Err(EINVAL)
    );
    check_eq!(
        fd.hwpt_alloc(
            idev,
            parent,
            uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
            Some((SELFTEST, &data))
        ),
        Err(EOPNOTSUPP)
    );
    // Only the first word counts: a short struct is zero-extended.
    let nested = ok(
        "nested",
        fd.hwpt_alloc(idev, parent, 0, Some((SELFTEST, &data[..4]))),
    )?;
    check_eq!(iotlb_differs(&fd, nested, IOTLB_DEFAULT), Vec::<u32>::new());
    check_eq!(fd.check_iotlb(nested, IOTLB_NUM, IOTLB_DEFAULT), EINVAL);
    // MD_CHECK_IOTLB wants a nested HWPT.
    check_eq!(fd.check_iotlb(parent, 0, IOTLB_DEFAULT), ENOENT);
    // A nested HWPT cannot be a parent; the parent is held.
    check_eq!(
        fd.hwpt_alloc(idev, nested, 0, Some((SELFTEST, &data))),
        Err(EINVAL)
    );
    check_eq!(fd.destroy(parent), EBUSY);
    // A device on the nested HWPT holds it; MOCK_DOMAIN attaches to one.
    check_eq!(fd.mock_domain_replace(stdev, nested), Ok(nested));
    check_eq!(fd.destroy(nested), EBUSY);
    let (stdev2, hwpt2, _) = ok("mock_domain", fd.mock_domain(nested))?;
    check_eq!(hwpt2, nested);
    check_eq!(fd.destroy(stdev2), 0);
    let auto = ok("replace", fd.mock_domain_replace(stdev, ioas))?;
    check_eq!(fd.destroy(nested), 0);
    check_eq!(fd.destroy(parent), 0);
    check_eq!(fd.destroy(plain), 0);
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(ioas), 0);
    for id in [ioas, parent, nested, auto] {
        check_eq!(fd.destroy(id), ENOENT);
    }
    Ok(())
}

/// IOMMU_HWPT_INVALIDATE: the bounds, the mock's requests, and how many
/// entries it reports done when one fails.
fn nested_hwpt_invalidate() -> TestResult {
    let (fd, _ioas, _stdev, idev, parent) = with_parent()?;
    let nested = ok(
        "nested",
        fd.hwpt_alloc(idev, parent, 0, Some((SELFTEST, &nested_data(7)))),
    )?;
    let one = requests(&[(0, 2)]);
    let p = one.as_ptr();
    // A paging HWPT, a missing object, bad bounds: nothing done.
    check_eq!(
        fd.hwpt_invalidate(parent, INV_SELFTEST, p, 8, 1),
        (EINVAL, 0)
    );
    check_eq!(fd.hwpt_invalidate(9999, INV_SELFTEST, p, 8, 1), (ENOENT, 0));
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, std::ptr::null(), 8, 1),
        (EINVAL, 0)
    );
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, p, 0, 1),
        (EINVAL, 0)
    );
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, p, 4097, 1),
        (EINVAL, 0)
    );
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, p, 8, (1 << 19) + 1),
        (EINVAL, 0)
    );
    // An empty array checks only the type.
    check_eq!(fd.hwpt_invalidate(nested, INV_SELFTEST, p, 8, 0), (0, 0));
    check_eq!(fd.hwpt_invalidate(nested, 1, p, 8, 0), (EINVAL, 0));
    // Entry sizes other than the struct's.
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, p, 4, 1),
        (EINVAL, 0)
    );
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, p, 12, 1),
        (EINVAL, 0)
    );
    check_eq!(iotlb_differs(&fd, nested, 7), Vec::<u32>::new());
    // The third request is bad: two are done and stay done.
    let three = requests(&[(0, 0), (0, 3), (2, 1), (0, 1)]);
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, three.as_ptr(), 8, 4),
        (EOPNOTSUPP, 2)
    );
    check_eq!(iotlb_differs(&fd, nested, 7), vec![0, 3]);
    let bad_id = requests(&[(0, 1), (0, IOTLB_NUM)]);
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, bad_id.as_ptr(), 8, 2),
        (EINVAL, 1)
    );
    check_eq!(iotlb_differs(&fd, nested, 7), vec![0, 1, 3]);
    // FLAG_ALL clears every entry, but the ID must still be in range.
    let all = requests(&[(uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL, 99)]);
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, all.as_ptr(), 8, 1),
        (EINVAL, 0)
    );
    let all = requests(&[(uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL, 3)]);
    check_eq!(
        fd.hwpt_invalidate(nested, INV_SELFTEST, all.as_ptr(), 8, 1),
        (0, 1)
    );
    check_eq!(iotlb_differs(&fd, nested, 0), Vec::<u32>::new());
    check_eq!(fd.destroy(nested), 0);
    check_eq!(fd.destroy(parent), 0);
    Ok(())
}

/// A fault record's fields: (flags, dev_id, pasid, grpid, addr, length,
/// cookie).
fn parse_record(b: &[u8]) -> (u32, u32, u32, u32, u64, u32, u32) {
    let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let addr = u64::from(u32_at(24)) | (u64::from(u32_at(28)) << 32);
    (
        u32_at(0),
        u32_at(4),
        u32_at(8),
        u32_at(12),
        addr,
        u32_at(32),
        u32_at(36),
    )
}

/// A response: (cookie, code).
fn response(cookie: u32, code: u32) -> [u8; RESPONSE] {
    let mut r = [0u8; RESPONSE];
    r[..4].copy_from_slice(&cookie.to_ne_bytes());
    r[4..].copy_from_slice(&code.to_ne_bytes());
    r
}

/// A fault queue and a nested HWPT that reports to it, with the mock
/// device attached: (fd, ioas, stdev, idev, parent, fault_id, file,
/// iopf HWPT).
fn with_fault_queue() -> Result<(Iommufd, u32, u32, u32, u32, u32, File, u32), String> {
    let (fd, ioas, stdev, idev, parent) = with_parent()?;
    let (fault_id, file) = ok("fault_alloc", fd.fault_alloc(0))?;
    let iopf = ok(
        "iopf hwpt",
        fd.hwpt_alloc_fault(
            idev,
            parent,
            FAULT_ID_VALID,
            fault_id,
            Some((SELFTEST, &nested_data(IOTLB_DEFAULT))),
        ),
    )?;
    check_eq!(fd.mock_domain_replace(stdev, iopf), Ok(iopf));
    Ok((fd, ioas, stdev, idev, parent, fault_id, file, iopf))
}

/// The fault queue's file: what reads and writes of each size and
/// position answer, the records, the cookies and poll.
fn fault_queue_file() -> TestResult {
    let fd = Iommufd::open()?;
    check_eq!(fd.fault_alloc(1).err(), Some(EOPNOTSUPP));
    drop(fd);
    let (fd, ioas, stdev, idev, parent, fault_id, file, iopf) = with_fault_queue()?;
    let mut buf = [0u8; 3 * RECORD];
    // Empty: a read gives nothing, poll says only writable.
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(0));
    check_eq!(poll_now(&file), Ok(POLLOUT));
    check_eq!(fd.trigger_iopf(idev, 1, 2, 0xdead_b000), 0);
    check_eq!(fd.trigger_iopf(idev, 0, 3, 0xbeef_0000), 0);
    check_eq!(poll_now(&file), Ok(POLLIN | POLLOUT | POLLRDNORM));
    // Whole records only, at position 0 only, room for one at least.
    check_eq!(read_fd(&file, &mut buf, RECORD - 1, None), Err(ESPIPE));
    check_eq!(
        read_fd(&file, &mut buf, RECORD, Some(RECORD as i64)),
        Err(ESPIPE)
    );
    check_eq!(read_fd(&file, &mut buf, 0, None), Err(EINVAL));
    // Two records fit in three: both come, with cookies 1 and 2.
    check_eq!(read_fd(&file, &mut buf, 3 * RECORD, None), Ok(2 * RECORD));
    let last = uapi::IOMMU_PGFAULT_FLAGS_LAST_PAGE;
    let pasid_valid = uapi::IOMMU_PGFAULT_FLAGS_PASID_VALID;
    check_eq!(
        parse_record(&buf[..RECORD]),
        (last | pasid_valid, idev, 1, 2, 0xdead_b000, 0, 1)
    );
    check_eq!(
        parse_record(&buf[RECORD..2 * RECORD]),
        (last, idev, 0, 3, 0xbeef_0000, 0, 2)
    );
    check_eq!(poll_now(&file), Ok(POLLOUT));
    // Responses: whole ones only; a bad code or cookie stops the write.
    check_eq!(
        write_fd(&file, &response(1, 0)[..RESPONSE - 1]),
        Err(ESPIPE)
    );
    check_eq!(write_fd(&file, &response(1, 2)), Err(EINVAL));
    check_eq!(write_fd(&file, &response(7, 0)), Err(EINVAL));
    let mut two = response(1, uapi::IOMMUFD_PAGE_RESP_SUCCESS).to_vec();
    two.extend_from_slice(&response(1, 0));
    check_eq!(write_fd(&file, &two), Ok(RESPONSE));
    // Cookie 1 is free again: the next fault read takes it.
    check_eq!(fd.trigger_iopf(idev, 5, 4, 0x1000), 0);
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(RECORD));
    check_eq!(parse_record(&buf).6, 1);
    let mut both = response(2, uapi::IOMMUFD_PAGE_RESP_INVALID).to_vec();
    both.extend_from_slice(&response(1, 0));
    check_eq!(write_fd(&file, &both), Ok(2 * RESPONSE));
    // The file holds the queue; the HWPT holds it too.
    check_eq!(fd.destroy(fault_id), EBUSY);
    check_eq!(fd.mock_domain_replace(stdev, ioas).map(|_| ()), Ok(()));
    check_eq!(fd.destroy(iopf), 0);
    check_eq!(fd.destroy(fault_id), EBUSY);
    drop(file);
    check_eq!(fd.destroy(fault_id), 0);
    check_eq!(fd.destroy(parent), 0);
    Ok(())
}

/// Faults go where the attachment says, and leaving an attachment answers
/// its faults, read or not.
fn fault_queue_routing() -> TestResult {
    let (fd, ioas, stdev, idev, parent, fault_id, file, iopf) = with_fault_queue()?;
    let mut buf = [0u8; 2 * RECORD];
    // One fault read and one not, then the device leaves the HWPT.
    check_eq!(fd.trigger_iopf(idev, 0, 1, 0x1000), 0);
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(RECORD));
    check_eq!(fd.trigger_iopf(idev, 0, 2, 0x2000), 0);
    let paging = ok("replace", fd.mock_domain_replace(stdev, parent))?;
    check_eq!(paging, parent);
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(0));
    check_eq!(write_fd(&file, &response(1, 0)), Err(EINVAL));
    // A HWPT without a queue: the fault goes nowhere.
    check_eq!(fd.trigger_iopf(idev, 0, 3, 0x3000), 0);
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(0));
    // TRIGGER_IOPF wants a mock device's object.
    check_eq!(fd.trigger_iopf(ioas, 0, 3, 0x3000), ENOENT);
    check_eq!(fd.trigger_iopf(9999, 0, 3, 0x3000), ENOENT);
    check_eq!(fd.mock_domain_replace(stdev, ioas).map(|_| ()), Ok(()));
    check_eq!(fd.destroy(iopf), 0);
    drop(file);
    check_eq!(fd.destroy(fault_id), 0);
    check_eq!(fd.destroy(parent), 0);
    Ok(())
}

/// Cookies: from 1, reused once answered; but a response naming cookie 0
/// while faults await answers frees 0 for good (C's xarray keeps 0 busy
/// only until then).
fn fault_queue_cookie_zero() -> TestResult {
    let (fd, ioas, stdev, idev, parent, fault_id, file, iopf) = with_fault_queue()?;
    let mut buf = [0u8; 2 * RECORD];
    let mut next_cookie = || -> Result<u32, String> {
        check_eq!(fd.trigger_iopf(idev, 0, 1, 0x1000), 0);
        check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(RECORD));
        Ok(parse_record(&buf).6)
    };
    check_eq!(next_cookie()?, 1);
    // Named while no fault awaits an answer, 0 stays reserved.
    check_eq!(write_fd(&file, &response(1, 0)), Ok(RESPONSE));
    check_eq!(write_fd(&file, &response(0, 0)), Err(EINVAL));
    check_eq!(next_cookie()?, 1);
    check_eq!(next_cookie()?, 2);
    // Now 0 is named while 1 and 2 wait: it is free from then on.
    check_eq!(write_fd(&file, &response(0, 1)), Err(EINVAL));
    check_eq!(next_cookie()?, 0);
    check_eq!(next_cookie()?, 3);
    let mut all = Vec::new();
    for cookie in 0..4u32 {
        all.extend_from_slice(&response(cookie, 0));
    }
    check_eq!(write_fd(&file, &all), Ok(4 * RESPONSE));
    check_eq!(next_cookie()?, 0);
    check_eq!(next_cookie()?, 1);
    check_eq!(fd.mock_domain_replace(stdev, ioas).map(|_| ()), Ok(()));
    check_eq!(fd.destroy(iopf), 0);
    drop(file);
    check_eq!(fd.destroy(fault_id), 0);
    check_eq!(fd.destroy(parent), 0);
    Ok(())
}

/// A fault queue's file outlives the iommufd file, with faults pending:
/// it still reads, and closing it last frees everything.
fn fault_queue_outlives_iommufd() -> TestResult {
    let (fd, _ioas, _stdev, idev, _parent, _fault_id, file, _iopf) = with_fault_queue()?;
    for grpid in 0..3 {
        check_eq!(fd.trigger_iopf(idev, 0, grpid, 0x1000), 0);
    }
    let mut buf = [0u8; RECORD];
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(RECORD));
    drop(fd);
    check_eq!(read_fd(&file, &mut buf, RECORD, None), Ok(RECORD));
    check!(poll_now(&file).is_ok_and(|p| p & POLLIN != 0));
    drop(file);
    Ok(())
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "nested_hwpt_references",
            run: nested_hwpt_references,
        },
        Test {
            name: "nested_hwpt_invalidate",
            run: nested_hwpt_invalidate,
        },
        Test {
            name: "fault_queue_file",
            run: fault_queue_file,
        },
        Test {
            name: "fault_queue_routing",
            run: fault_queue_routing,
        },
        Test {
            name: "fault_queue_cookie_zero",
            run: fault_queue_cookie_zero,
        },
        Test {
            name: "fault_queue_outlives_iommufd",
            run: fault_queue_outlives_iommufd,
        },
    ]
}
