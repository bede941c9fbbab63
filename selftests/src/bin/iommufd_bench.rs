// SPDX-License-Identifier: GPL-2.0

//! Workloads for `make bench`. Runs against whichever iommufd module is
//! loaded and prints one `raw` line per workload:
//! `raw impl=IMPL name=NAME us=MICROSECONDS_PER_OP`.
//! The harness alternates C iommufd and iommufd_rs in one boot and turns
//! the medians into ratios.

use iommufd_rs_selftests::bench::{
    self, Group, Memory, Workload, APERTURE, GIB, PAGE, VA, WORKLOADS,
};
use iommufd_rs_selftests::dev::{Iommufd, FIXED, RW};
use iommufd_rs_selftests::sys::AnonPages;
use std::time::Instant;

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

/// `MemFree` in bytes.
fn mem_free() -> Result<u64, String> {
    iommufd_rs_selftests::dev::read_number("/proc/meminfo", Some("MemFree")).map(|kb| kb * 1024)
}

/// Kernel memory per GiB pinned and mapped into one mock domain: the drop
/// in `MemFree` while 1 GiB of present 4 KiB pages is mapped (pins,
/// PFN records, the domain's page table), median of three.
fn mem_per_gib_pinned(va: u64) -> Result<u64, String> {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    fd.mock_domain(ioas)
        .map_err(|e| format!("mock_domain: {e}"))?;
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

/// Microseconds per call of workload `w`: the calls are timed together,
/// or one by one when unmeasured steps come between them.
fn measure(w: &Workload, mem: &mut Memory) -> Result<f64, String> {
    let mut p = w.prepare(mem)?;
    if p.before.is_none() && p.after.is_none() {
        let start = Instant::now();
        for _ in 0..w.calls {
            (p.call)()?;
        }
        return Ok(start.elapsed().as_secs_f64() * 1e6 / w.calls as f64);
    }
    let mut spent = 0.0;
    for _ in 0..w.calls {
        if let Some(before) = p.before.as_mut() {
            before()?;
        }
        let start = Instant::now();
        (p.call)()?;
        spent += start.elapsed().as_secs_f64();
        if let Some(after) = p.after.as_mut() {
            after()?;
        }
    }
    Ok(spent * 1e6 / w.calls as f64)
}

/// Runs and reports the workloads `pick` selects; `false` if one failed
/// (a workload without a C peer may fail on C).
fn run_workloads(imp: &str, mem: &mut Memory, pick: impl Fn(&Workload) -> bool) -> bool {
    let mut ok = true;
    for w in WORKLOADS.iter().filter(|w| pick(w)) {
        match measure(w, mem) {
            Ok(us) => println!("raw impl={imp} name={} us={us:.3}", w.name),
            Err(e) => {
                println!("raw impl={imp} name={} error={e}", w.name);
                ok &= w.rust_only && e.starts_with("no C peer");
            }
        }
    }
    ok
}

/// Memory per GiB pinned (4 KiB pages), then the domain and dirty-bitmap
/// workloads.
fn domain_workloads(imp: &str) -> bool {
    let mut ok = true;
    let mut mem = Memory::default();
    match mem.gib(AnonPages::Small).and_then(mem_per_gib_pinned) {
        Ok(bytes) => println!("raw impl={imp} name=mem_bytes_per_gib_pinned bytes={bytes}"),
        Err(e) => {
            println!("raw impl={imp} name=mem_bytes_per_gib_pinned error={e}");
            ok = false;
        }
    }
    // The same touched GiB serves the workloads that follow.
    ok & run_workloads(imp, &mut mem, |w| w.group != Group::Core)
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
    let args: Vec<String> = std::env::args().collect();
    let imp = args.get(1).cloned().unwrap_or_else(|| "unknown".into());
    let what = args.get(2).map(String::as_str).unwrap_or("all");
    let ok = match what {
        "scaling" => match Iommufd::open().and_then(|fd| scaling(&fd, &imp)) {
            Ok(()) => true,
            Err(e) => {
                println!("scale impl={imp} error={e}");
                false
            }
        },
        "domain" => domain_workloads(&imp),
        "dirty" => run_workloads(&imp, &mut Memory::default(), |w| w.group == Group::Dirty),
        "core" | "all" => {
            let mut ok = true;
            if let Err(e) = memory_costs(&imp) {
                println!("raw impl={imp} name=memory error={e}");
                ok = false;
            }
            ok &= run_workloads(&imp, &mut Memory::default(), |w| w.group == Group::Core);
            if what == "all" {
                ok &= domain_workloads(&imp);
            }
            ok
        }
        name => match bench::find(name) {
            Some(w) => run_workloads(&imp, &mut Memory::default(), |x| x.name == w.name),
            None => {
                eprintln!("usage: iommufd_bench IMPL [all|core|domain|dirty|scaling|WORKLOAD]");
                false
            }
        },
    };
    std::process::exit(i32::from(!ok));
}
