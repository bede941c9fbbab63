// SPDX-License-Identifier: GPL-2.0

//! Workloads for `make bench`. Runs against whichever iommufd module is
//! loaded and prints one `raw` line per workload:
//! `raw impl=IMPL name=NAME us=MICROSECONDS_PER_OP`.
//! The harness alternates C iommufd and iommufd_rs in one boot and turns
//! the medians into ratios.

use iommufd_rs_selftests::dev::{Iommufd, FIXED, RW};
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

/// Microseconds per VFIO_IOMMU_MAP_DMA + VFIO_IOMMU_UNMAP_DMA pair of
/// `size` bytes through the compat layer (type1v2), no domain.
fn compat_map_unmap(fd: &Iommufd, size: u64, pairs: u64) -> Result<f64, String> {
    use iommufd_rs_selftests::uapi;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas)
        .map_err(|e| format!("vfio_ioas: {e}"))?;
    fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU))
        .map_err(|e| format!("set_iommu: {e}"))?;
    let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    let iova = 1 << 30;
    let start = Instant::now();
    for _ in 0..pairs {
        match fd.vfio_map(rw, VA, iova, size) {
            0 => {}
            e => return Err(format!("map_dma: {e}")),
        }
        match fd.vfio_unmap(0, iova, size) {
            (0, n) if n == size => {}
            other => return Err(format!("unmap_dma: {other:?}")),
        }
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
        match compat_map_unmap(&fd, size, pairs) {
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
    std::process::exit(i32::from(failed));
}
