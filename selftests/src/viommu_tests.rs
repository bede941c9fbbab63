// SPDX-License-Identifier: GPL-2.0

//! vIOMMUs, virtual devices and vEVENTQs of the mock IOMMU. Every
//! expectation is C iommufd's: the suite runs against C too.

use crate::dev::Iommufd;
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::sys::{poll_now, read_fd, write_fd, POLLIN, POLLRDNORM};
use crate::uapi;
use crate::{check, check_eq};

const NEST_PARENT: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT;
const SELFTEST: u32 = uapi::IOMMU_HWPT_DATA_SELFTEST;
const VIOMMU: u32 = uapi::IOMMU_VIOMMU_TYPE_SELFTEST;
const VEVENTQ: u32 = uapi::IOMMU_VEVENTQ_TYPE_SELFTEST;
const INV: u32 = uapi::IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST;
const CACHE_DEFAULT: u32 = uapi::IOMMU_TEST_DEV_CACHE_DEFAULT;
/// A vEVENT header, and a mock event (header and virtual ID).
const HEADER: usize = 8;
const EVENT: usize = 12;

fn ok<T>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: errno {e}"))
}

/// The mock driver's nested data (`iotlb` only).
const NESTED_DATA: [u8; 8] = [0; 8];

/// A file with an IOAS, a mock device, a nest parent and a vIOMMU on it:
/// (fd, ioas, stdev, idev, parent, viommu).
fn with_viommu() -> Result<(Iommufd, u32, u32, u32, u32, u32), String> {
    let fd = Iommufd::open()?;
    let ioas = ok("ioas_alloc", fd.ioas_alloc())?;
    let (stdev, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let parent = ok("parent", fd.hwpt_alloc(idev, ioas, NEST_PARENT, None))?;
    let viommu = ok("viommu", fd.viommu_alloc(idev, parent, VIOMMU, 0, None))?;
    Ok((fd, ioas, stdev, idev, parent, viommu))
}

/// VIOMMU_ALLOC's checks in C's order, and who holds whom.
fn viommu_references() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = ok("ioas_alloc", fd.ioas_alloc())?;
    let (stdev, auto, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let plain = ok("plain", fd.hwpt_alloc(idev, ioas, 0, None))?;
    let parent = ok("parent", fd.hwpt_alloc(idev, ioas, NEST_PARENT, None))?;
    check_eq!(
        fd.viommu_alloc(idev, parent, VIOMMU, 1, None),
        Err(EOPNOTSUPP)
    );
    check_eq!(fd.viommu_alloc(idev, parent, 0, 0, None), Err(EOPNOTSUPP));
    check_eq!(fd.viommu_alloc(9999, parent, VIOMMU, 0, None), Err(ENOENT));
    check_eq!(
        fd.viommu_alloc(idev, parent, 0xdead, 0, None),
        Err(EOPNOTSUPP)
    );
    check_eq!(fd.viommu_alloc(idev, 9999, VIOMMU, 0, None), Err(ENOENT));
    check_eq!(fd.viommu_alloc(idev, ioas, VIOMMU, 0, None), Err(ENOENT));
    check_eq!(fd.viommu_alloc(idev, plain, VIOMMU, 0, None), Err(EINVAL));
    check_eq!(fd.viommu_alloc(idev, auto, VIOMMU, 0, None), Err(EINVAL));
    let viommu = ok("viommu", fd.viommu_alloc(idev, parent, VIOMMU, 0, None))?;
    check_eq!(fd.destroy(parent), EBUSY);
    // A nested HWPT on the vIOMMU holds the vIOMMU, not the parent.
    let nested = ok(
        "nested",
        fd.hwpt_alloc(idev, viommu, 0, Some((SELFTEST, &NESTED_DATA))),
    )?;
    check_eq!(
        fd.hwpt_alloc(idev, viommu, NEST_PARENT, Some((SELFTEST, &NESTED_DATA))),
        Err(EOPNOTSUPP)
    );
    check_eq!(fd.hwpt_alloc(idev, viommu, 0, None), Err(EOPNOTSUPP));
    check_eq!(fd.destroy(viommu), EBUSY);
    let (veventq, file) = ok("veventq", fd.veventq_alloc(viommu, VEVENTQ, 2, 0))?;
    let vdev = ok("vdevice", fd.vdevice_alloc(viommu, idev, 5))?;
    check_eq!(fd.destroy(nested), 0);
    check_eq!(fd.destroy(viommu), EBUSY);
    check_eq!(fd.destroy(vdev), 0);
    check_eq!(fd.destroy(viommu), EBUSY);
    check_eq!(fd.destroy(veventq), EBUSY);
    drop(file);
    check_eq!(fd.destroy(veventq), 0);
    check_eq!(fd.destroy(viommu), 0);
    check_eq!(fd.destroy(parent), 0);
    check_eq!(fd.destroy(plain), 0);
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// Virtual devices: one per device, one per virtual ID in a vIOMMU; a
/// RID attaches to a vIOMMU's HWPT only with one there; the device's
/// going leaves a tombstone.
fn vdevice_rules() -> TestResult {
    let (fd, ioas, stdev, idev, parent, viommu) = with_viommu()?;
    let viommu2 = ok("viommu2", fd.viommu_alloc(idev, parent, VIOMMU, 0, None))?;
    let (stdev2, _, idev2) = ok("mock_domain", fd.mock_domain(ioas))?;
    let nested = ok(
        "nested",
        fd.hwpt_alloc(idev, viommu, 0, Some((SELFTEST, &NESTED_DATA))),
    )?;
    check_eq!(fd.vdevice_alloc(9999, idev, 1), Err(ENOENT));
    check_eq!(fd.vdevice_alloc(viommu, 9999, 1), Err(ENOENT));
    check_eq!(fd.vdevice_alloc(parent, idev, 1), Err(ENOENT));
    check_eq!(fd.mock_domain_replace(stdev, nested), Err(ENOENT));
    check_eq!(fd.mock_domain(nested).err(), Some(ENOENT));
    let vdev = ok("vdevice", fd.vdevice_alloc(viommu, idev, 0x99))?;
    check_eq!(fd.vdevice_alloc(viommu, idev, 0x98), Err(EEXIST));
    check_eq!(fd.vdevice_alloc(viommu2, idev, 0x98), Err(EEXIST));
    check_eq!(fd.vdevice_alloc(viommu, idev2, 0x99), Err(EEXIST));
    let vdev2 = ok("vdevice2", fd.vdevice_alloc(viommu2, idev2, 0x99))?;
    check_eq!(fd.mock_domain_replace(stdev, nested), Ok(nested));
    // The other device's virtual device is in another vIOMMU.
    check_eq!(fd.mock_domain_replace(stdev2, nested), Err(ENOENT));
    check_eq!(fd.destroy(vdev2), 0);
    // The device goes: its virtual device's ID stays taken.
    check_eq!(fd.destroy(stdev), 0);
    check_eq!(fd.destroy(vdev), ENOENT);
    let next = ok("ioas_alloc", fd.ioas_alloc())?;
    check!(next != vdev);
    check_eq!(fd.destroy(next), 0);
    check_eq!(fd.destroy(nested), 0);
    check_eq!(fd.destroy(viommu), 0);
    check_eq!(fd.destroy(viommu2), 0);
    Ok(())
}

/// The records of a vEVENTQ read: (flags, sequence, virtual ID or none).
fn records(b: &[u8]) -> Vec<(u32, u32, Option<u32>)> {
    let word = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= b.len() {
        let (flags, seq) = (word(at), word(at + 4));
        at += HEADER;
        let data = if flags & uapi::IOMMU_VEVENTQ_FLAG_LOST_EVENTS == 0 && at + 4 <= b.len() {
            at += 4;
            Some(word(at - 4))
        } else {
            None
        };
        out.push((flags, seq, data));
    }
    out
}

/// A vEVENTQ's file: sizes, the events, the lost-events record, the
/// sequence numbers, poll; events need a queue and an attached device.
fn veventq_file() -> TestResult {
    let (fd, ioas, stdev, idev, _parent, viommu) = with_viommu()?;
    check_eq!(fd.veventq_alloc(viommu, VEVENTQ, 0, 0).err(), Some(EINVAL));
    check_eq!(
        fd.veventq_alloc(viommu, VEVENTQ, (1 << 19) + 1, 0).err(),
        Some(EINVAL)
    );
    check_eq!(fd.veventq_alloc(viommu, 0, 2, 0).err(), Some(EOPNOTSUPP));
    check_eq!(
        fd.veventq_alloc(viommu, VEVENTQ, 2, 1).err(),
        Some(EOPNOTSUPP)
    );
    check_eq!(fd.veventq_alloc(9999, VEVENTQ, 2, 0).err(), Some(ENOENT));
    let nested = ok(
        "nested",
        fd.hwpt_alloc(idev, viommu, 0, Some((SELFTEST, &NESTED_DATA))),
    )?;
    ok("vdevice", fd.vdevice_alloc(viommu, idev, 0x88))?;
    // Not on the vIOMMU's HWPT yet; then no queue.
    check_eq!(fd.trigger_vevent(idev), ENOENT);
    check_eq!(fd.mock_domain_replace(stdev, nested), Ok(nested));
    check_eq!(fd.trigger_vevent(idev), EOPNOTSUPP);
    let (veventq, file) = ok("veventq", fd.veventq_alloc(viommu, VEVENTQ, 2, 0))?;
    check_eq!(fd.veventq_alloc(viommu, VEVENTQ, 2, 0).err(), Some(EEXIST));
    // Another type is another queue.
    let (other, other_file) = ok("veventq", fd.veventq_alloc(viommu, 7, 2, 0))?;
    let mut buf = [0u8; 64];
    check_eq!(read_fd(&file, &mut buf, HEADER - 1, None), Err(EINVAL));
    check_eq!(read_fd(&file, &mut buf, HEADER, None), Ok(0));
    check_eq!(read_fd(&file, &mut buf, HEADER, Some(8)), Err(ESPIPE));
    check_eq!(poll_now(&file), Ok(0));
    check_eq!(write_fd(&file, &[0; 8]), Err(EINVAL));
    check_eq!(fd.trigger_vevent(idev), 0);
    check_eq!(poll_now(&file), Ok(POLLIN | POLLRDNORM));
    // Room for the header but not the event.
    check_eq!(read_fd(&file, &mut buf, HEADER, None), Err(EINVAL));
    check_eq!(read_fd(&file, &mut buf, EVENT + 4, None), Ok(EVENT));
    check_eq!(records(&buf[..EVENT]), vec![(0, 0, Some(0x88))]);
    // Depth 2: the third is lost, and the lost record takes a number.
    for _ in 0..3 {
        check_eq!(fd.trigger_vevent(idev), 0);
    }
    check_eq!(read_fd(&file, &mut buf, EVENT, None), Ok(EVENT));
    check_eq!(read_fd(&file, &mut buf, 64, None), Ok(EVENT + HEADER));
    check_eq!(
        records(&buf[..EVENT + HEADER]),
        vec![
            (0, 2, Some(0x88)),
            (uapi::IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 3, None)
        ]
    );
    // Full again: a lost record; one read frees room, and the next event
    // takes the lost record's place (the gap in numbers tells the loss).
    for _ in 0..3 {
        check_eq!(fd.trigger_vevent(idev), 0);
    }
    check_eq!(read_fd(&file, &mut buf, EVENT, None), Ok(EVENT));
    check_eq!(records(&buf[..EVENT]), vec![(0, 4, Some(0x88))]);
    check_eq!(fd.trigger_vevent(idev), 0);
    check_eq!(read_fd(&file, &mut buf, 64, None), Ok(2 * EVENT));
    check_eq!(
        records(&buf[..2 * EVENT]),
        vec![(0, 5, Some(0x88)), (0, 7, Some(0x88))]
    );
    // A lost record left last is numbered anew by each loss.
    for _ in 0..4 {
        check_eq!(fd.trigger_vevent(idev), 0);
    }
    check_eq!(read_fd(&file, &mut buf, 64, None), Ok(2 * EVENT + HEADER));
    check_eq!(
        records(&buf[..2 * EVENT + HEADER]),
        vec![(0, 8, Some(0x88)), (0, 9, Some(0x88)), (1, 11, None)]
    );
    check_eq!(read_fd(&file, &mut buf, 64, None), Ok(0));
    check_eq!(read_fd(&other_file, &mut buf, 64, None), Ok(0));
    // The device leaves the vIOMMU: no more events from it.
    check_eq!(fd.mock_domain_replace(stdev, ioas).map(|_| ()), Ok(()));
    check_eq!(fd.trigger_vevent(idev), ENOENT);
    drop(other_file);
    check_eq!(fd.destroy(other), 0);
    check_eq!(fd.destroy(veventq), EBUSY);
    drop(file);
    check_eq!(fd.destroy(veventq), 0);
    Ok(())
}

/// Cache invalidation through the vIOMMU: requests read whole first, then
/// done in order up to the first bad one.
fn viommu_invalidate_cache() -> TestResult {
    let (fd, _ioas, _stdev, idev, _parent, viommu) = with_viommu()?;
    ok("vdevice", fd.vdevice_alloc(viommu, idev, 0x99))?;
    let caches = |fd: &Iommufd| -> Vec<bool> {
        (0..4)
            .map(|i| fd.check_dev_cache(idev, i, CACHE_DEFAULT) == 0)
            .collect()
    };
    check_eq!(caches(&fd), vec![true; 4]);
    check_eq!(fd.check_dev_cache(idev, 4, CACHE_DEFAULT), EINVAL);
    check_eq!(fd.check_dev_cache(viommu, 0, CACHE_DEFAULT), ENOENT);
    let reqs = |list: &[(u32, u32, u32)]| -> Vec<u8> {
        let mut out = Vec::new();
        for &(flags, vdev, cache) in list {
            for w in [flags, vdev, cache] {
                out.extend_from_slice(&w.to_ne_bytes());
            }
        }
        out
    };
    let good = reqs(&[(0, 0x99, 0), (0, 0x99, 1)]);
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, good.as_ptr(), 12, 0),
        (0, 0)
    );
    check_eq!(
        fd.hwpt_invalidate(viommu, INV + 1, good.as_ptr(), 12, 0),
        (EINVAL, 0)
    );
    // 13 bytes: the 13th (the next request's first) is zero, so it goes.
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, good.as_ptr(), 13, 1),
        (0, 1)
    );
    // A bad second request, read before any is done: the first is done.
    let bad = reqs(&[(0, 0x99, 0), (0, 0x99, 4)]);
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, bad.as_ptr(), 12, 2),
        (EINVAL, 1)
    );
    check_eq!(caches(&fd), vec![false, true, true, true]);
    let unknown = reqs(&[(0, 0x98, 1)]);
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, unknown.as_ptr(), 12, 1),
        (EINVAL, 0)
    );
    let flags = reqs(&[(2, 0x99, 1)]);
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, flags.as_ptr(), 12, 1),
        (EOPNOTSUPP, 0)
    );
    // Entries of 16 bytes: the tail must be zero.
    let mut long = reqs(&[(0, 0x99, 1)]);
    long.extend_from_slice(&[0, 0, 0, 1]);
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, long.as_ptr(), 16, 1),
        (E2BIG, 0)
    );
    long[15] = 0;
    check_eq!(
        fd.hwpt_invalidate(viommu, INV, long.as_ptr(), 16, 1),
        (0, 1)
    );
    check_eq!(caches(&fd), vec![false, false, true, true]);
    let all = reqs(&[(uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 0)]);
    check_eq!(fd.hwpt_invalidate(viommu, INV, all.as_ptr(), 12, 1), (0, 1));
    check_eq!(caches(&fd), vec![false; 4]);
    Ok(())
}

/// A vEVENTQ's file outlives the iommufd file, with events in it.
fn veventq_outlives_iommufd() -> TestResult {
    let (fd, _ioas, stdev, idev, _parent, viommu) = with_viommu()?;
    let nested = ok(
        "nested",
        fd.hwpt_alloc(idev, viommu, 0, Some((SELFTEST, &NESTED_DATA))),
    )?;
    ok("vdevice", fd.vdevice_alloc(viommu, idev, 3))?;
    check_eq!(fd.mock_domain_replace(stdev, nested), Ok(nested));
    let (_veventq, file) = ok("veventq", fd.veventq_alloc(viommu, VEVENTQ, 4, 0))?;
    check_eq!(fd.trigger_vevent(idev), 0);
    check_eq!(fd.trigger_vevent(idev), 0);
    drop(fd);
    let mut buf = [0u8; EVENT];
    check_eq!(read_fd(&file, &mut buf, EVENT, None), Ok(EVENT));
    check_eq!(poll_now(&file), Ok(POLLIN | POLLRDNORM));
    drop(file);
    Ok(())
}

/// `iommu_viommu_selftest` with `in_data`: 24 bytes.
fn viommu_data(in_data: u32) -> [u8; 24] {
    let mut d = [0u8; 24];
    d[..4].copy_from_slice(&in_data.to_ne_bytes());
    d
}

/// The mock vIOMMU's MMIO pages: its driver data, the offsets handed out,
/// what mmap() takes, and that a mapping holds the vIOMMU.
fn viommu_mmap() -> TestResult {
    use crate::sys::{mmap_file, munmap_file};
    const PAGE: u64 = 4096;
    const RW: i32 = 3;
    const EXEC: i32 = 4;
    const SHARED: i32 = 1;
    const PRIVATE: i32 = 2;
    let fd = Iommufd::open()?;
    let ioas = ok("ioas_alloc", fd.ioas_alloc())?;
    let (_, _, idev) = ok("mock_domain", fd.mock_domain(ioas))?;
    let parent = ok("parent", fd.hwpt_alloc(idev, ioas, NEST_PARENT, None))?;
    let mut short = viommu_data(1);
    check_eq!(
        fd.viommu_alloc(idev, parent, VIOMMU, 0, Some(&mut short[..4])),
        Err(EINVAL)
    );
    let mut long = [0u8; 32];
    check_eq!(
        fd.viommu_alloc(idev, parent, VIOMMU, 0, Some(&mut long)),
        Err(EINVAL)
    );
    let word = |d: &[u8], at: usize| u64::from_ne_bytes(d[at..at + 8].try_into().unwrap_or([0; 8]));
    let mut a = viommu_data(0xbeef);
    let va = ok(
        "viommu",
        fd.viommu_alloc(idev, parent, VIOMMU, 0, Some(&mut a)),
    )?;
    check_eq!(u32::from_ne_bytes([a[4], a[5], a[6], a[7]]), 0xbeef);
    let (off, len) = (word(&a, 8), word(&a, 16));
    check_eq!((off, len), (PAGE, 2 * PAGE));
    // Only out_data fits in 8 bytes; the next range follows.
    let mut b = viommu_data(7);
    let vb = ok(
        "viommu",
        fd.viommu_alloc(idev, parent, VIOMMU, 0, Some(&mut b[..8])),
    )?;
    check_eq!(word(&b, 8), 0);
    check_eq!(fd.destroy(vb), 0);
    let f = &fd.file;
    check_eq!(mmap_file(f, len, RW, SHARED, off + PAGE).err(), Some(ENXIO));
    check_eq!(mmap_file(f, len, RW, SHARED, off + len).err(), Some(ENXIO));
    check_eq!(mmap_file(f, len / 2, RW, SHARED, off).err(), Some(ENXIO));
    check_eq!(mmap_file(f, len * 2, RW, SHARED, off).err(), Some(ENXIO));
    check_eq!(mmap_file(f, len, RW, PRIVATE, off).err(), Some(EINVAL));
    check_eq!(mmap_file(f, len, RW | EXEC, SHARED, off).err(), Some(EPERM));
    let at = ok("mmap", mmap_file(f, len, RW, SHARED, off))?;
    // SAFETY: `at` maps the vIOMMU's first MMIO page, readable.
    let first = unsafe { (at as *const u32).read_volatile() };
    check_eq!(first, 0xbeef);
    check_eq!(fd.destroy(va), EBUSY);
    // Half unmapped: the rest still holds it.
    munmap_file(at + PAGE, PAGE);
    check_eq!(fd.destroy(va), EBUSY);
    munmap_file(at, PAGE);
    check_eq!(fd.destroy(va), 0);
    // The range is free again: the next vIOMMU with data gets it.
    let mut c = viommu_data(3);
    let vc = ok(
        "viommu",
        fd.viommu_alloc(idev, parent, VIOMMU, 0, Some(&mut c)),
    )?;
    check_eq!(word(&c, 8), PAGE);
    check_eq!(fd.destroy(vc), 0);
    Ok(())
}

/// HW queues: the checks before and after the memory is pinned, the pin's
/// lock on its area, and the order queues go in.
fn viommu_hw_queue() -> TestResult {
    use crate::dev::{PageBuf, RW as MAP_RW};
    const PAGE: u64 = 4096;
    let (fd, ioas, _stdev, _idev, _parent, viommu) = with_viommu()?;
    let buf = PageBuf::new(2);
    let hwq = |index: u32, iova: u64, len: u64| {
        fd.hw_queue_alloc(viommu, uapi::IOMMU_HW_QUEUE_TYPE_SELFTEST, index, iova, len)
    };
    check_eq!(
        fd.hw_queue_alloc(viommu, 0, 0, 1 << 24, PAGE),
        Err(EOPNOTSUPP)
    );
    check_eq!(hwq(0, 1 << 24, 0), Err(EINVAL));
    check_eq!(hwq(0, u64::MAX, PAGE), Err(EOVERFLOW));
    check_eq!(hwq(0, 1 << 24, PAGE), Err(ENOENT));
    let iova = ok("map", fd.map(ioas, buf.addr(), PAGE, MAP_RW, 0))?;
    let iova2 = ok("map", fd.map(ioas, buf.addr() + PAGE, PAGE, MAP_RW, 0))?;
    check_eq!(hwq(1, iova, PAGE), Err(EIO));
    check_eq!(hwq(2, iova, PAGE), Err(EINVAL));
    let q0 = ok("hw_queue", hwq(0, iova, PAGE))?;
    check_eq!(hwq(0, iova, PAGE), Err(EEXIST));
    check_eq!(fd.unmap(ioas, iova, PAGE), Err(EBUSY));
    check_eq!(fd.unmap(ioas, iova2, PAGE), Ok(PAGE));
    let q1 = ok("hw_queue", hwq(1, iova + PAGE / 2, PAGE / 2))?;
    check_eq!(fd.destroy(q0), EBUSY);
    check_eq!(fd.destroy(q1), 0);
    check_eq!(fd.destroy(q0), 0);
    check_eq!(fd.unmap(ioas, iova, PAGE), Ok(PAGE));
    check_eq!(fd.check_refs(buf.ptr(), 2 * PAGE, 0), 0);
    Ok(())
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "viommu_references",
            run: viommu_references,
        },
        Test {
            name: "viommu_vdevice_rules",
            run: vdevice_rules,
        },
        Test {
            name: "viommu_veventq_file",
            run: veventq_file,
        },
        Test {
            name: "viommu_invalidate_cache",
            run: viommu_invalidate_cache,
        },
        Test {
            name: "viommu_mmap",
            run: viommu_mmap,
        },
        Test {
            name: "viommu_hw_queue",
            run: viommu_hw_queue,
        },
        Test {
            name: "viommu_veventq_outlives_iommufd",
            run: veventq_outlives_iommufd,
        },
    ]
}
