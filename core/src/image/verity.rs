//! (being written)
pub use std::io::Error as VerityError; pub struct VeritySuperblock;
