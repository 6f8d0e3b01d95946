//! A parser for `/proc/self/mountinfo` (pure, over `&str`).

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID.
    pub id: u64,
    /// Parent mount ID.
    pub parent: u64,
    /// Device number of the superblock.
    pub dev: (u32, u32),
    /// Root of the mount within its file system.
    pub root: String,
    /// Mount point relative to the process root.
    pub mount_point: String,
    /// Per-mount options (`ro,nodev,…`).
    pub options: String,
    /// Optional fields (`shared:1`, `master:2`, …).
    pub optional: Vec<String>,
    /// File system type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

impl MountInfo {
    #[cfg(any(test, feature = "testing"))]
    /// Whether a per-mount option is set (`ro`, `nodev`, …).
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.split(',').any(|o| o == opt)
    }

    /// Number of `lowerdir` layers in the super options of an overlay mount
    /// (`lowerdir=a:b:c` or repeated `lowerdir+`-style entries displayed by the kernel).
    pub fn overlay_lower_count(&self) -> usize {
        overlay_lower_count(&self.super_options)
    }
}

/// Number of `lowerdir` layers in overlay options (`lowerdir=a:b:c`, or one `lowerdir+=`
/// entry per layer as newer kernels display them).
pub fn overlay_lower_count(options: &str) -> usize {
    let mut n = 0;
    for opt in split_unescaped(options, b',') {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            n += split_unescaped(v, b':').count();
        } else if opt.starts_with("lowerdir+=") {
            n += 1;
        }
    }
    n
}

/// The pieces of `s` between unescaped `sep` bytes (a backslash escapes the next byte).
fn split_unescaped(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < b.len() {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == sep {
                let piece = &s[start..i];
                i += 1;
                start = i;
                return Some(piece);
            }
            i += 1;
        }
        done = true;
        Some(&s[start.min(s.len())..])
    })
}

/// Undo the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse one line; `None` if it is malformed.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let (pre, post) = line.split_once(" - ")?;
    let mut it = pre.split(' ');
    let id = it.next()?.parse().ok()?;
    let parent = it.next()?.parse().ok()?;
    let (ma, mi) = it.next()?.split_once(':')?;
    let dev = (ma.parse().ok()?, mi.parse().ok()?);
    let root = unescape(it.next()?);
    let mount_point = unescape(it.next()?);
    let options = it.next()?.to_string();
    let optional: Vec<String> = it.filter(|s| !s.is_empty()).map(str::to_string).collect();
    let mut post_it = post.splitn(3, ' ');
    let fstype = unescape(post_it.next()?);
    let source = unescape(post_it.next()?);
    let super_options = post_it.next().unwrap_or("").to_string();
    Some(MountInfo {
        id,
        parent,
        dev,
        root,
        mount_point,
        options,
        optional,
        fstype,
        source,
        super_options,
    })
}

/// Parse a whole mountinfo text, skipping malformed lines.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// Read and parse `/proc/self/mountinfo`.
pub fn read_self() -> std::io::Result<Vec<MountInfo>> {
    use std::io::Read;
    // procfs reports a size of 0: start with room for a typical table instead of growing
    // from a few bytes (one read instead of a dozen).
    let mut f = std::fs::File::open("/proc/self/mountinfo")?;
    let mut buf = Vec::with_capacity(64 * 1024);
    f.read_to_end(&mut buf)?;
    Ok(parse(&String::from_utf8_lossy(&buf)))
}

/// The stack of mounts at `mount_point`, top first.
pub fn stack_at<'a>(mounts: &'a [MountInfo], mount_point: &str) -> Vec<&'a MountInfo> {
    let at: Vec<&MountInfo> = mounts
        .iter()
        .filter(|m| m.mount_point == mount_point)
        .collect();
    // The top is the one that is nobody's parent among those at this mount point.
    let mut out: Vec<&MountInfo> = Vec::new();
    let mut cur = at
        .iter()
        .copied()
        .find(|m| !at.iter().any(|o| o.parent == m.id));
    // Bounded: a (corrupt) table whose parent ids form a cycle must not loop forever.
    while let Some(m) = cur {
        if out.len() == at.len() || out.iter().any(|o| o.id == m.id) {
            break;
        }
        out.push(m);
        cur = at.iter().copied().find(|o| o.id == m.parent);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_count_respects_escapes() {
        assert_eq!(overlay_lower_count("ro,lowerdir=/a\\:b:/c,upperdir=/u"), 2);
        assert_eq!(
            overlay_lower_count("lowerdir+=/a\\,x,lowerdir+=/b,lowerdir+=/c"),
            3
        );
        assert_eq!(overlay_lower_count("lowerdir=/a"), 1);
        assert_eq!(overlay_lower_count(""), 0);
        assert_eq!(overlay_lower_count("lowerdir=/ä:/ö\\"), 2);
        let pieces: Vec<&str> = split_unescaped("a,b\\,c,,", b',').collect();
        assert_eq!(pieces, ["a", "b\\,c", "", ""]);
    }

    const SAMPLE: &str = "\
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
100 36 0:45 / /sb/usr ro,nodev,relatime shared:5 - overlay sysext ro,lowerdir=/run/a:/run/b\\:c:/sb/usr,redirect_dir=on
101 100 0:46 / /sb/usr ro,nodev,relatime shared:6 - overlay sysext ro,lowerdir+=/x,lowerdir+=/y
102 36 0:47 / /with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_optional_fields() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].id, 36);
        assert_eq!(m[0].optional, vec!["master:1"]);
        assert_eq!(m[1].dev, (0, 45));
        assert_eq!(m[1].overlay_lower_count(), 3);
        assert_eq!(m[2].overlay_lower_count(), 2);
        assert_eq!(m[3].mount_point, "/with space");
        assert!(m[1].has_option("ro"));
        let s = stack_at(&m, "/sb/usr");
        assert_eq!(s.iter().map(|m| m.id).collect::<Vec<_>>(), vec![101, 100]);
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("1 2 x:y / / rw - a b c").is_none());
    }

    #[test]
    fn every_field_of_a_line_is_read_and_a_short_line_is_refused() {
        let line =
            r"7 3 8:17 /r\040t /m\011p ro,nosuid shared:2 master:4 - my\040fs /dev/s\134x rw,a=b c";
        let m = parse_line(line).unwrap();
        assert_eq!((m.id, m.parent, m.dev), (7, 3, (8, 17)));
        assert_eq!(m.root, "/r t");
        assert_eq!(m.mount_point, "/m\tp");
        assert_eq!(m.options, "ro,nosuid");
        assert_eq!(m.optional, ["shared:2", "master:4"]);
        assert_eq!(m.fstype, "my fs");
        assert_eq!(m.source, "/dev/s\\x");
        assert_eq!(m.super_options, "rw,a=b c");
        assert!(m.has_option("nosuid") && !m.has_option("rw") && !m.has_option("ro,nosuid"));
        // No super options at all: empty, not a refusal.
        assert_eq!(
            parse_line("1 0 0:1 / / rw - tmpfs t")
                .unwrap()
                .super_options,
            ""
        );
        for short in [
            "1 0 0:1 / / - tmpfs t rw",
            "1 0 0:1 / - tmpfs t rw",
            "1 0 - tmpfs t rw",
            "1 0 0:1 / / rw - tmpfs",
            "x 0 0:1 / / rw - tmpfs t rw",
            "1 y 0:1 / / rw - tmpfs t rw",
            "1 0 01 / / rw - tmpfs t rw",
            "1 0 0:z / / rw - tmpfs t rw",
        ] {
            assert_eq!(parse_line(short), None, "{short:?}");
        }
        // parse skips what parse_line refuses and keeps the order of the rest.
        let ids: Vec<u64> = parse("1 0 0:1 / / rw - a b c\njunk\n2 1 0:2 / /x rw - a b c\n")
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn octal_escapes_are_undone_only_when_complete_and_in_range() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("\\101\\102"), "AB");
        assert_eq!(unescape("\\134"), "\\");
        // Incomplete at the end, not octal, or past a byte: kept as they are.
        assert_eq!(unescape("x\\04"), "x\\04");
        assert_eq!(unescape("x\\0"), "x\\0");
        assert_eq!(unescape("x\\"), "x\\");
        assert_eq!(unescape("\\048"), "\\048");
        assert_eq!(unescape("\\800"), "\\800");
        assert_eq!(unescape("\\477"), "\\477");
        // 255 is the last byte; it is not UTF-8, so it is replaced.
        assert_eq!(unescape("\\377"), "\u{fffd}");
        assert_eq!(unescape("\\376z"), "\u{fffd}z");
    }

    #[test]
    fn the_stack_at_a_mount_point_goes_from_the_top_down_and_stops_on_a_cycle() {
        let line = |id: u64, parent: u64, at: &str| {
            parse_line(&format!("{id} {parent} 0:1 / {at} rw - tmpfs t rw")).unwrap()
        };
        let m = vec![
            line(1, 0, "/"),
            line(10, 1, "/usr"),
            line(11, 10, "/usr"),
            line(12, 11, "/usr"),
            line(20, 1, "/opt"),
        ];
        let ids = |s: Vec<&MountInfo>| s.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(stack_at(&m, "/usr")), [12, 11, 10]);
        assert_eq!(ids(stack_at(&m, "/opt")), [20]);
        assert!(stack_at(&m, "/etc").is_empty());
        // Parents that form a cycle: every mount is somebody's parent, so there is no top.
        let cycle = vec![line(5, 6, "/c"), line(6, 5, "/c")];
        assert!(stack_at(&cycle, "/c").is_empty());
        // A cycle below a top: each mount once, then the walk stops.
        let lasso = vec![line(7, 8, "/l"), line(8, 7, "/l"), line(9, 8, "/l")];
        assert_eq!(ids(stack_at(&lasso, "/l")), [9, 8, 7]);
        // ... also when another mount there is not on the walk: each mount once all the same.
        let lasso_and_one = vec![
            line(9, 8, "/l"),
            line(8, 7, "/l"),
            line(7, 8, "/l"),
            line(10, 1, "/l"),
        ];
        assert_eq!(ids(stack_at(&lasso_and_one, "/l")), [9, 8, 7]);
    }

    #[test]
    fn read_self_finds_this_processs_root() {
        let m = read_self().unwrap();
        assert!(m.iter().any(|m| m.mount_point == "/"), "{m:?}");
        assert!(m.iter().all(|m| m.id != 0));
    }
}
