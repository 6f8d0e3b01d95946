use super::*;
use crate::image::dps::Guid;
use crate::image::testutil::{pseudo_random, Mem};

fn salt() -> Vec<u8> {
    (0u8..32).map(|i| i.wrapping_mul(37)).collect()
}

fn params() -> FormatParams {
    FormatParams {
        salt: salt(),
        ..FormatParams::default()
    }
}

/// An independent, naive implementation of the veritysetup layout (hash type 1) used to
/// check `format` and `verify`.
fn naive_tree(data: &[u8], dbs: usize, hbs: usize, salt: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let h = |b: &[u8]| {
        let mut d = Sha256::new();
        d.update(salt);
        d.update(b);
        d.finalize().to_vec()
    };
    let mut cur: Vec<Vec<u8>> = data.chunks(dbs).map(h).collect();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    while cur.len() > 1 {
        let mut level = Vec::new();
        let mut next = Vec::new();
        for group in cur.chunks(hbs / 32) {
            let mut blk: Vec<u8> = group.concat();
            blk.resize(hbs, 0);
            next.push(h(&blk));
            level.extend_from_slice(&blk);
        }
        levels.push(level);
        cur = next;
    }
    let mut area = Vec::new();
    for l in levels.iter().rev() {
        area.extend_from_slice(l);
    }
    (area, cur.remove(0))
}

#[test]
fn superblock_round_trip() {
    let sb = VeritySuperblock {
        version: 1,
        hash_type: 1,
        uuid: Guid::must("6f0c2a4e-0000-4000-8000-0000000000ee"),
        algorithm: "sha256".into(),
        data_block_size: 4096,
        hash_block_size: 4096,
        data_blocks: 12345,
        salt: salt(),
    };
    let b = sb.to_bytes();
    assert_eq!(&b[0..8], b"verity\0\0");
    assert_eq!(VeritySuperblock::parse(&b).unwrap(), sb);
    let mut bad = b;
    bad[0] = b'V';
    assert!(matches!(
        VeritySuperblock::parse(&bad),
        Err(VerityError::BadSuperblock(_))
    ));
    let mut bad = b;
    bad[8] = 2;
    assert!(VeritySuperblock::parse(&bad).is_err());
    let mut bad = b;
    bad[64..68].copy_from_slice(&1000u32.to_le_bytes());
    assert!(VeritySuperblock::parse(&bad).is_err());
    let mut bad = b;
    bad[80..82].copy_from_slice(&300u16.to_le_bytes());
    assert!(VeritySuperblock::parse(&bad).is_err());
    assert!(VeritySuperblock::parse(&b[..100]).is_err());
    // An algorithm name of the field's full 32 bytes has no NUL and round-trips (found
    // by the verity_superblock fuzz target).
    let long = VeritySuperblock {
        algorithm: "a".repeat(32),
        ..sb.clone()
    };
    assert_eq!(VeritySuperblock::parse(&long.to_bytes()).unwrap(), long);
}

#[test]
fn format_matches_naive_and_verifies() {
    // 1 block (no tree), a partial and a full level-0 block, two levels; with 512-byte
    // hash blocks (16 digests each) also three and four levels.
    for (blocks, hbs) in [
        (1usize, 4096usize),
        (2, 4096),
        (7, 4096),
        (128, 4096),
        (129, 4096),
        (300, 4096),
        (16, 512),
        (17, 512),
        (257, 512),
        (300, 512),
        (4097, 512),
    ] {
        let data = pseudo_random(blocks * 4096, blocks as u64);
        let p = FormatParams {
            hash_block_size: hbs as u32,
            ..params()
        };
        let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
        let (naive_area, naive_root) = naive_tree(&data, 4096, hbs, &salt());
        assert_eq!(root, naive_root, "{blocks} blocks");
        assert_eq!(&area[hbs..], &naive_area[..], "{blocks} blocks");
        verify(
            &Mem(data.clone()),
            0,
            data.len() as u64,
            &Mem(area.clone()),
            0,
            &root,
        )
        .unwrap();
        // The last data block and a block in the middle are checked too.
        for b in [blocks - 1, blocks / 2] {
            let mut d = data.clone();
            d[b * 4096 + 4095] ^= 0x80;
            match verify(&Mem(d), 0, data.len() as u64, &Mem(area.clone()), 0, &root) {
                Err(VerityError::DataBlockMismatch { block }) => assert_eq!(block, b as u64),
                Err(VerityError::RootHashMismatch) if blocks == 1 => {}
                other => panic!("{blocks} blocks, flip in {b}: {other:?}"),
            }
        }
    }
}

#[test]
fn verify_rejects_flips() {
    let blocks = 300u64;
    let data = pseudo_random(blocks as usize * 4096, 99);
    let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &params()).unwrap();
    let ok = |d: &[u8], a: &[u8], r: &[u8]| {
        verify(&Mem(d.to_vec()), 0, d.len() as u64, &Mem(a.to_vec()), 0, r)
    };
    ok(&data, &area, &root).unwrap();

    for block in [0u64, 1, 127, 128, 299] {
        let mut d = data.clone();
        d[block as usize * 4096 + 17] ^= 0x40;
        match ok(&d, &area, &root) {
            Err(VerityError::DataBlockMismatch { block: b }) => assert_eq!(b, block),
            other => panic!("flip in block {block}: {other:?}"),
        }
    }
    // Tree: levels are [top (1 block) at 1, level 0 (3 blocks) at 2..5].
    let mut a = area.clone();
    a[3 * 4096 + 5] ^= 1; // level-0 hash block 1
    match ok(&data, &a, &root) {
        Err(VerityError::HashBlockMismatch { level: 0, block: 1 }) => {}
        other => panic!("{other:?}"),
    }
    let mut a = area.clone();
    a[4096 + 3] ^= 1; // top block
    assert!(matches!(
        ok(&data, &a, &root),
        Err(VerityError::RootHashMismatch)
    ));
    let mut r = root.clone();
    r[0] ^= 1;
    assert!(matches!(
        ok(&data, &area, &r),
        Err(VerityError::RootHashMismatch)
    ));
    assert!(matches!(
        ok(&data, &area, &root[..20]),
        Err(VerityError::RootHashLength { .. })
    ));
    // Truncated data or hash area.
    assert!(matches!(
        verify(
            &Mem(data.clone()),
            0,
            data.len() as u64 - 1,
            &Mem(area.clone()),
            0,
            &root
        ),
        Err(VerityError::DataTooSmall { .. })
    ));
    assert!(matches!(
        ok(&data[..4096 * 10], &area, &root),
        Err(VerityError::DataTooSmall { .. })
    ));
    assert!(matches!(
        ok(&data, &area[..3 * 4096], &root),
        Err(VerityError::HashAreaTruncated { .. })
    ));
    // Extra data after the covered blocks is not covered.
    let mut longer = data.clone();
    longer.extend_from_slice(b"trailing garbage");
    ok(&longer, &area, &root).unwrap();
}

#[test]
fn verity_formats_and_verifies_at_offsets_and_on_one_block() {
    // Data and hash area inside bigger files, as partitions of one image.
    let data = pseudo_random(3 * 4096, 5);
    let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &params()).unwrap();
    let mut img = vec![0xEEu8; 8192];
    img.extend_from_slice(&data);
    let hash_at = img.len() as u64 + 4096;
    img.extend_from_slice(&[0u8; 4096]);
    img.extend_from_slice(&area);
    let m = Mem(img);
    verify(&m, 8192, data.len() as u64, &m, hash_at, &root).unwrap();
    let (area2, root2) = format(&m, 8192, data.len() as u64, &params()).unwrap();
    assert_eq!((area2, root2.clone()), (area, root));
    assert!(verify(&m, 8191, data.len() as u64, &m, hash_at, &root2).is_err());

    let one = pseudo_random(4096, 6);
    let (area, root) = format(&Mem(one.clone()), 0, 4096, &params()).unwrap();
    assert_eq!(area.len(), 4096); // superblock only
    let mut d = Sha256::new();
    d.update(salt());
    d.update(&one);
    assert_eq!(root, d.finalize().to_vec());
    verify(&Mem(one.clone()), 0, 4096, &Mem(area.clone()), 0, &root).unwrap();
    let mut bad = one;
    bad[0] ^= 1;
    assert!(matches!(
        verify(&Mem(bad), 0, 4096, &Mem(area), 0, &root),
        Err(VerityError::RootHashMismatch)
    ));
}

#[test]
fn other_hashes_and_block_sizes_verify_and_md5_is_unsupported() {
    let data = pseudo_random(40 * 1024, 11);
    for (alg, dbs, hbs) in [
        (HashAlgorithm::Sha512, 4096, 4096),
        (HashAlgorithm::Sha224, 1024, 512),
        (HashAlgorithm::Sha256, 512, 1024),
        (HashAlgorithm::Sha384, 4096, 512),
    ] {
        let p = FormatParams {
            algorithm: alg,
            data_block_size: dbs,
            hash_block_size: hbs,
            ..params()
        };
        let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
        assert_eq!(root.len(), alg.digest_size());
        verify(
            &Mem(data.clone()),
            0,
            data.len() as u64,
            &Mem(area.clone()),
            0,
            &root,
        )
        .unwrap();
        let mut d = data.clone();
        d[dbs as usize * 3] ^= 1;
        assert!(matches!(
            verify(&Mem(d), 0, data.len() as u64, &Mem(area), 0, &root),
            Err(VerityError::DataBlockMismatch { block: 3 })
        ));
    }
    let mut sb =
        VeritySuperblock::parse(&format(&Mem(data.clone()), 0, 4096, &params()).unwrap().0)
            .unwrap();
    sb.algorithm = "md5".into();
    assert!(matches!(
        verify_with_superblock(&sb, &Mem(data.clone()), 0, 4096, &Mem(vec![]), 0, &[0; 16]),
        Err(VerityError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn hash_type_0_appends_the_salt_as_chrome_os_does() {
    let data = pseudo_random(5 * 4096, 12);
    let p = FormatParams {
        hash_type: 0,
        ..params()
    };
    let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
    // Salt appended: the digest of block 0 is at the start of the only tree block.
    let mut d = Sha256::new();
    d.update(&data[..4096]);
    d.update(salt());
    assert_eq!(&area[4096..4096 + 32], &d.finalize()[..]);
    verify(
        &Mem(data.clone()),
        0,
        data.len() as u64,
        &Mem(area),
        0,
        &root,
    )
    .unwrap();
}

/// Cross-check with the real `veritysetup format` (only `format`: it works on plain
/// files and sets up no device).
#[test]
fn hash_tree_matches_what_veritysetup_format_writes() {
    use std::process::Command;
    if Command::new("veritysetup")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("veritysetup not available, skipping");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sysext-verity-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data_path = dir.join("data");
    let hash_path = dir.join("hash");
    let blocks = 1000;
    let data = pseudo_random(blocks * 4096, 77);
    std::fs::write(&data_path, &data).unwrap();
    let salt_hex = encode_hex(&salt());
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(format!("--salt={salt_hex}"))
        .arg("--uuid=6f0c2a4e-0000-4000-8000-0000000000ee")
        .arg(&data_path)
        .arg(&hash_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root_hex = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .expect("root hash in veritysetup output")
        .trim()
        .to_string();
    let hash_file = std::fs::read(&hash_path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let p = FormatParams {
        uuid: Guid::must("6f0c2a4e-0000-4000-8000-0000000000ee"),
        ..params()
    };
    let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
    assert_eq!(encode_hex(&root), root_hex);
    assert_eq!(&hash_file[..area.len()], &area[..]);
    assert!(hash_file[area.len()..].iter().all(|&b| b == 0));
    verify(
        &Mem(data),
        0,
        (blocks * 4096) as u64,
        &Mem(hash_file),
        0,
        &root,
    )
    .unwrap();
}

#[test]
fn base64_and_hex_decode_strictly_as_systemd_does() {
    let cases: [(&str, &[u8]); 7] = [
        ("", b""),
        ("Zg==", b"f"),
        ("Zm8=", b"fo"),
        ("Zm9v", b"foo"),
        ("Zm9vYg==", b"foob"),
        ("Zm9vYmE=", b"fooba"),
        ("Zm9v\nYmFy", b"foobar"),
    ];
    for (s, want) in cases {
        assert_eq!(decode_base64(s).as_deref(), Some(want), "{s}");
    }
    assert_eq!(decode_base64("Zm9vYg").as_deref(), Some(&b"foob"[..]));
    assert_eq!(decode_base64("Zm9v!"), None);
    assert_eq!(decode_base64("Z"), None);
    assert_eq!(decode_base64("Zg==Zg=="), None);
    assert_eq!(decode_base64("+/+/"), Some(vec![0xfb, 0xff, 0xbf]));
    // Bits left over after the last byte must be zero, as systemd's unbase64mem() wants.
    assert_eq!(decode_base64("Zh=="), None);
    assert_eq!(decode_base64("Zm9vYg==\n"), Some(b"foob".to_vec()));
    assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
    assert_eq!(decode_hex("0"), None);
    assert_eq!(decode_hex("zz"), None);
    assert_eq!(encode_hex(&[0, 255, 16]), "00ff10");
}

#[test]
fn signature_partition_json_gives_hash_and_signature() {
    let mut part =
        br#"{"rootHash":"00ff10ab","certificateFingerprint":"abcd","signature":"Zm9vYmFy"}"#
            .to_vec();
    part.push(b'\n');
    part.resize(16384, 0);
    let s = parse_signature(&part).unwrap();
    assert_eq!(s.root_hash, vec![0, 255, 16, 171]);
    assert_eq!(s.signature, b"foobar");
    assert_eq!(s.certificate_fingerprint, Some(vec![0xab, 0xcd]));
    let m = Mem(part.clone());
    assert_eq!(read_signature(&m, 0, part.len() as u64).unwrap(), s);
    // Larger than 4 MiB: refused as such, before anything is read.
    match read_signature(&m, 0, MAX_SIGNATURE_SIZE + 1) {
        Err(VerityError::BadSignature(e)) => assert!(e.contains("too large"), "{e}"),
        other => panic!("{other:?}"),
    }
    // 4 MiB exactly is read (and then fails as JSON with NULs after it, not for its size).
    let mut big = part.clone();
    big.resize(MAX_SIGNATURE_SIZE as usize, b' ');
    match read_signature(&Mem(big), 0, MAX_SIGNATURE_SIZE) {
        Err(VerityError::BadSignature(e)) => assert!(!e.contains("too large"), "{e}"),
        Ok(_) => {}
        Err(e) => panic!("{e:?}"),
    }

    let s = parse_signature(br#"{"signature":"Zg==","rootHash":"AB"}"#).unwrap();
    assert_eq!(
        (s.root_hash, s.signature, s.certificate_fingerprint),
        (vec![0xab], b"f".to_vec(), None)
    );
    for bad in [
        &br#"{"rootHash":"xyz","signature":"Zg=="}"#[..],
        br#"{"rootHash":"ab"}"#,
        br#"{"signature":"Zg=="}"#,
        br#"{"rootHash":"ab","signature":"!!"}"#,
        br#"{"rootHash":1,"signature":"Zg=="}"#,
        br#"["rootHash"]"#,
        b"not json",
        b"",
        b"\0\0\0",
        b"{\"rootHash\":\"ab\",\"signature\":\"Zg==\"\xff}",
    ] {
        assert!(
            matches!(parse_signature(bad), Err(VerityError::BadSignature(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}
