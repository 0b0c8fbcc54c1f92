//! docs/config.md lists every key of continuum.toml (fails when a config struct gains a key the
//! reference lacks).

use continuum::config::{
    ChannelConfig, Config, HooksConfig, PackageConfig, PeerConfig, SiteSection, TransportConfig,
};
use system_tests::config_doc::{assert_documented, fields_of};

#[test]
fn every_continuum_toml_key_is_in_the_reference() {
    assert_eq!(
        fields_of::<Config>(),
        ["site", "channel", "peer", "package", "transport", "hooks"]
    );
    assert_documented::<SiteSection>("continuum.toml", "[site]");
    assert_documented::<ChannelConfig>("continuum.toml", "[[channel]]");
    assert_documented::<PeerConfig>("continuum.toml", "[[peer]]");
    assert_documented::<PackageConfig>("continuum.toml", "[[package]]");
    assert_documented::<TransportConfig>("continuum.toml", "[transport]");
    assert_documented::<HooksConfig>("continuum.toml", "[hooks]");
}
