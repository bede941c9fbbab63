// SPDX-License-Identifier: GPL-2.0

//! The VFIO container ioctls, on top of an IOAS.
//!
//! Legacy VFIO users (QEMU's container backend, DPDK, ...) speak
//! `VFIO_SET_IOMMU`, `VFIO_IOMMU_MAP_DMA` and friends. Ioctl numbers outside
//! the iommufd table land here and work on the context's *compat IOAS*,
//! chosen with `IOMMU_VFIO_IOAS`. Behaviour and errnos follow Linux 7.2's
//! C iommufd, including type1 (v1) partial unmaps, which split areas.

use crate::{
    context::Context,
    domain::Prot,
    io_pagetable::Placement,
    ioas::{get_ioas, map_memory, unmap_iova_range, Ioas, IoasRef},
    object::{ObjectKind, ObjectTable},
    pages::PagesKind,
    sys::{errno::eopnotsupp, PAGE_SIZE_U64},
    uapi,
    ucmd::{read_prefix, Ucmd},
};
use core::mem::{offset_of, size_of};
use kernel::{
    prelude::*,
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice},
};

/// Builds the number of a VFIO ioctl from its index.
const fn vfio_ioctl(index: u32) -> u32 {
    kernel::ioctl::_IO(uapi::VFIO_TYPE as u32, uapi::VFIO_BASE + index)
}

const VFIO_GET_API_VERSION: u32 = vfio_ioctl(0);
const VFIO_CHECK_EXTENSION: u32 = vfio_ioctl(1);
const VFIO_SET_IOMMU: u32 = vfio_ioctl(2);
const VFIO_IOMMU_GET_INFO: u32 = vfio_ioctl(12);
const VFIO_IOMMU_MAP_DMA: u32 = vfio_ioctl(13);
const VFIO_IOMMU_UNMAP_DMA: u32 = vfio_ioctl(14);

/// Runs a VFIO container ioctl. Unknown numbers are `ENOTTY`.
// Kept out of line so that the native ioctls' dispatch stays small.
#[inline(never)]
pub(crate) fn ioctl(ctx: &Context, cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        VFIO_GET_API_VERSION => Ok(uapi::VFIO_API_VERSION as isize),
        VFIO_CHECK_EXTENSION => check_extension(ctx, arg),
        VFIO_SET_IOMMU => set_iommu(ctx, arg).map(|()| 0),
        VFIO_IOMMU_GET_INFO => get_info(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        VFIO_IOMMU_MAP_DMA => map_dma(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        VFIO_IOMMU_UNMAP_DMA => unmap_dma(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        _ => Err(ENOTTY),
    }
}

/// The compat IOAS: `ENODEV` if none is set (or it was destroyed).
fn compat_ioas(ctx: &Context) -> Result<IoasRef> {
    crate::ioas::ioas_of(ctx.objects.get_compat()?).map_err(|_| ENODEV)
}

/// Returns the compat IOAS's ID, creating an IOAS for it if there is none
/// (`EINVAL` in no-IOMMU mode). This is what VFIO's group attach
/// (`VFIO_GROUP_SET_CONTAINER`) calls; no ioctl on our files creates the
/// compat IOAS.
pub(crate) fn compat_ioas_create(table: &ObjectTable) -> Result<u32> {
    table.create_compat(|| Ok(ObjectKind::Ioas(Ioas::new()?)))
}

/// `VFIO_CHECK_EXTENSION`: 1 for what is supported, else 0.
fn check_extension(ctx: &Context, ext: usize) -> Result<isize> {
    let ext = u32::try_from(ext).unwrap_or(u32::MAX);
    match ext {
        uapi::VFIO_TYPE1_IOMMU | uapi::VFIO_TYPE1v2_IOMMU | uapi::VFIO_UNMAP_ALL => {
            Ok(isize::from(!ctx.objects.no_iommu()))
        }
        // Coherent with no domain attached; domains come with the mock
        // domain work.
        uapi::VFIO_DMA_CC_IOMMU => {
            compat_ioas(ctx).map(|ioas| isize::from(ioas.iopt.lock().cache_coherent()))
        }
        _ => Ok(0),
    }
}

/// `VFIO_SET_IOMMU`: TYPE1 (v1) forbids large IO pages on the compat IOAS,
/// so that any page-aligned part of a mapping can be unmapped; TYPE1v2
/// changes nothing. Other types: `EINVAL`.
fn set_iommu(ctx: &Context, kind: usize) -> Result {
    let kind = u32::try_from(kind).map_err(|_| EINVAL)?;
    if (kind != uapi::VFIO_TYPE1_IOMMU && kind != uapi::VFIO_TYPE1v2_IOMMU)
        || ctx.objects.no_iommu()
    {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    if kind == uapi::VFIO_TYPE1_IOMMU {
        return ioas.iopt.lock().set_huge_pages(false);
    }
    Ok(())
}

/// Writes `bytes` at `offset` from `base`.
fn write_at(base: UserPtr, offset: usize, bytes: &[u8]) -> Result {
    UserSlice::new(base.wrapping_byte_add(offset), bytes.len())
        .writer()
        .write_slice(bytes)
}

/// Size of a capability's slot: capabilities are 8-byte aligned.
const fn cap_slot(size: usize) -> usize {
    (size + 7) & !7
}

/// `VFIO_IOMMU_GET_INFO`: page sizes and a capability chain (DMA_AVAIL,
/// then IOVA_RANGE). With a short `argsz` it writes what fits, reports the
/// size needed in `argsz`, and leaves `cap_offset` 0.
fn get_info(ctx: &Context, user: UserPtr) -> Result {
    let min = offset_of!(uapi::vfio_iommu_type1_info, cap_offset);
    let mut info: uapi::vfio_iommu_type1_info = read_prefix(user, min)?;
    let argsz = info.argsz as usize;
    if argsz < min {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    let iopt = ioas.iopt.lock();
    info.flags = uapi::VFIO_IOMMU_INFO_PGSIZES;
    // No domain attached: every size from a page up.
    // Sizes below a CPU page fold into it.
    let mut pgsizes = iopt.pgsize_bitmap();
    if pgsizes & (PAGE_SIZE_U64 - 1) != 0 {
        pgsizes = (pgsizes & !(PAGE_SIZE_U64 - 1)) | PAGE_SIZE_U64;
    }
    info.iova_pgsizes = pgsizes.max(iopt.iova_alignment());
    info.cap_offset = 0;

    let header_size = size_of::<uapi::vfio_iommu_type1_info>();
    let mut total = header_size;
    let mut prev_cap: Option<usize> = None;
    // Links the previous capability to the one at `offset`, if both fit.
    let link = |prev: Option<usize>, offset: usize| -> Result {
        match prev {
            Some(prev) if argsz >= offset => write_at(
                user,
                prev + offset_of!(uapi::vfio_info_cap_header, next),
                &(offset as u32).to_ne_bytes(),
            ),
            _ => Ok(()),
        }
    };

    // DMA_AVAIL: no limit on the number of mappings.
    let offset = total;
    let avail = uapi::vfio_iommu_type1_info_dma_avail {
        header: uapi::vfio_info_cap_header {
            id: uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL as u16,
            version: 1,
            next: 0,
        },
        avail: u32::MAX,
    };
    if argsz.saturating_sub(offset) >= size_of::<uapi::vfio_iommu_type1_info_dma_avail>() {
        write_at(user, offset, avail.as_bytes())?;
    }
    link(prev_cap, offset)?;
    prev_cap = Some(offset);
    total += cap_slot(size_of::<uapi::vfio_iommu_type1_info_dma_avail>());

    // IOVA_RANGE: the holes between reserved ranges.
    let offset = total;
    let room = argsz.saturating_sub(offset);
    let head = size_of::<uapi::vfio_iommu_type1_info_cap_iova_range>();
    let elem = size_of::<uapi::vfio_iova_range>();
    let mut count = 0usize;
    iopt.for_each_hole(|hole| {
        if room >= head + elem * (count + 1) {
            let range = uapi::vfio_iova_range {
                start: hole.start,
                end: hole.last,
            };
            write_at(user, offset + head + elem * count, range.as_bytes())?;
        }
        count += 1;
        Ok(())
    })?;
    drop(iopt);
    if room >= head + elem * count {
        let cap = uapi::vfio_iommu_type1_info_cap_iova_range {
            header: uapi::vfio_info_cap_header {
                id: uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16,
                version: 1,
                next: 0,
            },
            nr_iovas: count as u32,
            reserved: 0,
            ..Default::default()
        };
        write_at(user, offset, &cap.as_bytes()[..head])?;
    }
    link(prev_cap, offset)?;
    total += cap_slot(head + elem * count);

    if argsz >= total {
        info.cap_offset = header_size as u32;
    }
    info.argsz = total as u32;
    info.flags |= uapi::VFIO_IOMMU_INFO_CAPS;
    let back = argsz.min(header_size);
    write_at(user, 0, &info.as_bytes()[..back])
}

/// `VFIO_IOMMU_MAP_DMA`: maps user memory at a fixed IOVA of the compat
/// IOAS. Flags other than READ and WRITE: `EINVAL`.
fn map_dma(ctx: &Context, user: UserPtr) -> Result {
    let size = size_of::<uapi::vfio_iommu_type1_dma_map>();
    let map: uapi::vfio_iommu_type1_dma_map = read_prefix(user, size)?;
    let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    if (map.argsz as usize) < size || map.flags & !rw != 0 {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    map.vaddr.checked_add(map.size).ok_or(EOVERFLOW)?;
    let prot = Prot {
        read: map.flags & uapi::VFIO_DMA_MAP_FLAG_READ != 0,
        write: map.flags & uapi::VFIO_DMA_MAP_FLAG_WRITE != 0,
    };
    let placement = Placement::Fixed(map.iova);
    map_memory(
        ctx,
        &ioas,
        PagesKind::User,
        map.vaddr,
        map.size,
        prot,
        placement,
    )
    .map(|_| ())
}

/// `VFIO_IOMMU_UNMAP_DMA`: unmaps whole areas in a range (after splitting
/// areas at its edges for type1 v1), or everything with `UNMAP_ALL`, and
/// reports the bytes unmapped in `size`. An empty range is not an error.
fn unmap_dma(ctx: &Context, user: UserPtr) -> Result {
    let size = size_of::<uapi::vfio_iommu_type1_dma_unmap>();
    let mut unmap: uapi::vfio_iommu_type1_dma_unmap = read_prefix(user, size)?;
    let all = uapi::VFIO_DMA_UNMAP_FLAG_ALL;
    if (unmap.argsz as usize) < size || unmap.flags & !all != 0 {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    let (rc, unmapped) = if unmap.flags & all != 0 {
        if unmap.iova != 0 || unmap.size != 0 {
            return Err(EINVAL);
        }
        unmap_iova_range(&ioas, 0, u64::MAX)
    } else {
        {
            let mut iopt = ioas.iopt.lock();
            if !iopt.huge_pages() {
                // Type1 v1: make the range's edges area edges first.
                let last = unmap.iova.wrapping_add(unmap.size).wrapping_sub(1);
                iopt.split_at(last)?;
                if unmap.iova != 0 {
                    iopt.split_at(unmap.iova - 1)?;
                }
            }
        }
        if unmap.size == 0 {
            (Err(EINVAL), 0)
        } else {
            match unmap.iova.checked_add(unmap.size - 1) {
                None => (Err(EOVERFLOW), 0),
                Some(last) => unmap_iova_range(&ioas, unmap.iova, last),
            }
        }
    };
    unmap.size = unmapped;
    UserSlice::new(user, size).writer().write(&unmap)?;
    rc
}

/// `IOMMU_VFIO_IOAS`: gets, sets or clears the compat IOAS.
pub(crate) fn vfio_ioas_ioctl(ctx: &Context, ucmd: &mut Ucmd<uapi::iommu_vfio_ioas>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    match u32::from(ucmd.cmd.op) {
        uapi::IOMMU_VFIO_IOAS_GET => {
            ucmd.cmd.ioas_id = compat_ioas(ctx)?.id();
            ucmd.respond()
        }
        uapi::IOMMU_VFIO_IOAS_SET => {
            let ioas = get_ioas(ctx, ucmd.cmd.ioas_id)?;
            ctx.objects.set_compat_ioas(Some(ioas.id()));
            Ok(())
        }
        uapi::IOMMU_VFIO_IOAS_CLEAR => {
            ctx.objects.set_compat_ioas(None);
            Ok(())
        }
        _ => Err(eopnotsupp()),
    }
}

#[kunit_tests(iommufd_rs_vfio_compat)]
mod tests {
    use super::*;
    use crate::pages::AccountMode;

    #[test]
    fn compat_ioas_created_once() -> Result {
        let t = KBox::pin_init(ObjectTable::new(AccountMode::None), GFP_KERNEL)?;
        assert_eq!(t.get_compat().err(), Some(ENODEV));
        let id = compat_ioas_create(&t)?;
        assert_eq!(id, 1);
        // A second call keeps it and creates nothing.
        assert_eq!(compat_ioas_create(&t)?, 1);
        assert_eq!(t.reserve(ObjectKind::Ioas(Ioas::new()?))?.id, 2);
        // Destroying it clears the choice; the next call makes a new one.
        t.destroy(1)?;
        assert_eq!(t.get_compat().err(), Some(ENODEV));
        assert_eq!(compat_ioas_create(&t)?, 1);
        // No-IOMMU mode is refused once there is one.
        assert_eq!(t.set_no_iommu(), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn no_iommu_mode_refuses_compat_ioas() -> Result {
        let t = KBox::pin_init(ObjectTable::new(AccountMode::None), GFP_KERNEL)?;
        t.set_no_iommu()?;
        assert_eq!(compat_ioas_create(&t), Err(EINVAL));
        assert_eq!(t.get_compat().err(), Some(ENODEV));
        Ok(())
    }

    #[test]
    fn capability_slots_are_8_byte_aligned() {
        assert_eq!(
            cap_slot(size_of::<uapi::vfio_iommu_type1_info_dma_avail>()),
            16
        );
        assert_eq!(
            cap_slot(size_of::<uapi::vfio_iommu_type1_info_cap_iova_range>() + 16),
            32
        );
        assert_eq!(size_of::<uapi::vfio_iommu_type1_info>(), 24);
    }
}
