//! `kobling node run`: run a register or linker node, configured by flags,
//! a configuration file (`--config node.toml`), or both (a flag overrides
//! the file's key of the same name).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::Subcommand;
use kobling_protocol::hop::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_POINTS};
use serde::Deserialize;

use crate::{console::LogFormat, daemon, manifest_file, secrets};

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Node subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run the node daemon (role and address from the manifest) until
    /// interrupted (SIGINT / SIGTERM).
    Run {
        /// A configuration file (TOML) with any of the settings below as
        /// keys (`dir`, `manifest`, `listen`, `chunk_size`, `log_format`,
        /// `metrics`, `test_mode`, `extracts`, `passphrase_file`, `mapping`,
        /// `innsyn_extract`, `innsyn_quota_portal`, `innsyn_quota_person`,
        /// `reservations`); a flag
        /// given on the command line overrides its key.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: NodeSettings,
        /// Serve on the bound UDP socket given as standard input (as inetd
        /// and service managers hand one over; the tests bind port 0 and
        /// pass it, so that no other program can take the port before the
        /// node serves): `listen` is not used.
        #[arg(long)]
        listen_stdin: bool,
    },
}

/// The node's settings: each is a flag and a key of the configuration
/// file. Adding one is adding a field here (with its flag and key).
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeSettings {
    /// The node's directory (keystore in DIR/keys, state in DIR/state.db).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// The federation manifest every node pins.
    #[arg(long)]
    pub(crate) manifest: Option<PathBuf>,
    /// The UDP address to listen on (and dial from). Default: this
    /// node's manifest address. Peers always dial the manifest address,
    /// so use this behind a NAT, a load balancer or a relay that
    /// forwards the manifest address here.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Points per chunk in the lists this node announces (a power of
    /// two, at most 65536; default 16384): smaller chunks stream in more,
    /// smaller messages.
    #[arg(long, value_parser = chunk_size)]
    pub(crate) chunk_size: Option<u32>,
    /// How log lines are written (on stderr): text, or one JSON object
    /// per line.
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Serve Prometheus metrics on http://ADDR/metrics and a health check
    /// on http://ADDR/healthz (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<String>,
    /// Test mode, for tests and demonstrations only: accept synthetic
    /// test numbers (month + 80) in extracts and orders that ask for
    /// them. A production node refuses a test-mode order.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub(crate) test_mode: Option<bool>,
    /// The directory extract files are read from: an operator's
    /// approval names a file in it (`project approve --extract`), never
    /// a path. Default: DIR/extracts.
    #[arg(long, value_name = "DIR")]
    pub(crate) extracts: Option<PathBuf>,
    /// A register's mapping file of changed identifiers (CSV with the
    /// columns `old` and `current`, as `kobling extract check --mapping`
    /// reads it), applied to every extract this node prepares, so the
    /// counts that command shows are what is sent.
    #[arg(long, value_name = "FILE")]
    pub(crate) mapping: Option<PathBuf>,
    /// A file holding the keystore's passphrase (mode 0600 or stricter;
    /// one trailing newline is ignored). Without it, the systemd
    /// credential `kobling-passphrase` is used if $CREDENTIALS_DIRECTORY
    /// holds it, else $KOBLING_PASSPHRASE (removed from the environment
    /// once read).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// A register's fnr extract (CSV, as an approved extract) that innsyn
    /// requests of admitted portals read: each request streams it for the
    /// one person asked about (`docs/innsyn.md`). Without it the node
    /// answers no innsyn request.
    #[arg(long, value_name = "FILE")]
    pub(crate) innsyn_extract: Option<PathBuf>,
    /// Innsyn requests one portal may make per day (default 10,000).
    #[arg(long, value_name = "N")]
    pub(crate) innsyn_quota_portal: Option<u32>,
    /// Innsyn requests about one person per day, from all portals
    /// together (default 3).
    #[arg(long, value_name = "N")]
    pub(crate) innsyn_quota_person: Option<u32>,
    /// A register's reservation table (CSV with an `fnr` column): persons
    /// who reserved against disclosure together with fnr are left out of
    /// this node's lists of identified projects (`docs/identified.md`).
    /// Ordinary projects ignore it.
    #[arg(long, value_name = "FILE")]
    pub(crate) reservations: Option<PathBuf>,
}

impl NodeSettings {
    /// Each setting from `self`, else from `file`.
    fn or(self, file: NodeSettings) -> NodeSettings {
        macro_rules! merge {
            ($($field:ident),* $(,)?) => {
                NodeSettings { $($field: self.$field.or(file.$field)),* }
            };
        }
        merge!(
            dir,
            manifest,
            listen,
            chunk_size,
            log_format,
            metrics,
            test_mode,
            extracts,
            passphrase_file,
            mapping,
            innsyn_extract,
            innsyn_quota_portal,
            innsyn_quota_person,
            reservations,
        )
    }
}

/// Reads a node configuration file.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<NodeSettings> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_CONFIG_BYTES,
        "the configuration {} is larger than 64 KiB",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    parse_config(&text).with_context(|| format!("invalid configuration {}", path.display()))
}

/// Parses and checks configuration text.
pub(crate) fn parse_config(text: &str) -> anyhow::Result<NodeSettings> {
    let settings: NodeSettings = toml::from_str(text)?;
    if let Some(n) = settings.chunk_size {
        chunk_size(&n.to_string())
            .map_err(anyhow::Error::msg)
            .context("invalid chunk_size")?;
    }
    Ok(settings)
}

impl NodeCommand {
    /// The settings in effect: the flags over the configuration file.
    pub(crate) fn settings(&self) -> anyhow::Result<NodeSettings> {
        match self {
            NodeCommand::Run {
                config, settings, ..
            } => Ok(match config {
                Some(path) => settings.clone().or(load_config(path)?),
                None => settings.clone(),
            }),
        }
    }

    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        // Nothing the node creates is readable by anyone else.
        crate::private_fs::restrict_umask();
        let settings = self.settings()?;
        let NodeCommand::Run { listen_stdin, .. } = self;
        let socket = if listen_stdin {
            Some(std::sync::Arc::new(stdin_socket()?))
        } else {
            None
        };
        let dir = settings
            .dir
            .context("no node directory: give --dir or `dir` in the configuration")?;
        let manifest = settings
            .manifest
            .context("no manifest: give --manifest or `manifest` in the configuration")?;
        // Before the runtime's threads exist: this edits the environment.
        let passphrase = secrets::passphrase(settings.passphrase_file.as_deref())?;
        let manifest = manifest_file::load(&manifest)?;
        let rt = super::runtime()?;
        rt.block_on(daemon::run(
            &dir,
            manifest,
            passphrase,
            &daemon::Options {
                listen: settings.listen,
                chunk_size: settings.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
                metrics: settings.metrics,
                test_mode: settings.test_mode.unwrap_or(false),
                extracts: settings.extracts,
                mapping: settings.mapping,
                socket,
                innsyn_extract: settings.innsyn_extract,
                innsyn_quotas: innsyn_quotas(
                    settings.innsyn_quota_portal,
                    settings.innsyn_quota_person,
                )?,
                reservations: settings.reservations,
            },
            shutdown_signal(),
        ))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The innsyn quotas from the settings (a day's window; unset: the
/// defaults). A quota of 0 would refuse every request: refused here.
fn innsyn_quotas(
    portal: Option<u32>,
    person: Option<u32>,
) -> anyhow::Result<kobling_protocol::innsyn::QuotaLimits> {
    let default = kobling_protocol::innsyn::QuotaLimits::default();
    let limits = kobling_protocol::innsyn::QuotaLimits {
        per_portal: portal.unwrap_or(default.per_portal),
        per_subject: person.unwrap_or(default.per_subject),
        ..default
    };
    anyhow::ensure!(
        limits.per_portal > 0 && limits.per_subject > 0,
        "an innsyn quota of 0 would refuse every request; leave out --innsyn-extract to serve none"
    );
    Ok(limits)
}

/// The bound UDP socket on standard input.
fn stdin_socket() -> anyhow::Result<std::net::UdpSocket> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("cannot take standard input")?;
    let socket = std::net::UdpSocket::from(fd);
    socket
        .local_addr()
        .context("--listen-stdin: standard input is not a bound socket")?;
    Ok(socket)
}

/// A chunk size: a power of two, at most [`MAX_CHUNK_POINTS`].
fn chunk_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n.is_power_of_two() && n as usize <= MAX_CHUNK_POINTS {
        Ok(n)
    } else {
        Err(format!(
            "{n} is not a power of two between 1 and {MAX_CHUNK_POINTS}"
        ))
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "dir = \"/var/lib/kobling\"\nmanifest = \"/etc/kobling/federation.toml\"\n\
             listen = \"0.0.0.0:7400\"\nchunk_size = 1024\nlog_format = \"json\"\n\
             metrics = \"127.0.0.1:9464\"\ntest_mode = true\nextracts = \"/srv/extracts\"\n",
        )
        .expect("write");
        let file = load_config(&path).expect("valid configuration");
        let flags = NodeSettings {
            listen: Some("127.0.0.1:7401".into()),
            ..NodeSettings::default()
        };
        let s = flags.or(file);
        assert_eq!(s.dir, Some(PathBuf::from("/var/lib/kobling")));
        assert_eq!(s.listen.as_deref(), Some("127.0.0.1:7401"));
        assert_eq!(s.chunk_size, Some(1024));
        assert_eq!(s.log_format, Some(LogFormat::Json));
        assert_eq!(s.metrics.as_deref(), Some("127.0.0.1:9464"));
        assert_eq!(s.test_mode, Some(true));
        assert_eq!(s.extracts, Some(PathBuf::from("/srv/extracts")));

        std::fs::write(&path, "dir = \"x\"\nlisten_address = \"y\"\n").expect("write");
        assert!(load_config(&path).is_err(), "an unknown key is refused");
        std::fs::write(&path, "chunk_size = 1000\n").expect("write");
        assert!(load_config(&path).is_err(), "a bad chunk size is refused");
    }

    #[test]
    fn boolean_flags_are_unset_unless_given() {
        use clap::Parser;
        let settings = |args: &[&str]| {
            let cli = crate::cli::Cli::try_parse_from(
                ["kobling", "node", "run", "--dir", "x"].iter().chain(args),
            )
            .expect("valid arguments");
            match cli.command {
                crate::cli::Command::Node(c) => c.settings().expect("settings"),
                _ => unreachable!("a node command"),
            }
        };
        assert_eq!(settings(&[]).test_mode, None, "the file decides");
        assert_eq!(settings(&["--test-mode"]).test_mode, Some(true));
        assert_eq!(settings(&["--chunk-size", "64"]).chunk_size, Some(64));
    }

    #[test]
    fn the_reservation_table_is_a_flag_and_a_key() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "kobling",
            "node",
            "run",
            "--dir",
            "x",
            "--reservations",
            "r.csv",
        ])
        .expect("valid arguments");
        let crate::cli::Command::Node(c) = cli.command else {
            unreachable!("a node command")
        };
        let flag = c.settings().expect("settings");
        assert_eq!(flag.reservations, Some(PathBuf::from("r.csv")));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "reservations = \"/etc/kobling/r.csv\"\n").expect("write");
        let file = load_config(&path).expect("a valid configuration");
        assert_eq!(file.reservations, Some(PathBuf::from("/etc/kobling/r.csv")));
    }

    #[test]
    fn the_documented_configurations_are_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deploy = include_str!("../../../deploy/node.toml");
        let doc = include_str!("../../../docs/operations.md");
        let start = doc.find("```toml\n").expect("the example in operations.md") + 8;
        let example = &doc[start..start + doc[start..].find("```").expect("end")];
        for (name, text) in [("deploy.toml", deploy), ("doc.toml", example)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let s = load_config(&path).expect("a valid configuration");
            assert!(
                s.dir.is_some()
                    && s.manifest.is_some()
                    && s.listen.is_some()
                    && s.chunk_size.is_some()
                    && s.log_format.is_some()
                    && s.metrics.is_some()
                    && s.extracts.is_some(),
                "{name} is complete"
            );
        }
        assert!(
            deploy.contains(example.trim()),
            "operations.md shows deploy/node.toml"
        );
    }
}
