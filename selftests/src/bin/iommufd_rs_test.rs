// SPDX-License-Identifier: GPL-2.0

//! iommufd-rs userspace selftests: every implemented ioctl, good paths and
//! bad input, and that nothing outlives its file. Prints KTAP; exits 1 if
//! any test failed.

use iommufd_rs_selftests::dev::{
    read_number, size_of_u32, vm_pin_kb, Iommufd, PageBuf, FIXED, IOMMU_DEV, RW,
};
use iommufd_rs_selftests::ktap::{run, Test, TestResult};
use iommufd_rs_selftests::sys::{self, errno::*};
use iommufd_rs_selftests::uapi;
use iommufd_rs_selftests::{check, check_eq};
use std::mem::size_of;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Name of the module under test, for refcount checks: `iommufd_rs`, or
/// `iommufd` when the same tests check C iommufd.
fn module() -> String {
    std::env::var("IOMMUFD_TEST_MODULE").unwrap_or_else(|_| "iommufd_rs".into())
}

fn node_is_root_0660() -> TestResult {
    let meta = std::fs::metadata(IOMMU_DEV).map_err(|e| e.to_string())?;
    check!(meta.file_type().is_char_device());
    check_eq!(meta.mode() & 0o777, 0o660);
    check_eq!((meta.uid(), meta.gid()), (0, 0));
    Ok(())
}

fn ioas_ids_count_from_one() -> TestResult {
    let fd = Iommufd::open()?;
    check_eq!(fd.ioas_alloc(), Ok(1));
    check_eq!(fd.ioas_alloc(), Ok(2));
    check_eq!(fd.ioas_alloc(), Ok(3));
    // The lowest free ID is reused, as with C iommufd's xa_alloc.
    check_eq!(fd.destroy(2), 0);
    check_eq!(fd.ioas_alloc(), Ok(2));
    // A second file has its own table.
    let other = Iommufd::open()?;
    check_eq!(other.ioas_alloc(), Ok(1));
    check_eq!(other.destroy(3), ENOENT);
    Ok(())
}

fn destroy_errors() -> TestResult {
    let fd = Iommufd::open()?;
    check_eq!(fd.destroy(0), ENOENT);
    check_eq!(fd.destroy(1), ENOENT);
    check_eq!(fd.destroy(u32::MAX), ENOENT);
    let id = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    check_eq!(fd.destroy(id), 0);
    check_eq!(fd.destroy(id), ENOENT);
    let mut cmd = uapi::iommu_destroy {
        size: size_of_u32::<uapi::iommu_destroy>(),
        id: 1,
    };
    // Nothing reserved in iommu_destroy: no EOPNOTSUPP case.
    cmd.size = 7;
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_DESTROY, &mut cmd),
        EINVAL
    );
    Ok(())
}

fn ioas_alloc_flags_rejected() -> TestResult {
    let fd = Iommufd::open()?;
    for flags in [1u32, 0x8000_0000, u32::MAX] {
        let mut cmd = uapi::iommu_ioas_alloc {
            size: size_of_u32::<uapi::iommu_ioas_alloc>(),
            flags,
            out_ioas_id: 77,
        };
        check_eq!(
            sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_ALLOC, &mut cmd),
            EOPNOTSUPP
        );
        check_eq!(cmd.out_ioas_id, 77);
    }
    // Nothing was created.
    check_eq!(fd.ioas_alloc(), Ok(1));
    Ok(())
}

/// A buffer bigger than any struct, for size-rule tests.
#[repr(C, align(8))]
struct Big([u8; 64]);

fn size_rules() -> TestResult {
    let fd = Iommufd::open()?;
    let mut buf = Big([0; 64]);
    let set_size = |buf: &mut Big, size: u32| buf.0[..4].copy_from_slice(&size.to_ne_bytes());
    // iommu_ioas_alloc is 12 bytes, all mandatory.
    for short in [0u32, 4, 8, 11] {
        set_size(&mut buf, short);
        check_eq!(
            sys::ioctl_ptr(&fd.file, uapi::IOMMU_IOAS_ALLOC, buf.0.as_mut_ptr()),
            EINVAL
        );
    }
    // Longer with a zero tail: accepted, and the reply is not longer than
    // the kernel's struct.
    buf.0 = [0; 64];
    set_size(&mut buf, 64);
    check_eq!(
        sys::ioctl_ptr(&fd.file, uapi::IOMMU_IOAS_ALLOC, buf.0.as_mut_ptr()),
        0
    );
    check_eq!(
        u32::from_ne_bytes([buf.0[8], buf.0[9], buf.0[10], buf.0[11]]),
        1
    );
    check!(buf.0[12..].iter().all(|&b| b == 0));
    // Longer with a nonzero byte anywhere in the tail: E2BIG.
    for at in [12usize, 40, 63] {
        buf.0 = [0; 64];
        set_size(&mut buf, 64);
        buf.0[at] = 1;
        check_eq!(
            sys::ioctl_ptr(&fd.file, uapi::IOMMU_IOAS_ALLOC, buf.0.as_mut_ptr()),
            E2BIG
        );
    }
    // Only the one good call created an object.
    check_eq!(fd.ioas_alloc(), Ok(2));
    Ok(())
}

/// Every ioctl of the 7.2 ABI: (name, number, minimum size, struct size).
/// The minimum is the end of the struct's last mandatory field.
fn abi_ioctls() -> Vec<(&'static str, u32, usize, usize)> {
    use std::mem::offset_of;
    macro_rules! abi {
        ($num:ident, $ty:ident, $last:ident) => {{
            let end = offset_of!(uapi::$ty, $last) + {
                let v = uapi::$ty::default();
                std::mem::size_of_val(&v.$last)
            };
            (stringify!($num), uapi::$num, end, size_of::<uapi::$ty>())
        }};
    }
    vec![
        abi!(IOMMU_DESTROY, iommu_destroy, id),
        abi!(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, out_ioas_id),
        abi!(
            IOMMU_IOAS_ALLOW_IOVAS,
            iommu_ioas_allow_iovas,
            allowed_iovas
        ),
        abi!(IOMMU_IOAS_COPY, iommu_ioas_copy, src_iova),
        abi!(
            IOMMU_IOAS_IOVA_RANGES,
            iommu_ioas_iova_ranges,
            out_iova_alignment
        ),
        abi!(IOMMU_IOAS_MAP, iommu_ioas_map, iova),
        abi!(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, length),
        abi!(IOMMU_OPTION, iommu_option, val64),
        abi!(IOMMU_VFIO_IOAS, iommu_vfio_ioas, __reserved),
        abi!(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, __reserved),
        abi!(IOMMU_GET_HW_INFO, iommu_hw_info, __reserved),
        abi!(
            IOMMU_HWPT_SET_DIRTY_TRACKING,
            iommu_hwpt_set_dirty_tracking,
            __reserved
        ),
        abi!(
            IOMMU_HWPT_GET_DIRTY_BITMAP,
            iommu_hwpt_get_dirty_bitmap,
            data
        ),
        abi!(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, __reserved),
        abi!(IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, out_fault_fd),
        abi!(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, iova),
        abi!(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, out_viommu_id),
        abi!(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, virt_id),
        abi!(
            IOMMU_IOAS_CHANGE_PROCESS,
            iommu_ioas_change_process,
            __reserved
        ),
        abi!(IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc, out_veventq_fd),
        abi!(IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc, length),
    ]
}

/// An aligned buffer larger than any iommufd struct.
#[repr(C, align(8))]
struct Buf([u8; 512]);

impl Buf {
    /// A command of `size` bytes (as its size field says) with `extra` in
    /// the byte at offset `at`.
    fn with(size: usize, at: usize, extra: u8) -> Self {
        let mut b = Buf([0; 512]);
        b.0[..4].copy_from_slice(&(size as u32).to_ne_bytes());
        b.0[at] = extra;
        b
    }
}

fn size_rules_every_ioctl() -> TestResult {
    // As upstream's cmd_length: one byte short of the minimum is EINVAL, one
    // nonzero byte past the struct is E2BIG, for every ioctl in the ABI.
    let fd = Iommufd::open()?;
    for (name, num, min, size) in abi_ioctls() {
        let mut short = Buf::with(min - 1, size, 0xff);
        let got = sys::ioctl_ptr(&fd.file, num, short.0.as_mut_ptr());
        if got != EINVAL {
            return Err(format!(
                "{name} with size {}: errno {got}, expected EINVAL",
                min - 1
            ));
        }
        let mut long = Buf::with(size + 1, size, 0xff);
        let got = sys::ioctl_ptr(&fd.file, num, long.0.as_mut_ptr());
        if got != E2BIG {
            return Err(format!(
                "{name} with size {}: errno {got}, expected E2BIG",
                size + 1
            ));
        }
    }
    Ok(())
}

fn bad_pointers() -> TestResult {
    let fd = Iommufd::open()?;
    // A number in the iommufd range that matches no ioctl: the size word is
    // read first, so a bad pointer is EFAULT, not ENOTTY (as in C).
    let wrong = uapi::IOMMU_DESTROY | (8 << 16) | (1 << 30);
    check_eq!(
        sys::ioctl_ptr(&fd.file, wrong, std::ptr::null_mut()),
        EFAULT
    );
    for req in [
        uapi::IOMMU_DESTROY,
        uapi::IOMMU_IOAS_ALLOC,
        uapi::IOMMU_IOAS_IOVA_RANGES,
    ] {
        check_eq!(sys::ioctl_ptr(&fd.file, req, std::ptr::null_mut()), EFAULT);
        check_eq!(
            sys::ioctl_ptr(&fd.file, req, 0xffff_8000_0000_0000usize as *mut u8),
            EFAULT
        );
        check_eq!(sys::ioctl_ptr(&fd.file, req, 8usize as *mut u8), EFAULT);
    }
    check_eq!(fd.ioas_alloc(), Ok(1));
    Ok(())
}

fn unknown_ioctls() -> TestResult {
    let fd = Iommufd::open()?;
    let mut buf = Big([0; 64]);
    buf.0[..4].copy_from_slice(&64u32.to_ne_bytes());
    let ty = (uapi::IOMMUFD_TYPE as u32) << 8;
    // Outside the iommufd range, a wrong type byte, and a direction/size
    // encoded in an otherwise valid number.
    for req in [
        ty | 0x7f,
        ty | 0xff,
        (b'x' as u32) << 8 | 0x80,
        uapi::IOMMU_DESTROY | (8 << 16) | (1 << 30),
    ] {
        check_eq!(sys::ioctl_ptr(&fd.file, req, buf.0.as_mut_ptr()), ENOTTY);
    }
    Ok(())
}

fn iova_ranges_whole_space() -> TestResult {
    let fd = Iommufd::open()?;
    let id = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let (ranges, align) = fd.iova_ranges(id, 4).map_err(|e| format!("{e:?}"))?;
    check_eq!(ranges.len(), 1);
    check_eq!((ranges[0].start, ranges[0].last), (0, u64::MAX));
    check_eq!(align, 1);
    // Exactly enough room.
    let (ranges, _) = fd.iova_ranges(id, 1).map_err(|e| format!("{e:?}"))?;
    check_eq!(ranges.len(), 1);
    Ok(())
}

fn iova_ranges_too_small() -> TestResult {
    let fd = Iommufd::open()?;
    let id = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    // No room: EMSGSIZE, and num_iovas says how many there are.
    check_eq!(fd.iova_ranges(id, 0).err(), Some((EMSGSIZE, 1)));
    // No room and a NULL array is fine: nothing is written.
    let mut cmd = uapi::iommu_ioas_iova_ranges {
        size: size_of_u32::<uapi::iommu_ioas_iova_ranges>(),
        ioas_id: id,
        ..Default::default()
    };
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_IOVA_RANGES, &mut cmd),
        EMSGSIZE
    );
    check_eq!(cmd.num_iovas, 1);
    Ok(())
}

fn iova_ranges_errors() -> TestResult {
    let fd = Iommufd::open()?;
    let id = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let mut range = uapi::iommu_iova_range::default();
    let base = uapi::iommu_ioas_iova_ranges {
        size: size_of_u32::<uapi::iommu_ioas_iova_ranges>(),
        ioas_id: id,
        num_iovas: 1,
        allowed_iovas: &mut range as *mut _ as u64,
        ..Default::default()
    };
    let call = |cmd: &mut uapi::iommu_ioas_iova_ranges| {
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_IOVA_RANGES, cmd)
    };
    let mut cmd = uapi::iommu_ioas_iova_ranges {
        __reserved: 1,
        ..base
    };
    check_eq!(call(&mut cmd), EOPNOTSUPP);
    let mut cmd = uapi::iommu_ioas_iova_ranges {
        ioas_id: id + 1,
        ..base
    };
    check_eq!(call(&mut cmd), ENOENT);
    let mut cmd = uapi::iommu_ioas_iova_ranges { ioas_id: 0, ..base };
    check_eq!(call(&mut cmd), ENOENT);
    let mut cmd = uapi::iommu_ioas_iova_ranges {
        allowed_iovas: 16,
        ..base
    };
    check_eq!(call(&mut cmd), EFAULT);
    let mut cmd = uapi::iommu_ioas_iova_ranges { size: 31, ..base };
    check_eq!(call(&mut cmd), EINVAL);
    // Destroyed: gone.
    check_eq!(fd.destroy(id), 0);
    let mut cmd = base;
    check_eq!(call(&mut cmd), ENOENT);
    check_eq!(range.last, 0);
    Ok(())
}

fn iova_ranges_reply_fields() -> TestResult {
    // Every output field is written back.
    let fd = Iommufd::open()?;
    let id = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    let mut range = uapi::iommu_iova_range::default();
    let mut cmd = uapi::iommu_ioas_iova_ranges {
        size: size_of_u32::<uapi::iommu_ioas_iova_ranges>(),
        ioas_id: id,
        num_iovas: 1,
        allowed_iovas: &mut range as *mut _ as u64,
        out_iova_alignment: 0xdead,
        ..Default::default()
    };
    check_eq!(
        sys::ioctl_struct(&fd.file, uapi::IOMMU_IOAS_IOVA_RANGES, &mut cmd),
        0
    );
    check_eq!(cmd.out_iova_alignment, 1);
    check_eq!((range.start, range.last), (0, u64::MAX));
    check_eq!(size_of::<uapi::iommu_ioas_iova_ranges>(), 32);
    Ok(())
}

fn no_unload_while_open() -> TestResult {
    let refcnt = format!("/sys/module/{}/refcnt", module());
    let before = read_number(&refcnt, None)?;
    let fd = Iommufd::open()?;
    check_eq!(read_number(&refcnt, None)?, before + 1);
    check_eq!(sys::delete_module(&module()), EAGAIN);
    drop(fd);
    check_eq!(read_number(&refcnt, None)?, before);
    Ok(())
}

/// Fills a new file with `n` IOAS objects and, in the first, `n` areas
/// (half of them copies sharing pages objects), then returns it.
fn populate(n: u32) -> Result<Iommufd, String> {
    use iommufd_rs_selftests::dev::{FIXED, RW};
    let fd = Iommufd::open()?;
    for i in 1..=n {
        check_eq!(fd.ioas_alloc(), Ok(i));
    }
    for i in 0..u64::from(n / 2) {
        // Fixed IOVAs: C's allocator walk would make this quadratic.
        let iova = (i + 1) * 2 * 4096;
        fd.map(1, 0x7f00_0000_0000 + i * 4096, 4096, RW | FIXED, iova)
            .map_err(|e| format!("map: {e}"))?;
        fd.copy(1, 1, iova, 4096, RW | FIXED, iova + 4096)
            .map_err(|e| format!("copy: {e}"))?;
    }
    Ok(fd)
}

fn close_frees_objects() -> TestResult {
    if std::env::var("IOMMUFD_TEST_SLAB_CHECK").is_ok_and(|v| v == "0") {
        // KASAN quarantines freed objects, so slab usage does not drop at
        // close; the debug run checks for leaks with kmemleak instead.
        return Err(
            "SKIP: slab totals lag behind frees on this kernel; kmemleak checks leaks".into(),
        );
    }
    // Build many objects and areas, close without destroying them, and
    // check that the kernel's unreclaimable slab returns to where it was.
    const N: u32 = 5_000;
    let slab = || read_number("/proc/meminfo", Some("SUnreclaim"));
    let settle = || std::thread::sleep(std::time::Duration::from_millis(200));
    // Warm the slab caches first so that their growth is not counted.
    for _ in 0..2 {
        drop(populate(N)?);
    }
    settle();
    let before = slab()?;
    let fd = populate(N)?;
    let peak = slab()?;
    drop(fd);
    settle();
    let after = slab()?;
    println!("# close_frees_objects: SUnreclaim kB before={before} with {N} objects and {N} areas={peak} after close={after}");
    // 5,000 objects and 5,000 areas take over 1.5 MiB (C and Rust); a
    // leak of a sixth of them would show.
    check!(peak >= before + 1024);
    check!(after <= before + 256);
    Ok(())
}

/// The child side of `unprivileged_user`: runs as uid 1000 with no
/// capabilities and checks what such a user can and cannot do.
fn unprivileged_child() -> TestResult {
    sys::become_user(1000).map_err(|e| format!("setresuid: {e}"))?;
    // The node is root's, 0660.
    let err = sys::open_dev(IOMMU_DEV)
        .err()
        .and_then(|e| e.raw_os_error());
    check_eq!(err, Some(EACCES));
    Ok(())
}

/// Runs the child with the node made accessible, as an admin granting a
/// user access to /dev/iommu would.
fn unprivileged_child_with_access() -> TestResult {
    sys::become_user(1000).map_err(|e| format!("setresuid: {e}"))?;
    let fd = Iommufd::open()?;
    let mode = uapi::IOMMU_OPTION_RLIMIT_MODE;
    // The global accounting mode needs CAP_SYS_RESOURCE.
    check_eq!(fd.option(mode, uapi::IOMMU_OPTION_OP_SET, 0, 1), Err(EPERM));
    check_eq!(fd.option(mode, uapi::IOMMU_OPTION_OP_GET, 0, 0), Ok(0));
    // Its own objects work; nobody else's are reachable (IDs are per file).
    check_eq!(fd.ioas_alloc(), Ok(1));
    check_eq!(fd.destroy(2), ENOENT);
    // Pins stop at RLIMIT_MEMLOCK (charged to the user): the map that
    // would pass it fails with ENOMEM and leaves nothing pinned or mapped.
    sys::set_memlock_limit(16 * 4096).map_err(|e| format!("setrlimit: {e}"))?;
    let (_, hwpt, _) = fd.mock_domain(1).map_err(|e| format!("mock_domain: {e}"))?;
    let buf = PageBuf::new(32);
    let aperture = uapi::MOCK_APERTURE_START as u64;
    let len = 16 * 4096;
    let pin0 = vm_pin_kb()?;
    check_eq!(
        fd.map(1, buf.addr(), len, RW | FIXED, aperture),
        Ok(aperture)
    );
    check_eq!(vm_pin_kb()?, pin0 + 64);
    let more = buf.addr() + len;
    check_eq!(
        fd.map(1, more, 4096, RW | FIXED, aperture + len),
        Err(ENOMEM)
    );
    check_eq!(vm_pin_kb()?, pin0 + 64);
    check_eq!(
        fd.md_check_map(hwpt, aperture + len, 4096, more as *const u8),
        EINVAL
    );
    check_eq!(fd.check_refs(more as *const u8, 4096, 0), 0);
    check_eq!(fd.unmap(1, aperture, len), Ok(len));
    check_eq!(vm_pin_kb()?, pin0);
    // With the charge given back, the same map fits again.
    check_eq!(
        fd.map(1, more, 4096, RW | FIXED, aperture + len),
        Ok(aperture + len)
    );
    check_eq!(fd.unmap(1, 0, u64::MAX), Ok(4096));
    Ok(())
}

fn unprivileged_user() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    // The parent holds an object that the child must not see.
    let parent = Iommufd::open()?;
    check_eq!(parent.ioas_alloc(), Ok(1));
    check_eq!(parent.ioas_alloc(), Ok(2));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let run = |arg: &str| -> TestResult {
        let out = std::process::Command::new(&exe)
            .arg(arg)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{arg}: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
    };
    run("--unprivileged-child")?;
    let set_mode = |m: u32| std::fs::set_permissions(IOMMU_DEV, std::fs::Permissions::from_mode(m));
    set_mode(0o666).map_err(|e| e.to_string())?;
    let result = run("--unprivileged-child-with-access");
    set_mode(0o660).map_err(|e| e.to_string())?;
    result
}

/// Bytes the child of `killed_mid_map_leaves_no_pins` maps.
const KILLED_MAP_LEN: u64 = 256 << 20;

/// The child side of `killed_mid_map_leaves_no_pins`: maps the memfd
/// whose descriptor is its second argument into an IOAS with a mock
/// domain, which pins it all, saying when it starts and ends, then waits
/// to be killed.
fn map_until_killed() -> TestResult {
    use std::io::Write;
    let mfd: i32 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .ok_or("no memfd argument")?;
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    fd.mock_domain(ioas)
        .map_err(|e| format!("mock_domain: {e}"))?;
    let say = |what: &str| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{what}");
        let _ = out.flush();
    };
    say("mapping");
    let mapped = fd.map_file(ioas, mfd, 0, KILLED_MAP_LEN, RW, 0);
    say(&format!("mapped {mapped:?}"));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// A process killed while it maps (and pins) 256 MiB leaves no pin on
/// the memory and no reference on the module, wherever the kill lands.
fn killed_mid_map_leaves_no_pins() -> TestResult {
    use std::io::{BufRead, BufReader, Read};
    use std::os::fd::AsRawFd;
    let memfd = sys::memfd(KILLED_MAP_LEN).map_err(|e| format!("memfd: {e}"))?;
    let addr = sys::mmap_shared(&memfd, KILLED_MAP_LEN).ok_or("mmap of the memfd")?;
    sys::touch(addr, KILLED_MAP_LEN);
    let fd = Iommufd::open()?;
    let refcnt = format!("/sys/module/{}/refcnt", module());
    let before = read_number(&refcnt, None)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (mut mid_map, mut after_map) = (0, 0);
    for delay_ms in [0, 1, 3, 10, 30, 100, 300] {
        let mut child = std::process::Command::new(&exe)
            .arg("--map-until-killed")
            .arg(memfd.as_raw_fd().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        check_eq!(line.trim(), "mapping");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().map_err(|e| e.to_string())?;
        child.wait().map_err(|e| e.to_string())?;
        line.clear();
        out.read_to_string(&mut line).map_err(|e| e.to_string())?;
        if line.is_empty() {
            mid_map += 1;
        } else {
            check!(line.starts_with("mapped Ok("));
            after_map += 1;
        }
    }
    println!(
        "# killed_mid_map_leaves_no_pins: {mid_map} children killed mid-map, {after_map} after"
    );
    check_eq!(fd.check_refs(addr as *const u8, KILLED_MAP_LEN, 0), 0);
    check_eq!(read_number(&refcnt, None)?, before);
    Ok(())
}

/// This thread's `fail-nth` file, opened before arming it: opening it
/// allocates, reading and writing through an open file does not.
struct FailNth(std::fs::File);

impl FailNth {
    fn open() -> Result<Self, String> {
        let path = "/proc/thread-self/fail-nth";
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path);
        Ok(Self(file.map_err(|e| format!("{path}: {e}"))?))
    }

    /// Makes the `n`-th fault-injection point of this thread fail (0: none).
    fn set(&self, n: u32) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        self.0
            .write_at(format!("{n}").as_bytes(), 0)
            .map(|_| ())
            .map_err(|e| format!("fail-nth: {e}"))
    }

    /// Injection points still to go before the armed failure.
    fn pending(&self) -> Result<u64, String> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 24];
        let n = self
            .0
            .read_at(&mut buf, 0)
            .map_err(|e| format!("fail-nth: {e}"))?;
        let text = String::from_utf8_lossy(&buf[..n]);
        text.trim()
            .parse()
            .map_err(|e| format!("fail-nth {text:?}: {e}"))
    }
}

/// A sequence touching every allocation of the IOAS paths. Each step must
/// succeed or fail with ENOMEM. Both modules' test builds also fail object
/// lookups (ENOENT) and a few other points (EINVAL, EFAULT) on purpose
/// (C's `iommufd_should_fail()`, our `fail_iommufd_rs`), so those count
/// too.
fn alloc_sequence(fd: &Iommufd) -> Result<u32, String> {
    use iommufd_rs_selftests::dev::{FIXED, RW};
    let mut failures = 0;
    let mut step = |what: &str, errno: i32| -> Result<(), String> {
        match errno {
            0 => Ok(()),
            ENOMEM => {
                failures += 1;
                Ok(())
            }
            // Both modules' own injection points (fail_iommufd,
            // fail_iommufd_rs): lookups, pins, C's reserved regions.
            ENOENT | EINVAL | EFAULT => {
                failures += 1;
                Ok(())
            }
            e => Err(format!(
                "{what}: errno {e} under an injected allocation failure"
            )),
        }
    };
    let a = fd.ioas_alloc();
    step("IOAS_ALLOC", a.err().unwrap_or(0))?;
    let b = fd.ioas_alloc();
    step("IOAS_ALLOC", b.err().unwrap_or(0))?;
    if let (Ok(a), Ok(b)) = (a, b) {
        let ids = format!("ioas {a} and {b}");
        let mut step = |what: &str, errno: i32| step(&format!("{what} ({ids})"), errno);
        step(
            "IOAS_MAP fixed",
            fd.map(a, 0x7f00_0000_0000, 0x4000, RW | FIXED, 0x10_0000)
                .err()
                .unwrap_or(0),
        )?;
        step(
            "IOAS_MAP",
            fd.map(a, 0x7f00_0001_0000, 0x4000, RW, 0)
                .err()
                .unwrap_or(0),
        )?;
        step(
            "ALLOW_IOVAS",
            fd.allow_iovas(b, &[(0x100_0000, 0x1ff_ffff), (0x400_0000, 0x4ff_ffff)]),
        )?;
        // The copy may also find nothing to copy if the map failed.
        match fd.copy(b, a, 0x10_0000, 0x4000, RW, 0) {
            Err(ENOENT) | Ok(_) => {}
            Err(e) => step("IOAS_COPY", e)?,
        }
        step("ADD_RESERVED", fd.add_reserved(a, 0x1000_0000, 0x1000))?;
        step(
            "IOVA_RANGES",
            fd.iova_ranges(a, 4).err().map_or(0, |(e, _)| e),
        )?;
        step("IOAS_UNMAP", fd.unmap(a, 0, u64::MAX).err().unwrap_or(0))?;
        let _ = fd.destroy(b);
        let _ = fd.destroy(a);
    }
    Ok(failures)
}

fn allocation_failures_unwind() -> TestResult {
    // The N-th allocation fails, for N = 1, 2, ...: every ioctl answers
    // ENOMEM or succeeds, the file keeps working, and closing it frees
    // everything (the module refcount comes back).
    let debugfs = "/sys/kernel/debug";
    let knob = |name: &str, v: &str| std::fs::write(format!("{debugfs}/{name}"), v);
    if knob("failslab/ignore-gfp-wait", "N").is_err() {
        return Err("SKIP: no failslab in debugfs".into());
    }
    let _ = knob("fail_page_alloc/ignore-gfp-wait", "N");
    // No stack dump per injected failure.
    let _ = knob("failslab/verbose", "0");
    let _ = knob("fail_page_alloc/verbose", "0");
    let _ = knob("fail_iommufd/verbose", "0");
    let _ = knob("fail_iommufd_rs/verbose", "0");
    let refcnt = format!("/sys/module/{}/refcnt", module());
    let before = read_number(&refcnt, None)?;
    let fail_nth = FailNth::open()?;
    let mut n = 1;
    let result = loop {
        let fd = Iommufd::open()?;
        fail_nth.set(n)?;
        let failures = alloc_sequence(&fd);
        // Still pending: the sequence has fewer than `n` injection points.
        let pending = fail_nth.pending()?;
        fail_nth.set(0)?;
        let failures = match failures {
            Ok(f) => f,
            Err(e) => break Err(format!("fail-nth {n}: {e}")),
        };
        // The file still works after the failure.
        if let Err(e) = fd.ioas_alloc() {
            break Err(format!("fail-nth {n}: IOAS_ALLOC afterwards: errno {e}"));
        }
        drop(fd);
        if pending != 0 {
            println!(
                "# allocation_failures_unwind: {} injection points, all survived ({failures} ENOMEM on the last run)",
                n - 1
            );
            break Ok(());
        }
        if n > 400 {
            break Err("the sequence never completed without a failure".into());
        }
        n += 1;
    };
    let _ = knob("failslab/ignore-gfp-wait", "Y");
    let _ = knob("fail_page_alloc/ignore-gfp-wait", "Y");
    let _ = knob("failslab/verbose", "2");
    let _ = knob("fail_page_alloc/verbose", "2");
    result?;
    check_eq!(read_number(&refcnt, None)?, before);
    Ok(())
}

fn main() {
    // Child modes of `unprivileged_user`.
    let child: Option<fn() -> TestResult> = match std::env::args().nth(1).as_deref() {
        Some("--unprivileged-child") => Some(unprivileged_child),
        Some("--unprivileged-child-with-access") => Some(unprivileged_child_with_access),
        Some("--map-until-killed") => Some(map_until_killed),
        _ => None,
    };
    if let Some(child) = child {
        match child() {
            Ok(()) => std::process::exit(0),
            Err(why) => {
                println!("{why}");
                std::process::exit(1);
            }
        }
    }
    let tests = [
        Test {
            name: "node_is_root_0660",
            run: node_is_root_0660,
        },
        Test {
            name: "ioas_ids_count_from_one",
            run: ioas_ids_count_from_one,
        },
        Test {
            name: "destroy_errors",
            run: destroy_errors,
        },
        Test {
            name: "ioas_alloc_flags_rejected",
            run: ioas_alloc_flags_rejected,
        },
        Test {
            name: "size_rules",
            run: size_rules,
        },
        Test {
            name: "size_rules_every_ioctl",
            run: size_rules_every_ioctl,
        },
        Test {
            name: "bad_pointers",
            run: bad_pointers,
        },
        Test {
            name: "unknown_ioctls",
            run: unknown_ioctls,
        },
        Test {
            name: "iova_ranges_whole_space",
            run: iova_ranges_whole_space,
        },
        Test {
            name: "iova_ranges_too_small",
            run: iova_ranges_too_small,
        },
        Test {
            name: "iova_ranges_errors",
            run: iova_ranges_errors,
        },
        Test {
            name: "iova_ranges_reply_fields",
            run: iova_ranges_reply_fields,
        },
        Test {
            name: "no_unload_while_open",
            run: no_unload_while_open,
        },
        Test {
            name: "allocation_failures_unwind",
            run: allocation_failures_unwind,
        },
        Test {
            name: "unprivileged_user",
            run: unprivileged_user,
        },
        Test {
            name: "killed_mid_map_leaves_no_pins",
            run: killed_mid_map_leaves_no_pins,
        },
        Test {
            name: "close_frees_objects",
            run: close_frees_objects,
        },
    ];
    let mut tests = tests.to_vec();
    tests.extend(iommufd_rs_selftests::ioas_tests::tests());
    tests.extend(iommufd_rs_selftests::compat_tests::tests());
    tests.extend(iommufd_rs_selftests::compat_dirty_tests::tests());
    tests.extend(iommufd_rs_selftests::domain_tests::tests());
    tests.extend(iommufd_rs_selftests::hwpt_tests::tests());
    tests.extend(iommufd_rs_selftests::nested_tests::tests());
    tests.extend(iommufd_rs_selftests::viommu_tests::tests());
    tests.extend(iommufd_rs_selftests::dmabuf_tests::tests());
    tests.extend(iommufd_rs_selftests::fuzz_regressions::tests());
    tests.extend(iommufd_rs_selftests::production_tests::tests());
    // An argument keeps only the tests whose names start with it; the
    // production module's tests run only when named.
    match std::env::args().nth(1) {
        Some(prefix) => tests.retain(|t| t.name.starts_with(prefix.as_str())),
        None => tests.retain(|t| !t.name.starts_with("production_")),
    }
    let failed = run("iommufd_rs_selftests", &tests);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
