// SPDX-License-Identifier: GPL-2.0
/*
 * C shims for kernel functions that are static inline, so that the Rust
 * code can call them. Each is one call (and the lock it needs); see
 * rust/helpers/ for the same pattern in the kernel crate.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/highmem.h>
#include <linux/sched/user.h>
#include <linux/sched/signal.h>
#include <linux/cred.h>

#include "helpers.h"

unsigned int iommufd_rs_page_ref_count(struct page *page)
{
	return page_ref_count(page);
}

bool iommufd_rs_page_compound(struct page *page)
{
	return PageCompound(page);
}

void iommufd_rs_put_page(struct page *page)
{
	put_page(page);
}

int iommufd_rs_get_user_u32(u32 *out, const u32 __user *uptr)
{
	return get_user(*out, uptr);
}

void *iommufd_rs_kmalloc(size_t size)
{
	return kmalloc(size, GFP_KERNEL);
}

unsigned long iommufd_rs_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

void iommufd_rs_pages_to_pfns(u64 *slots, unsigned long n)
{
	unsigned long i;

	for (i = 0; i != n; i++)
		slots[i] = page_to_pfn((struct page *)(uintptr_t)slots[i]);
}

struct page *iommufd_rs_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

struct page *iommufd_rs_folio_page(struct folio *folio, unsigned long n)
{
	return folio_page(folio, n);
}

unsigned long iommufd_rs_folio_nr_pages(struct folio *folio)
{
	return folio_nr_pages(folio);
}

struct user_struct *iommufd_rs_current_user_get(void)
{
	return get_uid(current_user());
}

unsigned long iommufd_rs_task_memlock_pages(struct task_struct *task)
{
	return task_rlimit(task, RLIMIT_MEMLOCK) >> PAGE_SHIFT;
}

void iommufd_rs_mm_pinned_vm_add(struct mm_struct *mm, s64 npages)
{
	atomic64_add(npages, &mm->pinned_vm);
}

/* __account_locked_vm() wants the mmap lock held for writing. */
int iommufd_rs_account_locked_vm(struct mm_struct *mm, unsigned long npages,
				 bool inc, struct task_struct *task)
{
	int rc;

	mmap_write_lock(mm);
	rc = __account_locked_vm(mm, npages, inc, task, false);
	mmap_write_unlock(mm);
	return rc;
}

void iommufd_rs_memcpy_page(unsigned long pfn, size_t offset, void *buf,
			    size_t len, bool to_page)
{
	struct page *page = pfn_to_page(pfn);

	if (to_page)
		memcpy_to_page(page, offset, buf, len);
	else
		memcpy_from_page(buf, page, offset, len);
}

#ifdef IOMMUFD_RS_SELFTEST
#include <linux/anon_inodes.h>
#include <linux/fs.h>

/* iommufd_rs_access_file_release() is Rust (anon_file.rs). */
static int access_file_release(struct inode *inode, struct file *file)
{
	iommufd_rs_access_file_release(file->private_data);
	return 0;
}

static const struct file_operations access_file_fops = {
	.owner = THIS_MODULE,
	.release = access_file_release,
};

struct file *iommufd_rs_access_file_new(void *data)
{
	return anon_inode_getfile("[iommufd_test_staccess]", &access_file_fops,
				  data, O_RDWR);
}

void *iommufd_rs_access_file_data(struct file *file)
{
	return file->f_op == &access_file_fops ? file->private_data : NULL;
}
#endif
