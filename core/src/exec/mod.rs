//! Applying a [`Plan`](crate::plan::Plan): building each overlay detached with the new mount
//! API, writing the meta dir, and attaching the overlays. Every effect that must be undone on
//! failure is recorded in a [`Journal`].
//!
//! One file per job: `build` (with `layers`, `workspace`, `meta_files`, `fs_options`,
//! `submounts`, and `build_staged` over [`staged`] on kernels before 6.15), `publish`
//! (with `layer_check`), `unmerge`, `ephemeral` dirs, `remove` (tree removal), `journal`,
//! `fault` injection and `read` (small files); [`intent`] and [`rescue`] make a killed call
//! repairable.

use crate::error::Error;

pub mod intent;
pub mod rescue;
pub mod staged;

mod build;
mod build_staged;
mod ephemeral;
mod fault;
mod fs_options;
mod journal;
mod layer_check;
mod layers;
mod meta_files;
mod publish;
mod remove;
mod submounts;
mod unmerge;
mod workspace;

pub use build::{build, BuildInputs};
pub use ephemeral::remove_ephemeral;
pub use fault::FaultInjector;
pub use journal::Journal;
pub use publish::{finish_replace, publish};
pub use remove::remove_tree;
pub use submounts::MountTable;
pub use unmerge::{detach_hierarchy, finish_unmerge, restore, unmerge_hierarchy};

fn io_at<'a>(op: &'static str, what: &'a str) -> impl Fn(rustix::io::Errno) -> Error + 'a {
    move |e| Error::io(op, what, e)
}
