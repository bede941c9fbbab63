// SPDX-License-Identifier: GPL-2.0

//! The timed workloads of `make bench`, shared with `make profile`.
//!
//! Each workload is prepared (files, IOASes, domains, memory) outside any
//! measurement and then gives one *call*: the ioctls measured, usually a
//! pair such as a map and its unmap. `iommufd_bench` times `calls` calls;
//! `iommufd_profile` counts their instructions between markers. Both run
//! against whichever iommufd module is loaded.

use crate::dev::{Iommufd, PageBuf, FIXED, RW};
use crate::sys::{self, AnonPages};
use crate::uapi;

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;
/// User address of the mappings without a domain: nothing is pinned then,
/// so it need not be backed.
pub const VA: u64 = 0x7f00_0000_0000;
/// The mock domain's first IOVA: domain workloads map from here.
pub const APERTURE: u64 = uapi::MOCK_APERTURE_START as u64;
/// What an ioctl step returns: an error says what failed.
pub type Step = Result<(), String>;

/// One prepared workload.
pub struct Prepared {
    /// One measured call.
    pub call: Box<dyn FnMut() -> Step>,
    /// Unmeasured work before each call, if any.
    pub before: Option<Box<dyn FnMut() -> Step>>,
    /// Checks the result after each call, unmeasured.
    pub after: Option<Box<dyn FnMut() -> Step>>,
    /// Memory the calls map, kept as long as they run.
    pub held: Option<PageBuf>,
}

/// Which run of `iommufd_bench` a workload belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Group {
    /// Small calls without a domain.
    Core,
    /// Calls with mock domains, which pin.
    Domain,
    /// Dirty-bitmap reads (also in [`Group::Domain`]'s run).
    Dirty,
}

/// A named workload.
pub struct Workload {
    /// The name in `raw` and `bench` lines.
    pub name: &'static str,
    /// What one call does.
    pub what: &'static str,
    /// Which run it belongs to.
    pub group: Group,
    /// Calls per measurement in `make bench`.
    pub calls: u64,
    /// `true` if C iommufd has no peer for it: reported without a ratio.
    pub rust_only: bool,
    prepare: fn(&mut Memory) -> Result<Prepared, String>,
}

impl Workload {
    /// Sets the workload up, with 1 GiB of `memory` from `mem` if it needs
    /// it.
    pub fn prepare(&self, mem: &mut Memory) -> Result<Prepared, String> {
        (self.prepare)(mem)
    }
}

/// The touched 1 GiB of one kind of memory that the 1 GiB workloads map;
/// asking for another kind releases the one held.
#[derive(Default)]
pub struct Memory {
    held: Option<(AnonPages, u64)>,
}

impl Memory {
    /// The address of 1 GiB of `pages`, touched.
    pub fn gib(&mut self, pages: AnonPages) -> Result<u64, String> {
        match self.held {
            Some((kind, va)) if kind == pages => return Ok(va),
            Some((_, va)) => {
                sys::munmap_anon(va, GIB);
                self.held = None;
            }
            None => {}
        }
        let va = sys::mmap_anon(GIB, pages)
            .ok_or_else(|| format!("mmap of 1 GiB ({pages:?}) refused"))?;
        sys::touch(va, GIB);
        self.held = Some((pages, va));
        Ok(va)
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some((_, va)) = self.held {
            sys::munmap_anon(va, GIB);
        }
    }
}

/// Turns an error into "what: error".
fn err<E: core::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e:?}")
}

/// An errno answer as a step: 0 is success.
fn zero(what: &'static str, rc: i32) -> Step {
    match rc {
        0 => Ok(()),
        e => Err(format!("{what}: errno {e}")),
    }
}

/// A call with no setup step before it.
fn simple(call: impl FnMut() -> Step + 'static) -> Result<Prepared, String> {
    Ok(Prepared {
        call: Box::new(call),
        before: None,
        after: None,
        held: None,
    })
}

/// A file with one IOAS.
fn ioas() -> Result<(Iommufd, u32), String> {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(err("alloc"))?;
    Ok((fd, ioas))
}

/// A file with one IOAS and `domains` mock devices on it.
fn ioas_with_domains(domains: u32) -> Result<(Iommufd, u32), String> {
    let (fd, ioas) = ioas()?;
    for _ in 0..domains {
        fd.mock_domain(ioas).map_err(err("mock_domain"))?;
    }
    Ok((fd, ioas))
}

/// A file whose compat IOAS (type1v2) has `domains` mock devices.
fn container(domains: u32) -> Result<Iommufd, String> {
    let (fd, ioas) = ioas_with_domains(domains)?;
    fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas)
        .map_err(err("vfio_ioas"))?;
    fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU))
        .map_err(err("set_iommu"))?;
    Ok(fd)
}

/// IOAS_MAP + IOAS_UNMAP of `len` bytes at `va`, at a fixed IOVA.
fn map_unmap(fd: Iommufd, ioas: u32, va: u64, len: u64, iova: u64) -> Result<Prepared, String> {
    simple(move || {
        fd.map(ioas, va, len, RW | FIXED, iova)
            .map_err(err("map"))?;
        fd.unmap(ioas, iova, len).map(|_| ()).map_err(err("unmap"))
    })
}

/// A 4 KiB pair at a fixed IOVA with `areas` other areas in the IOAS.
fn fixed_pair(areas: u64) -> Result<Prepared, String> {
    let (fd, ioas) = ioas()?;
    for i in 0..areas {
        fd.map(ioas, VA, PAGE, RW | FIXED, (i + 1) * 2 * PAGE)
            .map_err(err("setup map"))?;
    }
    let iova = (areas + 1) * 2 * PAGE + GIB;
    map_unmap(fd, ioas, VA, PAGE, iova)
}

/// An allocated (not fixed) 8 KiB map plus its unmap, in an IOAS of
/// `areas` one-page areas separated by one-page holes: the allocator must
/// get past every hole too small for the request.
fn alloc_past_holes(areas: u64) -> Result<Prepared, String> {
    let (fd, ioas) = ioas()?;
    for i in 0..areas {
        fd.map(ioas, VA, PAGE, RW | FIXED, (2 * i + 2) * PAGE)
            .map_err(err("setup map"))?;
    }
    simple(move || {
        let iova = fd.map(ioas, VA, 2 * PAGE, RW, 0).map_err(err("map"))?;
        fd.unmap(ioas, iova, 2 * PAGE)
            .map(|_| ())
            .map_err(err("unmap"))
    })
}

/// IOAS_COPY of a 1 GiB area into a second IOAS, plus the copy's unmap.
fn copy_1g() -> Result<Prepared, String> {
    let (fd, src) = ioas()?;
    let dst = fd.ioas_alloc().map_err(err("alloc"))?;
    fd.map(src, VA, GIB, RW | FIXED, GIB).map_err(err("map"))?;
    simple(move || {
        fd.copy(dst, src, GIB, GIB, RW | FIXED, 4 * GIB)
            .map_err(err("copy"))?;
        fd.unmap(dst, 4 * GIB, GIB)
            .map(|_| ())
            .map_err(err("unmap"))
    })
}

/// VFIO_IOMMU_MAP_DMA + UNMAP_DMA of `len` bytes at `va` through compat.
fn compat_pair(va: u64, len: u64, domains: u32) -> Result<Prepared, String> {
    let fd = container(domains)?;
    let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    simple(move || {
        zero("map_dma", fd.vfio_map(rw, va, APERTURE, len))?;
        match fd.vfio_unmap(0, APERTURE, len) {
            (0, n) if n == len => Ok(()),
            other => Err(format!("unmap_dma: {other:?}")),
        }
    })
}

/// A map of one page at the aperture with `domains` mock devices: each
/// map pins and maps, each unmap unmaps and unpins.
fn domain_pair_4k(domains: u32) -> Result<Prepared, String> {
    let page = PageBuf::new(1);
    let (fd, ioas) = ioas_with_domains(domains)?;
    let prepared = map_unmap(fd, ioas, page.addr(), PAGE, APERTURE)?;
    Ok(Prepared {
        held: Some(page),
        ..prepared
    })
}

/// ACCESS_PAGES + DESTROY_ACCESS_PAGES of 1 MiB through an in-kernel
/// access, no domain.
fn access_pages_1m() -> Result<Prepared, String> {
    let len = 1 << 20;
    let buf = PageBuf::new((len / PAGE) as usize);
    let (fd, ioas) = ioas()?;
    fd.map(ioas, buf.addr(), len, RW | FIXED, APERTURE)
        .map_err(err("map"))?;
    let access = fd
        .create_access(ioas, uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)
        .map_err(err("create_access"))?;
    simple(move || {
        let item = fd
            .access_pages(&access, APERTURE, len, buf.ptr())
            .map_err(err("access_pages"))?;
        zero(
            "destroy_access_pages",
            fd.destroy_access_pages(&access, item),
        )
    })
}

/// A 1 GiB map + unmap of `pages` with one mock domain.
fn domain_pair_1g(mem: &mut Memory, pages: AnonPages) -> Result<Prepared, String> {
    let va = mem.gib(pages)?;
    let (fd, ioas) = ioas_with_domains(1)?;
    map_unmap(fd, ioas, va, GIB, APERTURE)
}

/// iommufd_rs's PIN_FLOOR test op over 1 GiB of `pages`: GUP's pin and
/// unpin alone.
fn pin_floor_1g(mem: &mut Memory, pages: AnonPages) -> Result<Prepared, String> {
    let va = mem.gib(pages)?;
    let fd = Iommufd::open()?;
    // One page tells whether the op exists (C has no peer).
    match fd.pin_floor(va, PAGE) {
        0 => {}
        e => return Err(format!("no C peer (PIN_FLOOR: errno {e})")),
    }
    simple(move || zero("pin_floor", fd.pin_floor(va, GIB)))
}

/// A mock device on a new IOAS, moved onto a dirty-tracking HWPT of its
/// own: (file, IOAS, HWPT).
fn dirty_hwpt() -> Result<(Iommufd, u32, u32), String> {
    let (fd, ioas) = ioas()?;
    let (stdev, _, idev) = fd.mock_domain(ioas).map_err(err("mock_domain"))?;
    let hwpt = fd
        .hwpt_alloc(idev, ioas, uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None)
        .map_err(err("hwpt_alloc"))?;
    fd.mock_domain_replace(stdev, hwpt)
        .map_err(err("replace"))?;
    Ok((fd, ioas, hwpt))
}

/// A read of the dirty bitmap of 1 GiB of `pages`, one bit per
/// `page_size`, every page dirty: through `IOMMU_HWPT_GET_DIRTY_BITMAP`
/// (native) or `VFIO_IOMMU_DIRTY_PAGES` GET_BITMAP (`compat`, beyond C).
/// Before each read, unmeasured, every page is marked dirty in the mock
/// domain; after, every bit is checked.
fn dirty_bitmap_1g(
    mem: &mut Memory,
    pages: AnonPages,
    page_size: u64,
    compat: bool,
) -> Result<Prepared, String> {
    let va = mem.gib(pages)?;
    let (fd, ioas, hwpt) = dirty_hwpt()?;
    if page_size == PAGE && !compat {
        // One 4 KiB PTE per page, whatever the physical layout (the
        // container has no dirty tracking with large pages off, as type1
        // v1).
        fd.option(
            uapi::IOMMU_OPTION_HUGE_PAGES,
            uapi::IOMMU_OPTION_OP_SET,
            ioas,
            0,
        )
        .map_err(err("option"))?;
    }
    if compat {
        fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas)
            .map_err(err("vfio_ioas"))?;
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU))
            .map_err(err("set_iommu"))?;
        let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
        zero("map_dma", fd.vfio_map(rw, va, APERTURE, GIB))?;
        match fd.vfio_dirty_pages(8, uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_START, &[]) {
            0 => {}
            e => return Err(format!("no C peer (DIRTY_PAGES START: errno {e})")),
        }
    } else {
        fd.map(ioas, va, GIB, RW | FIXED, APERTURE)
            .map_err(err("map"))?;
        zero(
            "set_dirty_tracking",
            fd.set_dirty_tracking(hwpt, uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE),
        )?;
    }
    let nbits = GIB / page_size;
    let all = vec![0xffu8; (nbits / 8) as usize];
    let bitmap = std::rc::Rc::new(std::cell::RefCell::new(vec![0u64; (nbits / 64) as usize]));
    let fd = std::rc::Rc::new(fd);
    let (fd_before, bitmap_before, bitmap_after) = (fd.clone(), bitmap.clone(), bitmap.clone());
    let before = move || {
        let marked = fd_before
            .mock_set_dirty(hwpt, APERTURE, GIB, page_size, all.as_ptr())
            .map_err(err("TEST_OP_DIRTY"))?;
        if marked != nbits {
            return Err(format!("TEST_OP_DIRTY marked {marked} of {nbits}"));
        }
        bitmap_before.borrow_mut().fill(0);
        Ok(())
    };
    let call = move || {
        let mut bitmap = bitmap.borrow_mut();
        let rc = if compat {
            fd.vfio_dirty_bitmap(APERTURE, GIB, page_size, &mut bitmap)
        } else {
            fd.get_dirty_bitmap(
                hwpt,
                APERTURE,
                GIB,
                page_size,
                bitmap.as_mut_ptr() as u64,
                0,
            )
        };
        zero("get bitmap", rc)
    };
    let after = move || {
        if bitmap_after.borrow().iter().any(|&w| w != u64::MAX) {
            return Err("bitmap: a dirty page was not reported".into());
        }
        Ok(())
    };
    Ok(Prepared {
        call: Box::new(call),
        before: Some(Box::new(before)),
        after: Some(Box::new(after)),
        held: None,
    })
}

/// IOAS_MAP without flags: EINVAL before any lookup.
fn rejected_early() -> Result<Prepared, String> {
    let (fd, ioas) = ioas()?;
    simple(move || match fd.map(ioas, VA, PAGE, 0, 0) {
        Err(_) => Ok(()),
        Ok(_) => Err("map without flags succeeded".into()),
    })
}

/// DESTROY of an ID nothing has.
fn destroy_missing_id() -> Result<Prepared, String> {
    let (fd, ioas) = ioas()?;
    simple(move || match fd.destroy(ioas + 1000) {
        0 => Err("destroy of a missing id succeeded".into()),
        _ => Ok(()),
    })
}

/// IOAS_IOVA_RANGES with room for one range.
fn iova_ranges() -> Result<Prepared, String> {
    let (fd, ioas) = ioas()?;
    simple(move || {
        fd.iova_ranges(ioas, 1)
            .map(|_| ())
            .map_err(err("iova_ranges"))
    })
}

/// IOAS_MAP of length 0: EINVAL once the IOAS is found.
fn rejected_after_lookup() -> Result<Prepared, String> {
    let (fd, ioas) = ioas()?;
    simple(move || match fd.map(ioas, VA, 0, RW | FIXED, 0) {
        Err(_) => Ok(()),
        Ok(_) => Err("zero-length map succeeded".into()),
    })
}

/// A workload of `group` that C has a peer for.
const fn workload(
    group: Group,
    name: &'static str,
    what: &'static str,
    calls: u64,
    prepare: fn(&mut Memory) -> Result<Prepared, String>,
) -> Workload {
    Workload {
        name,
        what,
        group,
        calls,
        rust_only: false,
        prepare,
    }
}

impl Workload {
    /// The same workload, which C has no peer for: reported without a
    /// ratio.
    const fn beyond_c(self) -> Self {
        Self {
            rust_only: true,
            ..self
        }
    }
}

/// The profiling window marker, `xchg bx, bx`: a no-op on hardware; the
/// `tbprof` QEMU plugin zeroes its counters at the first and writes them
/// out at the second (see `iommufd_profile`).
pub fn window_marker() {
    // SAFETY: exchanging a register with itself changes no state.
    unsafe { core::arch::asm!("xchg bx, bx", options(nomem, nostack, preserves_flags)) };
}

/// Pauses `tbprof`'s counting (`xchg cx, cx`).
pub fn pause_marker() {
    // SAFETY: as above.
    unsafe { core::arch::asm!("xchg cx, cx", options(nomem, nostack, preserves_flags)) };
}

/// Resumes `tbprof`'s counting (`xchg dx, dx`).
pub fn resume_marker() {
    // SAFETY: as above.
    unsafe { core::arch::asm!("xchg dx, dx", options(nomem, nostack, preserves_flags)) };
}

use AnonPages::{Hugetlb, Small, Thp};
use Group::{Core, Dirty, Domain};

/// Every timed workload, in the order `make bench` runs them. The 1 GiB
/// ones are grouped by memory kind, so that one GiB is touched per kind.
#[rustfmt::skip]
pub const WORKLOADS: &[Workload] = &[
    workload(Core, "ioctl_rejected_early", "IOAS_MAP with no flags (EINVAL before any lookup)", 20_000, |_| rejected_early()),
    workload(Core, "destroy_missing_id", "DESTROY of an ID that does not exist", 20_000, |_| destroy_missing_id()),
    workload(Core, "iova_ranges", "IOAS_IOVA_RANGES with room for one range", 20_000, |_| iova_ranges()),
    workload(Core, "map_rejected_after_lookup", "IOAS_MAP of length 0 (EINVAL after the IOAS lookup)", 20_000, |_| rejected_after_lookup()),
    workload(Core, "map_alloc_8k_past_10_holes", "allocated 8 KiB map + unmap past 10 one-page holes", 2000, |_| alloc_past_holes(10)),
    workload(Core, "map_alloc_8k_past_10000_holes", "the same past 10,000 holes", 200, |_| alloc_past_holes(10_000)),
    workload(Core, "ioas_copy_1g_and_unmap", "IOAS_COPY of a 1 GiB area into a second IOAS + its unmap (no domain)", 4000, |_| copy_1g()),
    workload(Core, "vfio_map_unmap_dma_4k", "VFIO MAP_DMA + UNMAP_DMA of 4 KiB through compat, no domain", 4000, |_| compat_pair(VA, PAGE, 0)),
    workload(Core, "vfio_map_unmap_dma_1g", "the same, 1 GiB, no domain (nothing is pinned)", 4000, |_| compat_pair(VA, GIB, 0)),
    workload(Core, "map_unmap_4k_fixed_1_area", "IOAS_MAP + IOAS_UNMAP of 4 KiB at a fixed IOVA, no domain, 1 other area", 4000, |_| fixed_pair(1)),
    workload(Core, "map_unmap_4k_fixed_1000_areas", "the same with 1,000 areas", 4000, |_| fixed_pair(1000)),
    workload(Core, "map_unmap_4k_fixed_100000_areas", "the same with 100,000 areas", 4000, |_| fixed_pair(100_000)),
    workload(Domain, "map_unmap_4k_0_domains", "4 KiB map + unmap of present memory, no domain", 4000, |_| domain_pair_4k(0)),
    workload(Domain, "map_unmap_4k_1_domain", "4 KiB map + unmap with one mock domain (pins, maps, unmaps, unpins)", 4000, |_| domain_pair_4k(1)),
    workload(Domain, "map_unmap_4k_2_domains", "the same with two mock devices", 4000, |_| domain_pair_4k(2)),
    workload(Domain, "vfio_map_unmap_dma_4k_domain", "VFIO MAP_DMA + UNMAP_DMA of 4 KiB, one mock domain", 4000, |_| compat_pair_4k_domain()),
    workload(Domain, "access_pages_1m", "ACCESS_PAGES + DESTROY_ACCESS_PAGES of 1 MiB", 200, |_| access_pages_1m()),
    workload(Domain, "map_unmap_1g_domain_4k_pages", "1 GiB map + unmap with one mock domain, 4 KiB pages", 2, |m| domain_pair_1g(m, Small)),
    workload(Domain, "pin_floor_1g_4k_pages", "the floor: GUP pins and unpins the same 1 GiB, nothing else", 2, |m| pin_floor_1g(m, Small)).beyond_c(),
    workload(Domain, "vfio_map_unmap_dma_1g_domain", "VFIO MAP_DMA + UNMAP_DMA of 1 GiB over 4 KiB pages, one mock domain", 2, |m| compat_pair_1g_domain(m)),
    workload(Dirty, "get_dirty_bitmap_1g_4k_pages", "GET_DIRTY_BITMAP of 1 GiB, 4 KiB PTEs (large pages off), every page dirty", 3, |m| dirty_bitmap_1g(m, Small, PAGE, false)),
    workload(Dirty, "vfio_dirty_bitmap_1g_4k_pages", "VFIO DIRTY_PAGES GET_BITMAP of 1 GiB through the container (beyond C)", 3, |m| dirty_bitmap_1g(m, Small, PAGE, true)).beyond_c(),
    workload(Domain, "map_unmap_1g_domain_thp", "1 GiB map + unmap with one mock domain, THP", 2, |m| domain_pair_1g(m, Thp)),
    workload(Domain, "pin_floor_1g_thp", "the floor over THP", 2, |m| pin_floor_1g(m, Thp)).beyond_c(),
    workload(Domain, "map_unmap_1g_domain_hugetlb", "1 GiB map + unmap with one mock domain, hugetlb 2 MiB", 2, |m| domain_pair_1g(m, Hugetlb)),
    workload(Domain, "pin_floor_1g_hugetlb", "the floor over hugetlb 2 MiB", 2, |m| pin_floor_1g(m, Hugetlb)).beyond_c(),
    workload(Dirty, "get_dirty_bitmap_1g_2m_pages", "GET_DIRTY_BITMAP of 1 GiB, hugetlb 2 MiB PTEs, 2 MiB bits", 3, |m| dirty_bitmap_1g(m, Hugetlb, 2 << 20, false)),
];

/// The compat pair over one present page, one mock domain.
fn compat_pair_4k_domain() -> Result<Prepared, String> {
    let page = PageBuf::new(1);
    let prepared = compat_pair(page.addr(), PAGE, 1)?;
    Ok(Prepared {
        held: Some(page),
        ..prepared
    })
}

/// The compat pair over 1 GiB of 4 KiB pages, one mock domain.
fn compat_pair_1g_domain(mem: &mut Memory) -> Result<Prepared, String> {
    let va = mem.gib(Small)?;
    compat_pair(va, GIB, 1)
}

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}
