/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * iommufd-rs user API header for /dev/iommu.
 * ABI-identical to Linux 7.2 include/uapi/linux/iommufd.h (same names,
 * values and layouts); verified by scripts/check-uapi.py.
 */
#ifndef _UAPI_IOMMUFD_H
#define _UAPI_IOMMUFD_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define IOMMUFD_TYPE (';')

/*
 * Every ioctl takes a pointer to a struct whose first __u32 is its size.
 * Bytes past the part the kernel knows must be zero.  Common errnos:
 *   ENOTTY     unknown ioctl number
 *   E2BIG      non-zero bytes in the unknown tail of the struct
 *   EOPNOTSUPP a known field holds an unsupported value
 *   EINVAL     a field is invalid
 *   ENOENT     an ID or IOVA does not exist
 *   ENOMEM     out of memory
 *   EOVERFLOW  arithmetic overflow
 */
enum {
	IOMMUFD_CMD_BASE = 0x80,
	IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE,
	IOMMUFD_CMD_IOAS_ALLOC = 0x81,
	IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82,
	IOMMUFD_CMD_IOAS_COPY = 0x83,
	IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84,
	IOMMUFD_CMD_IOAS_MAP = 0x85,
	IOMMUFD_CMD_IOAS_UNMAP = 0x86,
	IOMMUFD_CMD_OPTION = 0x87,
	IOMMUFD_CMD_VFIO_IOAS = 0x88,
	IOMMUFD_CMD_HWPT_ALLOC = 0x89,
	IOMMUFD_CMD_GET_HW_INFO = 0x8a,
	IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b,
	IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c,
	IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d,
	IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e,
	IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f,
	IOMMUFD_CMD_VIOMMU_ALLOC = 0x90,
	IOMMUFD_CMD_VDEVICE_ALLOC = 0x91,
	IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92,
	IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93,
	IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94,
};

/* IOMMU_DESTROY: free any object by ID.  EBUSY while it is still in use. */
struct iommu_destroy {
	__u32 size;
	__u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY)

/* IOMMU_IOAS_ALLOC: create an empty I/O address space (IOAS). */
struct iommu_ioas_alloc {
	__u32 size;
	__u32 flags;		/* must be 0 */
	__u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)

/* One IOVA interval, both ends inclusive. */
struct iommu_iova_range {
	__aligned_u64 start;
	__aligned_u64 last;
};

/*
 * IOMMU_IOAS_IOVA_RANGES: list the IOVA ranges usable for mapping in an IOAS.
 * EMSGSIZE if the array is too small; num_iovas then holds the needed count.
 */
struct iommu_ioas_iova_ranges {
	__u32 size;
	__u32 ioas_id;
	__u32 num_iovas;	/* in: array capacity, out: ranges available */
	__u32 __reserved;
	__aligned_u64 allowed_iovas;	/* user ptr to struct iommu_iova_range[] */
	__aligned_u64 out_iova_alignment;	/* required IOVA/length alignment */
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES)

/*
 * IOMMU_IOAS_ALLOW_IOVAS: replace the set of IOVA ranges that must stay
 * usable; later device attaches that would narrow them are refused.
 */
struct iommu_ioas_allow_iovas {
	__u32 size;
	__u32 ioas_id;
	__u32 num_iovas;
	__u32 __reserved;
	__aligned_u64 allowed_iovas;	/* user ptr to struct iommu_iova_range[] */
};
#define IOMMU_IOAS_ALLOW_IOVAS _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS)

/* Flags for IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_COPY. */
enum iommufd_ioas_map_flags {
	IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,	/* use the caller's iova */
	IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,	/* device may write */
	IOMMU_IOAS_MAP_READABLE = 1 << 2,	/* device may read */
};

/*
 * IOMMU_IOAS_MAP: map user memory at an IOVA, fixed or kernel-chosen.
 * EEXIST if a fixed range is already mapped, ENOSPC if no IOVA space is free.
 */
struct iommu_ioas_map {
	__u32 size;
	__u32 flags;		/* enum iommufd_ioas_map_flags */
	__u32 ioas_id;
	__u32 __reserved;
	__aligned_u64 user_va;
	__aligned_u64 length;
	__aligned_u64 iova;	/* in if FIXED_IOVA, always out */
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)

/* IOMMU_IOAS_MAP_FILE: like IOMMU_IOAS_MAP, but maps a memfd/dma-buf range. */
struct iommu_ioas_map_file {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__s32 fd;
	__aligned_u64 start;	/* byte offset into the file */
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE)

/*
 * IOMMU_IOAS_COPY: map into dst the pages of an existing src mapping; the
 * src range must match a whole earlier map exactly.
 */
struct iommu_ioas_copy {
	__u32 size;
	__u32 flags;		/* enum iommufd_ioas_map_flags */
	__u32 dst_ioas_id;
	__u32 src_ioas_id;
	__aligned_u64 length;
	__aligned_u64 dst_iova;
	__aligned_u64 src_iova;
};
#define IOMMU_IOAS_COPY _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY)

/*
 * IOMMU_IOAS_UNMAP: unmap whole mappings inside [iova, iova + length);
 * iova 0 with length U64_MAX unmaps everything.  length returns bytes unmapped.
 */
struct iommu_ioas_unmap {
	__u32 size;
	__u32 ioas_id;
	__aligned_u64 iova;
	__aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP)

/* Option IDs for IOMMU_OPTION. */
enum iommufd_option {
	IOMMU_OPTION_RLIMIT_MODE = 0,	/* global; 0 user, 1 process accounting */
	IOMMU_OPTION_HUGE_PAGES = 1,	/* per IOAS; 0 forces PAGE_SIZE maps */
};

enum iommufd_option_ops {
	IOMMU_OPTION_OP_SET = 0,
	IOMMU_OPTION_OP_GET = 1,
};

/*
 * IOMMU_OPTION: get or set an option.  Setting RLIMIT_MODE needs
 * CAP_SYS_RESOURCE (EPERM) and no existing objects (EBUSY).
 */
struct iommu_option {
	__u32 size;
	__u32 option_id;	/* enum iommufd_option */
	__u16 op;		/* enum iommufd_option_ops */
	__u16 __reserved;
	__u32 object_id;	/* IOAS ID, or 0 for global options */
	__aligned_u64 val64;
};
#define IOMMU_OPTION _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION)

enum iommufd_vfio_ioas_op {
	IOMMU_VFIO_IOAS_GET = 0,
	IOMMU_VFIO_IOAS_SET = 1,
	IOMMU_VFIO_IOAS_CLEAR = 2,
};

/* IOMMU_VFIO_IOAS: get/set/clear the IOAS used by the VFIO container shim. */
struct iommu_vfio_ioas {
	__u32 size;
	__u32 ioas_id;
	__u16 op;		/* enum iommufd_vfio_ioas_op */
	__u16 __reserved;
};
#define IOMMU_VFIO_IOAS _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS)

/* Flags for IOMMU_HWPT_ALLOC. */
enum iommufd_hwpt_alloc_flags {
	IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0,
	IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1,
	IOMMU_HWPT_FAULT_ID_VALID = 1 << 2,	/* fault_id is set */
	IOMMU_HWPT_ALLOC_PASID = 1 << 3,	/* EOPNOTSUPP without PASID */
};

/* Intel VT-d stage-1 attribute bits. */
enum iommu_hwpt_vtd_s1_flags {
	IOMMU_VTD_S1_SRE = 1 << 0,
	IOMMU_VTD_S1_EAFE = 1 << 1,
	IOMMU_VTD_S1_WPE = 1 << 2,
};

/* IOMMU_HWPT_DATA_VTD_S1 payload. */
struct iommu_hwpt_vtd_s1 {
	__aligned_u64 flags;
	__aligned_u64 pgtbl_addr;
	__u32 addr_width;
	__u32 __reserved;
};

/*
 * IOMMU_HWPT_DATA_ARM_SMMUV3 payload: STE words 0-1, little-endian.
 * EIO if the STE is invalid or sets a field that is not allowed.
 */
struct iommu_hwpt_arm_smmuv3 {
	__aligned_le64 ste[2];
};

/* IOMMU_HWPT_DATA_AMD_GUEST payload: guest device table entry. */
struct iommu_hwpt_amd_guest {
	__aligned_u64 dte[4];
};

enum iommu_hwpt_data_type {
	IOMMU_HWPT_DATA_NONE = 0,
	IOMMU_HWPT_DATA_VTD_S1 = 1,
	IOMMU_HWPT_DATA_ARM_SMMUV3 = 2,
	IOMMU_HWPT_DATA_AMD_GUEST = 3,
};

/*
 * IOMMU_HWPT_ALLOC: create a hardware page table for dev_id on top of an
 * IOAS, a parent HWPT or a vIOMMU (pt_id).
 */
struct iommu_hwpt_alloc {
	__u32 size;
	__u32 flags;		/* enum iommufd_hwpt_alloc_flags */
	__u32 dev_id;
	__u32 pt_id;
	__u32 out_hwpt_id;
	__u32 __reserved;
	__u32 data_type;	/* enum iommu_hwpt_data_type */
	__u32 data_len;
	__aligned_u64 data_uptr;
	__u32 fault_id;		/* valid with IOMMU_HWPT_FAULT_ID_VALID */
	__u32 __reserved2;
};
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC)

enum iommu_hw_info_vtd_flags {
	IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0,	/* no RO on nest parent */
};

/* IOMMU_HW_INFO_TYPE_INTEL_VTD data: raw capability registers. */
struct iommu_hw_info_vtd {
	__u32 flags;
	__u32 __reserved;
	__aligned_u64 cap_reg;
	__aligned_u64 ecap_reg;
};

/* IOMMU_HW_INFO_TYPE_ARM_SMMUV3 data: raw ID registers. */
struct iommu_hw_info_arm_smmuv3 {
	__u32 flags;
	__u32 __reserved;
	__u32 idr[6];
	__u32 iidr;
	__u32 aidr;
};

/* IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV data. */
struct iommu_hw_info_tegra241_cmdqv {
	__u32 flags;
	__u8 version;
	__u8 log2vcmdqs;
	__u8 log2vsids;
	__u8 __reserved;
};

/* IOMMU_HW_INFO_TYPE_AMD data: raw EFR/EFR2 registers. */
struct iommu_hw_info_amd {
	__aligned_u64 efr;
	__aligned_u64 efr2;
};

enum iommu_hw_info_type {
	IOMMU_HW_INFO_TYPE_NONE = 0,
	IOMMU_HW_INFO_TYPE_DEFAULT = 0,
	IOMMU_HW_INFO_TYPE_INTEL_VTD = 1,
	IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2,
	IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3,
	IOMMU_HW_INFO_TYPE_AMD = 4,
};

/* Bits of iommu_hw_info.out_capabilities. */
enum iommufd_hw_capabilities {
	IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0,
	IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1,
	IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2,
	IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1 << 3,
};

enum iommufd_hw_info_flags {
	IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0,	/* in_data_type is an input */
};

/*
 * IOMMU_GET_HW_INFO: report the IOMMU behind dev_id; type specific data is
 * copied to data_uptr (tail zero-filled) and data_len set to its real size.
 */
struct iommu_hw_info {
	__u32 size;
	__u32 flags;		/* enum iommufd_hw_info_flags */
	__u32 dev_id;
	__u32 data_len;
	__aligned_u64 data_uptr;
	union {
		__u32 in_data_type;	/* enum iommu_hw_info_type */
		__u32 out_data_type;
	};
	__u8 out_max_pasid_log2;	/* 0: no PASID */
	__u8 __reserved[3];
	__aligned_u64 out_capabilities;	/* enum iommufd_hw_capabilities */
};
#define IOMMU_GET_HW_INFO _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO)

enum iommufd_hwpt_set_dirty_tracking_flags {
	IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1,
};

/* IOMMU_HWPT_SET_DIRTY_TRACKING: turn dirty tracking on or off for a HWPT. */
struct iommu_hwpt_set_dirty_tracking {
	__u32 size;
	__u32 flags;
	__u32 hwpt_id;
	__u32 __reserved;
};
#define IOMMU_HWPT_SET_DIRTY_TRACKING _IO(IOMMUFD_TYPE, \
					  IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING)

enum iommufd_hwpt_get_dirty_bitmap_flags {
	IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1,	/* read without clearing */
};

/*
 * IOMMU_HWPT_GET_DIRTY_BITMAP: fill a bitmap (one bit per page_size) with
 * the dirty state of an IOVA range, clearing it unless NO_CLEAR.
 */
struct iommu_hwpt_get_dirty_bitmap {
	__u32 size;
	__u32 hwpt_id;
	__u32 flags;
	__u32 __reserved;
	__aligned_u64 iova;
	__aligned_u64 length;
	__aligned_u64 page_size;
	__aligned_u64 data;	/* user ptr to the bitmap */
};
#define IOMMU_HWPT_GET_DIRTY_BITMAP _IO(IOMMUFD_TYPE, \
					IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP)

enum iommu_hwpt_invalidate_data_type {
	IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0,
	IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1,
};

enum iommu_hwpt_vtd_s1_invalidate_flags {
	IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0,
};

/* IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 entry; 4KiB aligned addr, 4KiB pages. */
struct iommu_hwpt_vtd_s1_invalidate {
	__aligned_u64 addr;
	__aligned_u64 npages;
	__u32 flags;
	__u32 __reserved;
};

/* IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 entry; EIO for unsupported cmds. */
struct iommu_viommu_arm_smmuv3_invalidate {
	__aligned_le64 cmd[2];
};

/*
 * IOMMU_HWPT_INVALIDATE: run an array of cache invalidations on a nested
 * HWPT or vIOMMU.  entry_num returns how many were handled.
 */
struct iommu_hwpt_invalidate {
	__u32 size;
	__u32 hwpt_id;
	__aligned_u64 data_uptr;
	__u32 data_type;	/* enum iommu_hwpt_invalidate_data_type */
	__u32 entry_len;
	__u32 entry_num;
	__u32 __reserved;
};
#define IOMMU_HWPT_INVALIDATE _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE)

enum iommu_hwpt_pgfault_flags {
	IOMMU_PGFAULT_FLAGS_PASID_VALID = (1 << 0),
	IOMMU_PGFAULT_FLAGS_LAST_PAGE = (1 << 1),
};

enum iommu_hwpt_pgfault_perm {
	IOMMU_PGFAULT_PERM_READ = (1 << 0),
	IOMMU_PGFAULT_PERM_WRITE = (1 << 1),
	IOMMU_PGFAULT_PERM_EXEC = (1 << 2),
	IOMMU_PGFAULT_PERM_PRIV = (1 << 3),
};

/* Record read from a fault queue fd. */
struct iommu_hwpt_pgfault {
	__u32 flags;		/* enum iommu_hwpt_pgfault_flags */
	__u32 dev_id;
	__u32 pasid;
	__u32 grpid;
	__u32 perm;		/* enum iommu_hwpt_pgfault_perm */
	__u32 __reserved;
	__aligned_u64 addr;
	__u32 length;		/* size hint, 0 if none */
	__u32 cookie;		/* echo in iommu_hwpt_page_response */
};

enum iommufd_page_response_code {
	IOMMUFD_PAGE_RESP_SUCCESS = 0,
	IOMMUFD_PAGE_RESP_INVALID = 1,
};

/* Record written to a fault queue fd. */
struct iommu_hwpt_page_response {
	__u32 cookie;
	__u32 code;		/* enum iommufd_page_response_code */
};

/* IOMMU_FAULT_QUEUE_ALLOC: create a fault queue object and its fd. */
struct iommu_fault_alloc {
	__u32 size;
	__u32 flags;
	__u32 out_fault_id;
	__u32 out_fault_fd;
};
#define IOMMU_FAULT_QUEUE_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC)

enum iommu_viommu_type {
	IOMMU_VIOMMU_TYPE_DEFAULT = 0,
	IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1,
	IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2,
};

/* IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV output: mmap window of VINTF page0. */
struct iommu_viommu_tegra241_cmdqv {
	__aligned_u64 out_vintf_mmap_offset;
	__aligned_u64 out_vintf_mmap_length;
};

/* IOMMU_VIOMMU_ALLOC: create a virtual IOMMU over a nesting parent HWPT. */
struct iommu_viommu_alloc {
	__u32 size;
	__u32 flags;
	__u32 type;		/* enum iommu_viommu_type */
	__u32 dev_id;
	__u32 hwpt_id;
	__u32 out_viommu_id;
	__u32 data_len;
	__u32 __reserved;
	__aligned_u64 data_uptr;
};
#define IOMMU_VIOMMU_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VIOMMU_ALLOC)

/* IOMMU_VDEVICE_ALLOC: bind a device to a vIOMMU under a guest-visible ID. */
struct iommu_vdevice_alloc {
	__u32 size;
	__u32 viommu_id;
	__u32 dev_id;
	__u32 out_vdevice_id;
	__aligned_u64 virt_id;
};
#define IOMMU_VDEVICE_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VDEVICE_ALLOC)

/*
 * IOMMU_IOAS_CHANGE_PROCESS: move pinned-page accounting to the caller.
 * EINVAL if any mapping was not made with IOMMU_IOAS_MAP_FILE.
 */
struct iommu_ioas_change_process {
	__u32 size;
	__u32 __reserved;
};

#define IOMMU_IOAS_CHANGE_PROCESS \
	_IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS)

enum iommu_veventq_flag {
	IOMMU_VEVENTQ_FLAG_LOST_EVENTS = (1U << 0),
};

/* Header in front of each record read from a vEVENTQ fd. */
struct iommufd_vevent_header {
	__u32 flags;		/* enum iommu_veventq_flag */
	__u32 sequence;		/* wraps from INT_MAX to 0; gaps mean loss */
};

enum iommu_veventq_type {
	IOMMU_VEVENTQ_TYPE_DEFAULT = 0,
	IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1,
	IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2,
};

/* IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 record: event, little-endian. */
struct iommu_vevent_arm_smmuv3 {
	__aligned_le64 evt[4];
};

/* IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV record: LVCMDQ error map. */
struct iommu_vevent_tegra241_cmdqv {
	__aligned_le64 lvcmdq_err_map[2];
};

/* IOMMU_VEVENTQ_ALLOC: create a virtual event queue fd for a vIOMMU. */
struct iommu_veventq_alloc {
	__u32 size;
	__u32 flags;
	__u32 viommu_id;
	__u32 type;		/* enum iommu_veventq_type */
	__u32 veventq_depth;
	__u32 out_veventq_id;
	__u32 out_veventq_fd;
	__u32 __reserved;
};
#define IOMMU_VEVENTQ_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VEVENTQ_ALLOC)

enum iommu_hw_queue_type {
	IOMMU_HW_QUEUE_TYPE_DEFAULT = 0,
	IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1,
};

/* IOMMU_HW_QUEUE_ALLOC: give hardware a guest queue at a parent IOVA. */
struct iommu_hw_queue_alloc {
	__u32 size;
	__u32 flags;
	__u32 viommu_id;
	__u32 type;		/* enum iommu_hw_queue_type */
	__u32 index;		/* per-type queue index */
	__u32 out_hw_queue_id;
	__aligned_u64 nesting_parent_iova;
	__aligned_u64 length;
};
#define IOMMU_HW_QUEUE_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HW_QUEUE_ALLOC)

#endif /* _UAPI_IOMMUFD_H */
