//! barge's identity for `shipyard::passphrase` (shared with hangar): its name in messages and
//! its test-KDF switch. Passphrases themselves are read by shipyard, through `crate::key`.

/// Environment variable that, set to `cheap`, makes new keys use the smallest Argon2i costs.
/// FOR TESTS ONLY: such keys are easy to brute-force. A warning is printed each time.
pub const TEST_KDF_ENV: &str = "BARGE_TEST_KDF";

/// barge, for shipyard's messages and its test-KDF switch.
pub const TOOL: shipyard::Tool = shipyard::Tool {
    name: "barge",
    test_kdf_env: TEST_KDF_ENV,
};
