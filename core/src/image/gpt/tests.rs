use super::*;
use crate::image::dps::{type_guid, LINUX_GENERIC};
use crate::image::policy::{ImagePolicy, PartitionDesignator as D, PolicyFlags, PolicyViolation};
use crate::image::testutil::{pseudo_random, Mem};

const MIB: u64 = 1 << 20;

fn t(d: D, arch: &str) -> Guid {
    type_guid(d, Some(arch)).unwrap()
}

/// The primary table only (the checks of one header and its entries).
fn parse(img: Vec<u8>) -> Result<GptTable, GptError> {
    let n = img.len() as u64;
    let mem = Mem(img);
    match probe_sector_size(&mem, n).unwrap() {
        Some(ss) => read_header_at(&mem, n, ss, Which::Primary),
        None => Err(GptError::NotGpt),
    }
}

/// What [`read`] makes of an image: the primary table, else the backup one.
fn read_any(img: Vec<u8>) -> Result<GptTable, GptError> {
    let n = img.len() as u64;
    read(&Mem(img), n)
}

#[test]
fn a_broken_primary_table_is_replaced_by_the_backup() {
    let good = GptBuilder::new(512, 4 * MIB)
        .append(t(D::Root, "x86-64"), 65536, "root", 0, vec![])
        .append(t(D::Usr, "x86-64"), 65536, "usr", 0, vec![]);
    let img = good.build();
    let want = read_any(img.clone()).unwrap();
    assert_eq!(want.primary_broken, None);
    let n = img.len();
    // Primary header CRC, primary entry array CRC, primary header zeroed (no signature
    // at LBA 1 at all): the backup gives the same partitions, and says why.
    let mut crc = img.clone();
    crc[512 + 40] ^= 1;
    let mut entries = img.clone();
    entries[1024 + 60] ^= 1;
    let mut zeroed = img.clone();
    zeroed[512..1024].fill(0);
    for (what, bad, why) in [
        ("header CRC", crc, "GPT header: CRC32 mismatch"),
        (
            "entry CRC",
            entries,
            "GPT partition entry array: CRC32 mismatch",
        ),
        ("zeroed header", zeroed, "no GPT header found"),
    ] {
        let t = read_any(bad.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(t.partitions, want.partitions, "{what}");
        let p = t
            .primary_broken
            .unwrap_or_else(|| panic!("{what}: not noted"));
        assert!(p.starts_with(why), "{what}: {p}");
        // Broken at both ends: both reasons are given.
        let mut both = bad;
        both[n - 512 + 40] ^= 1;
        let e = read_any(both).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, GptError::BothBroken { .. }), "{what}: {msg}");
        assert!(
            msg.starts_with(&format!("primary table: {why}"))
                && msg.contains("; backup table: GPT header: CRC32 mismatch"),
            "{what}: {msg}"
        );
    }
    // A backup header that claims another place is not taken.
    let mut moved = img.clone();
    moved[512 + 40] ^= 1;
    moved[n - 512 + 24..n - 512 + 32].copy_from_slice(&5u64.to_le_bytes());
    let e = read_any(moved).unwrap_err();
    assert!(e.to_string().contains("backup table: GPT header"), "{e}");
}

fn table(b: GptBuilder) -> GptTable {
    parse(b.build()).unwrap()
}

/// Recomputes both CRCs of the primary header after a test edited it or the array.
fn fix_crcs(img: &mut [u8], ss: usize) {
    let n = u32::from_le_bytes(img[ss + 80..ss + 84].try_into().unwrap()) as usize;
    let es = u32::from_le_bytes(img[ss + 84..ss + 88].try_into().unwrap()) as usize;
    let lba = u64::from_le_bytes(img[ss + 72..ss + 80].try_into().unwrap()) as usize;
    let range = lba
        .checked_mul(ss)
        .and_then(|a| Some((a, a.checked_add(n.checked_mul(es)?)?)))
        .filter(|&(_, b)| b <= img.len());
    if let Some((a, b)) = range {
        let crc = crc32fast::hash(&img[a..b]);
        img[ss + 88..ss + 92].copy_from_slice(&crc.to_le_bytes());
    }
    img[ss + 16..ss + 20].fill(0);
    let crc = crc32fast::hash(&img[ss..ss + 92]);
    img[ss + 16..ss + 20].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn parses_512_and_4096() {
    for ss in [512u32, 4096] {
        let b = GptBuilder::new(ss, 8 * MIB)
            .append(
                t(D::Root, "x86-64"),
                100_000,
                "root-x86-64",
                0,
                b"hello".to_vec(),
            )
            .append(
                t(D::RootVerity, "x86-64"),
                8192,
                "verity",
                FLAG_READ_ONLY,
                vec![],
            );
        let img = b.build();
        let tab = parse(img.clone()).unwrap();
        assert_eq!(tab.sector_size, ss);
        assert_eq!(tab.partitions.len(), 2);
        let p = &tab.partitions[0];
        assert_eq!(p.number, 1);
        assert_eq!(p.type_guid, t(D::Root, "x86-64"));
        assert_eq!(p.name, "root-x86-64");
        assert_eq!(p.offset % 4096, 0);
        assert!(p.size >= 100_000 && p.size < 100_000 + u64::from(ss));
        assert_eq!(&img[p.offset as usize..p.offset as usize + 5], b"hello");
        let v = &tab.partitions[1];
        assert_eq!(v.number, 2);
        assert_eq!(v.flags, FLAG_READ_ONLY);
        assert!(v.offset >= p.offset + p.size);
        assert_eq!(tab.disk_guid, b.disk_guid);
        assert!(is_gpt(&Mem(img.clone()), img.len() as u64).unwrap());
        assert_eq!(
            probe_sector_size(&Mem(img.clone()), img.len() as u64).unwrap(),
            Some(ss)
        );
    }
}

#[test]
fn empty_slots_keep_numbers() {
    let mut b = GptBuilder::new(512, 4 * MIB)
        .append(t(D::Root, "x86-64"), 4096, "a", 0, vec![])
        .append(t(D::Usr, "x86-64"), 4096, "b", 0, vec![]);
    b.partitions[0].type_guid = Guid::NIL;
    let tab = table(b);
    assert_eq!(tab.partitions.len(), 1);
    assert_eq!(tab.partitions[0].number, 2);
}

#[test]
fn corrupt_gpt_headers_and_entries_are_rejected() {
    let good = GptBuilder::new(512, 4 * MIB)
        .append(t(D::Root, "x86-64"), 65536, "root", 0, vec![])
        .append(t(D::Usr, "x86-64"), 65536, "usr", 0, vec![]);
    let img = good.build();
    parse(img.clone()).unwrap();

    // Header CRC.
    let mut bad = img.clone();
    bad[512 + 40] ^= 1;
    assert!(matches!(parse(bad), Err(GptError::HeaderCrc { .. })));
    // Entry array CRC.
    let mut bad = img.clone();
    bad[1024 + 60] ^= 1;
    let e = parse(bad).unwrap_err();
    assert!(matches!(e, GptError::EntryArrayCrc { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with("GPT partition entry array: CRC32 mismatch"));
    // No protective MBR.
    let mut bad = img.clone();
    bad[446 + 4] = 0x83;
    assert!(matches!(parse(bad), Err(GptError::NoProtectiveMbr)));
    let mut bad = img.clone();
    bad[511] = 0;
    assert!(matches!(parse(bad), Err(GptError::NoProtectiveMbr)));
    // Truncated files.
    assert!(matches!(
        parse(img[..600].to_vec()),
        Err(GptError::Truncated("header"))
    ));
    assert!(matches!(
        parse(img[..4096].to_vec()),
        Err(GptError::Truncated("usable area"))
    ));
    assert!(matches!(
        parse(img[..2 * MIB as usize].to_vec()),
        Err(GptError::Truncated("usable area"))
    ));
    assert!(matches!(parse(img[..100].to_vec()), Err(GptError::NotGpt)));
    assert!(matches!(parse(Vec::new()), Err(GptError::NotGpt)));
    // Garbage appended is fine.
    let mut longer = img.clone();
    longer.extend_from_slice(&[0xAB; 8192]);
    parse(longer).unwrap();
    // Not a GPT at all.
    assert!(matches!(parse(vec![0; 65536]), Err(GptError::NotGpt)));
    // Bad header size, with a correct CRC.
    let mut bad = img.clone();
    bad[512 + 12..512 + 16].copy_from_slice(&600u32.to_le_bytes());
    assert!(matches!(parse(bad), Err(GptError::BadHeader(_))));
    // Absurd entry count, with correct CRCs.
    let mut bad = img.clone();
    bad[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes());
    bad[512 + 16..512 + 20].fill(0);
    let c = crc32fast::hash(&bad[512..512 + 92]);
    bad[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
    assert!(matches!(parse(bad), Err(GptError::BadHeader(_))));
}

#[test]
fn rejects_bad_partitions() {
    let base = || GptBuilder::new(4096, 4 * MIB);
    let part = |first, last| BuilderPartition {
        type_guid: LINUX_GENERIC,
        uuid: Guid::must("11111111-2222-4333-8444-555555555555"),
        first_lba: first,
        last_lba: last,
        flags: 0,
        name: String::new(),
        contents: vec![],
    };
    let fu = base().first_usable_lba();
    let lu = base().last_usable_lba();

    let e = parse(
        base()
            .partition(part(fu, fu + 10))
            .partition(part(fu + 5, fu + 20))
            .build(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            GptError::Overlap {
                number: 2,
                other: 1
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "GPT entry of partition 2: overlaps partition 1"
    );
    // Contained in another, not adjacent in start order.
    let e = parse(
        base()
            .partition(part(fu + 50, fu + 60))
            .partition(part(fu, fu + 100))
            .partition(part(fu + 20, fu + 30))
            .build(),
    )
    .unwrap_err();
    assert!(matches!(e, GptError::Overlap { .. }), "{e}");
    // Touching is fine.
    parse(
        base()
            .partition(part(fu, fu + 10))
            .partition(part(fu + 11, fu + 20))
            .build(),
    )
    .unwrap();
    // Past the end of the disk / usable area.
    let e = parse(base().partition(part(fu, lu + 1)).build()).unwrap_err();
    assert!(matches!(e, GptError::OutOfBounds { number: 1, .. }), "{e}");
    let e = parse(base().partition(part(lu + 100, lu + 1000)).build()).unwrap_err();
    assert!(matches!(e, GptError::OutOfBounds { .. }), "{e}");
    // Inside the header area.
    let e = parse(base().partition(part(1, 3)).build()).unwrap_err();
    assert!(matches!(e, GptError::OutOfBounds { .. }), "{e}");
    // first > last.
    let e = parse(base().partition(part(fu + 10, fu + 5)).build()).unwrap_err();
    assert!(matches!(e, GptError::InvalidRange { number: 1, .. }), "{e}");
    // Usable area past the end of the disk (with valid CRCs).
    let mut img = base().build();
    img[4096 + 48..4096 + 56].copy_from_slice(&10_000u64.to_le_bytes());
    fix_crcs(&mut img, 4096);
    assert!(matches!(
        parse(img),
        Err(GptError::Truncated("usable area"))
    ));
}

#[test]
fn never_panics_on_mutations() {
    let img = GptBuilder::new(512, MIB)
        .append(t(D::Root, "x86-64"), 4096, "root", 0, vec![])
        .append(t(D::RootVerity, "x86-64"), 4096, "v", 0, vec![])
        .build();
    // Flip bytes all over the metadata area; re-fix CRCs half of the time, so that the
    // semantic checks get exercised too.
    let noise = pseudo_random(40_000, 7);
    for i in 0..20_000 {
        let mut m = img.clone();
        let pos = (usize::from(noise[2 * i]) << 8 | usize::from(noise[2 * i + 1])) % (512 * 34);
        m[pos] ^= noise[(i * 3) % noise.len()] | 1;
        if i % 2 == 0 {
            fix_crcs(&mut m, 512);
        }
        let n = m.len() as u64;
        let _ = read(&Mem(m.clone()), n);
        let _ = read(&Mem(m), n / 2);
    }
    for seed in 0..200 {
        let junk = pseudo_random(70_000, seed);
        let _ = parse(junk);
    }
}

#[test]
fn tables_written_by_sfdisk_read_back_as_written() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if Command::new("sfdisk").arg("--version").output().is_err() {
        eprintln!("sfdisk not available, skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(16 * MIB).unwrap();
    drop(f);
    let script = format!(
        "label: gpt\nfirst-lba: 2048\n\
         start=2048, size=4096, type={}, name=\"usr-a\", attrs=\"GUID:60\"\n\
         start=8192, size=2048, type={}, uuid=11112222-3333-4444-5555-666677778888\n\
         size=1024, type={}, attrs=\"GUID:63\"\n",
        t(D::Usr, "arm64"),
        t(D::UsrVerity, "arm64"),
        LINUX_GENERIC
    );
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let file = std::fs::File::open(&path).unwrap();
    let tab = read(&file, 16 * MIB).unwrap();
    assert_eq!(tab.sector_size, 512);
    assert_eq!(tab.partitions.len(), 3);
    let p = &tab.partitions[0];
    assert_eq!(
        (p.type_guid, p.offset, p.size, p.flags, p.name.as_str()),
        (
            t(D::Usr, "arm64"),
            2048 * 512,
            4096 * 512,
            FLAG_READ_ONLY,
            "usr-a"
        )
    );
    assert_eq!(
        tab.partitions[1].uuid.to_string(),
        "11112222-3333-4444-5555-666677778888"
    );
    assert_eq!(tab.partitions[2].flags, FLAG_NO_AUTO);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(sel.usr.as_ref().unwrap().number, 1);
    assert_eq!(sel.usr.as_ref().unwrap().arch, Some("arm64"));
    assert_eq!(sel.usr_verity.as_ref().unwrap().number, 2);
    assert!(sel.generic.is_none());
}

// --- selection -----------------------------------------------------------------------

fn ddi(parts: &[(Guid, &str, u64)]) -> GptTable {
    let mut b = GptBuilder::new(512, 8 * MIB);
    for (g, name, flags) in parts {
        b = b.append(*g, 65536, name, *flags, vec![]);
    }
    table(b)
}

fn num(p: &Option<Part>) -> Option<u32> {
    p.as_ref().map(|p| p.number)
}

#[test]
fn selects_native_root_and_verity() {
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "root", 0),
        (t(D::RootVerity, "x86-64"), "v", 0),
        (t(D::RootVeritySig, "x86-64"), "s", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(
        (
            num(&sel.root),
            num(&sel.root_verity),
            num(&sel.root_verity_sig)
        ),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(sel.root.as_ref().unwrap().arch, Some("x86-64"));
    assert_eq!(sel.protection(D::Root), PolicyFlags::SIGNED);
    assert_eq!(sel.protection(D::Usr), PolicyFlags::ABSENT);
}

/// The shape of a sysext DDI (systemd-repart's usr, usr-verity, usr-verity-sig): the usr
/// partition is `signed`, as a root one is.
#[test]
fn selects_usr_with_its_verity_and_signature() {
    let tab = ddi(&[
        (t(D::Usr, "x86-64"), "usr", 0),
        (t(D::UsrVerity, "x86-64"), "v", 0),
        (t(D::UsrVeritySig, "x86-64"), "s", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(
        (
            num(&sel.usr),
            num(&sel.usr_verity),
            num(&sel.usr_verity_sig)
        ),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(sel.protection(D::Usr), PolicyFlags::SIGNED);
    assert_eq!(sel.protection(D::Root), PolicyFlags::ABSENT);
}

#[test]
fn prefers_native_over_foreign_and_uses_foreign_alone() {
    let dual = ddi(&[
        (t(D::Root, "arm64"), "a", 0),
        (t(D::RootVerity, "arm64"), "av", 0),
        (t(D::Root, "x86-64"), "x", 0),
        (t(D::RootVerity, "x86-64"), "xv", 0),
    ]);
    let sel = select(&dual, "x86-64").unwrap();
    assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(3), Some(4)));
    let sel = select(&dual, "arm64").unwrap();
    assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(1), Some(2)));
    // Only foreign: used.
    let foreign = ddi(&[(t(D::Root, "arm64"), "a", 0)]);
    let sel = select(&foreign, "x86-64").unwrap();
    assert_eq!(sel.root.as_ref().unwrap().arch, Some("arm64"));
    // Secondary beats other foreign architectures.
    let tab = ddi(&[(t(D::Root, "arm64"), "a", 0), (t(D::Root, "x86"), "b", 0)]);
    assert_eq!(num(&select(&tab, "x86-64").unwrap().root), Some(2));
}

#[test]
fn verity_follows_data_architecture() {
    // Native root-verity without native root: the verity partition of the root's arch wins.
    let tab = ddi(&[
        (t(D::Root, "arm64"), "a", 0),
        (t(D::RootVerity, "x86-64"), "xv", 0),
        (t(D::RootVerity, "arm64"), "av", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(1), Some(3)));
    // The signature partitions likewise, of usr as of root.
    for (data, verity, sig) in [
        (D::Usr, D::UsrVerity, D::UsrVeritySig),
        (D::Root, D::RootVerity, D::RootVeritySig),
    ] {
        let tab = ddi(&[
            (t(data, "arm64"), "d", 0),
            (t(verity, "arm64"), "v", 0),
            (t(sig, "x86-64"), "xs", 0),
            (t(sig, "arm64"), "as", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        let got = if data == D::Usr {
            num(&sel.usr_verity_sig)
        } else {
            num(&sel.root_verity_sig)
        };
        assert_eq!(got, Some(4), "{sig}");
    }
}

#[test]
fn newest_label_wins() {
    let tab = ddi(&[
        (t(D::Usr, "x86-64"), "foo_1.9", 0),
        (t(D::Usr, "x86-64"), "foo_1.10", 0),
        (t(D::Usr, "x86-64"), "foo_1.2", 0),
    ]);
    assert_eq!(num(&select(&tab, "x86-64").unwrap().usr), Some(2));
    // Labels compare as systemd's strverscmp_improved() compares them (crate::version):
    // a `~` marks a pre-release, older than the release (bytewise it would sort after it).
    let tab = ddi(&[
        (t(D::Usr, "x86-64"), "foo_1.0~rc1", 0),
        (t(D::Usr, "x86-64"), "foo_1.0", 0),
    ]);
    assert_eq!(num(&select(&tab, "x86-64").unwrap().usr), Some(2));
    // Equal labels: the first one stays.
    let tab = ddi(&[
        (t(D::Usr, "x86-64"), "same", 0),
        (t(D::Usr, "x86-64"), "same", 0),
    ]);
    assert_eq!(num(&select(&tab, "x86-64").unwrap().usr), Some(1));
}

#[test]
fn generic_linux_partition_is_root_when_alone() {
    let tab = ddi(&[(LINUX_GENERIC, "data", 0)]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(num(&sel.root), Some(1));
    assert!(sel.root.as_ref().unwrap().is_generic());
    assert_eq!(num(&sel.generic), Some(1));
    // Two generic partitions and nothing else: ambiguous.
    let tab = ddi(&[(LINUX_GENERIC, "a", 0), (LINUX_GENERIC, "b", 0)]);
    let e = select(&tab, "x86-64").unwrap_err();
    assert_eq!(e, SelectError::MultipleGeneric);
    assert_eq!(e.errno(), libc::ENOTUNIQ);
    // A DPS root wins over generic partitions.
    let tab = ddi(&[
        (LINUX_GENERIC, "a", 0),
        (LINUX_GENERIC, "b", 0),
        (t(D::Root, "x86-64"), "r", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(num(&sel.root), Some(3));
    assert!(sel.generic.is_none());
    // Not allowed by the options.
    let tab = ddi(&[(LINUX_GENERIC, "data", 0)]);
    let opts = SelectOptions {
        allow_generic: false,
        ..SelectOptions::new("x86-64")
    };
    assert_eq!(
        select_with(&tab, &opts).unwrap_err(),
        SelectError::NoRootOrUsr
    );
}

#[test]
fn root_with_usr_needs_one_architecture_and_at_most_usr_verity() {
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "r", 0),
        (t(D::Usr, "x86-64"), "u", 0),
        (t(D::Home, "x86-64"), "h", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!((num(&sel.root), num(&sel.usr)), (Some(1), Some(2)));
    assert_eq!(sel.other.len(), 1);
    assert_eq!(sel.other[0].0, D::Home);
    // Different architectures.
    let tab = ddi(&[(t(D::Root, "x86-64"), "r", 0), (t(D::Usr, "arm64"), "u", 0)]);
    assert!(matches!(
        select(&tab, "x86-64"),
        Err(SelectError::ArchitectureMismatch {
            root: "x86-64",
            usr: "arm64"
        })
    ));
    // Verity root with a separate usr.
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "r", 0),
        (t(D::RootVerity, "x86-64"), "rv", 0),
        (t(D::Usr, "x86-64"), "u", 0),
    ]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::VerityRootWithUsr
    );
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "r", 0),
        (t(D::RootVerity, "x86-64"), "rv", 0),
        (t(D::Usr, "x86-64"), "u", 0),
        (t(D::UsrVerity, "x86-64"), "uv", 0),
    ]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::MultipleVerity
    );
    // Unprotected root with a verity usr is fine.
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "r", 0),
        (t(D::Usr, "x86-64"), "u", 0),
        (t(D::UsrVerity, "x86-64"), "uv", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(num(&sel.usr_verity), Some(3));
    assert_eq!(sel.protection(D::Usr), PolicyFlags::VERITY);
    assert_eq!(
        sel.protection(D::Root),
        PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED
    );
}

#[test]
fn orphaned_verity_is_an_error() {
    let tab = ddi(&[
        (t(D::Usr, "x86-64"), "u", 0),
        (t(D::RootVerity, "x86-64"), "rv", 0),
    ]);
    let e = select(&tab, "x86-64").unwrap_err();
    assert_eq!(
        e,
        SelectError::VerityWithoutData {
            designator: D::RootVerity,
            data: D::Root
        }
    );
    assert_eq!(e.errno(), libc::EADDRNOTAVAIL);
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "r", 0),
        (t(D::RootVeritySig, "x86-64"), "s", 0),
    ]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::SignatureWithoutVerity {
            designator: D::RootVeritySig
        }
    );
}

#[test]
fn image_without_root_or_usr_is_refused() {
    let tab = ddi(&[(t(D::Home, "x86-64"), "h", 0)]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::NoRootOrUsr
    );
    let tab = ddi(&[]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::NoRootOrUsr
    );
    let opts = SelectOptions {
        require_root: false,
        ..SelectOptions::new("x86-64")
    };
    assert_eq!(
        select_with(&tab, &opts).unwrap_err(),
        SelectError::NoPartitions
    );
}

#[test]
fn no_auto_flag_is_honoured() {
    let tab = ddi(&[
        (t(D::Root, "x86-64"), "hidden", FLAG_NO_AUTO),
        (t(D::Root, "arm64"), "shown", 0),
    ]);
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!(num(&sel.root), Some(2));
    let tab = ddi(&[(t(D::Root, "x86-64"), "hidden", FLAG_NO_AUTO)]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::NoRootOrUsr
    );
    let tab = ddi(&[(LINUX_GENERIC, "g", FLAG_NO_AUTO)]);
    assert_eq!(
        select(&tab, "x86-64").unwrap_err(),
        SelectError::NoRootOrUsr
    );
    // Read-only and growfs are reported, not acted upon.
    let tab = ddi(&[(t(D::Usr, "x86-64"), "u", FLAG_READ_ONLY | FLAG_GROWFS)]);
    let sel = select(&tab, "x86-64").unwrap();
    assert!(sel.usr.as_ref().unwrap().read_only());
    assert!(sel.usr.as_ref().unwrap().growfs());
}

#[test]
fn verity_uuids_are_the_root_hash_halves() {
    let hash: Vec<u8> = (1..=32).collect();
    let (data_uuid, verity_uuid) = verity_uuids(&hash).unwrap();
    assert_eq!(
        data_uuid.to_string(),
        "01020304-0506-0708-090a-0b0c0d0e0f10"
    );
    assert_eq!(
        verity_uuid.to_string(),
        "11121314-1516-1718-191a-1b1c1d1e1f20"
    );
    let b = GptBuilder::new(512, 8 * MIB)
        .append(t(D::Root, "x86-64"), 65536, "r_2", 0, vec![])
        .append(t(D::RootVerity, "x86-64"), 65536, "v_2", 0, vec![])
        .append_with_uuid(t(D::Root, "x86-64"), data_uuid, 65536, "r_1", 0, vec![])
        .append_with_uuid(
            t(D::RootVerity, "x86-64"),
            verity_uuid,
            65536,
            "v_1",
            0,
            vec![],
        );
    let tab = table(b);
    // Without a hash, the newest label wins.
    let sel = select(&tab, "x86-64").unwrap();
    assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(1), Some(2)));
    let opts = SelectOptions {
        root_hash: Some((&hash, D::Root)),
        ..SelectOptions::new("x86-64")
    };
    let sel = select_with(&tab, &opts).unwrap();
    assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(3), Some(4)));
}

#[test]
fn image_policy_ignores_and_refuses_partitions_during_selection() {
    let signed = ddi(&[
        (t(D::Root, "x86-64"), "r", 0),
        (t(D::RootVerity, "x86-64"), "v", 0),
        (t(D::RootVeritySig, "x86-64"), "s", 0),
        (t(D::Home, "x86-64"), "h", 0),
        (t(D::Esp, "x86-64"), "esp", 0),
    ]);
    let with = |pol: &str| {
        let p = ImagePolicy::parse(pol).unwrap();
        select_with(
            &signed,
            &SelectOptions {
                policy: Some(&p),
                ..SelectOptions::new("x86-64")
            },
        )
    };
    let sel = with("root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent").unwrap();
    assert_eq!(sel.protection(D::Root), PolicyFlags::SIGNED);
    assert!(sel.ignored.contains(&D::Home) && sel.ignored.contains(&D::Esp));
    assert!(sel.other.is_empty());
    // root=verity: the signature partition is ignored, verity used.
    let sel = with("root=verity").unwrap();
    assert!(sel.root_verity_sig.is_none());
    assert!(sel.ignored.contains(&D::RootVeritySig));
    assert_eq!(sel.protection(D::Root), PolicyFlags::VERITY);
    // root=unprotected: both verity partitions are ignored.
    let sel = with("root=unprotected").unwrap();
    assert!(sel.root_verity.is_none() && sel.root_verity_sig.is_none());
    assert_eq!(
        sel.protection(D::Root),
        PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED
    );
    // root=signed is satisfied; usr=signed is satisfied by absence? No: absent not allowed.
    with("root=signed").unwrap();
    let e = with("root=signed:usr=signed").unwrap_err();
    assert!(
        matches!(
            e,
            SelectError::Policy(PolicyViolation::Protection {
                designator: D::Usr,
                ..
            })
        ),
        "{e}"
    );
    assert_eq!(e.errno(), libc::ERFKILL);
    // Home must be absent.
    let e = with("root=open:home=absent").unwrap_err();
    assert!(
        matches!(
            e,
            SelectError::Policy(PolicyViolation::MustBeAbsent {
                designator: D::Home,
                ..
            })
        ),
        "{e}"
    );
    // Deny everything.
    assert!(with("~").is_err());
    // Ignore root (and so its verity partitions): nothing left.
    assert_eq!(with("root=ignore").unwrap_err(), SelectError::NoRootOrUsr);
    // Read-only flag required.
    assert!(matches!(
        with("root=open+read-only-on").unwrap_err(),
        SelectError::Policy(PolicyViolation::PartitionFlag { .. })
    ));

    // An unprotected image fails a verity-only policy.
    let plain = ddi(&[(t(D::Root, "x86-64"), "r", 0)]);
    let p = ImagePolicy::parse("root=verity+signed:usr=verity+signed").unwrap();
    let e = select_with(
        &plain,
        &SelectOptions {
            policy: Some(&p),
            ..SelectOptions::new("x86-64")
        },
    )
    .unwrap_err();
    assert!(matches!(e, SelectError::Policy(_)));
    let p = ImagePolicy::initrd_sysext();
    assert!(select_with(
        &plain,
        &SelectOptions {
            policy: Some(&p),
            ..SelectOptions::new("x86-64")
        }
    )
    .is_err());
    let p = ImagePolicy::sysext_default();
    select_with(
        &plain,
        &SelectOptions {
            policy: Some(&p),
            ..SelectOptions::new("x86-64")
        },
    )
    .unwrap();

    // Generic partition under a policy that ignores root.
    let generic = ddi(&[(LINUX_GENERIC, "g", 0)]);
    let p = ImagePolicy::parse("usr=open").unwrap();
    let e = select_with(
        &generic,
        &SelectOptions {
            policy: Some(&p),
            ..SelectOptions::new("x86-64")
        },
    )
    .unwrap_err();
    assert_eq!(e, SelectError::NoRootOrUsr);
}
