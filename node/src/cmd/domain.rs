//! `kobling domain`: an operator's commands for a register domain's
//! lifecycle (PROTOCOL.md §10; `docs/domains.md` walks through them).
//!
//! ```text
//!  domain status  --manifest F --key OP.key --domain R [--node M]    the verified transcript at the
//!                                                                   operator's own node (or M):
//!                                                                   holder, key holders committed
//!                                                                   or not, deliveries, retired
//!  domain export  --manifest F --key OP.key --domain R --out FILE    the transcript, for
//!                                                                   `kobling audit domain`
//!  domain retire  --manifest F --key OP.key --domain R              one of the holder's two
//!                                                                   operators' signatures
//!  domain backup  --dir DIR --domain R --first-passphrase-file F1 --second-passphrase-file F2 --out FILE
//!                 (at a key holder, offline: its share, encrypted under both passphrases)
//!  domain check-backup --backup FILE --domain R --first-passphrase-file F1 --second-passphrase-file F2
//!                 [--manifest F --transcript FILE --member M]       opens it; its key against the
//!                                                                   member's commitment
//!  domain reshare --manifest F --key OP.key --domain R --dir DIR --backup FILE
//!                 --first-passphrase-file F1 --second-passphrase-file F2
//!                 [--replaces OLD]
//!                 (at a key holder that lost its seed: a new share; the holder's table converted,
//!                  see `crate::reshare`; with --replaces, at the member the manifest now names in
//!                  retired key holder OLD's place, with OLD's backup)
//! ```
//!
//! `status` asks the operator's own node when it holds a copy (the holder
//! or a key holder), `export` the holder (either: any key holder with
//! `--node`) with a signed, single-use request; the transcript
//! is verified against the manifest here before anything is printed or
//! written. Nothing printed identifies a person: a domain transcript holds
//! names, keys, counts and digests, never a pseudonym.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, ensure, Context};
use clap::{Args, Subcommand};
use kobling_keys::{backup::open_backup, KdfParams, Keystore, Passphrase};
use kobling_protocol::{
    domain::{
        transcript::{
            decode_domain_transcript, encode_domain_transcript, verify_domain_transcript,
            DomainBody, DomainEntry, DomainLog, DomainState,
        },
        wire::{DomainAction, DomainRequest},
    },
    manifest::Manifest,
    messages::{Message, MAX_ENTRIES_PER_MESSAGE, NONCE_LEN},
    share::Domain,
    transcript::Sig,
    types::Name,
};

use crate::{cmd::project::ask, console::say, daemon::unix_now, keyfile::KeyFile, manifest_file};

/// The largest domain transcript or backup file read.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// What an operator's request to a node names.
#[derive(Debug, Args)]
pub(crate) struct Asking {
    /// The federation manifest (TOML).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// The operator's key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The domain, as in the manifest's `[[domains]]`.
    #[arg(long, value_name = "NAME")]
    domain: String,
}

/// The two operators' passphrase files of a backup.
#[derive(Debug, Args)]
pub(crate) struct TwoPassphrases {
    /// The first operator's passphrase file (mode 0600).
    #[arg(long, value_name = "FILE")]
    first_passphrase_file: PathBuf,
    /// The second operator's passphrase file (mode 0600; another
    /// passphrase than the first).
    #[arg(long, value_name = "FILE")]
    second_passphrase_file: PathBuf,
}

/// Domain subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DomainCommand {
    /// Show a domain as a node's copy of its transcript records it,
    /// verified here: holder, key holders in chain order and whether each
    /// committed, deliveries, re-shares, retired.
    Status {
        #[command(flatten)]
        asking: Asking,
        /// The node to ask (default: the operator's own node if it is the
        /// holder or a key holder, else the holder).
        #[arg(long, value_name = "MEMBER")]
        node: Option<String>,
    },
    /// Write a domain's transcript, verified, to a file (check it with
    /// `kobling audit domain`).
    Export {
        #[command(flatten)]
        asking: Asking,
        /// The node to ask (default: the domain's holder).
        #[arg(long, value_name = "MEMBER")]
        node: Option<String>,
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a domain's retirement as one of its holder's operators. The
    /// holder retires the domain once two distinct operators signed; every
    /// key holder then shreds its seed, and nothing more can be delivered
    /// into the domain or converted out of it. Irreversible.
    Retire {
        #[command(flatten)]
        asking: Asking,
    },
    /// At a key holder, with the node's keystore: back up its share of a
    /// domain, encrypted so that it opens only with both operators'
    /// passphrases (Argon2id each; the file holds no key without both).
    Backup {
        /// The node's directory (its keystore is `DIR/keys`).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The domain.
        #[arg(long, value_name = "NAME")]
        domain: String,
        #[command(flatten)]
        passphrases: TwoPassphrases,
        /// The keystore's own passphrase file, if it is encrypted.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// The backup file to create (mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// At a key holder whose seed of a domain was lost (its node keys are
    /// not): take a new share and have the holder's table converted to it
    /// (a re-share), with the old share from the two-operator backup. The
    /// holder blinds its table, this command converts it with the binding
    /// proof, the holder checks every page against the committed key and
    /// records the re-share in the domain transcript. Run it on the key
    /// holder's machine as one of its operators, with its node running.
    /// With `--replaces OLD`, run it at the member the manifest now names
    /// in retired key holder OLD's place, with OLD's backup and its two
    /// operators' passphrases: the new member's share takes OLD's.
    Reshare {
        #[command(flatten)]
        asking: Asking,
        /// The key holder's node directory (its keystore is `DIR/keys`).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The keystore's own passphrase file, if it is encrypted.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// The backup of the lost share (`kobling domain backup`); with
        /// `--replaces`, the backup of the retired key holder's share.
        #[arg(long, value_name = "FILE")]
        backup: PathBuf,
        #[command(flatten)]
        passphrases: TwoPassphrases,
        /// Take the place of this retired key holder (the manifest names
        /// this member instead of it) rather than replace a lost seed.
        #[arg(long, value_name = "MEMBER")]
        replaces: Option<String>,
    },
    /// Open a backup with both passphrases and print the key it holds;
    /// with a domain transcript, check it against a member's commitment
    /// (the test of a backup before it is needed, and the first step of a
    /// re-share).
    CheckBackup {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        backup: PathBuf,
        /// The domain.
        #[arg(long, value_name = "NAME")]
        domain: String,
        #[command(flatten)]
        passphrases: TwoPassphrases,
        /// The federation manifest, to verify the transcript.
        #[arg(long, value_name = "FILE", requires_all = ["transcript", "member"])]
        manifest: Option<PathBuf>,
        /// The domain transcript (`kobling domain export`).
        #[arg(long, value_name = "FILE", requires = "manifest")]
        transcript: Option<PathBuf>,
        /// The key holder whose share was backed up.
        #[arg(long, value_name = "MEMBER", requires = "manifest")]
        member: Option<String>,
    },
}

impl DomainCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            DomainCommand::Backup {
                dir,
                domain,
                passphrases,
                passphrase_file,
                out,
            } => backup(&dir, &domain, &passphrases, passphrase_file, &out),
            DomainCommand::CheckBackup {
                backup,
                domain,
                passphrases,
                manifest,
                transcript,
                member,
            } => check_backup(&backup, &domain, &passphrases, manifest, transcript, member),
            DomainCommand::Reshare {
                asking,
                dir,
                passphrase_file,
                backup,
                passphrases,
                replaces,
            } => reshare(
                &asking,
                &dir,
                passphrase_file,
                &backup,
                &passphrases,
                replaces.as_deref(),
            ),
            other => {
                let rt = super::runtime()?;
                rt.block_on(other.run_async())
            }
        }
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        match self {
            DomainCommand::Status { asking, node } => {
                let (manifest, key, domain) = asking.load()?;
                let node = match node {
                    Some(n) => node_or_holder(&manifest, &domain, Some(n))?,
                    None => own_copy(&manifest, &domain, &key)?,
                };
                let (entries, state) = fetch(&manifest, &key, &domain, &node).await?;
                say!("{}", render(&state, entries.len(), &node));
                Ok(ExitCode::SUCCESS)
            }
            DomainCommand::Export { asking, node, out } => {
                let (manifest, key, domain) = asking.load()?;
                let node = node_or_holder(&manifest, &domain, node)?;
                let (entries, state) = fetch(&manifest, &key, &domain, &node).await?;
                let mut file = crate::private_fs::create_new(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                std::io::Write::write_all(&mut file, &encode_domain_transcript(&entries))
                    .with_context(|| format!("cannot write {}", out.display()))?;
                file.sync_all()?;
                say!(
                    "domain {} transcript ({} entries, head {}…) written to {}",
                    state.domain,
                    entries.len(),
                    &state.head.to_hex()[..16],
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            DomainCommand::Retire { asking } => {
                let (manifest, key, domain) = asking.load()?;
                let holder = node_or_holder(&manifest, &domain, None)?;
                ensure!(
                    manifest
                        .member(&holder)
                        .is_some_and(|m| m.operators.iter().any(|o| o.key == key.public())),
                    "this key is not an operator of {holder}, the holder of domain {domain}"
                );
                let (entries, state) = fetch(&manifest, &key, &domain, &holder).await?;
                ensure!(
                    state.retirement().is_none(),
                    "domain {domain} is already retired"
                );
                let statement =
                    DomainLog::from_entries(entries).next_digest(&holder, &DomainBody::Retired);
                let signature = {
                    use ed25519_dalek::Signer as _;
                    Sig(key.signing.sign(statement.as_bytes()).to_bytes())
                };
                let req = request(
                    &manifest,
                    &domain,
                    &holder,
                    DomainAction::Retire {
                        statement,
                        signature,
                    },
                )?
                .sign(&key.signing);
                let replies = ask(&manifest, &holder, Message::DomainRequest(req)).await?;
                match replies.into_iter().next() {
                    Some(Message::Ack { .. }) => {}
                    Some(Message::Refused { code, detail }) => {
                        bail!("refused ({code}): {detail}")
                    }
                    other => bail!(
                        "unexpected reply: {}",
                        other.map_or("nothing", |m| m.kind())
                    ),
                }
                let (_, after) = fetch(&manifest, &key, &domain, &holder).await?;
                if after.retirement().is_some() {
                    say!("domain {domain} is retired: every key holder shreds its seed");
                } else {
                    say!("your signature on the retirement of domain {domain} is taken at {holder}; a second operator of {holder} must sign (`kobling domain retire`)");
                }
                Ok(ExitCode::SUCCESS)
            }
            DomainCommand::Backup { .. }
            | DomainCommand::CheckBackup { .. }
            | DomainCommand::Reshare { .. } => Ok(ExitCode::SUCCESS),
        }
    }
}

impl Asking {
    fn load(&self) -> anyhow::Result<(Manifest, KeyFile, Name)> {
        let manifest = manifest_file::load(&self.manifest)?;
        let key = KeyFile::load(&self.key)?;
        let domain = Name::new(self.domain.clone()).context("invalid --domain")?;
        ensure!(
            manifest.domain(&domain).is_some(),
            "the manifest declares no domain {domain}"
        );
        Ok((manifest, key, domain))
    }
}

/// The operator's own node if it holds a copy of the domain's transcript
/// (the holder or a key holder), else the holder.
fn own_copy(manifest: &Manifest, domain: &Name, key: &KeyFile) -> anyhow::Result<Name> {
    let spec = manifest
        .domain(domain)
        .with_context(|| format!("the manifest declares no domain {domain}"))?;
    let own = manifest
        .registers()
        .find(|m| m.operators.iter().any(|o| o.key == key.public()))
        .map(|m| m.name.clone())
        .filter(|n| *n == spec.holder || spec.is_key_holder(manifest, n));
    Ok(own.unwrap_or_else(|| spec.holder.clone()))
}

fn node_or_holder(
    manifest: &Manifest,
    domain: &Name,
    node: Option<String>,
) -> anyhow::Result<Name> {
    match node {
        Some(n) => {
            let n = Name::new(n).context("invalid --node")?;
            ensure!(manifest.member(&n).is_some(), "{n} is not a member");
            Ok(n)
        }
        None => manifest
            .domain(domain)
            .map(|d| d.holder.clone())
            .with_context(|| format!("the manifest declares no domain {domain}")),
    }
}

fn request(
    manifest: &Manifest,
    domain: &Name,
    node: &Name,
    action: DomainAction,
) -> anyhow::Result<DomainRequest> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(DomainRequest {
        domain: domain.clone(),
        action,
        time: unix_now(),
        node: node.clone(),
        manifest: manifest.digest(),
        nonce,
    })
}

/// The node's copy of the domain transcript, page by page, verified.
async fn fetch(
    manifest: &Manifest,
    key: &KeyFile,
    domain: &Name,
    node: &Name,
) -> anyhow::Result<(Vec<DomainEntry>, DomainState)> {
    let mut all: Vec<DomainEntry> = Vec::new();
    loop {
        let first = all.len() as u64;
        let req =
            request(manifest, domain, node, DomainAction::Transcript { first })?.sign(&key.signing);
        let replies = ask(manifest, node, Message::DomainRequest(req)).await?;
        let page = match replies.into_iter().next() {
            Some(Message::DomainEntries {
                domain: d,
                first: f,
                entries,
            }) if d == *domain && f == first => entries.into_inner(),
            Some(Message::Refused { code, detail }) => bail!("{node} refused ({code}): {detail}"),
            other => bail!(
                "unexpected reply from {node}: {}",
                other.map_or("nothing", |m| m.kind())
            ),
        };
        let full = page.len() == MAX_ENTRIES_PER_MESSAGE;
        all.extend(page);
        if !full {
            break;
        }
    }
    let state = verify_domain_transcript(manifest, domain, &all)
        .with_context(|| format!("the domain transcript {node} holds does not verify"))?;
    Ok((all, state))
}

fn render(state: &DomainState, entries: usize, node: &Name) -> String {
    let keys: Vec<String> = state
        .keys
        .iter()
        .map(|(n, k)| match k {
            Some(k) => format!(
                "    {n:<10} committed {}…",
                &hex::encode(k.as_bytes())[..16]
            ),
            None => format!("    {n:<10} not committed yet"),
        })
        .collect();
    format!(
        "domain {} (as {node} holds it, verified): holder {}, {}\n  key holders, in chain order:\n{}\n  {} of {} committed; deliveries {}; re-shares {}; innsyn requests answered {}; identified projects' disclosures recorded {}; {entries} entries, head {}…",
        state.domain,
        state.holder,
        match (&state.replacing, state.retirement()) {
            (_, Some(_)) => "RETIRED (its seeds are shredded)".to_string(),
            (Some(r), None) => format!(
                "NOT COMPLETE: the manifest names {} in key holder {}'s place; an operator of {} runs `kobling domain reshare --replaces {}` with {}'s backup",
                r.joining, r.leaving, r.joining, r.leaving, r.leaving
            ),
            (None, None) => "active".to_string(),
        },
        keys.join("\n"),
        state.keys.iter().filter(|(_, k)| k.is_some()).count(),
        state.keys.len(),
        state.deliveries,
        state.reshares,
        state.innsyn,
        state.disclosures,
        &state.head.to_hex()[..16],
    )
}

fn read_passphrases(p: &TwoPassphrases) -> anyhow::Result<(Passphrase, Passphrase)> {
    let first = Passphrase::read_file(&p.first_passphrase_file)
        .context("cannot read the first operator's passphrase file")?;
    let second = Passphrase::read_file(&p.second_passphrase_file)
        .context("cannot read the second operator's passphrase file")?;
    Ok((first, second))
}

fn backup(
    dir: &std::path::Path,
    domain: &str,
    passphrases: &TwoPassphrases,
    passphrase_file: Option<PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let passphrase = crate::secrets::passphrase(passphrase_file.as_deref())?;
    let domain = Domain::Register(Name::new(domain).context("invalid --domain")?);
    let (first, second) = read_passphrases(passphrases)?;
    let ks = Keystore::open(dir.join("keys"), passphrase.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("cannot open the keystore in {}", dir.join("keys").display()))?;
    let bytes = ks
        .backup_domain(
            &domain,
            first.as_str(),
            second.as_str(),
            KdfParams::default(),
        )
        .with_context(|| format!("cannot back up the share of {domain}"))?;
    let key = ks.commitment(&domain)?;
    let mut file = crate::private_fs::create_new(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::io::Write::write_all(&mut file, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    file.sync_all()?;
    say!(
        "backup of {domain} written to {} (mode 0600): it opens only with both passphrases; its key commitment is {}…",
        out.display(),
        &hex::encode(key.as_bytes())[..16]
    );
    Ok(ExitCode::SUCCESS)
}

fn reshare(
    asking: &Asking,
    dir: &std::path::Path,
    passphrase_file: Option<PathBuf>,
    backup: &std::path::Path,
    passphrases: &TwoPassphrases,
    replaces: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let replaces = replaces
        .map(|r| Name::new(r).with_context(|| format!("{r:?} is not a member name")))
        .transpose()?;
    let passphrase = crate::secrets::passphrase(passphrase_file.as_deref())?;
    let (manifest, key, domain) = asking.load()?;
    let mut ks = Keystore::open(dir.join("keys"), passphrase.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("cannot open the keystore in {}", dir.join("keys").display()))?;
    let me = kobling_protocol::manifest::Ed25519Key(ks.verifying_key().to_bytes());
    let member = manifest
        .members
        .iter()
        .find(|m| m.signing_key == me)
        .map(|m| m.name.clone())
        .context("this keystore is no member of the manifest")?;
    let (first, second) = read_passphrases(passphrases)?;
    let old = open_backup(
        &Domain::Register(domain.clone()),
        &read_limited(backup)?,
        first.as_str(),
        second.as_str(),
    )
    .with_context(|| format!("{} does not open with these passphrases", backup.display()))?;
    let holder = node_or_holder(&manifest, &domain, None)?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let mut rng = kobling_protocol::rng::ErasingRng::from_seed(seed);
    let rt = super::runtime()?;
    let state = crate::reshare::Reshare {
        manifest: &manifest,
        domain: &domain,
        member: &member,
        replaces: replaces.as_ref(),
        operator: &key.signing,
        now: unix_now(),
        send: |m: Message| {
            rt.block_on(ask(&manifest, &holder, m))
                .map_err(|e| crate::reshare::ReshareError::Transport(e.into()))
        },
    }
    .run(&mut ks, &old, &mut rng)?;
    say!(
        "{member}'s share of domain {domain} is re-shared: the holder's table is converted and the transcript records it ({} re-shares); {member}'s new key is {}…",
        state.reshares,
        state
            .key_of(&member)
            .map(|k| hex::encode(k.as_bytes()))
            .unwrap_or_default()
            .get(..16)
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_limited(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    ensure!(
        len <= MAX_FILE_BYTES,
        "{} is larger than 1 GiB",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn check_backup(
    backup: &std::path::Path,
    domain: &str,
    passphrases: &TwoPassphrases,
    manifest: Option<PathBuf>,
    transcript: Option<PathBuf>,
    member: Option<String>,
) -> anyhow::Result<ExitCode> {
    let name = Name::new(domain).context("invalid --domain")?;
    let domain = Domain::Register(name.clone());
    let (first, second) = read_passphrases(passphrases)?;
    let bytes = read_limited(backup)?;
    let share =
        open_backup(&domain, &bytes, first.as_str(), second.as_str()).with_context(|| {
            format!(
                "{} does not open as a backup of {domain} with these passphrases",
                backup.display()
            )
        })?;
    let key = share.commitment();
    let (Some(manifest), Some(transcript), Some(member)) = (manifest, transcript, member) else {
        say!(
            "backup of {domain} opens with both passphrases; its key commitment is {}…",
            &hex::encode(key.as_bytes())[..16]
        );
        return Ok(ExitCode::SUCCESS);
    };
    let manifest = manifest_file::load(&manifest)?;
    let member = Name::new(member).context("invalid --member")?;
    let entries =
        decode_domain_transcript(&read_limited(&transcript)?).context("not a domain transcript")?;
    let state = verify_domain_transcript(&manifest, &name, &entries)
        .context("the domain transcript does not verify")?;
    match state.key_of(&member) {
        Some(k) if k == key => {
            say!("backup of {domain} opens with both passphrases and holds {member}'s committed share");
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => {
            say!("backup of {domain} opens, but its key is NOT {member}'s committed key");
            Ok(ExitCode::from(1))
        }
        None => bail!("{member} has no committed key in the transcript of {name}"),
    }
}
