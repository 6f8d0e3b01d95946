//! C ABI of libsysext (being written).
