//! Thin wrappers around kernel interfaces that need `unsafe` (ioctls, new syscalls).
//! All `unsafe` code of the crate lives below this module.
pub mod dm;
pub mod loopdev;
pub mod mountattr;
pub mod ns;
pub mod statmount;
