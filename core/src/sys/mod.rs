//! Thin unsafe wrappers (being written).
