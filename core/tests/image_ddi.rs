//! End-to-end checks of the image building blocks on real files: a verity-protected DDI
//! with an erofs root partition is written with `GptBuilder`, then parsed, selected, probed
//! and verified like the merge engine will. External tools (mkfs.erofs, sfdisk) are used
//! when present; the loop device part needs root and is skipped otherwise.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysext::image::{ImagePolicy, PartitionDesignator as D, PolicyFlags};
use sysext::testing::image::dps::{type_guid, Guid, LINUX_GENERIC};
use sysext::testing::image::gpt::{self, GptBuilder, SelectOptions, FLAG_READ_ONLY};
use sysext::testing::image::superblock::{self, FsType};
use sysext::testing::image::verity::{self, FormatParams};
use sysext::testing::sys::loopdev::{devices_backed_by, LoopDevice, LoopOptions};

const MIB: u64 = 1 << 20;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sysext-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--help").output().is_ok()
}

/// An erofs image of a tiny sysext tree, or `None` without mkfs.erofs.
fn erofs_image(dir: &Path) -> Option<Vec<u8>> {
    if !have("mkfs.erofs") {
        eprintln!("mkfs.erofs not available, skipping");
        return None;
    }
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("usr/lib/extension-release.d")).unwrap();
    fs::write(
        tree.join("usr/lib/extension-release.d/extension-release.foo"),
        "ID=_any\n",
    )
    .unwrap();
    fs::create_dir_all(tree.join("usr/share/foo")).unwrap();
    fs::write(tree.join("usr/share/foo/data"), vec![b'x'; 100_000]).unwrap();
    let img = dir.join("root.erofs");
    let out = Command::new("mkfs.erofs")
        .arg("--quiet")
        .arg("-T0")
        .arg("-U")
        .arg("6f0c2a4e-0000-4000-8000-000000000000")
        .arg(&img)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut data = fs::read(&img).unwrap();
    data.resize(data.len().next_multiple_of(4096), 0);
    Some(data)
}

struct Ddi {
    path: PathBuf,
    root_hash: Vec<u8>,
}

fn build_ddi(dir: &Path, data: &[u8], sector_size: u32) -> Ddi {
    let params = FormatParams {
        salt: vec![7; 32],
        ..FormatParams::default()
    };
    let (hash_area, root_hash) =
        verity::format(&MemFile(data.to_vec()), 0, data.len() as u64, &params).unwrap();
    let (data_uuid, verity_uuid) = gpt::verity_uuids(&root_hash).unwrap();
    let mut sig = format!(
        r#"{{"rootHash":"{}","signature":"{}"}}"#,
        verity::encode_hex(&root_hash),
        "MIIBAgMEBQY=" // not a real PKCS#7 blob: only the container format is tested
    )
    .into_bytes();
    sig.resize(16384, 0);
    let x86 = Some("x86-64");
    let size =
        (data.len() as u64 + hash_area.len() as u64 + 64 * 1024 + 4 * MIB).next_multiple_of(MIB);
    let b = GptBuilder::new(sector_size, size)
        .append_with_uuid(
            type_guid(D::Root, x86).unwrap(),
            data_uuid,
            data.len() as u64,
            "foo_1",
            FLAG_READ_ONLY,
            data.to_vec(),
        )
        .append_with_uuid(
            type_guid(D::RootVerity, x86).unwrap(),
            verity_uuid,
            hash_area.len() as u64,
            "foo_1-verity",
            FLAG_READ_ONLY,
            hash_area,
        )
        .append(
            type_guid(D::RootVeritySig, x86).unwrap(),
            sig.len() as u64,
            "foo_1-verity-sig",
            FLAG_READ_ONLY,
            sig,
        )
        .append(type_guid(D::Home, None).unwrap(), 4096, "home", 0, vec![]);
    let path = dir.join(format!("foo-{sector_size}.raw"));
    fs::write(&path, b.build()).unwrap();
    Ddi { path, root_hash }
}

/// A `FileExt` over a byte slice.
struct MemFile(Vec<u8>);

impl std::os::unix::fs::FileExt for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let off = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - off);
        buf[..n].copy_from_slice(&self.0[off..off + n]);
        Ok(n)
    }
    fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::PermissionDenied.into())
    }
}

#[test]
fn image_ddi_verity_end_to_end() {
    let dir = TempDir::new("ddi");
    let Some(data) = erofs_image(&dir.0) else {
        return;
    };
    for ss in [512u32, 4096] {
        let ddi = build_ddi(&dir.0, &data, ss);
        let file = fs::File::open(&ddi.path).unwrap();
        let size = file.metadata().unwrap().len();

        let table = gpt::read(&file, size).unwrap();
        assert_eq!(table.sector_size, ss);
        assert_eq!(table.partitions.len(), 4);

        let policy = ImagePolicy::sysext_default();
        let opts = SelectOptions {
            policy: Some(&policy),
            ..SelectOptions::new("x86-64")
        };
        let sel = gpt::select_with(&table, &opts).unwrap();
        let root = sel.root.clone().unwrap();
        let hash = sel.root_verity.clone().unwrap();
        let sig = sel.root_verity_sig.clone().unwrap();
        assert_eq!(root.label, "foo_1");
        assert!(root.read_only());
        assert_eq!(sel.protection(D::Root), PolicyFlags::SIGNED);
        assert_eq!(sel.ignored, vec![D::Home]);

        // The partition UUIDs pair with the root hash.
        let paired = SelectOptions {
            root_hash: Some((&ddi.root_hash, D::Root)),
            ..opts
        };
        assert_eq!(
            gpt::select_with(&table, &paired)
                .unwrap()
                .root
                .unwrap()
                .number,
            root.number
        );

        assert_eq!(
            superblock::detect(&file, root.offset, root.size).unwrap(),
            Some(FsType::Erofs)
        );
        assert_eq!(
            superblock::detect(&file, hash.offset, hash.size).unwrap(),
            None
        );

        let s = verity::read_signature(&file, sig.offset, sig.size).unwrap();
        assert_eq!(s.root_hash, ddi.root_hash);
        assert_eq!(s.signature, vec![48, 130, 1, 2, 3, 4, 5, 6]);
        verity::verify(
            &file,
            root.offset,
            root.size,
            &file,
            hash.offset,
            &s.root_hash,
        )
        .unwrap();

        // One flipped byte in the file system is caught, with its block number.
        let mut bytes = fs::read(&ddi.path).unwrap();
        let victim = root.offset as usize + 3 * 4096 + 100;
        bytes[victim] ^= 0x20;
        let m = MemFile(bytes);
        match verity::verify(&m, root.offset, root.size, &m, hash.offset, &s.root_hash) {
            Err(verity::VerityError::DataBlockMismatch { block: 3 }) => {}
            other => panic!("{other:?}"),
        }

        // A strict policy: signed is fine, but it must not accept a plain image.
        let strict = ImagePolicy::parse("root=signed:usr=signed+absent").unwrap();
        gpt::select_with(
            &table,
            &SelectOptions {
                policy: Some(&strict),
                ..opts
            },
        )
        .unwrap();
    }
}

#[test]
fn image_ddi_builder_accepted_by_sfdisk() {
    if !have("sfdisk") {
        eprintln!("sfdisk not available, skipping");
        return;
    }
    let dir = TempDir::new("ddi-sfdisk");
    // sfdisk reads regular files with 512-byte sectors only.
    for ss in [512u32] {
        let b = GptBuilder::new(ss, 8 * MIB)
            .append(
                type_guid(D::Usr, Some("arm64")).unwrap(),
                100_000,
                "usr-arm64",
                FLAG_READ_ONLY,
                vec![],
            )
            .append(LINUX_GENERIC, 200_000, "data", 0, vec![]);
        let path = dir.0.join(format!("b{ss}.img"));
        fs::write(&path, b.build()).unwrap();
        let out = Command::new("sfdisk")
            .arg("--dump")
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            !stderr.contains("corrupt") && !stderr.contains("invalid"),
            "{stderr}"
        );
        // Partition lines look like `x.img1 : start=  2048, size=  100, type=…, uuid=…, name="…"`.
        let parsed: Vec<Vec<(String, String)>> = stdout
            .lines()
            .filter_map(|l| l.split_once(" : "))
            .map(|(_, fields)| {
                fields
                    .split(',')
                    .filter_map(|f| f.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                    .collect()
            })
            .collect();
        assert_eq!(parsed.len(), b.partitions.len(), "{stdout}");
        for (p, fields) in b.partitions.iter().zip(&parsed) {
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(fk, _)| fk == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            assert_eq!(get("start"), p.first_lba.to_string(), "{stdout}");
            assert_eq!(
                get("size"),
                (p.last_lba - p.first_lba + 1).to_string(),
                "{stdout}"
            );
            assert_eq!(get("type"), p.type_guid.to_string());
            assert_eq!(get("uuid"), p.uuid.to_string());
            assert_eq!(get("name"), p.name);
        }
        assert!(stdout.contains(&Guid::to_string(&b.disk_guid)), "{stdout}");
    }
}

#[test]
fn image_ddi_loop_partition_window() {
    if !(rustix::process::geteuid().is_root() && Path::new("/dev/loop-control").exists()) {
        if std::env::var("SYSEXT_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
            panic!("SYSEXT_REQUIRE_ROOT_TESTS=1 but not root");
        }
        eprintln!("skipping: needs root");
        return;
    }
    let dir = TempDir::new("ddi-loop");
    let Some(data) = erofs_image(&dir.0) else {
        return;
    };
    let ddi = build_ddi(&dir.0, &data, 512);
    let file = fs::File::open(&ddi.path).unwrap();
    let size = file.metadata().unwrap().len();
    let sel = gpt::select(&gpt::read(&file, size).unwrap(), "x86-64").unwrap();
    let root = sel.root.unwrap();
    let hash = sel.root_verity.unwrap();
    {
        // The root partition alone as a block device, as it would be mounted.
        let dev =
            LoopDevice::attach(&file, root.offset, root.size, &LoopOptions::default()).unwrap();
        let blk = fs::File::open(dev.path()).unwrap();
        assert_eq!(
            superblock::detect(&blk, 0, root.size).unwrap(),
            Some(FsType::Erofs)
        );
        verity::verify(&blk, 0, root.size, &file, hash.offset, &ddi.root_hash).unwrap();
        drop(blk);
        dev.detach().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !devices_backed_by(&ddi.path).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(devices_backed_by(&ddi.path).is_empty());
}

/// A DDI made by the host's systemd-repart (if any): real-world GPT layout and flags.
#[test]
fn image_ddi_systemd_repart_image() {
    if !have("systemd-repart") || !have("mksquashfs") {
        eprintln!("systemd-repart or mksquashfs not available, skipping");
        return;
    }
    let dir = TempDir::new("ddi-repart");
    let src = dir.0.join("src/usr/lib/extension-release.d");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("extension-release.r"), "ID=_any\n").unwrap();
    let defs = dir.0.join("defs");
    fs::create_dir_all(&defs).unwrap();
    fs::write(
        defs.join("10-root.conf"),
        format!(
            "[Partition]\nType=root-x86-64\nFormat=squashfs\nCopyFiles={}:/usr\n",
            dir.0.join("src/usr").display()
        ),
    )
    .unwrap();
    fs::write(
        defs.join("20-usr.conf"),
        "[Partition]\nType=usr-x86-64\nSizeMinBytes=64K\n",
    )
    .unwrap();
    fs::write(
        defs.join("30-home.conf"),
        "[Partition]\nType=home\nSizeMinBytes=64K\n",
    )
    .unwrap();
    let img = dir.0.join("r.raw");
    let out = Command::new("systemd-repart")
        .args(["--empty=create", "--size=64M", "--dry-run=no", "--no-pager"])
        .arg(format!("--definitions={}", defs.display()))
        .arg("--seed=6f0c2a4e-0000-4000-8000-0000000000dd")
        .arg(&img)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "systemd-repart failed, skipping: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let file = fs::File::open(&img).unwrap();
    let table = gpt::read(&file, file.metadata().unwrap().len()).unwrap();
    assert_eq!(table.partitions.len(), 3);
    let sel = gpt::select(&table, "x86-64").unwrap();
    let root = sel.root.unwrap();
    let usr = sel.usr.unwrap();
    assert_eq!((root.number, usr.number), (1, 2));
    assert_eq!(root.label, "root-x86-64");
    assert_eq!(
        superblock::detect(&file, root.offset, root.size).unwrap(),
        Some(FsType::Squashfs)
    );
    assert_eq!(sel.other.len(), 1);
    assert_eq!(sel.other[0].0, D::Home);
    // With the sysext policy, home is ignored.
    let policy = ImagePolicy::sysext_default();
    let sel = gpt::select_with(
        &table,
        &SelectOptions {
            policy: Some(&policy),
            ..SelectOptions::new("x86-64")
        },
    )
    .unwrap();
    assert_eq!(sel.ignored, vec![D::Home]);
    // On arm64 the x86-64 partitions are foreign, but still used.
    let sel = gpt::select(&table, "arm64").unwrap();
    assert_eq!(sel.root.unwrap().arch, Some("x86-64"));
}
