// SPDX-License-Identifier: GPL-2.0

//! IOAS objects and their ioctls.

use crate::{
    context::Context,
    io_pagetable::IoPagetable,
    ioctl::{eopnotsupp, Ucmd},
    object::{ObjectKind, ObjectRef},
    uapi,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice},
};

/// An IO address space.
#[pin_data]
pub(crate) struct Ioas {
    /// Its IOVA bookkeeping.
    #[pin]
    pub(crate) iopt: Mutex<IoPagetable>,
}

impl Ioas {
    /// Allocates an empty IOAS.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self { iopt <- new_mutex!(IoPagetable::new()) }),
            GFP_KERNEL,
        )
    }
}

/// Looks up an IOAS by ID: `ENOENT` if the ID is not an IOAS.
pub(crate) fn get_ioas(ctx: &Context, id: u32) -> Result<(ObjectRef, Arc<Ioas>)> {
    let obj = ctx.objects.get(id)?;
    match &obj.object().kind {
        ObjectKind::Ioas(ioas) => {
            let ioas = ioas.clone();
            Ok((obj, ioas))
        }
    }
}

/// `IOMMU_IOAS_ALLOC`: creates an empty IOAS.
pub(crate) fn alloc_ioctl(ctx: &Context, ucmd: &mut Ucmd<uapi::iommu_ioas_alloc>) -> Result {
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

/// `IOMMU_IOAS_IOVA_RANGES`: reports the usable IOVA ranges.
///
/// Writes as many ranges as fit in `num_iovas`, always sets `num_iovas` to
/// the full count, and fails with `EMSGSIZE` if they did not all fit.
pub(crate) fn iova_ranges_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<uapi::iommu_ioas_iova_ranges>,
) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(eopnotsupp());
    }
    let (_obj, ioas) = get_ioas(ctx, ucmd.cmd.ioas_id)?;
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
                .write_slice(elem.as_bytes())?;
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
