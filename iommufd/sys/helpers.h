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
int iommufd_rs_get_user_u32(u32 *out, const u32 __user *uptr);
void *iommufd_rs_kmalloc(size_t size);

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

struct file;
/* The test interface's access files (IOMMUFD_RS_SELFTEST builds). */
struct file *iommufd_rs_access_file_new(void *data);
void *iommufd_rs_access_file_data(struct file *file);
void iommufd_rs_access_file_release(void *data);

#endif
