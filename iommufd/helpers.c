// SPDX-License-Identifier: GPL-2.0
/*
 * C shims for kernel functions that are static inline, so that the Rust
 * code can call them. Each is one call, nothing more; see
 * rust/helpers/ for the same pattern in the kernel crate.
 */
#include <linux/mm.h>
#include <linux/uaccess.h>

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
