// SPDX-License-Identifier: GPL-2.0

//! The state of one open /dev/iommu file.

use crate::{ioctl, misc::FileOps, object::ObjectTable};
use kernel::prelude::*;

/// Which node a file was opened through.
pub(crate) struct Node;

/// The state of one open file: its object table.
#[pin_data]
pub(crate) struct Context {
    /// Objects created through this file, by ID.
    #[pin]
    pub(crate) objects: ObjectTable,
}

impl FileOps for Context {
    type NodeData = Node;

    fn open(_node: &Node) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(Context { objects <- ObjectTable::new() }),
            GFP_KERNEL,
        )
    }

    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(&this, cmd, arg)?;
        Ok(0)
    }
}
