//! Locked memory for long-lived secrets, and process hardening for the processes that hold them.
//!
//! # Why this module may use `unsafe`
//! Keeping a secret out of swap (`mlock`), out of core dumps (`madvise(MADV_DONTDUMP)`,
//! `setrlimit(RLIMIT_CORE)`) and away from same-user debuggers (`prctl(PR_SET_DUMPABLE)`) needs
//! calls into libc that the standard library does not wrap, plus a page-aligned heap allocation
//! so that locking and unlocking affect only the secret's own pages. That is all the `unsafe`
//! here does. The rest of keyggdrasil is `#![deny(unsafe_code)]` and this is the one module
//! allowed to opt out; nothing else may.
//!
//! # What it gives
//! - [`harden_process`]: makes the process non-dumpable (no core dumps, no `ptrace` attach and no
//!   `/proc/PID/mem` access by other processes of the same user) and sets the core size limit
//!   to 0, hard and soft.
//! - [`LockedBox`]: a value on its own page-aligned, page-sized heap allocation that is
//!   `mlock`ed (best effort: see [`LockedBox::is_locked`]) and excluded from core dumps; on drop
//!   the value's own destructor runs, then every byte of the allocation is overwritten with
//!   zeros (volatile writes, so the compiler cannot elide them), then the pages are unlocked
//!   and freed. `Debug` never shows the contents.
//!
//! # Limits (what this does not do)
//! - `T` must hold its secret inline (arrays, `ed25519_dalek::SigningKey`, [`crate::keys::KeyPair`]).
//!   Heap buffers owned by `T` (a `Vec` inside it) are neither locked nor wiped by this type.
//! - The value is built on the stack and moved in, so a transient copy exists on the stack of
//!   the thread that built it; Rust gives no way to construct in place. Signing also puts the
//!   expanded secret scalar on the signing thread's stack for the duration of one signature
//!   (ed25519-dalek zeroizes it afterwards). Stack pages are not locked.
//! - `mlock` fails without `CAP_IPC_LOCK` once `RLIMIT_MEMLOCK` (often 64 KiB or 8 MiB) is used
//!   up; the box then still works, unlocked, and says so through [`LockedBox::is_locked`] so
//!   the caller can warn loudly.
//! - On non-Linux Unix systems [`harden_process`] only sets the core limit (there is no
//!   `PR_SET_DUMPABLE`), and `MADV_DONTDUMP` is not used.
//!
//! # Example
//! ```
//! use keyggdrasil::keys::KeyPair;
//! use keyggdrasil::os::lockmem::LockedBox;
//!
//! let key = LockedBox::new(KeyPair::generate());
//! if !key.is_locked() {
//!     eprintln!("WARNING: could not lock the key in memory; it may be swapped to disk");
//! }
//! let _sig = key.sign_raw(b"message");
//! ```

use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use std::sync::atomic::{Ordering, compiler_fence};

/// Makes the current process non-dumpable and sets its core-file size limit to zero.
///
/// `prctl(PR_SET_DUMPABLE, 0)` stops core dumps and stops other processes of the same user from
/// attaching with `ptrace` or reading `/proc/PID/mem`; `setrlimit(RLIMIT_CORE, 0)` (soft and hard)
/// is a second, independent guard against core files. Neither can be undone by this process
/// except by `PR_SET_DUMPABLE` again, which nothing here does. Call it first thing in a process
/// that holds long-lived secrets, before reading them.
pub fn harden_process() -> Result<(), io::Error> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes integer arguments only and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid, initialised rlimit that outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf with a valid name has no memory effects.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // A power of two of at least 4 KiB on every supported system; fall back if not.
        match usize::try_from(p) {
            Ok(p) if p >= 4096 && p.is_power_of_two() => p,
            _ => 4096,
        }
    })
}

/// A secret value on its own `mlock`ed, page-aligned heap pages, wiped on drop.
///
/// See the [module documentation](self) for what is and is not protected.
pub struct LockedBox<T> {
    ptr: NonNull<T>,
    layout: Layout,
    lock_error: Option<io::Error>,
}

// SAFETY: LockedBox owns its T exactly like Box<T> does; sending or sharing it is sending or
// sharing the T.
unsafe impl<T: Send> Send for LockedBox<T> {}
// SAFETY: as above; &LockedBox<T> only gives out &T.
unsafe impl<T: Sync> Sync for LockedBox<T> {}

impl<T> LockedBox<T> {
    /// Moves `value` onto freshly allocated pages of its own and locks them in memory.
    ///
    /// Never fails for lack of locking: check [`is_locked`](Self::is_locked) and warn. Aborts
    /// (like `Box::new`) only if the allocation itself fails.
    pub fn new(value: T) -> Self {
        let page = page_size();
        let size = size_of::<T>().max(1).next_multiple_of(page);
        let align = align_of::<T>().max(page);
        let Ok(layout) = Layout::from_size_align(size, align) else {
            // Only reachable for a T of nearly isize::MAX bytes.
            alloc::handle_alloc_error(Layout::new::<T>());
        };
        // SAFETY: layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(bytes) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        let ptr = bytes.cast::<T>();
        // SAFETY: ptr is valid for writes of T: it is aligned to at least align_of::<T>() and the
        // allocation is at least size_of::<T>() bytes.
        unsafe { ptr.as_ptr().write(value) };
        // SAFETY: [raw, raw + size) is our own allocation; mlock only changes paging behaviour.
        let rc = unsafe { libc::mlock(raw.cast(), size) };
        let lock_error = (rc != 0).then(io::Error::last_os_error);
        #[cfg(target_os = "linux")]
        // SAFETY: as above, on whole pages of our own allocation; advisory only. Failure is
        // harmless (RLIMIT_CORE and PR_SET_DUMPABLE are the main guards), so it is ignored.
        unsafe {
            libc::madvise(raw.cast(), size, libc::MADV_DONTDUMP);
        }
        Self {
            ptr,
            layout,
            lock_error,
        }
    }

    /// True if the pages are locked in RAM (cannot be written to swap).
    pub fn is_locked(&self) -> bool {
        self.lock_error.is_none()
    }

    /// Why locking failed (typically `EPERM` or `ENOMEM`: `RLIMIT_MEMLOCK` is too small and the
    /// process lacks `CAP_IPC_LOCK`), if it did.
    pub fn lock_error(&self) -> Option<&io::Error> {
        self.lock_error.as_ref()
    }
}

impl<T> Deref for LockedBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: ptr points to an initialised T that we own until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for LockedBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref, and &mut self guarantees exclusive access.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for LockedBox<T> {
    fn drop(&mut self) {
        let raw = self.ptr.as_ptr().cast::<u8>();
        let size = self.layout.size();
        // SAFETY: the T is initialised and dropped exactly once, here. Afterwards the bytes are
        // only written through a raw pointer (never read as T), then unlocked and freed with the
        // layout they were allocated with.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            for i in 0..size {
                ptr::write_volatile(raw.add(i), 0);
            }
            compiler_fence(Ordering::SeqCst);
            #[cfg(target_os = "linux")]
            libc::madvise(raw.cast(), size, libc::MADV_DODUMP);
            if self.lock_error.is_none() {
                libc::munlock(raw.cast(), size);
            }
            alloc::dealloc(raw, self.layout);
        }
    }
}

impl<T> fmt::Debug for LockedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedBox")
            .field("value", &format_args!("<redacted>"))
            .field("locked", &self.is_locked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn holds_value_and_reports_lock_state() {
        let mut b = LockedBox::new([7u8; 32]);
        assert_eq!(*b, [7u8; 32]);
        b[0] = 1;
        assert_eq!(b[0], 1);
        // Either locked, or it says why not (no CAP_IPC_LOCK and RLIMIT_MEMLOCK used up).
        assert_eq!(b.is_locked(), b.lock_error().is_none());
        if let Some(e) = b.lock_error() {
            assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::ENOMEM | libc::EAGAIN)
                ),
                "{e}"
            );
        }
        let addr = &*b as *const [u8; 32] as usize;
        assert_eq!(addr % page_size(), 0, "the value starts on its own page");
    }

    #[test]
    fn keypair_in_locked_box_signs() {
        let kp = KeyPair::generate();
        let public = kp.public();
        let b = LockedBox::new(kp);
        let sig = b.sign_raw(b"m");
        public.verify_strict(b"m", &sig).unwrap();
    }

    #[test]
    fn debug_is_redacted() {
        let b = LockedBox::new([0xabu8; 4]);
        let text = format!("{b:?}");
        assert!(text.contains("<redacted>"));
        assert!(!text.contains("171"));
    }

    #[test]
    fn drop_runs_the_value_destructor_once() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let n = Arc::new(AtomicUsize::new(0));
        drop(LockedBox::new(Counted(n.clone())));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn large_and_zero_sized_values() {
        let big = LockedBox::new([1u8; 10_000]);
        assert!(big.iter().all(|&b| b == 1));
        let unit = LockedBox::new(());
        assert_eq!(*unit, ());
        // Many boxes: each unlocks its own pages on drop, so locking does not accumulate.
        for _ in 0..1000 {
            let b = LockedBox::new([2u8; 32]);
            assert_eq!(b[31], 2);
        }
    }

    #[test]
    fn hardening_makes_the_process_non_dumpable() {
        harden_process().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: lim is a valid rlimit to write to.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) }, 0);
        assert_eq!((lim.rlim_cur, lim.rlim_max), (0, 0));
        #[cfg(target_os = "linux")]
        // SAFETY: PR_GET_DUMPABLE takes no pointer arguments.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
        // Idempotent.
        harden_process().unwrap();
    }
}
