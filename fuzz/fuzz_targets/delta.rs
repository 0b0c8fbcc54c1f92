//! Delta patches (`delta::apply_patch`): bytes from a mirror, rebuilt against a fixed base.
//!
//! The first two bytes pick the logged target size (0 to 65,535 bytes, so iterations stay
//! fast); the rest is the patch. The base is a fixed 4 KiB pseudo-random buffer, and the
//! target a one-region edit of it, whose honest patch is made once.
//!
//! Properties, besides never panicking:
//! - never more than `target_size + 1` bytes are written, and an `Ok` wrote exactly
//!   `target_size` bytes (the length the caller then checks with the archive check);
//! - the honest patch rebuilds the target exactly.
#![no_main]

use std::sync::OnceLock;

use keyggdrasil::delta;
use libfuzzer_sys::fuzz_target;

fn base_and_target() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static FIXED: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut x: u32 = 0x1234_5678;
        let base: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 0xff) as u8
            })
            .collect();
        let mut target = base.clone();
        target[1000..1100].copy_from_slice(&[b'z'; 100]);
        let patch = delta::make_patch(&base, &target).expect("honest patch");
        (base, target, patch)
    })
}

fuzz_target!(|data: &[u8]| {
    let (base, target, patch) = base_and_target();
    let mut rebuilt = Vec::new();
    let n = delta::apply_patch(base, &patch[..], &mut rebuilt, target.len() as u64)
        .expect("the honest patch applies");
    assert_eq!((n as usize, &rebuilt), (target.len(), target));

    let Some((size, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let size = u64::from(u16::from_be_bytes(*size));
    let mut out = Vec::new();
    let result = delta::apply_patch(base, rest, &mut out, size);
    assert!(
        out.len() as u64 <= size + 1,
        "wrote past the logged size + 1"
    );
    if let Ok(n) = result {
        assert_eq!(n, size, "Ok with another length");
        assert_eq!(out.len() as u64, size);
    }
});
