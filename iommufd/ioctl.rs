// SPDX-License-Identifier: GPL-2.0

//! The ioctl table and the extensible-struct rules.
//!
//! Every iommufd ioctl takes a struct that starts with `__u32 size`. The
//! table below gives, for each ioctl, its number, the kernel's struct size
//! and the smallest size userspace may pass (the end of the last mandatory
//! field). [`dispatch`] applies the rules once for all of them:
//!
//! - a size below the minimum is `EINVAL`;
//! - bytes past the kernel's struct must be zero, else `E2BIG`;
//! - a missing tail reads as zero;
//! - an unknown ioctl number is `ENOTTY`.
//!
//! Handlers check their own reserved fields and flags (`EOPNOTSUPP`).

use crate::{
    context::{Context, Node},
    ioas,
    sys::misc::{ioctl_return, FileOps, OpenFile},
    uapi,
    ucmd::Ucmd,
};
use core::mem::{offset_of, size_of, MaybeUninit};
use kernel::{
    ioctl::_IOC_NR,
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::UserPtr,
};

/// One entry of the ioctl table.
pub(crate) struct IoctlOp {
    /// Full ioctl number.
    num: u32,
    /// Size of the kernel's struct.
    size: usize,
    /// Smallest size userspace may pass.
    min_size: usize,
    /// Runs the ioctl `(ctx, cmd, arg)` whose command index is this
    /// entry's: checks the full number and the size word, reads the
    /// struct and runs the handler. Returns the ioctl's return value or a
    /// negated errno.
    execute: IoctlFn,
}

/// Runs one ioctl `(ctx, cmd, arg)`: its return value or a negated errno.
type IoctlFn = fn(&Context, u32, usize) -> isize;

/// Size of the field that `_get` projects to; used for `min_size`.
const fn field_size<T, F>(_get: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

// The vIOMMU ioctls exist for the mock IOMMU only, in test builds.
#[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
use self::{
    not_implemented as viommu_alloc_ioctl, not_implemented as vdevice_alloc_ioctl,
    not_implemented as veventq_alloc_ioctl, not_implemented as hw_queue_alloc_ioctl,
};
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
use crate::viommu::{
    hw_queue_alloc_ioctl, vdevice_alloc_ioctl, veventq_alloc_ioctl, viommu_alloc_ioctl,
};

/// What a handler answers: nothing (the ioctl returns 0) or a value (a
/// test op's new descriptor).
trait IoctlValue {
    /// The ioctl's return value.
    fn value(self) -> isize;
}

impl IoctlValue for () {
    fn value(self) -> isize {
        0
    }
}

impl IoctlValue for isize {
    fn value(self) -> isize {
        self
    }
}

/// Builds a table entry: `op!(NUMBER, struct, last_mandatory_field, handler)`.
macro_rules! op {
    ($num:expr, $ty:ty, $last:ident, $handler:path) => {{
        const MIN_SIZE: usize = offset_of!($ty, $last) + field_size(|c: &$ty| &c.$last);
        IoctlOp {
            num: $num,
            size: size_of::<$ty>(),
            min_size: MIN_SIZE,
            execute: |ctx, cmd, arg| {
                run::<$ty, _>(
                    ctx,
                    cmd,
                    UserPtr::from_addr(arg),
                    $num,
                    MIN_SIZE,
                    |ctx, ucmd| $handler(ctx, ucmd).map(IoctlValue::value),
                )
            },
        }
    }};
}

/// The body of every table entry's `execute`, for an ioctl numbered `num`
/// whose struct is a `T` of at least `min_size` bytes. Inlined into each,
/// so that the checks compare with constants.
#[inline(always)]
fn run<T: FromBytes + AsBytes, F>(
    ctx: &Context,
    cmd: u32,
    user: UserPtr,
    num: u32,
    min_size: usize,
    handler: F,
) -> isize
where
    F: FnOnce(&Context, &mut Ucmd<'_, T>) -> Result<isize>,
{
    // As in C: the size word is read (EFAULT) before the number is matched.
    let user_size = match crate::sys::get_user_u32(user) {
        Ok(size) => size as usize,
        Err(e) => return ioctl_return(Err(e)),
    };
    if cmd != num {
        return ioctl_return(Err(ENOTTY));
    }
    if user_size < min_size {
        return ioctl_return(Err(EINVAL));
    }
    let mut slot = MaybeUninit::<T>::uninit();
    ioctl_return(
        Ucmd::read(&mut slot, user, user_size).and_then(|mut ucmd| handler(ctx, &mut ucmd)),
    )
}

/// Number of table slots: one per command index up to the last one.
#[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
const TABLE_LEN: usize = index(uapi::IOMMU_HW_QUEUE_ALLOC) + 1;
/// Number of table slots: up to `IOMMU_TEST_CMD`, far past the others.
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
const TABLE_LEN: usize = index(uapi::IOMMU_TEST_CMD) + 1;

/// The entry of a command index with no ioctl: `ENOTTY`, once the size
/// word has been read (`EFAULT`), as for a known index with the wrong
/// number. Its number, 0, matches no command of the table's range.
const NO_IOCTL: IoctlOp = IoctlOp {
    num: 0,
    size: 0,
    min_size: 0,
    execute: |_, _, arg| {
        ioctl_return(crate::sys::get_user_u32(UserPtr::from_addr(arg)).and(Err(ENOTTY)))
    },
};

/// The table, indexed by `_IOC_NR(cmd) - IOMMUFD_CMD_BASE`. Every ioctl of
/// the 7.2 ABI has its entry, so the size rules hold for all of them even
/// before their handler exists.
const OPS: [IoctlOp; TABLE_LEN] = {
    let mut ops = [const { NO_IOCTL }; TABLE_LEN];
    ops[index(uapi::IOMMU_DESTROY)] =
        op!(uapi::IOMMU_DESTROY, uapi::iommu_destroy, id, destroy_ioctl);
    ops[index(uapi::IOMMU_IOAS_ALLOC)] = op!(
        uapi::IOMMU_IOAS_ALLOC,
        uapi::iommu_ioas_alloc,
        out_ioas_id,
        ioas::alloc_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_ALLOW_IOVAS)] = op!(
        uapi::IOMMU_IOAS_ALLOW_IOVAS,
        uapi::iommu_ioas_allow_iovas,
        allowed_iovas,
        ioas::allow_iovas_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_COPY)] = op!(
        uapi::IOMMU_IOAS_COPY,
        uapi::iommu_ioas_copy,
        src_iova,
        ioas::copy_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_IOVA_RANGES)] = op!(
        uapi::IOMMU_IOAS_IOVA_RANGES,
        uapi::iommu_ioas_iova_ranges,
        out_iova_alignment,
        ioas::iova_ranges_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_MAP)] = op!(
        uapi::IOMMU_IOAS_MAP,
        uapi::iommu_ioas_map,
        iova,
        ioas::map_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_UNMAP)] = op!(
        uapi::IOMMU_IOAS_UNMAP,
        uapi::iommu_ioas_unmap,
        length,
        ioas::unmap_ioctl
    );
    ops[index(uapi::IOMMU_OPTION)] = op!(
        uapi::IOMMU_OPTION,
        uapi::iommu_option,
        val64,
        ioas::option_ioctl
    );
    ops[index(uapi::IOMMU_VFIO_IOAS)] = op!(
        uapi::IOMMU_VFIO_IOAS,
        uapi::iommu_vfio_ioas,
        __reserved,
        crate::vfio_compat::vfio_ioas_ioctl
    );
    ops[index(uapi::IOMMU_HWPT_ALLOC)] = op!(
        uapi::IOMMU_HWPT_ALLOC,
        uapi::iommu_hwpt_alloc,
        __reserved,
        crate::hw_pagetable::alloc_ioctl
    );
    ops[index(uapi::IOMMU_GET_HW_INFO)] = op!(
        uapi::IOMMU_GET_HW_INFO,
        uapi::iommu_hw_info,
        __reserved,
        crate::device::get_hw_info_ioctl
    );
    ops[index(uapi::IOMMU_HWPT_SET_DIRTY_TRACKING)] = op!(
        uapi::IOMMU_HWPT_SET_DIRTY_TRACKING,
        uapi::iommu_hwpt_set_dirty_tracking,
        __reserved,
        crate::hw_pagetable::set_dirty_tracking_ioctl
    );
    ops[index(uapi::IOMMU_HWPT_GET_DIRTY_BITMAP)] = op!(
        uapi::IOMMU_HWPT_GET_DIRTY_BITMAP,
        uapi::iommu_hwpt_get_dirty_bitmap,
        data,
        crate::hw_pagetable::get_dirty_bitmap_ioctl
    );
    ops[index(uapi::IOMMU_HWPT_INVALIDATE)] = op!(
        uapi::IOMMU_HWPT_INVALIDATE,
        uapi::iommu_hwpt_invalidate,
        __reserved,
        crate::hw_pagetable::invalidate_ioctl
    );
    ops[index(uapi::IOMMU_FAULT_QUEUE_ALLOC)] = op!(
        uapi::IOMMU_FAULT_QUEUE_ALLOC,
        uapi::iommu_fault_alloc,
        out_fault_fd,
        crate::eventq::fault_alloc_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_MAP_FILE)] = op!(
        uapi::IOMMU_IOAS_MAP_FILE,
        uapi::iommu_ioas_map_file,
        iova,
        ioas::map_file_ioctl
    );
    ops[index(uapi::IOMMU_VIOMMU_ALLOC)] = op!(
        uapi::IOMMU_VIOMMU_ALLOC,
        uapi::iommu_viommu_alloc,
        out_viommu_id,
        viommu_alloc_ioctl
    );
    ops[index(uapi::IOMMU_VDEVICE_ALLOC)] = op!(
        uapi::IOMMU_VDEVICE_ALLOC,
        uapi::iommu_vdevice_alloc,
        virt_id,
        vdevice_alloc_ioctl
    );
    ops[index(uapi::IOMMU_IOAS_CHANGE_PROCESS)] = op!(
        uapi::IOMMU_IOAS_CHANGE_PROCESS,
        uapi::iommu_ioas_change_process,
        __reserved,
        ioas::change_process_ioctl
    );
    ops[index(uapi::IOMMU_VEVENTQ_ALLOC)] = op!(
        uapi::IOMMU_VEVENTQ_ALLOC,
        uapi::iommu_veventq_alloc,
        out_veventq_fd,
        veventq_alloc_ioctl
    );
    ops[index(uapi::IOMMU_HW_QUEUE_ALLOC)] = op!(
        uapi::IOMMU_HW_QUEUE_ALLOC,
        uapi::iommu_hw_queue_alloc,
        length,
        hw_queue_alloc_ioctl
    );
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    {
        ops[index(uapi::IOMMU_TEST_CMD)] = op!(
            uapi::IOMMU_TEST_CMD,
            uapi::iommu_test_cmd,
            last,
            crate::selftest::test_ioctl
        );
    }
    ops
};

/// `IOMMU_DESTROY`: destroys any object by ID. Destroying a mock device
/// also detaches it and removes its device object.
// Its table entry is its one caller: one stack frame for both.
#[inline(always)]
pub(crate) fn destroy_ioctl(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_destroy>) -> Result {
    let removed = ctx.objects.remove(ucmd.cmd.id)?;
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    if let Some(obj) = &removed {
        if let crate::object::ObjectKind::MockDevice(dev) = &obj.kind {
            dev.destroyed(&ctx.objects);
        }
    }
    drop(removed);
    Ok(())
}

/// An open /dev/iommu (or /dev/vfio/vfio): its ioctls go through the table.
impl FileOps for Context {
    type NodeData = Node;

    fn open(node: &Node, file: OpenFile) -> Result<Pin<KBox<Self>>> {
        Context::new(node, file)
    }

    #[inline]
    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> isize {
        dispatch(&this, cmd, arg)
    }

    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    fn mmap(this: Pin<&Self>, vma: &kernel::mm::virt::VmaNew) -> Result {
        crate::viommu::mmap(&this, vma)
    }
}

/// Handler of the ioctls this module does not implement yet: they pass the
/// size rules, then answer `ENOTTY` (production builds: the vIOMMU ones).
#[cfg(not(CONFIG_IOMMUFD_RS_TEST))]
fn not_implemented<T>(_ctx: &Context, _ucmd: &mut Ucmd<'_, T>) -> Result {
    Err(ENOTTY)
}

/// Table index of an ioctl number known to be in range.
const fn index(num: u32) -> usize {
    (_IOC_NR(num) - uapi::IOMMUFD_CMD_BASE) as usize
}

/// Looks up the table entry for `cmd`.
fn lookup(cmd: u32) -> Option<&'static IoctlOp> {
    slot(cmd).filter(|op| op.num == cmd)
}

/// The table slot for `cmd`'s command index, if it is in the table's range.
fn slot(cmd: u32) -> Option<&'static IoctlOp> {
    let nr = _IOC_NR(cmd).checked_sub(uapi::IOMMUFD_CMD_BASE)?;
    OPS.get(nr as usize)
}

/// What runs an ioctl, by its command index (`_IOC_NR`): the iommufd
/// table's entries in its range, the VFIO container ioctls elsewhere. All
/// 256 indexes, so that dispatch is one indexed jump.
static DISPATCH: [IoctlFn; 256] = {
    let mut all: [IoctlFn; 256] = [crate::vfio_compat::ioctl; 256];
    let base = uapi::IOMMUFD_CMD_BASE as usize;
    let mut i = 0;
    while i < TABLE_LEN {
        all[base + i] = OPS[i].execute;
        i += 1;
    }
    all
};

/// Runs one ioctl on a context: its return value or a negated errno.
/// Numbers outside the iommufd table are VFIO container ioctls.
///
/// Inlined into the VFS's entry point, where it is one tail call through
/// [`DISPATCH`], so that the common path builds no stack frame of its own.
#[inline]
pub(crate) fn dispatch(ctx: &Context, cmd: u32, arg: usize) -> isize {
    DISPATCH[(_IOC_NR(cmd) & 0xff) as usize](ctx, cmd, arg)
}

#[kunit_tests(iommufd_rs_ioctl)]
mod tests {
    use super::*;

    #[test]
    fn minimum_sizes() {
        // The minimum is the end of the last field that was in the first
        // version of each struct.
        assert_eq!(lookup(uapi::IOMMU_DESTROY).map(|op| op.min_size), Some(8));
        assert_eq!(
            lookup(uapi::IOMMU_IOAS_ALLOC).map(|op| op.min_size),
            Some(12)
        );
        assert_eq!(
            lookup(uapi::IOMMU_IOAS_IOVA_RANGES).map(|op| op.min_size),
            Some(32)
        );
    }

    #[test]
    fn table_lookup() {
        assert!(lookup(uapi::IOMMU_DESTROY).is_some());
        assert!(lookup(uapi::IOMMU_IOAS_ALLOC).is_some());
        // Right number, wrong type byte.
        assert!(lookup(uapi::IOMMU_DESTROY ^ 0x100).is_none());
        // Below the command base.
        assert!(lookup(kernel::ioctl::_IO(u32::from(uapi::IOMMUFD_TYPE), 0x10)).is_none());
        // Every slot up to the last 7.2 ioctl is filled: they are dense.
        assert!(OPS[..=index(uapi::IOMMU_HW_QUEUE_ALLOC)]
            .iter()
            .all(|op| op.num != 0));
        for op in OPS.iter().filter(|op| op.num != 0) {
            assert!(op.min_size >= size_of::<u32>());
            assert!(op.min_size <= op.size);
        }
    }
}
