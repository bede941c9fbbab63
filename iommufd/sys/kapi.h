/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The in-kernel API of iommufd_rs (namespace IOMMUFD_RS): the functions of
 * include/linux/iommufd.h under iommufd_rs_ names, implemented in Rust
 * (sys/kapi.rs). iommufd_rs_vfio.ko gives them their upstream names.
 * Functions that return an object in C return an errno here and the
 * object through their last argument.
 */
#ifndef IOMMUFD_RS_KAPI_H
#define IOMMUFD_RS_KAPI_H

#include <linux/types.h>

struct device;
struct file;
struct iommu_group;
struct iommufd_access;
struct iommufd_ctx;
struct iommufd_device;
struct page;

int iommufd_rs_ctx_from_file(struct file *file, struct iommufd_ctx **out);
int iommufd_rs_ctx_from_fd(int fd, struct iommufd_ctx **out);
void iommufd_rs_ctx_get(struct iommufd_ctx *ictx);
void iommufd_rs_ctx_put(struct iommufd_ctx *ictx);
bool iommufd_rs_ctx_has_group(struct iommufd_ctx *ictx,
			      struct iommu_group *group);

int iommufd_rs_device_bind(struct iommufd_ctx *ictx, struct device *dev,
			   u32 *id, struct iommufd_device **out);
void iommufd_rs_device_unbind(struct iommufd_device *idev);
int iommufd_rs_device_attach(struct iommufd_device *idev, u32 pasid,
			     u32 *pt_id);
int iommufd_rs_device_replace(struct iommufd_device *idev, u32 pasid,
			      u32 *pt_id);
void iommufd_rs_device_detach(struct iommufd_device *idev, u32 pasid);
struct iommufd_ctx *iommufd_rs_device_to_ictx(struct iommufd_device *idev);
u32 iommufd_rs_device_to_id(struct iommufd_device *idev);

int iommufd_rs_access_create(struct iommufd_ctx *ictx, bool needs_pin_pages,
			     void (*unmap)(void *data, unsigned long iova,
					   unsigned long length),
			     void *data, u32 *id, struct iommufd_access **out);
void iommufd_rs_access_destroy(struct iommufd_access *access);
int iommufd_rs_access_attach(struct iommufd_access *access, u32 ioas_id);
int iommufd_rs_access_replace(struct iommufd_access *access, u32 ioas_id);
void iommufd_rs_access_detach(struct iommufd_access *access);
int iommufd_rs_access_pin_pages(struct iommufd_access *access,
				unsigned long iova, unsigned long length,
				struct page **out_pages, unsigned int flags);
void iommufd_rs_access_unpin_pages(struct iommufd_access *access,
				   unsigned long iova, unsigned long length);
int iommufd_rs_access_rw(struct iommufd_access *access, unsigned long iova,
			 void *data, size_t len, unsigned int flags);

int iommufd_rs_vfio_compat_ioas_get_id(struct iommufd_ctx *ictx,
				       u32 *out_ioas_id);
int iommufd_rs_vfio_compat_ioas_create(struct iommufd_ctx *ictx);
int iommufd_rs_vfio_compat_set_no_iommu(struct iommufd_ctx *ictx);

#endif
