// SPDX-License-Identifier: GPL-2.0

//! The state of one open /dev/iommu file.

use crate::{ioctl, misc::FileOps, object::ObjectTable, pages::AccountMode};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// Which node a file was opened through.
pub(crate) enum Node {
    /// `/dev/iommu`.
    Iommu,
    /// `/dev/vfio/vfio`: pins are charged to the process, as VFIO does.
    VfioContainer,
}

/// The state of one open file: its object table.
#[pin_data]
pub(crate) struct Context {
    /// Objects created through this file, by ID. In-kernel accesses hold
    /// it too, so it outlives the file while they exist, as in C.
    pub(crate) objects: Arc<ObjectTable>,
    /// How new pages objects are charged (`IOMMU_OPTION_RLIMIT_MODE`).
    #[pin]
    account_mode: Mutex<AccountMode>,
}

impl Context {
    /// The accounting mode for new pages objects.
    pub(crate) fn account_mode(&self) -> AccountMode {
        *self.account_mode.lock()
    }

    /// Sets the accounting mode to what `mode` returns, if no object
    /// exists yet (`EBUSY` otherwise, checked first).
    pub(crate) fn set_account_mode(&self, mode: impl FnOnce() -> Result<AccountMode>) -> Result {
        self.objects.while_empty(|| {
            *self.account_mode.lock() = mode()?;
            Ok(())
        })
    }
}

impl FileOps for Context {
    type NodeData = Node;

    fn open(node: &Node) -> Result<Pin<KBox<Self>>> {
        let mode = match node {
            Node::Iommu => AccountMode::None,
            Node::VfioContainer => AccountMode::Mm,
        };
        let objects = Arc::pin_init(ObjectTable::new(), GFP_KERNEL)?;
        KBox::pin_init(
            pin_init!(Context {
                objects,
                account_mode <- new_mutex!(mode),
            }),
            GFP_KERNEL,
        )
    }

    #[inline]
    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(&this, cmd, arg)
    }
}
