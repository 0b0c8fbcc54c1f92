//! Tests against the real `channel-server` binary on a loopback port: every endpoint's happy
//! path, every refusal rule, limits, and durability under `kill -9`. Answers are verified with
//! keyggdrasil only.

mod server {
    pub mod harness;
    mod api;
    mod durability;
    mod refusals;
}
