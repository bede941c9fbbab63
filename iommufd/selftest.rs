// SPDX-License-Identifier: GPL-2.0

//! `IOMMU_TEST_CMD`: the test interface the upstream selftests
//! (tools/testing/selftests/iommu) drive, ABI-identical to Linux 7.2's
//! `drivers/iommu/iommufd/iommufd_test.h` (our copy: `iommufd_test.h`).
//!
//! Built only with `CONFIG_IOMMUFD_RS_TEST`: it lets userspace reserve IOVA
//! and inspect page pins, which no production system should allow.
//!
//! Implemented so far: `ADD_RESERVED`, `MD_CHECK_REFS` and
//! `SET_TEMP_MEMORY_LIMIT`. Every other op answers `EOPNOTSUPP`.

use crate::{
    context::Context, errno::eopnotsupp, io_pagetable::IovaRange, ioas::get_ioas, ioctl::Ucmd, pin,
    uapi,
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// The page-batch memory limit the tests may lower to force the slow paths,
/// as C's `iommufd_test_memory_limit`.
static TEMP_MEMORY_LIMIT: Atomic<u64> = Atomic::new(65536);

/// The current test memory limit, in bytes.
#[expect(dead_code, reason = "read by page pinning batches")]
pub(crate) fn temp_memory_limit() -> u64 {
    TEMP_MEMORY_LIMIT.load(Relaxed)
}

/// `MOCK_FLAGS_ACCESS_SYZ`: in a map flag word, asks for the syzkaller IOVA
/// encoding below.
const FLAG_SYZ: u32 = uapi::MOCK_FLAGS_ACCESS_SYZ;

/// The test kernel's syzkaller hook on `IOAS_COPY`: with `FLAG_SYZ` set in
/// `flags`, the flag is cleared and `iova` is read as a (low 32 bits: nth
/// area, high 32 bits: offset) pair in IOAS `ioas_id`, turned into that
/// area's first IOVA plus offset, or 0 if there is no such area. Fuzzers
/// cannot guess live IOVAs; they can guess small area numbers.
pub(crate) fn syz_conv_iova_id(ctx: &Context, ioas_id: u32, iova: &mut u64, flags: &mut u32) {
    if *flags & FLAG_SYZ == 0 {
        return;
    }
    *flags &= !FLAG_SYZ;
    let Ok(ioas) = get_ioas(ctx, ioas_id) else {
        return;
    };
    let (nth, offset) = (*iova & 0xffff_ffff, *iova >> 32);
    *iova = ioas
        .iopt
        .lock()
        .nth_area_start(nth)
        .map_or(0, |start| start.wrapping_add(offset));
}

/// `IOMMU_TEST_CMD`.
pub(crate) fn test_ioctl(ctx: &Context, ucmd: &mut Ucmd<uapi::iommu_test_cmd>) -> Result {
    let cmd = &ucmd.cmd;
    match cmd.op {
        uapi::IOMMU_TEST_OP_ADD_RESERVED => {
            let (start, length) = cmd.add_reserved();
            if length == 0 {
                return Err(EINVAL);
            }
            let last = start.checked_add(length - 1).ok_or(EOVERFLOW)?;
            let ioas = get_ioas(ctx, cmd.id)?;
            let result = ioas.iopt.lock().reserve(IovaRange { start, last });
            result
        }
        uapi::IOMMU_TEST_OP_MD_CHECK_REFS => {
            let (length, uptr, refs) = cmd.check_refs();
            let (uptr, length) = (
                usize::try_from(uptr).map_err(|_| EINVAL)?,
                usize::try_from(length).map_err(|_| EINVAL)?,
            );
            pin::check_user_page_pins(uptr, length, refs)
        }
        uapi::IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => {
            let limit = cmd.memory_limit();
            // Page batches need room for at least one entry.
            if (limit as usize) < size_of::<usize>() + size_of::<u32>() {
                return Err(EINVAL);
            }
            TEMP_MEMORY_LIMIT.store(u64::from(limit), Relaxed);
            Ok(())
        }
        _ => Err(eopnotsupp()),
    }
}
