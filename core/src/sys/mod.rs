//! Thin wrappers around kernel interfaces that need `unsafe` (ioctls, new syscalls).
//! All `unsafe` code of the crate lives below this module.
pub mod dm;
pub mod loopdev;
pub mod mountattr;
pub mod ns;
pub mod statmount;

/// The running kernel's (major, minor), from uname (for tests that know which kernel brought
/// what they check).
#[cfg(test)]
pub(crate) fn kernel_release() -> (u32, u32) {
    let u = rustix::system::uname();
    let r = u.release().to_string_lossy().into_owned();
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    let mut num = || it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (num(), num())
}
