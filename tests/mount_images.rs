//! Root tests of image files: naked erofs/squashfs/ext4, GPT disk images, userspace verity,
//! and bad images rejected with clear errors and no loop device left behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use sysext::testing::image::dps;
use sysext::testing::image::gpt::GptBuilder;
use sysext::testing::image::policy::PartitionDesignator;
use sysext::testing::image::verity;
use sysext::{Context, ImageClass, MutableMode, Options};
use sysext_tests::{isolated, sh, TestRoot};

fn tree(stage: &Path, name: &str, release: Option<&str>) -> PathBuf {
    let t = stage.join(format!("src-{name}"));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(t.join("usr/lib/extension-release.d")).unwrap();
    std::fs::create_dir_all(t.join("usr/bin")).unwrap();
    std::fs::create_dir_all(t.join(format!("opt/{name}"))).unwrap();
    if let Some(rel) = release {
        std::fs::write(
            t.join(format!("usr/lib/extension-release.d/{rel}")),
            "ID=_any\n",
        )
        .unwrap();
    }
    std::fs::write(t.join(format!("usr/bin/{name}")), format!("from {name}\n")).unwrap();
    std::fs::write(t.join(format!("opt/{name}/f")), "opt\n").unwrap();
    t
}

fn pack(fs: &str, src: &Path, img: &Path) {
    let _ = std::fs::remove_file(img);
    match fs {
        "erofs" => sh(Command::new("mkfs.erofs").arg("--quiet").arg(img).arg(src)),
        "squashfs" => sh(Command::new("mksquashfs").arg(src).arg(img).args([
            "-quiet",
            "-noappend",
            "-all-root",
        ])),
        "ext4" => sh(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(src)
            .arg(img)
            .arg("8M")),
        _ => unreachable!(),
    }
}

fn ctx(r: &TestRoot, mode: MutableMode, policy: Option<&str>) -> Context {
    let mut o = Options::new(ImageClass::Sysext);
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.mutable = Some(mode);
    o.image_policy = policy.map(str::to_string);
    o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
    Context::new(o).unwrap()
}

/// A context for `/usr` and `/opt` of `r` without an upper layer, at `level` with `policy`.
fn ctx_at(r: &TestRoot, level: sysext::Compat, policy: &str) -> Context {
    let mut o = Options::new(ImageClass::Sysext);
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.mutable = Some(MutableMode::Disabled);
    o.image_policy = Some(policy.to_string());
    o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
    o.compat = Some(level);
    Context::new(o).unwrap()
}

/// After an unmerge or a failed merge of `img`: no device-mapper device (where there is
/// device-mapper), no loop device on it and no mount below `r` are left.
fn settled(r: &TestRoot, img: &Path, dm: bool) {
    if dm {
        wait_for_no_dm_devices_on(&[img]);
    }
    wait_for_no_loop_devices_for(img);
    assert_eq!(r.mounts_below(), 0);
}

fn no_loop_devices_for(img: &Path) {
    let n = sysext::testing::sys::loopdev::devices_backed_by(img);
    assert!(
        n.is_empty(),
        "loop devices left for {}: {n:?}",
        img.display()
    );
}

/// The loop devices under a dm-verity device go with it, a moment later.
fn wait_for_no_loop_devices_for(img: &Path) {
    for _ in 0..100 {
        if sysext::testing::sys::loopdev::devices_backed_by(img).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    no_loop_devices_for(img);
}

#[test]
fn naked_images_in_every_mode() {
    isolated!();
    let r = TestRoot::new("naked");
    let stage = r.p("stage");
    let mut imgs = Vec::new();
    for fs in ["erofs", "squashfs", "ext4"] {
        let name = format!("x{fs}");
        let t = tree(&stage, &name, Some(&format!("extension-release.{name}")));
        let img = r.p(&format!("var/lib/extensions/{name}.raw"));
        pack(fs, &t, &img);
        imgs.push((name, img));
    }
    for mode in MutableMode::ALL {
        let c = ctx(&r, mode, None);
        let rep = c.merge().unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(rep.merged, vec!["xerofs", "xext4", "xsquashfs"]);
        for (name, _) in &imgs {
            assert_eq!(
                r.read(&format!("usr/bin/{name}")),
                Some(format!("from {name}\n")),
                "{mode}"
            );
            assert_eq!(r.read(&format!("opt/{name}/f")).as_deref(), Some("opt\n"));
        }
        let w = r.try_write("usr/bin/probe", mode.as_str());
        // `auto` is writable here because `yes` (which runs before it) created the routing dir.
        assert_eq!(w.is_ok(), mode.may_be_writable(), "{mode}: {w:?}");
        c.unmerge().unwrap();
        assert_eq!(r.mounts_below(), 0);
        for (_, img) in &imgs {
            no_loop_devices_for(img);
        }
    }
    // list reports the kind as systemd does.
    let l = ctx(&r, MutableMode::Disabled, None).list().unwrap();
    assert!(
        l.iter()
            .all(|i| i.kind == sysext::ImageKind::Raw && i.state == sysext::ImageState::WouldMerge),
        "{l:?}"
    );
}

/// An ext4 image whose journal is marked as needing recovery (an image made from a file
/// system that was not cleanly unmounted) merges without the journal being replayed, as
/// systemd mounts it (`norecovery`): the kernel refuses to replay a journal on a read-only
/// device ("write access unavailable"), and the image is left as it was.
#[test]
fn ext4_images_with_a_journal_to_replay_merge_without_replaying_it() {
    isolated!();
    let r = TestRoot::new("ext4jnl");
    let stage = r.p("stage");
    let t = tree(&stage, "jnl", Some("extension-release.jnl"));
    let img = r.p("var/lib/extensions/jnl.raw");
    pack("ext4", &t, &img);
    sh(Command::new("debugfs")
        .args(["-w", "-R", "feature needs_recovery"])
        .arg(&img));
    let before = std::fs::read(&img).unwrap();
    let c = ctx(&r, MutableMode::Disabled, None);
    let rep = c.merge().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rep.merged, ["jnl"]);
    assert_eq!(r.read("usr/bin/jnl").as_deref(), Some("from jnl\n"));
    c.unmerge().unwrap();
    assert_eq!(r.mounts_below(), 0);
    no_loop_devices_for(&img);
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the image was written to"
    );
}

/// erofs images are mounted straight from their files where the kernel can (6.12+ built
/// with file-backed erofs, and not forbidden by the caller), with no loop device; squashfs
/// always needs one, and so does erofs elsewhere (6.1 and Debian's 6.12 fall back to one
/// per image).
#[test]
fn erofs_images_need_a_loop_device_only_where_the_kernel_cannot_mount_the_file() {
    isolated!();
    let r = TestRoot::new("erofsfile");
    let stage = r.p("stage");
    let mut imgs = Vec::new();
    for fs in ["erofs", "squashfs"] {
        let name = format!("f{fs}");
        let t = tree(&stage, &name, Some(&format!("extension-release.{name}")));
        let img = r.p(&format!("var/lib/extensions/{name}.raw"));
        pack(fs, &t, &img);
        imgs.push(img);
    }
    let (rel, _) = sysext_tests::kernel_release();
    let c = ctx(&r, MutableMode::Disabled, None);
    // Whether this kernel mounts erofs from a file, asked here directly: 6.12 brought it,
    // but only with CONFIG_EROFS_FS_BACKED_BY_FILE, which Debian's 6.12 leaves out.
    let kernel_can = {
        use rustix::mount::{fsconfig_create, fsconfig_set_string, fsopen, FsOpenFlags};
        fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC).is_ok_and(|fs| {
            fsconfig_set_string(&fs, "source", imgs[0].to_str().unwrap()).is_ok()
                && fsconfig_create(&fs).is_ok()
        })
    };
    let from_file = c.kernel().has(sysext::KernelFeatures::EROFS_FILE) && kernel_can;
    c.merge().unwrap();
    let loops = |img: &Path| sysext::testing::sys::loopdev::devices_backed_by(img).len();
    assert_eq!(loops(&imgs[0]), usize::from(!from_file), "erofs on {rel}");
    assert_eq!(loops(&imgs[1]), 1, "squashfs");
    assert_eq!(r.read("usr/bin/ferofs").as_deref(), Some("from ferofs\n"));
    assert_eq!(
        r.read("usr/bin/fsquashfs").as_deref(),
        Some("from fsquashfs\n")
    );
    c.unmerge().unwrap();
    sysext_tests::wait_until(
        || imgs.iter().all(|i| loops(i) == 0),
        "loop devices of the images",
    );
}

/// A refresh with the same image files is a no-op (the fingerprint names the files, not
/// the loop device or superblock they happen to be mounted from); a rewritten image is
/// picked up.
#[test]
fn unchanged_image_files_refresh_as_a_no_op() {
    isolated!();
    let r = TestRoot::new("noop-images");
    let stage = r.p("stage");
    for fs in ["erofs", "squashfs"] {
        let name = format!("n{fs}");
        let t = tree(&stage, &name, Some(&format!("extension-release.{name}")));
        pack(fs, &t, &r.p(&format!("var/lib/extensions/{name}.raw")));
    }
    let top = |r: &TestRoot| {
        let t = r.p("usr").to_string_lossy().into_owned();
        sysext::testing::mountinfo::read_self()
            .unwrap()
            .iter()
            .filter(|m| m.mount_point == t && m.fstype == "overlay")
            .map(|m| m.id)
            .max()
    };
    let c = ctx(&r, MutableMode::Disabled, None);
    c.merge().unwrap();
    let before = top(&r);
    assert!(before.is_some());
    c.refresh().unwrap();
    assert_eq!(top(&r), before, "same image files: same overlay");
    // Rewritten with new content: rebuilt.
    let t = tree(&stage, "nerofs", Some("extension-release.nerofs"));
    std::fs::write(t.join("usr/bin/nerofs"), "new\n").unwrap();
    pack("erofs", &t, &r.p("var/lib/extensions/nerofs.raw"));
    c.refresh().unwrap();
    assert_ne!(top(&r), before);
    assert_eq!(r.read("usr/bin/nerofs").as_deref(), Some("new\n"));
    c.unmerge().unwrap();
    assert_eq!(r.mounts_below(), 0);
    for fs in ["erofs", "squashfs"] {
        no_loop_devices_for(&r.p(&format!("var/lib/extensions/n{fs}.raw")));
    }
}

/// A GPT disk image with an erofs root partition, optionally with verity and a signature
/// partition. Returns the image bytes and the data partition's offset.
/// A DER PKCS#7 signature of `text` by `key` (certificate `cert`) as systemd's tools make
/// them: detached, no certificates, no attributes (`openssl smime`).
fn sign(key: &Path, cert: &Path, text: &str) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args([
            "smime", "-sign", "-nocerts", "-noattr", "-binary", "-outform", "der", "-inkey",
        ])
        .arg(key)
        .arg("-signer")
        .arg(cert)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A new self-signed test key and certificate in `dir`: (key.pem, cert.pem).
fn signer(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=sysext-test",
            "-days",
            "3650",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (key, cert)
}

fn ddi(erofs: &[u8], verity_parts: bool, sig: bool) -> (Vec<u8>, u64) {
    ddi_signed(erofs, verity_parts, sig, None, false)
}

/// Like [`ddi`]; with `signer` = (key.pem, cert.pem) the signature partition carries a real
/// PKCS#7 signature of the root hash made by `openssl smime`; with `repart_uuids` the data and
/// verity partitions' UUIDs are the two halves of the root hash, as systemd-repart makes them.
fn ddi_signed(
    erofs: &[u8],
    verity_parts: bool,
    sig: bool,
    signer: Option<(&Path, &Path)>,
    repart_uuids: bool,
) -> (Vec<u8>, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("data");
    let probe = tmp.path().join("probe");
    let arch = sysext::testing::arch::native();
    let mut data = erofs.to_vec();
    assert!(
        data.len() > 4 * 4096 || !verity_parts,
        "test data spans several blocks"
    );
    data.resize(data.len().div_ceil(4096) * 4096, 0);
    let dsize = data.len() as u64;
    let mut b = GptBuilder::new(512, dsize + 4 * 1024 * 1024);
    let data_off = b.first_usable_lba() * 512;
    let mut rh = Vec::new();
    if verity_parts {
        std::fs::write(&scratch, &data).unwrap();
        let f = std::fs::File::open(&scratch).unwrap();
        let (hash, root_hash) = verity::format(
            &f,
            0,
            dsize,
            &verity::FormatParams {
                salt: vec![7; 32],
                ..Default::default()
            },
        )
        .unwrap();
        std::fs::remove_file(&scratch).unwrap();
        rh = root_hash;
        let hsize = (hash.len() as u64).div_ceil(4096) * 4096;
        let root_t = dps::type_guid(PartitionDesignator::Root, Some(arch)).unwrap();
        let verity_t = dps::type_guid(PartitionDesignator::RootVerity, Some(arch)).unwrap();
        if repart_uuids {
            let (du, vu) = sysext::testing::image::gpt::verity_uuids(&rh).unwrap();
            b = b.append_with_uuid(root_t, du, dsize, "root", 0, data);
            b = b.append_with_uuid(verity_t, vu, hsize, "root-verity", 0, hash);
        } else {
            b = b.append(root_t, dsize, "root", 0, data);
            b = b.append(verity_t, hsize, "root-verity", 0, hash);
        }
        if sig {
            let hex: String = rh.iter().map(|x| format!("{x:02x}")).collect();
            let signature = match signer {
                None => "AAAA".to_string(),
                Some((key, cert)) => {
                    let der = sign(key, cert, &hex);
                    let mut b64 = Command::new("base64")
                        .arg("-w0")
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    use std::io::Write;
                    b64.stdin.take().unwrap().write_all(&der).unwrap();
                    String::from_utf8(b64.wait_with_output().unwrap().stdout).unwrap()
                }
            };
            let json =
                format!("{{\"rootHash\":\"{hex}\",\"signature\":\"{signature}\"}}\n").into_bytes();
            b = b.append(
                dps::type_guid(PartitionDesignator::RootVeritySig, Some(arch)).unwrap(),
                16384,
                "root-verity-sig",
                0,
                json,
            );
        }
    } else {
        b = b.append(
            dps::type_guid(PartitionDesignator::Root, Some(arch)).unwrap(),
            dsize,
            "root",
            0,
            data,
        );
    }
    let _ = (rh, data_off);
    let img = b.build();
    // Where the root partition really is.
    std::fs::write(&probe, &img).unwrap();
    let f = std::fs::File::open(&probe).unwrap();
    let t = sysext::testing::image::gpt::read(&f, img.len() as u64).unwrap();
    let off = sysext::testing::image::gpt::select(&t, arch)
        .unwrap()
        .root
        .unwrap()
        .offset;
    std::fs::remove_file(&probe).unwrap();
    (img, off)
}

/// The erofs image of extension `name` (staged in `stage`) with a 64 KiB `usr/bin/big` that
/// does not compress away: enough data for several verity blocks.
fn erofs_of_several_blocks(stage: &Path, name: &str) -> Vec<u8> {
    let t = tree(stage, name, Some(&format!("extension-release.{name}")));
    std::fs::write(
        t.join("usr/bin/big"),
        (0..65536u32)
            .map(|i| (i * 31 % 253) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let e = stage.join(format!("{name}.erofs"));
    pack("erofs", &t, &e);
    std::fs::read(&e).unwrap()
}

#[test]
fn disk_images_and_userspace_verity() {
    isolated!();
    let r = TestRoot::new("ddi");
    let stage = r.p("stage");
    let bytes = erofs_of_several_blocks(&stage, "dd");
    let img = r.p("var/lib/extensions/dd.raw");

    // Plain DDI: merged like any image, /opt too.
    std::fs::write(&img, ddi(&bytes, false, false).0).unwrap();
    let c = ctx(&r, MutableMode::Ephemeral, None);
    c.merge().unwrap();
    assert_eq!(r.read("usr/bin/dd").as_deref(), Some("from dd\n"));
    assert_eq!(r.read("opt/dd/f").as_deref(), Some("opt\n"));
    c.unmerge().unwrap();
    no_loop_devices_for(&img);

    // Verity with a signature: the default policy needs dm-verity. Where it is missing (this
    // host) the merge fails for that; where it is there (the VM tier's guests) it fails as
    // systemd's does, for the signature: its signer is trusted neither in verity.d nor by the
    // kernel's keyring. No device is left behind.
    let (vimg, data_off) = ddi(&bytes, true, true);
    std::fs::write(&img, &vimg).unwrap();
    let dm = sysext::testing::sys::dm::available();
    if dm {
        let err = ctx(&r, MutableMode::Disabled, None).merge().unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        wait_for_no_dm_devices_on(&[&img]);
    } else {
        let err = ctx(&r, MutableMode::Disabled, None).merge().unwrap_err();
        assert!(err.to_string().contains("device-mapper"), "{err}");
    }
    assert_eq!(r.mounts_below(), 0);
    // root=verity: verified in userspace against the root hash, then merged.
    let c = ctx(&r, MutableMode::Disabled, Some("root=verity"));
    c.merge().unwrap();
    assert_eq!(r.read("usr/bin/dd").as_deref(), Some("from dd\n"));
    c.unmerge().unwrap();
    wait_for_no_loop_devices_for(&img);
    // One flipped byte in the data partition is found, and named (in userspace); with
    // dm-verity the kernel fails the read of that block (or the mount, if it needs it).
    let mut bad = vimg.clone();
    bad[data_off as usize + 3 * 4096 + 17] ^= 0xff;
    std::fs::write(&img, &bad).unwrap();
    if dm {
        let c = ctx(&r, MutableMode::Disabled, Some("root=verity"));
        if c.merge().is_ok() {
            let e = std::fs::read(r.p("usr/bin/big")).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            c.unmerge().unwrap();
        }
        wait_for_no_dm_devices_on(&[&img]);
    } else {
        let err = ctx(&r, MutableMode::Disabled, Some("root=verity"))
            .merge()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("dd") && msg.contains("verity") && msg.contains("block 3"),
            "{msg}"
        );
    }
    assert_eq!(r.mounts_below(), 0);
    wait_for_no_loop_devices_for(&img);
    // A policy that demands a signature cannot be met (signatures are not checked).
    std::fs::write(&img, &vimg).unwrap();
    let err = ctx(&r, MutableMode::Disabled, Some("root=signed"))
        .merge()
        .unwrap_err();
    assert_eq!(err.kind(), sysext::ErrorKind::ImagePolicy, "{err}");
    assert!(err.to_string().contains("dd.raw"), "{err}");
}

/// A DDI of extension `name` (erofs, a 40,000-byte `usr/bin/big` of `fill` bytes, staged in
/// `r`) with verity partitions whose UUIDs are the root hash, as systemd-repart makes them, and
/// no signature; and the offset of its data partition.
fn repart_verity_ddi(r: &TestRoot, name: &str, fill: u8) -> (Vec<u8>, u64) {
    let stage = r.p("stage");
    let t = tree(&stage, name, Some(&format!("extension-release.{name}")));
    std::fs::write(t.join("usr/bin/big"), vec![fill; 40000]).unwrap();
    let e = stage.join(format!("{name}.erofs"));
    pack("erofs", &t, &e);
    ddi_signed(&std::fs::read(&e).unwrap(), true, false, None, true)
}

#[test]
fn root_hash_from_partition_uuids_from_level_262() {
    isolated!();
    let r = TestRoot::new("guess");
    // Data and verity partitions named by the root hash, no signature, no .roothash.
    let (vimg, data_off) = repart_verity_ddi(&r, "gu", 9);
    let img = r.p("var/lib/extensions/gu.raw");
    std::fs::write(&img, &vimg).unwrap();
    let dm = sysext::testing::sys::dm::available();
    let at = |level: sysext::Compat, policy: &str| ctx_at(&r, level, policy);
    let settle = || settled(&r, &img, dm);
    // 262 (systemd 258 and newer): the UUIDs are the root hash, so the image is verified.
    let c = at(sysext::Compat::V262, "root=verity");
    c.merge().unwrap();
    assert_eq!(r.read("usr/bin/gu").as_deref(), Some("from gu\n"));
    c.unmerge().unwrap();
    settle();
    // 257 finds no root hash: a policy that wants verity refuses the image ...
    let err = at(sysext::Compat::V257, "root=verity").merge().unwrap_err();
    assert_eq!(err.kind(), sysext::ErrorKind::ImagePolicy, "{err}");
    assert!(err.to_string().contains("gu.raw"), "{err}");
    settle();
    // ... and uses the partition unprotected where the policy allows that.
    let c = at(sysext::Compat::V257, "root=unprotected");
    c.merge().unwrap();
    assert_eq!(r.read("usr/bin/gu").as_deref(), Some("from gu\n"));
    c.unmerge().unwrap();
    settle();
    // The guessed root hash is checked, not only found: one flipped byte in the data
    // partition is named (userspace) or fails the read (dm-verity) at 262 ...
    let mut bad = vimg.clone();
    bad[data_off as usize + 3 * 4096 + 17] ^= 0xff;
    std::fs::write(&img, &bad).unwrap();
    let c = at(sysext::Compat::V262, "root=verity");
    if dm {
        if c.merge().is_ok() {
            let e = std::fs::read(r.p("usr/bin/big")).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            c.unmerge().unwrap();
        }
    } else {
        let msg = c.merge().unwrap_err().to_string();
        assert!(msg.contains("gu") && msg.contains("block 3"), "{msg}");
    }
    settle();
    // ... and not at 257, which does not look for one.
    let c = at(sysext::Compat::V257, "root=unprotected");
    c.merge().unwrap();
    c.unmerge().unwrap();
    settle();
}

#[test]
fn bad_images_are_rejected_clearly() {
    isolated!();
    let r = TestRoot::new("badimg");
    r.sysext("good", &[("usr/bin/good", "g\n")]);
    let stage = r.p("stage");
    let t = tree(&stage, "b", Some("extension-release.b"));
    let e = stage.join("b.erofs");
    pack("erofs", &t, &e);
    let good_erofs = std::fs::read(&e).unwrap();
    let img = r.p("var/lib/extensions/b.raw");
    let base = ctx(&r, MutableMode::Disabled, None);
    base.merge().unwrap();

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    cases.push((
        "garbage",
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
        "neither a file system superblock",
    ));
    cases.push((
        "1 KiB stub",
        good_erofs[..1024].to_vec(),
        "neither a file system superblock",
    ));
    let (d, _) = ddi(&good_erofs, false, false);
    let mut crc = d.clone();
    crc[512 + 90] ^= 1; // a byte inside the primary header
    let n = crc.len();
    crc[n - 512 + 90] ^= 1; // and inside the backup header (one of them would do)
    cases.push(("GPT header CRC", crc, "GPT header: CRC32 mismatch"));
    let arch = sysext::testing::arch::native();
    let root = dps::type_guid(PartitionDesignator::Root, Some(arch)).unwrap();
    let overlap = GptBuilder::new(512, 8 * 1024 * 1024)
        .partition(sysext::testing::image::gpt::BuilderPartition {
            type_guid: root,
            uuid: dps::Guid::must("11111111-1111-4111-8111-111111111111"),
            first_lba: 2048,
            last_lba: 6000,
            flags: 0,
            name: "a".into(),
            contents: good_erofs.clone(),
        })
        .partition(sysext::testing::image::gpt::BuilderPartition {
            type_guid: root,
            uuid: dps::Guid::must("22222222-2222-4222-8222-222222222222"),
            first_lba: 5000,
            last_lba: 9000,
            flags: 0,
            name: "b".into(),
            contents: vec![],
        })
        .build();
    cases.push(("overlapping partitions", overlap, "overlaps"));
    let t2 = tree(&stage, "b2", None);
    pack("erofs", &t2, &stage.join("norel.erofs"));
    cases.push((
        "no release file",
        std::fs::read(stage.join("norel.erofs")).unwrap(),
        "No medium found",
    ));
    let t3 = tree(&stage, "b3", Some("extension-release.other"));
    pack("erofs", &t3, &stage.join("misnamed.erofs"));
    cases.push((
        "misnamed release file",
        std::fs::read(stage.join("misnamed.erofs")).unwrap(),
        "does not match image name",
    ));
    let t4 = tree(&stage, "b4", Some("extension-release.b"));
    pack("squashfs", &t4, &stage.join("sq"));
    let sq = std::fs::read(stage.join("sq")).unwrap();
    cases.push(("truncated squashfs", sq[..300].to_vec(), "truncated image"));
    // A squashfs cut short in a partition of a disk image: what it claims lies beyond the
    // partition (and within the file): the partition's size is what counts.
    let t5 = tree(&stage, "b5", Some("extension-release.b"));
    std::fs::write(
        t5.join("usr/bin/noise"),
        (0..200_000u32)
            .scan(0x9e37_79b9u32, |x, _| {
                *x ^= *x << 13;
                *x ^= *x >> 17;
                *x ^= *x << 5;
                Some(*x as u8)
            })
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    pack("squashfs", &t5, &stage.join("sq5"));
    let sq5 = std::fs::read(stage.join("sq5")).unwrap();
    assert!(sq5.len() > 3 * 8192, "{}", sq5.len());
    cases.push((
        "squashfs cut short in its partition",
        ddi(&sq5[..8192], false, false).0,
        "truncated image",
    ));

    for (what, bytes, expect) in cases {
        std::fs::write(&img, &bytes).unwrap();
        {
            let c = ctx(&r, MutableMode::Disabled, None);
            let err = c.refresh().expect_err(what);
            let msg = err.to_string();
            assert!(msg.contains(expect), "{what}: {msg}");
            assert!(
                msg.contains(" b") || msg.contains("b.raw") || msg.contains("image b"),
                "{what}: error names the image: {msg}"
            );
            // The previous merge is intact, nothing leaked.
            assert_eq!(r.read("usr/bin/good").as_deref(), Some("g\n"), "{what}");
            assert_eq!(r.overlays_at("usr"), 1, "{what}");
            no_loop_devices_for(&img);
        }
    }
    base.unmerge().unwrap();
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn signed_disk_image_needs_a_trusted_certificate() {
    isolated!();
    // /run is private to this test's namespace: trusted certificates go to /run/verity.d.
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs", "/run"])
        .status()
        .unwrap()
        .success());
    let r = TestRoot::new("signed");
    let stage = r.p("stage");
    let t = tree(&stage, "sd", Some("extension-release.sd"));
    std::fs::write(t.join("usr/bin/big"), vec![7u8; 40000]).unwrap();
    let e = stage.join("sd.erofs");
    pack("erofs", &t, &e);
    let (key, cert) = signer(&stage);
    let (img_bytes, _) = ddi_signed(
        &std::fs::read(&e).unwrap(),
        true,
        true,
        Some((&key, &cert)),
        false,
    );
    let img = r.p("var/lib/extensions/sd.raw");
    std::fs::write(&img, &img_bytes).unwrap();
    // With device-mapper (the VM guests) the image goes through dm-verity and the signature
    // to the kernel too; its keyring does not hold the test key, so a signer not trusted in
    // verity.d fails the image, whatever the policy (as systemd 257's activation does).
    let dm = sysext::testing::sys::dm::available();
    let at = |level: sysext::Compat, policy: &str| ctx_at(&r, level, policy);
    let settle = || settled(&r, &img, dm);
    let merges = |c: Context| {
        c.merge().unwrap();
        assert_eq!(r.read("usr/bin/sd").as_deref(), Some("from sd\n"));
        let l = c.list().unwrap();
        let want = if dm {
            sysext::testing::image::mount::VerityCheck::Kernel
        } else {
            sysext::testing::image::mount::VerityCheck::Userspace
        };
        // (merged: `list` does not open it again)
        assert!(l.iter().all(|x| x.verity.is_none()), "{l:?}");
        c.unmerge().unwrap();
        let l = c.list().unwrap();
        assert_eq!(
            l.iter().find(|x| x.name == "sd").and_then(|x| x.verity),
            Some(want)
        );
        settle();
    };
    let refused = |c: Context| {
        let err = c.merge().unwrap_err();
        assert!(err.to_string().contains("signature not accepted"), "{err}");
        settle();
    };
    for level in sysext::Compat::ALL {
        // Untrusted: a policy that demands a signature refuses the image, naming why.
        refused(at(level, "root=signed"));
        // ... verity alone is fine if the policy allows it, where the check is ours alone
        // (no device-mapper); with dm-verity the kernel has the last word.
        if dm {
            refused(at(level, "root=verity+signed"));
        } else {
            merges(at(level, "root=verity+signed"));
        }
    }
    // Trusted certificates: 257 reads the host's verity.d whatever the root, 262 (systemd 259
    // and newer) the ones below --root.
    let host_dir = std::path::Path::new("/run/verity.d");
    let root_dir = r.p("run/verity.d");
    for (level, trusted_dir, other_dir) in [
        (sysext::Compat::V257, host_dir, root_dir.as_path()),
        (sysext::Compat::V262, root_dir.as_path(), host_dir),
    ] {
        std::fs::create_dir_all(other_dir).unwrap();
        std::fs::copy(&cert, other_dir.join("test.crt")).unwrap();
        refused(at(level, "root=signed"));
        std::fs::remove_file(other_dir.join("test.crt")).unwrap();
        std::fs::create_dir_all(trusted_dir).unwrap();
        std::fs::copy(&cert, trusted_dir.join("test.crt")).unwrap();
        merges(at(level, "root=signed"));
        std::fs::remove_file(trusted_dir.join("test.crt")).unwrap();
    }
    // Below the root, a symlink that points outside it is resolved inside it: a link to the
    // host's copy of the certificate does not trust it.
    std::fs::create_dir_all(host_dir).unwrap();
    std::fs::copy(&cert, host_dir.join("host.crt")).unwrap();
    std::fs::create_dir_all(r.p("etc/verity.d")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../run/verity.d/host.crt",
        r.p("etc/verity.d/up.crt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/run/verity.d/host.crt", r.p("etc/verity.d/abs.crt")).unwrap();
    refused(at(sysext::Compat::V262, "root=signed"));
    no_loop_devices_for(&r.p("var/lib/extensions/sd.raw"));
}

/// A naked image's verity comes from the files beside it, as systemd finds them:
/// `NAME.roothash` (hex), `NAME.verity` (superblock and hash tree) and `NAME.roothash.p7s`
/// (a DER PKCS#7 signature of the hex root hash). Without device-mapper (this host) the
/// tree is checked in userspace where the policy was given.
#[test]
fn naked_images_take_verity_from_the_files_beside_them() {
    isolated!();
    let r = TestRoot::new("sidecars");
    let stage = r.p("stage");
    let mut data = erofs_of_several_blocks(&stage, "nk");
    data.resize(data.len().div_ceil(4096) * 4096, 0);
    let img = r.p("var/lib/extensions/nk.raw");
    std::fs::write(&img, &data).unwrap();
    let (hash, root_hash) = verity::format(
        &std::fs::File::open(&img).unwrap(),
        0,
        data.len() as u64,
        &verity::FormatParams {
            salt: vec![9; 32],
            ..Default::default()
        },
    )
    .unwrap();
    let hex: String = root_hash.iter().map(|b| format!("{b:02x}")).collect();
    let beside = |ext: &str| r.p(&format!("var/lib/extensions/nk.{ext}"));
    std::fs::write(beside("verity"), &hash).unwrap();
    std::fs::write(beside("roothash"), format!("{hex}\n")).unwrap();
    if sysext::testing::sys::dm::available() {
        // With device-mapper (the VM tier's guests) these images go through dm-verity;
        // this test is written for the userspace check of hosts without it.
        println!("skipped: device-mapper is there");
        return;
    }
    let settle = || settled(&r, &img, false);
    let merges = |c: Context| {
        c.merge().unwrap();
        assert_eq!(r.read("usr/bin/nk").as_deref(), Some("from nk\n"));
        c.unmerge().unwrap();
        settle();
    };
    let fails = |c: Context, kind: sysext::ErrorKind, text: &str| {
        let err = c.merge().unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("nk.raw") && msg.contains(text), "{msg}");
        settle();
    };
    let no_policy = || ctx(&r, MutableMode::Disabled, None);
    let policy = |p: &str| ctx(&r, MutableMode::Disabled, Some(p));

    // A known root hash: the default policy wants dm-verity, as systemd's does.
    fails(no_policy(), sysext::ErrorKind::Image, "device-mapper");
    merges(policy("root=verity"));
    // Without its hash tree the image is unprotected, which root=verity refuses.
    std::fs::rename(beside("verity"), beside("verity.off")).unwrap();
    fails(policy("root=verity"), sysext::ErrorKind::ImagePolicy, "");
    merges(policy("root=unprotected"));
    std::fs::rename(beside("verity.off"), beside("verity")).unwrap();
    // One changed data block is found (in userspace) and named.
    let mut bad = data.clone();
    bad[2 * 4096 + 5] ^= 0xff;
    std::fs::write(&img, &bad).unwrap();
    fails(policy("root=verity"), sysext::ErrorKind::Image, "block 2");
    std::fs::write(&img, &data).unwrap();

    // A signature beside it, by a signer trusted below the root or not at all.
    let (key, cert) = signer(&stage);
    std::fs::write(beside("roothash.p7s"), sign(&key, &cert, &hex)).unwrap();
    fails(
        policy("root=signed"),
        sysext::ErrorKind::ImagePolicy,
        "signature not accepted",
    );
    std::fs::create_dir_all(r.p("run/verity.d")).unwrap();
    std::fs::copy(&cert, r.p("run/verity.d/test.crt")).unwrap();
    merges(policy("root=signed"));
    no_loop_devices_for(&img);
}

/// The device-mapper devices whose loop devices are backed by one of `imgs`: (dm-N, name).
fn dm_devices_on(imgs: &[&Path]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/block") else {
        return out;
    };
    for e in dir.flatten() {
        let k = e.file_name().to_string_lossy().into_owned();
        if !k.starts_with("dm-") {
            continue;
        }
        let slaves = std::fs::read_dir(e.path().join("slaves"))
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default();
        let on_ours = slaves.iter().any(|s| {
            std::fs::read_to_string(s.path().join("loop/backing_file"))
                .is_ok_and(|b| imgs.iter().any(|i| Path::new(b.trim()) == *i))
        });
        if on_ours {
            let name = std::fs::read_to_string(e.path().join("dm/name")).unwrap_or_default();
            out.push((k, name.trim().to_string()));
        }
    }
    out.sort();
    out
}

/// Waits for the deferred removal of the devices on `imgs`: dm-verity devices go a moment
/// after the last unmount (guests only). Devices of other tests running at the same time are
/// not counted.
fn wait_for_no_dm_devices_on(imgs: &[&Path]) {
    for _ in 0..100 {
        if dm_devices_on(imgs).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("device-mapper devices left: {:?}", dm_devices_on(imgs));
}

#[test]
fn one_verity_device_serves_every_merge_of_an_image_and_a_taken_name_gets_its_own() {
    isolated!();
    let a = TestRoot::new("vshare-a");
    let b = TestRoot::new("vshare-b");
    // The root hash from the partition UUIDs (262), no signature.
    let (vimg, _) = repart_verity_ddi(&a, "vs", 5);
    let img_a = a.p("var/lib/extensions/vs.raw");
    let img_b = b.p("var/lib/extensions/vs.raw");
    std::fs::write(&img_a, &vimg).unwrap();
    std::fs::write(&img_b, &vimg).unwrap();
    let imgs = [img_a.as_path(), img_b.as_path()];
    let ca = ctx_at(&a, sysext::Compat::V262, "root=verity");
    let cb = ctx_at(&b, sysext::Compat::V262, "root=verity");
    if !sysext::testing::sys::dm::available() {
        // Here: verified in userspace, merged without any device-mapper device.
        ca.merge().unwrap();
        cb.merge().unwrap();
        assert!(dm_devices_on(&imgs).is_empty());
        assert_eq!(a.read("usr/bin/vs").as_deref(), Some("from vs\n"));
        assert_eq!(b.read("usr/bin/vs").as_deref(), Some("from vs\n"));
        ca.unmerge().unwrap();
        cb.unmerge().unwrap();
        settled(&a, &img_a, false);
        settled(&b, &img_b, false);
        return;
    }
    // The first merge makes the device, named by the root hash as systemd names it.
    ca.merge().unwrap();
    let first = dm_devices_on(&imgs);
    assert_eq!(first.len(), 1, "{first:?}");
    let shared = first[0].1.clone();
    let hex = shared.strip_suffix("-verity").unwrap();
    assert!(
        hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "{shared}"
    );
    // The second merge of the same image (another copy, another root) takes it over.
    cb.merge().unwrap();
    assert_eq!(dm_devices_on(&imgs), first);
    assert_eq!(b.read("usr/bin/vs").as_deref(), Some("from vs\n"));
    // It stays while one merge uses it, and goes with the last.
    ca.unmerge().unwrap();
    assert_eq!(dm_devices_on(&imgs), first);
    assert_eq!(b.read("usr/bin/vs").as_deref(), Some("from vs\n"));
    cb.unmerge().unwrap();
    wait_for_no_dm_devices_on(&imgs);
    // A device of another table holds the name: the merge makes a device of its own
    // (loopN-verity) and leaves that one alone.
    let ctl = sysext::testing::sys::dm::Control::open().unwrap();
    ctl.create(&shared, "LIBSYSEXT-TEST-TAKEN", true).unwrap();
    let error = sysext::testing::sys::dm::Target {
        start: 0,
        length: 8,
        kind: "error".into(),
        params: String::new(),
    };
    ctl.load(&shared, &[error], true).unwrap();
    ctl.resume(&shared).unwrap();
    ca.merge().unwrap();
    let own = dm_devices_on(&imgs);
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(
        own[0].1.starts_with("loop") && own[0].1.ends_with("-verity"),
        "{own:?}"
    );
    assert_eq!(a.read("usr/bin/vs").as_deref(), Some("from vs\n"));
    ca.unmerge().unwrap();
    wait_for_no_dm_devices_on(&imgs);
    let (_, targets) = ctl.table(&shared, true).unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].kind, "error");
    ctl.remove(&shared, false).unwrap();
    settled(&a, &img_a, false);
    settled(&b, &img_b, false);
}
