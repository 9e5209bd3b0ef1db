//! `llm-server`: the OpenAI-compatible gateway.
//!
//! ```text
//! llm-server --demo                      # the built-in mock provider, no keys needed
//! llm-server --config config.yaml        # providers from YAML
//! llm-server                             # ./config.yaml if present, else env and .env
//! llm-server check --config config.yaml  # validate offline, print deployments (keys masked)
//! ```
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program talks to its user"
)]

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

mod log_time;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use llm_factory::{
    DeploymentConfig, ErrorKind, LlmFactory,
    core::{FailWhen, MockConfig, MockFailure, MockProvider, MockReply},
};
use llm_server::{ConnectionLimits, GatewayOptions};

/// The gateway's allocator (feature `jemalloc`, default): freed memory goes back to the
/// system soon after a burst, where glibc's malloc keeps a burst's peak.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "llm-server",
    version,
    about = "The OpenAI-compatible gateway of LLM Factory"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A YAML configuration file (default: ./config.yaml if it exists, else the environment).
    #[arg(long, env = "LLM_SERVER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// An env file to read `{P}_API_KEYS`-style variables from (default: ./.env if present).
    #[arg(long, env = "LLM_SERVER_ENV_FILE", global = true)]
    env_file: Option<PathBuf>,
    /// The address to bind (default 127.0.0.1, or the config's `server.host`).
    #[arg(long, env = "LLM_SERVER_HOST")]
    host: Option<String>,
    /// The port (default 8000, or the config's `server.port`).
    #[arg(long, env = "LLM_SERVER_PORT")]
    port: Option<u16>,
    /// Log format.
    #[arg(long, env = "LLM_SERVER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve the built-in mock provider (models `mock-echo` and `mock-story`), no keys needed.
    #[arg(long)]
    demo: bool,
    /// Seconds in-flight requests get to finish after SIGINT or SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration offline and print the resolved deployments.
    Check,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_timer(log_time::CachedUtc)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The demo: `mock-echo` on two deployments, one of which fails every third call (so
/// failover and cooldowns show in `/v1/providers/status`), and `mock-story`, which streams
/// a story word by word.
fn demo_factory() -> llm_factory::Result<LlmFactory> {
    let echo = |name: &'static str, failure| {
        Arc::new(MockProvider::new(
            name,
            MockConfig {
                model: "mock-echo".into(),
                failure,
                ..MockConfig::default()
            },
        ))
    };
    let flaky = MockFailure::always(ErrorKind::UpstreamServer).when(FailWhen::EveryNth(3));
    let story = MockProvider::new(
        "mock-story",
        MockConfig {
            model: "mock-story".into(),
            reply: MockReply::Text(
                "Once upon a time, a small gateway answered every request it was given, \
                 and when one of its keys failed, it quietly asked another."
                    .into(),
            ),
            chunk_delay: Duration::from_millis(40),
            ..MockConfig::default()
        },
    );
    LlmFactory::builder()
        .provider(
            echo("mock-steady", None),
            DeploymentConfig::new("mock-echo/steady", "mock-echo"),
        )
        .provider(
            echo("mock-flaky", Some(flaky)),
            DeploymentConfig::new("mock-echo/flaky", "mock-echo"),
        )
        .provider(
            Arc::new(story),
            DeploymentConfig::new("mock-story/0", "mock-story"),
        )
        .build()
}

fn load(cli: &Cli) -> llm_factory::Result<LlmFactory> {
    if cli.demo {
        return demo_factory();
    }
    let default_yaml = PathBuf::from("config.yaml");
    let yaml = cli
        .config
        .clone()
        .or_else(|| default_yaml.exists().then_some(default_yaml));
    match (&yaml, &cli.env_file) {
        (Some(path), _) => LlmFactory::from_yaml(path),
        (None, Some(env_file)) => LlmFactory::from_env_file(env_file),
        (None, None) => LlmFactory::from_env(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Let jemalloc hand freed pages back to the system from a background thread, so the
/// memory of a burst (1,000 streams) is returned while the gateway is idle, not only when
/// it allocates again.
fn purge_freed_memory() {
    #[cfg(feature = "jemalloc")]
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(%error, "jemalloc background purging is unavailable");
    }
}

fn main() -> anyhow::Result<()> {
    llm_server::runtime()
        .context("cannot start the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    purge_freed_memory();
    let factory = match load(&cli) {
        Ok(factory) => factory,
        Err(error) if matches!(cli.command, Some(Command::Check)) => {
            eprintln!("invalid configuration: {error}");
            std::process::exit(1);
        }
        Err(error) if error.to_string().contains("no providers are configured") => {
            eprintln!(
                "llm-server: {error}\n\nTo try it without keys:   llm-server --demo\n\
                 To use OpenAI:            OPENAI_API_KEYS=sk-... OPENAI_MODEL=gpt-4o-mini llm-server\n\
                 To use Azure OpenAI:      also set OPENAI_API_BASES=https://NAME.openai.azure.com and OPENAI_API_VERSION\n\
                 To use a YAML file:       llm-server --config config.yaml"
            );
            std::process::exit(2);
        }
        Err(error) => return Err(error).context("cannot load the configuration"),
    };
    if matches!(cli.command, Some(Command::Check)) {
        println!("configuration ok: {} deployment(s)", factory.status().len());
        for deployment in factory.status() {
            println!(
                "  {:<48} provider {:<14} model {:<20} key {:<12} endpoint {}",
                deployment.id,
                deployment.provider,
                deployment.model,
                deployment.key.as_deref().unwrap_or("-"),
                deployment.endpoint.as_deref().unwrap_or("-")
            );
        }
        return Ok(());
    }

    let settings = factory.server_settings().clone();
    let options = GatewayOptions::from_settings(&settings);
    // As servers do: every file descriptor the hard limit allows, then a cap derived from it.
    let fd_limit = llm_server::raise_fd_limit();
    let limits = ConnectionLimits::from_settings(&settings);
    let host = cli
        .host
        .clone()
        .or(settings.host.clone())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = cli.port.or(settings.port).unwrap_or(8000);
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("`{host}:{port}` is not an address"))?;
    let models = factory.models().join(", ");
    // Starts sharing deployments' health with other replicas (when `router.shared_state`
    // is set) now rather than at the first request.
    let shared_state = factory.shared_state().backend;
    // The routes, with `serve`'s direct path to chat completions.
    let app = llm_server::Gateway::with_options(factory, options);
    // Connections get TCP_NODELAY (streamed chunks are small writes; Nagle's algorithm with
    // delayed ACKs would hold each one up to 40 ms) and the bounds of `limits`.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        %addr,
        models = %models,
        demo = cli.demo,
        max_connections = limits.max_connections,
        fd_limit = fd_limit.unwrap_or(0),
        shared_state,
        "llm-server listening"
    );

    let grace = Duration::from_secs(cli.shutdown_grace);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = llm_server::serve(listener, app, limits, async move {
        shutdown_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: draining in-flight requests"
        );
        let _ = stop_tx.send(true);
    });
    let mut stop = stop_rx;
    tokio::select! {
        result = server => result.context("the server failed")?,
        () = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("drain deadline reached; closing the remaining connections"),
    }
    Ok(())
}
