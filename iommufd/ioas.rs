// SPDX-License-Identifier: GPL-2.0

//! IOAS objects and their ioctls.
//!
//! Each handler checks its input in the order C iommufd does, so that both
//! give the same errno for the same bad input, then works on the IOAS's
//! [`IoPagetable`] under its lock.

use crate::{
    context::Context,
    domain::Prot,
    io_pagetable::{
        new_area, AllowedRanges, DirtyPages, IoPagetable, IovaRange, Placement, UnmapStop,
    },
    object::{ObjectKind, ObjectPart, ObjectRef, ObjectTable},
    pages::{AccountMode, Pages, PagesKind, PagesRequest},
    sys::{
        self,
        errno::{edeadlock, eopnotsupp},
        Capability,
    },
    uapi,
    ucmd::Ucmd,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// An IO address space.
#[pin_data]
pub(crate) struct Ioas {
    /// Its IOVA bookkeeping.
    #[pin]
    pub(crate) iopt: Mutex<IoPagetable>,
    /// Held while a device picks or makes its automatic HWPT here, so that
    /// devices attaching at once share one (C's `ioas->mutex`).
    #[pin]
    pub(crate) auto_domain_lock: Mutex<()>,
}

impl Ioas {
    /// Allocates an empty IOAS.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                iopt <- new_mutex!(IoPagetable::new()),
                auto_domain_lock <- new_mutex!(()),
            }),
            GFP_KERNEL,
        )
    }
}

/// A user reference to an IOAS object, from [`get_ioas`]: while it lives,
/// `IOMMU_DESTROY` of the IOAS fails with `EBUSY`. Its [`id`] is the IOAS's
/// ID and it dereferences to the [`Ioas`].
///
/// [`id`]: ObjectPart::id
pub(crate) type IoasRef = ObjectPart<Ioas>;

/// Looks up an IOAS by ID: `ENOENT` if the ID is not an IOAS.
#[inline(always)]
pub(crate) fn get_ioas(ctx: &Context, id: u32) -> Result<IoasRef> {
    get_ioas_in(&ctx.objects, id)
}

/// Looks up an IOAS by ID in `table`: `ENOENT` if the ID is not an IOAS.
#[inline(always)]
pub(crate) fn get_ioas_in(table: &ObjectTable, id: u32) -> Result<IoasRef> {
    ioas_of(table.get(id)?).map_err(|_| ENOENT)
}

/// The IOAS behind a user reference, or the reference back if the object
/// is not one.
pub(crate) fn ioas_of(obj: ObjectRef) -> Result<IoasRef, ObjectRef> {
    obj.project(|kind| match kind {
        ObjectKind::Ioas(ioas) => Some(&**ioas),
        _ => None,
    })
}

const MAP_FIXED_IOVA: u32 = uapi::IOMMU_IOAS_MAP_FIXED_IOVA;
const MAP_WRITEABLE: u32 = uapi::IOMMU_IOAS_MAP_WRITEABLE;
const MAP_READABLE: u32 = uapi::IOMMU_IOAS_MAP_READABLE;
const MAP_FLAGS: u32 = MAP_FIXED_IOVA | MAP_WRITEABLE | MAP_READABLE;

/// Decodes the map flags shared by MAP, MAP_FILE and COPY: `EINVAL` if the
/// mapping would be neither readable nor writable.
fn map_flags(flags: u32, iova: u64) -> Result<(Prot, Placement)> {
    if flags & (MAP_WRITEABLE | MAP_READABLE) == 0 {
        return Err(EINVAL);
    }
    let prot = Prot {
        read: flags & MAP_READABLE != 0,
        write: flags & MAP_WRITEABLE != 0,
    };
    let placement = if flags & MAP_FIXED_IOVA != 0 {
        Placement::Fixed(iova)
    } else {
        Placement::Allocate
    };
    Ok((prot, placement))
}

/// Creates a pages object for `length` bytes of `kind` from `start` (user
/// VA or file offset) and maps it into `ioas`. Returns the IOVA.
pub(crate) fn map_memory(
    ctx: &Context,
    ioas: &Ioas,
    kind: PagesKind,
    start: u64,
    length: u64,
    prot: Prot,
    placement: Placement,
) -> Result<u64> {
    let (pages, start_byte) = Pages::for_request(PagesRequest {
        kind,
        start,
        length,
        writable: prot.write,
        ctx_mode: ctx.account_mode(),
    })?;
    let mut areas = [Some(new_area(pages, start_byte, length, prot)?)];
    let result = ioas.iopt.lock().map_areas(&mut areas, placement);
    result
}

/// `IOMMU_IOAS_ALLOC`: creates an empty IOAS.
pub(crate) fn alloc_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_ioas_alloc>) -> Result {
    if ucmd.cmd.flags != 0 {
        return Err(eopnotsupp());
    }
    let reservation = ctx.objects.reserve(ObjectKind::Ioas(Ioas::new()?))?;
    ucmd.cmd.out_ioas_id = reservation.id;
    // A failed copy-out drops the reservation: the IOAS never becomes visible.
    ucmd.respond()?;
    reservation.finalize();
    Ok(())
}

/// `IOMMU_IOAS_IOVA_RANGES`: reports the IOVA ranges that are not reserved.
///
/// Writes as many ranges as fit in `num_iovas`, always sets `num_iovas` to
/// the full count, and fails with `EMSGSIZE` if they did not all fit.
// Its table entry is its one caller: one stack frame for both.
#[inline(always)]
pub(crate) fn iova_ranges_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_ioas_iova_ranges>,
) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let ioas = get_ioas(ctx, ucmd.cmd.ioas_id)?;
    let iopt = ioas.iopt.lock();
    let max = ucmd.cmd.num_iovas;
    let mut count: u32 = 0;
    let mut out = UserPtr::from_addr(ucmd.cmd.allowed_iovas as usize);
    iopt.for_each_hole(|hole| {
        if count < max {
            let elem = uapi::iommu_iova_range {
                start: hole.start,
                last: hole.last,
            };
            UserSlice::new(out, size_of::<uapi::iommu_iova_range>())
                .writer()
                .write(&elem)?;
            out = out.wrapping_byte_add(size_of::<uapi::iommu_iova_range>());
        }
        count = count.saturating_add(1);
        Ok(())
    })?;
    ucmd.cmd.num_iovas = count;
    ucmd.cmd.out_iova_alignment = iopt.iova_alignment();
    drop(iopt);
    ucmd.respond()?;
    if count > max {
        return Err(EMSGSIZE);
    }
    Ok(())
}

/// `IOMMU_IOAS_ALLOW_IOVAS`: replaces the ranges the allocator may use.
pub(crate) fn allow_iovas_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_ioas_allow_iovas>,
) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let ioas = get_ioas(ctx, ucmd.cmd.ioas_id)?;
    let count = ucmd.cmd.num_iovas as usize;
    let elem = size_of::<uapi::iommu_iova_range>();
    let user = UserPtr::from_addr(ucmd.cmd.allowed_iovas as usize);
    let mut reader = UserSlice::new(user, count.saturating_mul(elem)).reader();
    // Each range is checked as it is read, so that errnos come in C's order.
    let mut allowed = AllowedRanges::new();
    for _ in 0..count {
        let r: uapi::iommu_iova_range = reader.read()?;
        allowed.add(IovaRange {
            start: r.start,
            last: r.last,
        })?;
    }
    let result = ioas.iopt.lock().set_allowed(allowed);
    result
}

/// `IOMMU_IOAS_MAP`: maps user memory.
// Its table entry is its one caller: one stack frame for both.
#[inline(always)]
pub(crate) fn map_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_ioas_map>) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags & !MAP_FLAGS != 0 || cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    if cmd.iova == u64::MAX || cmd.length == u64::MAX {
        return Err(EOVERFLOW);
    }
    let (prot, placement) = map_flags(cmd.flags, cmd.iova)?;
    let ioas = get_ioas(ctx, cmd.ioas_id)?;
    cmd.user_va.checked_add(cmd.length).ok_or(EOVERFLOW)?;
    let kind = PagesKind::User;
    ucmd.cmd.iova = map_memory(ctx, &ioas, kind, cmd.user_va, cmd.length, prot, placement)?;
    ucmd.respond()
}

/// `IOMMU_IOAS_MAP_FILE`: maps a range of a file (memfd).
pub(crate) fn map_file_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_ioas_map_file>,
) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags & !MAP_FLAGS != 0 {
        return Err(eopnotsupp());
    }
    if cmd.iova == u64::MAX || cmd.length == u64::MAX {
        return Err(EOVERFLOW);
    }
    let (prot, placement) = map_flags(cmd.flags, cmd.iova)?;
    let ioas = get_ioas(ctx, cmd.ioas_id)?;
    if cmd.length == 0 {
        return Err(EINVAL);
    }
    cmd.start.checked_add(cmd.length - 1).ok_or(EOVERFLOW)?;
    // A dma-buf (test builds: the test exporter's), else a file.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    let dmabuf = crate::sys::dmabuf::Dmabuf::get(cmd.fd);
    #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
    let dmabuf: Option<core::convert::Infallible> = None;
    let kind = match dmabuf {
        #[cfg(CONFIG_IOMMUFD_RS_TEST)]
        Some(buf) => PagesKind::Dmabuf(buf),
        #[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
        Some(never) => match never {},
        None => PagesKind::File(sys::file_from_fd(cmd.fd)?),
    };
    ucmd.cmd.iova = map_memory(ctx, &ioas, kind, cmd.start, cmd.length, prot, placement)?;
    ucmd.respond()
}

/// The test kernel's syzkaller hook on `IOAS_COPY`: with `FLAG_SYZ` set in
/// `flags`, the flag is cleared and `iova` is read as a (low 32 bits: nth
/// area, high 32 bits: offset) pair in IOAS `ioas_id`, turned into that
/// area's first IOVA plus offset, or 0 if there is no such area. Fuzzers
/// cannot guess live IOVAs; they can guess small area numbers.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
fn syz_conv_iova_id(ctx: &Context, ioas_id: u32, iova: &mut u64, flags: &mut u32) {
    if *flags & uapi::MOCK_FLAGS_ACCESS_SYZ == 0 {
        return;
    }
    *flags &= !uapi::MOCK_FLAGS_ACCESS_SYZ;
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

/// `IOMMU_IOAS_COPY`: maps memory already mapped in one IOAS into another
/// (or the same), sharing its pages objects.
// Its table entry is its one caller: one stack frame for both.
#[inline(always)]
pub(crate) fn copy_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_ioas_copy>) -> Result {
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    {
        let cmd = &mut *ucmd.cmd;
        syz_conv_iova_id(ctx, cmd.src_ioas_id, &mut cmd.src_iova, &mut cmd.flags);
    }
    let cmd = &ucmd.cmd;
    if cmd.flags & !MAP_FLAGS != 0 {
        return Err(eopnotsupp());
    }
    if cmd.length == u64::MAX || cmd.src_iova == u64::MAX || cmd.dst_iova == u64::MAX {
        return Err(EOVERFLOW);
    }
    let (prot, placement) = map_flags(cmd.flags, cmd.dst_iova)?;
    let mut areas = {
        let src = get_ioas(ctx, cmd.src_ioas_id)?;
        let areas = src.iopt.lock().copy_areas(cmd.src_iova, cmd.length, prot)?;
        areas
    };
    let dst = get_ioas(ctx, cmd.dst_ioas_id)?;
    ucmd.cmd.dst_iova = dst.iopt.lock().map_areas(areas.as_mut_slice(), placement)?;
    ucmd.respond()
}

/// Most times an unmap asks accesses to unpin before giving up with
/// `EDEADLOCK`, as C.
const MAX_UNMAP_TRIES: u32 = 100;

/// Unmaps the areas inside `[start, last]` of `ioas`, asking in-kernel
/// accesses to drop their pins on an area first. Returns the bytes
/// unmapped, with the result.
pub(crate) fn unmap_iova_range(ioas: &Ioas, start: u64, last: u64) -> (Result, u64) {
    unmap_iova_range_reporting(ioas, start, last, None)
}

/// [`unmap_iova_range`], reporting each area's dirty pages to `report`
/// just before it goes (under the IOAS lock, which then covers the
/// report's user copies); an error of `report` stops the unmap there.
pub(crate) fn unmap_iova_range_reporting(
    ioas: &Ioas,
    start: u64,
    last: u64,
    report: Option<&mut dyn FnMut(&DirtyPages<'_>) -> Result>,
) -> (Result, u64) {
    unmap_prepared(ioas, start, last, report, None).unwrap_or_else(|e| (Err(e), 0))
}

/// [`unmap_iova_range`], after `prepare` under the same first hold of the
/// IOAS lock: its error stops everything before anything is unmapped
/// (the outer `Err`).
pub(crate) fn unmap_iova_range_after(
    ioas: &Ioas,
    start: u64,
    last: u64,
    mut prepare: impl FnMut(&mut IoPagetable) -> Result,
) -> Result<(Result, u64)> {
    unmap_prepared(ioas, start, last, None, Some(&mut prepare))
}

/// The unmap loop of [`unmap_iova_range_reporting`] and
/// [`unmap_iova_range_after`] (one copy of it: `prepare` is dynamic).
fn unmap_prepared(
    ioas: &Ioas,
    start: u64,
    last: u64,
    mut report: Option<&mut dyn FnMut(&DirtyPages<'_>) -> Result>,
    mut prepare: Option<&mut dyn FnMut(&mut IoPagetable) -> Result>,
) -> Result<(Result, u64)> {
    let mut unmapped = 0u64;
    let mut from = start;
    let mut tries = 0u32;
    loop {
        let (result, accesses) = {
            let mut iopt = ioas.iopt.lock();
            if let Some(prepare) = prepare.take() {
                prepare(&mut iopt)?;
            }
            let (result, n) = iopt.unmap_range(from, last, report.as_deref_mut());
            unmapped = unmapped.wrapping_add(n);
            match result {
                Ok(()) => return Ok((Ok(()), unmapped)),
                Err(UnmapStop::Failed(e)) => return Ok((Err(e), unmapped)),
                Err(UnmapStop::Accessed {
                    iova,
                    length,
                    after_gap,
                }) => ((iova, length, after_gap), iopt.accesses()),
            }
        };
        let (iova, length, after_gap) = result;
        let accesses = match accesses {
            Ok(a) => a,
            Err(e) => return Ok((Err(e), unmapped)),
        };
        // As C: the count runs on across adjacent areas that each need
        // their accesses told, and starts again after a hole.
        if after_gap {
            tries = 0;
        }
        from = iova;
        for access in accesses.iter() {
            access.notify_unmap(iova, length);
        }
        tries += 1;
        if tries > MAX_UNMAP_TRIES {
            return Ok((Err(edeadlock()), unmapped));
        }
    }
}

/// `IOMMU_IOAS_UNMAP`: unmaps whole areas inside a range, or everything.
// Its table entry is its one caller: one stack frame for both.
#[inline(always)]
pub(crate) fn unmap_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_ioas_unmap>) -> Result {
    let (iova, length) = (ucmd.cmd.iova, ucmd.cmd.length);
    let ioas = get_ioas(ctx, ucmd.cmd.ioas_id)?;
    let unmapped = if iova == 0 && length == u64::MAX {
        let (rc, unmapped) = unmap_iova_range(&ioas, 0, u64::MAX);
        rc?;
        unmapped
    } else {
        if iova == u64::MAX || length == u64::MAX {
            return Err(EOVERFLOW);
        }
        if length == 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
        let (rc, unmapped) = unmap_iova_range(&ioas, iova, last);
        rc?;
        if unmapped == 0 {
            return Err(ENOENT);
        }
        unmapped
    };
    ucmd.cmd.length = unmapped;
    ucmd.respond()
}

/// `IOMMU_OPTION`: `RLIMIT_MODE` (global) and `HUGE_PAGES` (per IOAS).
/// On success only `val64` is written back.
pub(crate) fn option_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_option>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let (op, val) = (u32::from(ucmd.cmd.op), ucmd.cmd.val64);
    match ucmd.cmd.option_id {
        uapi::IOMMU_OPTION_RLIMIT_MODE => {
            if ucmd.cmd.object_id != 0 {
                return Err(eopnotsupp());
            }
            match op {
                uapi::IOMMU_OPTION_OP_GET => {
                    ucmd.cmd.val64 = u64::from(ctx.account_mode() == AccountMode::Mm);
                }
                uapi::IOMMU_OPTION_OP_SET => {
                    if !sys::capable(Capability::SysResource) {
                        return Err(EPERM);
                    }
                    ctx.set_account_mode(|| match val {
                        0 => Ok(AccountMode::User),
                        1 => Ok(AccountMode::Mm),
                        _ => Err(EINVAL),
                    })?;
                }
                _ => return Err(eopnotsupp()),
            }
        }
        uapi::IOMMU_OPTION_HUGE_PAGES => {
            let ioas = get_ioas(ctx, ucmd.cmd.object_id)?;
            match op {
                uapi::IOMMU_OPTION_OP_GET => {
                    ucmd.cmd.val64 = u64::from(ioas.iopt.lock().huge_pages());
                }
                uapi::IOMMU_OPTION_OP_SET => match val {
                    0 | 1 => ioas.iopt.lock().set_huge_pages(val == 1)?,
                    _ => return Err(EINVAL),
                },
                _ => return Err(eopnotsupp()),
            }
        }
        _ => return Err(eopnotsupp()),
    }
    ucmd.respond_field(
        core::mem::offset_of!(uapi::iommu_option, val64),
        size_of::<u64>(),
    )
}

/// `IOMMU_IOAS_CHANGE_PROCESS`: makes the calling process the owner of the
/// memory of every IOAS. Only file-backed memory can move (`EINVAL`).
pub(crate) fn change_process_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_ioas_change_process>,
) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let mm = kernel::current!()
        .mm()
        .map(|mm| ARef::from(&**mm))
        .ok_or(EINVAL)?;
    let all = ctx.objects.ioas_list()?;
    for ioas in all.iter() {
        ioas.iopt
            .lock()
            .for_each_area_pages(|pages| if pages.is_file() { Ok(()) } else { Err(EINVAL) })?;
    }
    for ioas in all.iter() {
        ioas.iopt
            .lock()
            .for_each_area_pages(|pages| pages.made().ok_or(EINVAL)?.change_owner(&mm))?;
    }
    Ok(())
}
