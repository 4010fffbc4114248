use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tidings_cli::args::Cli::parse();
    match tidings_cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tidings-chat: {}", tidings_cli::format::error_chain(&err));
            std::process::ExitCode::from(tidings_cli::error::exit_code(&err))
        }
    }
}
