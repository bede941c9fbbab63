// SPDX-License-Identifier: GPL-2.0

//! Typed calls on an open /dev/iommu.

use crate::sys::{self, Errno};
use crate::uapi;
use std::fs::File;
use std::mem::size_of;

/// Path of the node under test.
pub const IOMMU_DEV: &str = "/dev/iommu";

/// An open /dev/iommu.
pub struct Iommufd {
    pub file: File,
}

/// Size of a uAPI struct as the `size` field wants it.
pub fn size_of_u32<T>() -> u32 {
    size_of::<T>() as u32
}

impl Iommufd {
    /// Opens /dev/iommu.
    pub fn open() -> Result<Self, String> {
        Self::open_path(IOMMU_DEV)
    }

    /// Opens an iommufd node by path.
    pub fn open_path(path: &str) -> Result<Self, String> {
        let file = sys::open_dev(path).map_err(|e| format!("open {path}: {e}"))?;
        Ok(Self { file })
    }

    /// IOMMU_TEST_CMD(ADD_RESERVED): 0 or the errno.
    pub fn add_reserved(&self, ioas: u32, start: u64, length: u64) -> Errno {
        let mut cmd = uapi::iommu_test_cmd {
            size: size_of_u32::<uapi::iommu_test_cmd>(),
            op: uapi::IOMMU_TEST_OP_ADD_RESERVED,
            id: ioas,
            ..Default::default()
        };
        cmd.__bindgen_anon_1.add_reserved.start = start;
        cmd.__bindgen_anon_1.add_reserved.length = length;
        sys::ioctl_struct(&self.file, uapi::IOMMU_TEST_CMD, &mut cmd)
    }

    /// IOMMU_IOAS_ALLOC: the new ID or the errno.
    pub fn ioas_alloc(&self) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_ioas_alloc {
            size: size_of_u32::<uapi::iommu_ioas_alloc>(),
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_ALLOC, &mut cmd) {
            0 => Ok(cmd.out_ioas_id),
            e => Err(e),
        }
    }

    /// IOMMU_DESTROY: 0 or the errno.
    pub fn destroy(&self, id: u32) -> Errno {
        let mut cmd = uapi::iommu_destroy {
            size: size_of_u32::<uapi::iommu_destroy>(),
            id,
        };
        sys::ioctl_struct(&self.file, uapi::IOMMU_DESTROY, &mut cmd)
    }

    /// IOMMU_IOAS_IOVA_RANGES with room for `room` ranges: the ranges and
    /// the alignment, or the errno with the count the kernel asked for.
    pub fn iova_ranges(
        &self,
        id: u32,
        room: u32,
    ) -> Result<(Vec<uapi::iommu_iova_range>, u64), (Errno, u32)> {
        let mut ranges = vec![uapi::iommu_iova_range::default(); room as usize];
        let mut cmd = uapi::iommu_ioas_iova_ranges {
            size: size_of_u32::<uapi::iommu_ioas_iova_ranges>(),
            ioas_id: id,
            num_iovas: room,
            allowed_iovas: ranges.as_mut_ptr() as u64,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_IOVA_RANGES, &mut cmd) {
            0 => {
                ranges.truncate(cmd.num_iovas as usize);
                Ok((ranges, cmd.out_iova_alignment))
            }
            e => Err((e, cmd.num_iovas)),
        }
    }
}

/// HWPTs and dirty tracking.
impl Iommufd {
    /// IOMMU_HWPT_ALLOC for `dev_id` on `pt_id`, with driver data
    /// (type, bytes) if given: the new HWPT's ID.
    pub fn hwpt_alloc(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data: Option<(u32, &[u8])>,
    ) -> Result<u32, Errno> {
        self.hwpt_alloc_fault(dev_id, pt_id, flags, 0, data)
    }

    /// IOMMU_HWPT_ALLOC with a fault queue: as [`Iommufd::hwpt_alloc`],
    /// with `fault_id` in the struct (`flags` says whether it counts).
    pub fn hwpt_alloc_fault(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        fault_id: u32,
        data: Option<(u32, &[u8])>,
    ) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_hwpt_alloc {
            size: size_of_u32::<uapi::iommu_hwpt_alloc>(),
            flags,
            dev_id,
            pt_id,
            fault_id,
            ..Default::default()
        };
        if let Some((kind, bytes)) = data {
            cmd.data_type = kind;
            cmd.data_len = bytes.len() as u32;
            cmd.data_uptr = bytes.as_ptr() as u64;
        }
        match sys::ioctl_struct(&self.file, uapi::IOMMU_HWPT_ALLOC, &mut cmd) {
            0 => Ok(cmd.out_hwpt_id),
            e => Err(e),
        }
    }

    /// IOMMU_HWPT_INVALIDATE of `hwpt` with `num` entries of `len` bytes
    /// at `reqs`: the errno, and the entries the kernel says it handled.
    pub fn hwpt_invalidate(
        &self,
        hwpt: u32,
        data_type: u32,
        reqs: *const u8,
        len: u32,
        num: u32,
    ) -> (Errno, u32) {
        let mut cmd = uapi::iommu_hwpt_invalidate {
            size: size_of_u32::<uapi::iommu_hwpt_invalidate>(),
            hwpt_id: hwpt,
            data_uptr: reqs as u64,
            data_type,
            entry_len: len,
            entry_num: num,
            ..Default::default()
        };
        let rc = sys::ioctl_struct(&self.file, uapi::IOMMU_HWPT_INVALIDATE, &mut cmd);
        (rc, cmd.entry_num)
    }

    /// IOMMU_FAULT_QUEUE_ALLOC: the fault queue's ID and file.
    pub fn fault_alloc(&self, flags: u32) -> Result<(u32, File), Errno> {
        let mut cmd = uapi::iommu_fault_alloc {
            size: size_of_u32::<uapi::iommu_fault_alloc>(),
            flags,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_FAULT_QUEUE_ALLOC, &mut cmd) {
            0 => {
                use std::os::fd::FromRawFd;
                // SAFETY: The kernel installed a new descriptor for us.
                let file = unsafe { File::from_raw_fd(cmd.out_fault_fd as i32) };
                Ok((cmd.out_fault_id, file))
            }
            e => Err(e),
        }
    }

    /// IOMMU_VIOMMU_ALLOC of `kind` for `dev_id` on `hwpt_id`, with driver
    /// data if given: the vIOMMU's ID.
    pub fn viommu_alloc(
        &self,
        dev_id: u32,
        hwpt_id: u32,
        kind: u32,
        flags: u32,
        data: Option<&mut [u8]>,
    ) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_viommu_alloc {
            size: size_of_u32::<uapi::iommu_viommu_alloc>(),
            flags,
            type_: kind,
            dev_id,
            hwpt_id,
            ..Default::default()
        };
        if let Some(d) = data {
            cmd.data_len = d.len() as u32;
            cmd.data_uptr = d.as_mut_ptr() as u64;
        }
        match sys::ioctl_struct(&self.file, uapi::IOMMU_VIOMMU_ALLOC, &mut cmd) {
            0 => Ok(cmd.out_viommu_id),
            e => Err(e),
        }
    }

    /// IOMMU_VDEVICE_ALLOC: virtual ID `virt_id` for `dev_id` on vIOMMU
    /// `viommu_id`; the virtual device's ID.
    pub fn vdevice_alloc(&self, viommu_id: u32, dev_id: u32, virt_id: u64) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_vdevice_alloc {
            size: size_of_u32::<uapi::iommu_vdevice_alloc>(),
            viommu_id,
            dev_id,
            virt_id,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_VDEVICE_ALLOC, &mut cmd) {
            0 => Ok(cmd.out_vdevice_id),
            e => Err(e),
        }
    }

    /// IOMMU_HW_QUEUE_ALLOC: queue `index` of `kind` on vIOMMU `viommu_id`
    /// over `length` bytes at `iova`; the queue's ID.
    pub fn hw_queue_alloc(
        &self,
        viommu_id: u32,
        kind: u32,
        index: u32,
        iova: u64,
        length: u64,
    ) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_hw_queue_alloc {
            size: size_of_u32::<uapi::iommu_hw_queue_alloc>(),
            viommu_id,
            type_: kind,
            index,
            nesting_parent_iova: iova,
            length,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_HW_QUEUE_ALLOC, &mut cmd) {
            0 => Ok(cmd.out_hw_queue_id),
            e => Err(e),
        }
    }

    /// IOMMU_VEVENTQ_ALLOC: the queue's ID and file.
    pub fn veventq_alloc(
        &self,
        viommu_id: u32,
        kind: u32,
        depth: u32,
        flags: u32,
    ) -> Result<(u32, File), Errno> {
        let mut cmd = uapi::iommu_veventq_alloc {
            size: size_of_u32::<uapi::iommu_veventq_alloc>(),
            flags,
            viommu_id,
            type_: kind,
            veventq_depth: depth,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_VEVENTQ_ALLOC, &mut cmd) {
            0 => {
                use std::os::fd::FromRawFd;
                // SAFETY: The kernel installed a new descriptor for us.
                let file = unsafe { File::from_raw_fd(cmd.out_veventq_fd as i32) };
                Ok((cmd.out_veventq_id, file))
            }
            e => Err(e),
        }
    }

    /// IOMMU_HWPT_SET_DIRTY_TRACKING with `flags`.
    pub fn set_dirty_tracking(&self, hwpt: u32, flags: u32) -> Errno {
        let mut cmd = uapi::iommu_hwpt_set_dirty_tracking {
            size: size_of_u32::<uapi::iommu_hwpt_set_dirty_tracking>(),
            flags,
            hwpt_id: hwpt,
            __reserved: 0,
        };
        sys::ioctl_struct(&self.file, uapi::IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd)
    }

    /// IOMMU_HWPT_GET_DIRTY_BITMAP into the bitmap at `data`.
    pub fn get_dirty_bitmap(
        &self,
        hwpt: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        data: u64,
        flags: u32,
    ) -> Errno {
        let mut cmd = uapi::iommu_hwpt_get_dirty_bitmap {
            size: size_of_u32::<uapi::iommu_hwpt_get_dirty_bitmap>(),
            hwpt_id: hwpt,
            flags,
            iova,
            length,
            page_size,
            data,
            ..Default::default()
        };
        sys::ioctl_struct(&self.file, uapi::IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd)
    }
}

/// Map flags.
pub const FIXED: u32 = uapi::IOMMU_IOAS_MAP_FIXED_IOVA;
pub const WRITE: u32 = uapi::IOMMU_IOAS_MAP_WRITEABLE;
pub const READ: u32 = uapi::IOMMU_IOAS_MAP_READABLE;
pub const RW: u32 = READ | WRITE;

impl Iommufd {
    /// IOMMU_IOAS_MAP of `length` bytes at `user_va`: the IOVA or the errno.
    pub fn map(
        &self,
        ioas: u32,
        user_va: u64,
        length: u64,
        flags: u32,
        iova: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = uapi::iommu_ioas_map {
            size: size_of_u32::<uapi::iommu_ioas_map>(),
            flags,
            ioas_id: ioas,
            user_va,
            length,
            iova,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_MAP, &mut cmd) {
            0 => Ok(cmd.iova),
            e => Err(e),
        }
    }

    /// IOMMU_IOAS_MAP_FILE: the IOVA or the errno.
    pub fn map_file(
        &self,
        ioas: u32,
        fd: i32,
        start: u64,
        length: u64,
        flags: u32,
        iova: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = uapi::iommu_ioas_map_file {
            size: size_of_u32::<uapi::iommu_ioas_map_file>(),
            flags,
            ioas_id: ioas,
            fd,
            start,
            length,
            iova,
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_MAP_FILE, &mut cmd) {
            0 => Ok(cmd.iova),
            e => Err(e),
        }
    }

    /// IOMMU_IOAS_UNMAP: the bytes unmapped or the errno.
    pub fn unmap(&self, ioas: u32, iova: u64, length: u64) -> Result<u64, Errno> {
        let mut cmd = uapi::iommu_ioas_unmap {
            size: size_of_u32::<uapi::iommu_ioas_unmap>(),
            ioas_id: ioas,
            iova,
            length,
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_UNMAP, &mut cmd) {
            0 => Ok(cmd.length),
            e => Err(e),
        }
    }

    /// IOMMU_IOAS_COPY: the destination IOVA or the errno.
    pub fn copy(
        &self,
        dst: u32,
        src: u32,
        src_iova: u64,
        length: u64,
        flags: u32,
        dst_iova: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = uapi::iommu_ioas_copy {
            size: size_of_u32::<uapi::iommu_ioas_copy>(),
            flags,
            dst_ioas_id: dst,
            src_ioas_id: src,
            length,
            dst_iova,
            src_iova,
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_COPY, &mut cmd) {
            0 => Ok(cmd.dst_iova),
            e => Err(e),
        }
    }

    /// IOMMU_IOAS_ALLOW_IOVAS with `ranges` as (start, last): 0 or the errno.
    pub fn allow_iovas(&self, ioas: u32, ranges: &[(u64, u64)]) -> Errno {
        let mut list: Vec<uapi::iommu_iova_range> = ranges
            .iter()
            .map(|&(start, last)| uapi::iommu_iova_range { start, last })
            .collect();
        let mut cmd = uapi::iommu_ioas_allow_iovas {
            size: size_of_u32::<uapi::iommu_ioas_allow_iovas>(),
            ioas_id: ioas,
            num_iovas: list.len() as u32,
            allowed_iovas: list.as_mut_ptr() as u64,
            ..Default::default()
        };
        sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_ALLOW_IOVAS, &mut cmd)
    }

    /// IOMMU_OPTION: the resulting val64 or the errno.
    pub fn option(
        &self,
        option_id: u32,
        op: u32,
        object_id: u32,
        val64: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = uapi::iommu_option {
            size: size_of_u32::<uapi::iommu_option>(),
            option_id,
            op: op as u16,
            object_id,
            val64,
            ..Default::default()
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_OPTION, &mut cmd) {
            0 => Ok(cmd.val64),
            e => Err(e),
        }
    }

    /// IOMMU_IOAS_CHANGE_PROCESS: 0 or the errno.
    pub fn change_process(&self) -> Errno {
        let mut cmd = uapi::iommu_ioas_change_process {
            size: size_of_u32::<uapi::iommu_ioas_change_process>(),
            __reserved: 0,
        };
        sys::ioctl_struct(&self.file, uapi::IOMMU_IOAS_CHANGE_PROCESS, &mut cmd)
    }
}

/// The VFIO container ioctls, as a legacy client issues them.
impl Iommufd {
    /// IOMMU_VFIO_IOAS: the ID reported (GET) or 0, or the errno.
    pub fn vfio_ioas(&self, op: u32, ioas: u32) -> Result<u32, Errno> {
        let mut cmd = uapi::iommu_vfio_ioas {
            size: size_of_u32::<uapi::iommu_vfio_ioas>(),
            ioas_id: ioas,
            op: op as u16,
            __reserved: 0,
        };
        match sys::ioctl_struct(&self.file, uapi::IOMMU_VFIO_IOAS, &mut cmd) {
            0 => Ok(cmd.ioas_id),
            e => Err(e),
        }
    }

    /// An ioctl taking an integer (API version, extensions, SET_IOMMU).
    pub fn vfio_value(&self, request: u32, value: u64) -> Result<i32, Errno> {
        sys::ioctl_value(&self.file, request, value)
    }

    /// VFIO_IOMMU_GET_INFO with a `buf_len`-byte buffer pre-filled with
    /// 0xaa and `argsz` as given: the errno (0 on success) and the buffer.
    pub fn vfio_get_info(&self, argsz: u32, buf_len: usize) -> (Errno, Vec<u8>) {
        let mut buf = vec![0xaau8; buf_len.max(8) + 8];
        buf[..4].copy_from_slice(&argsz.to_ne_bytes());
        let rc = sys::ioctl_ptr(&self.file, uapi::VFIO_IOMMU_GET_INFO, buf.as_mut_ptr());
        buf.truncate(buf_len.max(8));
        (rc, buf)
    }

    /// The capabilities of VFIO_IOMMU_GET_INFO's chain, in chain order:
    /// (ID, version, the capability's bytes up to the next one or the
    /// end), or the errno.
    pub fn vfio_info_caps(&self) -> Result<Vec<(u16, u16, Vec<u8>)>, Errno> {
        let (rc, short) = self.vfio_get_info(24, 24);
        if rc != 0 {
            return Err(rc);
        }
        let need = u32::from_ne_bytes([short[0], short[1], short[2], short[3]]) as usize;
        let (rc, info) = self.vfio_get_info(need as u32, need);
        if rc != 0 {
            return Err(rc);
        }
        let u32_at =
            |at: usize| u32::from_ne_bytes([info[at], info[at + 1], info[at + 2], info[at + 3]]);
        let mut caps = Vec::new();
        let mut off = u32_at(16) as usize;
        while off != 0 && off + 8 <= need && caps.len() < 16 {
            let next = u32_at(off + 4) as usize;
            let end = if next == 0 { need } else { next.min(need) };
            let (id, version) = (u32_at(off) as u16, (u32_at(off) >> 16) as u16);
            caps.push((id, version, info[off..end.max(off)].to_vec()));
            off = next;
        }
        Ok(caps)
    }

    /// VFIO_IOMMU_DIRTY_PAGES with `argsz` and `flags`, followed by `data`
    /// (a `vfio_iommu_type1_dirty_bitmap_get` as words, or nothing).
    pub fn vfio_dirty_pages(&self, argsz: u32, flags: u32, data: &[u64]) -> Errno {
        let mut buf = vec![u64::from(argsz) | u64::from(flags) << 32];
        buf.extend_from_slice(data);
        sys::ioctl_ptr(
            &self.file,
            uapi::VFIO_IOMMU_DIRTY_PAGES,
            buf.as_mut_ptr().cast(),
        )
    }

    /// GET_BITMAP of `[iova, iova + size)` in `pgsize` pages into `bitmap`.
    pub fn vfio_dirty_bitmap(
        &self,
        iova: u64,
        size: u64,
        pgsize: u64,
        bitmap: &mut [u64],
    ) -> Errno {
        let data = [
            iova,
            size,
            pgsize,
            (bitmap.len() * 8) as u64,
            bitmap.as_mut_ptr() as u64,
        ];
        self.vfio_dirty_pages(48, uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, &data)
    }

    /// VFIO_IOMMU_UNMAP_DMA with a `vfio_bitmap` after the struct:
    /// `bitmap` is (page size, size in bytes, address). The errno and the
    /// size field as the kernel left it.
    pub fn vfio_unmap_bitmap(
        &self,
        argsz: u32,
        flags: u32,
        (iova, size): (u64, u64),
        (pgsize, bytes, data): (u64, u64, u64),
    ) -> (Errno, u64) {
        let mut buf = [
            u64::from(argsz) | u64::from(flags) << 32,
            iova,
            size,
            pgsize,
            bytes,
            data,
        ];
        let rc = sys::ioctl_ptr(
            &self.file,
            uapi::VFIO_IOMMU_UNMAP_DMA,
            buf.as_mut_ptr().cast(),
        );
        (rc, buf[2])
    }

    /// VFIO_IOMMU_UNMAP_DMA with GET_DIRTY_BITMAP of `[iova, iova + size)`
    /// into `bitmap`, in `pgsize` pages: the errno and the size unmapped.
    pub fn vfio_unmap_dirty(
        &self,
        iova: u64,
        size: u64,
        pgsize: u64,
        bitmap: &mut [u64],
    ) -> (Errno, u64) {
        self.vfio_unmap_bitmap(
            48,
            uapi::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
            (iova, size),
            (
                pgsize,
                (bitmap.len() * 8) as u64,
                bitmap.as_mut_ptr() as u64,
            ),
        )
    }

    /// VFIO_IOMMU_MAP_DMA: 0 or the errno.
    pub fn vfio_map(&self, flags: u32, vaddr: u64, iova: u64, size: u64) -> Errno {
        let mut cmd = uapi::vfio_iommu_type1_dma_map {
            argsz: std::mem::size_of::<uapi::vfio_iommu_type1_dma_map>() as u32,
            flags,
            vaddr,
            iova,
            size,
        };
        sys::ioctl_struct(&self.file, uapi::VFIO_IOMMU_MAP_DMA, &mut cmd)
    }

    /// VFIO_IOMMU_UNMAP_DMA: the errno (0 on success) and the size field
    /// as the kernel left it.
    pub fn vfio_unmap(&self, flags: u32, iova: u64, size: u64) -> (Errno, u64) {
        let mut cmd = uapi::vfio_iommu_type1_dma_unmap {
            argsz: std::mem::size_of::<uapi::vfio_iommu_type1_dma_unmap>() as u32,
            flags,
            iova,
            size,
            ..Default::default()
        };
        let rc = sys::ioctl_struct(&self.file, uapi::VFIO_IOMMU_UNMAP_DMA, &mut cmd);
        (rc, cmd.size)
    }
}

/// The test interface's mock domain and accesses.
impl Iommufd {
    fn test_cmd(
        &self,
        op: u32,
        id: u32,
        fill: impl FnOnce(&mut uapi::iommu_test_cmd),
    ) -> (Errno, uapi::iommu_test_cmd) {
        let mut cmd = uapi::iommu_test_cmd {
            size: size_of_u32::<uapi::iommu_test_cmd>(),
            op,
            id,
            ..Default::default()
        };
        fill(&mut cmd);
        let rc = sys::ioctl_struct(&self.file, uapi::IOMMU_TEST_CMD, &mut cmd);
        (rc, cmd)
    }

    /// MOCK_DOMAIN on an IOAS or HWPT: (stdev, hwpt, idev) IDs.
    pub fn mock_domain(&self, pt_id: u32) -> Result<(u32, u32, u32), Errno> {
        let (rc, cmd) = self.test_cmd(uapi::IOMMU_TEST_OP_MOCK_DOMAIN, pt_id, |_| {});
        if rc != 0 {
            return Err(rc);
        }
        // SAFETY: The union holds plain integers.
        let out = unsafe { cmd.__bindgen_anon_1.mock_domain };
        Ok((out.out_stdev_id, out.out_hwpt_id, out.out_idev_id))
    }

    /// The IDs in a `mock_domain` result printed with `{:?}`.
    pub fn mock_domain_parse(&self, printed: &str) -> Result<(u32, u32, u32), ()> {
        let inner = printed
            .strip_prefix("Ok((")
            .and_then(|s| s.strip_suffix("))"))
            .ok_or(())?;
        let ids: Vec<u32> = inner
            .split(", ")
            .map(|x| x.parse().map_err(|_| ()))
            .collect::<Result<_, _>>()?;
        match ids[..] {
            [a, b, c] => Ok((a, b, c)),
            _ => Err(()),
        }
    }

    /// MOCK_DOMAIN_FLAGS on an IOAS or HWPT: (stdev, hwpt, idev) IDs.
    pub fn mock_domain_flags(&self, pt_id: u32, dev_flags: u32) -> Result<(u32, u32, u32), Errno> {
        let (rc, cmd) = self.test_cmd(uapi::IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, pt_id, |cmd| {
            cmd.__bindgen_anon_1.mock_domain_flags.dev_flags = dev_flags;
        });
        if rc != 0 {
            return Err(rc);
        }
        // SAFETY: The union holds plain integers.
        let out = unsafe { cmd.__bindgen_anon_1.mock_domain };
        Ok((out.out_stdev_id, out.out_hwpt_id, out.out_idev_id))
    }

    /// MOCK_DOMAIN_REPLACE of mock device `stdev` onto `pt_id`: the HWPT.
    pub fn mock_domain_replace(&self, stdev: u32, pt_id: u32) -> Result<u32, Errno> {
        let (rc, cmd) = self.test_cmd(uapi::IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, |cmd| {
            cmd.__bindgen_anon_1.mock_domain_replace.pt_id = pt_id;
        });
        match rc {
            // SAFETY: The union holds plain integers.
            0 => Ok(unsafe { cmd.__bindgen_anon_1.mock_domain_replace.pt_id }),
            e => Err(e),
        }
    }

    /// PASID_ATTACH (or PASID_REPLACE with `replace`) of PASID `pasid` of
    /// mock device `stdev` to `pt_id`: the HWPT reported.
    pub fn pasid_attach(
        &self,
        stdev: u32,
        pasid: u32,
        pt_id: u32,
        replace: bool,
    ) -> Result<u32, Errno> {
        let op = match replace {
            true => uapi::IOMMU_TEST_OP_PASID_REPLACE,
            false => uapi::IOMMU_TEST_OP_PASID_ATTACH,
        };
        let (rc, cmd) = self.test_cmd(op, stdev, |cmd| {
            cmd.__bindgen_anon_1.pasid_attach.pasid = pasid;
            cmd.__bindgen_anon_1.pasid_attach.pt_id = pt_id;
        });
        match rc {
            // SAFETY: The union holds plain integers.
            0 => Ok(unsafe { cmd.__bindgen_anon_1.pasid_attach.pt_id }),
            e => Err(e),
        }
    }

    /// MD_CHECK_IOTLB: whether IOTLB entry `index` of nested HWPT `hwpt`
    /// holds `value`.
    pub fn check_iotlb(&self, hwpt: u32, index: u32, value: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_MD_CHECK_IOTLB, hwpt, |cmd| {
            cmd.__bindgen_anon_1.check_iotlb.id = index;
            cmd.__bindgen_anon_1.check_iotlb.iotlb = value;
        })
        .0
    }

    /// TRIGGER_IOPF: device `dev_id` reports a page fault at `addr` for
    /// `pasid` in group `grpid`, asking for read and write.
    pub fn trigger_iopf(&self, dev_id: u32, pasid: u32, grpid: u32, addr: u64) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_TRIGGER_IOPF, 0, |cmd| {
            cmd.__bindgen_anon_1.trigger_iopf = uapi::iommu_test_cmd__bindgen_ty_1__bindgen_ty_15 {
                dev_id,
                pasid,
                grpid,
                perm: uapi::IOMMU_PGFAULT_PERM_READ | uapi::IOMMU_PGFAULT_PERM_WRITE,
                addr,
            };
        })
        .0
    }

    /// DMABUF_GET: a test dma-buf of `len` bytes, as a file.
    pub fn dmabuf_get(&self, len: u32) -> Result<File, Errno> {
        let mut cmd = uapi::iommu_test_cmd {
            size: size_of_u32::<uapi::iommu_test_cmd>(),
            op: uapi::IOMMU_TEST_OP_DMABUF_GET,
            ..Default::default()
        };
        cmd.__bindgen_anon_1.dmabuf_get.length = len;
        cmd.__bindgen_anon_1.dmabuf_get.open_flags = 0o2000000; // O_CLOEXEC
        let fd = sys::ioctl_struct_ret(&self.file, uapi::IOMMU_TEST_CMD, &mut cmd)?;
        use std::os::fd::FromRawFd;
        // SAFETY: The kernel installed a new descriptor for us.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// DMABUF_REVOKE: revokes (or restores) the test dma-buf `dmabuf`.
    pub fn dmabuf_revoke(&self, dmabuf: &File, revoked: bool) -> Errno {
        use std::os::fd::AsRawFd;
        self.test_cmd(uapi::IOMMU_TEST_OP_DMABUF_REVOKE, 0, |cmd| {
            cmd.__bindgen_anon_1.dmabuf_revoke.dmabuf_fd = dmabuf.as_raw_fd();
            cmd.__bindgen_anon_1.dmabuf_revoke.revoked = revoked as u32;
        })
        .0
    }

    /// TRIGGER_VEVENT: device `dev_id` reports an event to its vIOMMU.
    pub fn trigger_vevent(&self, dev_id: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_TRIGGER_VEVENT, 0, |cmd| {
            cmd.__bindgen_anon_1.trigger_vevent.dev_id = dev_id;
        })
        .0
    }

    /// DEV_CHECK_CACHE: whether cache entry `index` of device `dev_id`
    /// holds `value`.
    pub fn check_dev_cache(&self, dev_id: u32, index: u32, value: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_DEV_CHECK_CACHE, dev_id, |cmd| {
            cmd.__bindgen_anon_1.check_dev_cache.id = index;
            cmd.__bindgen_anon_1.check_dev_cache.cache = value;
        })
        .0
    }

    /// PASID_DETACH of PASID `pasid` of mock device `stdev`.
    pub fn pasid_detach(&self, stdev: u32, pasid: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_PASID_DETACH, stdev, |cmd| {
            cmd.__bindgen_anon_1.pasid_detach.pasid = pasid;
        })
        .0
    }

    /// PASID_CHECK_HWPT: whether PASID `pasid` of mock device `stdev` is
    /// on HWPT `hwpt` (0: on none).
    pub fn pasid_check(&self, stdev: u32, pasid: u32, hwpt: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev, |cmd| {
            cmd.__bindgen_anon_1.pasid_check.pasid = pasid;
            cmd.__bindgen_anon_1.pasid_check.hwpt_id = hwpt;
        })
        .0
    }

    /// IOMMU_TEST_OP_DIRTY: marks dirty the pages whose bits are set in
    /// `bitmap`; the number marked.
    pub fn mock_set_dirty(
        &self,
        hwpt: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        bitmap: *const u8,
    ) -> Result<u64, Errno> {
        let (rc, cmd) = self.test_cmd(uapi::IOMMU_TEST_OP_DIRTY, hwpt, |cmd| {
            cmd.__bindgen_anon_1.dirty.iova = iova;
            cmd.__bindgen_anon_1.dirty.length = length;
            cmd.__bindgen_anon_1.dirty.page_size = page_size;
            cmd.__bindgen_anon_1.dirty.uptr = bitmap as u64;
        });
        match rc {
            // SAFETY: The union holds plain integers.
            0 => Ok(unsafe { cmd.__bindgen_anon_1.dirty.out_nr_dirty }),
            e => Err(e),
        }
    }

    /// MD_CHECK_MAP: whether the mock domain of `hwpt` maps `[iova, iova +
    /// length)` to the memory at `uptr`.
    pub fn md_check_map(&self, hwpt: u32, iova: u64, length: u64, uptr: *const u8) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_MD_CHECK_MAP, hwpt, |cmd| {
            cmd.__bindgen_anon_1.check_map.iova = iova;
            cmd.__bindgen_anon_1.check_map.length = length;
            cmd.__bindgen_anon_1.check_map.uptr = uptr as u64;
        })
        .0
    }

    /// MD_CHECK_REFS: whether each page at `uptr` carries `refs` pins.
    pub fn check_refs(&self, uptr: *const u8, length: u64, refs: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_MD_CHECK_REFS, 0, |cmd| {
            cmd.__bindgen_anon_1.check_refs.length = length;
            cmd.__bindgen_anon_1.check_refs.uptr = uptr as u64;
            cmd.__bindgen_anon_1.check_refs.refs = refs;
        })
        .0
    }

    /// SET_TEMP_MEMORY_LIMIT: the bytes of PFN buffer a batch may use
    /// (65536 by default).
    pub fn set_temp_memory_limit(&self, limit: u32) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, |cmd| {
            cmd.__bindgen_anon_1.memory_limit.limit = limit;
        })
        .0
    }

    /// iommufd_rs's PIN_FLOOR test op: pins and unpins `length` bytes at
    /// `uptr` with GUP alone (`EOPNOTSUPP` on C).
    pub fn pin_floor(&self, uptr: u64, length: u64) -> Errno {
        self.test_cmd(uapi::IOMMU_TEST_OP_RS_PIN_FLOOR, 0, |cmd| {
            cmd.__bindgen_anon_1.check_refs.length = length;
            cmd.__bindgen_anon_1.check_refs.uptr = uptr;
        })
        .0
    }

    /// CREATE_ACCESS on an IOAS: the access file.
    pub fn create_access(&self, ioas: u32, flags: u32) -> Result<File, Errno> {
        let (rc, cmd) = self.test_cmd(uapi::IOMMU_TEST_OP_CREATE_ACCESS, ioas, |cmd| {
            cmd.__bindgen_anon_1.create_access.flags = flags;
        });
        if rc != 0 {
            return Err(rc);
        }
        use std::os::fd::FromRawFd;
        // SAFETY: The kernel installed this descriptor for us.
        let fd = unsafe { cmd.__bindgen_anon_1.create_access.out_access_fd };
        // SAFETY: A new descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd as i32) })
    }

    /// ACCESS_PAGES: pins `[iova, iova + length)` through `access`, checked
    /// against `uptr`; the item ID.
    pub fn access_pages(
        &self,
        access: &File,
        iova: u64,
        length: u64,
        uptr: *const u8,
    ) -> Result<u32, Errno> {
        self.access_pages_flags(access, iova, length, uptr, 0)
    }

    /// ACCESS_PAGES with `flags` (`MOCK_FLAGS_ACCESS_*`): the item ID.
    pub fn access_pages_flags(
        &self,
        access: &File,
        iova: u64,
        length: u64,
        uptr: *const u8,
        flags: u32,
    ) -> Result<u32, Errno> {
        use std::os::fd::AsRawFd;
        let (rc, cmd) = self.test_cmd(
            uapi::IOMMU_TEST_OP_ACCESS_PAGES,
            access.as_raw_fd() as u32,
            |cmd| {
                cmd.__bindgen_anon_1.access_pages.flags = flags;
                cmd.__bindgen_anon_1.access_pages.iova = iova;
                cmd.__bindgen_anon_1.access_pages.length = length;
                cmd.__bindgen_anon_1.access_pages.uptr = uptr as u64;
            },
        );
        if rc != 0 {
            return Err(rc);
        }
        // SAFETY: The union holds plain integers.
        Ok(unsafe { cmd.__bindgen_anon_1.access_pages.out_access_pages_id })
    }

    /// ACCESS_RW: reads `buf.len()` bytes at `iova` through `access` into
    /// `buf`, or writes them from it (`MOCK_ACCESS_RW_*` in `flags`).
    pub fn access_rw(&self, access: &File, iova: u64, buf: &mut [u8], flags: u32) -> Errno {
        use std::os::fd::AsRawFd;
        self.test_cmd(
            uapi::IOMMU_TEST_OP_ACCESS_RW,
            access.as_raw_fd() as u32,
            |cmd| {
                cmd.__bindgen_anon_1.access_rw.iova = iova;
                cmd.__bindgen_anon_1.access_rw.length = buf.len() as u64;
                cmd.__bindgen_anon_1.access_rw.uptr = buf.as_mut_ptr() as u64;
                cmd.__bindgen_anon_1.access_rw.flags = flags;
            },
        )
        .0
    }

    /// ACCESS_REPLACE_IOAS: moves `access` to IOAS `ioas`.
    pub fn access_replace_ioas(&self, access: &File, ioas: u32) -> Errno {
        use std::os::fd::AsRawFd;
        self.test_cmd(
            uapi::IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
            access.as_raw_fd() as u32,
            |cmd| cmd.__bindgen_anon_1.access_replace_ioas.ioas_id = ioas,
        )
        .0
    }

    /// DESTROY_ACCESS_PAGES: unpins the item `item` of `access`.
    pub fn destroy_access_pages(&self, access: &File, item: u32) -> Errno {
        use std::os::fd::AsRawFd;
        self.test_cmd(
            uapi::IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
            access.as_raw_fd() as u32,
            |cmd| cmd.__bindgen_anon_1.destroy_access_pages.access_pages_id = item,
        )
        .0
    }
}

/// Page-aligned memory, touched so that every page is present.
pub struct PageBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl PageBuf {
    /// `pages` pages of zeroed memory.
    pub fn new(pages: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(pages * 4096, 4096).expect("layout");
        // SAFETY: The layout has a nonzero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        crate::sys::touch(ptr as u64, (pages * 4096) as u64);
        Self { ptr, layout }
    }

    /// The first byte.
    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The address of the first byte.
    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: Allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// This process's `VmPin` in kB.
pub fn vm_pin_kb() -> Result<u64, String> {
    read_number("/proc/self/status", Some("VmPin"))
}

/// Reads one number from a /proc or /sys file, or a `key: value kB` line.
pub fn read_number(path: &str, key: Option<&str>) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    let line = match key {
        None => text.lines().next(),
        Some(k) => text.lines().find(|l| l.starts_with(k)),
    }
    .ok_or_else(|| format!("{path}: no {key:?}"))?;
    let value = match key {
        None => line.trim(),
        Some(k) => line[k.len()..]
            .trim_start_matches(':')
            .split_whitespace()
            .next()
            .unwrap_or(""),
    };
    value
        .parse()
        .map_err(|e| format!("{path}: parse {value:?}: {e}"))
}
