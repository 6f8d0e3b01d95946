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
}
