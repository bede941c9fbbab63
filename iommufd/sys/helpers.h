/* SPDX-License-Identifier: GPL-2.0 */
/* C shims for static inline kernel functions, called from Rust (pin.rs, sys.rs). */
#ifndef IOMMUFD_RS_HELPERS_H
#define IOMMUFD_RS_HELPERS_H

#include <linux/types.h>

struct page;
struct folio;
struct user_struct;
struct task_struct;
struct mm_struct;

unsigned int iommufd_rs_page_ref_count(struct page *page);
bool iommufd_rs_page_compound(struct page *page);
void iommufd_rs_put_page(struct page *page);
u64 iommufd_rs_get_user_u32(const u32 __user *uptr);
bool iommufd_rs_access_ok(const void __user *uptr, unsigned long size);

unsigned long iommufd_rs_page_to_pfn(struct page *page);
void iommufd_rs_pages_to_pfns(u64 *slots, unsigned long n);
struct page *iommufd_rs_pfn_to_page(unsigned long pfn);
struct page *iommufd_rs_folio_page(struct folio *folio, unsigned long n);
unsigned long iommufd_rs_folio_nr_pages(struct folio *folio);
struct user_struct *iommufd_rs_current_user_get(void);
unsigned long iommufd_rs_task_memlock_pages(struct task_struct *task);
void iommufd_rs_mm_pinned_vm_add(struct mm_struct *mm, s64 npages);
int iommufd_rs_account_locked_vm(struct mm_struct *mm, unsigned long npages,
				 bool inc, struct task_struct *task);
void iommufd_rs_memcpy_page(unsigned long pfn, size_t offset, void *buf,
			    size_t len, bool to_page);
void *iommufd_rs_page_address(unsigned long pfn);

/* Real IOMMUs (sys/iommu.rs). */
struct device;
struct iommu_domain;
struct iommu_group;
int iommufd_rs_dev_resv_regions(struct device *dev, u64 *starts, u64 *lengths,
				u32 max);
void iommufd_rs_dev_warn_unsafe_msi(struct device *dev);
bool iommufd_rs_domain_enforce_cc(struct iommu_domain *domain);
int iommufd_rs_group_attach(struct iommu_domain *domain,
			    struct iommu_group *group, void **out);
int iommufd_rs_group_replace(struct iommu_domain *domain,
			     struct iommu_group *group, void *old, void **out);
void iommufd_rs_group_detach(struct iommu_domain *domain,
			     struct iommu_group *group, void *handle);
void *iommufd_rs_dev_hw_info(struct device *dev, u32 *type, u32 *len,
			     u64 *caps, u8 *max_pasid_log2);
void iommufd_rs_kfree(const void *p);

int iommufd_rs_kthread_copy(struct mm_struct *mm, unsigned long addr,
			    void *buf, size_t len, bool to_user);

struct file;
struct poll_table_struct;
struct dma_buf;
struct dma_buf_attachment;
/* Fault injection (sys/fail.rs, test builds). */
bool iommufd_rs_should_fail(void);
void iommufd_rs_fail_init(void);
void iommufd_rs_fail_exit(void);
/* dma-bufs (sys/dmabuf.rs, test builds); iommufd_rs_dmabuf_revoked is Rust. */
int iommufd_rs_test_dmabuf_get(unsigned int open_flags, u64 len);
int iommufd_rs_test_dmabuf_revoke(int fd, bool revoked);
void iommufd_rs_dmabuf_exit(void);
void iommufd_rs_dmabuf_revoked(void *priv);
struct dma_buf *iommufd_rs_dmabuf_get(int fd);
void iommufd_rs_dmabuf_put(struct dma_buf *dmabuf);
u64 iommufd_rs_dmabuf_size(struct dma_buf *dmabuf);
struct dma_buf_attachment *iommufd_rs_dmabuf_attach(struct dma_buf *dmabuf,
						    void *priv, u64 *paddr);
void iommufd_rs_dmabuf_detach(struct dma_buf_attachment *attach);
struct vm_area_struct;
/* VMAs of an iommufd mmap() (sys/mmap.rs); the iommufd_rs_vma_* are Rust. */
void iommufd_rs_vma_set_ops(struct vm_area_struct *vma, void *private);
void iommufd_rs_vma_open(void *private);
void iommufd_rs_vma_close(void *private);
/* Event queue files (sys/event_file.rs); the iommufd_rs_eventq_* are Rust. */
struct file *iommufd_rs_eventq_file_new(const char *name, void *data,
					bool writable);
ssize_t iommufd_rs_eventq_read(void *data, char __user *buf, size_t count);
ssize_t iommufd_rs_eventq_write(void *data, const char __user *buf,
				size_t count);
__poll_t iommufd_rs_eventq_poll(void *data, struct file *file,
				struct poll_table_struct *wait);
void iommufd_rs_eventq_release(void *data);

/* The test interface's access files (IOMMUFD_RS_SELFTEST builds). */
struct file *iommufd_rs_access_file_new(void *data);
void *iommufd_rs_access_file_data(struct file *file);
void iommufd_rs_access_file_release(void *data);

#endif
