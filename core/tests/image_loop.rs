//! Loop device tests. They need root and `/dev/loop-control`; without them they are skipped
//! (or fail when `SYSEXT_REQUIRE_ROOT_TESTS=1`). No mounts are made. Every device a test
//! attaches is detached again, and only devices backed by the test's own temporary files
//! are ever looked at.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sysext::testing::sys::loopdev::{
    backing_file, devices_backed_by, LoopDevice, LoopOptions, LO_FLAGS_AUTOCLEAR,
    LO_FLAGS_READ_ONLY,
};

fn root_available() -> bool {
    let ok = rustix::process::geteuid().is_root() && Path::new("/dev/loop-control").exists();
    if ok {
        return true;
    }
    if std::env::var("SYSEXT_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("SYSEXT_REQUIRE_ROOT_TESTS=1 but not root or no /dev/loop-control");
    }
    eprintln!("skipping: needs root and /dev/loop-control");
    false
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sysext-{tag}-{}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn write_file(path: &Path, data: &[u8]) -> fs::File {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::File::open(path).unwrap()
}

/// Waits until no loop device is backed by `path` (teardown can lag behind the close).
fn wait_released(path: &Path) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = devices_backed_by(path);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sysfs(number: u32, attr: &str) -> String {
    fs::read_to_string(format!("/sys/block/loop{number}/{attr}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn image_loop_attach_read_only_with_offset() {
    if !root_available() {
        return;
    }
    let dir = TempDir::new("loop-attach");
    let path = dir.0.join("backing.img");
    let data = pattern(1 << 20);
    let file = write_file(&path, &data);

    let dev = LoopDevice::attach(&file, 8192, 65536, &LoopOptions::default()).unwrap();
    let n = dev.number();
    assert_eq!(dev.path(), Path::new(&format!("/dev/loop{n}")));
    assert_eq!(backing_file(n).as_deref(), Some(path.as_path()));
    assert_eq!(devices_backed_by(&path), vec![n]);
    assert_eq!(sysfs(n, "ro"), "1");
    assert_eq!(sysfs(n, "size"), "128"); // 64 KiB in 512-byte sectors
    assert_eq!(sysfs(n, "loop/offset"), "8192");
    assert_eq!(sysfs(n, "loop/sizelimit"), "65536");
    assert_eq!(sysfs(n, "loop/autoclear"), "1");

    let st = dev.status().unwrap();
    assert_eq!((st.number, st.offset, st.size_limit), (n, 8192, 65536));
    assert_eq!(
        st.flags & (LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR),
        LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
    );
    // The informational name (at most 63 bytes) is the start of the path.
    assert!(
        !st.file_name.is_empty() && path.to_str().unwrap().starts_with(&st.file_name),
        "{}",
        st.file_name
    );
    let devnum = dev.devnum().unwrap();
    assert_eq!(rustix::fs::major(devnum), 7);

    // The device shows the window of the file.
    let blk = fs::File::open(dev.path()).unwrap();
    let mut buf = vec![0u8; 65536];
    blk.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..], &data[8192..8192 + 65536]);
    // And refuses writes.
    let w = fs::OpenOptions::new().write(true).open(dev.path());
    assert!(w.is_err() || w.unwrap().write_at(b"x", 0).is_err());
    drop(blk);

    dev.detach().unwrap();
    assert_eq!(wait_released(&path), Vec::<u32>::new());
}

#[test]
fn image_loop_drop_detaches_and_options() {
    if !root_available() {
        return;
    }
    let dir = TempDir::new("loop-opts");
    let path = dir.0.join("b.img");
    let file = write_file(&path, &pattern(256 * 1024));

    {
        // Whole file, 4 KiB logical blocks, direct I/O requested (dropped if unsupported).
        let opts = LoopOptions {
            direct_io: true,
            block_size: 4096,
            ..LoopOptions::default()
        };
        let dev = LoopDevice::attach(&file, 0, 0, &opts).unwrap();
        let n = dev.number();
        assert_eq!(sysfs(n, "queue/logical_block_size"), "4096");
        assert_eq!(sysfs(n, "size"), "512");
        assert_eq!(backing_file(n).as_deref(), Some(path.as_path()));
        // Dropped without detach().
    }
    assert_eq!(wait_released(&path), Vec::<u32>::new());

    {
        // Writable, no autoclear: still detached by drop.
        let rw = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let opts = LoopOptions {
            read_only: false,
            autoclear: false,
            ..LoopOptions::default()
        };
        let dev = LoopDevice::attach(&rw, 4096, 4096, &opts).unwrap();
        assert_eq!(sysfs(dev.number(), "ro"), "0");
        assert_eq!(sysfs(dev.number(), "loop/autoclear"), "0");
    }
    assert_eq!(wait_released(&path), Vec::<u32>::new());
}

#[test]
fn image_loop_attach_detach_1000_times() {
    if !root_available() {
        return;
    }
    let dir = TempDir::new("loop-cycle");
    let path = dir.0.join("cycle.img");
    let file = write_file(&path, &pattern(64 * 1024));
    let start = Instant::now();
    for i in 0..1000u64 {
        let offset = (i % 8) * 4096;
        let dev = LoopDevice::attach(&file, offset, 4096, &LoopOptions::default())
            .unwrap_or_else(|e| panic!("attach #{i}: {e}"));
        if i % 100 == 0 {
            assert_eq!(backing_file(dev.number()).as_deref(), Some(path.as_path()));
            let blk = fs::File::open(dev.path()).unwrap();
            let mut b = [0u8; 16];
            blk.read_exact_at(&mut b, 0).unwrap();
            assert_eq!(
                &b[..],
                &pattern(64 * 1024)[offset as usize..offset as usize + 16]
            );
        }
        dev.detach().unwrap_or_else(|e| panic!("detach #{i}: {e}"));
    }
    eprintln!("1000 attach/detach cycles took {:?}", start.elapsed());
    assert_eq!(wait_released(&path), Vec::<u32>::new());
}

#[test]
fn image_loop_concurrent_attach_races() {
    if !root_available() {
        return;
    }
    // Threads racing for the same free device: the losers see EBUSY and move on.
    let dir = TempDir::new("loop-race");
    let path = dir.0.join("race.img");
    let file = write_file(&path, &pattern(64 * 1024));
    std::thread::scope(|s| {
        for t in 0..6 {
            let file = &file;
            let path = &path;
            s.spawn(move || {
                for i in 0..150 {
                    let dev = LoopDevice::attach(file, 4096, 8192, &LoopOptions::default())
                        .unwrap_or_else(|e| panic!("thread {t} attach #{i}: {e}"));
                    assert_eq!(backing_file(dev.number()).as_deref(), Some(path.as_path()));
                    assert_eq!(dev.status().unwrap().offset, 4096);
                    dev.detach().unwrap();
                }
            });
        }
    });
    assert_eq!(wait_released(&path), Vec::<u32>::new());
}
