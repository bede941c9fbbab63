// SPDX-License-Identifier: GPL-2.0

//! Multi-threaded stress: many threads issue random IOAS and compat ioctls
//! on one shared file, on files of their own, and while the file is being
//! closed under them; and map real memory while a mock domain comes and
//! goes and an access pins. Bounded in time; the errnos are not judged (races
//! make many answers valid), the kernel must simply survive cleanly: no
//! splat, no hang, and afterwards nothing left (the module refcount is
//! back to its start and the module unloads).
//!
//! Usage: `iommufd_stress SECONDS [THREADS]`. Prints one KTAP line per
//! scenario.

use iommufd_rs_selftests::dev::{vm_pin_kb, Iommufd, PageBuf, FIXED, RW};
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

/// Threads map and unmap pieces of real memory in one IOAS while one
/// thread attaches and detaches a mock domain and another pins pages
/// through an access (and is told to unpin by the unmaps). Afterwards
/// nothing may stay pinned: VmPin is back and no page has a pin.
fn domains_and_accesses(dur: Duration, threads: usize) -> Result<u64, String> {
    const PAGES: u64 = 64;
    let aperture = u64::from(uapi::MOCK_APERTURE_START);
    let buf = PageBuf::new(PAGES as usize);
    let addr = buf.addr();
    let fd = Arc::new(Iommufd::open()?);
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let pin0 = vm_pin_kb()?;
    let flags = uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
    let access = fd
        .create_access(ioas, flags)
        .map_err(|e| format!("create_access: {e}"))?;
    let access = Arc::new(access);
    let ops = Arc::new(AtomicU64::new(0));
    // Successful maps, domain attaches and access pins.
    let done: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let end = Instant::now() + dur;
    // A piece of the buffer, mapped at the same offset in the aperture.
    let piece = |x: u64| {
        let first = (x >> 8) % PAGES;
        let n = ((x >> 16) % 8 + 1).min(PAGES - first);
        (first * PAGE, n * PAGE)
    };
    let mut handles = Vec::new();
    for t in 0..threads {
        let (fd, ops, done) = (fd.clone(), ops.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            let mut x = 0x51f1_5eed_0000_0001u64 ^ (t as u64 + 1);
            while Instant::now() < end {
                let v = next(&mut x);
                let (off, len) = piece(v);
                let _ = match v % 5 {
                    0 | 1 => fd
                        .map(ioas, addr + off, len, RW | FIXED, aperture + off)
                        .inspect(|_| {
                            done[0].fetch_add(1, Ordering::Relaxed);
                        }),
                    2 | 3 => fd.unmap(ioas, aperture + off, len),
                    _ => fd.unmap(ioas, 0, u64::MAX),
                };
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (fd, ops, done) = (fd.clone(), ops.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            while Instant::now() < end {
                if let Ok((stdev, _, _)) = fd.mock_domain(ioas) {
                    done[1].fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                    fd.destroy(stdev);
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (fd, ops, access, done) = (fd.clone(), ops.clone(), access.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            let mut x = 0xacce_55ed_0000_0001u64;
            while Instant::now() < end {
                let (off, len) = piece(next(&mut x));
                let uptr = (addr + off) as *const u8;
                if let Ok(item) = fd.access_pages(&access, aperture + off, len, uptr) {
                    done[2].fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                    fd.destroy_access_pages(&access, item);
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.join().map_err(|_| "a thread panicked".to_string())?;
    }
    let _ = fd.unmap(ioas, 0, u64::MAX);
    drop(access);
    let [maps, attaches, pins] = &*done;
    println!(
        "# stress_domains_and_accesses: {} maps, {} domain attaches, {} access pins",
        maps.load(Ordering::Relaxed),
        attaches.load(Ordering::Relaxed),
        pins.load(Ordering::Relaxed)
    );
    let pinned = vm_pin_kb()?;
    if pinned != pin0 {
        return Err(format!("VmPin {pinned} kB after, {pin0} kB before"));
    }
    let refs = fd.check_refs(addr as *const u8, PAGES * PAGE, 0);
    if refs != 0 {
        return Err(format!("MD_CHECK_REFS: errno {refs}"));
    }
    if fd.destroy(ioas) != 0 {
        return Err("the IOAS is still in use".into());
    }
    Ok(ops.load(Ordering::Relaxed))
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
    println!("1..5");
    let scenarios: [(&str, fn(Duration, usize) -> Result<u64, String>); 4] = [
        ("stress_shared_file", shared_file),
        ("stress_own_files", own_files),
        ("stress_close_races", close_races),
        ("stress_domains_and_accesses", domains_and_accesses),
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
        (Ok(b), Ok(a)) if a == b => println!("ok 5 stress_refcount_restored"),
        other => {
            failed += 1;
            println!("# refcount before/after: {other:?}\nnot ok 5 stress_refcount_restored");
        }
    }
    std::process::exit(i32::from(failed != 0));
}
