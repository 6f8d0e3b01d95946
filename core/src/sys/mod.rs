//! Thin unsafe wrappers (being written).
pub mod mountattr;
