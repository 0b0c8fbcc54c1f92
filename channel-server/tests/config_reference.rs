//! docs/config.md lists every key of channel.toml (fails when a config struct gains a key the
//! reference lacks).

use channel_server::config::{ChannelSection, Config, ServerLimits, ServerSection, WitnessSection};
use system_tests::config_doc::{assert_documented, fields_of};

#[test]
fn every_channel_toml_key_is_in_the_reference() {
    assert_eq!(
        fields_of::<Config>(),
        ["channel", "server", "limits", "witness"]
    );
    assert_documented::<ChannelSection>("channel.toml", "[channel]");
    assert_documented::<ServerSection>("channel.toml", "[server]");
    assert_documented::<ServerLimits>("channel.toml", "[limits]");
    assert_documented::<WitnessSection>("channel.toml", "[[witness]]");
}
