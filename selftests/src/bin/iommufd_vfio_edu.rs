// SPDX-License-Identifier: GPL-2.0

//! Real-device DMA through vfio-pci: QEMU's edu device behind an emulated
//! Intel IOMMU, driven through an iommufd provider (C iommufd, or
//! iommufd_rs later) or through vfio's own type1 container.
//!
//! Usage: `iommufd_vfio_edu MODE [--iommufd NODE] [--container NODE]
//! [--module NAME]`, where MODE is
//!  - `cdev`: /dev/vfio/devices/vfioN bound to an iommufd (`--iommufd`,
//!    default /dev/iommu), attached to an IOAS, `IOMMU_IOAS_MAP`;
//!  - `group`: the legacy flow, /dev/vfio/GROUP set to the container node
//!    (`--container`, default /dev/vfio/vfio: vfio's type1, or a symlink to
//!    an iommufd node), `VFIO_SET_IOMMU(TYPE1v2)`, `VFIO_IOMMU_MAP_DMA`;
//!  - `mix`: the legacy flow, then `IOMMU_VFIO_IOAS` GET on the container
//!    and `IOMMU_IOAS_MAP` into that IOAS (skipped on type1);
//!  - `bench IMPL` (IMPL `c` or `rust`, the module behind `--iommufd`): no
//!    tests, but `make bench`'s `raw impl=IMPL name=.. us=..` lines for
//!    IOAS_MAP + IOAS_UNMAP pairs on the device's real (VT-d) domain, the
//!    cdev attached to an IOAS: one 4 KiB page, and 1 GiB of 4 KiB pages,
//!    THP and hugetlb. A line gets its time only if, after its timed
//!    pairs, edu's DMA reached the memory through one more mapping, and
//!    says `error=..` otherwise; exits 1 if a line has no time.
//!
//! `--module` names the module whose refcount must come back after a
//! client is killed (default `iommufd`; `vfio_iommu_type1` for type1).
//! Test names and results do not depend on addresses, pids or timing, so
//! the result lines of two providers can be diffed. Prints KTAP, ending
//! with `# real devices: N passed, M failed`; exits 1 if a test failed.

use iommufd_rs_selftests::bench;
use iommufd_rs_selftests::dev::{read_number, size_of_u32, Iommufd, PageBuf, FIXED, READ, RW};
use iommufd_rs_selftests::ktap::{run, Test, TestResult};
use iommufd_rs_selftests::sys::{self, errno::*, AnonPages};
use iommufd_rs_selftests::uapi;
use iommufd_rs_selftests::{check, check_eq};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `EBADFD`: a file that is neither a vfio container nor an iommufd.
const EBADFD: i32 = 77;

/// IOVAs of the buffers: edu masks DMA addresses to 28 bits.
const IOVA_A: u64 = 0x10_0000;
const IOVA_B: u64 = 0x20_0000;
const IOVA_C: u64 = 0x30_0000;
/// Bytes each DMA moves: one page, the whole device buffer.
const LEN: u64 = 4096;
/// What a destination holds before the device writes it.
const FILL: u8 = 0x5a;

/// edu's registers (BAR0) and its buffer's device address.
const EDU_ID: u64 = 0x00;
const EDU_DMA_SRC: u64 = 0x80;
const EDU_DMA_DST: u64 = 0x88;
const EDU_DMA_CNT: u64 = 0x90;
const EDU_DMA_CMD: u64 = 0x98;
const EDU_DMA_RUN: u64 = 1;
const EDU_DMA_TO_RAM: u64 = 2;
const EDU_BUF: u64 = 0x4_0000;
const EDU_ID_VALUE: u32 = 0x0100_00ed;

const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY_MASTER: u16 = 0x6;

const VFIO_GROUP_GET_STATUS: u32 = uapi::vfio_ioctl(3);
const VFIO_GROUP_SET_CONTAINER: u32 = uapi::vfio_ioctl(4);
const VFIO_GROUP_UNSET_CONTAINER: u32 = uapi::vfio_ioctl(5);
const VFIO_GROUP_GET_DEVICE_FD: u32 = uapi::vfio_ioctl(6);
const VFIO_DEVICE_GET_REGION_INFO: u32 = uapi::vfio_ioctl(8);
const VFIO_DEVICE_BIND_IOMMUFD: u32 = uapi::vfio_ioctl(18);
const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u32 = uapi::vfio_ioctl(19);
const VFIO_DEVICE_DETACH_IOMMUFD_PT: u32 = uapi::vfio_ioctl(20);

/// What the command line asked for.
struct Config {
    mode: String,
    iommufd: String,
    container: String,
    module: String,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn cfg() -> &'static Config {
    CONFIG.get().expect("configuration set in main")
}

/// One edu function, bound to vfio-pci.
#[derive(Clone, Debug)]
struct Edu {
    bdf: String,
    group: u32,
    /// /dev/vfio/devices/vfioN
    cdev: String,
}

/// The edu functions found: one alone in its IOMMU group, and two that
/// share one (functions 0 and 1 of one slot), if present.
struct Layout {
    single: Edu,
    pair: Option<(Edu, Edu)>,
}

static LAYOUT: OnceLock<Layout> = OnceLock::new();

fn layout() -> &'static Layout {
    LAYOUT.get().expect("layout found in main")
}

fn pair() -> Result<&'static (Edu, Edu), String> {
    layout()
        .pair
        .as_ref()
        .ok_or_else(|| "SKIP: no two edu functions share an IOMMU group".to_string())
}

fn sysfs_read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {path}: {e}"))
}

fn sysfs_write(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {value:?} to {path}: {e}"))
}

fn link_name(path: &str) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Binds `bdf` to vfio-pci (driver_override, then drivers_probe) unless it
/// is bound already; returns its group number and cdev node.
fn bind_vfio_pci(bdf: &str) -> Result<Edu, String> {
    let dir = format!("/sys/bus/pci/devices/{bdf}");
    let driver = link_name(&format!("{dir}/driver"));
    if driver.as_deref() != Some("vfio-pci") {
        if driver.is_some() {
            sysfs_write(&format!("{dir}/driver/unbind"), bdf)?;
        }
        sysfs_write(&format!("{dir}/driver_override"), "vfio-pci")?;
        sysfs_write("/sys/bus/pci/drivers_probe", bdf)?;
        let now = link_name(&format!("{dir}/driver"));
        if now.as_deref() != Some("vfio-pci") {
            return Err(format!("{bdf}: bound to {now:?} after drivers_probe"));
        }
    }
    let group =
        link_name(&format!("{dir}/iommu_group")).ok_or_else(|| format!("{bdf}: no IOMMU group"))?;
    let group = group
        .parse()
        .map_err(|e| format!("{bdf}: group {group:?}: {e}"))?;
    let cdev = std::fs::read_dir(format!("{dir}/vfio-dev"))
        .map_err(|e| format!("{dir}/vfio-dev: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vfio"))
        .ok_or_else(|| format!("{bdf}: no vfio-dev entry"))?;
    Ok(Edu {
        bdf: bdf.to_string(),
        group,
        cdev: format!("/dev/vfio/devices/{cdev}"),
    })
}

fn group_size(group: u32) -> Result<usize, String> {
    let path = format!("/sys/kernel/iommu_groups/{group}/devices");
    Ok(std::fs::read_dir(&path)
        .map_err(|e| format!("{path}: {e}"))?
        .count())
}

/// Finds every edu (1234:11e8), binds it to vfio-pci, and sorts them into
/// the layout the tests need.
fn find_layout(quiet: bool) -> Result<Layout, String> {
    let mut bdfs: Vec<String> = std::fs::read_dir("/sys/bus/pci/devices")
        .map_err(|e| format!("/sys/bus/pci/devices: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|bdf| {
            let dir = format!("/sys/bus/pci/devices/{bdf}");
            sysfs_read(&format!("{dir}/vendor")).as_deref() == Ok("0x1234")
                && sysfs_read(&format!("{dir}/device")).as_deref() == Ok("0x11e8")
        })
        .collect();
    bdfs.sort();
    let mut edus = Vec::new();
    for bdf in &bdfs {
        let edu = bind_vfio_pci(bdf)?;
        let size = group_size(edu.group)?;
        if !quiet {
            println!(
                "# edu {} in IOMMU group {} ({size} device(s)), {}",
                edu.bdf, edu.group, edu.cdev
            );
        }
        edus.push((edu, size));
    }
    let single = edus
        .iter()
        .find(|(_, size)| *size == 1)
        .map(|(e, _)| e.clone())
        .ok_or("no edu device alone in its IOMMU group")?;
    let mut pair = None;
    for (i, (e0, _)) in edus.iter().enumerate() {
        if let Some((e1, _)) = edus[i + 1..].iter().find(|(e, _)| e.group == e0.group) {
            pair = Some((e0.clone(), e1.clone()));
            break;
        }
    }
    Ok(Layout { single, pair })
}

/// A vfio device file with access to edu's config space and BAR0.
struct Device {
    file: File,
    config: u64,
    bar0: u64,
}

fn region_info(file: &File, index: u32) -> Result<uapi::vfio_region_info, String> {
    let mut info = uapi::vfio_region_info {
        argsz: size_of_u32::<uapi::vfio_region_info>(),
        index,
        ..Default::default()
    };
    match sys::ioctl_struct(file, VFIO_DEVICE_GET_REGION_INFO, &mut info) {
        0 => Ok(info),
        e => Err(format!("VFIO_DEVICE_GET_REGION_INFO {index}: errno {e}")),
    }
}

impl Device {
    /// Finds the regions, turns on memory decoding and bus mastering (vfio-pci
    /// turns mastering off at open), and checks edu's ID register.
    fn new(file: File) -> Result<Self, String> {
        let config = region_info(&file, uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
        let bar0 = region_info(&file, uapi::VFIO_PCI_BAR0_REGION_INDEX)?;
        if bar0.size != 1 << 20 {
            return Err(format!("BAR0 is {:#x} bytes, not 1 MiB", bar0.size));
        }
        let dev = Self {
            file,
            config: config.offset,
            bar0: bar0.offset,
        };
        let mut cmd = [0u8; 2];
        dev.file
            .read_exact_at(&mut cmd, dev.config + PCI_COMMAND)
            .map_err(|e| format!("read PCI_COMMAND: {e}"))?;
        let cmd = u16::from_le_bytes(cmd) | PCI_COMMAND_MEMORY_MASTER;
        dev.file
            .write_all_at(&cmd.to_le_bytes(), dev.config + PCI_COMMAND)
            .map_err(|e| format!("write PCI_COMMAND: {e}"))?;
        let id = dev.read32(EDU_ID)?;
        if id != EDU_ID_VALUE {
            return Err(format!("edu ID register reads {id:#x}"));
        }
        Ok(dev)
    }

    fn read32(&self, reg: u64) -> Result<u32, String> {
        let mut v = [0u8; 4];
        self.file
            .read_exact_at(&mut v, self.bar0 + reg)
            .map_err(|e| format!("read BAR0+{reg:#x}: {e}"))?;
        Ok(u32::from_le_bytes(v))
    }

    fn write64(&self, reg: u64, value: u64) -> Result<(), String> {
        self.file
            .write_all_at(&value.to_le_bytes(), self.bar0 + reg)
            .map_err(|e| format!("write BAR0+{reg:#x}: {e}"))
    }

    /// One DMA of `LEN` bytes between `iova` and edu's buffer, waited for.
    fn dma(&self, iova: u64, to_ram: bool) -> Result<(), String> {
        let (src, dst) = if to_ram {
            (EDU_BUF, iova)
        } else {
            (iova, EDU_BUF)
        };
        self.write64(EDU_DMA_SRC, src)?;
        self.write64(EDU_DMA_DST, dst)?;
        self.write64(EDU_DMA_CNT, LEN)?;
        let dir = if to_ram { EDU_DMA_TO_RAM } else { 0 };
        self.write64(EDU_DMA_CMD, EDU_DMA_RUN | dir)?;
        let start = Instant::now();
        while u64::from(self.read32(EDU_DMA_CMD)?) & EDU_DMA_RUN != 0 {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("edu DMA still busy after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// A page of this process's memory, read and written volatile: the device
/// writes it behind the compiler's back.
struct Buf(PageBuf);

impl Buf {
    fn new() -> Self {
        Self(PageBuf::new(1))
    }
    fn addr(&self) -> u64 {
        self.0.addr()
    }
    fn fill(&self, byte: u8) {
        // SAFETY: This buffer's page, owned by it.
        unsafe { fill_at(self.addr(), byte) }
    }
    fn fill_pattern(&self, seed: u64) {
        // SAFETY: This buffer's page, owned by it.
        unsafe { fill_pattern_at(self.addr(), seed) }
    }
    fn contents(&self) -> Vec<u8> {
        // SAFETY: This buffer's page, owned by it.
        unsafe { contents_at(self.addr()) }
    }
}

/// Writes `byte` to the `LEN` bytes at `addr`, volatile.
///
/// # Safety
///
/// `[addr, addr + LEN)` is writable memory of this process that nothing
/// else in it uses during the call.
unsafe fn fill_at(addr: u64, byte: u8) {
    for i in 0..LEN {
        // SAFETY: Within the range the caller vouches for.
        unsafe { ((addr + i) as *mut u8).write_volatile(byte) };
    }
}

/// Writes a pseudo-random pattern derived from `seed` to the `LEN` bytes
/// at `addr`, volatile.
///
/// # Safety
///
/// As for [`fill_at`].
unsafe fn fill_pattern_at(addr: u64, seed: u64) {
    let mut x = seed | 1;
    for i in 0..LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // SAFETY: Within the range the caller vouches for.
        unsafe { ((addr + i) as *mut u8).write_volatile(x as u8) };
    }
}

/// The `LEN` bytes at `addr`, read volatile (a device may have written
/// them).
///
/// # Safety
///
/// `[addr, addr + LEN)` is readable memory of this process.
unsafe fn contents_at(addr: u64) -> Vec<u8> {
    (0..LEN)
        // SAFETY: Within the range the caller vouches for.
        .map(|i| unsafe { ((addr + i) as *const u8).read_volatile() })
        .collect()
}

/// What a device write left in the destination buffer.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The source's bytes: the DMA went through.
    Copied,
    /// The fill it had before: the write was blocked.
    Unchanged,
    /// Anything else (a stale device buffer, a partial write).
    Other,
}

static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

/// RAM -> device from `src_iova` (backed by `src`), then device -> RAM to
/// `dst_iova` (backed by `dst`, filled with `FILL` first). Each call uses
/// a fresh pattern, so a stale device buffer shows as `Other`.
fn round_trip(
    dev: &Device,
    src_iova: u64,
    src: &Buf,
    dst_iova: u64,
    dst: &Buf,
) -> Result<Outcome, String> {
    src.fill_pattern(SEED.fetch_add(0x1234_5678_9abc_def1, Ordering::Relaxed));
    dst.fill(FILL);
    dev.dma(src_iova, false)?;
    dev.dma(dst_iova, true)?;
    let got = dst.contents();
    Ok(if got == src.contents() {
        Outcome::Copied
    } else if got.iter().all(|&b| b == FILL) {
        Outcome::Unchanged
    } else {
        Outcome::Other
    })
}

/// The kernel log from the moment of opening.
struct Kmsg(File);

impl Kmsg {
    fn open() -> Result<Self, String> {
        const O_NONBLOCK: i32 = 0o4000;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(|e| format!("/dev/kmsg: {e}"))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| format!("seek /dev/kmsg: {e}"))?;
        Ok(Self(file))
    }

    /// The messages logged since the last call.
    fn new_lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    // "prio,seq,ts,flags;message\n" and continuation lines.
                    if let Some((_, msg)) = rec.split_once(';') {
                        out.push(msg.lines().next().unwrap_or("").to_string());
                    }
                }
                // EPIPE: records were overwritten; go on with the next.
                Err(e) if e.raw_os_error() == Some(32) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        out
    }

    /// Waits up to a second for the DMAR fault report of a write to `iova`.
    fn dmar_write_fault(&mut self, iova: u64) -> Option<String> {
        let want = format!("fault addr {iova:#x} ");
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .new_lines()
                .into_iter()
                .find(|l| l.contains("DMAR") && l.contains("[DMA Write") && l.contains(&want))
            {
                return Some(l);
            }
            if start.elapsed() > Duration::from_secs(1) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A device write to `dst_iova` is blocked (the buffer keeps its fill) and
/// the IOMMU reports it. dmar_fault() rate-limits its reports (10 a 5 s,
/// about 3 faults), so a missing report is retried once after the window.
fn expect_blocked_write_fault(
    name: &str,
    dev: &Device,
    src: &Buf,
    dst_iova: u64,
    dst: &Buf,
) -> TestResult {
    for attempt in 0..2 {
        let mut kmsg = Kmsg::open()?;
        check_eq!(
            round_trip(dev, IOVA_A, src, dst_iova, dst)?,
            Outcome::Unchanged
        );
        if let Some(line) = kmsg.dmar_write_fault(dst_iova) {
            println!("# {name}: {line}");
            return Ok(());
        }
        if attempt == 0 {
            std::thread::sleep(Duration::from_millis(5500));
        }
    }
    Err(format!(
        "no DMAR write fault at {dst_iova:#x} in the kernel log"
    ))
}

/// A device write to `dst_iova` is blocked; the fault report, if any, is
/// only printed.
fn expect_blocked_write(
    name: &str,
    dev: &Device,
    src: &Buf,
    dst_iova: u64,
    dst: &Buf,
) -> TestResult {
    let mut kmsg = Kmsg::open()?;
    check_eq!(
        round_trip(dev, IOVA_A, src, dst_iova, dst)?,
        Outcome::Unchanged
    );
    match kmsg.dmar_write_fault(dst_iova) {
        Some(line) => println!("# {name}: {line}"),
        None => println!("# {name}: no DMAR write fault report seen"),
    }
    Ok(())
}

/// Pages pinned and released so far (/proc/vmstat, per-CPU counts folded).
fn foll_pins() -> Result<(u64, u64), String> {
    let _ = std::fs::write("/proc/sys/vm/stat_refresh", "1");
    Ok((
        read_number("/proc/vmstat", Some("nr_foll_pin_acquired "))?,
        read_number("/proc/vmstat", Some("nr_foll_pin_released "))?,
    ))
}

fn module_refcnt() -> Result<u64, String> {
    read_number(&format!("/sys/module/{}/refcnt", cfg().module), None)
}

/// Waits up to 3 s for every pin taken since `before` to be released:
/// the pins taken in between (0 if they balance) or an error.
fn pins_balance(before: (u64, u64)) -> Result<u64, String> {
    let start = Instant::now();
    loop {
        let now = foll_pins()?;
        let (acquired, released) = (now.0 - before.0, now.1 - before.1);
        if acquired == released {
            return Ok(acquired);
        }
        if start.elapsed() > Duration::from_secs(3) {
            return Err(format!("{acquired} pages pinned, {released} released"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- cdev: VFIO_DEVICE_BIND_IOMMUFD and an IOAS -------------------------

fn open_iommufd() -> Result<Iommufd, String> {
    Iommufd::open_path(&cfg().iommufd)
}

fn open_cdev(edu: &Edu) -> Result<File, String> {
    sys::open_dev(&edu.cdev).map_err(|e| format!("open {}: {e}", edu.cdev))
}

/// VFIO_DEVICE_BIND_IOMMUFD with descriptor `fd`: the device ID or errno.
fn bind(dev: &File, fd: i32) -> Result<u32, i32> {
    let mut cmd = uapi::vfio_device_bind_iommufd {
        argsz: size_of_u32::<uapi::vfio_device_bind_iommufd>(),
        iommufd: fd,
        ..Default::default()
    };
    match sys::ioctl_struct(dev, VFIO_DEVICE_BIND_IOMMUFD, &mut cmd) {
        0 => Ok(cmd.out_devid),
        e => Err(e),
    }
}

/// VFIO_DEVICE_ATTACH_IOMMUFD_PT: the ID attached (the HWPT for an IOAS).
fn attach(dev: &File, pt_id: u32) -> Result<u32, i32> {
    let mut cmd = uapi::vfio_device_attach_iommufd_pt {
        argsz: size_of_u32::<uapi::vfio_device_attach_iommufd_pt>(),
        pt_id,
        ..Default::default()
    };
    match sys::ioctl_struct(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut cmd) {
        0 => Ok(cmd.pt_id),
        e => Err(e),
    }
}

fn detach(dev: &File) -> i32 {
    let mut cmd = uapi::vfio_device_detach_iommufd_pt {
        argsz: size_of_u32::<uapi::vfio_device_detach_iommufd_pt>(),
        ..Default::default()
    };
    sys::ioctl_struct(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &mut cmd)
}

/// Binds `edu`'s cdev to `ictx` and opens its regions.
fn cdev_bind(edu: &Edu, ictx: &Iommufd) -> Result<(Device, u32), String> {
    let file = open_cdev(edu)?;
    let dev_id =
        bind(&file, ictx.file.as_raw_fd()).map_err(|e| format!("BIND_IOMMUFD: errno {e}"))?;
    Ok((Device::new(file)?, dev_id))
}

/// A device bound and attached to a fresh IOAS in which A (read-write) and
/// B (`b_flags`) are mapped at IOVA_A and IOVA_B. Dropped device first.
struct CdevSetup {
    dev: Device,
    dev_id: u32,
    ioas: u32,
    pt: u32,
    ictx: Iommufd,
    a: Buf,
    b: Buf,
}

/// The edu's cdev bound to a new iommufd file and attached to a new IOAS:
/// (file, device, device ID, IOAS, the page table it got). On an error the
/// device goes before the file.
fn cdev_on_new_ioas(edu: &Edu) -> Result<(Iommufd, Device, u32, u32, u32), String> {
    let ictx = open_iommufd()?;
    let (dev, dev_id) = cdev_bind(edu, &ictx)?;
    let ioas = ictx
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let pt = attach(&dev.file, ioas).map_err(|e| format!("ATTACH_IOMMUFD_PT: errno {e}"))?;
    Ok((ictx, dev, dev_id, ioas, pt))
}

fn cdev_setup(edu: &Edu, b_flags: u32) -> Result<CdevSetup, String> {
    let (ictx, dev, dev_id, ioas, pt) = cdev_on_new_ioas(edu)?;
    let (a, b) = (Buf::new(), Buf::new());
    ictx.map(ioas, a.addr(), LEN, FIXED | RW, IOVA_A)
        .map_err(|e| format!("IOAS_MAP A: errno {e}"))?;
    ictx.map(ioas, b.addr(), LEN, FIXED | b_flags, IOVA_B)
        .map_err(|e| format!("IOAS_MAP B: errno {e}"))?;
    Ok(CdevSetup {
        dev,
        dev_id,
        ioas,
        pt,
        ictx,
        a,
        b,
    })
}

fn cdev_dma() -> TestResult {
    let s = cdev_setup(&layout().single, RW)?;
    check!(s.dev_id != 0);
    // An IOAS gets an automatic HWPT of its own.
    check!(s.pt != s.ioas);
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    Ok(())
}

fn cdev_unmap_fault() -> TestResult {
    let s = cdev_setup(&layout().single, RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(s.ictx.unmap(s.ioas, IOVA_B, LEN), Ok(LEN));
    expect_blocked_write_fault("cdev unmap", &s.dev, &s.a, IOVA_B, &s.b)
}

fn cdev_readonly() -> TestResult {
    let s = cdev_setup(&layout().single, READ)?;
    expect_blocked_write("cdev read-only", &s.dev, &s.a, IOVA_B, &s.b)?;
    // Reads through the read-only map still work: B -> device -> A.
    let (src, dst) = (&s.b, &s.a);
    src.fill_pattern(7);
    dst.fill(FILL);
    s.dev.dma(IOVA_B, false)?;
    s.dev.dma(IOVA_A, true)?;
    check!(dst.contents() == src.contents());
    Ok(())
}

fn cdev_detach() -> TestResult {
    let s = cdev_setup(&layout().single, RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(detach(&s.dev.file), 0);
    expect_blocked_write("cdev detach", &s.dev, &s.a, IOVA_B, &s.b)?;
    // Attaching again restores the translation.
    check_eq!(attach(&s.dev.file, s.ioas), Ok(s.pt));
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    Ok(())
}

fn cdev_close_while_mapped() -> TestResult {
    let pins = foll_pins()?;
    let s = cdev_setup(&layout().single, RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    let CdevSetup {
        dev,
        ioas,
        pt,
        ictx,
        a,
        b,
        ..
    } = s;
    drop(dev);
    // The IOAS keeps its mappings; the automatic HWPT went with the device.
    check_eq!(ictx.destroy(pt), ENOENT);
    check_eq!(ictx.unmap(ioas, IOVA_A, LEN), Ok(LEN));
    check_eq!(ictx.destroy(ioas), 0);
    drop(ictx);
    drop((a, b));
    pins_balance(pins)?;
    Ok(())
}

fn cdev_bind_not_iommufd() -> TestResult {
    let file = open_cdev(&layout().single)?;
    let null = File::open("/dev/null").map_err(|e| e.to_string())?;
    check_eq!(bind(&file, null.as_raw_fd()), Err(EBADFD));
    // The device is still free to bind.
    let ictx = open_iommufd()?;
    check!(bind(&file, ictx.file.as_raw_fd()).is_ok());
    Ok(())
}

fn cdev_double_bind() -> TestResult {
    let ictx = open_iommufd()?;
    let file = open_cdev(&layout().single)?;
    check!(bind(&file, ictx.file.as_raw_fd()).is_ok());
    check_eq!(bind(&file, ictx.file.as_raw_fd()), Err(EINVAL));
    let other = open_iommufd()?;
    check_eq!(bind(&file, other.file.as_raw_fd()), Err(EINVAL));
    // A second file of the same device, bound while the first is: vfio
    // opens a cdev device once (vfio_df_open).
    let second = open_cdev(&layout().single)?;
    check_eq!(bind(&second, ictx.file.as_raw_fd()), Err(EINVAL));
    Ok(())
}

fn cdev_attach_missing() -> TestResult {
    let ictx = open_iommufd()?;
    let (dev, dev_id) = cdev_bind(&layout().single, &ictx)?;
    let ioas = ictx
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    check_eq!(attach(&dev.file, ioas + dev_id + 100), Err(ENOENT));
    check_eq!(attach(&dev.file, 0), Err(ENOENT));
    Ok(())
}

fn cdev_attach_wrong_kind() -> TestResult {
    let ictx = open_iommufd()?;
    let (dev, dev_id) = cdev_bind(&layout().single, &ictx)?;
    check_eq!(attach(&dev.file, dev_id), Err(EINVAL));
    Ok(())
}

fn cdev_pair_second_context() -> TestResult {
    let (f0, f1) = pair()?;
    let ctx_a = open_iommufd()?;
    let ctx_b = open_iommufd()?;
    let (_dev0, _) = cdev_bind(f0, &ctx_a)?;
    let file1 = open_cdev(f1)?;
    check_eq!(bind(&file1, ctx_b.file.as_raw_fd()), Err(EPERM));
    // The same context may bind it.
    check!(bind(&file1, ctx_a.file.as_raw_fd()).is_ok());
    Ok(())
}

fn cdev_pair_group_attach() -> TestResult {
    let (f0, f1) = pair()?;
    let s = cdev_setup(f0, RW)?;
    let (dev1, _) = cdev_bind(f1, &s.ictx)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    // fn1 is bound but not attached: its group already uses fn0's domain.
    check_eq!(
        round_trip(&dev1, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(attach(&dev1.file, s.ioas), Ok(s.pt));
    check_eq!(
        round_trip(&dev1, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    // fn0 detached: the group stays attached for fn1.
    check_eq!(detach(&s.dev.file), 0);
    check_eq!(
        round_trip(&dev1, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(detach(&dev1.file), 0);
    check_eq!(
        round_trip(&dev1, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Unchanged
    );
    Ok(())
}

fn cdev_two_groups_share_hwpt() -> TestResult {
    let (f0, _) = pair()?;
    let s = cdev_setup(&layout().single, RW)?;
    check!(f0.group != layout().single.group);
    let (dev0, _) = cdev_bind(f0, &s.ictx)?;
    check_eq!(attach(&dev0.file, s.ioas), Ok(s.pt));
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(
        round_trip(&dev0, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    Ok(())
}

/// IOMMU_GET_HW_INFO of `dev_id` into a VT-d buffer: the command as
/// answered, with the buffer.
fn hw_info(
    ictx: &Iommufd,
    dev_id: u32,
) -> Result<(uapi::iommu_hw_info, uapi::iommu_hw_info_vtd), i32> {
    let mut vtd = uapi::iommu_hw_info_vtd::default();
    let mut cmd = uapi::iommu_hw_info {
        size: size_of_u32::<uapi::iommu_hw_info>(),
        dev_id,
        data_len: size_of_u32::<uapi::iommu_hw_info_vtd>(),
        data_uptr: &mut vtd as *mut _ as u64,
        ..Default::default()
    };
    match sys::ioctl_struct(&ictx.file, uapi::IOMMU_GET_HW_INFO, &mut cmd) {
        0 => Ok((cmd, vtd)),
        e => Err(e),
    }
}

fn cdev_replace() -> TestResult {
    let s = cdev_setup(&layout().single, RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    // A second IOAS maps other buffers at the same IOVAs.
    let ioas2 = s
        .ictx
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let (a2, b2) = (Buf::new(), Buf::new());
    check_eq!(
        s.ictx.map(ioas2, a2.addr(), LEN, FIXED | RW, IOVA_A),
        Ok(IOVA_A)
    );
    check_eq!(
        s.ictx.map(ioas2, b2.addr(), LEN, FIXED | RW, IOVA_B),
        Ok(IOVA_B)
    );
    // Attaching an attached device replaces its domain.
    let pt2 = attach(&s.dev.file, ioas2).map_err(|e| format!("replace: errno {e}"))?;
    check!(pt2 != s.pt);
    s.b.fill(FILL);
    check_eq!(
        round_trip(&s.dev, IOVA_A, &a2, IOVA_B, &b2)?,
        Outcome::Copied
    );
    check!(s.b.contents().iter().all(|&x| x == FILL));
    // The old automatic HWPT went with its last device.
    check_eq!(s.ictx.destroy(s.pt), ENOENT);
    // The same IOAS again changes nothing.
    check_eq!(attach(&s.dev.file, ioas2), Ok(pt2));
    // Back to the first IOAS, through a new automatic HWPT.
    let pt3 = attach(&s.dev.file, s.ioas).map_err(|e| format!("replace back: errno {e}"))?;
    check!(pt3 != pt2);
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(s.ictx.destroy(pt2), ENOENT);
    Ok(())
}

fn cdev_hwpt_alloc() -> TestResult {
    let ictx = open_iommufd()?;
    let (dev, dev_id) = cdev_bind(&layout().single, &ictx)?;
    let ioas = ictx
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let (a, b) = (Buf::new(), Buf::new());
    check_eq!(
        ictx.map(ioas, a.addr(), LEN, FIXED | RW, IOVA_A),
        Ok(IOVA_A)
    );
    check_eq!(
        ictx.map(ioas, b.addr(), LEN, FIXED | RW, IOVA_B),
        Ok(IOVA_B)
    );
    // The emulated VT-d cannot track dirty pages; unknown flags; bad IDs.
    check_eq!(
        ictx.hwpt_alloc(dev_id, ioas, uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None),
        Err(EOPNOTSUPP)
    );
    check_eq!(
        ictx.hwpt_alloc(dev_id, ioas, 1 << 31, None),
        Err(EOPNOTSUPP)
    );
    check_eq!(ictx.hwpt_alloc(dev_id, 0xfff, 0, None), Err(EINVAL));
    check_eq!(ictx.hwpt_alloc(0xfff, ioas, 0, None), Err(ENOENT));
    check_eq!(ictx.hwpt_alloc(ioas, ioas, 0, None), Err(ENOENT));
    let hwpt = ictx
        .hwpt_alloc(dev_id, ioas, 0, None)
        .map_err(|e| format!("HWPT_ALLOC: errno {e}"))?;
    check_eq!(attach(&dev.file, hwpt), Ok(hwpt));
    check_eq!(round_trip(&dev, IOVA_A, &a, IOVA_B, &b)?, Outcome::Copied);
    // In use, neither goes.
    check_eq!(ictx.destroy(hwpt), EBUSY);
    check_eq!(ictx.destroy(ioas), EBUSY);
    check_eq!(detach(&dev.file), 0);
    check_eq!(ictx.destroy(hwpt), 0);
    check_eq!(ictx.destroy(ioas), 0);
    Ok(())
}

fn cdev_hw_info() -> TestResult {
    let ictx = open_iommufd()?;
    let (_dev, dev_id) = cdev_bind(&layout().single, &ictx)?;
    let (cmd, vtd) = hw_info(&ictx, dev_id).map_err(|e| format!("GET_HW_INFO: errno {e}"))?;
    // SAFETY: The kernel wrote the output member of the union.
    let kind = unsafe { cmd.__bindgen_anon_1.out_data_type };
    check_eq!(kind, uapi::IOMMU_HW_INFO_TYPE_INTEL_VTD);
    check_eq!(cmd.data_len, size_of_u32::<uapi::iommu_hw_info_vtd>());
    check!(vtd.cap_reg != 0 && vtd.ecap_reg != 0);
    // edu has no ATS and no PASID.
    check_eq!(
        cmd.out_capabilities,
        u64::from(uapi::IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)
    );
    check_eq!(cmd.out_max_pasid_log2, 0);
    let ioas = ictx
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    check_eq!(hw_info(&ictx, ioas).err(), Some(ENOENT));
    check_eq!(hw_info(&ictx, 0xfff).err(), Some(ENOENT));
    Ok(())
}

/// The MSI window of the emulated VT-d.
const MSI_WINDOW: u64 = 0xfee0_0000;

fn cdev_msi_window_reserved() -> TestResult {
    let ictx = open_iommufd()?;
    let (dev, _) = cdev_bind(&layout().single, &ictx)?;
    let ioas = ictx
        .ioas_alloc()
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let a = Buf::new();
    // A mapping in the window keeps the device out.
    check_eq!(
        ictx.map(ioas, a.addr(), LEN, FIXED | RW, MSI_WINDOW),
        Ok(MSI_WINDOW)
    );
    check_eq!(attach(&dev.file, ioas), Err(EADDRINUSE));
    check_eq!(ictx.unmap(ioas, MSI_WINDOW, LEN), Ok(LEN));
    // Attached, the window is reserved; detached, it is free again.
    check!(attach(&dev.file, ioas).is_ok());
    check_eq!(
        ictx.map(ioas, a.addr(), LEN, FIXED | RW, MSI_WINDOW),
        Err(EINVAL)
    );
    check_eq!(detach(&dev.file), 0);
    check_eq!(
        ictx.map(ioas, a.addr(), LEN, FIXED | RW, MSI_WINDOW),
        Ok(MSI_WINDOW)
    );
    Ok(())
}

fn layout_check() -> TestResult {
    let l = layout();
    check_eq!(group_size(l.single.group)?, 1);
    let (f0, f1) = pair()?;
    check_eq!(f0.group, f1.group);
    check_eq!(group_size(f0.group)?, 2);
    check!(f0.group != l.single.group);
    Ok(())
}

// ---- group: the legacy container flow -----------------------------------

/// A group set to the container node, type1v2, A (read-write) and B
/// (`b_flags`, VFIO_DMA_MAP_FLAG_*) mapped, and the device open.
struct GroupSetup {
    dev: Device,
    group: File,
    container: Iommufd,
    a: Buf,
    b: Buf,
}

fn open_group(edu: &Edu) -> Result<File, String> {
    let path = format!("/dev/vfio/{}", edu.group);
    let group = sys::open_dev(&path).map_err(|e| format!("open {path}: {e}"))?;
    let mut status = uapi::vfio_group_status {
        argsz: size_of_u32::<uapi::vfio_group_status>(),
        flags: 0,
    };
    match sys::ioctl_struct(&group, VFIO_GROUP_GET_STATUS, &mut status) {
        0 if status.flags & uapi::VFIO_GROUP_FLAGS_VIABLE != 0 => Ok(group),
        0 => Err(format!("{path}: not viable (flags {:#x})", status.flags)),
        e => Err(format!("VFIO_GROUP_GET_STATUS: errno {e}")),
    }
}

fn set_container(group: &File, fd: i32) -> i32 {
    let mut fd = fd;
    sys::ioctl_struct(group, VFIO_GROUP_SET_CONTAINER, &mut fd)
}

fn group_device(group: &File, edu: &Edu) -> Result<Device, String> {
    use std::os::fd::FromRawFd;
    let name = std::ffi::CString::new(edu.bdf.as_str()).map_err(|e| e.to_string())?;
    let fd = sys::ioctl_value(group, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as u64)
        .map_err(|e| format!("VFIO_GROUP_GET_DEVICE_FD: errno {e}"))?;
    // SAFETY: A new descriptor the kernel installed for us.
    Device::new(unsafe { File::from_raw_fd(fd) })
}

const DMA_RW: u32 = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;

fn group_setup(edu: &Edu, b_flags: u32) -> Result<GroupSetup, String> {
    let group = open_group(edu)?;
    let container = Iommufd::open_path(&cfg().container)?;
    match set_container(&group, container.file.as_raw_fd()) {
        0 => {}
        e => return Err(format!("VFIO_GROUP_SET_CONTAINER: errno {e}")),
    }
    container
        .vfio_value(uapi::VFIO_SET_IOMMU, uapi::VFIO_TYPE1v2_IOMMU.into())
        .map_err(|e| format!("VFIO_SET_IOMMU: errno {e}"))?;
    let (a, b) = (Buf::new(), Buf::new());
    match container.vfio_map(DMA_RW, a.addr(), IOVA_A, LEN) {
        0 => {}
        e => return Err(format!("VFIO_IOMMU_MAP_DMA A: errno {e}")),
    }
    match container.vfio_map(b_flags, b.addr(), IOVA_B, LEN) {
        0 => {}
        e => return Err(format!("VFIO_IOMMU_MAP_DMA B: errno {e}")),
    }
    let dev = group_device(&group, edu)?;
    Ok(GroupSetup {
        dev,
        group,
        container,
        a,
        b,
    })
}

fn group_dma() -> TestResult {
    let s = group_setup(&layout().single, DMA_RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    Ok(())
}

fn group_unmap_fault() -> TestResult {
    let s = group_setup(&layout().single, DMA_RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    check_eq!(s.container.vfio_unmap(0, IOVA_B, LEN), (0, LEN));
    expect_blocked_write_fault("group unmap", &s.dev, &s.a, IOVA_B, &s.b)
}

fn group_readonly() -> TestResult {
    let s = group_setup(&layout().single, uapi::VFIO_DMA_MAP_FLAG_READ)?;
    expect_blocked_write("group read-only", &s.dev, &s.a, IOVA_B, &s.b)
}

fn group_close_while_mapped() -> TestResult {
    let pins = foll_pins()?;
    let s = group_setup(&layout().single, DMA_RW)?;
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    let GroupSetup {
        dev,
        group,
        container,
        a,
        b,
    } = s;
    drop(dev);
    // The container keeps its mappings while the group is set.
    check_eq!(container.vfio_unmap(0, IOVA_B, LEN), (0, LEN));
    check_eq!(
        sys::ioctl_value(&group, VFIO_GROUP_UNSET_CONTAINER, 0),
        Ok(0)
    );
    drop(group);
    drop(container);
    drop((a, b));
    pins_balance(pins)?;
    Ok(())
}

fn group_set_container_errors() -> TestResult {
    let group = open_group(&layout().single)?;
    let null = File::open("/dev/null").map_err(|e| e.to_string())?;
    check_eq!(set_container(&group, null.as_raw_fd()), EBADFD);
    check_eq!(set_container(&group, -1), EBADF);
    let container = Iommufd::open_path(&cfg().container)?;
    check_eq!(set_container(&group, container.file.as_raw_fd()), 0);
    check_eq!(set_container(&group, container.file.as_raw_fd()), EINVAL);
    Ok(())
}

/// The dirty-tracking ioctls' page size: the smallest IO page (VT-d's
/// 4 KiB).
const DIRTY_PGSIZE: u64 = 4096;
/// Bitmap words for pages from IOVA_A to the end of C's two pages.
const DIRTY_WORDS: usize = 9;

/// GET_BITMAP of `[IOVA_A, IOVA_C + 2 pages)` in 4 KiB pages: the words.
fn dirty_bitmap_a_to_c(container: &Iommufd) -> Result<[u64; DIRTY_WORDS], i32> {
    let mut words = [0u64; DIRTY_WORDS];
    let size = IOVA_C + 2 * LEN - IOVA_A;
    match container.vfio_dirty_bitmap(IOVA_A, size, DIRTY_PGSIZE, &mut words) {
        0 => Ok(words),
        e => Err(e),
    }
}

/// The legacy migration flow on real hardware: START, a device write,
/// GET_BITMAP, UNMAP_DMA with a bitmap, STOP, and their errnos, where the
/// container has type1's MIGRATION capability (type1 and iommufd_rs; C
/// iommufd's compat layer has no dirty tracking: skipped). VT-d here
/// tracks no dirty pages, so every mapped page is reported dirty (type1's
/// IOMMU-backed group); holes never are.
fn group_dirty_tracking() -> TestResult {
    let s = group_setup(&layout().single, DMA_RW)?;
    let caps = s
        .container
        .vfio_info_caps()
        .map_err(|e| format!("VFIO_IOMMU_GET_INFO: errno {e}"))?;
    let migration = uapi::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION as u16;
    let Some(cap) = caps.iter().find(|c| c.0 == migration) else {
        return Err("SKIP: the container has no MIGRATION capability".into());
    };
    let u64_at = |b: &[u8], at: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        u64::from_ne_bytes(v)
    };
    // type1's chain starts with it: no flags, 4 KiB pages, 256 MiB.
    check_eq!(caps[0].0, migration);
    check_eq!((cap.1, cap.2.len()), (1, 32));
    check_eq!(u64_at(&cap.2, 8), 0);
    check_eq!(u64_at(&cap.2, 16), DIRTY_PGSIZE);
    check_eq!(u64_at(&cap.2, 24), 256 << 20);
    let c = PageBuf::new(2);
    check_eq!(s.container.vfio_map(DMA_RW, c.addr(), IOVA_C, 2 * LEN), 0);
    let start = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
    let stop = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
    let get = uapi::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    let get_dirty = uapi::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    // Not started: GET_BITMAP and UNMAP_DMA with a bitmap are EINVAL, and
    // nothing is unmapped.
    check_eq!(dirty_bitmap_a_to_c(&s.container), Err(EINVAL));
    let mut one = [0u64; 1];
    check_eq!(
        s.container
            .vfio_unmap_dirty(IOVA_B, LEN, DIRTY_PGSIZE, &mut one),
        (EINVAL, LEN)
    );
    // One flag at a time, known flags, a whole header.
    check_eq!(s.container.vfio_dirty_pages(8, start | stop, &[]), EINVAL);
    check_eq!(s.container.vfio_dirty_pages(8, 8, &[]), EINVAL);
    check_eq!(s.container.vfio_dirty_pages(8, 0, &[]), EINVAL);
    check_eq!(s.container.vfio_dirty_pages(7, start, &[]), EINVAL);
    check_eq!(s.container.vfio_dirty_pages(8, start, &[]), 0);
    check_eq!(s.container.vfio_dirty_pages(8, start, &[]), 0);
    // The device writes B.
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    // Every mapped page dirty (A, B, C's two), at every GET_BITMAP.
    let all = [1, 0, 0, 0, 1, 0, 0, 0, 3];
    check_eq!(dirty_bitmap_a_to_c(&s.container), Ok(all));
    check_eq!(dirty_bitmap_a_to_c(&s.container), Ok(all));
    // GET_BITMAP's errnos: (iova, size, pgsize, bitmap bytes, address).
    let mut words = [0u64; DIRTY_WORDS];
    let good = words.as_mut_ptr() as u64;
    let whole = IOVA_C + 2 * LEN - IOVA_A;
    let bytes = (DIRTY_WORDS * 8) as u64;
    let g = |argsz: u32, d: [u64; 5]| s.container.vfio_dirty_pages(argsz, get, &d);
    check_eq!(g(47, [IOVA_A, whole, DIRTY_PGSIZE, bytes, good]), EINVAL);
    check_eq!(g(48, [IOVA_A, 0, DIRTY_PGSIZE, bytes, good]), EINVAL);
    check_eq!(
        g(48, [u64::MAX - 0xfff, 2 * LEN, DIRTY_PGSIZE, 8, good]),
        EOVERFLOW
    );
    check_eq!(
        g(
            48,
            [IOVA_A, whole, DIRTY_PGSIZE, bytes, 0xffff_8000_0000_0000]
        ),
        EINVAL
    );
    check_eq!(
        g(48, [IOVA_A, whole, DIRTY_PGSIZE, bytes - 8, good]),
        EINVAL
    );
    check_eq!(
        g(48, [IOVA_A, whole, 2 * DIRTY_PGSIZE, bytes, good]),
        EINVAL
    );
    check_eq!(g(48, [IOVA_A + 0x800, LEN, DIRTY_PGSIZE, 8, good]), EINVAL);
    check_eq!(g(48, [IOVA_C, LEN, DIRTY_PGSIZE, 8, good]), EINVAL);
    check_eq!(g(48, [IOVA_C + LEN, LEN, DIRTY_PGSIZE, 8, good]), EINVAL);
    check_eq!(g(48, [IOVA_A, LEN, DIRTY_PGSIZE, 8, 0x1000]), EFAULT);
    // UNMAP_DMA with a bitmap: its errnos, none unmapping anything.
    let un = |flags: u32, range: (u64, u64), b: (u64, u64, u64)| {
        s.container.vfio_unmap_bitmap(48, flags, range, b)
    };
    let b = (DIRTY_PGSIZE, 8, good);
    let all_flag = uapi::VFIO_DMA_UNMAP_FLAG_ALL;
    check_eq!(un(get_dirty | all_flag, (0, 0), b), (EINVAL, 0));
    check_eq!(
        s.container
            .vfio_unmap_bitmap(24, get_dirty, (IOVA_B, LEN), b),
        (EINVAL, LEN)
    );
    check_eq!(
        un(get_dirty, (IOVA_B, LEN), (2 * DIRTY_PGSIZE, 8, good)),
        (EINVAL, LEN)
    );
    check_eq!(un(get_dirty, (IOVA_C, LEN), b), (EINVAL, LEN));
    check_eq!(
        un(get_dirty, (IOVA_B, LEN), (DIRTY_PGSIZE, 8, 0x1000)),
        (EFAULT, LEN)
    );
    // The unmap: B's page reported dirty, then B is gone.
    check_eq!(
        s.container
            .vfio_unmap_dirty(IOVA_B, LEN, DIRTY_PGSIZE, &mut one),
        (0, LEN)
    );
    check_eq!(one, [1]);
    check_eq!(
        dirty_bitmap_a_to_c(&s.container),
        Ok([1, 0, 0, 0, 0, 0, 0, 0, 3])
    );
    expect_blocked_write("group dirty unmap", &s.dev, &s.a, IOVA_B, &s.b)?;
    check_eq!(s.container.vfio_dirty_pages(8, stop, &[]), 0);
    check_eq!(s.container.vfio_dirty_pages(8, stop, &[]), 0);
    check_eq!(dirty_bitmap_a_to_c(&s.container), Err(EINVAL));
    check_eq!(s.container.vfio_unmap(0, IOVA_C, 2 * LEN), (0, 2 * LEN));
    drop(c);
    Ok(())
}

// ---- mix: the legacy flow plus iommufd calls on the container ----------

fn compat_ioas(container: &Iommufd) -> Result<u32, String> {
    match container.vfio_ioas(uapi::IOMMU_VFIO_IOAS_GET, 0) {
        Ok(id) => Ok(id),
        Err(ENOTTY) => Err("SKIP: the container is not an iommufd".into()),
        Err(e) => Err(format!("IOMMU_VFIO_IOAS GET: errno {e}")),
    }
}

fn mix_dma() -> TestResult {
    let s = group_setup(&layout().single, DMA_RW)?;
    let ioas = compat_ioas(&s.container)?;
    check!(ioas != 0);
    let c = Buf::new();
    check_eq!(
        s.container.map(ioas, c.addr(), LEN, FIXED | RW, IOVA_C),
        Ok(IOVA_C)
    );
    // MAP_DMA source to an IOAS_MAP destination, and back.
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_C, &c)?,
        Outcome::Copied
    );
    check_eq!(
        round_trip(&s.dev, IOVA_C, &c, IOVA_B, &s.b)?,
        Outcome::Copied
    );
    Ok(())
}

fn mix_unmap_fault() -> TestResult {
    let s = group_setup(&layout().single, DMA_RW)?;
    let ioas = compat_ioas(&s.container)?;
    let c = Buf::new();
    check_eq!(
        s.container.map(ioas, c.addr(), LEN, FIXED | RW, IOVA_C),
        Ok(IOVA_C)
    );
    check_eq!(
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_C, &c)?,
        Outcome::Copied
    );
    check_eq!(s.container.unmap(ioas, IOVA_C, LEN), Ok(LEN));
    expect_blocked_write_fault("mix unmap", &s.dev, &s.a, IOVA_C, &c)?;
    // A MAP_DMA mapping is an IOAS area too: IOMMU_IOAS_UNMAP removes it.
    check_eq!(s.container.unmap(ioas, IOVA_B, LEN), Ok(LEN));
    expect_blocked_write("mix unmap of a MAP_DMA area", &s.dev, &s.a, IOVA_B, &s.b)
}

// ---- a client killed with everything set up ----------------------------

/// The child: sets up `what` (cdev or group), does one DMA, says "ready"
/// and waits to be killed.
fn child(what: &str) -> Result<(), String> {
    use std::io::Write;
    let edu = &layout().single;
    let outcome = match what {
        "cdev" => {
            let s = cdev_setup(edu, RW)?;
            let o = round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?;
            std::mem::forget(s);
            o
        }
        "group" => {
            let s = group_setup(edu, DMA_RW)?;
            let o = round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?;
            std::mem::forget(s);
            o
        }
        _ => return Err(format!("unknown child mode {what}")),
    };
    let mut out = io::stdout();
    let _ = writeln!(out, "ready {outcome:?}");
    let _ = out.flush();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A client SIGKILLed with its device bound, attached and mapped leaves no
/// pinned page and no module reference behind.
fn killed(what: &str) -> TestResult {
    use std::io::{BufRead, BufReader};
    let refcnt = module_refcnt()?;
    let pins = foll_pins()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let c = cfg();
    let mut child = std::process::Command::new(exe)
        .args(["--child", what, "--iommufd", &c.iommufd])
        .args(["--container", &c.container, "--module", &c.module])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut line = String::new();
    let read = out.read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.map_err(|e| e.to_string())?;
    check_eq!(line.trim(), "ready Copied");
    let pinned = pins_balance(pins)?;
    check!(pinned >= 2);
    check_eq!(module_refcnt()?, refcnt);
    // The device is free again.
    let edu = &layout().single;
    let outcome = if what == "cdev" {
        let s = cdev_setup(edu, RW)?;
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?
    } else {
        let s = group_setup(edu, DMA_RW)?;
        round_trip(&s.dev, IOVA_A, &s.a, IOVA_B, &s.b)?
    };
    check_eq!(outcome, Outcome::Copied);
    Ok(())
}

fn cdev_killed() -> TestResult {
    killed("cdev")
}

fn group_killed() -> TestResult {
    killed("group")
}

// ---- bench: IOAS map + unmap timed on the real IOMMU domain -----------

/// The 4 KiB line: a map and unmap of one present page at `IOVA_A`.
const BENCH_4K: &str = "real_map_unmap_4k";
/// The 1 GiB lines, one per kind of memory.
const BENCH_GIB: [(&str, AnonPages); 3] = [
    ("real_map_unmap_1g_4k_pages", AnonPages::Small),
    ("real_map_unmap_1g_thp", AnonPages::Thp),
    ("real_map_unmap_1g_hugetlb", AnonPages::Hugetlb),
];
/// Timed map + unmap pairs per line.
const BENCH_4K_PAIRS: u32 = 2000;
const BENCH_GIB_PAIRS: u32 = 1;
const GIB: u64 = 1 << 30;
/// Where the 1 GiB mappings start: 2 MiB aligned, so that huge pages can
/// be mapped as 2 MiB IO pages, and low enough that edu's 28-bit DMA
/// addresses reach into them.
const IOVA_GIB: u64 = 0x20_0000;
/// The page of a 1 GiB mapping that the device reads and writes back
/// after the timed pairs: 128 MiB in, below edu's 256 MiB limit.
const GIB_PROBE: u64 = 0x800_0000;

/// The device bound through its cdev and attached to a fresh IOAS, so
/// that the IOAS's mappings go into an automatic HWPT: a paging domain of
/// the IOMMU the device sits behind. Fields drop in order: device first.
struct BenchDomain {
    dev: Device,
    ioas: u32,
    ictx: Iommufd,
}

fn bench_domain(edu: &Edu) -> Result<BenchDomain, String> {
    let (ictx, dev, dev_id, ioas, pt) = cdev_on_new_ioas(edu)?;
    if pt == ioas {
        return Err(format!("attached to the IOAS {ioas} itself, not to a HWPT"));
    }
    // The domain is VT-d's: the emulated Intel IOMMU translates edu's DMA.
    let (cmd, _) = hw_info(&ictx, dev_id).map_err(|e| format!("GET_HW_INFO: errno {e}"))?;
    // SAFETY: The kernel wrote the output member of the union.
    let kind = unsafe { cmd.__bindgen_anon_1.out_data_type };
    if kind != uapi::IOMMU_HW_INFO_TYPE_INTEL_VTD {
        return Err(format!("GET_HW_INFO: IOMMU type {kind}, not Intel VT-d"));
    }
    println!(
        "# {} attached to HWPT {pt} (IOAS {ioas}), Intel VT-d",
        edu.bdf
    );
    Ok(BenchDomain { dev, ioas, ictx })
}

impl BenchDomain {
    fn map(&self, va: u64, len: u64, iova: u64) -> Result<(), String> {
        match self.ictx.map(self.ioas, va, len, FIXED | RW, iova) {
            Ok(got) if got == iova => Ok(()),
            Ok(got) => Err(format!("IOAS_MAP at {iova:#x} answered IOVA {got:#x}")),
            Err(e) => Err(format!(
                "IOAS_MAP of {len:#x} bytes at {iova:#x}: errno {e}"
            )),
        }
    }

    fn unmap(&self, len: u64, iova: u64) -> Result<(), String> {
        match self.ictx.unmap(self.ioas, iova, len) {
            Ok(got) if got == len => Ok(()),
            Ok(got) => Err(format!(
                "IOAS_UNMAP at {iova:#x}: {got:#x} of {len:#x} bytes"
            )),
            Err(e) => Err(format!(
                "IOAS_UNMAP of {len:#x} bytes at {iova:#x}: errno {e}"
            )),
        }
    }

    /// `pairs` maps of `[va, va + len)` at `iova`, each unmapped at once:
    /// the microseconds per pair. Only the loop is timed.
    fn time_pairs(&self, pairs: u32, va: u64, len: u64, iova: u64) -> Result<f64, String> {
        let start = Instant::now();
        for _ in 0..pairs {
            self.map(va, len, iova)?;
            self.unmap(len, iova)?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(pairs))
    }

    /// Maps `[va, va + len)` at `iova` once more and has the device read
    /// the page at `probe` bytes in and write it back: the bytes must come
    /// back through the domain. Unmaps again either way.
    ///
    /// # Safety
    ///
    /// `[va, va + len)` is writable memory of this process that nothing
    /// else in it uses during the call, and `probe + LEN <= len`.
    unsafe fn check_dma(&self, va: u64, len: u64, iova: u64, probe: u64) -> Result<(), String> {
        self.map(va, len, iova)?;
        // SAFETY: Within `[va, va + len)`, as the caller vouches.
        let outcome = unsafe { page_round_trip(&self.dev, iova + probe, va + probe) };
        let unmapped = self.unmap(len, iova);
        outcome.and(unmapped)
    }
}

/// RAM -> device from the page at `iova` (at `va` in this process), then,
/// with the page overwritten, device -> RAM to the same IOVA: the page must
/// hold what it held before. A fresh pattern each time, so a stale device
/// buffer cannot pass.
///
/// # Safety
///
/// As for [`fill_at`] at `va`.
unsafe fn page_round_trip(dev: &Device, iova: u64, va: u64) -> Result<(), String> {
    // SAFETY: The page the caller vouches for.
    let want = unsafe {
        fill_pattern_at(va, SEED.fetch_add(0x1234_5678_9abc_def1, Ordering::Relaxed));
        contents_at(va)
    };
    dev.dma(iova, false)?;
    // SAFETY: As above.
    unsafe { fill_at(va, FILL) };
    dev.dma(iova, true)?;
    // SAFETY: As above.
    let got = unsafe { contents_at(va) };
    if got == want {
        Ok(())
    } else if got.iter().all(|&b| b == FILL) {
        Err(format!("edu DMA to IOVA {iova:#x} did not reach the page"))
    } else {
        Err(format!(
            "edu DMA through IOVA {iova:#x}: the page came back changed"
        ))
    }
}

/// 1 GiB of anonymous memory of one kind, every page touched; unmapped on
/// drop.
struct Gib(u64);

impl Gib {
    fn new(pages: AnonPages) -> Result<Self, String> {
        let va = sys::mmap_anon(GIB, pages)
            .ok_or_else(|| format!("mmap of 1 GiB ({pages:?}) refused"))?;
        sys::touch(va, GIB);
        Ok(Self(va))
    }
}

impl Drop for Gib {
    fn drop(&mut self) {
        sys::munmap_anon(self.0, GIB);
    }
}

fn bench_4k(d: &BenchDomain) -> Result<f64, String> {
    let page = Buf::new();
    let us = d.time_pairs(BENCH_4K_PAIRS, page.addr(), LEN, IOVA_A)?;
    // SAFETY: `page` is this process's page, used by nothing else.
    unsafe { d.check_dma(page.addr(), LEN, IOVA_A, 0) }?;
    Ok(us)
}

fn bench_gib(d: &BenchDomain, pages: AnonPages) -> Result<f64, String> {
    let mem = Gib::new(pages)?;
    if pages == AnonPages::Thp {
        // How much of it the kernel gave as huge pages, for the record
        // (the whole guest's count: smaps needs PROC_PAGE_MONITOR).
        match read_number("/proc/meminfo", Some("AnonHugePages:")) {
            Ok(kb) => println!("# THP: {} MiB of anonymous memory in huge pages", kb >> 10),
            Err(e) => println!("# THP: {e}"),
        }
    }
    let us = d.time_pairs(BENCH_GIB_PAIRS, mem.0, GIB, IOVA_GIB)?;
    // SAFETY: `mem` is this process's, used by nothing else, and the probe
    // page lies within it.
    unsafe { d.check_dma(mem.0, GIB, IOVA_GIB, GIB_PROBE) }?;
    Ok(us)
}

fn bench_line(imp: &str, name: &str, result: Result<f64, String>) -> bool {
    match result {
        Ok(us) => {
            println!("raw impl={imp} name={name} us={us:.3}");
            true
        }
        Err(why) => {
            println!("raw impl={imp} name={name} error={why}");
            false
        }
    }
}

/// `bench IMPL`: one `raw` line per workload, as `make bench` prints them;
/// true if every line has a time.
fn bench(imp: &str) -> bool {
    let names = std::iter::once(BENCH_4K).chain(BENCH_GIB.iter().map(|(n, _)| *n));
    let setup = find_layout(true).and_then(|l| bench_domain(&l.single));
    let d = match setup {
        Ok(d) => d,
        Err(why) => {
            for name in names {
                bench_line(imp, name, Err(format!("setup: {why}")));
            }
            return false;
        }
    };
    let mut ok = bench_line(imp, BENCH_4K, bench_4k(&d));
    for (name, pages) in BENCH_GIB {
        ok &= bench_line(imp, name, bench_gib(&d, pages));
    }
    ok
}

/// `profile IMPL`: the bench's pairs, each workload in one `tbprof`
/// window (see `iommufd_profile`), followed by its `profile` line for
/// `scripts/profile.py`; a tenth of the 4 KiB pairs, one 1 GiB pair.
fn profile(imp: &str) -> bool {
    let d = match find_layout(true).and_then(|l| bench_domain(&l.single)) {
        Ok(d) => d,
        Err(why) => {
            println!("# iommufd_vfio_edu profile {imp}: setup: {why}");
            return false;
        }
    };
    let window = |name: &str, pairs: u32, va: u64, len: u64, iova: u64| {
        bench::window_marker();
        let result = (0..pairs).try_for_each(|_| {
            d.map(va, len, iova)?;
            d.unmap(len, iova)
        });
        bench::window_marker();
        match &result {
            Ok(()) => println!("profile impl={imp} name={name} iterations={pairs}"),
            Err(why) => {
                println!("profile impl={imp} name={name} failed");
                println!("# {name}: {why}");
            }
        }
        result.is_ok()
    };
    let page = Buf::new();
    let mut ok = window(BENCH_4K, BENCH_4K_PAIRS / 10, page.addr(), LEN, IOVA_A);
    for (name, pages) in BENCH_GIB {
        ok &= match Gib::new(pages) {
            Ok(mem) => window(name, BENCH_GIB_PAIRS, mem.0, GIB, IOVA_GIB),
            Err(why) => {
                println!("profile impl={imp} name={name} failed");
                println!("# {name}: {why}");
                false
            }
        };
    }
    ok
}

fn tests(mode: &str) -> Option<Vec<Test>> {
    macro_rules! t {
        ($name:expr, $f:ident) => {
            Test {
                name: $name,
                run: $f,
            }
        };
    }
    Some(match mode {
        "cdev" => vec![
            t!(
                "layout: one edu alone in its group, two functions sharing another",
                layout_check
            ),
            t!(
                "cdev: bind, attach to an IOAS, DMA RAM->device->RAM",
                cdev_dma
            ),
            t!(
                "cdev: unmapped destination blocks the write, DMAR fault logged",
                cdev_unmap_fault
            ),
            t!(
                "cdev: read-only destination blocks the write",
                cdev_readonly
            ),
            t!(
                "cdev: detach blocks DMA, attach again restores it",
                cdev_detach
            ),
            t!(
                "cdev: device closed while its IOAS is mapped, then all closes",
                cdev_close_while_mapped
            ),
            t!(
                "cdev: attach of an attached device replaces its domain atomically",
                cdev_replace
            ),
            t!(
                "cdev: HWPT_ALLOC of a paging HWPT, attach, destroy busy while attached",
                cdev_hwpt_alloc
            ),
            t!("cdev: GET_HW_INFO reports VT-d data", cdev_hw_info),
            t!(
                "cdev: the MSI window is reserved while attached",
                cdev_msi_window_reserved
            ),
            t!(
                "cdev: killed client leaves no pins and the module refcount",
                cdev_killed
            ),
            t!(
                "cdev: BIND_IOMMUFD with /dev/null fails EBADFD",
                cdev_bind_not_iommufd
            ),
            t!(
                "cdev: second BIND_IOMMUFD fails EINVAL, and on a second file",
                cdev_double_bind
            ),
            t!(
                "cdev: ATTACH_IOMMUFD_PT to a missing ID fails ENOENT",
                cdev_attach_missing
            ),
            t!(
                "cdev: ATTACH_IOMMUFD_PT to the device's own ID fails EINVAL",
                cdev_attach_wrong_kind
            ),
            t!(
                "cdev pair: fn1 bound by a second context fails EPERM",
                cdev_pair_second_context
            ),
            t!(
                "cdev pair: fn0's attach covers the group, fn1 gets the same HWPT",
                cdev_pair_group_attach
            ),
            t!(
                "cdev: devices of two groups on one IOAS share the automatic HWPT",
                cdev_two_groups_share_hwpt
            ),
        ],
        "group" => vec![
            t!(
                "group: SET_CONTAINER, TYPE1v2, MAP_DMA, DMA RAM->device->RAM",
                group_dma
            ),
            t!(
                "group: UNMAP_DMA of the destination blocks the write, DMAR fault logged",
                group_unmap_fault
            ),
            t!(
                "group: read-only MAP_DMA destination blocks the write",
                group_readonly
            ),
            t!(
                "group: device closed while the container is mapped, then all closes",
                group_close_while_mapped
            ),
            t!(
                "group: killed client leaves no pins and the module refcount",
                group_killed
            ),
            t!(
                "group: SET_CONTAINER errors (EBADFD, EBADF, EINVAL twice)",
                group_set_container_errors
            ),
            t!(
                "group: dirty tracking: START, device write, GET_BITMAP all mapped, UNMAP_DMA with bitmap, STOP, errnos",
                group_dirty_tracking
            ),
        ],
        "mix" => vec![
            t!(
                "mix: MAP_DMA and IOMMU_IOAS_MAP in the compat IOAS, DMA both ways",
                mix_dma
            ),
            t!(
                "mix: IOMMU_IOAS_UNMAP blocks the write, DMAR fault logged",
                mix_unmap_fault
            ),
        ],
        _ => return None,
    })
}

fn usage() -> ! {
    eprintln!(
        "usage: iommufd_vfio_edu cdev|group|mix [--iommufd NODE] [--container NODE] [--module NAME]\n       iommufd_vfio_edu bench|profile c|rust [--iommufd NODE]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut child_mode = None;
    let mut mode = None;
    let mut bench_impl = None;
    let mut config = Config {
        mode: String::new(),
        iommufd: "/dev/iommu".into(),
        container: "/dev/vfio/vfio".into(),
        module: "iommufd".into(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--iommufd" => config.iommufd = value(),
            "--container" => config.container = value(),
            "--module" => config.module = value(),
            "--child" => child_mode = Some(value()),
            m if mode.is_none() && !m.starts_with('-') => mode = Some(m.to_string()),
            m if matches!(mode.as_deref(), Some("bench" | "profile"))
                && bench_impl.is_none()
                && !m.starts_with('-') =>
            {
                bench_impl = Some(m.to_string())
            }
            _ => usage(),
        }
    }
    if let Some(what) = child_mode {
        let _ = CONFIG.set(config);
        match find_layout(true).and_then(|l| {
            let _ = LAYOUT.set(l);
            child(&what)
        }) {
            Ok(()) => std::process::exit(0),
            Err(why) => {
                println!("{why}");
                std::process::exit(1);
            }
        }
    }
    config.mode = mode.unwrap_or_else(|| usage());
    if matches!(config.mode.as_str(), "bench" | "profile") {
        let imp = match bench_impl.as_deref() {
            Some(imp @ ("c" | "rust")) => imp.to_string(),
            _ => usage(),
        };
        let mode = config.mode.clone();
        println!(
            "# iommufd_vfio_edu {mode} {imp}: iommufd {}",
            config.iommufd
        );
        let _ = CONFIG.set(config);
        let ok = if mode == "bench" {
            bench(&imp)
        } else {
            profile(&imp)
        };
        std::process::exit(i32::from(!ok));
    }
    let Some(tests) = tests(&config.mode) else {
        usage()
    };
    println!(
        "# iommufd_vfio_edu {}: iommufd {}, container {}, module {}",
        config.mode, config.iommufd, config.container, config.module
    );
    let _ = CONFIG.set(config);
    match find_layout(false) {
        Ok(l) => {
            let _ = LAYOUT.set(l);
        }
        Err(why) => {
            println!("KTAP version 1");
            println!("1..1");
            println!("# setup: {why}");
            println!("not ok 1 setup: find and bind the edu devices");
            println!("# real devices: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
    let failed = run("real devices", &tests);
    std::process::exit(i32::from(failed != 0));
}
