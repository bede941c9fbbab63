// SPDX-License-Identifier: GPL-2.0

//! `IOMMU_TEST_CMD`: the test interface the upstream selftests
//! (tools/testing/selftests/iommu) drive, ABI-identical to Linux 7.2's
//! `drivers/iommu/iommufd/iommufd_test.h` (our copy: `iommufd_test.h`).
//!
//! Built only with `CONFIG_IOMMUFD_RS_TEST`: it lets userspace reserve IOVA
//! and inspect page pins, which no production system should allow.
//!
//! Implemented: `ADD_RESERVED`, `MD_CHECK_REFS`, `SET_TEMP_MEMORY_LIMIT`,
//! and the in-kernel access ops (`CREATE_ACCESS`, `ACCESS_PAGES`,
//! `DESTROY_ACCESS_PAGES`, `ACCESS_RW`, `ACCESS_REPLACE_IOAS`). Every other
//! op answers `EOPNOTSUPP`.

use crate::{
    access::{Access, AccessOps, RwFlags},
    context::Context,
    io_pagetable::IovaRange,
    ioas::get_ioas,
    mock,
    sys::{
        anon_file, dmabuf,
        errno::{ebade, eopnotsupp},
        pin, PAGE_SIZE_U64,
    },
    uapi,
    ucmd::Ucmd,
};
use kernel::{
    bindings,
    fs::file::FileDescriptorReservation,
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// Largest range the access ops take, as C's test (16 MiB).
const MAX_ACCESS_LENGTH: u64 = 16 << 20;

/// Pages pinned through a test access: one `ACCESS_PAGES` call.
struct AccessItem {
    iova: u64,
    length: u64,
    id: u32,
}

/// The pins a test access holds, by item.
struct AccessItems {
    /// Unbounded, as C's list: kvmalloc'ed past what kmalloc can give.
    items: KVVec<AccessItem>,
    /// The next item's ID: from 0, never reused.
    next_id: u32,
}

/// A test access's own data: its items.
#[pin_data]
pub(crate) struct TestAccess {
    #[pin]
    items: Mutex<AccessItems>,
}

impl AccessOps for TestAccess {
    fn unmap(&self, access: &Access<Self>, iova: u64, length: u64) {
        let last = iova.wrapping_add(length).wrapping_sub(1);
        let mut st = self.items.lock();
        st.items.retain(|item| {
            // An item may end at the top of the IOVA space: wrap, as C.
            let item_last = item.iova.wrapping_add(item.length).wrapping_sub(1);
            if iova > item_last || last < item.iova {
                return true;
            }
            access.unpin_pages(item.iova, item.length);
            false
        });
    }
}

/// What an access file owns: the access, destroyed when the file goes.
struct AccessFileData {
    access: Arc<Access<TestAccess>>,
}

impl Drop for AccessFileData {
    fn drop(&mut self) {
        self.access.data.unmap(&self.access, 0, u64::MAX);
        Access::destroy(&self.access);
    }
}

/// `CREATE_ACCESS`: an access on IOAS `cmd.id`, handed out as a file.
fn create_access(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let flags = ucmd.cmd.create_access_flags();
    if flags & !uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0 {
        return Err(eopnotsupp());
    }
    let fd =
        FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC).map_err(|_| ENOMEM)?;
    let needs_pin = flags != 0;
    let data = pin_init!(TestAccess {
        items <- new_mutex!(AccessItems { items: KVVec::new(), next_id: 0 }),
    });
    let access = Access::create(&ctx.objects, ucmd.cmd.id, needs_pin, data)?;
    let file_data = KBox::new(AccessFileData { access }, GFP_KERNEL)?;
    ucmd.cmd.__bindgen_anon_1.create_access.out_access_fd = fd.reserved_fd();
    ucmd.respond()?;
    anon_file::install(fd, file_data)
}

/// `ACCESS_PAGES`: pins a range through an access and checks that the
/// pages are those behind `uptr`.
fn access_pages(ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let mut req = ucmd.cmd.access_pages();
    if req.length > MAX_ACCESS_LENGTH {
        return Err(ENOMEM);
    }
    if req.flags & !(uapi::MOCK_FLAGS_ACCESS_WRITE | FLAG_SYZ) != 0 {
        return Err(eopnotsupp());
    }
    anon_file::with_access_file(ucmd.cmd.id, |file: &AccessFileData| {
        let access = &file.access;
        if !access.needs_pin() {
            return Err(eopnotsupp());
        }
        if req.flags & FLAG_SYZ != 0 {
            req.iova = access.syz_iova(req.iova);
        }
        let mut st = access.data.items.lock();
        let write = req.flags & uapi::MOCK_FLAGS_ACCESS_WRITE != 0;
        let pfns = access.pin_pages(req.iova, req.length, write)?;
        let result = (|| {
            if req.uptr != 0 {
                // As C: one user page per page the IOVA range touches, from
                // `uptr` less the IOVA's page offset (wrapping). An area
                // may start mid-page in IOVA yet page aligned in memory;
                // then fewer pages were pinned, and a missing one differs.
                let page_mask = PAGE_SIZE_U64 - 1;
                let end = req.iova.wrapping_add(req.length).wrapping_add(page_mask) & !page_mask;
                let npages = end.wrapping_sub(req.iova & !page_mask) / PAGE_SIZE_U64;
                let base = req.uptr.wrapping_sub(req.iova & page_mask);
                for i in 0..npages {
                    let addr = base.wrapping_add(i * PAGE_SIZE_U64);
                    let user = pin::user_page_pfn(usize::try_from(addr).map_err(|_| EFAULT)?)?;
                    if usize::try_from(i).ok().and_then(|i| pfns.get(i)) != Some(&user) {
                        return Err(ebade());
                    }
                }
            }
            // As C, an ID is used up once its item exists, even if the
            // answer then cannot be written back.
            let id = st.next_id;
            let item = AccessItem {
                iova: req.iova,
                length: req.length,
                id,
            };
            st.items.push(item, GFP_KERNEL)?;
            st.next_id = st.next_id.wrapping_add(1);
            ucmd.cmd.__bindgen_anon_1.access_pages.out_access_pages_id = id;
            if let Err(e) = ucmd.respond() {
                st.items.pop();
                return Err(e);
            }
            Ok(())
        })();
        if result.is_err() {
            access.unpin_pages(req.iova, req.length);
        }
        result
    })
}

/// `DESTROY_ACCESS_PAGES`: drops one `ACCESS_PAGES` item.
fn destroy_access_pages(ucmd: &Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let id = ucmd.cmd.access_pages_id();
    anon_file::with_access_file(ucmd.cmd.id, |file: &AccessFileData| {
        let access = &file.access;
        let mut st = access.data.items.lock();
        let pos = st.items.iter().position(|i| i.id == id).ok_or(ENOENT)?;
        let item = st.items.remove(pos).map_err(|_| ENOENT)?;
        access.unpin_pages(item.iova, item.length);
        Ok(())
    })
}

/// `ACCESS_RW`: reads or writes IOAS memory through an access.
fn access_rw(ucmd: &Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let mut req = ucmd.cmd.access_rw();
    if req.length > MAX_ACCESS_LENGTH {
        return Err(ENOMEM);
    }
    let known = uapi::MOCK_ACCESS_RW_WRITE | uapi::MOCK_ACCESS_RW_SLOW_PATH | FLAG_SYZ;
    if req.flags & !known != 0 {
        return Err(eopnotsupp());
    }
    anon_file::with_access_file(ucmd.cmd.id, |file: &AccessFileData| {
        let access = &file.access;
        let len = req.length as usize;
        let mut tmp = KVVec::<u8>::with_capacity(len, GFP_KERNEL)?;
        tmp.resize(len, 0, GFP_KERNEL)?;
        let user = UserSlice::new(UserPtr::from_addr(req.uptr as usize), len);
        let write = req.flags & uapi::MOCK_ACCESS_RW_WRITE != 0;
        if write {
            user.reader().read_slice(&mut tmp)?;
        }
        if req.flags & FLAG_SYZ != 0 {
            req.iova = access.syz_iova(req.iova);
        }
        let flags = RwFlags {
            write,
            slow_path: req.flags & uapi::MOCK_ACCESS_RW_SLOW_PATH != 0,
            kthread: false,
        };
        access.rw(req.iova, &mut tmp, flags)?;
        if !write {
            UserSlice::new(UserPtr::from_addr(req.uptr as usize), len)
                .writer()
                .write_slice(&tmp)?;
        }
        Ok(())
    })
}

/// `MOCK_FLAGS_ACCESS_SYZ`: in a map flag word, asks for the syzkaller IOVA
/// encoding below.
const FLAG_SYZ: u32 = uapi::MOCK_FLAGS_ACCESS_SYZ;

/// `IOMMU_TEST_CMD`: 0, or for `DMABUF_GET` the new descriptor.
pub(crate) fn test_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>,
) -> Result<isize> {
    match ucmd.cmd.op {
        uapi::IOMMU_TEST_OP_DMABUF_GET => {
            let (open_flags, length) = ucmd.cmd.dmabuf_get();
            dmabuf::test_dmabuf_get(open_flags, u64::from(length)).map(|fd| fd as isize)
        }
        uapi::IOMMU_TEST_OP_DMABUF_REVOKE => {
            let (fd, revoked) = ucmd.cmd.dmabuf_revoke();
            dmabuf::test_dmabuf_revoke(fd, revoked != 0).map(|()| 0)
        }
        _ => test_op(ctx, ucmd).map(|()| 0),
    }
}

/// The test ops that answer nothing.
fn test_op(ctx: &Context, ucmd: &mut Ucmd<'_, uapi::iommu_test_cmd>) -> Result {
    let cmd = &ucmd.cmd;
    match ucmd.cmd.op {
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
        uapi::IOMMU_TEST_OP_RS_PIN_FLOOR => {
            let (length, uptr, refs) = cmd.check_refs();
            let unaligned = (length | uptr) % PAGE_SIZE_U64 != 0;
            if refs != 0 || length == 0 || unaligned {
                return Err(EINVAL);
            }
            let uptr = usize::try_from(uptr).map_err(|_| EINVAL)?;
            let npages = usize::try_from(length / PAGE_SIZE_U64).map_err(|_| EINVAL)?;
            pin::pin_unpin_floor(uptr, npages)
        }
        uapi::IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => {
            let limit = cmd.memory_limit();
            // Page batches need room for at least one entry.
            if (limit as usize) < size_of::<usize>() + size_of::<u32>() {
                return Err(EINVAL);
            }
            crate::pages::set_temp_memory_limit(u64::from(limit));
            Ok(())
        }
        uapi::IOMMU_TEST_OP_MOCK_DOMAIN | uapi::IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS => {
            mock::mock_domain(&ctx.objects, ucmd)
        }
        uapi::IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE => mock::replace(&ctx.objects, ucmd),
        uapi::IOMMU_TEST_OP_PASID_ATTACH => mock::pasid_attach(&ctx.objects, ucmd),
        uapi::IOMMU_TEST_OP_PASID_REPLACE => mock::pasid_replace(&ctx.objects, ucmd),
        uapi::IOMMU_TEST_OP_PASID_DETACH => {
            mock::pasid_detach(&ctx.objects, ucmd.cmd.id, ucmd.cmd.pasid_detach())
        }
        uapi::IOMMU_TEST_OP_PASID_CHECK_HWPT => {
            let (pasid, hwpt_id) = ucmd.cmd.pasid_check();
            mock::pasid_check_hwpt(&ctx.objects, ucmd.cmd.id, pasid, hwpt_id)
        }
        uapi::IOMMU_TEST_OP_MD_CHECK_MAP => {
            let (iova, length, uptr) = ucmd.cmd.check_map();
            mock::check_map(&ctx.objects, ucmd.cmd.id, iova, length, uptr)
        }
        uapi::IOMMU_TEST_OP_DIRTY => mock::set_dirty(&ctx.objects, ucmd),
        uapi::IOMMU_TEST_OP_MD_CHECK_IOTLB => {
            let (index, value) = ucmd.cmd.check_iotlb();
            mock::check_iotlb(&ctx.objects, ucmd.cmd.id, index, value)
        }
        uapi::IOMMU_TEST_OP_TRIGGER_IOPF => mock::trigger_iopf(&ctx.objects, ucmd.cmd),
        uapi::IOMMU_TEST_OP_TRIGGER_VEVENT => {
            crate::viommu::trigger_vevent(&ctx.objects, ucmd.cmd.trigger_vevent_dev_id())
        }
        uapi::IOMMU_TEST_OP_DEV_CHECK_CACHE => {
            let (index, value) = ucmd.cmd.check_dev_cache();
            mock::check_dev_cache(&ctx.objects, ucmd.cmd.id, index, value)
        }
        uapi::IOMMU_TEST_OP_CREATE_ACCESS => create_access(ctx, ucmd),
        uapi::IOMMU_TEST_OP_ACCESS_PAGES => access_pages(ucmd),
        uapi::IOMMU_TEST_OP_DESTROY_ACCESS_PAGES => destroy_access_pages(ucmd),
        uapi::IOMMU_TEST_OP_ACCESS_RW => access_rw(ucmd),
        uapi::IOMMU_TEST_OP_ACCESS_REPLACE_IOAS => {
            let ioas_id = ucmd.cmd.replace_ioas_id();
            anon_file::with_access_file(ucmd.cmd.id, |file: &AccessFileData| {
                Access::replace(&file.access, ioas_id)
            })
        }
        _ => Err(eopnotsupp()),
    }
}
