// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd_rs_vfio: gives iommufd_rs's in-kernel API the names vfio.ko
 * links against (include/linux/iommufd.h, namespaces IOMMUFD and
 * IOMMUFD_VFIO), so that vfio runs on iommufd_rs in place of iommufd.ko.
 *
 * Each function is a call to its iommufd_rs_ twin; including
 * <linux/iommufd.h> makes the compiler check every signature. This module
 * and C iommufd.ko export the same names, so only one of them can be
 * loaded; iommufd_rs alone exports nothing that clashes.
 */
#include <linux/err.h>
#include <linux/iommufd.h>
#include <linux/module.h>

#include "sys/kapi.h"

MODULE_IMPORT_NS("IOMMUFD_RS");

struct iommufd_ctx *iommufd_ctx_from_file(struct file *file)
{
	struct iommufd_ctx *ictx;
	int rc = iommufd_rs_ctx_from_file(file, &ictx);

	return rc ? ERR_PTR(rc) : ictx;
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_from_file, "IOMMUFD");

struct iommufd_ctx *iommufd_ctx_from_fd(int fd)
{
	struct iommufd_ctx *ictx;
	int rc = iommufd_rs_ctx_from_fd(fd, &ictx);

	return rc ? ERR_PTR(rc) : ictx;
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_from_fd, "IOMMUFD");

void iommufd_ctx_get(struct iommufd_ctx *ictx)
{
	iommufd_rs_ctx_get(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_get, "IOMMUFD");

void iommufd_ctx_put(struct iommufd_ctx *ictx)
{
	iommufd_rs_ctx_put(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_put, "IOMMUFD");

bool iommufd_ctx_has_group(struct iommufd_ctx *ictx, struct iommu_group *group)
{
	return iommufd_rs_ctx_has_group(ictx, group);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_has_group, "IOMMUFD");

struct iommufd_device *iommufd_device_bind(struct iommufd_ctx *ictx,
					   struct device *dev, u32 *id)
{
	struct iommufd_device *idev;
	int rc = iommufd_rs_device_bind(ictx, dev, id, &idev);

	return rc ? ERR_PTR(rc) : idev;
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_bind, "IOMMUFD");

void iommufd_device_unbind(struct iommufd_device *idev)
{
	iommufd_rs_device_unbind(idev);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_unbind, "IOMMUFD");

int iommufd_device_attach(struct iommufd_device *idev, ioasid_t pasid,
			  u32 *pt_id)
{
	return iommufd_rs_device_attach(idev, pasid, pt_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_attach, "IOMMUFD");

int iommufd_device_replace(struct iommufd_device *idev, ioasid_t pasid,
			   u32 *pt_id)
{
	return iommufd_rs_device_replace(idev, pasid, pt_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_replace, "IOMMUFD");

void iommufd_device_detach(struct iommufd_device *idev, ioasid_t pasid)
{
	iommufd_rs_device_detach(idev, pasid);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_detach, "IOMMUFD");

struct iommufd_ctx *iommufd_device_to_ictx(struct iommufd_device *idev)
{
	return iommufd_rs_device_to_ictx(idev);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_to_ictx, "IOMMUFD");

u32 iommufd_device_to_id(struct iommufd_device *idev)
{
	return iommufd_rs_device_to_id(idev);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_to_id, "IOMMUFD");

struct iommufd_access *
iommufd_access_create(struct iommufd_ctx *ictx,
		      const struct iommufd_access_ops *ops, void *data, u32 *id)
{
	struct iommufd_access *access;
	int rc = iommufd_rs_access_create(ictx, ops->needs_pin_pages, ops->unmap,
					  data, id, &access);

	return rc ? ERR_PTR(rc) : access;
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_create, "IOMMUFD");

void iommufd_access_destroy(struct iommufd_access *access)
{
	iommufd_rs_access_destroy(access);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_destroy, "IOMMUFD");

int iommufd_access_attach(struct iommufd_access *access, u32 ioas_id)
{
	return iommufd_rs_access_attach(access, ioas_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_attach, "IOMMUFD");

int iommufd_access_replace(struct iommufd_access *access, u32 ioas_id)
{
	return iommufd_rs_access_replace(access, ioas_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_replace, "IOMMUFD");

void iommufd_access_detach(struct iommufd_access *access)
{
	iommufd_rs_access_detach(access);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_detach, "IOMMUFD");

int iommufd_access_pin_pages(struct iommufd_access *access, unsigned long iova,
			     unsigned long length, struct page **out_pages,
			     unsigned int flags)
{
	return iommufd_rs_access_pin_pages(access, iova, length, out_pages,
					   flags);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_pin_pages, "IOMMUFD");

void iommufd_access_unpin_pages(struct iommufd_access *access,
				unsigned long iova, unsigned long length)
{
	iommufd_rs_access_unpin_pages(access, iova, length);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_unpin_pages, "IOMMUFD");

int iommufd_access_rw(struct iommufd_access *access, unsigned long iova,
		      void *data, size_t len, unsigned int flags)
{
	return iommufd_rs_access_rw(access, iova, data, len, flags);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_rw, "IOMMUFD");

int iommufd_vfio_compat_ioas_get_id(struct iommufd_ctx *ictx, u32 *out_ioas_id)
{
	return iommufd_rs_vfio_compat_ioas_get_id(ictx, out_ioas_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_ioas_get_id, "IOMMUFD_VFIO");

int iommufd_vfio_compat_ioas_create(struct iommufd_ctx *ictx)
{
	return iommufd_rs_vfio_compat_ioas_create(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_ioas_create, "IOMMUFD_VFIO");

int iommufd_vfio_compat_set_no_iommu(struct iommufd_ctx *ictx)
{
	return iommufd_rs_vfio_compat_set_no_iommu(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_set_no_iommu, "IOMMUFD_VFIO");

MODULE_DESCRIPTION("iommufd_rs under iommufd's in-kernel API names, for vfio");
MODULE_LICENSE("GPL");
