// SPDX-License-Identifier: GPL-2.0

//! The state of one open /dev/iommu file.

use crate::{object::ObjectTable, pages::AccountMode, sys::misc::OpenFile};
use kernel::{prelude::*, sync::Arc};

/// Which node a file was opened through.
pub(crate) enum Node {
    /// `/dev/iommu`.
    Iommu,
    /// `/dev/vfio/vfio`: pins are charged to the process, as VFIO does.
    VfioContainer,
}

/// The state of one open file: its object table.
pub(crate) struct Context {
    /// Objects created through this file, by ID. In-kernel accesses hold
    /// it too, so it outlives the file while they exist, as in C.
    pub(crate) objects: Arc<ObjectTable>,
    /// The file this is the state of: in-kernel users (vfio) hold the
    /// context by holding the file, as in C.
    pub(crate) file: OpenFile,
    /// The `mmap()` offsets vIOMMUs own.
    #[cfg(CONFIG_IOMMUFD_RS_TEST)]
    pub(crate) mmaps: Arc<crate::viommu::MmapRegistry>,
}

impl Drop for Context {
    fn drop(&mut self) {
        self.objects.clear();
    }
}

impl Context {
    /// A new file's state: an empty table; pins charged per `node`.
    pub(crate) fn new(node: &Node, file: OpenFile) -> Result<Pin<KBox<Self>>> {
        let mode = match node {
            Node::Iommu => AccountMode::None,
            Node::VfioContainer => AccountMode::Mm,
        };
        let objects = Arc::pin_init(ObjectTable::new(mode), GFP_KERNEL)?;
        KBox::pin_init(
            Context {
                objects,
                file,
                #[cfg(CONFIG_IOMMUFD_RS_TEST)]
                mmaps: crate::viommu::MmapRegistry::new()?,
            },
            GFP_KERNEL,
        )
    }

    /// The accounting mode for new pages objects.
    pub(crate) fn account_mode(&self) -> AccountMode {
        self.objects.account_mode()
    }

    /// Sets the accounting mode to what `mode` returns, if no object
    /// exists yet (`EBUSY` otherwise, checked first).
    pub(crate) fn set_account_mode(&self, mode: impl FnOnce() -> Result<AccountMode>) -> Result {
        self.objects.set_account_mode(mode)
    }
}
