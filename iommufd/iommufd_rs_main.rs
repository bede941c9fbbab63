// SPDX-License-Identifier: GPL-2.0

//! iommufd-rs: the iommufd user API (`/dev/iommu`) in Rust.
//!
//! Each open of the misc device gets a [`context::Context`] holding an object
//! table keyed by u32 IDs. Userspace drives it with the ioctls of
//! `include/uapi/linux/iommufd.h`; the ioctl table in [`ioctl`] applies the
//! extensible-struct rules and calls one handler per ioctl.
//!
//! Files, one per concept:
//! - [`context`]: the open file; [`object`]: the object table;
//! - [`ioctl`]: the file's ioctls, their table and size rules, and
//!   `IOMMU_DESTROY`; [`ucmd`]: a user command, read under those rules and
//!   written back; [`uapi`]: the ABI types;
//! - [`ioas`]: IOAS ioctls; [`io_pagetable`]: IOVA bookkeeping of an IOAS;
//!   [`free_space`]: its index of free holes for the allocator;
//! - [`pages`]: the memory behind areas (user memory, files, dma-bufs),
//!   and its pins;
//!   [`page_table`]: the sparse per-page table access pins are counted in;
//! - [`domain`]: the contract a domain keeps, and a real IOMMU's paging
//!   domain behind it; [`hw_pagetable`]: paging HWPTs (domains attached
//!   to an IOAS) and nested HWPTs; [`eventq`]: fault queues and their
//!   files;
//!   [`device`]: devices, and the IOMMU groups real ones attach through;
//! - [`kernel_api`]: the in-kernel API vfio calls (`include/linux/iommufd.h`),
//!   exported as `iommufd_rs_*` (namespace `IOMMUFD_RS`); the separate
//!   `iommufd_rs_vfio.ko` (`iommufd_rs_vfio.c`) gives it iommufd.ko's names;
//! - [`access`]: in-kernel accesses (pin pages, read/write through IOVAs);
//! - `selftest`, `mock`: `IOMMU_TEST_CMD` for the upstream selftests, with
//!   the mock domain and mock device (test builds); `viommu`: the mock
//!   IOMMU's vIOMMUs, virtual devices and event queues (test builds);
//! - [`vfio_compat`]: the VFIO container ioctls on a compat IOAS, with
//!   type1's dirty tracking, whose log is the IOAS's;
//! - [`sys`]: the kernel wrappers, with every FFI call: the misc device and
//!   its files, the in-kernel API's C entry points, IOMMU groups, DMA
//!   ownership and paging domains, the string and bool parameters, the
//!   kernel's interval tree, GUP and accounting,
//!   a direct kmalloc allocator, counted boxes, user reads, errnos,
//!   capabilities and files, the test interface's access files, and
//!   `helpers.c` with the C shims. Nothing in it imports the logic above;
//!   `scripts/check-layers.py` checks that, and that the only import cycle
//!   is the object table's with the kinds it names. Outside it, `unsafe`
//!   appears only where logic calls a wrapper's `unsafe fn` (with a SAFETY
//!   comment backed by a type's invariants), in the domain contract, and
//!   in the uAPI's union reads.
//!
//! # Lock order
//!
//! Outer to inner; a lock may be taken while holding only those above it:
//! 1. the test interface's `TestAccess::items`, and `MockDevice::hwpt`
//!    then `MockDevice::pasids`, then `MockDevice::vdev` and
//!    `MockDevice::viommu`, then `Viommu::state`, then
//!    `VeventQueue::state`;
//!    `AccessCallbacks::open` of an access made through the in-kernel API,
//!    held while its creator's `unmap` callback runs (which unpins, taking
//!    the locks below);
//! 2. `Access::attachment` (dropped while an access is told to unpin);
//!    `Ioas::auto_domain_lock` (a device picking its automatic HWPT), then
//!    `ObjectTable::groups`, then `Group::state` (the IOMMU core's group
//!    mutex is taken inside it, by attach, replace and detach); vfio holds
//!    its `dev_set->lock` above all of these;
//! 3. `ObjectTable::inner` (held only for table operations, the compat
//!    IOAS and the account mode; never while calling into an object);
//! 4. `Ioas::iopt`, one at a time: `IOAS_COPY` unlocks the source before
//!    locking the destination, `IOAS_CHANGE_PROCESS` visits them in turn;
//!    an unmap drops it before asking accesses to unpin;
//! 5. a dma-buf's reservation lock (taken by the import's attach and
//!    detach, under `Ioas::iopt` when an area goes; held by the exporter
//!    while it revokes), then `Pages::state` (its pins and domain uses),
//!    then the mm's `mmap_lock` (remote GUP, `locked_vm`);
//! 6. `MockDomain::table` (a domain is mapped, unmapped and read back while
//!    `Pages::state` is held);
//!    `Fault::state` (a mock device's attachment answers its faults under
//!    `MockDevice::hwpt`; nothing is taken inside it).
//!
//! Locks held across a copy to or from userspace (or a GUP of user
//! memory), each where mainline holds its counterpart:
//! - `Ioas::iopt` while `IOAS_IOVA_RANGES` and `VFIO_IOMMU_GET_INFO` write
//!   their ranges (mainline: `iova_rwsem`), and while the VFIO container's
//!   dirty tracking writes a user bitmap (`VFIO_IOMMU_DIRTY_PAGES`
//!   GET_BITMAP, `VFIO_IOMMU_UNMAP_DMA` with `GET_DIRTY_BITMAP`; type1:
//!   `iommu->lock`);
//! - `Ioas::iopt` while `GET_DIRTY_BITMAP` pins the user bitmap window by
//!   window and sets its bits (mainline: `iova_rwsem`); the mock domain's
//!   dirty walk stops and drops `MockDomain::table` whenever the window
//!   must move, as a dma-buf revocation takes that lock under the
//!   reservation lock, which nests inside the mmap lock;
//! - `Access::attachment` and `Ioas::iopt` while [`access::Access::rw`]
//!   copies to or from the owning process's memory (`ioas_lock`,
//!   `iova_rwsem`);
//! - `TestAccess::items` while the test `ACCESS_PAGES` compares pins with
//!   the user's pages and writes its answer back (`staccess->lock`);
//! - `Fault::state` while a fault queue's file is read or written
//!   (`fault->mutex`).
//!
//! Nothing of this module is called from a page fault, so none of these
//! can deadlock against `mmap_lock`.
//!
//! Every path that may fail allocates first and changes state last (see
//! `IoPagetable::map_areas`), so an error leaves nothing behind.

use kernel::prelude::*;
use sys::{misc, param};

mod access;
mod context;
mod device;
mod domain;
mod eventq;
mod free_space;
mod hw_pagetable;
mod io_pagetable;
mod ioas;
mod ioctl;
mod iova_bitmap;
mod kernel_api;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
mod mock;
mod object;
mod page_table;
mod pages;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
mod selftest;
mod sys;
mod uapi;
mod ucmd;
mod vfio_compat;
#[cfg(CONFIG_IOMMUFD_RS_TEST)]
mod viommu;

module! {
    type: IommufdModule,
    name: "iommufd_rs",
    authors: ["iommufd-rs developers"],
    description: "IOMMU userspace API (/dev/iommu) in Rust",
    license: "GPL",
    params: {
        vfio_container: u32 {
            default: 0,
            description: "1: also serve /dev/vfio/vfio (minor 196, mode 0666), unless a VFIO container driver has it",
        },
    },
}

/// The loaded module: the registered misc devices.
#[pin_data]
struct IommufdModule {
    #[pin]
    iommu: misc::Registration<context::Context>,
    /// `/dev/vfio/vfio`, with `vfio_container=1` and a free minor.
    vfio: Option<Pin<KBox<misc::Registration<context::Context>>>>,
    /// What importing dma-bufs needed, freed at exit, after the nodes.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    _dmabuf: sys::dmabuf::ImportGuard,
    /// The fault-injection attribute (`fail_iommufd_rs` in debugfs).
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    _fail: sys::fail::FailAttr,
}

/// Registers `/dev/vfio/vfio` if asked to and if nobody else has it.
fn register_vfio_node(
    module: &'static ThisModule,
) -> Option<Pin<KBox<misc::Registration<context::Context>>>> {
    if *module_parameters::vfio_container.value() == 0 {
        return None;
    }
    let opts = misc::MiscOptions {
        name: c"vfio",
        minor: Some(kernel::bindings::VFIO_MINOR as i32),
        nodename: Some(c"vfio/vfio"),
        mode: 0o666,
    };
    match KBox::pin_init(
        misc::Registration::register(opts, module, context::Node::VfioContainer),
        GFP_KERNEL,
    ) {
        Ok(reg) => Some(reg),
        Err(e) => {
            pr_info!(
                "not serving /dev/vfio/vfio: minor {} unavailable ({:?})\n",
                kernel::bindings::VFIO_MINOR,
                e
            );
            None
        }
    }
}

impl kernel::InPlaceModule for IommufdModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let opts = misc::MiscOptions {
            name: param::device_name(),
            minor: None,
            nodename: None,
            mode: 0o660,
        };
        try_pin_init!(Self {
            iommu <- misc::Registration::register(opts, module, context::Node::Iommu),
            vfio: register_vfio_node(module),
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            _dmabuf: sys::dmabuf::ImportGuard,
            #[cfg(CONFIG_IOMMUFD_RS_TEST)]
            _fail: sys::fail::FailAttr::new(),
        })
    }
}
