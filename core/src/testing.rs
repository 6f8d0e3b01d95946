//! The door for the workspace's integration tests, fuzz targets and benchmarks: the
//! internal modules' public items, under the modules' own names (`sysext::testing::mountinfo`
//! is `crate::mountinfo`). Only with the `testing` feature, which no shipped build enables;
//! not part of the API.
#![allow(missing_docs)]

pub mod arch {
    pub use crate::arch::*;
}
pub mod class {
    pub use crate::class::*;
}
pub mod compat {
    pub use crate::compat::*;
}
pub mod config {
    pub use crate::config::*;
}
pub mod context {
    pub use crate::context::*;
}
pub mod discover {
    pub use crate::discover::*;
}
pub mod exec {
    pub use crate::exec::*;
}
pub mod extension {
    pub use crate::extension::*;
}
pub mod hierarchy {
    pub use crate::hierarchy::*;
}
pub mod kernel {
    pub use crate::kernel::*;
}
pub mod lock {
    pub use crate::lock::*;
}
pub mod meta {
    pub use crate::meta::*;
}
pub mod mountinfo {
    pub use crate::mountinfo::*;
}
pub mod mutable {
    pub use crate::mutable::*;
}
pub mod probe {
    pub use crate::probe::*;
}
pub mod root {
    pub use crate::root::*;
}
pub mod smallfile {
    pub use crate::smallfile::*;
}
pub mod state {
    pub use crate::state::*;
}
pub mod sys {
    pub use crate::sys::*;
}
pub mod version {
    pub use crate::version::*;
}

/// The image code's internal modules.
pub mod image {
    pub use crate::image::*;
    pub mod dmverity {
        pub use crate::image::dmverity::*;
    }
    pub mod dps {
        pub use crate::image::dps::*;
    }
    pub mod error {
        pub use crate::image::error::*;
    }
    pub mod gpt {
        pub use crate::image::gpt::*;
    }
    pub mod mount {
        pub use crate::image::mount::*;
    }
    pub mod policy {
        pub use crate::image::policy::*;
    }
    pub mod signature {
        pub use crate::image::signature::*;
    }
    pub mod superblock {
        pub use crate::image::superblock::*;
    }
    pub mod verity {
        pub use crate::image::verity::*;
    }
}
