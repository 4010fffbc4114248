use clap::Parser as _;
use tidings::config::{Cli, Command, MigrateAction};
use tidings::startup::Application;
use tidings::store::Store;

/// mimalloc instead of glibc's malloc: allocation was a quarter of the send
/// path's CPU (docs/BENCHMARKS.md), and glibc kept Argon2's freed 19 MiB
/// blocks resident after login storms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config;
    tidings::telemetry::init(&config.log_level, config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutdown requested");
                token.cancel();
            });
            app.run().await
        }
        Command::Migrate { action } => {
            let store = Store::open(config.database_url.as_deref(), &config.data_dir).await?;
            match action {
                MigrateAction::Up => store.migrate_up().await?,
                MigrateAction::Down { steps } => store.migrate_down(steps).await?,
                MigrateAction::Status => {
                    for (name, applied) in store.migration_status().await? {
                        let state = if applied { "applied" } else { "pending" };
                        println!("{name}\t{state}");
                    }
                }
            }
            store.close().await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
