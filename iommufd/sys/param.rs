// SPDX-License-Identifier: GPL-2.0

//! String and boolean module parameters.
//!
//! The `module!` macro of Linux 7.2 supports read-only integer parameters
//! only. The misc device name is a string, so this file declares it the way
//! C's `module_param(name, charp, 0)` does, using the kernel's
//! `param_ops_charp`; `allow_unsafe_interrupts` is a bool writable through
//! sysfs, as in C iommufd (`param_ops_bool`, 0644). All FFI for module
//! parameters lives here.

use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    bindings, ffi::c_char, module_param::KernelParam, prelude::*, str::as_char_ptr_in_const_context,
};

/// Default name of the /dev node, as in mainline.
const DEFAULT_DEVICE_NAME: &CStr = c"iommu";

/// Storage for the `devname` parameter.
///
/// # Invariants
///
/// Holds a pointer to a NUL-terminated string that lives until the module is
/// unloaded: either `DEFAULT_DEVICE_NAME` or a copy made by
/// `param_set_charp()`. It is written only by the module loader before
/// `init` runs, because the parameter has permission 0 (not in sysfs).
static mut DEVICE_NAME: *mut c_char = as_char_ptr_in_const_context(DEFAULT_DEVICE_NAME).cast_mut();

#[link_section = "__param"]
#[used(compiler)]
static DEVICE_NAME_PARAM: KernelParam = KernelParam::new(bindings::kernel_param {
    name: as_char_ptr_in_const_context(if cfg!(MODULE) {
        c"devname"
    } else {
        c"iommufd_rs.devname"
    }),
    // `__this_module` is created by the module loader and outlives every
    // use of the parameter.
    #[cfg(MODULE)]
    mod_: &raw mut bindings::__this_module,
    #[cfg(not(MODULE))]
    mod_: core::ptr::null_mut(),
    ops: &raw const bindings::param_ops_charp,
    perm: 0,
    level: -1,
    flags: 0,
    __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
        arg: (&raw mut DEVICE_NAME).cast(),
    },
});

/// `allow_unsafe_interrupts`: written by the loader and by sysfs through
/// `param_set_bool()` (one byte), read with atomic loads.
static ALLOW_UNSAFE_INTERRUPTS: AtomicBool = AtomicBool::new(false);

#[link_section = "__param"]
#[used(compiler)]
static ALLOW_UNSAFE_INTERRUPTS_PARAM: KernelParam = KernelParam::new(bindings::kernel_param {
    name: as_char_ptr_in_const_context(if cfg!(MODULE) {
        c"allow_unsafe_interrupts"
    } else {
        c"iommufd_rs.allow_unsafe_interrupts"
    }),
    // As for `devname`.
    #[cfg(MODULE)]
    mod_: &raw mut bindings::__this_module,
    #[cfg(not(MODULE))]
    mod_: core::ptr::null_mut(),
    ops: &raw const bindings::param_ops_bool,
    perm: 0o644,
    level: -1,
    flags: 0,
    __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
        arg: ALLOW_UNSAFE_INTERRUPTS.as_ptr().cast(),
    },
});

/// Emits a `.modinfo` string for a loadable module (modinfo(8) shows it).
macro_rules! modinfo {
    ($item:ident, $text:literal) => {
        #[cfg(MODULE)]
        #[link_section = ".modinfo"]
        #[used(compiler)]
        static $item: [u8; $text.len()] = *$text;
    };
}

modinfo!(DEVICE_NAME_PARMTYPE, b"parmtype=devname:charp\0");
modinfo!(
    DEVICE_NAME_PARM,
    b"parm=devname:name of the misc device (default: iommu)\0"
);

modinfo!(
    ALLOW_UNSAFE_INTERRUPTS_PARMTYPE,
    b"parmtype=allow_unsafe_interrupts:bool\0"
);
modinfo!(
    ALLOW_UNSAFE_INTERRUPTS_PARM,
    b"parm=allow_unsafe_interrupts:bind devices whose MSIs the platform cannot isolate (a security weakness)\0"
);

/// Whether devices whose MSIs cannot be isolated may be bound.
pub(crate) fn allow_unsafe_interrupts() -> bool {
    ALLOW_UNSAFE_INTERRUPTS.load(Ordering::Relaxed)
}

/// The misc device name chosen at load time.
pub(crate) fn device_name() -> &'static CStr {
    // The misc device using the name is deregistered at unload, before the
    // parameter's string is freed.
    // SAFETY: Per `DEVICE_NAME`'s invariants: set before init, never after,
    // a NUL-terminated string living until unload.
    unsafe { CStr::from_char_ptr(DEVICE_NAME) }
}
