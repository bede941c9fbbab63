// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the Rust in-kernel API (sys/kapi.rs) in namespace IOMMUFD_RS.
 * The names never clash with C iommufd.ko, so both modules load side by
 * side; iommufd_rs_vfio.ko re-exports them under the upstream names.
 */
#include <linux/export.h>

#include "kapi.h"

EXPORT_SYMBOL_NS_GPL(iommufd_rs_ctx_from_file, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_ctx_from_fd, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_ctx_get, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_ctx_put, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_ctx_has_group, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_bind, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_unbind, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_attach, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_replace, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_detach, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_to_ictx, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_device_to_id, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_create, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_destroy, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_attach, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_replace, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_detach, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_pin_pages, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_unpin_pages, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_access_rw, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_vfio_compat_ioas_get_id, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_vfio_compat_ioas_create, "IOMMUFD_RS");
EXPORT_SYMBOL_NS_GPL(iommufd_rs_vfio_compat_set_no_iommu, "IOMMUFD_RS");
