//! How long a second caller waits for the lock of a root (what the whole-core mutation run
//! found untested in `core/src/lock.rs`): not at all with a zero timeout, up to the timeout
//! and then `Busy`, and it gets the lock as soon as the holder lets go within the timeout.
//! The lock files live in a temporary directory, not in the host's `/run`.

use std::time::{Duration, Instant};
use sysext::testing::lock::lock_at;
use sysext::testing::root::Root;
use sysext::ErrorKind;

fn setup() -> (tempfile::TempDir, Root, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(Some(dir.path().to_str().unwrap())).unwrap();
    let path = dir.path().join("test.lock");
    (dir, root, path)
}

/// Let go of `held` 150 ms from now, from another thread.
fn release_later(held: sysext::testing::lock::Lock) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        drop(held);
    })
}

#[test]
fn a_held_lock_is_busy_at_once_with_a_zero_timeout_and_after_a_short_one() {
    let (_dir, root, path) = setup();
    let _held = lock_at(path.clone(), &root, Some(Duration::ZERO)).unwrap();
    let e = lock_at(path.clone(), &root, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(e.path().as_deref(), path.to_str());
    let t0 = Instant::now();
    let e = lock_at(path.clone(), &root, Some(Duration::from_millis(200))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_waiting_caller_gets_the_lock_once_the_holder_lets_go() {
    let (_dir, root, path) = setup();
    let held = lock_at(path.clone(), &root, Some(Duration::ZERO)).unwrap();
    let release = release_later(held);
    // Within the timeout ...
    lock_at(path.clone(), &root, Some(Duration::from_secs(30))).unwrap();
    release.join().unwrap();
}

#[test]
fn without_a_timeout_a_caller_waits_as_long_as_it_takes() {
    let (_dir, root, path) = setup();
    let held = lock_at(path.clone(), &root, Some(Duration::ZERO)).unwrap();
    let release = release_later(held);
    let t0 = Instant::now();
    lock_at(path, &root, None).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
    release.join().unwrap();
}
