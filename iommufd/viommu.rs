// SPDX-License-Identifier: GPL-2.0

//! vIOMMU objects (`IOMMU_VIOMMU_ALLOC`), the virtual devices on them
//! (`IOMMU_VDEVICE_ALLOC`) and their event queues (`IOMMU_VEVENTQ_ALLOC`),
//! for the test interface's mock IOMMU (real IOMMUs: not yet; test builds
//! only).
//!
//! A vIOMMU holds a user reference on its nest-parent paging HWPT; nested
//! HWPTs made on it, its virtual devices and its event queues hold one on
//! it. A device has at most one virtual device, and a virtual ID names at
//! most one device per vIOMMU. A device whose RID attaches to a nested
//! HWPT of a vIOMMU must have a virtual device there; the mock device then
//! reports events under that virtual ID. When a device goes, its virtual
//! device goes with it and leaves its ID taken (a tombstone) until the
//! file closes, as in C.

use crate::{
    access::{Access, AccessOps},
    context::Context,
    eventq::{install_queue_file, open_queue_file},
    hw_pagetable::HwptPaging,
    mock::MockDevice,
    object::{ObjectKind, ObjectRef, ObjectTable},
    sys::{
        errno::eopnotsupp,
        event_file::{EventQueue, POLL_READABLE},
        misc::FileHold,
        mmap::{map_pages, vma_request, MappedPages},
        PAGE_SIZE_U64,
    },
    uapi,
    ucmd::{read_prefix, read_user_struct, Ucmd},
};
use core::mem::size_of;
use kernel::{
    mm::virt::VmaNew,
    new_mutex, new_poll_condvar,
    prelude::*,
    sync::{poll::PollCondVar, Arc, Mutex, SetOnce},
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};

/// A virtual device's entry in its vIOMMU.
struct VdevEntry {
    /// The virtual ID, unique in the vIOMMU.
    virt_id: u64,
    /// The device object's ID.
    idev_id: u32,
    /// The mock device, whose cache invalidation reaches.
    dev: Arc<MockDevice>,
}

/// What a vIOMMU's lock guards.
struct ViommuState {
    /// Its virtual devices.
    vdevs: KVec<VdevEntry>,
    /// Its event queues, at most one per type.
    queues: KVec<Arc<VeventQueue>>,
    /// The object IDs of its HW queues, by index.
    hw_queues: [Option<u32>; HW_QUEUE_MAX],
}

/// HW queues a mock vIOMMU has.
const HW_QUEUE_MAX: usize = uapi::IOMMU_TEST_HW_QUEUE_MAX as usize;

/// A vIOMMU (`IOMMUFD_OBJ_VIOMMU`) of the mock IOMMU.
#[pin_data]
pub(crate) struct Viommu {
    /// A user reference on the nest-parent paging HWPT.
    parent_obj: ObjectRef,
    #[pin]
    state: Mutex<ViommuState>,
    /// The mock's MMIO pages, when made with driver data.
    mmio: SetOnce<Mmio>,
}

impl Viommu {
    /// The nest-parent paging HWPT.
    fn parent(&self) -> Result<&HwptPaging> {
        match &self.parent_obj.object().kind {
            ObjectKind::HwptPaging(p) => Ok(p),
            _ => Err(EINVAL),
        }
    }

    /// The virtual ID device object `idev_id` has here, if any.
    pub(crate) fn virt_id_of(&self, idev_id: u32) -> Option<u64> {
        let st = self.state.lock();
        st.vdevs
            .iter()
            .find(|v| v.idev_id == idev_id)
            .map(|v| v.virt_id)
    }

    /// Queues an event of `kind` with `data` on the vIOMMU's queue of that
    /// type: `EOPNOTSUPP` if there is none. A full queue (or no memory)
    /// records the loss instead.
    pub(crate) fn report_event(&self, kind: u32, data: &[u8]) -> Result {
        let queue = {
            let st = self.state.lock();
            st.queues.iter().find(|q| q.kind == kind).cloned()
        };
        queue.ok_or_else(eopnotsupp)?.report(data)
    }

    /// `IOMMU_HWPT_INVALIDATE` on the vIOMMU: clears the device cache
    /// entries the `num` requests of `len` bytes at `uptr` name. Every
    /// request is read before any is done; they are done in order up to
    /// the first bad one. Returns how many were done, and the error.
    pub(crate) fn invalidate(&self, kind: u32, uptr: u64, len: u32, num: u32) -> (u32, Result) {
        if num == 0 && kind == uapi::IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST {
            return (0, Ok(()));
        }
        let reqs = match read_requests(kind, uptr, len, num) {
            Ok(reqs) => reqs,
            Err(e) => return (0, Err(e)),
        };
        let st = self.state.lock();
        for (i, req) in reqs.iter().enumerate() {
            // `num` entries at most: `i` fits.
            let done = i as u32;
            if req.flags & !uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                return (done, Err(eopnotsupp()));
            }
            if req.cache_id > uapi::MOCK_DEV_CACHE_ID_MAX {
                return (done, Err(EINVAL));
            }
            let Some(vdev) = st
                .vdevs
                .iter()
                .find(|v| v.virt_id == u64::from(req.vdev_id))
            else {
                return (done, Err(EINVAL));
            };
            if req.flags & uapi::IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                vdev.dev.clear_cache(None);
            } else {
                vdev.dev.clear_cache(Some(req.cache_id));
            }
        }
        (num, Ok(()))
    }
}

/// Largest buffer C's mock takes for the requests at once (`kzalloc`).
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Reads `num` vIOMMU invalidation requests of `len` bytes each at `uptr`,
/// as C's `iommu_copy_struct_from_full_user_array`: a shorter entry reads
/// as zero-extended, a longer one must end in zeroes (`E2BIG`).
fn read_requests(
    kind: u32,
    uptr: u64,
    len: u32,
    num: u32,
) -> Result<KVVec<uapi::iommu_viommu_invalidate_selftest>> {
    type Req = uapi::iommu_viommu_invalidate_selftest;
    if (num as usize).saturating_mul(size_of::<Req>()) > MAX_REQUEST_BYTES {
        return Err(ENOMEM);
    }
    let mut reqs = KVVec::with_capacity(num as usize, GFP_KERNEL)?;
    if kind != uapi::IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST || num == 0 {
        return Err(EINVAL);
    }
    let len = len as usize;
    for i in 0..u64::from(num) {
        let at = uptr.wrapping_add(i * len as u64);
        let user = UserPtr::from_addr(usize::try_from(at).map_err(|_| EFAULT)?);
        if len > size_of::<Req>() {
            let mut tail = UserSlice::new(user, len).reader();
            tail.skip(size_of::<Req>())?;
            let mut rest = [0u8; 64];
            while !tail.is_empty() {
                let n = tail.len().min(rest.len());
                tail.read_slice(&mut rest[..n])?;
                if rest[..n].iter().any(|&b| b != 0) {
                    return Err(E2BIG);
                }
            }
        }
        let req: Req = read_prefix(user, len)?;
        reqs.push(req, GFP_KERNEL)?;
    }
    Ok(reqs)
}

/// The MMIO pages of a mock vIOMMU and where the iommufd file maps them.
struct Mmio {
    pages: MappedPages,
    /// Byte offset of the mapping in the file.
    offset: u64,
    registry: Arc<MmapRegistry>,
}

impl Drop for Mmio {
    fn drop(&mut self) {
        self.registry.remove(self.offset);
    }
}

/// The ranges of an iommufd file's `mmap()` offsets that vIOMMUs own.
#[pin_data]
pub(crate) struct MmapRegistry {
    /// (offset, length, vIOMMU object ID), by offset.
    #[pin]
    entries: Mutex<KVec<(u64, u64, u32)>>,
}

impl MmapRegistry {
    /// An empty registry.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self { entries <- new_mutex!(KVec::new()) }),
            GFP_KERNEL,
        )
    }

    /// The lowest free offset from `PAGE_SIZE` with room for `length`
    /// bytes, now owned by vIOMMU `id`.
    fn alloc(&self, length: u64, id: u32) -> Result<u64> {
        let mut entries = self.entries.lock();
        let mut at = PAGE_SIZE_U64;
        let mut slot = entries.len();
        for (i, &(off, len, _)) in entries.iter().enumerate() {
            if at.checked_add(length).ok_or(ENOSPC)? <= off {
                slot = i;
                break;
            }
            at = off + len;
        }
        at.checked_add(length).ok_or(ENOSPC)?;
        entries
            .insert_within_capacity(slot, (at, length, id))
            .or_else(|_| {
                entries.reserve(1, GFP_KERNEL)?;
                entries
                    .insert_within_capacity(slot, (at, length, id))
                    .map_err(|_| ENOMEM)
            })?;
        Ok(at)
    }

    /// Frees the range at `offset`.
    fn remove(&self, offset: u64) {
        self.entries.lock().retain(|e| e.0 != offset);
    }

    /// The range holding byte `offset`: (offset, length, vIOMMU ID).
    fn find(&self, offset: u64) -> Option<(u64, u64, u32)> {
        let entries = self.entries.lock();
        entries
            .iter()
            .find(|e| e.0 <= offset && offset - e.0 < e.1)
            .copied()
    }
}

/// The mock vIOMMU's driver data (`iommu_viommu_selftest`): `len` bytes
/// at `uptr`. Gives the vIOMMU two zeroed MMIO pages, the first starting
/// with `in_data`, mapped at a new offset of the file; answers with
/// `out_data` (`in_data` again) and the offset and length to map.
fn mock_viommu_data(ctx: &Context, viommu: &Viommu, id: u32, uptr: u64, len: usize) -> Result {
    type Data = uapi::iommu_viommu_selftest;
    let min_len = core::mem::offset_of!(Data, out_mmap_offset);
    let mut data: Data = read_user_struct(uptr, len, min_len)?;
    let pages = MappedPages::new(2, data.in_data)?;
    let offset = ctx.mmaps.alloc(pages.len(), id)?;
    data.out_data = data.in_data;
    data.out_mmap_offset = offset;
    data.out_mmap_length = pages.len();
    let mmio = Mmio {
        pages,
        offset,
        registry: ctx.mmaps.clone(),
    };
    // From here on the vIOMMU's drop frees the range.
    if !viommu.mmio.populate(mmio) {
        return Err(EINVAL);
    }
    let user = UserPtr::from_addr(usize::try_from(uptr).map_err(|_| EFAULT)?);
    UserSlice::new(user, len)
        .writer()
        .write_slice(&data.as_bytes()[..len.min(size_of::<Data>())])
}

/// `mmap()` of an iommufd file: the MMIO pages of the mock vIOMMU that owns
/// the offset, mapped whole (`ENXIO` for any other offset or length);
/// the vIOMMU cannot be destroyed while they are mapped.
pub(crate) fn mmap(ctx: &Context, vma: &VmaNew) -> Result {
    let (offset, length) = vma_request(vma)?;
    let (start, len, id) = ctx.mmaps.find(offset).ok_or(ENXIO)?;
    let obj = ctx.objects.get(id).map_err(|_| ENXIO)?;
    let ObjectKind::Viommu(viommu) = &obj.object().kind else {
        return Err(ENXIO);
    };
    let mmio = viommu.mmio.as_ref().ok_or(ENXIO)?;
    if mmio.offset != start || offset != start || length != len {
        return Err(ENXIO);
    }
    map_pages(vma, &mmio.pages, obj.clone())
}

/// A user reference on the vIOMMU `id`: `ENOENT` if there is none.
pub(crate) fn get_viommu(table: &ObjectTable, id: u32) -> Result<(ObjectRef, Arc<Viommu>)> {
    let obj = table.get(id)?;
    let viommu = match &obj.object().kind {
        ObjectKind::Viommu(v) => v.clone(),
        _ => return Err(ENOENT),
    };
    Ok((obj, viommu))
}

/// `IOMMU_VIOMMU_ALLOC`: a vIOMMU of the mock IOMMU on a nest-parent
/// paging HWPT. Driver data (for the mock's mmap page) is not supported
/// yet (`EOPNOTSUPP`).
pub(crate) fn viommu_alloc_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_viommu_alloc>,
) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags != 0 || cmd.type_ == uapi::IOMMU_VIOMMU_TYPE_DEFAULT {
        return Err(eopnotsupp());
    }
    let dev = ctx.objects.get(cmd.dev_id)?;
    let ObjectKind::Device(info) = &dev.object().kind else {
        return Err(ENOENT);
    };
    // Only the mock IOMMU has vIOMMUs, of its one type.
    if info.mock.is_none() || cmd.type_ != uapi::IOMMU_VIOMMU_TYPE_SELFTEST {
        return Err(eopnotsupp());
    }
    let parent = ctx.objects.get(cmd.hwpt_id)?;
    let ObjectKind::HwptPaging(paging) = &parent.object().kind else {
        return Err(ENOENT);
    };
    if !paging.nest_parent() {
        return Err(EINVAL);
    }
    let data = (cmd.data_len != 0).then_some((cmd.data_uptr, cmd.data_len as usize));
    let viommu = Arc::pin_init(
        pin_init!(Viommu {
            parent_obj: parent,
            state <- new_mutex!(ViommuState {
                vdevs: KVec::new(),
                queues: KVec::new(),
                hw_queues: [None; HW_QUEUE_MAX],
            }),
            mmio: SetOnce::new(),
        }),
        GFP_KERNEL,
    )?;
    let reservation = ctx.objects.reserve(ObjectKind::Viommu(viommu.clone()))?;
    if let Some((uptr, len)) = data {
        mock_viommu_data(ctx, &viommu, reservation.id, uptr, len)?;
    }
    drop(viommu);
    ucmd.cmd.out_viommu_id = reservation.id;
    ucmd.respond()?;
    reservation.finalize();
    Ok(())
}

/// A virtual device (`IOMMUFD_OBJ_VDEVICE`): a mock device's ID in a
/// vIOMMU.
pub(crate) struct Vdevice {
    /// A user reference on the vIOMMU.
    _viommu_obj: ObjectRef,
    /// The vIOMMU.
    viommu: Arc<Viommu>,
    /// Its virtual ID.
    virt_id: u64,
    /// The device object's ID.
    idev_id: u32,
    /// The mock device.
    dev: Arc<MockDevice>,
}

impl Drop for Vdevice {
    fn drop(&mut self) {
        let (virt_id, idev_id) = (self.virt_id, self.idev_id);
        self.viommu
            .state
            .lock()
            .vdevs
            .retain(|v| !(v.virt_id == virt_id && v.idev_id == idev_id));
        self.dev.vdev_gone();
    }
}

/// `IOMMU_VDEVICE_ALLOC`: virtual ID `virt_id` for device `dev_id` in
/// vIOMMU `viommu_id`. `EEXIST` if the device has a virtual device (in any
/// vIOMMU) or the ID is taken in this one.
pub(crate) fn vdevice_alloc_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_vdevice_alloc>,
) -> Result {
    let cmd = &ucmd.cmd;
    let (viommu_obj, viommu) = get_viommu(&ctx.objects, cmd.viommu_id)?;
    let dev_obj = ctx.objects.get(cmd.dev_id)?;
    let ObjectKind::Device(info) = &dev_obj.object().kind else {
        return Err(ENOENT);
    };
    // A real device is not behind the mock IOMMU.
    let dev = info.mock.clone().ok_or(EINVAL)?;
    let (idev_id, virt_id) = (cmd.dev_id, cmd.virt_id);
    // Claim the device's one virtual device and the virtual ID, both
    // checked and taken under their locks; the virtual device's drop gives
    // them back.
    {
        let mut slot = dev.vdev_slot();
        if slot.is_some() {
            return Err(EEXIST);
        }
        let mut st = viommu.state.lock();
        if st.vdevs.iter().any(|v| v.virt_id == virt_id) {
            return Err(EEXIST);
        }
        let entry = VdevEntry {
            virt_id,
            idev_id,
            dev: dev.clone(),
        };
        st.vdevs.push(entry, GFP_KERNEL)?;
        // Object IDs start at 1: 0 marks a virtual device being made.
        *slot = Some(0);
    }
    let vdev = Vdevice {
        _viommu_obj: viommu_obj,
        viommu,
        virt_id,
        idev_id,
        dev: dev.clone(),
    };
    let reservation = Arc::new(vdev, GFP_KERNEL)
        .map_err(Error::from)
        .and_then(|vdev| ctx.objects.reserve(ObjectKind::Vdevice(vdev)))?;
    ucmd.cmd.out_vdevice_id = reservation.id;
    ucmd.respond()?;
    let id = reservation.finalize();
    *dev.vdev_slot() = Some(id);
    Ok(())
}

/// One event in a vEVENTQ.
enum Vevent {
    /// An event the driver reported, with its data.
    Event { seq: u32, data: KVec<u8> },
    /// Events were lost here: the queue was full.
    Lost { seq: u32 },
}

impl Vevent {
    /// The record's header: (flags, sequence).
    fn header(&self) -> uapi::iommufd_vevent_header {
        match self {
            Vevent::Event { seq, .. } => uapi::iommufd_vevent_header {
                flags: 0,
                sequence: *seq,
            },
            Vevent::Lost { seq } => uapi::iommufd_vevent_header {
                flags: uapi::IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
                sequence: *seq,
            },
        }
    }

    /// The data after the header.
    fn data(&self) -> &[u8] {
        match self {
            Vevent::Event { data, .. } => data,
            Vevent::Lost { .. } => &[],
        }
    }
}

/// Size of a vEVENT header.
const HEADER: usize = size_of::<uapi::iommufd_vevent_header>();
/// The deepest queue `IOMMU_VEVENTQ_ALLOC` makes.
const VEVENTQ_MAX_DEPTH: u32 = 1 << 19;

/// What a vEVENTQ's lock guards.
struct QueueState {
    /// Records not read yet, oldest first. A `Lost` record is only ever
    /// last: the next event takes its place.
    deliver: KVec<Vevent>,
    /// Events (not `Lost` records) in `deliver`.
    num_events: u32,
    /// The next record's sequence number, in `[0, i32::MAX]`.
    sequence: u32,
}

/// A vEVENTQ's queue, shared by its object, its file and its vIOMMU.
#[pin_data]
pub(crate) struct VeventQueue {
    /// The event type it takes.
    kind: u32,
    /// How many events it holds at most.
    depth: u32,
    #[pin]
    state: Mutex<QueueState>,
    /// Woken when a record arrives.
    #[pin]
    wait: PollCondVar,
}

impl VeventQueue {
    /// Queues an event with `data`, or, when full or out of memory, a
    /// `Lost` record (`ENOMEM` for the latter).
    fn report(&self, data: &[u8]) -> Result {
        let mut copy = KVec::new();
        let copied = copy.extend_from_slice(data, GFP_NOWAIT);
        let mut st = self.state.lock();
        let seq = st.sequence;
        let (record, rc) = match copied {
            Err(_) => (Vevent::Lost { seq }, Err(ENOMEM)),
            Ok(()) if st.num_events == self.depth => (Vevent::Lost { seq }, Ok(())),
            Ok(()) => (Vevent::Event { seq, data: copy }, Ok(())),
        };
        if matches!(st.deliver.last(), Some(Vevent::Lost { .. })) {
            st.deliver.pop();
        }
        // The one record that may need memory here is an event: a `Lost`
        // record takes the place of what was just popped or fits in the
        // room left by the depth.
        let is_event = matches!(record, Vevent::Event { .. });
        if st.deliver.push(record, GFP_NOWAIT).is_err() {
            return Err(ENOMEM);
        }
        if is_event {
            st.num_events += 1;
        }
        st.sequence = (seq + 1) & i32::MAX as u32;
        drop(st);
        self.wait.notify_all();
        rc
    }

    /// Reads whole records into `out`: `EINVAL` for room under a header,
    /// or if the first record does not fit.
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        if out.len() < HEADER {
            return Err(EINVAL);
        }
        let mut st = self.state.lock();
        let mut done = 0;
        while let Some(record) = st.deliver.first() {
            let data = record.data();
            if out.len() < HEADER {
                break;
            }
            if HEADER + data.len() > out.len() {
                return if done == 0 { Err(EINVAL) } else { Ok(done) };
            }
            let written = out
                .write(&record.header())
                .and_then(|()| out.write_slice(data));
            if let Err(e) = written {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            done += HEADER + data.len();
            if let Ok(Vevent::Event { .. }) = st.deliver.remove(0) {
                st.num_events -= 1;
            }
        }
        Ok(done)
    }
}

/// A vEVENTQ object (`IOMMUFD_OBJ_VEVENTQ`): its queue, on its vIOMMU.
pub(crate) struct Veventq {
    /// The queue, which the vIOMMU and the file share.
    queue: Arc<VeventQueue>,
    /// A user reference on the vIOMMU.
    _viommu_obj: ObjectRef,
    /// The vIOMMU.
    viommu: Arc<Viommu>,
}

impl Drop for Veventq {
    fn drop(&mut self) {
        let kind = self.queue.kind;
        self.viommu.state.lock().queues.retain(|q| q.kind != kind);
    }
}

/// What a vEVENTQ's file owns: the queue, a user reference on its object
/// and the iommufd file.
struct VeventqFile {
    queue: Arc<VeventQueue>,
    _user: ObjectRef,
    _ctx: FileHold,
}

impl EventQueue for VeventqFile {
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        self.queue.read(out)
    }

    fn write(&self, _input: &mut UserSliceReader) -> Result<usize> {
        // The file is made without `write`.
        Err(EINVAL)
    }

    fn poll_mask(&self) -> u32 {
        if self.queue.state.lock().deliver.is_empty() {
            0
        } else {
            POLL_READABLE
        }
    }

    fn wait(&self) -> &PollCondVar {
        &self.queue.wait
    }
}

/// `IOMMU_VEVENTQ_ALLOC`: an event queue of `type` and `veventq_depth`
/// events on a vIOMMU, and its file. `EEXIST` if the vIOMMU has one of
/// that type.
pub(crate) fn veventq_alloc_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_veventq_alloc>,
) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags != 0 || cmd.__reserved != 0 || cmd.type_ == uapi::IOMMU_VEVENTQ_TYPE_DEFAULT {
        return Err(eopnotsupp());
    }
    if cmd.veventq_depth == 0 || cmd.veventq_depth > VEVENTQ_MAX_DEPTH {
        return Err(EINVAL);
    }
    let (viommu_obj, viommu) = get_viommu(&ctx.objects, cmd.viommu_id)?;
    let kind = cmd.type_;
    let queue = Arc::pin_init(
        pin_init!(VeventQueue {
            kind,
            depth: cmd.veventq_depth,
            state <- new_mutex!(QueueState { deliver: KVec::new(), num_events: 0, sequence: 0 }),
            wait <- new_poll_condvar!("iommufd_rs vEVENTQ"),
        }),
        GFP_KERNEL,
    )?;
    let mut st = viommu.state.lock();
    if st.queues.iter().any(|q| q.kind == kind) {
        return Err(EEXIST);
    }
    st.queues.push(queue.clone(), GFP_KERNEL)?;
    drop(st);
    // From here on dropping the object takes the queue off the vIOMMU.
    let veventq = Veventq {
        queue: queue.clone(),
        _viommu_obj: viommu_obj,
        viommu,
    };
    let veventq = Arc::new(veventq, GFP_KERNEL)?;
    let reservation = ctx.objects.reserve(ObjectKind::Veventq(veventq))?;
    let id = reservation.id;
    let user = reservation.finalize_get()?;
    let make = |user, ctx_file| VeventqFile {
        queue,
        _user: user,
        _ctx: ctx_file,
    };
    let name = c"[iommufd-viommu-event]";
    let (fd, file) = open_queue_file(ctx, id, user, name, false, make)?;
    install_queue_file(ctx, id, fd, file, |fd| {
        ucmd.cmd.out_veventq_id = id;
        ucmd.cmd.out_veventq_fd = fd;
        ucmd.respond()
    })
}

/// The internal access behind a HW queue. Its pins lock their areas, so
/// no unmap ever asks it to unpin.
#[pin_data]
pub(crate) struct QueuePins {}

impl AccessOps for QueuePins {
    fn unmap(&self, _access: &Access<Self>, _iova: u64, _length: u64) {}
}

/// The guest memory of a HW queue, pinned through its own access.
struct QueueMem {
    access: Arc<Access<QueuePins>>,
    /// The pinned range: page aligned.
    iova: u64,
    length: u64,
}

/// A HW queue (`IOMMUFD_OBJ_HW_QUEUE`) of a mock vIOMMU: guest memory the
/// (mock) IOMMU reads commands from, pinned and locked in the parent's
/// IOAS while the queue exists.
pub(crate) struct HwQueue {
    /// A user reference on the vIOMMU.
    _viommu_obj: ObjectRef,
    /// The vIOMMU.
    viommu: Arc<Viommu>,
    /// Its index in the vIOMMU.
    index: usize,
    /// Its object ID, once it holds its index.
    id: SetOnce<u32>,
    /// Its memory, once pinned.
    mem: SetOnce<QueueMem>,
    /// A user reference on the queue of the index before, which cannot go
    /// before this one.
    prev: SetOnce<ObjectRef>,
}

impl Drop for HwQueue {
    fn drop(&mut self) {
        if let Some(id) = self.id.copy() {
            let mut st = self.viommu.state.lock();
            if st.hw_queues[self.index] == Some(id) {
                st.hw_queues[self.index] = None;
            }
        }
        if let Some(mem) = self.mem.as_ref() {
            mem.access.unpin_pages(mem.iova, mem.length);
            Access::destroy(&mem.access);
        }
    }
}

/// Pins, for `queue`, the guest memory `[iova, iova + length)` of the
/// vIOMMU's parent IOAS, through an access of its own, and returns its
/// physical address. `ENOENT` if it is not all mapped, `EFAULT` if it is
/// not physically contiguous.
fn pin_queue_memory(
    table: &Arc<ObjectTable>,
    queue: &HwQueue,
    iova: u64,
    length: u64,
) -> Result<u64> {
    let aligned = iova & !(PAGE_SIZE_U64 - 1);
    let offset = iova - aligned;
    let span = offset
        .checked_add(length)
        .and_then(|l| l.checked_next_multiple_of(PAGE_SIZE_U64))
        .ok_or(ERANGE)?;
    let ioas_id = queue.viommu.parent()?.ioas().id();
    let access = Access::create_locking(table, ioas_id, pin_init!(QueuePins {}))?;
    let pfns = match access.pin_pages(aligned, span, false) {
        Ok(pfns) => pfns,
        Err(e) => {
            Access::destroy(&access);
            return Err(e);
        }
    };
    let mem = QueueMem {
        access,
        iova: aligned,
        length: span,
    };
    // From here on the queue's drop unpins.
    if !queue.mem.populate(mem) {
        return Err(EINVAL);
    }
    if pfns.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(EFAULT);
    }
    let first = pfns.first().copied().ok_or(EINVAL)?;
    Ok(first * PAGE_SIZE_U64 + offset)
}

/// `IOMMU_HW_QUEUE_ALLOC`: HW queue `index` of a mock vIOMMU, on
/// `length` bytes of guest memory at `nesting_parent_iova`, which stay
/// pinned and cannot be unmapped while the queue exists. The memory is
/// pinned before the index is checked, as in C: `EINVAL` for an index
/// past the vIOMMU's, `EEXIST` for one taken, `EIO` if the one before is
/// not; a queue holds the one before it.
pub(crate) fn hw_queue_alloc_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_hw_queue_alloc>,
) -> Result {
    let cmd = &ucmd.cmd;
    if cmd.flags != 0 || cmd.type_ == uapi::IOMMU_HW_QUEUE_TYPE_DEFAULT {
        return Err(eopnotsupp());
    }
    if cmd.length == 0 {
        return Err(EINVAL);
    }
    let (iova, length) = (cmd.nesting_parent_iova, cmd.length);
    if iova.checked_add(length - 1).is_none() {
        return Err(EOVERFLOW);
    }
    let (viommu_obj, viommu) = get_viommu(&ctx.objects, cmd.viommu_id)?;
    if cmd.type_ != uapi::IOMMU_HW_QUEUE_TYPE_SELFTEST {
        return Err(eopnotsupp());
    }
    let index = cmd.index as usize;
    let queue = Arc::new(
        HwQueue {
            _viommu_obj: viommu_obj,
            viommu: viommu.clone(),
            index,
            id: SetOnce::new(),
            mem: SetOnce::new(),
            prev: SetOnce::new(),
        },
        GFP_KERNEL,
    )?;
    let reservation = ctx.objects.reserve(ObjectKind::HwQueue(queue.clone()))?;
    let base = pin_queue_memory(&ctx.objects, &queue, iova, length)?;
    if index >= HW_QUEUE_MAX {
        return Err(EINVAL);
    }
    {
        let mut st = viommu.state.lock();
        if st.hw_queues[index].is_some() {
            return Err(EEXIST);
        }
        let prev = match index {
            0 => None,
            _ => {
                let id = st.hw_queues[index - 1].ok_or(EIO)?;
                Some(ctx.objects.get(id).map_err(|_| EIO)?)
            }
        };
        // The mock IOMMU reads the queue through the parent's domain.
        if viommu.parent()?.domain.iova_to_phys(iova) != base {
            return Err(EFAULT);
        }
        if let Some(prev) = prev {
            queue.prev.populate(prev);
        }
        st.hw_queues[index] = Some(reservation.id);
        queue.id.populate(reservation.id);
    }
    drop(queue);
    ucmd.cmd.out_hw_queue_id = reservation.id;
    ucmd.respond()?;
    reservation.finalize();
    Ok(())
}

/// `TRIGGER_VEVENT`: the mock device behind device object `dev_id`
/// reports an event with its virtual ID to the vIOMMU its RID's HWPT is
/// on. `ENOENT` if it is on none, or its virtual ID is 0; `EOPNOTSUPP` if
/// the vIOMMU has no queue for the mock's events.
pub(crate) fn trigger_vevent(table: &ObjectTable, dev_id: u32) -> Result {
    let obj = table.get(dev_id)?;
    let ObjectKind::Device(info) = &obj.object().kind else {
        return Err(ENOENT);
    };
    let dev = info.mock.as_ref().ok_or(EINVAL)?;
    let (viommu, virt_id) = dev.viommu_cache().ok_or(ENOENT)?;
    if virt_id == 0 {
        return Err(ENOENT);
    }
    let event = uapi::iommu_viommu_event_selftest {
        // The mock's event carries the low 32 bits, as C's.
        virt_id: virt_id as u32,
    };
    viommu.report_event(
        uapi::IOMMU_VEVENTQ_TYPE_SELFTEST,
        &event.virt_id.to_ne_bytes(),
    )
}
