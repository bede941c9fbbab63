// SPDX-License-Identifier: GPL-2.0
/*
 * kapi_probe: drives iommufd's in-kernel access API (<linux/iommufd.h>) the
 * way vfio does for an emulated device (vfio_pin_pages(), vfio_dma_rw(),
 * vfio_iommufd_emulated_*()), from ioctls on /dev/kapi_probe. It calls the
 * upstream names only, so it runs on C iommufd.ko, or on iommufd_rs.ko with
 * iommufd_rs_vfio.ko, alike. Test kernels only (CONFIG_IOMMUFD_RS_TEST).
 *
 * Each open file is one emulated device: at most one context and one access.
 * Its unmap callback logs each call and unpins what the probe pinned in the
 * range, as a vfio driver's dma_unmap does. selftests/src/bin/
 * iommufd_kapi_probe.rs mirrors the uAPI below.
 *
 * Misuse that C answers with a WARN (pin_pages through an access without
 * needs_pin_pages, attach when attached, detach or unpin when detached) is
 * left out: make check fails on any splat.
 */
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/iommufd.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

/* ---- uAPI ---- */

enum kapi_probe_op {
	KAPI_CTX_FROM_FD = 1,	/* fd; KAPI_BY_FILE: fget + iommufd_ctx_from_file */
	KAPI_CTX_PUT,
	KAPI_ACCESS_CREATE,	/* KAPI_NEEDS_PIN; out: the access's ID */
	KAPI_ACCESS_ATTACH,	/* id: the IOAS */
	KAPI_ACCESS_REPLACE,	/* id: the IOAS */
	KAPI_ACCESS_DETACH,
	KAPI_ACCESS_DESTROY,	/* out: pins the callbacks left behind */
	/* iova, length, flags; uptr: the user VA of the same memory, or 0;
	 * out: the pages that differ from the user's
	 */
	KAPI_PIN,
	KAPI_UNPIN,		/* iova, length: exactly an earlier KAPI_PIN */
	KAPI_RW,		/* iova, length, flags; uptr: the user's buffer */
	/* uptr: room for length entries; out: the entries logged (the log
	 * is cleared); id: the pins held
	 */
	KAPI_UNMAP_LOG,
	KAPI_COMPAT_CREATE,
	KAPI_COMPAT_GET_ID,	/* out: the compat IOAS's ID */
	KAPI_COMPAT_NO_IOMMU,
};

/* flags: IOMMUFD_ACCESS_RW_* (WRITE, KTHREAD) are passed on, and: */
#define KAPI_IN_WORKER	(1U << 8)	/* KAPI_RW from a workqueue kthread */
#define KAPI_NEEDS_PIN	(1U << 9)	/* KAPI_ACCESS_CREATE: needs_pin_pages */
#define KAPI_BY_FILE	(1U << 10)	/* KAPI_CTX_FROM_FD */
#define KAPI_POKE	(1U << 11)	/* KAPI_PIN: add 1 to each page's first byte */
#define KAPI_RW_FLAGS	(IOMMUFD_ACCESS_RW_WRITE | IOMMUFD_ACCESS_RW_KTHREAD)

struct kapi_probe_cmd {
	__u32 op;
	__u32 flags;
	__s32 fd;
	__u32 id;
	__aligned_u64 iova;
	__aligned_u64 length;
	__aligned_u64 uptr;
	__aligned_u64 out;
};

/* One call of the unmap callback. */
struct kapi_unmap_entry {
	__aligned_u64 iova;
	__aligned_u64 length;
	__s32 rw_errno;		/* of a 1-byte read at iova from the callback */
	__u32 pins_dropped;
};

#define KAPI_PROBE_CMD _IOWR('k', 0x70, struct kapi_probe_cmd)

/* ---- state ---- */

#define KAPI_LOG_MAX 16
#define KAPI_PIN_MAX_PAGES 512

struct kapi_pin {
	struct list_head node;
	unsigned long iova, length;
};

struct kapi_probe {
	struct mutex lock;	/* serialises the ioctls; the callback never takes it */
	struct iommufd_ctx *ictx;
	struct iommufd_access *access;
	struct mutex pins_lock;	/* pins and the log, for the callback too */
	struct list_head pins;
	unsigned int npins;
	struct kapi_unmap_entry log[KAPI_LOG_MAX];
	unsigned int nlog;
};

/* Unpins and forgets one pin; pins_lock held. */
static void kapi_drop(struct kapi_probe *p, struct kapi_pin *pin)
{
	iommufd_access_unpin_pages(p->access, pin->iova, pin->length);
	list_del(&pin->node);
	kfree(pin);
	p->npins--;
}

/* Drops every pin in [iova, last]; pins_lock held. */
static unsigned int kapi_unpin_range(struct kapi_probe *p, unsigned long iova,
				     unsigned long last)
{
	struct kapi_pin *pin, *next;
	unsigned int n = 0;

	list_for_each_entry_safe(pin, next, &p->pins, node) {
		if (pin->iova <= last && pin->iova + pin->length - 1 >= iova) {
			kapi_drop(p, pin);
			n++;
		}
	}
	return n;
}

/* iommufd_access_ops.unmap: called with no iommufd lock held. */
static void kapi_unmap(void *data, unsigned long iova, unsigned long length)
{
	struct kapi_probe *p = data;
	struct kapi_unmap_entry e = { .iova = iova, .length = length };
	u8 byte;

	/* The range is being taken away: reads must fail meanwhile. */
	e.rw_errno = -iommufd_access_rw(p->access, iova, &byte, 1, 0);
	mutex_lock(&p->pins_lock);
	e.pins_dropped = kapi_unpin_range(p, iova, iova + (length - 1));
	if (p->nlog < KAPI_LOG_MAX)
		p->log[p->nlog] = e;
	p->nlog++;
	mutex_unlock(&p->pins_lock);
}

static const struct iommufd_access_ops kapi_ops_pin = {
	.needs_pin_pages = 1,
	.unmap = kapi_unmap,
};

static const struct iommufd_access_ops kapi_ops_rw = {
	.needs_pin_pages = 0,
	.unmap = kapi_unmap,
};

/* ---- pin_pages: check the pages against the user's own mapping ---- */

static bool kapi_page_matches(struct page *page, unsigned long uaddr)
{
	struct page *user_page;
	u8 chunk[64];
	bool same;
	void *va;
	int off;

	if (get_user_pages_fast(uaddr, 1, 0, &user_page) != 1)
		return false;
	same = page_to_pfn(user_page) == page_to_pfn(page);
	put_page(user_page);
	va = kmap_local_page(page);
	for (off = 0; same && off < PAGE_SIZE; off += sizeof(chunk))
		same = !copy_from_user(chunk, (void __user *)(uaddr + off),
				       sizeof(chunk)) &&
		       !memcmp(va + off, chunk, sizeof(chunk));
	kunmap_local(va);
	return same;
}

static int kapi_pin(struct kapi_probe *p, struct kapi_probe_cmd *cmd)
{
	unsigned long iova = cmd->iova, len = cmd->length, last, npages, i;
	struct kapi_pin *pin;
	struct page **pages;
	int rc;

	/* As vfio_pin_pages(): room for every page the range touches. */
	if (!len || check_add_overflow(iova, len - 1, &last))
		npages = 1;
	else
		npages = last / PAGE_SIZE - iova / PAGE_SIZE + 1;
	if (npages > KAPI_PIN_MAX_PAGES)
		return -E2BIG;
	pages = kzalloc_objs(*pages, npages);
	pin = kzalloc_obj(*pin);
	if (!pages || !pin) {
		rc = -ENOMEM;
		goto out;
	}
	rc = iommufd_access_pin_pages(p->access, iova, len, pages,
				      cmd->flags & KAPI_RW_FLAGS);
	if (rc)
		goto out;
	cmd->out = 0;
	for (i = 0; i < npages; i++) {
		if (cmd->uptr &&
		    !kapi_page_matches(pages[i], cmd->uptr + i * PAGE_SIZE))
			cmd->out++;
		if (cmd->flags & KAPI_POKE) {
			u8 *va = kmap_local_page(pages[i]);

			va[0]++;
			kunmap_local(va);
		}
	}
	pin->iova = iova;
	pin->length = len;
	mutex_lock(&p->pins_lock);
	list_add_tail(&pin->node, &p->pins);
	p->npins++;
	mutex_unlock(&p->pins_lock);
	pin = NULL;
out:
	kfree(pin);
	kfree(pages);
	return rc;
}

static int kapi_unpin(struct kapi_probe *p, struct kapi_probe_cmd *cmd)
{
	struct kapi_pin *pin;
	int rc = -ENXIO;

	mutex_lock(&p->pins_lock);
	list_for_each_entry(pin, &p->pins, node) {
		if (pin->iova == cmd->iova && pin->length == cmd->length) {
			kapi_drop(p, pin);
			rc = 0;
			break;
		}
	}
	mutex_unlock(&p->pins_lock);
	return rc;
}

/* ---- rw: from the ioctl's process, or from a kthread as vfio_dma_rw() ---- */

struct kapi_rw_work {
	struct work_struct work;
	struct iommufd_access *access;
	unsigned long iova;
	void *buf;
	size_t len;
	unsigned int flags;
	int rc;
};

static void kapi_rw_fn(struct work_struct *work)
{
	struct kapi_rw_work *w = container_of(work, struct kapi_rw_work, work);

	w->rc = iommufd_access_rw(w->access, w->iova, w->buf, w->len, w->flags);
}

static int kapi_rw(struct kapi_probe *p, struct kapi_probe_cmd *cmd)
{
	struct kapi_rw_work w = {
		.access = p->access,
		.iova = cmd->iova,
		.len = cmd->length,
		.flags = cmd->flags & KAPI_RW_FLAGS,
	};
	void __user *ubuf = u64_to_user_ptr(cmd->uptr);
	bool write = w.flags & IOMMUFD_ACCESS_RW_WRITE;

	if (w.len > KAPI_PIN_MAX_PAGES * PAGE_SIZE)
		return -E2BIG;
	w.buf = kvzalloc(max_t(size_t, w.len, 1), GFP_KERNEL);
	if (!w.buf)
		return -ENOMEM;
	if (write && copy_from_user(w.buf, ubuf, w.len)) {
		w.rc = -EFAULT;
		goto out;
	}
	if (cmd->flags & KAPI_IN_WORKER) {
		INIT_WORK_ONSTACK(&w.work, kapi_rw_fn);
		queue_work(system_unbound_wq, &w.work);
		flush_work(&w.work);
		destroy_work_on_stack(&w.work);
	} else {
		kapi_rw_fn(&w.work);
	}
	if (!w.rc && !write && copy_to_user(ubuf, w.buf, w.len))
		w.rc = -EFAULT;
out:
	kvfree(w.buf);
	return w.rc;
}

/* ---- the rest of the ops ---- */

static int kapi_ctx_from_fd(struct kapi_probe *p, struct kapi_probe_cmd *cmd)
{
	struct iommufd_ctx *ictx;

	if (p->ictx)
		return -ENXIO;
	if (cmd->flags & KAPI_BY_FILE) {
		struct file *file = fget(cmd->fd);

		if (!file)
			return -EBADF;
		ictx = iommufd_ctx_from_file(file);
		fput(file);
	} else {
		ictx = iommufd_ctx_from_fd(cmd->fd);
	}
	if (IS_ERR(ictx))
		return PTR_ERR(ictx);
	p->ictx = ictx;
	return 0;
}

static int kapi_log(struct kapi_probe *p, struct kapi_probe_cmd *cmd)
{
	unsigned int n;
	int rc = 0;

	mutex_lock(&p->pins_lock);
	n = min3(p->nlog, (unsigned int)KAPI_LOG_MAX,
		 (unsigned int)min_t(u64, cmd->length, UINT_MAX));
	if (copy_to_user(u64_to_user_ptr(cmd->uptr), p->log,
			 n * sizeof(p->log[0])))
		rc = -EFAULT;
	cmd->out = p->nlog;
	cmd->id = p->npins;
	p->nlog = 0;
	mutex_unlock(&p->pins_lock);
	return rc;
}

/* Destroys the access; returns the pins its unmap callback left behind. */
static unsigned int kapi_destroy(struct kapi_probe *p)
{
	struct kapi_pin *pin, *next;
	unsigned int left;

	iommufd_access_destroy(p->access);
	p->access = NULL;
	/* The callback dropped every pin; forget what a bug may have left. */
	left = p->npins;
	list_for_each_entry_safe(pin, next, &p->pins, node)
		kfree(pin);
	INIT_LIST_HEAD(&p->pins);
	p->npins = 0;
	return left;
}

static int kapi_do(struct kapi_probe *p, struct kapi_probe_cmd *cmd)
{
	u32 id;
	int rc;

	if (cmd->op == KAPI_CTX_FROM_FD)
		return kapi_ctx_from_fd(p, cmd);
	if (cmd->op == KAPI_UNMAP_LOG)
		return kapi_log(p, cmd);
	if (!p->ictx)
		return -ENXIO;
	switch (cmd->op) {
	case KAPI_CTX_PUT:
		if (p->access)
			return -ENXIO;
		iommufd_ctx_put(p->ictx);
		p->ictx = NULL;
		return 0;
	case KAPI_ACCESS_CREATE: {
		struct iommufd_access *access;

		if (p->access)
			return -ENXIO;
		access = iommufd_access_create(p->ictx,
			(cmd->flags & KAPI_NEEDS_PIN) ? &kapi_ops_pin : &kapi_ops_rw,
			p, &id);
		if (IS_ERR(access))
			return PTR_ERR(access);
		p->access = access;
		cmd->out = id;
		return 0;
	}
	case KAPI_COMPAT_CREATE:
		return iommufd_vfio_compat_ioas_create(p->ictx);
	case KAPI_COMPAT_GET_ID:
		rc = iommufd_vfio_compat_ioas_get_id(p->ictx, &id);
		if (!rc)
			cmd->out = id;
		return rc;
	case KAPI_COMPAT_NO_IOMMU:
		return iommufd_vfio_compat_set_no_iommu(p->ictx);
	}
	if (!p->access)
		return -ENXIO;
	switch (cmd->op) {
	case KAPI_ACCESS_ATTACH:
		return iommufd_access_attach(p->access, cmd->id);
	case KAPI_ACCESS_REPLACE:
		return iommufd_access_replace(p->access, cmd->id);
	case KAPI_ACCESS_DETACH:
		iommufd_access_detach(p->access);
		return 0;
	case KAPI_ACCESS_DESTROY:
		cmd->out = kapi_destroy(p);
		return 0;
	case KAPI_PIN:
		return kapi_pin(p, cmd);
	case KAPI_UNPIN:
		return kapi_unpin(p, cmd);
	case KAPI_RW:
		return kapi_rw(p, cmd);
	}
	return -EOPNOTSUPP;
}

static long kapi_ioctl(struct file *file, unsigned int request,
		       unsigned long arg)
{
	struct kapi_probe *p = file->private_data;
	struct kapi_probe_cmd cmd;
	int rc;

	if (request != KAPI_PROBE_CMD)
		return -ENOTTY;
	if (copy_from_user(&cmd, (void __user *)arg, sizeof(cmd)))
		return -EFAULT;
	mutex_lock(&p->lock);
	rc = kapi_do(p, &cmd);
	mutex_unlock(&p->lock);
	if (copy_to_user((void __user *)arg, &cmd, sizeof(cmd)))
		return -EFAULT;
	return rc;
}

static int kapi_open(struct inode *inode, struct file *file)
{
	struct kapi_probe *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	mutex_init(&p->lock);
	mutex_init(&p->pins_lock);
	INIT_LIST_HEAD(&p->pins);
	file->private_data = p;
	return 0;
}

/* As a vfio device's close: destroy the access (unpinning), put the ctx. */
static int kapi_release(struct inode *inode, struct file *file)
{
	struct kapi_probe *p = file->private_data;

	if (p->access)
		kapi_destroy(p);
	if (p->ictx)
		iommufd_ctx_put(p->ictx);
	mutex_destroy(&p->pins_lock);
	mutex_destroy(&p->lock);
	kfree(p);
	return 0;
}

static const struct file_operations kapi_fops = {
	.owner = THIS_MODULE,
	.open = kapi_open,
	.release = kapi_release,
	.unlocked_ioctl = kapi_ioctl,
};

static struct miscdevice kapi_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kapi_probe",
	.fops = &kapi_fops,
	.mode = 0600,
};

module_misc_device(kapi_misc);

MODULE_IMPORT_NS("IOMMUFD");
MODULE_IMPORT_NS("IOMMUFD_VFIO");
MODULE_DESCRIPTION("Test probe of iommufd's in-kernel access API, as vfio uses it");
MODULE_LICENSE("GPL");
