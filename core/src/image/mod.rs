//! Image files (being written).
