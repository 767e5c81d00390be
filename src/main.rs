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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("haechi: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAECHI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
    init_logging();
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
        let gateway = proxy::Gateway::new(config)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("haechi listening on {scheme}://{local}");
        proxy::serve(listener, gateway, tls, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
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
