//! Tests against the real `channel-server` binary on a loopback port: every endpoint's happy
//! path, every refusal rule, limits, and durability under `kill -9`. Answers are verified with
//! keyggdrasil only.

mod server {
    mod api;
    mod durability;
    mod fresh;
    pub mod harness;
    mod refusals;
    mod release_lookup;
    mod repair;
    mod resilience;
    mod snapshot;
    mod tiles;
}
