// SPDX-License-Identifier: GPL-2.0

//! The production module (built without `CONFIG_IOMMUFD_RS_TEST`): the
//! IOAS and VFIO container ioctls work, pins through an in-kernel access
//! are not reachable from userspace, and `IOMMU_TEST_CMD` is `ENOTTY`, as
//! C iommufd built without `CONFIG_IOMMUFD_TEST` answers. These run only
//! when asked for by name (`iommufd_rs_test production_`).

use crate::dev::{Iommufd, FIXED, RW};
use crate::ktap::{Test, TestResult};
use crate::sys::errno::*;
use crate::uapi;
use crate::{check, check_eq};

const PAGE: u64 = 4096;

/// The IOAS ioctls, without any domain.
fn ioas_works() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.map(ioas, 0x7f00_0001_0000, PAGE, RW, 0), Ok(PAGE));
    check_eq!(
        fd.map(ioas, 0x7f00_0001_0000, PAGE, RW | FIXED, 0x10_0000),
        Ok(0x10_0000)
    );
    let (ranges, _) = fd
        .iova_ranges(ioas, 4)
        .map_err(|e| format!("ranges: {e:?}"))?;
    check!(!ranges.is_empty());
    check_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(2 * PAGE));
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// The test interface is compiled out: `ENOTTY` for every op, a mock
/// device among them.
fn test_cmd_is_enotty() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.add_reserved(ioas, 0x1000, 0x1000), ENOTTY);
    check_eq!(fd.mock_domain(ioas), Err(ENOTTY));
    check_eq!(fd.create_access(ioas, 0).map(|_| ()), Err(ENOTTY));
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// A legacy VFIO client's container calls.
fn vfio_container_works() -> TestResult {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas), Ok(ioas));
    check_eq!(
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU)),
        Ok(0)
    );
    let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    check_eq!(fd.vfio_map(rw, 0x7f00_0001_0000, 0x10_0000, 4 * PAGE), 0);
    check_eq!(fd.vfio_unmap(0, 0x10_0000, 4 * PAGE), (0, 4 * PAGE));
    check_eq!(fd.destroy(ioas), 0);
    Ok(())
}

/// The production tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "production_ioas_works",
            run: ioas_works,
        },
        Test {
            name: "production_test_cmd_is_enotty",
            run: test_cmd_is_enotty,
        },
        Test {
            name: "production_vfio_container_works",
            run: vfio_container_works,
        },
    ]
}
