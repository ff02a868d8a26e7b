//! `kobling project`: the researcher's and operators' commands.
//!
//! | command | who | talks to |
//! |---|---|---|
//! | `authorize --spec FILE --researcher FILE` | access authority | (offline: writes FILE.grant) |
//! | `submit --spec FILE` | researcher (with FILE.grant) | linker |
//! | `approve --extract FILE` | operator (two per register) | own register's node |
//! | `status` | researcher, operators | linker (or a register's node) |
//! | `fetch --out DIR` | researcher | linker |
//! | `close` | researcher | linker |
//! | `send-list --list FILE --state DIR` | researcher (identified project) | linker |
//! | `check-list --state DIR` | researcher (identified project) | linker |

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{bail, ensure, Context};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    ident::ParseOptions,
    manifest::{Ed25519Key, Manifest, X25519Key},
    messages::{Action, Message, Request},
    project::ProjectView,
    transcript::{Approval, Body, Entry, ProjectOrder, Signer, Statement},
    types::{Name, ProjectId},
};

use crate::{
    console::say,
    daemon::unix_now,
    delivery_files::DeliveryWriter,
    keyfile::KeyFile,
    manifest_file,
    net::{
        client::{Client, ClientSettings},
        endpoint::{client_endpoint, TransportLimits},
    },
    researcher::DeliveryReader,
    spec::{Spec, TEMPLATE},
};

mod order;
mod rlist;
pub(crate) mod status;

use self::order::{grant_path, order_from_spec, read_grant, GrantFile, ResearcherKeys};
use self::status::{print_status, status_entries, watch_status};

/// Options every project command shares.
#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// The federation manifest.
    #[arg(long)]
    pub(crate) manifest: PathBuf,
    /// Your key file (researcher or operator).
    #[arg(long)]
    pub(crate) key: PathBuf,
}

/// Project subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProjectCommand {
    /// Write a commented project spec to edit (refuses to overwrite).
    Init {
        /// The spec file to create.
        #[arg(long, default_value = "project.toml")]
        out: PathBuf,
    },
    /// As an access authority, grant a project spec: sign the order it
    /// makes for the researcher and write the grant next to it
    /// (SPEC.grant), for the researcher to submit with it.
    Authorize {
        #[command(flatten)]
        common: Common,
        /// The project spec.
        #[arg(long)]
        spec: PathBuf,
        /// The researcher's public keys, as `kobling keys researcher`
        /// printed them (`signing_key = "…"`, `hpke_key = "…"`).
        #[arg(long)]
        researcher: PathBuf,
        /// Where to write the grant (default: the spec's path + `.grant`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a project spec (TOML) and submit it to the linker, with the
    /// access authority's grant (SPEC.grant).
    Submit {
        #[command(flatten)]
        common: Common,
        /// The project spec.
        #[arg(long)]
        spec: PathBuf,
        /// The access authority's grant (default: the spec's path + `.grant`).
        #[arg(long)]
        grant: Option<PathBuf>,
    },
    /// Approve your register's extract for a project (run order); a second,
    /// different operator must approve the same file.
    Approve {
        #[command(flatten)]
        common: Common,
        /// The project id.
        #[arg(long)]
        project: String,
        /// The extract file (CSV with an `fnr` column, or a `pseudonym`
        /// column for a register domain's holder whose list the order keys
        /// by the domain). It must be in the node's extract directory
        /// (`kobling node run --extracts`, default DIR/extracts): the node
        /// is sent only its file name, and reads that name there. Left out
        /// by the operators of a register that takes part only as a key
        /// holder of a register domain (no list of its own).
        #[arg(long)]
        extract: Option<PathBuf>,
    },
    /// Show where every list of a project is.
    Status {
        #[command(flatten)]
        common: Common,
        /// The project id.
        #[arg(long)]
        project: String,
        /// Ask this node instead of the linker.
        #[arg(long)]
        node: Option<String>,
        /// Keep watching, with a progress bar per list, until the project
        /// is linked (or closed).
        #[arg(long)]
        watch: bool,
    },
    /// Fetch, verify and open the delivery; write the tables to DIR.
    Fetch {
        #[command(flatten)]
        common: Common,
        /// The project id.
        #[arg(long)]
        project: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The project's spec: the Parquet tables take the variables'
        /// types from it (without it, every variable is text).
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Close the project: every node shreds its key share and deletes the
    /// project's working data.
    Close {
        #[command(flatten)]
        common: Common,
        /// The project id.
        #[arg(long)]
        project: String,
    },
    /// Identified project: send your own list (the file the order binds)
    /// into the chain, then wait until the registers stepped it and sign
    /// its check. Nothing is sent if FILE is not the order's list.
    SendList {
        #[command(flatten)]
        common: Common,
        /// The project id.
        #[arg(long)]
        project: String,
        /// Your list: the CSV whose person count and SHA3-256 the order
        /// carries (`researcher_list` in the spec).
        #[arg(long)]
        list: PathBuf,
        /// A private directory (mode 0700) where the list's blinded output
        /// is kept, mode 0600, until its check is signed.
        #[arg(long)]
        state: PathBuf,
        /// Points per chunk (a power of two, at most 16384).
        #[arg(long, default_value_t = 4096)]
        chunk_size: u32,
        /// Seconds to wait for the chain before giving up (check-list
        /// resumes); 0: do not wait, run check-list later.
        #[arg(long, default_value_t = 3600)]
        wait: u64,
    },
    /// Identified project: once the registers stepped your list, sign its
    /// check (A_0) from the output kept in DIR (after `send-list --wait 0`,
    /// or to resume one that stopped waiting).
    CheckList {
        #[command(flatten)]
        common: Common,
        /// The project id.
        #[arg(long)]
        project: String,
        /// The directory given to send-list.
        #[arg(long)]
        state: PathBuf,
        /// Seconds to wait for the chain before giving up.
        #[arg(long, default_value_t = 3600)]
        wait: u64,
    },
}

impl ProjectCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        if let ProjectCommand::Init { out } = &self {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .and_then(|mut f| std::io::Write::write_all(&mut f, TEMPLATE.as_bytes()))
                .with_context(|| format!("cannot create {}", out.display()))?;
            say!(
                "{} written: edit it, then `kobling project submit --spec {}`",
                out.display(),
                out.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let rt = super::runtime()?;
        rt.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        match self {
            ProjectCommand::Init { .. } => Ok(ExitCode::SUCCESS),
            ProjectCommand::Authorize {
                common,
                spec,
                researcher,
                out,
            } => {
                let (manifest, key) = load(&common)?;
                ensure!(
                    manifest.is_authority(&key.public()),
                    "your key is no access authority of the manifest"
                );
                let keys: ResearcherKeys = toml::from_str(
                    &std::fs::read_to_string(&researcher)
                        .with_context(|| format!("cannot read {}", researcher.display()))?,
                )
                .with_context(|| {
                    format!(
                        "{} is not what `kobling keys researcher` printed",
                        researcher.display()
                    )
                })?;
                let order = order_from_spec(
                    &spec,
                    &manifest,
                    Ed25519Key::from_hex(keys.signing_key.trim()).map_err(anyhow::Error::msg)?,
                    X25519Key::from_hex(keys.hpke_key.trim()).map_err(anyhow::Error::msg)?,
                )?
                .granted_by(&key.signing);
                let grant = order.grant.as_ref().context("the order was just granted")?;
                let out = out.unwrap_or_else(|| grant_path(&spec));
                let text = toml::to_string(&GrantFile {
                    order: order.grant_digest().to_string(),
                    authority: grant.authority.to_hex(),
                    signature: hex::encode(grant.signature.0),
                })?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .and_then(|mut f| {
                        std::io::Write::write_all(
                            &mut f,
                            format!("# Access granted to project {} by this authority's signature.\n{text}", order.project).as_bytes(),
                        )
                    })
                    .with_context(|| format!("cannot create {}", out.display()))?;
                say!(
                    "project {} granted; {} goes to the researcher with the spec",
                    order.project,
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::Submit {
                common,
                spec,
                grant,
            } => {
                let (manifest, key) = load(&common)?;
                let hpke = key
                    .hpke_public()
                    .context("this is not a researcher key (no receiving key)")?;
                let mut order = order_from_spec(&spec, &manifest, key.public(), hpke)?;
                let grant_file = grant.unwrap_or_else(|| grant_path(&spec));
                order.grant = Some(read_grant(&grant_file)?);
                order.check_grant(&manifest).with_context(|| {
                    format!(
                        "{} is no access authority's grant of this spec for your key",
                        grant_file.display()
                    )
                })?;
                let project = order.project.clone();
                let signed = Statement {
                    project: project.clone(),
                    time: unix_now(),
                    signer: Signer::Researcher(order.researcher_signing_key),
                    body: Body::Order(order),
                }
                .sign(&key.signing);
                let linker = linker(&manifest)?;
                expect_ack(ask(&manifest, &linker, Message::SubmitOrder(signed)).await?)?;
                say!("project {project} submitted to {linker}; operators at each register can now approve their extracts");
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::Approve {
                common,
                project,
                extract,
            } => {
                let (manifest, key) = load(&common)?;
                let me = key.public();
                let register = manifest
                    .registers()
                    .find(|m| m.operators.iter().any(|o| o.key == me))
                    .map(|m| m.name.clone())
                    .context("your key is no register's operator in the manifest")?;
                let project = ProjectId::new(project)?;
                // The order's first entry goes to the register with the
                // approval. The register holds it once any operator
                // approved the project; before, only the linker does
                // (verified against the linker's key either way).
                let entries = match status_entries(&manifest, &key, &project, &register).await {
                    Ok((entries, _)) if !entries.is_empty() => entries,
                    _ => {
                        let linker = linker(&manifest)?;
                        status_entries(&manifest, &key, &project, &linker).await?.0
                    }
                };
                let view = ProjectView::new(&manifest, &entries);
                let order = view
                    .order()
                    .context("the linker holds no order of this project")?;
                let order_entry = entries.first().context("no order entry")?.clone();
                let Some(extract) = extract else {
                    return approve_without_extract(&manifest, &key, &register, order, order_entry)
                        .await;
                };
                let path = extract
                    .canonicalize()
                    .with_context(|| format!("cannot find {}", extract.display()))?;
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("the extract's file name is not UTF-8")?
                    .to_string();
                let summary = if order.list_domain(&register).is_some() {
                    // A holder's list, keyed by `pseudonym` (docs/domains.md).
                    crate::extract_file::pseudonymous::stage_pseudonymous_extract(&path, |_, _| {
                        Ok(())
                    })?
                    .0
                } else {
                    crate::extract_file::check_extract(
                        &path,
                        ParseOptions {
                            allow_synthetic: order.test_mode,
                        },
                        None,
                    )?
                };
                if let Some(reason) = summary.unusable_reason() {
                    bail!(
                        "{} cannot be approved: {reason} (run `kobling extract check` for details)",
                        path.display()
                    );
                }
                let (digest, rows) = (summary.digest, summary.stats.rows);
                if let Some(line) = crate::identified::order_line(order, true) {
                    say!("{line}");
                    say!("this register's reservation table (`kobling node run --reservations`) leaves its persons out of the list; only their number is reported (<5 under 5)");
                }
                // The operators sign the columns that will leave the
                // register: the order's variables, which the extract must
                // have (issue 12 item 2). Other columns are never sent.
                let columns = crate::prepare::variables_of(order, &register);
                crate::prepare::select_columns(&summary.columns, &columns)
                    .map_err(|e| anyhow::anyhow!("{} cannot be approved: {e}", path.display()))?;
                let withheld: Vec<&str> = summary
                    .columns
                    .iter()
                    .filter(|c| !columns.contains(c))
                    .map(String::as_str)
                    .collect();
                let approval = Approval {
                    register: register.clone(),
                    order: order.digest(),
                    extract: digest,
                    rows,
                    columns: BoundedVec::new(
                        columns
                            .iter()
                            .map(|c| BoundedString::new(c.as_str()))
                            .collect::<Result<Vec<_>, _>>()?,
                    )?,
                };
                let signed = Statement {
                    project: project.clone(),
                    time: unix_now(),
                    signer: Signer::Operator {
                        register: register.clone(),
                        key: me,
                    },
                    body: Body::Approval(approval),
                }
                .sign(&key.signing);
                // The envelope signs what the node is to read, for this
                // node, under this manifest, once.
                let envelope = request(
                    &manifest,
                    &register,
                    &project,
                    Action::Approve {
                        statement: signed.statement.digest(),
                        extract: BoundedString::new(name)?,
                    },
                )?
                .sign(&key.signing);
                let msg = Message::Approve {
                    statement: signed,
                    request: Box::new(envelope),
                    order: Box::new(order_entry),
                };
                expect_ack(ask(&manifest, &register, msg).await?)?;
                say!("approved {} for project {project} at {register}: {rows} rows, SHA3-256 {digest}", path.display());
                say!("delivered columns: {}", columns.join(", "));
                if !withheld.is_empty() {
                    say!(
                        "not delivered (the order does not request them): {}",
                        withheld.join(", ")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::Status {
                common,
                project,
                node,
                watch,
            } => {
                let (manifest, key) = load(&common)?;
                let project = ProjectId::new(project)?;
                let node = match node {
                    Some(n) => Name::new(n)?,
                    None => linker(&manifest)?,
                };
                if watch {
                    watch_status(&manifest, &key, &project, &node).await?;
                }
                let (entries, notice) = status_entries(&manifest, &key, &project, &node).await?;
                print_status(&manifest, &entries, notice.as_ref())?;
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::Fetch {
                common,
                project,
                out,
                spec,
            } => {
                let (manifest, key) = load(&common)?;
                let types = match &spec {
                    Some(path) => {
                        let spec = Spec::load(path)?;
                        ensure!(
                            spec.project == project,
                            "{} is the spec of project {}, not {project}",
                            path.display(),
                            spec.project
                        );
                        spec.types()
                    }
                    None => BTreeMap::new(),
                };
                let hpke = key
                    .hpke
                    .as_ref()
                    .context("this is not a researcher key (no receiving key)")?;
                let linker = linker(&manifest)?;
                let request =
                    request(&manifest, &linker, &ProjectId::new(project)?, Action::Fetch)?
                        .sign(&key.signing);
                fetch(
                    &manifest,
                    hpke,
                    &linker,
                    Message::Fetch(request),
                    &out,
                    &types,
                )
                .await?;
                say!("delivery verified and written to {}", out.display());
                // An identified project says so, with its exclusion counts
                // (also in report.txt).
                if let Ok(report) = std::fs::read_to_string(out.join("report.txt")) {
                    for line in report.lines().filter(|l| {
                        l.starts_with("identified project") || l.contains("left out by reservation")
                    }) {
                        say!("{line}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::SendList {
                common,
                project,
                list,
                state,
                chunk_size,
                wait,
            } => {
                let (manifest, key) = load(&common)?;
                let wait = (wait > 0).then(|| Duration::from_secs(wait));
                let project = ProjectId::new(project)?;
                rlist::send_list(&manifest, &key, &project, &list, &state, chunk_size, wait)
                    .await?;
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::CheckList {
                common,
                project,
                state,
                wait,
            } => {
                let (manifest, key) = load(&common)?;
                let project = ProjectId::new(project)?;
                rlist::check_list(&manifest, &key, &project, &state, Duration::from_secs(wait))
                    .await?;
                Ok(ExitCode::SUCCESS)
            }
            ProjectCommand::Close { common, project } => {
                let (manifest, key) = load(&common)?;
                let linker = linker(&manifest)?;
                let request = request(
                    &manifest,
                    &linker,
                    &ProjectId::new(&project)?,
                    Action::Close,
                )?
                .sign(&key.signing);
                expect_ack(ask(&manifest, &linker, Message::Close(request)).await?)?;
                say!("project {project} closed; every node shreds its key share and deletes the project's working data");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn load(common: &Common) -> anyhow::Result<(Manifest, KeyFile)> {
    Ok((
        manifest_file::load(&common.manifest)?,
        KeyFile::load(&common.key)?,
    ))
}

/// A request for `node` under `manifest`, now, with a fresh nonce: the
/// node refuses it a second time, and every other node refuses it.
fn request(
    manifest: &Manifest,
    node: &Name,
    project: &ProjectId,
    action: Action,
) -> anyhow::Result<Request> {
    let mut nonce = [0u8; kobling_protocol::messages::NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(Request {
        project: project.clone(),
        action,
        time: unix_now(),
        node: node.clone(),
        manifest: manifest.digest(),
        nonce,
    })
}

fn linker(manifest: &Manifest) -> anyhow::Result<Name> {
    manifest
        .linker()
        .map(|l| l.name.clone())
        .context("the manifest names no linker")
}

/// One request to a node as a client (no member certificate).
pub(crate) async fn ask(
    manifest: &Manifest,
    to: &Name,
    msg: Message,
) -> anyhow::Result<Vec<Message>> {
    let endpoint = client_endpoint("0.0.0.0:0".parse()?)?;
    let settings = ClientSettings {
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(600),
    };
    let client = Client::new(
        endpoint.clone(),
        None,
        Arc::new(manifest.clone()),
        &TransportLimits::default(),
        settings,
    )?;
    let replies = client.request_all(to, &msg).await;
    // Close, and give the close a moment to reach the node: a process that
    // exits first leaves its connection open there until the idle timeout.
    client.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    replies.with_context(|| format!("cannot reach {to}"))
}

/// Fetches the delivery and verifies, opens and writes it as it arrives:
/// the network task hands each reply to this thread through a channel of
/// a few messages, so neither holds the delivery (issue 13). The files
/// appear in `out` only once everything verified.
async fn fetch(
    manifest: &Manifest,
    hpke: &kobling_protocol::seal::HpkeSecretKey,
    linker: &Name,
    msg: Message,
    out: &Path,
    types: &BTreeMap<String, BTreeMap<String, crate::output::ColumnType>>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(FETCH_QUEUE);
    let network = {
        let (manifest, linker) = (manifest.clone(), linker.clone());
        tokio::spawn(async move {
            let endpoint = client_endpoint("0.0.0.0:0".parse()?)?;
            let settings = ClientSettings {
                connect_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(3600),
            };
            let client = Client::new(
                endpoint.clone(),
                None,
                Arc::new(manifest),
                &TransportLimits::default(),
                settings,
            )?;
            let done = client.request_each(&linker, &msg, tx).await;
            client.close();
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            done.with_context(|| format!("cannot reach {linker}"))
        })
    };
    let written = tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let receiving = indicatif::ProgressBar::new_spinner()
            .with_message("receiving the delivery from the linker");
        receiving.enable_steady_tick(Duration::from_millis(200));
        let first = rx.blocking_recv();
        receiving.finish_and_clear();
        let mut reader = DeliveryReader::start(manifest, hpke, first)?;
        let mut files = DeliveryWriter::create(out, types)?;
        // On a terminal only (indicatif draws nothing elsewhere).
        let progress = indicatif::ProgressBar::new(reader.items());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "verifying and opening [{bar:30}] {pos}/{len} persons  {msg}",
        ) {
            progress.set_style(style.progress_chars("=> "));
        }
        while let Some(msg) = rx.blocking_recv() {
            let items = match &msg {
                Message::DeliveryItems { items, .. } => items.len() as u64,
                _ => 0,
            };
            reader.handle(msg, &mut files)?;
            progress.inc(items);
        }
        progress.finish_and_clear();
        let done = reader.finish()?;
        files.finish(&done.verified, &done.transcript)
    });
    drop(rx);
    // A failed connection explains an incomplete delivery better than the
    // count does.
    network.await.context("the fetch task failed")??;
    written
}

/// Replies the network task may be ahead of the verifier by (each at most
/// one frame: a delivery message of at most a batch of items).
const FETCH_QUEUE: usize = 4;

fn expect_ack(replies: Vec<Message>) -> anyhow::Result<()> {
    match replies.into_iter().next() {
        Some(Message::Ack { .. }) => Ok(()),
        Some(Message::Refused { code, detail }) => bail!("refused ({code}): {detail}"),
        other => bail!(
            "unexpected reply: {}",
            other.map_or("nothing", |m| m.kind())
        ),
    }
}

/// `project approve` without `--extract`: a key holder of a register
/// domain the order keys a list by, with no list of its own, accepts the
/// order (its operators sign an approval with no extract: zero digest, no
/// rows, no columns).
async fn approve_without_extract(
    manifest: &Manifest,
    key: &KeyFile,
    register: &Name,
    order: &ProjectOrder,
    order_entry: Entry,
) -> anyhow::Result<ExitCode> {
    let takes_part = kobling_protocol::domain::member_registers(manifest, order).contains(register);
    ensure!(
        !order.register_names().contains(register),
        "{register} has a list in project {}: approve its extract with --extract FILE",
        order.project
    );
    ensure!(
        takes_part,
        "{register} takes no part in project {}: its operators have nothing to approve",
        order.project
    );
    let project = order.project.clone();
    let signed = Statement {
        project: project.clone(),
        time: unix_now(),
        signer: Signer::Operator {
            register: register.clone(),
            key: key.public(),
        },
        body: Body::Approval(Approval {
            register: register.clone(),
            order: order.digest(),
            extract: kobling_protocol::types::Digest::default(),
            rows: 0,
            columns: BoundedVec::default(),
        }),
    }
    .sign(&key.signing);
    let envelope = request(
        manifest,
        register,
        &project,
        Action::Approve {
            statement: signed.statement.digest(),
            extract: BoundedString::default(),
        },
    )?
    .sign(&key.signing);
    let msg = Message::Approve {
        statement: signed,
        request: Box::new(envelope),
        order: Box::new(order_entry),
    };
    expect_ack(ask(manifest, register, msg).await?)?;
    say!("approved project {project} at {register} as a key holder of its register domains (no list of its own)");
    Ok(ExitCode::SUCCESS)
}
