//! Explainability without mounting: a table of every skip reason, the JSON shapes of
//! `list`, `status` and `plan`, and `plan` run unprivileged.

use serde_json::Value;
use std::process::Command;
use sysext::{Context, ImageClass, ImageState, Options};
use sysext_tests::TestRoot;

fn ctx(r: &TestRoot) -> Context {
    let mut o = Options::new(ImageClass::Sysext);
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
    Context::new(o).unwrap()
}

#[test]
fn every_skip_reason_names_field_and_values() {
    let r = TestRoot::new("reasons");
    r.put(
        "usr/lib/os-release",
        "ID=debian\nID_LIKE=\"ubuntu\"\nVERSION_ID=12\nSYSEXT_LEVEL=1\n",
    );
    let arch_other = if sysext::testing::arch::native() == "arm64" {
        "x86-64"
    } else {
        "arm64"
    };
    let cases: Vec<(&str, String, ImageState, &str)> = vec![
        (
            "ok",
            "ID=debian\nSYSEXT_LEVEL=1\n".into(),
            ImageState::WouldMerge,
            "",
        ),
        ("anyos", "ID=_any\n".into(), ImageState::WouldMerge, ""),
        (
            "like",
            "ID=ubuntu\nSYSEXT_LEVEL=1\n".into(),
            ImageState::WouldMerge,
            "",
        ),
        (
            "level",
            "ID=debian\nSYSEXT_LEVEL=2\n".into(),
            ImageState::Incompatible,
            "SYSEXT_LEVEL=2 does not match the host's SYSEXT_LEVEL=1",
        ),
        (
            "osid",
            "ID=fedora\nSYSEXT_LEVEL=1\n".into(),
            ImageState::Incompatible,
            "ID=fedora",
        ),
        (
            "arch",
            format!("ID=_any\nARCHITECTURE={arch_other}\n"),
            ImageState::Incompatible,
            arch_other,
        ),
        (
            "scope",
            "ID=_any\nSYSEXT_SCOPE=initrd\n".into(),
            ImageState::Incompatible,
            "SYSEXT_SCOPE=initrd",
        ),
        (
            "noid",
            "VERSION_ID=12\n".into(),
            ImageState::Incompatible,
            "ID",
        ),
        (
            "empty",
            "".into(),
            ImageState::Incompatible,
            "no release data",
        ),
        (
            "unicode",
            "ID=_any\nX=\u{fffd}\u{e9}\n".into(),
            ImageState::WouldMerge,
            "",
        ),
    ];
    for (name, rel, _, _) in &cases {
        r.sysext_in("var/lib/extensions", name, rel, &[("usr/bin/x", "x\n")]);
    }
    // Misnamed and missing release files.
    r.sysext_in("var/lib/extensions", "misnamed", "ID=_any\n", &[]);
    std::fs::rename(
        r.p("var/lib/extensions/misnamed/usr/lib/extension-release.d/extension-release.misnamed"),
        r.p("var/lib/extensions/misnamed/usr/lib/extension-release.d/extension-release.other"),
    )
    .unwrap();
    r.mkdir("var/lib/extensions/norel/usr/bin");
    // A masked image.
    r.sysext("masked", &[("usr/bin/m", "m\n")]);
    r.mkdir("etc/extensions/masked");
    let list = ctx(&r).list().unwrap();
    let get = |n: &str| {
        list.iter()
            .find(|i| i.name == n)
            .unwrap_or_else(|| panic!("{n} listed"))
    };
    for (name, _, state, reason) in &cases {
        let i = get(name);
        assert_eq!(i.state, *state, "{name}: {:?}", i.reason);
        assert!(
            i.reason.as_deref().unwrap_or("").contains(reason),
            "{name}: {:?} lacks {reason:?}",
            i.reason
        );
    }
    let m = get("misnamed");
    assert_eq!(m.state, ImageState::Incompatible);
    assert!(
        m.reason
            .as_deref()
            .unwrap()
            .contains("extension-release.other does not match image name misnamed"),
        "{:?}",
        m.reason
    );
    assert!(
        get("norel")
            .reason
            .as_deref()
            .unwrap()
            .contains("no release file"),
        "{:?}",
        get("norel").reason
    );
    let k = get("masked");
    assert_eq!(k.state, ImageState::Masked);
    assert!(
        k.reason
            .as_deref()
            .unwrap()
            .contains("var/lib/extensions/masked"),
        "{:?}",
        k.reason
    );
}

fn cli_json(args: &[&str], root: &TestRoot, uid: Option<u32>) -> Value {
    let cli = sysext_tests::cli();
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&cli);
            c
        }
        None => Command::new(&cli),
    };
    let out = cmd
        .arg(format!("--root={}", root.path.display()))
        .args(args)
        .env_remove("SYSTEMD_SYSEXT_HIERARCHIES")
        .env_remove("LIBSYSEXT_COMPAT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn is_u64(v: &Value) -> bool {
    v.as_u64().is_some()
}

#[test]
fn json_shapes_are_stable() {
    let r = TestRoot::new("schema");
    r.sysext("foo", &[("usr/bin/foo", "f\n"), ("opt/foo/x", "x\n")]);
    r.sysext_in("var/lib/extensions", "bad", "ID=fedora\n", &[]);
    for pretty in ["--json=short", "--json=pretty"] {
        let l = cli_json(&["list", pretty], &r, None);
        let arr = l.as_array().expect("list is an array");
        assert_eq!(arr.len(), 2);
        for e in arr {
            assert!(
                e["name"].is_string()
                    && e["type"].is_string()
                    && e["path"].is_string()
                    && is_u64(&e["time"]),
                "{e}"
            );
            assert!(
                e["state"].is_string()
                    && (e["reason"].is_string() || e["reason"].is_null())
                    && e["shadows"].is_array(),
                "{e}"
            );
        }
        for (level, unmerged) in [
            ("--compat=262", serde_json::json!([])),
            ("--compat=257", serde_json::json!("none")),
        ] {
            let s = cli_json(&[level, "status", pretty], &r, None);
            for e in s.as_array().expect("status is an array") {
                assert_eq!(e["extensions"], unmerged, "not merged at {level}: {e}");
            }
        }
        let s = cli_json(&["status", pretty], &r, None);
        for e in s.as_array().expect("status is an array") {
            assert!(e["hierarchy"].is_string(), "{e}");
            assert_eq!(
                e["extensions"],
                serde_json::json!([]),
                "not merged: 262's empty list"
            );
            assert!(
                e["since"].is_null()
                    && e["merged"] == false
                    && e["extensionList"] == serde_json::json!([]),
                "{e}"
            );
            assert!(e["mutable"].is_null() && e["upper"].is_null(), "{e}");
        }
        let p = cli_json(&["--mutable=yes", "plan", pretty], &r, None);
        assert_eq!(p["mutable"], "yes");
        assert_eq!(p["extensions"], serde_json::json!(["foo"]));
        assert_eq!(p["skipped"][0]["name"], "bad");
        assert!(p["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ID=fedora"));
        let hs = p["hierarchies"].as_array().unwrap();
        assert_eq!(hs.len(), 2);
        for h in hs {
            assert!(
                h["hierarchy"].is_string()
                    && h["target"].is_string()
                    && h["layers"].is_array()
                    && h["readOnly"] == false,
                "{h}"
            );
            assert_eq!(
                h["layers"][0],
                serde_json::json!({"kind": "meta", "name": null, "path": null})
            );
            let ext = h["layers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["kind"] == "extension")
                .unwrap_or_else(|| panic!("no extension layer: {h}"));
            assert_eq!(ext["name"], "foo", "{h}");
            assert!(ext["path"].as_str().unwrap().contains("foo"), "{h}");
            assert_eq!(h["upper"]["kind"], "mutable-dir", "{h}");
            assert_eq!(h["upper"]["create"], true, "{h}");
            assert!(
                h["upper"]["path"]
                    .as_str()
                    .unwrap()
                    .contains("extensions.mutable"),
                "{h}"
            );
            assert_eq!(h["workDir"]["kind"], "directory", "{h}");
            assert!(h["createTarget"].is_boolean(), "{h}");
        }
    }
    // Empty results are [] (never a string), also pretty.
    let empty = TestRoot::new("schema-empty");
    assert_eq!(
        cli_json(&["list", "--json=short"], &empty, None),
        serde_json::json!([])
    );
    assert_eq!(
        cli_json(&["list", "--json=pretty"], &empty, None),
        serde_json::json!([])
    );
}

#[test]
fn plan_runs_unprivileged() {
    let r = TestRoot::new("unpriv");
    r.sysext("foo", &[("usr/bin/foo", "f\n")]);
    let p = cli_json(
        &["--mutable=ephemeral-import", "plan", "--json=short"],
        &r,
        Some(65534),
    );
    assert_eq!(p["extensions"], serde_json::json!(["foo"]));
    let h = &p["hierarchies"][0];
    assert_eq!(h["hierarchy"], "/usr");
    assert_eq!(h["upper"]["kind"], "ephemeral", "{h}");
    assert_eq!(h["workDir"]["kind"], "ephemeral", "{h}");
    // list and status work unprivileged too; merge does not.
    cli_json(&["list", "--json=short"], &r, Some(65534));
    cli_json(&["status", "--json=short"], &r, Some(65534));
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(sysext_tests::cli())
        .arg(format!("--root={}", r.path.display()))
        .arg("merge")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Need to be privileged."
    );
}

#[test]
fn confext_by_program_name() {
    let r = TestRoot::new("argv0");
    r.confext("c", &[("etc/app.conf", "a\n")]);
    r.sysext("s", &[("usr/bin/s", "s\n")]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in ["confext", "systemd-confext"] {
        let link = dir.join(name);
        std::os::unix::fs::symlink(sysext_tests::cli(), &link).unwrap();
        let out = Command::new(&link)
            .arg(format!("--root={}", r.path.display()))
            .args(["list", "--json=short"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["name"], "c", "{name}: {v}");
        assert_eq!(v.as_array().unwrap().len(), 1);
    }
    let out = Command::new(sysext_tests::cli())
        .arg(format!("--root={}", r.path.display()))
        .args(["--confext", "list", "--json=short"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "c");
    let out = Command::new(sysext_tests::cli())
        .arg(format!("--root={}", r.path.display()))
        .args(["list", "--json=short"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "s");
}
