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
#include <linux/bitmap.h>
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

u64 iommufd_rs_get_user_u32(const u32 __user *uptr)
{
	u32 val;

	if (get_user(val, uptr))
		return U64_MAX;
	return val;
}

bool iommufd_rs_access_ok(const void __user *uptr, unsigned long size)
{
	return access_ok(uptr, size);
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

/* The direct-map address of page pfn (no highmem on 64-bit). */
void *iommufd_rs_page_address(unsigned long pfn)
{
	return page_address(pfn_to_page(pfn));
}

#include <linux/kthread.h>
#include <linux/sched/mm.h>

/*
 * From a kernel thread without an mm, copies between buf and user address
 * addr of mm: 0, -EFAULT, or 1 if it cannot (not such a thread, or the
 * address space is gone).
 */
int iommufd_rs_kthread_copy(struct mm_struct *mm, unsigned long addr,
			    void *buf, size_t len, bool to_user)
{
	int rc = 0;

	if (!(current->flags & PF_KTHREAD) || current->mm)
		return 1;
	if (!mmget_not_zero(mm))
		return 1;
	kthread_use_mm(mm);
	if (to_user) {
		if (copy_to_user((void __user *)addr, buf, len))
			rc = -EFAULT;
	} else {
		if (copy_from_user(buf, (const void __user *)addr, len))
			rc = -EFAULT;
	}
	kthread_unuse_mm(mm);
	mmput(mm);
	return rc;
}

/* Event queue files: the fault queue's fd (sys/event_file.rs). */
#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/poll.h>

/* A position other than 0 (pread/pwrite) is refused, as C iommufd's. */
static ssize_t eventq_file_read(struct file *file, char __user *buf,
				size_t count, loff_t *ppos)
{
	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_eventq_read(file->private_data, buf, count);
}

static ssize_t eventq_file_write(struct file *file, const char __user *buf,
				 size_t count, loff_t *ppos)
{
	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_eventq_write(file->private_data, buf, count);
}

static __poll_t eventq_file_poll(struct file *file, poll_table *wait)
{
	return iommufd_rs_eventq_poll(file->private_data, file, wait);
}

static int eventq_file_release(struct inode *inode, struct file *file)
{
	iommufd_rs_eventq_release(file->private_data);
	return 0;
}

static const struct file_operations eventq_rw_fops = {
	.owner = THIS_MODULE,
	.read = eventq_file_read,
	.write = eventq_file_write,
	.poll = eventq_file_poll,
	.release = eventq_file_release,
};

static const struct file_operations eventq_ro_fops = {
	.owner = THIS_MODULE,
	.read = eventq_file_read,
	.poll = eventq_file_poll,
	.release = eventq_file_release,
};

struct file *iommufd_rs_eventq_file_new(const char *name, void *data,
					bool writable)
{
	return anon_inode_getfile(name,
				  writable ? &eventq_rw_fops : &eventq_ro_fops,
				  data, O_RDWR);
}

#ifdef IOMMUFD_RS_SELFTEST
/* Fault injection (sys/fail.rs): C iommufd's fail_iommufd, renamed. */
#include <linux/debugfs.h>
#include <linux/fault-inject.h>

static DECLARE_FAULT_ATTR(fail_iommufd_rs);
static struct dentry *fail_iommufd_rs_dir;

bool iommufd_rs_should_fail(void)
{
	return should_fail(&fail_iommufd_rs, 1);
}

void iommufd_rs_fail_init(void)
{
	struct dentry *dir;

	/* No stack dump per injected failure unless asked (debugfs verbose). */
	fail_iommufd_rs.verbose = 0;
	dir = fault_create_debugfs_attr("fail_iommufd_rs", NULL,
					&fail_iommufd_rs);
	fail_iommufd_rs_dir = IS_ERR(dir) ? NULL : dir;
}

void iommufd_rs_fail_exit(void)
{
	debugfs_remove_recursive(fail_iommufd_rs_dir);
	fail_iommufd_rs_dir = NULL;
}

/* VMAs of an iommufd mmap() (sys/mmap.rs): each holds one count. */
#include <linux/mm.h>

static void iommufd_rs_vm_open(struct vm_area_struct *vma)
{
	iommufd_rs_vma_open(vma->vm_private_data);
}

static void iommufd_rs_vm_close(struct vm_area_struct *vma)
{
	iommufd_rs_vma_close(vma->vm_private_data);
}

static const struct vm_operations_struct iommufd_rs_vm_ops = {
	.open = iommufd_rs_vm_open,
	.close = iommufd_rs_vm_close,
};

void iommufd_rs_vma_set_ops(struct vm_area_struct *vma, void *private)
{
	vma->vm_private_data = private;
	vma->vm_ops = &iommufd_rs_vm_ops;
}

/*
 * dma-bufs (sys/dmabuf.rs): the test interface's exporter, as C's selftest
 * one (zeroed kernel memory, revocable), and the importer side of
 * IOMMU_IOAS_MAP_FILE. iommufd_rs_dmabuf_revoked() is Rust.
 */
#include <linux/device/faux.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/io.h>
#include <linux/slab.h>

MODULE_IMPORT_NS("DMA_BUF");

struct iommufd_rs_test_dmabuf {
	void *memory;
	size_t length;
	bool revoked;
};

static int test_dmabuf_attach(struct dma_buf *dmabuf,
			      struct dma_buf_attachment *attachment)
{
	return 0;
}

static void test_dmabuf_detach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attachment)
{
}

static struct sg_table *test_dmabuf_map(struct dma_buf_attachment *attachment,
					enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static void test_dmabuf_unmap(struct dma_buf_attachment *attachment,
			      struct sg_table *sgt, enum dma_data_direction dir)
{
}

static void test_dmabuf_release(struct dma_buf *dmabuf)
{
	struct iommufd_rs_test_dmabuf *priv = dmabuf->priv;

	kfree(priv->memory);
	kfree(priv);
}

static const struct dma_buf_ops test_dmabuf_ops = {
	.attach = test_dmabuf_attach,
	.detach = test_dmabuf_detach,
	.map_dma_buf = test_dmabuf_map,
	.unmap_dma_buf = test_dmabuf_unmap,
	.release = test_dmabuf_release,
};

/* A new test dma-buf of len bytes (page aligned up): its fd, or -errno. */
int iommufd_rs_test_dmabuf_get(unsigned int open_flags, u64 len)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct iommufd_rs_test_dmabuf *priv;
	struct dma_buf *dmabuf;
	int rc;

	if (len == 0 || len > PAGE_SIZE * 512)
		return -EINVAL;
	len = ALIGN(len, PAGE_SIZE);
	priv = kzalloc(sizeof(*priv), GFP_KERNEL);
	if (!priv)
		return -ENOMEM;
	priv->length = len;
	priv->memory = kzalloc(len, GFP_KERNEL);
	if (!priv->memory) {
		rc = -ENOMEM;
		goto err_free;
	}
	exp_info.ops = &test_dmabuf_ops;
	exp_info.size = len;
	exp_info.flags = open_flags;
	exp_info.priv = priv;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		rc = PTR_ERR(dmabuf);
		goto err_free;
	}
	return dma_buf_fd(dmabuf, open_flags);

err_free:
	kfree(priv->memory);
	kfree(priv);
	return rc;
}

/* Revokes (or restores) the test dma-buf at fd; importers are told. */
int iommufd_rs_test_dmabuf_revoke(int fd, bool revoked)
{
	struct iommufd_rs_test_dmabuf *priv;
	struct dma_buf *dmabuf;
	int rc = 0;

	dmabuf = dma_buf_get(fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	if (dmabuf->ops != &test_dmabuf_ops) {
		rc = -EOPNOTSUPP;
		goto out_put;
	}
	priv = dmabuf->priv;
	dma_resv_lock(dmabuf->resv, NULL);
	priv->revoked = revoked;
	dma_buf_invalidate_mappings(dmabuf);
	dma_resv_unlock(dmabuf->resv);
out_put:
	dma_buf_put(dmabuf);
	return rc;
}

/* The device importers attach with: made on first use, gone at exit. */
static struct faux_device *import_dev;
static DEFINE_MUTEX(import_dev_lock);

void iommufd_rs_dmabuf_exit(void)
{
	if (import_dev)
		faux_device_destroy(import_dev);
	import_dev = NULL;
}

static void import_revoke(struct dma_buf_attachment *attach)
{
	iommufd_rs_dmabuf_revoked(attach->importer_priv);
}

static const struct dma_buf_attach_ops import_ops = {
	.allow_peer2peer = true,
	.invalidate_mappings = import_revoke,
};

/*
 * The dma-buf at fd, with a reference, or an error pointer (-EINVAL: fd
 * is not a dma-buf; -EBADF).
 */
struct dma_buf *iommufd_rs_dmabuf_get(int fd)
{
	return dma_buf_get(fd);
}

void iommufd_rs_dmabuf_put(struct dma_buf *dmabuf)
{
	dma_buf_put(dmabuf);
}

u64 iommufd_rs_dmabuf_size(struct dma_buf *dmabuf)
{
	return dmabuf->size;
}

/*
 * Attaches to dmabuf (whose reference the attachment keeps), pinned, and
 * reads where its memory is: priv is told of revocation. -EOPNOTSUPP for a
 * dma-buf not of the test exporter, -ENODEV for a revoked one.
 */
struct dma_buf_attachment *iommufd_rs_dmabuf_attach(struct dma_buf *dmabuf,
						    void *priv, u64 *paddr)
{
	struct iommufd_rs_test_dmabuf *exp = dmabuf->priv;
	struct dma_buf_attachment *attach;
	int rc;

	mutex_lock(&import_dev_lock);
	if (!import_dev)
		import_dev = faux_device_create("iommufd_rs", NULL, NULL);
	mutex_unlock(&import_dev_lock);
	if (!import_dev)
		return ERR_PTR(-ENOMEM);

	attach = dma_buf_dynamic_attach(dmabuf, &import_dev->dev, &import_ops,
					priv);
	if (IS_ERR(attach))
		return attach;
	dma_resv_lock(dmabuf->resv, NULL);
	rc = dma_buf_pin(attach);
	if (rc)
		goto err_detach;
	if (dmabuf->ops != &test_dmabuf_ops) {
		rc = -EOPNOTSUPP;
		goto err_unpin;
	}
	if (exp->revoked) {
		rc = -ENODEV;
		goto err_unpin;
	}
	/* Its length is the dma-buf's size, which the caller checked. */
	*paddr = virt_to_phys(exp->memory);
	dma_resv_unlock(dmabuf->resv);
	return attach;

err_unpin:
	dma_buf_unpin(attach);
err_detach:
	dma_resv_unlock(dmabuf->resv);
	dma_buf_detach(dmabuf, attach);
	return ERR_PTR(rc);
}

/* Undoes iommufd_rs_dmabuf_attach(); the caller then puts the dma-buf. */
void iommufd_rs_dmabuf_detach(struct dma_buf_attachment *attach)
{
	struct dma_buf *dmabuf = attach->dmabuf;

	dma_resv_lock(dmabuf->resv, NULL);
	dma_buf_unpin(attach);
	dma_resv_unlock(dmabuf->resv);
	dma_buf_detach(dmabuf, attach);
}

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

/* Real IOMMUs (sys/iommu.rs). */
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pci-ats.h>
#include <uapi/linux/iommufd.h>
#include "iommu-priv.h"

MODULE_IMPORT_NS("IOMMUFD_INTERNAL");

/*
 * Fills starts[]/lengths[] with up to max reserved regions of dev, leaving
 * out the relaxable direct ones; returns how many there are.
 */
int iommufd_rs_dev_resv_regions(struct device *dev, u64 *starts, u64 *lengths,
				u32 max)
{
	struct iommu_resv_region *resv;
	LIST_HEAD(regions);
	int n = 0;

	iommu_get_resv_regions(dev, &regions);
	list_for_each_entry(resv, &regions, list) {
		if (resv->type == IOMMU_RESV_DIRECT_RELAXABLE)
			continue;
		if (n < max) {
			starts[n] = resv->start;
			lengths[n] = resv->length;
		}
		n++;
	}
	iommu_put_resv_regions(dev, &regions);
	return n;
}

void iommufd_rs_dev_warn_unsafe_msi(struct device *dev)
{
	dev_warn(dev,
		 "MSIs of this device cannot be isolated by the platform (no interrupt remapping); bound anyway because allow_unsafe_interrupts is set\n");
}

bool iommufd_rs_domain_enforce_cc(struct iommu_domain *domain)
{
	return domain->ops->enforce_cache_coherency &&
	       domain->ops->enforce_cache_coherency(domain);
}

int iommufd_rs_group_attach(struct iommu_domain *domain,
			    struct iommu_group *group, void **out)
{
	struct iommu_attach_handle *handle;
	int rc;

	handle = kzalloc_obj(*handle);
	if (!handle)
		return -ENOMEM;
	rc = iommu_attach_group_handle(domain, group, handle);
	if (rc) {
		kfree(handle);
		return rc;
	}
	*out = handle;
	return 0;
}

int iommufd_rs_group_replace(struct iommu_domain *domain,
			     struct iommu_group *group, void *old, void **out)
{
	struct iommu_attach_handle *handle;
	int rc;

	handle = kzalloc_obj(*handle);
	if (!handle)
		return -ENOMEM;
	rc = iommu_replace_group_handle(group, domain, handle);
	if (rc) {
		kfree(handle);
		return rc;
	}
	kfree(old);
	*out = handle;
	return 0;
}

void iommufd_rs_group_detach(struct iommu_domain *domain,
			     struct iommu_group *group, void *handle)
{
	iommu_detach_group_handle(domain, group);
	kfree(handle);
}

/*
 * IOMMU_GET_HW_INFO's driver part for dev: the driver's data (kmalloc'ed,
 * or NULL with *len 0 if the driver has none), its type (*type is the
 * requested one on entry), the capability bits and log2 of the PASIDs.
 */
void *iommufd_rs_dev_hw_info(struct device *dev, u32 *type, u32 *len,
			     u64 *caps, u8 *max_pasid_log2)
{
	const struct iommu_ops *ops = dev_iommu_ops(dev);
	void *data = NULL;

	*len = 0;
	if (ops->hw_info) {
		data = ops->hw_info(dev, len, (enum iommu_hw_info_type *)type);
		if (IS_ERR(data))
			return data;
		if (WARN_ON_ONCE(*type == IOMMU_HW_INFO_TYPE_NONE)) {
			kfree(data);
			return ERR_PTR(-EOPNOTSUPP);
		}
	} else {
		*type = IOMMU_HW_INFO_TYPE_NONE;
	}

	*caps = 0;
	if (device_iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING))
		*caps |= IOMMU_HW_CAP_DIRTY_TRACKING;
	if (!device_iommu_capable(dev, IOMMU_CAP_PCI_ATS_SUPPORTED))
		*caps |= IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED;
	*max_pasid_log2 = 0;
	if (dev->iommu->max_pasids) {
		*max_pasid_log2 = ilog2(dev->iommu->max_pasids);
		if (dev_is_pci(dev)) {
			int ctrl = pci_pasid_status(to_pci_dev(dev));

			WARN_ON_ONCE(ctrl < 0 || !(ctrl & PCI_PASID_CTRL_ENABLE));
			if (ctrl & PCI_PASID_CTRL_EXEC)
				*caps |= IOMMU_HW_CAP_PCI_PASID_EXEC;
			if (ctrl & PCI_PASID_CTRL_PRIV)
				*caps |= IOMMU_HW_CAP_PCI_PASID_PRIV;
		}
	}
	return data;
}

void iommufd_rs_kfree(const void *p)
{
	kfree(p);
}
