// SPDX-License-Identifier: GPL-2.0

//! Fault queues (`IOMMU_FAULT_QUEUE_ALLOC`): the object a HWPT reports I/O
//! page faults to, and its file.
//!
//! A fault reported to a HWPT with a fault queue waits in the queue until
//! userspace reads it from the file. Reading gives it a cookie, the lowest
//! free from 1 (see [`FaultState::zero_free`] for when 0 is free too); the
//! fault then waits for the response userspace writes with that cookie. Detaching a device from the HWPT answers the faults
//! it raised through that attachment, read or not (they vanish from the
//! file). Each fault is a group of one: the mock device reports every
//! fault as the last of its group.

use crate::{
    context::Context,
    object::{ObjectKind, ObjectRef},
    sys::{
        errno::eopnotsupp,
        event_file::{EventFile, EventQueue, POLL_READABLE, POLL_WRITABLE},
        misc::FileHold,
    },
    uapi,
    ucmd::Ucmd,
};
use core::mem::size_of;
use kernel::{
    bindings,
    fs::file::FileDescriptorReservation,
    new_mutex, new_poll_condvar,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{poll::PollCondVar, Arc, Mutex},
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// One page fault, as the file reports it, with the attachment it came
/// through.
#[derive(Clone, Copy)]
pub(crate) struct PageFault {
    /// The device object's ID.
    pub(crate) dev_id: u32,
    /// The PASID (0: the RID) whose attachment the fault was routed
    /// through; detaching it answers the fault.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) attach_pasid: u32,
    /// `IOMMU_PGFAULT_FLAGS_*`.
    pub(crate) flags: u32,
    /// The PASID the device reported.
    pub(crate) pasid: u32,
    /// The page request group.
    pub(crate) grpid: u32,
    /// `IOMMU_PGFAULT_PERM_*`.
    pub(crate) perm: u32,
    /// The faulting address.
    pub(crate) addr: u64,
}

impl PageFault {
    /// The record the file gives for it, with `cookie`.
    fn record(&self, cookie: u32) -> uapi::iommu_hwpt_pgfault {
        uapi::iommu_hwpt_pgfault {
            flags: self.flags,
            dev_id: self.dev_id,
            pasid: self.pasid,
            grpid: self.grpid,
            perm: self.perm,
            addr: self.addr,
            cookie,
            ..Default::default()
        }
    }

    /// Whether it came through the attachment of `dev_id`'s `pasid`.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    fn through(&self, dev_id: u32, pasid: u32) -> bool {
        self.dev_id == dev_id && self.attach_pasid == pasid
    }
}

/// Size of one fault record in the file.
const RECORD: usize = size_of::<uapi::iommu_hwpt_pgfault>();
/// Size of one response.
const RESPONSE: usize = size_of::<uapi::iommu_hwpt_page_response>();

/// A fault queue's faults.
struct FaultState {
    /// Faults not read yet, oldest first.
    deliver: KVec<PageFault>,
    /// Faults read and not answered yet, by cookie.
    response: RBTree<u32, PageFault>,
    /// Cookie 0 can be handed out. C keeps the cookies in an xarray that
    /// reserves index 0, but a response naming cookie 0 while faults await
    /// answers erases that reservation, and nothing restores it: from then
    /// on 0 is the lowest free cookie whenever no fault holds it.
    zero_free: bool,
}

impl FaultState {
    /// The lowest cookie that no unanswered fault holds: from 1, or from 0
    /// once `zero_free`.
    fn free_cookie(&self) -> Result<u32> {
        if self.zero_free && self.response.get(&0).is_none() {
            return Ok(0);
        }
        let mut want = 1u32;
        for &cookie in self.response.keys().filter(|&&c| c != 0) {
            if cookie != want {
                break;
            }
            want = want.checked_add(1).ok_or(ENOSPC)?;
        }
        Ok(want)
    }
}

/// A fault queue object (`IOMMUFD_OBJ_FAULT`).
#[pin_data]
pub(crate) struct Fault {
    #[pin]
    state: Mutex<FaultState>,
    /// Woken when a fault arrives.
    #[pin]
    wait: PollCondVar,
}

impl Fault {
    /// Queues `fault` for reading (only the mock device reports faults). A fault that cannot be queued (no
    /// memory) is dropped, as the IOMMU core answers one it cannot group.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) fn report(&self, fault: PageFault) {
        let queued = self.state.lock().deliver.push(fault, GFP_KERNEL);
        if queued.is_ok() {
            self.wait.notify_all();
        }
    }

    /// Answers (drops) every fault raised through the attachment of
    /// `dev_id`'s `pasid`, read or not: that attachment is going.
    #[cfg_attr(not(CONFIG_IOMMUFD_RS_TEST), allow(dead_code))]
    pub(crate) fn flush(&self, dev_id: u32, pasid: u32) {
        let mut st = self.state.lock();
        st.deliver.retain(|f| !f.through(dev_id, pasid));
        let mut cursor = st.response.cursor_front_mut();
        while let Some(cur) = cursor {
            cursor = if cur.current().1.through(dev_id, pasid) {
                cur.remove_current().0
            } else {
                cur.move_next()
            };
        }
    }

    /// Reads whole faults into `out`: `EINVAL` if the first does not fit.
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        if out.len() % RECORD != 0 {
            return Err(ESPIPE);
        }
        let mut st = self.state.lock();
        let mut done = 0;
        while let Some(&fault) = st.deliver.first() {
            if out.len() < RECORD {
                return if done == 0 { Err(EINVAL) } else { Ok(done) };
            }
            let step = (|| {
                let cookie = st.free_cookie()?;
                let node = RBTreeNode::new(cookie, fault, GFP_KERNEL)?;
                out.write(&fault.record(cookie))?;
                Ok(node)
            })();
            match step {
                Ok(node) => {
                    st.response.insert(node);
                    // It is there: `first` found it.
                    let _ = st.deliver.remove(0);
                    done += RECORD;
                }
                Err(e) => return if done == 0 { Err(e) } else { Ok(done) },
            }
        }
        Ok(done)
    }

    /// Takes responses from `input`: `EINVAL` for an unknown code or
    /// cookie, which stops the write there.
    fn write(&self, input: &mut UserSliceReader) -> Result<usize> {
        if input.len() % RESPONSE != 0 {
            return Err(ESPIPE);
        }
        let mut st = self.state.lock();
        let mut done = 0;
        while !input.is_empty() {
            let step = (|| {
                let resp: uapi::iommu_hwpt_page_response = input.read()?;
                if resp.code != uapi::IOMMUFD_PAGE_RESP_SUCCESS
                    && resp.code != uapi::IOMMUFD_PAGE_RESP_INVALID
                {
                    return Err(EINVAL);
                }
                // The mock device takes any answer; the fault is done.
                let answered = st.response.remove(&resp.cookie);
                if resp.cookie == 0 && (answered.is_some() || !st.response.is_empty()) {
                    st.zero_free = true;
                }
                answered.map(drop).ok_or(EINVAL)
            })();
            if let Err(e) = step {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            done += RESPONSE;
        }
        Ok(done)
    }

    /// Whether a fault waits to be read.
    fn readable(&self) -> bool {
        !self.state.lock().deliver.is_empty()
    }
}

/// What a fault queue's file owns: the queue, a user reference on its
/// object (it cannot be destroyed while the file is open), and the
/// iommufd file (its context outlives this file, as in C).
struct FaultFile {
    fault: Arc<Fault>,
    _user: ObjectRef,
    _ctx: FileHold,
}

impl EventQueue for FaultFile {
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        self.fault.read(out)
    }

    fn write(&self, input: &mut UserSliceReader) -> Result<usize> {
        self.fault.write(input)
    }

    fn poll_mask(&self) -> u32 {
        if self.fault.readable() {
            POLL_WRITABLE | POLL_READABLE
        } else {
            POLL_WRITABLE
        }
    }

    fn wait(&self) -> &PollCondVar {
        &self.fault.wait
    }
}

/// `IOMMU_FAULT_QUEUE_ALLOC`: a fault queue object and its file.
pub(crate) fn fault_alloc_ioctl(
    ctx: &Context,
    ucmd: &mut Ucmd<'_, uapi::iommu_fault_alloc>,
) -> Result {
    if ucmd.cmd.flags != 0 {
        return Err(eopnotsupp());
    }
    let fault = Arc::pin_init(
        pin_init!(Fault {
            state <- new_mutex!(FaultState {
                deliver: KVec::new(),
                response: RBTree::new(),
                zero_free: false,
            }),
            wait <- new_poll_condvar!("iommufd_rs fault queue"),
        }),
        GFP_KERNEL,
    )?;
    let reservation = ctx.objects.reserve(ObjectKind::Fault(fault.clone()))?;
    let id = reservation.id;
    let user = reservation.finalize_get()?;
    let make = |user, ctx_file| FaultFile {
        fault,
        _user: user,
        _ctx: ctx_file,
    };
    let (fd, file) = open_queue_file(ctx, id, user, c"[iommufd-pgfault]", true, make)?;
    install_queue_file(ctx, id, fd, file, |fd| {
        ucmd.cmd.out_fault_id = id;
        ucmd.cmd.out_fault_fd = fd;
        ucmd.respond()
    })
}

/// The file of the new event queue object `id`, not installed yet: its
/// descriptor and the file, whose data `make` builds from `user` (a user
/// reference on the object) and a reference on the iommufd file. On error
/// the object is removed.
pub(crate) fn open_queue_file<Q: EventQueue + 'static>(
    ctx: &Context,
    id: u32,
    user: ObjectRef,
    name: &'static CStr,
    writable: bool,
    make: impl FnOnce(ObjectRef, FileHold) -> Q,
) -> Result<(FileDescriptorReservation, EventFile)> {
    let fd = match FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            drop(user);
            ctx.objects.remove_internal(id);
            return Err(e);
        }
    };
    let data = make(user, ctx.file.hold());
    let file = KBox::new(data, GFP_KERNEL)
        .map_err(Error::from)
        .and_then(|data| EventFile::new(name, writable, data));
    match file {
        Ok(file) => Ok((fd, file)),
        Err(e) => {
            ctx.objects.remove_internal(id);
            Err(e)
        }
    }
}

/// Answers the ioctl that made event queue object `id` with `respond`,
/// given the descriptor, then installs the file there. If the answer
/// fails the object goes now (the file's release drops its reference
/// later).
pub(crate) fn install_queue_file(
    ctx: &Context,
    id: u32,
    fd: FileDescriptorReservation,
    file: EventFile,
    respond: impl FnOnce(u32) -> Result,
) -> Result {
    if let Err(e) = respond(fd.reserved_fd()) {
        drop(file);
        ctx.objects.remove_internal(id);
        return Err(e);
    }
    file.install(fd);
    Ok(())
}

/// The fault queue `id`, as a user reference: `ENOENT` if there is none.
pub(crate) fn get_fault(ctx_objects: &crate::object::ObjectTable, id: u32) -> Result<ObjectRef> {
    let obj = ctx_objects.get(id)?;
    if matches!(obj.object().kind, ObjectKind::Fault(_)) {
        Ok(obj)
    } else {
        Err(ENOENT)
    }
}

/// The fault queue behind a user reference from [`get_fault`].
pub(crate) fn fault_of(obj: &ObjectRef) -> Option<&Arc<Fault>> {
    match &obj.object().kind {
        ObjectKind::Fault(fault) => Some(fault),
        _ => None,
    }
}
