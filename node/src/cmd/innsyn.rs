//! `kobling innsyn`: a citizen's access to what an fnr register holds
//! about them (PROTOCOL.md §10a; `docs/innsyn.md` walks through it).
//!
//! ```text
//!  innsyn admit --manifest F --key OP.key --register R --portal P
//!        (an operator of R; the portal is served once two distinct operators admitted it)
//!  innsyn device-key --register R --session HEX --out SECRET
//!        (the citizen's device: a one-time key for this login session; prints the device request)
//!  innsyn request --manifest F --portal-key K --fnr-file FILE --device-request HEX --out REPLY
//!        (the portal: asks R, writes the reply it cannot open)
//!  innsyn open --secret SECRET --reply REPLY
//!        (the device: opens the reply, prints the rows)
//! ```
//!
//! The fnr is read from a file, never from the command line, goes only to
//! the register (inside the QUIC/TLS connection), and is never printed.
//! The reply is sealed to the device's one-time key: the portal writes it
//! and cannot open it.

use std::{io::Read as _, path::PathBuf, process::ExitCode};

use anyhow::{bail, ensure, Context};
use clap::Subcommand;
use kobling_protocol::{
    bounded::BoundedString,
    ident::{Identifier, ParseOptions},
    innsyn::{
        blinded::BlindedPerson,
        open_reply,
        wire::{InnsynAction, InnsynCall, Subject, MAX_SUBJECT},
        InnsynRequest, SealedReply,
    },
    manifest::{Manifest, Role},
    messages::{Message, NONCE_LEN},
    refusal::RefusalCode,
    rng::ErasingRng,
    seal::{HpkePublicKey, HpkeSecretKey},
    types::{Digest, Name},
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{cmd::project::ask, console::say, daemon::unix_now, keyfile::KeyFile, manifest_file};

/// The largest reply or device secret file read.
const MAX_FILE_BYTES: u64 = 32 << 20;

/// Innsyn subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum InnsynCommand {
    /// As an operator of a register: admit an innsyn portal of the
    /// manifest. The register serves the portal once two distinct
    /// operators of it admitted it.
    Admit {
        /// The federation manifest (TOML).
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The operator's key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The register.
        #[arg(long, value_name = "MEMBER")]
        register: String,
        /// The portal, as the manifest's `[[portals]]` names it.
        #[arg(long, value_name = "NAME")]
        portal: String,
    },
    /// On the citizen's device: make a one-time key bound to the login
    /// session, write it to a new file (mode 0600) and print the device
    /// request the portal passes on.
    DeviceKey {
        /// The register asked.
        #[arg(long, value_name = "MEMBER")]
        register: String,
        /// SHA3-256 of the portal's login session id (64 hex digits).
        #[arg(long, value_name = "HEX")]
        session: String,
        /// The secret file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// As a portal: ask a register for one person's rows, sealed to the
    /// citizen's device, and write the sealed reply.
    Request {
        /// The federation manifest (TOML).
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The portal's key file (`kobling keys operator` makes one).
        #[arg(long, value_name = "FILE")]
        portal_key: PathBuf,
        /// A file holding the person's fnr (never on the command line).
        #[arg(long, value_name = "FILE")]
        fnr_file: PathBuf,
        /// The device request (`kobling innsyn device-key` prints it).
        #[arg(long, value_name = "HEX")]
        device_request: String,
        /// The reply file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// On the citizen's device: open a reply and print the rows (CSV, the
    /// register's column names first).
    Open {
        /// The device's secret file (`kobling innsyn device-key`).
        #[arg(long, value_name = "FILE")]
        secret: PathBuf,
        /// The reply the portal passed on.
        #[arg(long, value_name = "FILE")]
        reply: PathBuf,
    },
}

/// The device's secret file.
#[derive(Serialize, Deserialize)]
struct DeviceFile {
    /// The one-time X25519 secret (hex).
    secret: String,
    /// The device request (hex of its postcard encoding).
    request: String,
}

impl InnsynCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            InnsynCommand::DeviceKey {
                register,
                session,
                out,
            } => device_key(&register, &session, &out),
            InnsynCommand::Open { secret, reply } => open(&secret, &reply),
            other => {
                let rt = super::runtime()?;
                rt.block_on(other.run_async())
            }
        }
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        match self {
            InnsynCommand::Admit {
                manifest,
                key,
                register,
                portal,
            } => {
                let manifest = manifest_file::load(&manifest)?;
                let key = KeyFile::load(&key)?;
                let register = register_of(&manifest, &register)?;
                let portal = Name::new(portal).context("invalid --portal")?;
                ensure!(
                    manifest.portal(&portal).is_some(),
                    "the manifest lists no innsyn portal {portal}"
                );
                ensure!(
                    manifest.is_operator_of(&register, &key.public()),
                    "this key is not an operator of {register}"
                );
                let call = call(
                    &manifest,
                    &register,
                    InnsynAction::Admit {
                        portal: portal.clone(),
                    },
                )?
                .sign(&key.signing);
                match one_reply(&manifest, &register, call).await? {
                    Message::Ack { .. } => {
                        say!("your admission of portal {portal} is taken at {register}; {register} serves it once two distinct operators admitted it");
                        Ok(ExitCode::SUCCESS)
                    }
                    other => bail!("unexpected reply: {}", other.kind()),
                }
            }
            InnsynCommand::Request {
                manifest,
                portal_key,
                fnr_file,
                device_request,
                out,
            } => {
                let manifest = manifest_file::load(&manifest)?;
                let key = KeyFile::load(&portal_key)?;
                let request = decode_request(&device_request)?;
                // The register decides whether this key is a portal (and
                // says so when it is not).
                let portal = manifest.portal_by_key(&key.public()).map_or_else(
                    || "(not a portal of the manifest)".to_owned(),
                    |p| p.name.to_string(),
                );
                let subject = read_fnr(&fnr_file)?;
                let (register, reply) = match manifest.domain(&request.register).cloned() {
                    Some(spec) => {
                        let reply = blinded(&manifest, &spec, &key, request, &subject).await?;
                        (spec.holder, reply)
                    }
                    None => {
                        let register = register_of(&manifest, request.register.as_str())?;
                        let call = call(
                            &manifest,
                            &register,
                            InnsynAction::Lookup { request, subject },
                        )?
                        .sign(&key.signing);
                        match one_reply(&manifest, &register, call).await? {
                            Message::InnsynReply(reply) => (register, reply),
                            other => bail!("unexpected reply: {}", other.kind()),
                        }
                    }
                };
                let bytes = postcard::to_allocvec(&*reply)?;
                let mut file = crate::private_fs::create_new(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                std::io::Write::write_all(&mut file, &bytes)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                file.sync_all()?;
                say!(
                    "{register}'s reply to portal {portal} ({} bytes, sealed to the device's one-time key) is written to {}",
                    bytes.len(),
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            InnsynCommand::DeviceKey { .. } | InnsynCommand::Open { .. } => Ok(ExitCode::SUCCESS),
        }
    }
}

/// Innsyn at a pseudonymous holder: the person's one-person list, blinded
/// here and run by the holder through the domain's key holders; the
/// holder's reply, collected once they are done. Nothing this portal
/// receives holds the pseudonym or the rows.
async fn blinded(
    manifest: &Manifest,
    spec: &kobling_protocol::domain::spec::DomainSpec,
    key: &KeyFile,
    request: InnsynRequest,
    subject: &Subject,
) -> anyhow::Result<Box<SealedReply>> {
    // The portal cannot tell a test federation from a real one; synthetic
    // numbers (month + 80) never collide with real ones.
    let id = Identifier::parse(
        subject.0.as_str(),
        ParseOptions {
            allow_synthetic: true,
        },
    )
    .map_err(|e| anyhow::anyhow!("the identifier is not a valid one ({})", e.reason_code()))?;
    let hpke = |m: &Name| -> anyhow::Result<HpkePublicKey> {
        let member = manifest
            .member(m)
            .with_context(|| format!("the manifest has no member {m}"))?;
        HpkePublicKey::from_bytes(member.hpke_key.0)
            .map_err(|_| anyhow::anyhow!("{m}'s HPKE key in the manifest is not usable"))
    };
    let hop1 = spec
        .key_holders(manifest)
        .into_iter()
        .next()
        .with_context(|| format!("domain {} has no key holders", spec.name))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let mut rng = ErasingRng::from_seed(seed);
    let person = BlindedPerson::new(
        &request,
        spec.name.clone(),
        &id,
        &hpke(&spec.holder)?,
        &hpke(&hop1)?,
        &mut rng,
    );
    let holder = &spec.holder;
    let ask = call(
        manifest,
        holder,
        InnsynAction::Blinded {
            request: request.clone(),
            person: Box::new(person),
        },
    )?
    .sign(&key.signing);
    match one_reply(manifest, holder, ask).await? {
        Message::Ack { .. } => {}
        other => bail!("unexpected reply: {}", other.kind()),
    }
    say!("{holder} took the request; the domain's key holders are stepping it");
    let deadline = std::time::Instant::now() + COLLECT_FOR;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let collect = call(
            manifest,
            holder,
            InnsynAction::Collect {
                request: request.clone(),
            },
        )?
        .sign(&key.signing);
        let replies = ask_innsyn(manifest, holder, collect).await?;
        match replies {
            Message::InnsynReply(reply) => return Ok(reply),
            Message::Refused { code, .. }
                if code.as_str() == RefusalCode::NotReady.as_str()
                    && std::time::Instant::now() < deadline => {}
            Message::Refused { code, detail } => bail!("refused by {holder} ({code}): {detail}"),
            other => bail!("unexpected reply: {}", other.kind()),
        }
    }
}

/// How long `innsyn request` waits for a pseudonymous holder's reply.
const COLLECT_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// The register called `name` in the manifest.
fn register_of(manifest: &Manifest, name: &str) -> anyhow::Result<Name> {
    let name = Name::new(name).context("invalid register name")?;
    match manifest.member(&name) {
        Some(m) if m.role == Role::Register => Ok(name),
        _ => bail!("the manifest has no register {name}: an innsyn request goes to a register"),
    }
}

fn call(manifest: &Manifest, node: &Name, action: InnsynAction) -> anyhow::Result<InnsynCall> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(InnsynCall {
        action,
        time: unix_now(),
        node: node.clone(),
        manifest: manifest.digest(),
        nonce,
    })
}

async fn one_reply(
    manifest: &Manifest,
    to: &Name,
    call: kobling_protocol::innsyn::wire::SignedInnsyn,
) -> anyhow::Result<Message> {
    match ask_innsyn(manifest, to, call).await? {
        Message::Refused { code, detail } => bail!("refused by {to} ({code}): {detail}"),
        m => Ok(m),
    }
}

/// The node's one reply to an innsyn call, a refusal included.
async fn ask_innsyn(
    manifest: &Manifest,
    to: &Name,
    call: kobling_protocol::innsyn::wire::SignedInnsyn,
) -> anyhow::Result<Message> {
    let replies = ask(manifest, to, Message::Innsyn(Box::new(call))).await?;
    replies
        .into_iter()
        .next()
        .with_context(|| format!("no reply from {to}"))
}

/// The fnr in `path`: one line, never shown.
fn read_fnr(path: &std::path::Path) -> anyhow::Result<Subject> {
    let mut text = Zeroizing::new(String::new());
    crate::private_fs::open_regular(path, false)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(MAX_SUBJECT as u64 + 2)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let fnr = text.trim();
    ensure!(
        !fnr.is_empty() && fnr.len() <= MAX_SUBJECT,
        "{} does not hold one identifier",
        path.display()
    );
    Ok(Subject(BoundedString::new(fnr).map_err(|_| {
        anyhow::anyhow!("the identifier is too long")
    })?))
}

fn decode_request(text: &str) -> anyhow::Result<InnsynRequest> {
    let bytes = hex::decode(text.trim()).context("the device request is not hex")?;
    postcard::from_bytes(&bytes).context("the device request cannot be read")
}

fn device_key(register: &str, session: &str, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let register = Name::new(register).context("invalid --register")?;
    let session: [u8; 32] = hex::decode(session.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--session must be 64 hex digits (SHA3-256 of the login session id)")?;
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let secret = HpkeSecretKey::from_bytes(*seed);
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let request = InnsynRequest {
        register,
        device_key: secret.public_key(),
        session: Digest(session),
        nonce,
    };
    let request_hex = hex::encode(postcard::to_allocvec(&request)?);
    let text = Zeroizing::new(toml::to_string(&DeviceFile {
        secret: hex::encode(secret.to_secret_bytes().as_ref()),
        request: request_hex.clone(),
    })?);
    let mut file = crate::private_fs::create_new(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::io::Write::write_all(
        &mut file,
        format!(
            "# Kobling innsyn device key: one request, keep it on the device.\n{}",
            *text
        )
        .as_bytes(),
    )?;
    file.sync_all()?;
    say!("{request_hex}");
    Ok(ExitCode::SUCCESS)
}

fn read_small(path: &std::path::Path, private: bool) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    crate::private_fs::open_regular(path, private)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

fn open(secret: &std::path::Path, reply: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = Zeroizing::new(read_small(secret, true)?);
    let file: DeviceFile =
        toml::from_str(std::str::from_utf8(&text).context("the device secret file is not text")?)
            .context("the device secret file cannot be read")?;
    let secret_bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
        hex::decode(&file.secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("the device secret file holds no key")?,
    );
    let device = HpkeSecretKey::from_bytes(*secret_bytes);
    let request = decode_request(&file.request)?;
    let sealed: SealedReply = postcard::from_bytes(&read_small(reply, false)?)
        .context("the reply file is not an innsyn reply")?;
    let rows = open_reply(&device, &request, &sealed).context(
        "the reply does not open with this device's key: it answers another request or was altered",
    )?;
    let mut rows = rows.into_iter();
    let header = rows.next().unwrap_or_default();
    let mut count = 0usize;
    say!("{}", csv_line(&header));
    for row in rows {
        say!("{}", csv_line(&row));
        count += 1;
    }
    eprintln!("{count} rows from {}", request.register);
    Ok(ExitCode::SUCCESS)
}

/// One CSV line: fields with a comma, quote or line break are quoted (the
/// tests compare `innsyn open`'s output with it, through `testing`).
pub(crate) fn csv_line(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_line_quotes_only_fields_that_need_it() {
        let fields = ["J45", "a,b", "say \"hi\"", "two\nlines", ""].map(String::from);
        assert_eq!(
            super::csv_line(&fields),
            "J45,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\","
        );
    }
}
