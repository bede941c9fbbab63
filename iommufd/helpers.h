/* SPDX-License-Identifier: GPL-2.0 */
/* C shims for static inline kernel functions, called from Rust (pin.rs, sys.rs). */
#ifndef IOMMUFD_RS_HELPERS_H
#define IOMMUFD_RS_HELPERS_H

#include <linux/types.h>

struct page;

unsigned int iommufd_rs_page_ref_count(struct page *page);
bool iommufd_rs_page_compound(struct page *page);
void iommufd_rs_put_page(struct page *page);
int iommufd_rs_get_user_u32(u32 *out, const u32 __user *uptr);

#endif
