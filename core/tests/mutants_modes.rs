//! Small exact tests for what the property tests do not pin down: the mutable-mode
//! predicates and spellings, the display of compatibility matches, and the plan's helpers.
//! Found missing by `scripts/mutants` (every test is named `mutants_*` so that the script's
//! test filter selects it).

use sysext::plan::{
    auto_link_to_non_dir_effects, plan, DirInfo, ExtLayer, ExtensionInput, HierarchyInput,
    MutableDir, PlanInputs, Upper,
};
use sysext::testing::compat::Match;
use sysext::testing::hierarchy::Hierarchy;
use sysext::UpperKind;
use sysext::{ImageClass, MutableMode};

use MutableMode::*;

#[test]
fn mutants_mode_predicates() {
    let table = [
        // mode, may be writable, imports, ephemeral
        (Disabled, false, false, false),
        (Enabled, true, false, false),
        (Auto, true, false, false),
        (Import, false, true, false),
        (Ephemeral, true, false, true),
        (EphemeralImport, true, true, true),
    ];
    for (m, writable, imports, ephemeral) in table {
        assert_eq!(m.may_be_writable(), writable, "{m}");
        assert_eq!(m.imports(), imports, "{m}");
        assert_eq!(m.is_ephemeral(), ephemeral, "{m}");
    }
}

#[test]
fn mutants_mode_spellings() {
    let names = [
        "no",
        "yes",
        "auto",
        "import",
        "ephemeral",
        "ephemeral-import",
    ];
    for (m, n) in MutableMode::ALL.into_iter().zip(names) {
        assert_eq!(m.to_string(), n);
        assert_eq!(format!("{m}"), m.as_str());
        assert_eq!(n.parse::<MutableMode>().unwrap(), m);
    }
    assert_eq!("enabled".parse::<MutableMode>().unwrap(), Enabled);
    assert_eq!("disabled".parse::<MutableMode>().unwrap(), Disabled);
    assert_eq!("off".parse::<MutableMode>().unwrap(), Disabled);
    let e = "bogus".parse::<MutableMode>().unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(
        e.to_string()
            .contains("Failed to parse mutable mode: bogus"),
        "{e}"
    );
    assert!("".parse::<MutableMode>().is_err());
    assert!("Auto".parse::<MutableMode>().is_err());
    assert_eq!(MutableMode::default(), Disabled);
}

#[test]
fn mutants_match_display() {
    assert_eq!(Match::AnyOs.to_string(), "matches any OS (ID=_any)");
    assert_eq!(Match::Version.to_string(), "version info matches the host");
    assert_eq!(Match::Level.to_string(), "level matches the host");
    assert_eq!(
        Match::NoVersionInfo.to_string(),
        "ID matches and the host has no version info"
    );
}

#[test]
fn mutants_upper_describe() {
    let r = Upper::MutableDir {
        path: "/R/var/lib/extensions.mutable/usr".into(),
        rel: "x".into(),
        create: false,
    };
    assert_eq!(r.describe(), "/R/var/lib/extensions.mutable/usr");
    assert_eq!(
        Upper::Host {
            path: "/R/usr".into(),
            rel: "usr".into()
        }
        .describe(),
        "host"
    );
    assert_eq!(Upper::Ephemeral.describe(), "ephemeral");
}

fn inputs(mode: MutableMode) -> PlanInputs {
    let usr = DirInfo {
        path: "/R/usr".into(),
        rel: "usr".into(),
        mode: 0o755,
        dev: 1,
        ino: 2,
        empty: false,
        read_only: false,
        parent_dev: Some(1),
    };
    let routing = DirInfo {
        path: "/R/var/lib/extensions.mutable/usr".into(),
        rel: "var/lib/extensions.mutable/usr".into(),
        ino: 3,
        ..usr.clone()
    };
    PlanInputs {
        class: ImageClass::Sysext,
        mode,
        noexec: None,
        compat: sysext::Compat::V257,
        extensions: vec![ExtensionInput {
            name: "foo".into(),
            layers: vec![ExtLayer::Content("/E/foo/usr".into())],
        }],
        hierarchies: vec![HierarchyInput {
            hierarchy: Hierarchy::new("/usr").unwrap(),
            path: "/R/usr".into(),
            host: Some(usr),
            mutable_dir_path: "/R/var/lib/extensions.mutable/usr".into(),
            mutable_dir: MutableDir::Dir(routing),
            mutable_dir_target: None,
        }],
    }
}

#[test]
fn mutants_plan_writable() {
    for m in MutableMode::ALL {
        let p = plan(&inputs(m)).unwrap();
        let h = &p.hierarchies[0];
        assert_eq!(h.writable(), m.may_be_writable(), "{m}");
        assert_eq!(h.writable(), h.upper.is_some(), "{m}");
    }
}

/// Same device and inode, different paths: the routing dir is the hierarchy (bind mount).
#[test]
fn mutants_same_by_inode_and_by_path() {
    let mut i = inputs(Auto);
    let MutableDir::Dir(d) = &mut i.hierarchies[0].mutable_dir else {
        unreachable!()
    };
    d.ino = 2;
    assert!(matches!(
        plan(&i).unwrap().hierarchies[0].upper,
        Some(Upper::Host { .. })
    ));
    // Same inode number on another device: not the hierarchy.
    let MutableDir::Dir(d) = &mut i.hierarchies[0].mutable_dir else {
        unreachable!()
    };
    d.dev = 7;
    d.parent_dev = Some(7);
    assert!(matches!(
        plan(&i).unwrap().hierarchies[0].upper,
        Some(Upper::MutableDir { .. })
    ));
    // Same path, other inode: the hierarchy.
    let MutableDir::Dir(d) = &mut i.hierarchies[0].mutable_dir else {
        unreachable!()
    };
    d.path = "/R/usr".into();
    assert!(matches!(
        plan(&i).unwrap().hierarchies[0].upper,
        Some(Upper::Host { .. })
    ));
}

#[test]
fn mutants_upper_kind_names() {
    let kinds = [
        (UpperKind::None, "none"),
        (UpperKind::MutableDir, "mutable-dir"),
        (UpperKind::Host, "host"),
        (UpperKind::Ephemeral, "ephemeral"),
    ];
    for (k, name) in kinds {
        assert_eq!(k.as_str(), name);
        assert_eq!(k.to_string(), name);
    }
    let dir = Upper::MutableDir {
        path: "/R/var/lib/extensions.mutable/usr".into(),
        rel: "var/lib/extensions.mutable/usr".into(),
        create: false,
    };
    let host = Upper::Host {
        path: "/R/usr".into(),
        rel: "usr".into(),
    };
    assert_eq!(dir.kind(), UpperKind::MutableDir);
    assert_eq!(host.kind(), UpperKind::Host);
    assert_eq!(Upper::Ephemeral.kind(), UpperKind::Ephemeral);
}

/// `auto` with a routing dir that is a symlink to a file: the overlay fails, and systemd has
/// given the target the hierarchy's mode and made a work dir beside it first.
#[test]
fn mutants_auto_link_to_non_dir() {
    let with_link = |mode| {
        let mut i = inputs(mode);
        if let Some(host) = &mut i.hierarchies[0].host {
            host.mode = 0o40750;
        }
        i.hierarchies[0].mutable_dir = MutableDir::LinkToNonDir {
            mode: 0o644,
            rel: "srv/target".into(),
            path: "/R/srv/target".into(),
        };
        i
    };
    let i = with_link(Auto);
    let err = plan(&i).unwrap_err();
    assert_eq!(
        auto_link_to_non_dir_effects(&i, &err),
        Some((
            "srv/target".into(),
            0o750,
            "srv/.systemd-usr-workdir".into()
        ))
    );
    for m in [Enabled, Disabled, Import] {
        let i = with_link(m);
        if let Err(err) = plan(&i) {
            assert_eq!(auto_link_to_non_dir_effects(&i, &err), None, "{m}");
        }
    }
}

/// What `auto` and `yes` make of each routing dir that is not a directory, at both levels:
/// the upper dir's own errors (the property tests check only the errno).
#[test]
fn mutants_upper_dir_per_routing_dir() {
    use sysext::Compat::{V257, V262};
    use sysext::Error;
    let link = || MutableDir::LinkToNonDir {
        mode: 0o644,
        rel: "srv/target".into(),
        path: "/R/srv/target".into(),
    };
    let with = |mode, dir: MutableDir, compat| {
        let mut i = inputs(mode);
        i.compat = compat;
        i.hierarchies[0].mutable_dir = dir;
        plan(&i)
    };
    for compat in [V257, V262] {
        for dir in [MutableDir::NotDir { mode: 0o755 }, link()] {
            let e = with(Auto, dir, compat).unwrap_err();
            assert!(
                matches!(&e, Error::Mount { kernel_log, .. }
                    if kernel_log[0].starts_with("upper dir ")),
                "{e:?}"
            );
        }
        for dir in [MutableDir::NotDir { mode: 0o755 }, MutableDir::Dangling] {
            let e = with(Enabled, dir, compat).unwrap_err();
            assert!(matches!(e, Error::MutableDirCreate { .. }), "{e:?}");
        }
        let created = with(Enabled, MutableDir::Missing, compat).unwrap();
        assert!(matches!(
            created.hierarchies[0].upper,
            Some(Upper::MutableDir { create: true, .. })
        ));
        for dir in [MutableDir::Missing, MutableDir::Dangling] {
            let none = with(Auto, dir, compat).unwrap();
            assert_eq!(none.hierarchies[0].upper, None);
        }
    }
    let e = with(Enabled, link(), V262).unwrap_err();
    assert!(matches!(e, Error::MutableDirChase { .. }), "{e:?}");
    let e = with(Enabled, link(), V257).unwrap_err();
    assert!(matches!(e, Error::MutableDirCreate { .. }), "{e:?}");
}

#[test]
fn mutants_routing_path_of_another_mode_is_refused_whatever_it_is() {
    use sysext::Error;
    // In auto and yes a routing path must have the hierarchy's mode (0755 here), also when it
    // is not a directory: the mode is refused first, naming the path and both modes.
    for m in [Auto, Enabled] {
        let mut i = inputs(m);
        i.hierarchies[0].mutable_dir = MutableDir::NotDir { mode: 0o100644 };
        let e = plan(&i).unwrap_err();
        assert!(
            matches!(&e, Error::MutableDirMode { mode: 0o644, expected: 0o755, dir }
                if dir == "/R/var/lib/extensions.mutable/usr"),
            "{m}: {e:?}"
        );
    }
    // Other modes do not look at it.
    for m in [MutableMode::Disabled, MutableMode::Ephemeral] {
        let mut i = inputs(m);
        i.hierarchies[0].mutable_dir = MutableDir::NotDir { mode: 0o100644 };
        assert!(plan(&i).is_ok(), "{m}");
    }
}
