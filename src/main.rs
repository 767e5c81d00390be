//! The `haechi` command line: `serve` and the tools around it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use haechi::config::{GatewayConfig, UpstreamConfig};
use haechi::proxy;

#[derive(Parser)]
#[command(
    name = "haechi",
    version,
    about = "Guardrails and governance gateway for LLM APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (without --config: the embedded default).
    Serve(ServeArgs),
    /// Evaluate JSON Lines of texts against a policy (JSON Lines out).
    Scan(ScanArgs),
    /// Validate and test policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tenant API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Train a shipped model from the corpora (reproducible; writes into OUT).
    Train {
        /// `toxicity`, `prompt-attack`, `topic` or `grounding`.
        kind: String,
        /// Directory of the shared corpora.
        #[arg(long, default_value = "../shared/corpora")]
        corpora: PathBuf,
        /// Where the weights are written.
        #[arg(long, default_value = "models")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of audit log files (rotated files in any order); exit 0 when
    /// intact, 1 naming the first bad record.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a fresh API key (shown once) and the hash line to paste into the config.
    New {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(clap::Args)]
struct ScanArgs {
    /// Policy file or directory (default: the shipped default policy).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Which policy of the directory to apply (default: `default`).
    #[arg(long)]
    policy_id: Option<String>,
    /// Input JSONL file, or `-` for standard input.
    #[arg(long, default_value = "-")]
    input: String,
    /// Output JSONL file, or `-` for standard output.
    #[arg(long, default_value = "-")]
    output: String,
    /// Environment variable holding the key of the `hash` action.
    #[arg(long)]
    hash_key_env: Option<String>,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate policy files: prints `file:line:column: message` for every problem.
    Check { path: PathBuf },
    /// Run the test cases that live beside the policies (`*.tests.yaml`).
    Test { path: PathBuf },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Gateway config file (YAML).
    #[arg(long, env = "HAECHI_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:8080 (overrides the file).
    #[arg(long)]
    listen: Option<String>,
    /// Upstream base URL, `URL` (OpenAI dialect) or `DIALECT=URL`; repeatable; replaces
    /// the upstreams of the file or the embedded default.
    #[arg(long)]
    upstream: Vec<String>,
    /// Policy directory (overrides the file).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Audit log file (overrides the file).
    #[arg(long)]
    audit_log: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Scan(args) => scan(args),
        Command::Policy(PolicyCommand::Check { path }) => {
            exit_code(haechi::cli::policy_check(&path, &mut std::io::stdout()))
        }
        Command::Audit(AuditCommand::Verify { files }) => {
            haechi::audit::verify(&files, &mut std::io::stdout())
                .map(|report| {
                    if report.intact() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                })
                .map_err(anyhow::Error::from)
        }
        Command::Train { kind, corpora, out } => train(&kind, &corpora, &out),
        Command::Key(KeyCommand::New { tenant }) => {
            print!(
                "{}",
                haechi::tenancy::keys::NewKey::generate(&tenant).render()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Test { path }) => {
            exit_code(haechi::cli::policy_test(&path, &mut std::io::stdout()))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("haechi: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn exit_code(result: std::io::Result<i32>) -> anyhow::Result<ExitCode> {
    let code = result?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    use std::io::{BufReader, BufWriter};
    let set = haechi::cli::load_policy_arg(args.policy.as_deref())
        .map_err(|e| anyhow::anyhow!("policy:\n{e}"))?;
    let policy = match &args.policy_id {
        Some(id) => set
            .get(id)
            .with_context(|| format!("no policy with id `{id}`"))?,
        None => set.default_policy(),
    };
    let hash_key = match &args.hash_key_env {
        Some(var) => std::env::var(var)
            .with_context(|| format!("environment variable `{var}` is not set"))?
            .into_bytes(),
        None => Vec::new(),
    };
    let options = haechi::cli::ScanOptions { hash_key };
    let input: Box<dyn std::io::BufRead> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let output: Box<dyn std::io::Write> = if args.output == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let file = std::fs::File::create(&args.output)
            .with_context(|| format!("creating {}", args.output))?;
        Box::new(BufWriter::with_capacity(1 << 16, file))
    };
    let stats = haechi::cli::scan(&policy, input, output, &options)?;
    eprintln!(
        "haechi scan: {} lines, {} errors",
        stats.lines, stats.errors
    );
    Ok(ExitCode::SUCCESS)
}

fn train(kind: &str, corpora: &std::path::Path, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if kind == "grounding" {
        let report = haechi::detect::grounding::train::run(corpora, out)?;
        println!("{report:#?}");
    } else {
        let kind = haechi::train::Kind::parse(kind).with_context(|| {
            format!("unknown model `{kind}` (toxicity | prompt-attack | topic | grounding)")
        })?;
        let report = haechi::train::run(kind, corpora, out)?;
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the effective config: file (or embedded default), then flags on top.
fn effective_config(args: &ServeArgs) -> anyhow::Result<GatewayConfig> {
    let mut config = match &args.config {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::default(),
    };
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if !args.upstream.is_empty() {
        config.upstreams = args
            .upstream
            .iter()
            .enumerate()
            .map(|(i, value)| UpstreamConfig::from_flag(value, i))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?;
    }
    if let Some(dir) = &args.policies {
        config.policies = Some(dir.clone());
    }
    if let Some(path) = &args.audit_log {
        config.audit.path = Some(path.clone());
    }
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = effective_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = config.listen_addr().map_err(anyhow::Error::msg)?;
        let tls = config.tls.as_ref().map(proxy::tls_acceptor).transpose()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let admin = match config.admin_listen_addr().map_err(anyhow::Error::msg)? {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin listener {addr}"))?,
            ),
            None => None,
        };
        let telemetry_file = config.telemetry.clone();
        let gateway = proxy::Gateway::new(config)?;
        // Logs to stderr (HAECHI_LOG or RUST_LOG filter) and, when an OTLP endpoint is
        // configured (the file's `telemetry:` keys, overridden by OTEL_* variables), OTLP
        // trace export.
        let mut telemetry_config = telemetry_file.unwrap_or_default().with_env();
        if let Ok(filter) = std::env::var("HAECHI_LOG") {
            telemetry_config.log_filter = Some(filter);
        }
        let telemetry = haechi::audit::telemetry::init_tracing(
            &telemetry_config,
            Some(gateway.recorder.metrics.otel_dropped_spans()),
        )?;
        gateway.set_tracer(telemetry.tracer());
        // Hot reload: watch the policy directory, and reload on SIGHUP.
        let _watch = match gateway.policies.path() {
            Some(_) => Some(gateway.policies.watch()?),
            None => None,
        };
        spawn_sighup_reload(gateway.policies.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("haechi listening on {scheme}://{local}");
        // The admin listener (metrics, health) stops after the client listener has
        // drained, so that `/readyz` answers "draining" meanwhile.
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = match admin {
            Some(admin) => {
                eprintln!("haechi admin listening on http://{}", admin.local_addr()?);
                let gateway = gateway.clone();
                Some(tokio::spawn(async move {
                    proxy::serve_admin(admin, gateway, async move {
                        let _ = admin_stopped.await;
                    })
                    .await
                }))
            }
            None => None,
        };
        proxy::serve(listener, gateway.clone(), tls, shutdown_signal()).await?;
        let _ = stop_admin.send(());
        if let Some(admin) = admin {
            admin.await??;
        }
        gateway.close_audit().await;
        drop(telemetry);
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reloads the policies on every SIGHUP (a failed reload keeps the current policies).
fn spawn_sighup_reload(policies: std::sync::Arc<haechi::policy::PolicyStore>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match policies.reload_now() {
                Ok(()) => tracing::info!("policies reloaded on SIGHUP"),
                Err(e) => {
                    tracing::error!(error = %e, "policy reload on SIGHUP failed; keeping the current policies")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = policies;
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
