//! Python bindings of libsysext (being written).
