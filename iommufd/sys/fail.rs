// SPDX-License-Identifier: GPL-2.0

//! Fault injection of the test interface (test builds): `should_fail()`
//! fails where C iommufd's `iommufd_should_fail()` does, so that a
//! fail-nth sweep (`iommufd_fail_nth`) reaches the same error paths. The
//! fault attribute is `fail_iommufd_rs` in debugfs.

extern "C" {
    fn iommufd_rs_should_fail() -> bool;
    fn iommufd_rs_fail_init();
    fn iommufd_rs_fail_exit();
}

/// Whether to fail here now (the task's fail-nth count, or the attribute's
/// settings, say so).
pub(crate) fn should_fail() -> bool {
    // SAFETY: Reads and updates only the current task's fault state.
    unsafe { iommufd_rs_should_fail() }
}

/// The debugfs attribute, from module load to exit.
pub(crate) struct FailAttr;

impl FailAttr {
    /// Makes the attribute (none without debugfs: nothing else changes).
    pub(crate) fn new() -> Self {
        // SAFETY: Called once, at module load.
        unsafe { iommufd_rs_fail_init() };
        FailAttr
    }
}

impl Drop for FailAttr {
    fn drop(&mut self) {
        // SAFETY: Called once, at module exit, after `new`.
        unsafe { iommufd_rs_fail_exit() };
    }
}
