// SPDX-License-Identifier: GPL-2.0

//! Multi-threaded stress: many threads issue random IOAS and compat ioctls
//! on one shared file, on files of their own, and while the file is being
//! closed under them. Bounded in time; the errnos are not judged (races
//! make many answers valid), the kernel must simply survive cleanly: no
//! splat, no hang, and afterwards nothing left (the module refcount is
//! back to its start and the module unloads).
//!
//! Usage: `iommufd_stress SECONDS [THREADS]`. Prints one KTAP line per
//! scenario.

use iommufd_rs_selftests::dev::{Iommufd, FIXED, RW};
use iommufd_rs_selftests::uapi;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAGE: u64 = 4096;
const VA: u64 = 0x7f00_0000_0000;

/// One random operation on `fd`, driven by `x`.
fn random_op(fd: &Iommufd, x: u64) {
    let id = (x >> 8) as u32 % 8 + 1;
    let other = (x >> 16) as u32 % 8 + 1;
    let iova = ((x >> 24) % 64) * PAGE;
    let len = ((x >> 32) % 4 + 1) * PAGE;
    let huge = uapi::IOMMU_OPTION_HUGE_PAGES;
    // Results are ignored: under races many answers are valid.
    let _ = match x % 13 {
        0 => fd.ioas_alloc().map(|_| ()),
        1 => Err(fd.destroy(id)),
        2 | 3 => fd.map(id, VA + iova, len, RW | FIXED, iova).map(|_| ()),
        4 => fd.map(id, VA + iova, len, RW, 0).map(|_| ()),
        5 | 6 => fd.unmap(id, iova, len).map(|_| ()),
        7 => fd.unmap(id, 0, u64::MAX).map(|_| ()),
        8 => fd.copy(other, id, iova, len, RW, 0).map(|_| ()),
        9 => fd.iova_ranges(id, 2).map(|_| ()).map_err(|(e, _)| e),
        10 => fd
            .option(huge, uapi::IOMMU_OPTION_OP_SET, id, (x >> 40) & 1)
            .map(|_| ()),
        11 => Err(fd.allow_iovas(id, &[(iova, iova + 64 * PAGE)])),
        _ => {
            let _ = fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, id);
            let _ = fd.vfio_map(3, VA, iova, len);
            Err(fd.vfio_unmap(0, iova, len).0)
        }
    };
}

/// xorshift step.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// `threads` threads hammer one shared file for `dur`.
fn shared_file(dur: Duration, threads: usize) -> Result<u64, String> {
    let fd = Arc::new(Iommufd::open()?);
    let ops = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (fd, ops) = (fd.clone(), ops.clone());
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let end = Instant::now() + dur;
                while Instant::now() < end {
                    random_op(&fd, next(&mut x));
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a thread panicked".to_string())?;
    }
    Ok(ops.load(Ordering::Relaxed))
}

/// Each thread has files of its own, opened and closed over and over.
fn own_files(dur: Duration, threads: usize) -> Result<u64, String> {
    let ops = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let ops = ops.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut x = 0x2545_f491_4f6c_dd1du64 ^ (t as u64 + 1);
                let end = Instant::now() + dur;
                while Instant::now() < end {
                    let fd = Iommufd::open()?;
                    for _ in 0..64 {
                        random_op(&fd, next(&mut x));
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a thread panicked".to_string())??;
    }
    Ok(ops.load(Ordering::Relaxed))
}

/// Threads issue ioctls on a descriptor number while the main thread
/// closes it; in-flight ioctls must finish against the still-referenced
/// file, later ones get EBADF.
fn close_races(dur: Duration, threads: usize) -> Result<u64, String> {
    let end = Instant::now() + dur;
    let mut rounds = 0;
    while Instant::now() < end {
        let fd = Iommufd::open()?;
        let raw = fd.file.as_raw_fd();
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // Only the descriptor number is shared; the `File` built
                    // here is never closed (ManuallyDrop).
                    // SAFETY: The main thread's close is the only one.
                    let file = unsafe { std::fs::File::from_raw_fd(raw) };
                    let borrowed = std::mem::ManuallyDrop::new(Iommufd { file });
                    let mut x = rounds as u64 * 31 + t as u64 + 7;
                    while !stop.load(Ordering::Relaxed) {
                        random_op(&borrowed, next(&mut x));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2));
        drop(fd);
        std::thread::sleep(Duration::from_millis(1));
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| "a thread panicked".to_string())?;
        }
        rounds += 1;
    }
    Ok(rounds)
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let dur = Duration::from_secs(secs);
    let module = std::env::var("IOMMUFD_TEST_MODULE").unwrap_or_else(|_| "iommufd_rs".into());
    let refcnt = format!("/sys/module/{module}/refcnt");
    let before = iommufd_rs_selftests::dev::read_number(&refcnt, None);
    println!("KTAP version 1");
    println!("1..4");
    let scenarios: [(&str, fn(Duration, usize) -> Result<u64, String>); 3] = [
        ("stress_shared_file", shared_file),
        ("stress_own_files", own_files),
        ("stress_close_races", close_races),
    ];
    let mut failed = 0;
    for (i, (name, run)) in scenarios.iter().enumerate() {
        match run(dur, threads) {
            Ok(n) => println!("# {name}: {n} operations or rounds in {secs} s with {threads} threads\nok {} {name}", i + 1),
            Err(e) => {
                failed += 1;
                println!("# {name}: {e}\nnot ok {} {name}", i + 1);
            }
        }
    }
    // Every file is closed: the module's refcount is back where it was.
    let after = iommufd_rs_selftests::dev::read_number(&refcnt, None);
    match (before, after) {
        (Ok(b), Ok(a)) if a == b => println!("ok 4 stress_refcount_restored"),
        other => {
            failed += 1;
            println!("# refcount before/after: {other:?}\nnot ok 4 stress_refcount_restored");
        }
    }
    std::process::exit(i32::from(failed != 0));
}
