//! Tests of `keyggdrasil::archive`, by topic: the builder, the extractor's rejections, round
//! trips, and property tests on hostile input. Unix only: they check file modes.
#![cfg(unix)]

#[path = "archive/build.rs"]
mod build;
#[path = "archive/extract.rs"]
mod extract;
#[path = "archive/fuzz.rs"]
mod fuzz;
#[path = "archive/round_trip.rs"]
mod round_trip;
#[path = "archive/support.rs"]
mod support;
