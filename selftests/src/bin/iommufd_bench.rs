// SPDX-License-Identifier: GPL-2.0

//! Workloads for `make bench`. Runs against whichever iommufd module is
//! loaded and prints one `raw` line per workload:
//! `raw impl=IMPL name=NAME us=MICROSECONDS_PER_OP`.
//! The harness alternates C iommufd and iommufd_rs in one boot and turns
//! the medians into ratios.

use iommufd_rs_selftests::dev::{Iommufd, PageBuf, FIXED, RW};
use iommufd_rs_selftests::sys::{self, AnonPages};
use iommufd_rs_selftests::uapi;
use std::time::Instant;

const PAGE: u64 = 4096;
/// User address of the benchmark's mappings; nothing is pinned without a
/// domain, so it need not be backed.
const VA: u64 = 0x7f00_0000_0000;

/// Microseconds per map+unmap pair of one 4 KiB page at a fixed IOVA, with
/// `areas` other areas in the IOAS.
fn map_unmap_pair(fd: &Iommufd, areas: u64, pairs: u64) -> Result<f64, String> {
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    for i in 0..areas {
        fd.map(ioas, VA, PAGE, RW | FIXED, (i + 1) * 2 * PAGE)
            .map_err(|e| format!("setup map {i}: {e}"))?;
    }
    let iova = (areas + 1) * 2 * PAGE + (1 << 30);
    let start = Instant::now();
    for _ in 0..pairs {
        fd.map(ioas, VA, PAGE, RW | FIXED, iova)
            .map_err(|e| format!("map: {e}"))?;
        fd.unmap(ioas, iova, PAGE)
            .map_err(|e| format!("unmap: {e}"))?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / pairs as f64;
    if fd.destroy(ioas) != 0 {
        return Err("destroy failed".into());
    }
    Ok(us)
}

/// Microseconds per allocated (not fixed) map of 8 KiB plus its unmap, in
/// an IOAS holding `areas` one-page areas separated by one-page holes: the
/// allocator must get past every hole too small for the request.
fn alloc_past_holes(fd: &Iommufd, areas: u64, pairs: u64) -> Result<f64, String> {
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    for i in 0..areas {
        fd.map(ioas, VA, PAGE, RW | FIXED, (2 * i + 2) * PAGE)
            .map_err(|e| format!("setup map {i}: {e}"))?;
    }
    let start = Instant::now();
    for _ in 0..pairs {
        let iova = fd
            .map(ioas, VA, 2 * PAGE, RW, 0)
            .map_err(|e| format!("map: {e}"))?;
        fd.unmap(ioas, iova, 2 * PAGE)
            .map_err(|e| format!("unmap: {e}"))?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / pairs as f64;
    if fd.destroy(ioas) != 0 {
        return Err("destroy failed".into());
    }
    Ok(us)
}

/// Microseconds per IOAS_COPY of a 1 GiB area into a second IOAS, plus
/// the unmap of the copy.
fn copy_1g(fd: &Iommufd, pairs: u64) -> Result<f64, String> {
    let src = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let dst = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let gib = 1u64 << 30;
    fd.map(src, VA, gib, RW | FIXED, gib)
        .map_err(|e| format!("map: {e}"))?;
    let start = Instant::now();
    for _ in 0..pairs {
        fd.copy(dst, src, gib, gib, RW | FIXED, 4 * gib)
            .map_err(|e| format!("copy: {e}"))?;
        fd.unmap(dst, 4 * gib, gib)
            .map_err(|e| format!("unmap: {e}"))?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / pairs as f64;
    for id in [src, dst] {
        if fd.destroy(id) != 0 {
            return Err("destroy failed".into());
        }
    }
    Ok(us)
}

/// Unreclaimable slab in bytes, from /proc/meminfo.
fn slab_bytes() -> Result<u64, String> {
    iommufd_rs_selftests::dev::read_number("/proc/meminfo", Some("SUnreclaim")).map(|kb| kb * 1024)
}

/// Kernel memory per area and per IOAS: slab growth while `n` of them
/// exist, divided by `n`. The caches are warmed by a first round.
fn memory_costs(imp: &str) -> Result<(), String> {
    let n: u64 = 20_000;
    let settle = || std::thread::sleep(std::time::Duration::from_millis(300));
    let areas = |fd: &Iommufd| -> Result<(), String> {
        let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
        for i in 0..n {
            fd.map(ioas, VA + i * PAGE, PAGE, RW | FIXED, (2 * i + 2) * PAGE)
                .map_err(|e| format!("map: {e}"))?;
        }
        Ok(())
    };
    let objects = |fd: &Iommufd| -> Result<(), String> {
        for _ in 0..n {
            fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
        }
        Ok(())
    };
    for (name, fill) in [
        (
            "mem_bytes_per_area",
            &areas as &dyn Fn(&Iommufd) -> Result<(), String>,
        ),
        ("mem_bytes_per_ioas", &objects),
    ] {
        fill(&Iommufd::open()?)?;
        settle();
        let before = slab_bytes()?;
        let fd = Iommufd::open()?;
        fill(&fd)?;
        let during = slab_bytes()?;
        drop(fd);
        println!(
            "raw impl={imp} name={name} bytes={}",
            during.saturating_sub(before) / n
        );
    }
    Ok(())
}

/// The mock domain's first IOVA: domain workloads map from here.
const APERTURE: u64 = uapi::MOCK_APERTURE_START as u64;
const GIB: u64 = 1 << 30;

/// An IOAS with `domains` mock devices attached (each on the IOAS's one
/// automatic HWPT).
fn ioas_with_domains(fd: &Iommufd, domains: u32) -> Result<u32, String> {
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    for _ in 0..domains {
        fd.mock_domain(ioas)
            .map_err(|e| format!("mock_domain: {e}"))?;
    }
    Ok(ioas)
}

/// Microseconds per IOAS_MAP + IOAS_UNMAP of `len` bytes at `va` at the
/// aperture's start, with `domains` mock devices: each map pins and maps,
/// each unmap unmaps and unpins. The file is closed after.
fn domain_map_unmap(va: u64, len: u64, domains: u32, pairs: u64) -> Result<f64, String> {
    let fd = Iommufd::open()?;
    let ioas = ioas_with_domains(&fd, domains)?;
    let start = Instant::now();
    for _ in 0..pairs {
        fd.map(ioas, va, len, RW | FIXED, APERTURE)
            .map_err(|e| format!("map: {e}"))?;
        fd.unmap(ioas, APERTURE, len)
            .map_err(|e| format!("unmap: {e}"))?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / pairs as f64)
}

/// Microseconds per VFIO_IOMMU_MAP_DMA + UNMAP_DMA of `len` bytes at `va`
/// through compat (type1v2), with `domains` mock devices.
fn compat_map_unmap(va: u64, len: u64, domains: u32, pairs: u64) -> Result<f64, String> {
    let fd = Iommufd::open()?;
    let ioas = ioas_with_domains(&fd, domains)?;
    fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas)
        .map_err(|e| format!("vfio_ioas: {e}"))?;
    fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU))
        .map_err(|e| format!("set_iommu: {e}"))?;
    let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    let start = Instant::now();
    for _ in 0..pairs {
        match fd.vfio_map(rw, va, APERTURE, len) {
            0 => {}
            e => return Err(format!("map_dma: {e}")),
        }
        match fd.vfio_unmap(0, APERTURE, len) {
            (0, n) if n == len => {}
            other => return Err(format!("unmap_dma: {other:?}")),
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / pairs as f64)
}

/// Microseconds per ACCESS_PAGES + DESTROY_ACCESS_PAGES of 1 MiB through
/// an in-kernel access, no domain.
fn access_pages_1m(pairs: u64) -> Result<f64, String> {
    let len = 1 << 20;
    let buf = PageBuf::new((len / PAGE) as usize);
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    fd.map(ioas, buf.addr(), len, RW | FIXED, APERTURE)
        .map_err(|e| format!("map: {e}"))?;
    let access = fd
        .create_access(ioas, uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)
        .map_err(|e| format!("create_access: {e}"))?;
    let start = Instant::now();
    for _ in 0..pairs {
        let item = fd
            .access_pages(&access, APERTURE, len, buf.ptr())
            .map_err(|e| format!("access_pages: {e}"))?;
        match fd.destroy_access_pages(&access, item) {
            0 => {}
            e => return Err(format!("destroy_access_pages: {e}")),
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / pairs as f64)
}

/// A mock device on a new IOAS, moved onto a dirty-tracking HWPT of its
/// own with tracking on: (file, IOAS, HWPT).
fn dirty_hwpt() -> Result<(Iommufd, u32, u32), String> {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let (stdev, _, idev) = fd
        .mock_domain(ioas)
        .map_err(|e| format!("mock_domain: {e}"))?;
    let hwpt = fd
        .hwpt_alloc(idev, ioas, uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None)
        .map_err(|e| format!("hwpt_alloc: {e}"))?;
    fd.mock_domain_replace(stdev, hwpt)
        .map_err(|e| format!("replace: {e}"))?;
    Ok((fd, ioas, hwpt))
}

/// Microseconds per read of the dirty bitmap of 1 GiB at `va`, one bit
/// per `page_size`, every page dirty: through `IOMMU_HWPT_GET_DIRTY_BITMAP`
/// (native) or `VFIO_IOMMU_DIRTY_PAGES` GET_BITMAP (`compat`, beyond C).
/// Each read is preceded, untimed, by marking every page dirty in the mock
/// domain, and checked to have every bit set.
fn dirty_bitmap_1g(va: u64, page_size: u64, compat: bool, reads: u64) -> Result<f64, String> {
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
        .map_err(|e| format!("option: {e}"))?;
    }
    if compat {
        fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas)
            .map_err(|e| format!("vfio_ioas: {e}"))?;
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU))
            .map_err(|e| format!("set_iommu: {e}"))?;
        let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
        match fd.vfio_map(rw, va, APERTURE, GIB) {
            0 => {}
            e => return Err(format!("map_dma: {e}")),
        }
        match fd.vfio_dirty_pages(8, uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_START, &[]) {
            0 => {}
            e => return Err(format!("no C peer (DIRTY_PAGES START: errno {e})")),
        }
    } else {
        fd.map(ioas, va, GIB, RW | FIXED, APERTURE)
            .map_err(|e| format!("map: {e}"))?;
        match fd.set_dirty_tracking(hwpt, uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE) {
            0 => {}
            e => return Err(format!("set_dirty_tracking: {e}")),
        }
    }
    let nbits = GIB / page_size;
    let all = vec![0xffu8; (nbits / 8) as usize];
    let mut bitmap = vec![0u64; (nbits / 64) as usize];
    let mut spent = 0.0;
    for _ in 0..reads {
        let marked = fd
            .mock_set_dirty(hwpt, APERTURE, GIB, page_size, all.as_ptr())
            .map_err(|e| format!("TEST_OP_DIRTY: {e}"))?;
        if marked != nbits {
            return Err(format!("TEST_OP_DIRTY marked {marked} of {nbits}"));
        }
        bitmap.fill(0);
        let start = Instant::now();
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
        spent += start.elapsed().as_secs_f64();
        if rc != 0 {
            return Err(format!("get bitmap: errno {rc}"));
        }
        if bitmap.iter().any(|&w| w != u64::MAX) {
            return Err("bitmap: a dirty page was not reported".into());
        }
    }
    Ok(spent * 1e6 / reads as f64)
}

/// `MemFree` in bytes.
fn mem_free() -> Result<u64, String> {
    iommufd_rs_selftests::dev::read_number("/proc/meminfo", Some("MemFree")).map(|kb| kb * 1024)
}

/// Kernel memory per GiB pinned and mapped into one mock domain: the drop
/// in `MemFree` while 1 GiB of present 4 KiB pages is mapped (pins,
/// PFN records, the domain's page table), median of three.
fn mem_per_gib_pinned(va: u64) -> Result<u64, String> {
    let fd = Iommufd::open()?;
    let ioas = ioas_with_domains(&fd, 1)?;
    let mut costs = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = mem_free()?;
        fd.map(ioas, va, GIB, RW | FIXED, APERTURE)
            .map_err(|e| format!("map: {e}"))?;
        let during = mem_free()?;
        fd.unmap(ioas, APERTURE, GIB)
            .map_err(|e| format!("unmap: {e}"))?;
        costs.push(before.saturating_sub(during));
    }
    costs.sort_unstable();
    Ok(costs[1])
}

/// The workloads with mock domains, which pin: 4 KiB pairs with 0, 1 and
/// 2 devices, 1 GiB pairs over three kinds of memory, compat with a
/// domain, access pins, and memory per GiB pinned.
fn domain_workloads(imp: &str) -> bool {
    let ok = std::cell::Cell::new(true);
    let report = |name: &str, r: Result<f64, String>| report_raw(imp, name, r, &ok);
    let page = PageBuf::new(1);
    for (name, domains) in [
        ("map_unmap_4k_0_domains", 0),
        ("map_unmap_4k_1_domain", 1),
        ("map_unmap_4k_2_domains", 2),
    ] {
        report(name, domain_map_unmap(page.addr(), PAGE, domains, 4000));
    }
    report(
        "vfio_map_unmap_dma_4k_domain",
        compat_map_unmap(page.addr(), PAGE, 1, 4000),
    );
    report("access_pages_1m", access_pages_1m(200));
    for (name, pages) in [
        ("map_unmap_1g_domain_4k_pages", AnonPages::Small),
        ("map_unmap_1g_domain_thp", AnonPages::Thp),
        ("map_unmap_1g_domain_hugetlb", AnonPages::Hugetlb),
    ] {
        let Some(va) = sys::mmap_anon(GIB, pages) else {
            println!("raw impl={imp} name={name} error=mmap of 1 GiB ({pages:?}) refused");
            continue;
        };
        sys::touch(va, GIB);
        report(name, domain_map_unmap(va, GIB, 1, 3));
        dirty_lines(&report, va, pages);
        if pages == AnonPages::Small {
            report(
                "vfio_map_unmap_dma_1g_domain",
                compat_map_unmap(va, GIB, 1, 3),
            );
            match mem_per_gib_pinned(va) {
                Ok(bytes) => println!("raw impl={imp} name=mem_bytes_per_gib_pinned bytes={bytes}"),
                Err(e) => {
                    println!("raw impl={imp} name=mem_bytes_per_gib_pinned error={e}");
                    ok.set(false);
                }
            }
        }
        sys::munmap_anon(va, GIB);
    }
    ok.get()
}

/// Prints a workload's `raw` line; an error clears `ok`, but for a
/// workload with no C peer (the container's dirty bitmap on C).
fn report_raw(imp: &str, name: &str, r: Result<f64, String>, ok: &std::cell::Cell<bool>) {
    match r {
        Ok(us) => println!("raw impl={imp} name={name} us={us:.3}"),
        Err(e) => {
            println!("raw impl={imp} name={name} error={e}");
            if !e.starts_with("no C peer") {
                ok.set(false);
            }
        }
    }
}

/// The dirty-bitmap lines over 1 GiB at `va` of `pages`: native with
/// 4 KiB pages, and the VFIO container's call beside it; native with
/// 2 MiB (hugetlb) pages.
fn dirty_lines(report: &dyn Fn(&str, Result<f64, String>), va: u64, pages: AnonPages) {
    match pages {
        AnonPages::Small => {
            report(
                "get_dirty_bitmap_1g_4k_pages",
                dirty_bitmap_1g(va, PAGE, false, 5),
            );
            report(
                "vfio_dirty_bitmap_1g_4k_pages",
                dirty_bitmap_1g(va, PAGE, true, 5),
            );
        }
        AnonPages::Hugetlb => report(
            "get_dirty_bitmap_1g_2m_pages",
            dirty_bitmap_1g(va, 2 << 20, false, 5),
        ),
        AnonPages::Thp => {}
    }
}

/// The dirty-bitmap lines alone (`iommufd_bench IMPL dirty`).
fn dirty_workloads(imp: &str) -> bool {
    let ok = std::cell::Cell::new(true);
    let report = |name: &str, r: Result<f64, String>| report_raw(imp, name, r, &ok);
    for pages in [AnonPages::Small, AnonPages::Hugetlb] {
        let Some(va) = sys::mmap_anon(GIB, pages) else {
            println!("raw impl={imp} name=dirty error=mmap of 1 GiB ({pages:?}) refused");
            return false;
        };
        sys::touch(va, GIB);
        dirty_lines(&report, va, pages);
        sys::munmap_anon(va, GIB);
    }
    ok.get()
}

/// Microseconds per call of `op`, repeated `calls` times.
fn per_call(calls: u64, mut op: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let start = Instant::now();
    for _ in 0..calls {
        op()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / calls as f64)
}

/// Small calls that isolate the fixed costs of an ioctl.
fn fixed_costs(fd: &Iommufd, imp: &str) -> Result<(), String> {
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let us = per_call(20_000, || match fd.map(ioas, VA, PAGE, 0, 0) {
        Err(_) => Ok(()),
        Ok(_) => Err("map without flags succeeded".into()),
    })?;
    println!("raw impl={imp} name=ioctl_rejected_early us={us:.3}");
    let us = per_call(20_000, || match fd.destroy(ioas + 1000) {
        0 => Err("destroy of a missing id succeeded".into()),
        _ => Ok(()),
    })?;
    println!("raw impl={imp} name=destroy_missing_id us={us:.3}");
    let us = per_call(20_000, || {
        fd.iova_ranges(ioas, 1)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    })?;
    println!("raw impl={imp} name=iova_ranges us={us:.3}");
    let us = per_call(20_000, || match fd.map(ioas, VA, 0, RW | FIXED, 0) {
        Err(_) => Ok(()),
        Ok(_) => Err("zero-length map succeeded".into()),
    })?;
    println!("raw impl={imp} name=map_rejected_after_lookup us={us:.3}");
    if fd.destroy(ioas) != 0 {
        return Err("destroy failed".into());
    }
    Ok(())
}

/// Map+unmap pair cost against the number of areas, 1 to 1,000,000 in
/// decades, in one IOAS that grows between measurements.
fn scaling(fd: &Iommufd, imp: &str) -> Result<(), String> {
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let probe = 1u64 << 40;
    let mut have = 0u64;
    for step in 0..=6 {
        let want = 10u64.pow(step);
        while have < want {
            fd.map(ioas, VA, PAGE, RW | FIXED, (2 * have + 2) * PAGE)
                .map_err(|e| format!("map: {e}"))?;
            have += 1;
        }
        let pairs = 2000;
        let start = Instant::now();
        for _ in 0..pairs {
            fd.map(ioas, VA, PAGE, RW | FIXED, probe)
                .map_err(|e| format!("map: {e}"))?;
            fd.unmap(ioas, probe, PAGE)
                .map_err(|e| format!("unmap: {e}"))?;
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / pairs as f64;
        println!("scale impl={imp} areas={have} us={us:.3}");
    }
    if fd.destroy(ioas) != 0 {
        return Err("destroy failed".into());
    }
    Ok(())
}

fn main() {
    let imp = std::env::args().nth(1).unwrap_or_else(|| "unknown".into());
    if std::env::args().nth(2).as_deref() == Some("scaling") {
        let result = Iommufd::open().and_then(|fd| scaling(&fd, &imp));
        if let Err(e) = result {
            println!("scale impl={imp} error={e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().nth(2).as_deref() == Some("domain") {
        std::process::exit(i32::from(!domain_workloads(&imp)));
    }
    if std::env::args().nth(2).as_deref() == Some("dirty") {
        std::process::exit(i32::from(!dirty_workloads(&imp)));
    }
    let fd = match Iommufd::open() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let workloads: [(&str, u64, u64); 3] = [
        ("map_unmap_4k_fixed_1_area", 1, 4000),
        ("map_unmap_4k_fixed_1000_areas", 1000, 4000),
        ("map_unmap_4k_fixed_100000_areas", 100_000, 4000),
    ];
    let mut failed = false;
    if let Err(e) = memory_costs(&imp) {
        println!("raw impl={imp} name=memory error={e}");
        failed = true;
    }
    if let Err(e) = fixed_costs(&fd, &imp) {
        println!("raw impl={imp} name=fixed_costs error={e}");
        failed = true;
    }
    for (name, areas, pairs) in [
        ("map_alloc_8k_past_10_holes", 10, 2000),
        ("map_alloc_8k_past_10000_holes", 10_000, 200),
    ] {
        match alloc_past_holes(&fd, areas, pairs) {
            Ok(us) => println!("raw impl={imp} name={name} us={us:.3}"),
            Err(e) => {
                println!("raw impl={imp} name={name} error={e}");
                failed = true;
            }
        }
    }
    match copy_1g(&fd, 4000) {
        Ok(us) => println!("raw impl={imp} name=ioas_copy_1g_and_unmap us={us:.3}"),
        Err(e) => {
            println!("raw impl={imp} name=ioas_copy_1g_and_unmap error={e}");
            failed = true;
        }
    }
    for (name, size, pairs) in [
        ("vfio_map_unmap_dma_4k", PAGE, 4000),
        ("vfio_map_unmap_dma_1g", 1 << 30, 4000),
    ] {
        match compat_map_unmap(VA, size, 0, pairs) {
            Ok(us) => println!("raw impl={imp} name={name} us={us:.3}"),
            Err(e) => {
                println!("raw impl={imp} name={name} error={e}");
                failed = true;
            }
        }
    }
    for (name, areas, pairs) in workloads {
        match map_unmap_pair(&fd, areas, pairs) {
            Ok(us) => println!("raw impl={imp} name={name} us={us:.3}"),
            Err(e) => {
                println!("raw impl={imp} name={name} error={e}");
                failed = true;
            }
        }
    }
    // `core`: all but the domain workloads.
    if std::env::args().nth(2).as_deref() != Some("core") {
        failed |= !domain_workloads(&imp);
    }
    std::process::exit(i32::from(failed));
}
