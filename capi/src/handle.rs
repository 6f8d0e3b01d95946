//! Opaque handles and their ownership.
//!
//! Each C handle type is a zero-sized, non-`repr(C)` struct (`{ _private: [u8; 0] }`), so
//! the header only forward-declares it. [`Castable`] ties it to the Rust type behind the
//! pointer and to exactly one ownership marker:
//! - [`OwnershipBox`]: created by a `_new`/`_list`/verb and released by its one `_free`;
//! - [`OwnershipRef`]: borrowed from a Box handle (an item of a list), never freed.
//!
//! Freeing a borrowed item does not compile, because `free_box` accepts only Box handles.

use std::ptr;

/// Links a C handle type to its Rust type and ownership.
pub(crate) trait Castable {
    /// [`OwnershipBox`] or [`OwnershipRef`].
    type Ownership;
    /// What the pointer really points to.
    type RustType;
}

/// The handle owns a `Box<RustType>`; it has a `_free` function.
pub(crate) enum OwnershipBox {}

/// The handle borrows from another handle; it has no `_free` function.
pub(crate) enum OwnershipRef {}

/// Move a value to the heap and hand it to C.
pub(crate) fn to_boxed_mut_ptr<C: Castable<Ownership = OwnershipBox>>(
    value: C::RustType,
) -> *mut C {
    Box::into_raw(Box::new(value)).cast()
}

/// Free a Box handle; NULL is a no-op.
///
/// # Safety
/// `p` is NULL or came from [`to_boxed_mut_ptr`] for the same `C` and was not freed yet.
pub(crate) unsafe fn free_box<C: Castable<Ownership = OwnershipBox>>(p: *mut C) {
    if !p.is_null() {
        // SAFETY: by the contract, `p` is what `Box::into_raw` returned for a
        // `Box<C::RustType>` (see `to_boxed_mut_ptr`), not freed yet, so this is its owner.
        drop(unsafe { Box::from_raw(p.cast::<C::RustType>()) });
    }
}

/// Borrow the Rust value behind a handle of any ownership; `None` for NULL.
///
/// # Safety
/// `p` is NULL or a live handle of type `C`.
pub(crate) unsafe fn try_ref<'a, C: Castable>(p: *const C) -> Option<&'a C::RustType> {
    // SAFETY: by the contract, `p` is NULL or points to a live `C::RustType` (a handle of
    // type `C` is one cast), which stays alive and unchanged while the C caller uses it.
    unsafe { p.cast::<C::RustType>().as_ref() }
}

/// Borrow the Rust value behind a Box handle mutably; `None` for NULL.
///
/// # Safety
/// `p` is NULL or a live Box handle of type `C` that nobody else uses meanwhile.
pub(crate) unsafe fn try_mut<'a, C: Castable<Ownership = OwnershipBox>>(
    p: *mut C,
) -> Option<&'a mut C::RustType> {
    // SAFETY: by the contract, `p` is NULL or points to a live `C::RustType` (a Box handle
    // of type `C` is one cast) that nothing else reads or writes meanwhile.
    unsafe { p.cast::<C::RustType>().as_mut() }
}

/// Hand out a borrowed item.
pub(crate) fn to_const_ptr<C: Castable<Ownership = OwnershipRef>>(value: &C::RustType) -> *const C {
    ptr::from_ref(value).cast()
}

/// Hand out the `i`-th item of a slice, NULL when out of range.
pub(crate) fn nth_item<C: Castable<Ownership = OwnershipRef>>(
    items: &[C::RustType],
    i: usize,
) -> *const C {
    items.get(i).map_or(ptr::null(), to_const_ptr::<C>)
}
