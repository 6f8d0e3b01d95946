#![allow(unsafe_code)]
//! placeholder
#[no_mangle]
pub extern "C" fn sysext_x() -> i32 { 1 }
