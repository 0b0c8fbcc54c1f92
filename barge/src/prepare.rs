//! `barge prepare …`: write an unsigned request bundle for `hangar sign` on the air-gapped
//! machine, and keep a record of it in `local/prepared/` so that `barge publish` later accepts
//! only a signed bundle whose request is exactly one prepared here.
//!
//! The channel's origin is read from its signed checkpoint (verified with the pinned channel
//! key), so a bundle names the channel it is meant for. Only public keys are needed here: the key
//! files on the online machine are derived-key files holding no secret, or `--signer HEX`.

use std::path::{Path, PathBuf};

use keyggdrasil::bundle::{Bundle, Kind, ReleaseRequest, Request};
use keyggdrasil::entry::{Digest512, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::filesig;
use keyggdrasil::keyfile::KeyRole;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::os::secretfile::{ensure_private_dir, write_secret_file};
use shipyard::bundlefile::write_new_file;

use crate::build::{build, default_out, parse_package, parse_version, write_file};
use crate::config::{self, local_dir};
use crate::error::{Error, io_at};
use crate::http::Client;
use crate::key::{find_key, read_key_file};
use crate::output::Output;

/// Folder inside `local/` with the request line of every prepared bundle.
pub const PREPARED_DIR: &str = "prepared";

/// The `barge prepare` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PrepareCommand {
    /// Build the archive and write a release request bundle beside it (dist/P-V.bundle).
    Release(ReleaseArgs),
    /// Request adding a key: a signing key (signed by a master key), another master key, or the
    /// first master key's self-signed registration (`--key` = `--master-key`).
    KeyAdd(KeyAddArgs),
    /// Request revoking a key (signed by another master key).
    Revoke(RevokeArgs),
    /// Request revoking a release.
    RevokeRelease(RevokeReleaseArgs),
    /// Request a rollout entry: replace a release's staged-rollout schedule (pause, resume,
    /// widen). Relative times (`@+6h`) count from now, when the bundle is prepared. The entry
    /// names the release's current schedule, read from the channel now: if another rollout
    /// entry is logged before this one is published, the channel refuses it (`stale_rollout`)
    /// and a new bundle has to be prepared.
    Rollout(RolloutArgs),
}

/// Arguments of `barge prepare rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// Package name.
    #[arg(long)]
    pub package: String,
    /// The version whose rollout changes.
    #[arg(long)]
    pub version: String,
    /// The waves: `1%,10%@+6h,100%@+24h`, `100%@1800000000`, or `now`.
    #[arg(long)]
    pub rollout: String,
    /// Log the rollout as paused (no site that has not installed the release installs it).
    #[arg(long)]
    pub paused: bool,
    /// The signing or master key file that signs (default: the only signing key in `local/`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where to write the bundle (default: dist/rollout-P-V.bundle).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `barge prepare release`.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The package's source folder (a clean git checkout).
    pub source: PathBuf,
    /// Package name.
    #[arg(long)]
    pub package: String,
    /// Version.
    #[arg(long)]
    pub version: String,
    /// The signing key file (default: the only signing key in `local/`).
    #[arg(long, conflicts_with = "signer")]
    pub key: Option<PathBuf>,
    /// The signing public key (64 hex), instead of a key file.
    #[arg(long)]
    pub signer: Option<String>,
    /// Release even from a dirty or non-git tree. UNSAFE: nobody can reproduce the archive.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Where to write the bundle (default: dist/P-V.bundle, beside the archive).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `barge prepare key-add`.
#[derive(Debug, clap::Args)]
pub struct KeyAddArgs {
    /// The key file of the key to add (default: the only signing key in `local/`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The master key file that signs (default: the only master key in `local/`).
    #[arg(long)]
    pub master_key: Option<PathBuf>,
    /// Where to write the bundle (default: dist/key-add-FINGERPRINT.bundle).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `barge prepare revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The key to revoke: its public key (64 hex) or its key file.
    pub key: String,
    /// Why, for people (up to 256 characters).
    #[arg(long)]
    pub reason: String,
    /// The master key file that signs (default: the only master key in `local/`; it must not be
    /// the revoked key).
    #[arg(long)]
    pub master_key: Option<PathBuf>,
    /// Where to write the bundle (default: dist/revoke-FINGERPRINT.bundle).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `barge prepare revoke-release`.
#[derive(Debug, clap::Args)]
pub struct RevokeReleaseArgs {
    /// Package name.
    #[arg(long)]
    pub package: String,
    /// The version to revoke.
    #[arg(long)]
    pub version: String,
    /// Why, for people (up to 256 characters).
    #[arg(long)]
    pub reason: String,
    /// The signing or master key file that signs (default: the only signing key in `local/`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where to write the bundle (default: dist/revoke-P-V.bundle).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs a `barge prepare` subcommand.
pub fn run(dir: &Path, out: &Output, cmd: PrepareCommand) -> Result<(), Error> {
    match cmd {
        PrepareCommand::Release(a) => release(dir, out, a),
        PrepareCommand::KeyAdd(a) => key_add(dir, out, a),
        PrepareCommand::Revoke(a) => revoke(dir, out, a),
        PrepareCommand::RevokeRelease(a) => revoke_release(dir, out, a),
        PrepareCommand::Rollout(a) => rollout(dir, out, a),
    }
}

fn origin(cfg: &config::Loaded, out: &Output) -> Result<keyggdrasil::names::ChannelName, Error> {
    out.step(format!(
        "Reading the channel's signed checkpoint from {}...",
        cfg.channel
    ));
    Ok(Client::new(cfg).checkpoint()?.origin().clone())
}

fn dist(dir: &Path, name: String) -> PathBuf {
    dir.join("dist").join(name)
}

fn refuse_existing(path: &Path) -> Result<(), Error> {
    if path.exists() {
        return Err(Error::OutputExists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Writes the bundle and the record of its request line, then tells the author what to do.
fn write_bundle(
    dir: &Path,
    out: &Output,
    path: &Path,
    request: &Request,
    extra: serde_json::Value,
) -> Result<(), Error> {
    let bytes = Bundle::request_file(request).map_err(Error::BuildBundle)?;
    // Parsing what was just built gives its fingerprint and proves it readable by hangar.
    let bundle = Bundle::parse(&bytes).map_err(Error::BuildBundle)?;
    let fp = bundle.fingerprint();
    let records = local_dir(dir).join(PREPARED_DIR);
    ensure_private_dir(&records)?;
    let record = records.join(format!("{fp}.request"));
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(io_at("could not create", parent))?;
    }
    write_secret_file(&record, bundle.request_bytes(), true)?;
    write_new_file(path, &bytes)?;
    out.say(format!(
        "Wrote the {} request bundle {}\nfingerprint: {fp}\nCarry it to the air-gapped machine and run `hangar sign {}`;\n\
         check that hangar shows the same fingerprint. Then run `barge publish` on the signed bundle.",
        request.kind.as_str(),
        path.display(),
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut json = serde_json::json!({
        "kind": request.kind.as_str(),
        "bundle": path,
        "fingerprint": fp,
        "origin": request.origin.as_str(),
        "supplier": request.supplier.as_str(),
        "signer": request.signer.to_hex(),
    });
    if let (Some(obj), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
        obj.extend(more);
    }
    out.json(json);
    Ok(())
}

fn body_text(body: &EntryBody) -> String {
    String::from_utf8_lossy(&body.canonical_bytes()).into_owned()
}

fn release(dir: &Path, out: &Output, a: ReleaseArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let signer = match &a.signer {
        Some(hex) => PublicKey::from_hex(hex).map_err(|source| Error::BadPublicKey {
            what: "--signer".to_owned(),
            source,
        })?,
        None => {
            find_key(dir, KeyRole::Signing, a.key.as_deref())?
                .1
                .public_key
        }
    };
    let package = parse_package(&a.package)?;
    let version = parse_version(&a.version)?;
    let path = a.out.clone().unwrap_or_else(|| {
        dist(
            dir,
            format!("{}-{}.bundle", package.as_str(), version.as_str()),
        )
    });
    refuse_existing(&path)?;
    let origin = origin(&cfg, out)?;
    out.step(format!(
        "Building {}/{} {} from {}...",
        cfg.supplier.as_str(),
        a.package,
        a.version,
        a.source.display()
    ));
    let built = build(
        &cfg.supplier,
        &a.source,
        &a.package,
        &a.version,
        a.allow_dirty,
    )?;
    let archive = default_out(dir, &built);
    let (size, digest, keyed) =
        filesig::digest_both(&signer, &built.bytes[..]).map_err(Error::Hash)?;
    let commit = GitCommit::parse(built.manifest.git_commit()).map_err(Error::BadCommit)?;
    let archive_name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let request = Request::new(
        origin,
        cfg.supplier.clone(),
        Kind::Release,
        signer,
        None,
        Some(ReleaseRequest {
            package: built.package.clone(),
            version: built.version.clone(),
            archive: archive_name,
            size,
            digest: Digest512(digest),
            keyed_digest: Digest512(keyed),
            commit: commit.clone(),
        }),
    );
    write_file(&archive, &built.bytes)?;
    out.step(format!(
        "Built {} ({size} bytes) from commit {}.",
        archive.display(),
        commit.as_str()
    ));
    write_bundle(
        dir,
        out,
        &path,
        &request,
        serde_json::json!({
            "package": built.package.as_str(),
            "version": built.version.as_str(),
            "archive": archive,
            "size": size,
            "digest": hex::encode(digest),
            "commit": commit.as_str(),
        }),
    )
}

fn key_add(dir: &Path, out: &Output, a: KeyAddArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (_, key) = match &a.key {
        Some(p) => (p.clone(), read_key_file(p)?),
        None => find_key(dir, KeyRole::Signing, None)?,
    };
    let (_, master) = find_key(dir, KeyRole::Master, a.master_key.as_deref())?;
    let event = match key.role {
        KeyRole::Master => Event::MasterKey {
            public_key: key.public_key,
            derivation: key.derivation.clone(),
        },
        KeyRole::Signing => Event::SigningKey {
            public_key: key.public_key,
            derivation: key.derivation.clone(),
        },
        _ => return Err(Error::NotAddable),
    };
    let path = a.out.clone().unwrap_or_else(|| {
        dist(
            dir,
            format!("key-add-{}.bundle", key.public_key.fingerprint()),
        )
    });
    refuse_existing(&path)?;
    let origin = origin(&cfg, out)?;
    let body = EntryBody::new(cfg.supplier.clone(), master.public_key, event);
    let request = Request::new(
        origin,
        cfg.supplier.clone(),
        Kind::KeyAdd,
        master.public_key,
        Some(body_text(&body)),
        None,
    );
    write_bundle(
        dir,
        out,
        &path,
        &request,
        serde_json::json!({"key": key.public_key.to_hex()}),
    )
}

fn parse_key_arg(text: &str) -> Result<PublicKey, Error> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PublicKey::from_hex(text).map_err(|source| Error::BadPublicKey {
            what: format!("{text:?}"),
            source,
        });
    }
    Ok(read_key_file(Path::new(text))?.public_key)
}

fn revoke(dir: &Path, out: &Output, a: RevokeArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let revoked = parse_key_arg(&a.key)?;
    let reason = Reason::parse(&a.reason).map_err(Error::BadReason)?;
    let (_, master) = find_key(dir, KeyRole::Master, a.master_key.as_deref())?;
    if master.public_key == revoked {
        return Err(Error::SelfRevocationBundle);
    }
    let path = a
        .out
        .clone()
        .unwrap_or_else(|| dist(dir, format!("revoke-{}.bundle", revoked.fingerprint())));
    refuse_existing(&path)?;
    let origin = origin(&cfg, out)?;
    let body = EntryBody::new(
        cfg.supplier.clone(),
        master.public_key,
        Event::KeyRevocation {
            public_key: revoked,
            reason,
        },
    );
    let request = Request::new(
        origin,
        cfg.supplier.clone(),
        Kind::KeyRevoke,
        master.public_key,
        Some(body_text(&body)),
        None,
    );
    write_bundle(
        dir,
        out,
        &path,
        &request,
        serde_json::json!({"key": revoked.to_hex()}),
    )
}

fn revoke_release(dir: &Path, out: &Output, a: RevokeReleaseArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let package = parse_package(&a.package)?;
    let version = parse_version(&a.version)?;
    let reason = Reason::parse(&a.reason).map_err(Error::BadReason)?;
    let summary = serde_json::json!({"package": package.as_str(), "version": version.as_str()});
    let file = format!("revoke-{}-{}.bundle", package.as_str(), version.as_str());
    let event = Event::ReleaseRevocation {
        package,
        version,
        reason,
    };
    release_event_bundle(
        dir,
        out,
        &cfg,
        (a.key.as_deref(), a.out.clone()),
        (file, Kind::ReleaseRevoke, event),
        summary,
    )
}

fn rollout(dir: &Path, out: &Output, a: RolloutArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let package = parse_package(&a.package)?;
    let version = parse_version(&a.version)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let waves = crate::rollout::parse_spec(&a.rollout, now)?;
    out.step(format!(
        "Reading the current schedule of {}/{} {} from {}...",
        cfg.supplier.as_str(),
        package.as_str(),
        version.as_str(),
        cfg.channel
    ));
    let current = crate::rollout::current_schedule(&Client::new(&cfg), &cfg, &package, &version)?;
    let summary = serde_json::json!({
        "package": package.as_str(),
        "version": version.as_str(),
        "waves": waves,
        "paused": a.paused,
        "replaces": current.index,
    });
    let file = format!("rollout-{}-{}.bundle", package.as_str(), version.as_str());
    let event = Event::Rollout {
        package,
        version,
        replaces: current.index,
        waves,
        paused: a.paused,
    };
    release_event_bundle(
        dir,
        out,
        &cfg,
        (a.key.as_deref(), a.out.clone()),
        (file, Kind::Rollout, event),
        summary,
    )
}

/// The request bundle for an event about one release (a revocation, a rollout): signed by the
/// key file given (a master or signing key) or the only signing key in `local/`, written to
/// `to` or `dist/<file>`, never over an existing file.
fn release_event_bundle(
    dir: &Path,
    out: &Output,
    cfg: &config::Loaded,
    (key, to): (Option<&Path>, Option<PathBuf>),
    (file, kind, event): (String, Kind, Event),
    summary: serde_json::Value,
) -> Result<(), Error> {
    let (_, key) = match key {
        Some(p) => (p.to_path_buf(), read_key_file(p)?),
        None => find_key(dir, KeyRole::Signing, None)?,
    };
    if !matches!(key.role, KeyRole::Master | KeyRole::Signing) {
        return Err(Error::NotASupplierKey);
    }
    let path = to.unwrap_or_else(|| dist(dir, file));
    refuse_existing(&path)?;
    let origin = origin(cfg, out)?;
    let body = EntryBody::new(cfg.supplier.clone(), key.public_key, event);
    let request = Request::new(
        origin,
        cfg.supplier.clone(),
        kind,
        key.public_key,
        Some(body_text(&body)),
        None,
    );
    write_bundle(dir, out, &path, &request, summary)
}
