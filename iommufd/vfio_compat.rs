// SPDX-License-Identifier: GPL-2.0

//! The VFIO container ioctls, on top of an IOAS.
//!
//! Legacy VFIO users (QEMU's container backend, DPDK, ...) speak
//! `VFIO_SET_IOMMU`, `VFIO_IOMMU_MAP_DMA` and friends. Ioctl numbers outside
//! the iommufd table land here and work on the context's *compat IOAS*,
//! chosen with `IOMMU_VFIO_IOAS`. Behaviour and errnos follow Linux 7.2's
//! C iommufd, including type1 (v1) partial unmaps, which split areas.
//!
//! Beyond C iommufd, the container's dirty tracking is served as vfio's
//! type1 serves it (`drivers/vfio/vfio_iommu_type1.c`), with its errnos:
//! `VFIO_IOMMU_DIRTY_PAGES` (START, STOP, GET_BITMAP),
//! `VFIO_IOMMU_UNMAP_DMA` with `GET_DIRTY_BITMAP`, and the MIGRATION
//! capability of `VFIO_IOMMU_GET_INFO`. The log itself is the IOAS's
//! (`io_pagetable::dirty_log`); see `docs/c-behaviour/vfio-compat.md`.

use crate::{
    context::Context,
    domain::Prot,
    io_pagetable::{DirtyPages, IoPagetable, Placement},
    ioas::{
        get_ioas, map_memory, unmap_iova_range, unmap_iova_range_after, unmap_iova_range_reporting,
        Ioas, IoasRef,
    },
    object::{ObjectKind, ObjectTable},
    pages::PagesKind,
    sys::{self, errno::eopnotsupp, misc::ioctl_return, user::access_ok, PAGE_SIZE_U64},
    uapi,
    ucmd::{read_prefix, Ucmd},
};
use core::mem::{offset_of, size_of, MaybeUninit};
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
const VFIO_IOMMU_DIRTY_PAGES: u32 = vfio_ioctl(17);

/// Most pages one dirty bitmap may cover: type1's `DIRTY_BITMAP_PAGES_MAX`.
const DIRTY_BITMAP_PAGES_MAX: u64 = i32::MAX as u64;
/// Bytes of a bitmap of `n` bits: whole `u64`s (type1's
/// `DIRTY_BITMAP_BYTES`, which wraps as C's arithmetic does).
const fn dirty_bitmap_bytes(n: u64) -> u64 {
    (n.wrapping_add(63) & !63) / 8
}
/// The largest bitmap type1 takes: `DIRTY_BITMAP_SIZE_MAX`, 256 MiB.
const DIRTY_BITMAP_SIZE_MAX: u64 = dirty_bitmap_bytes(DIRTY_BITMAP_PAGES_MAX);
/// Size of `struct vfio_iommu_type1_info_cap_migration`.
const CAP_MIGRATION_SIZE: usize = size_of::<uapi::vfio_iommu_type1_info_cap_migration>();

/// Runs a VFIO container ioctl: its return value or a negated errno.
/// Unknown numbers are `ENOTTY`. The dispatch table's entry for every
/// command index outside the iommufd range.
pub(crate) fn ioctl(ctx: &Context, cmd: u32, arg: usize) -> isize {
    ioctl_return(match cmd {
        VFIO_GET_API_VERSION => Ok(uapi::VFIO_API_VERSION as isize),
        VFIO_CHECK_EXTENSION => check_extension(ctx, arg),
        VFIO_SET_IOMMU => set_iommu(ctx, arg).map(|()| 0),
        VFIO_IOMMU_GET_INFO => get_info(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        VFIO_IOMMU_MAP_DMA => map_dma(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        VFIO_IOMMU_UNMAP_DMA => unmap_dma(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        VFIO_IOMMU_DIRTY_PAGES => dirty_pages(ctx, UserPtr::from_addr(arg)).map(|()| 0),
        _ => Err(ENOTTY),
    })
}

/// The compat IOAS: `ENODEV` if none is set (or it was destroyed).
#[inline(always)]
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

/// The IO page sizes of the compat IOAS, as `VFIO_IOMMU_GET_INFO` reports
/// them: those every domain supports (every size with none), sizes below a
/// CPU page folded into it.
fn iova_pgsizes(iopt: &IoPagetable) -> u64 {
    let mut pgsizes = iopt.pgsize_bitmap();
    if pgsizes & (PAGE_SIZE_U64 - 1) != 0 {
        pgsizes = (pgsizes & !(PAGE_SIZE_U64 - 1)) | PAGE_SIZE_U64;
    }
    pgsizes.max(iopt.iova_alignment())
}

/// The page size of dirty bitmaps: the smallest IO page size (type1's
/// `1 << __ffs(pgsize_bitmap)`).
fn dirty_pgsize(iopt: &IoPagetable) -> u64 {
    let pgsizes = iova_pgsizes(iopt);
    match pgsizes & pgsizes.wrapping_neg() {
        0 => PAGE_SIZE_U64,
        lowest => lowest,
    }
}

/// The MIGRATION capability, as type1 fills it: no flags, the dirty
/// bitmap page size, the largest bitmap.
fn migration_cap(iopt: &IoPagetable) -> [u8; CAP_MIGRATION_SIZE] {
    let cap = uapi::vfio_iommu_type1_info_cap_migration {
        header: uapi::vfio_info_cap_header {
            id: uapi::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION as u16,
            version: 1,
            next: 0,
        },
        flags: 0,
        pgsize_bitmap: dirty_pgsize(iopt),
        max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX,
    };
    // Field by field: the struct has a hole after `flags`, written as 0.
    let mut bytes = [0u8; CAP_MIGRATION_SIZE];
    let header = cap.header.as_bytes();
    let fields: [(usize, &[u8]); 4] = [
        (0, header),
        (
            offset_of!(uapi::vfio_iommu_type1_info_cap_migration, flags),
            &cap.flags.to_ne_bytes(),
        ),
        (
            offset_of!(uapi::vfio_iommu_type1_info_cap_migration, pgsize_bitmap),
            &cap.pgsize_bitmap.to_ne_bytes(),
        ),
        (
            offset_of!(
                uapi::vfio_iommu_type1_info_cap_migration,
                max_dirty_bitmap_size
            ),
            &cap.max_dirty_bitmap_size.to_ne_bytes(),
        ),
    ];
    for (at, field) in fields {
        bytes[at..at + field.len()].copy_from_slice(field);
    }
    bytes
}

/// `VFIO_IOMMU_GET_INFO`: page sizes and a capability chain (MIGRATION,
/// DMA_AVAIL, then IOVA_RANGE: C iommufd's two after type1's first). With
/// a short `argsz` it writes what fits, reports the size needed in
/// `argsz`, and leaves `cap_offset` 0.
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
    info.iova_pgsizes = iova_pgsizes(&iopt);
    info.cap_offset = 0;

    let header_size = size_of::<uapi::vfio_iommu_type1_info>();
    let mut total = header_size;
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

    // MIGRATION, first as in type1's chain: dirty tracking in the smallest
    // IO page size, bitmaps up to type1's largest.
    let offset = total;
    if argsz.saturating_sub(offset) >= CAP_MIGRATION_SIZE {
        write_at(user, offset, &migration_cap(&iopt))?;
    }
    let mut prev_cap = Some(offset);
    total += cap_slot(CAP_MIGRATION_SIZE);

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
    let mut slot = MaybeUninit::<uapi::vfio_iommu_type1_dma_map>::uninit();
    let map = &*sys::read_user_prefix(&mut slot, user, size)?;
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
/// With `GET_DIRTY_BITMAP`, type1's unmap instead ([`unmap_dma_dirty`]).
fn unmap_dma(ctx: &Context, user: UserPtr) -> Result {
    let size = size_of::<uapi::vfio_iommu_type1_dma_unmap>();
    let mut slot = MaybeUninit::<uapi::vfio_iommu_type1_dma_unmap>::uninit();
    let unmap = sys::read_user_prefix(&mut slot, user, size)?;
    let all = uapi::VFIO_DMA_UNMAP_FLAG_ALL;
    let dirty = uapi::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    if (unmap.argsz as usize) < size || unmap.flags & !(all | dirty) != 0 {
        return Err(EINVAL);
    }
    if unmap.flags & dirty != 0 {
        return unmap_dma_dirty(ctx, user, unmap);
    }
    let ioas = compat_ioas(ctx)?;
    let (iova, len) = (unmap.iova, unmap.size);
    // Type1 v1 (large pages off): the range's edges become area edges
    // first, under the lock the unmap then takes on.
    let split_v1 = |iopt: &mut IoPagetable| {
        if !iopt.huge_pages() {
            iopt.split_at(iova.wrapping_add(len).wrapping_sub(1))?;
            if iova != 0 {
                iopt.split_at(iova - 1)?;
            }
        }
        Ok(())
    };
    let (rc, unmapped) = if unmap.flags & all != 0 {
        if iova != 0 || len != 0 {
            return Err(EINVAL);
        }
        unmap_iova_range(&ioas, 0, u64::MAX)
    } else {
        match len.checked_sub(1).map(|l| iova.checked_add(l)) {
            Some(Some(last)) => unmap_iova_range_after(&ioas, iova, last, split_v1)?,
            bad => {
                split_v1(&mut ioas.iopt.lock())?;
                let e = if bad.is_none() { EINVAL } else { EOVERFLOW };
                (Err(e), 0)
            }
        }
    };
    unmap.size = unmapped;
    UserSlice::new(user, size).writer().write(&*unmap)?;
    rc
}

/// A `struct vfio_bitmap`: page size, size in bytes, user address.
struct UserBitmap {
    pgsize: u64,
    size: u64,
    data: u64,
}

impl UserBitmap {
    /// Reads the `struct vfio_bitmap` at `at`: `EFAULT`.
    fn read(at: UserPtr) -> Result<Self> {
        let mut r = UserSlice::new(at, 3 * size_of::<u64>()).reader();
        Ok(Self {
            pgsize: r.read()?,
            size: r.read()?,
            data: r.read()?,
        })
    }

    /// Type1's checks before it takes its lock, for `npages_of` bytes of
    /// IOVA: `EINVAL` if the bitmap is not in user space, or its size is
    /// 0, above `DIRTY_BITMAP_SIZE_MAX` or below what that many pages
    /// need (`verify_bitmap_size`). Returns log2 of the page size.
    fn check(&self, npages_of: u64) -> Result<u32> {
        if !access_ok(self.data, self.size) {
            return Err(EINVAL);
        }
        let shift = self.pgsize.trailing_zeros();
        let npages = npages_of.checked_shr(shift).unwrap_or(0);
        if npages == 0
            || self.size == 0
            || self.size > DIRTY_BITMAP_SIZE_MAX
            || self.size < dirty_bitmap_bytes(npages)
        {
            return Err(EINVAL);
        }
        Ok(shift)
    }
}

/// Type1's check that `[iova, last]` cuts no area: `EINVAL` if an area
/// holds `iova` without starting there, or `last` without ending there.
fn check_whole_areas(iopt: &IoPagetable, iova: u64, last: u64) -> Result {
    if iopt
        .area_around(iova)
        .is_some_and(|(start, _)| start != iova)
        || iopt.area_around(last).is_some_and(|(_, end)| end != last)
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// Type1's `update_user_bitmap`: ORs into the first `u64` of the user
/// bitmap at `data` (bit 0: IOVA `base`) that the area's bits reach the
/// word already there, if the area does not start that word, and writes
/// the area's bits from there to the end of its last word (bits past the
/// area written 0). `shift`: log2 of the bitmap's page size. `shared`:
/// the previous area's last bit, if any, for areas smaller than a page
/// that share one. `EFAULT`.
fn update_user_bitmap(
    data: u64,
    base: u64,
    shift: u32,
    pages: &DirtyPages<'_>,
    shared: &mut Option<u64>,
) -> Result {
    const CHUNK: usize = 32;
    let first = (pages.start - base) >> shift;
    let nbits = pages.blocks(shift);
    let (word0, skew) = (first / 64, (first % 64) as u32);
    let words = (nbits + u64::from(skew)).div_ceil(64);
    let at = usize::try_from(word0)
        .ok()
        .and_then(|w| w.checked_mul(8))
        .and_then(|off| usize::try_from(data).ok()?.checked_add(off))
        .ok_or(EFAULT)?;
    // Word `j` of the area's bits, moved up by `skew` bits.
    let shifted = |j: u64| -> u64 {
        let cur = pages.word(j, shift);
        match (skew, j) {
            (0, _) => cur,
            (_, 0) => cur << skew,
            _ => cur << skew | pages.word(j - 1, shift) >> (64 - skew),
        }
    };
    let keep_first = skew != 0 || *shared == Some(first);
    *shared = Some(first + nbits - 1);
    let mut bytes = [0u8; CHUNK * 8];
    let mut j = 0u64;
    while j < words {
        let n = (CHUNK as u64).min(words - j) as usize;
        let ptr = UserPtr::from_addr(at.wrapping_add(j as usize * 8));
        let leftover: u64 = if j == 0 && keep_first {
            UserSlice::new(ptr, 8).reader().read()?
        } else {
            0
        };
        for k in 0..n {
            let w = shifted(j + k as u64) | if k == 0 { leftover } else { 0 };
            bytes[8 * k..8 * k + 8].copy_from_slice(&w.to_ne_bytes());
        }
        UserSlice::new(ptr, n * 8)
            .writer()
            .write_slice(&bytes[..n * 8])?;
        j += n as u64;
    }
    Ok(())
}

/// `VFIO_IOMMU_UNMAP_DMA` with `GET_DIRTY_BITMAP`, as type1: checks in
/// type1's order (see the doc), then each area of the range has its dirty
/// pages written to the user bitmap and is unmapped, in order; an error
/// there stops the unmap, the areas before it unmapped. `size` is written
/// back on success only.
fn unmap_dma_dirty(
    ctx: &Context,
    user: UserPtr,
    unmap: &mut uapi::vfio_iommu_type1_dma_unmap,
) -> Result {
    let minsz = size_of::<uapi::vfio_iommu_type1_dma_unmap>();
    if unmap.flags & uapi::VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        return Err(EINVAL);
    }
    if (unmap.argsz as usize) < minsz + 3 * size_of::<u64>() {
        return Err(EINVAL);
    }
    let bitmap = UserBitmap::read(user.wrapping_byte_add(minsz))?;
    bitmap.check(unmap.size)?;
    let ioas = compat_ioas(ctx)?;
    let (iova, size) = (unmap.iova, unmap.size);
    let (last, shift) = {
        let iopt = ioas.iopt.lock();
        let pgsize = dirty_pgsize(&iopt);
        if iova & (pgsize - 1) != 0 || size == 0 || size & (pgsize - 1) != 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(size - 1).ok_or(EOVERFLOW)?;
        if !iopt.dirty_log_running() || bitmap.pgsize != pgsize {
            return Err(EINVAL);
        }
        check_whole_areas(&iopt, iova, last)?;
        (last, pgsize.trailing_zeros())
    };
    let mut shared = None;
    let mut report =
        |pages: &DirtyPages<'_>| update_user_bitmap(bitmap.data, iova, shift, pages, &mut shared);
    let (rc, unmapped) = unmap_iova_range_reporting(&ioas, iova, last, Some(&mut report));
    rc?;
    unmap.size = unmapped;
    UserSlice::new(user, minsz).writer().write(&*unmap)
}

/// `VFIO_IOMMU_DIRTY_PAGES`: START, STOP or GET_BITMAP, one at a time, as
/// type1. A type1 v1 container (large pages off on the compat IOAS) has
/// no dirty tracking (`EACCES`), unless its log was started before.
fn dirty_pages(ctx: &Context, user: UserPtr) -> Result {
    const START: u32 = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
    const STOP: u32 = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
    const GET_BITMAP: u32 = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    let ioas = compat_ioas(ctx)?;
    {
        let iopt = ioas.iopt.lock();
        if !iopt.huge_pages() && !iopt.dirty_log_running() {
            return Err(EACCES);
        }
    }
    let minsz = 2 * size_of::<u32>();
    let mut r = UserSlice::new(user, minsz).reader();
    let (argsz, flags): (u32, u32) = (r.read()?, r.read()?);
    if (argsz as usize) < minsz || flags & !(START | STOP | GET_BITMAP) != 0 {
        return Err(EINVAL);
    }
    match flags {
        START => ioas.iopt.lock().start_dirty_log(),
        STOP => {
            ioas.iopt.lock().stop_dirty_log();
            Ok(())
        }
        GET_BITMAP => {
            get_dirty_bitmap(&ioas, user.wrapping_byte_add(minsz), argsz as usize - minsz)
        }
        // None, or more than one.
        _ => Err(EINVAL),
    }
}

/// GET_BITMAP of `VFIO_IOMMU_DIRTY_PAGES`: the `data_size` bytes at `data`
/// are a `struct vfio_iommu_type1_dirty_bitmap_get`. Checks in type1's
/// order, then writes each area's dirty pages to the user bitmap, under
/// the IOAS lock (type1: its `iommu->lock`).
fn get_dirty_bitmap(ioas: &Ioas, data: UserPtr, data_size: usize) -> Result {
    if data_size < 2 * size_of::<u64>() + 3 * size_of::<u64>() {
        return Err(EINVAL);
    }
    let mut r = UserSlice::new(data, 2 * size_of::<u64>()).reader();
    let (iova, size): (u64, u64) = (r.read()?, r.read()?);
    let bitmap = UserBitmap::read(data.wrapping_byte_add(2 * size_of::<u64>()))?;
    if size == 0 {
        return Err(EINVAL);
    }
    let last = iova.checked_add(size - 1).ok_or(EOVERFLOW)?;
    bitmap.check(size)?;
    let mut iopt = ioas.iopt.lock();
    let pgsize = dirty_pgsize(&iopt);
    if bitmap.pgsize != pgsize || iova & (pgsize - 1) != 0 || size & (pgsize - 1) != 0 {
        return Err(EINVAL);
    }
    if !iopt.dirty_log_running() {
        return Err(EINVAL);
    }
    check_whole_areas(&iopt, iova, last)?;
    let shift = pgsize.trailing_zeros();
    let mut shared = None;
    iopt.read_dirty_log(iova, last, |pages| {
        update_user_bitmap(bitmap.data, iova, shift, pages, &mut shared)
    })
}

/// `IOMMU_VFIO_IOAS`: gets, sets or clears the compat IOAS.
pub(crate) fn vfio_ioas_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_vfio_ioas>) -> Result {
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
        assert_eq!(cap_slot(CAP_MIGRATION_SIZE), 32);
    }

    #[test]
    fn dirty_bitmap_sizes_are_type1s() {
        assert_eq!(DIRTY_BITMAP_SIZE_MAX, 256 << 20);
        assert_eq!(dirty_bitmap_bytes(1), 8);
        assert_eq!(dirty_bitmap_bytes(64), 8);
        assert_eq!(dirty_bitmap_bytes(65), 16);
        // C's ALIGN wraps: so does its byte count.
        assert_eq!(dirty_bitmap_bytes(u64::MAX), 0);
        let bitmap = UserBitmap {
            pgsize: 4096,
            size: 8,
            data: 0x1000,
        };
        assert_eq!(bitmap.check(64 * 4096), Ok(12));
        assert_eq!(bitmap.check(65 * 4096), Err(EINVAL));
        assert_eq!(bitmap.check(4095), Err(EINVAL));
        let zero_pgsize = UserBitmap {
            pgsize: 0,
            ..bitmap
        };
        assert_eq!(zero_pgsize.check(4096), Err(EINVAL));
        let kernel_address = UserBitmap {
            data: 0xffff_8000_0000_0000,
            ..bitmap
        };
        assert_eq!(kernel_address.check(4096), Err(EINVAL));
    }
}
