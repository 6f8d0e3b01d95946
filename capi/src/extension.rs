//! `sysext_extension_list` and `sysext_extension`: the extension images found (`list`).

use crate::boundary::{cstring, nth_ptr, opt_ptr};
use crate::handle::{self, Castable, OwnershipBox, OwnershipRef};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use sysext::{ImageKind, ImageState};

/// What an extension image is on disk.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_image_kind {
    /// A plain directory tree.
    Directory = 0,
    /// A btrfs subvolume.
    Subvolume = 1,
    /// A `.raw` image file (a file system or a GPT disk image).
    Raw = 2,
    /// A block device.
    Block = 3,
}

impl From<ImageKind> for sysext_image_kind {
    fn from(k: ImageKind) -> Self {
        match k {
            ImageKind::Directory => sysext_image_kind::Directory,
            ImageKind::Subvolume => sysext_image_kind::Subvolume,
            ImageKind::Raw => sysext_image_kind::Raw,
            ImageKind::Block => sysext_image_kind::Block,
        }
    }
}

/// What a merge would do with an image (`sysext_extension_get_state()`).
///
/// Values are never reused; new states may be added, so handle unknown values.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_image_state {
    /// Part of the current merge.
    Merged = 0,
    /// Compatible with the host: a merge would use it.
    WouldMerge = 1,
    /// An empty directory that hides images of the same name in lower-precedence directories.
    Masked = 2,
    /// A merge would skip it: it does not fit the host (OS, version, level, scope,
    /// architecture) or has no release data.
    Incompatible = 3,
    /// A merge would fail on it (a bad image, forbidden content, no host os-release).
    Invalid = 4,
    /// Not determined: image files can only be inspected with privileges.
    Unknown = 5,
}

impl From<ImageState> for sysext_image_state {
    fn from(s: ImageState) -> Self {
        match s {
            ImageState::Merged => sysext_image_state::Merged,
            ImageState::WouldMerge => sysext_image_state::WouldMerge,
            ImageState::Masked => sysext_image_state::Masked,
            ImageState::Incompatible => sysext_image_state::Incompatible,
            ImageState::Invalid => sysext_image_state::Invalid,
            ImageState::Unknown => sysext_image_state::Unknown,
        }
    }
}

/// The extension images found by `sysext_context_list()`, sorted by name.
///
/// Freed by `sysext_extension_list_free()`, which also invalidates its items.
///
/// Thread safety: a list is immutable; its getters may be called from several threads at once.
#[derive(Debug)]
pub struct sysext_extension_list {
    _private: [u8; 0],
}

/// One extension image of a `sysext_extension_list`; it belongs to the list (never freed alone).
#[derive(Debug)]
pub struct sysext_extension {
    _private: [u8; 0],
}

#[derive(Debug)]
pub(crate) struct ImageListData {
    items: Vec<ImageData>,
}

#[derive(Debug)]
pub(crate) struct ImageData {
    name: CString,
    kind: sysext_image_kind,
    path: CString,
    time_usec: u64,
    state: sysext_image_state,
    skipped_reason: Option<CString>,
    shadows: Vec<CString>,
}

impl Castable for sysext_extension_list {
    type Ownership = OwnershipBox;
    type RustType = ImageListData;
}

impl Castable for sysext_extension {
    type Ownership = OwnershipRef;
    type RustType = ImageData;
}

impl From<Vec<sysext::Extension>> for ImageListData {
    fn from(images: Vec<sysext::Extension>) -> Self {
        let items = images
            .into_iter()
            .map(|i| ImageData {
                name: cstring(i.name),
                kind: i.kind.into(),
                path: cstring(i.path),
                time_usec: i.time_usec,
                state: i.state.into(),
                skipped_reason: i.reason.map(cstring),
                shadows: i.shadows.into_iter().map(cstring).collect(),
            })
            .collect();
        ImageListData { items }
    }
}

impl sysext_extension_list {
    /// The number of images in the list; 0 if `list` is NULL.
    ///
    /// # Safety
    /// `list` is NULL or a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_list_count(
        list: *const sysext_extension_list,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `list` is NULL or a live `sysext_extension_list`.
            unsafe { handle::try_ref(list) }.map_or(0, |l| l.items.len())
        })
    }

    /// The `index`-th image, or NULL if `list` is NULL or `index` is out of range.
    /// The image is valid until the list is freed.
    ///
    /// # Safety
    /// `list` is NULL or a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_list_get(
        list: *const sysext_extension_list,
        index: usize,
    ) -> *const sysext_extension {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `list` is NULL or a live `sysext_extension_list`.
            unsafe { handle::try_ref(list) }
                .map_or(std::ptr::null(), |l| handle::nth_item::<sysext_extension>(&l.items, index))
        })
    }

    /// Free a list and its images. NULL is allowed and does nothing.
    ///
    /// # Safety
    /// `list` is NULL or a list not freed yet; it, its images and their strings must not be
    /// used afterwards.
    ///
    /// Thread safety: needs exclusive access to `list`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_list_free(list: *mut sysext_extension_list) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `list` is NULL or a list not freed yet; every
            // such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(list) }
        })
    }
}

impl sysext_extension {
    /// The image's name (file name without `.raw`/`.sysext`/`.confext` suffixes), or NULL if
    /// `image` is NULL. Valid until the list is freed.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_name(
        image: *const sysext_extension,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }.map_or(std::ptr::null(), |i| i.name.as_ptr())
        })
    }

    /// What the image is on disk; `SYSEXT_IMAGE_KIND_DIRECTORY` if `image` is NULL.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_kind(
        image: *const sysext_extension,
    ) -> sysext_image_kind {
        ffi_boundary!(default => sysext_image_kind::Directory, {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }.map_or(sysext_image_kind::Directory, |i| i.kind)
        })
    }

    /// The image's path (root prefix included), or NULL if `image` is NULL. Valid until the
    /// list is freed.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_path(
        image: *const sysext_extension,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }.map_or(std::ptr::null(), |i| i.path.as_ptr())
        })
    }

    /// The image's time in microseconds since the epoch: the modification time of a file, the birth
    /// time of a directory (0 if unknown, or if `image` is NULL).
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_time_usec(image: *const sysext_extension) -> u64 {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }.map_or(0, |i| i.time_usec)
        })
    }

    /// What a merge would do with the image; `SYSEXT_IMAGE_STATE_UNKNOWN` if `image` is NULL.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_state(
        image: *const sysext_extension,
    ) -> sysext_image_state {
        ffi_boundary!(default => sysext_image_state::Unknown, {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }.map_or(sysext_image_state::Unknown, |i| i.state)
        })
    }

    /// Why a merge would not use this image, naming the field and values involved (e.g.
    /// "is for OS 'fedora', host is 'debian'"), for the states `MASKED`, `INCOMPATIBLE`,
    /// `INVALID` and `UNKNOWN`; NULL for `MERGED` and `WOULD_MERGE` (or if `image` is NULL).
    /// Valid until the list is freed.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_reason(
        image: *const sysext_extension,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }
                .map_or(std::ptr::null(), |i| opt_ptr(&i.skipped_reason))
        })
    }

    /// The number of lower-precedence images of the same name that this one shadows.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_shadows_count(
        image: *const sysext_extension,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }.map_or(0, |i| i.shadows.len())
        })
    }

    /// The path of the `index`-th shadowed image, or NULL if `image` is NULL or `index` is
    /// out of range. Valid until the list is freed.
    ///
    /// # Safety
    /// `image` is NULL or an image of a live `sysext_extension_list`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_extension_get_shadow(
        image: *const sysext_extension,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `image` is NULL or an image of a live
            // `sysext_extension_list`.
            unsafe { handle::try_ref(image) }
                .map_or(std::ptr::null(), |i| nth_ptr(&i.shadows, index))
        })
    }
}

/// The name of an image kind (`"directory"`, `"subvolume"`, `"raw"`, `"block"`, as in
/// `systemd-sysext list`), or NULL if `kind` is not a `SYSEXT_IMAGE_KIND_*` value.
/// The string is static.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn sysext_image_kind_to_string(kind: c_int) -> *const c_char {
    ffi_boundary!(default => std::ptr::null(), {
        match kind {
            0 => c"directory".as_ptr(),
            1 => c"subvolume".as_ptr(),
            2 => c"raw".as_ptr(),
            3 => c"block".as_ptr(),
            _ => std::ptr::null(),
        }
    })
}

/// The name of an image state (`"merged"`, `"would-merge"`, `"masked"`, `"incompatible"`,
/// `"invalid"`, `"unknown"`, as in `sysext list`), or NULL if `state` is not a
/// `SYSEXT_IMAGE_STATE_*` value. The string is static.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn sysext_image_state_to_string(state: c_int) -> *const c_char {
    ffi_boundary!(default => std::ptr::null(), {
        match state {
            0 => c"merged".as_ptr(),
            1 => c"would-merge".as_ptr(),
            2 => c"masked".as_ptr(),
            3 => c"incompatible".as_ptr(),
            4 => c"invalid".as_ptr(),
            5 => c"unknown".as_ptr(),
            _ => std::ptr::null(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn kind_names_match_core() {
        for k in [
            ImageKind::Directory,
            ImageKind::Subvolume,
            ImageKind::Raw,
            ImageKind::Block,
        ] {
            let c = sysext_image_kind::from(k) as std::os::raw::c_int;
            // SAFETY: a known value gives a static string, not NULL.
            let name = unsafe { CStr::from_ptr(sysext_image_kind_to_string(c)) };
            assert_eq!(name.to_str().unwrap(), k.as_str());
        }
        assert!(sysext_image_kind_to_string(4).is_null());
    }

    #[test]
    fn state_names_match_core() {
        use ImageState as S;
        for s in [
            S::Merged,
            S::WouldMerge,
            S::Masked,
            S::Incompatible,
            S::Invalid,
            S::Unknown,
        ] {
            let c = sysext_image_state::from(s) as c_int;
            // SAFETY: a known value gives a static string, not NULL.
            let name = unsafe { CStr::from_ptr(sysext_image_state_to_string(c)) };
            assert_eq!(name.to_str().unwrap(), s.as_str());
        }
        assert!(sysext_image_state_to_string(6).is_null());
    }
}
