/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bindgen input: the ABI headers the module reads. The include path puts
 * include/uapi first, so <linux/iommufd.h> is the project's header.
 */
#include <linux/iommufd.h>
#include "iommufd_test.h"
/* The VFIO container ABI, served by vfio_compat.rs; the kernel's header. */
#include <linux/vfio.h>
