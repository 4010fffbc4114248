//! Configuration: one clap struct; every flag is also an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The command line: `tidings [OPTIONS] [serve | migrate up|down|status]`.
/// Every option is also an environment variable (shown in `--help`).
#[derive(Debug, Parser)]
#[command(name = "tidings", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default). Migrations run at start-up.
    Serve,
    /// Manage the database schema without starting the server.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the most recent migrations.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

/// Tidings: a real-time chat server. Native gRPC, gRPC-Web and the web client
/// on one port; SQLite by default, PostgreSQL and Redis when configured.
#[derive(Clone, Debug, Parser)]
#[command(name = "tidings", version, about, long_about = None)]
pub struct Config {
    /// Address for native gRPC (h2c), gRPC-Web (HTTP/1.1 and HTTP/2), the web
    /// client and /healthz, all on one port.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    /// Serve /metrics on this address (plain HTTP, no authentication: keep
    /// it on an internal network) instead of on LISTEN_ADDR.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// How long a call's request message may take to arrive after its
    /// headers (every call but Session); a body still incomplete ends the
    /// call DEADLINE_EXCEEDED. 0s: no bound.
    #[arg(long, env = "REQUEST_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_body_timeout: Duration,

    /// Connections one client address (an IPv6 client's /64) may hold open
    /// at once; more are closed on accept. 0: no limit.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Whether gRPC server reflection (v1 and v1alpha) is offered, for
    /// grpcurl and similar tools without the .proto.
    #[arg(long, env = "REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub reflection: bool,

    /// PostgreSQL URL. Unset: an embedded SQLite file `tidings.db` in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis URL for the idempotency fast path and fan-out. Unset: in-process.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel this server uses.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "tidings:")]
    pub redis_key_prefix: String,

    /// HS256 secret for tokens, at least 32 bytes. Required with DATABASE_URL;
    /// in embedded mode one is generated once and kept in the data dir.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Token lifetime, e.g. `24h`, `30m`.
    #[arg(long, env = "TOKEN_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,

    /// How long "this token's user exists" is remembered before the database
    /// is asked again: a deleted user's tokens stop working within this time.
    /// `0s` asks the database on every call.
    #[arg(long, env = "AUTH_CACHE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_cache_ttl: Duration,

    /// Browser origins allowed to call gRPC-Web from other sites
    /// (comma-separated; `*` for any). Empty: same origin only.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Where the embedded database and the generated JWT secret live.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Log filter, e.g. `info` or `tidings=debug,info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long the idempotency fast path remembers a key (the database
    /// remembers for ever).
    #[arg(long, env = "IDEMPOTENCY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,

    /// Largest accepted gRPC request message, in bytes.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,

    /// How often the user stream sends a heartbeat frame (keeps proxies and
    /// browsers from closing an idle stream).
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// Events buffered per chat for live streams. A stream further behind
    /// catches up from storage instead (nothing is lost, it costs a query).
    #[arg(long, env = "HUB_CAPACITY", default_value_t = crate::fanout::hub::CHANNEL_CAPACITY)]
    pub hub_capacity: usize,

    /// PEM certificate chain; with --tls-key, serves TLS (ALPN h2 and
    /// http/1.1) instead of cleartext.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// HTTP/2 keep-alive ping interval for idle connections.
    #[arg(long, env = "HTTP2_KEEPALIVE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub http2_keepalive: Duration,

    /// How long an HTTP/1.1 client may take to send its request headers,
    /// counted from when the connection is ready for a request: it also
    /// closes a keep-alive connection idle for that long, and a connection
    /// that sends nothing at all.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Largest request head (request line and headers on HTTP/1.1, the
    /// header list on HTTP/2), in bytes. Over it: HTTP 431 (HTTP/1.1; below
    /// 8 KiB counts as 8 KiB there; the connection closes) or 431 on that
    /// stream (HTTP/2).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: u32,

    /// Messages one user may send per second (SendMessage and Session `send`
    /// frames together), sustained. 0: no limit.
    #[arg(long, env = "SEND_RATE", default_value_t = 10)]
    pub send_rate: u32,

    /// Messages one user may send at once before SEND_RATE applies.
    #[arg(long, env = "SEND_BURST", default_value_t = 30)]
    pub send_burst: u32,

    /// Typing updates one user may send per second (SendTyping and Session
    /// `typing` frames; a budget of their own, apart from messages). 0: no limit.
    #[arg(long, env = "TYPING_RATE", default_value_t = 5)]
    pub typing_rate: u32,

    /// Typing updates one user may send at once before TYPING_RATE applies.
    #[arg(long, env = "TYPING_BURST", default_value_t = 20)]
    pub typing_burst: u32,

    /// CreateUser and Login calls per minute from one client address (an
    /// IPv6 client's /64), sustained. 0: no limit.
    #[arg(long, env = "AUTH_RATE", default_value_t = 30)]
    pub auth_rate: u32,

    /// CreateUser and Login calls one address may make at once before
    /// AUTH_RATE applies.
    #[arg(long, env = "AUTH_BURST", default_value_t = 10)]
    pub auth_burst: u32,

    /// Rooms made or added to per minute per user (CreateChat and
    /// AddMembers calls together), sustained. 0: no limit.
    #[arg(long, env = "ROOM_RATE", default_value_t = 20)]
    pub room_rate: u32,

    /// CreateChat / AddMembers calls one user may make at once before
    /// ROOM_RATE applies.
    #[arg(long, env = "ROOM_BURST", default_value_t = 10)]
    pub room_burst: u32,

    /// People looked up by e-mail per minute per user (each address in
    /// CreateChat's email / member_emails and AddMembers' member_emails
    /// counts one), sustained. 0: no limit.
    #[arg(long, env = "LOOKUP_RATE", default_value_t = 30)]
    pub lookup_rate: u32,

    /// E-mail look-ups one user may make at once before LOOKUP_RATE applies.
    #[arg(long, env = "LOOKUP_BURST", default_value_t = 30)]
    pub lookup_burst: u32,

    /// Open streams per user on this server (Subscribe, Session and
    /// SubscribeToChat together); one more is refused. 0: no limit.
    #[arg(long, env = "MAX_STREAMS_PER_USER", default_value_t = 64)]
    pub max_streams_per_user: usize,

    /// Take the client address for AUTH_RATE from the last X-Forwarded-For
    /// entry. Only behind exactly one reverse proxy that appends it;
    /// otherwise clients could pick their own address.
    #[arg(long, env = "TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy: bool,

    /// How often storage and Redis are probed for health and readiness.
    #[arg(long, env = "HEALTH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,

    /// How long in-flight calls get to finish after SIGTERM / Ctrl-C.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// PostgreSQL: how long a call waits for a database connection (a free
    /// pool slot, or the server accepting a new one) before failing with
    /// UNAVAILABLE. Also how long calls take to fail while the database is down.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// How many group-commit tasks store sends, each owning a share of the
    /// chats (PostgreSQL runs their transactions side by side; SQLite has
    /// one writer at a time). 0: the default, one.
    #[arg(long, env = "SEND_COMMITTERS", default_value_t = 0)]
    pub send_committers: usize,

    /// Where uploaded files go: `s3://bucket[/prefix]` (an S3-compatible
    /// bucket; endpoint, region and credentials from AWS_ENDPOINT,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint), `file:///dir`, or
    /// unset: the `files` folder of DATA_DIR. Every node must use the same.
    #[arg(long, env = "FILE_STORE_URL")]
    pub file_store_url: Option<String>,

    /// S3 settings by object_store's names (`aws_endpoint`, ...), over the
    /// environment's (tests; not a flag).
    #[arg(skip)]
    pub file_store_options: Vec<(String, String)>,

    /// Largest uploaded file, in bytes.
    #[arg(long, env = "MAX_FILE_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_file_bytes: u64,

    /// Bytes one user may upload in 24 hours.
    #[arg(long, env = "UPLOAD_BYTES_PER_DAY", default_value_t = 1024 * 1024 * 1024)]
    pub upload_bytes_per_day: u64,

    /// How long an uploaded file that no message holds is kept.
    #[arg(long, env = "KEEP_UNATTACHED_FILES", default_value = "24h", value_parser = humantime::parse_duration)]
    pub keep_unattached_files: Duration,

    /// How long a signed file URL (GetFileUrls) works.
    #[arg(long, env = "FILE_URL_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub file_url_ttl: Duration,
}

impl Config {
    /// The embedded default with its data in `data_dir`, listening on an
    /// ephemeral loopback port, without reading the environment (for tests
    /// and tools). Every other field is the flag's default: the same clap
    /// definition parsed with no arguments and no environment, so the two
    /// cannot drift apart.
    pub fn embedded(data_dir: PathBuf) -> Config {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let command = Config::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command
            .try_get_matches_from(["tidings"])
            .expect("every setting has a default or is optional");
        let mut config = Config::from_arg_matches(&matches).expect("defaults are valid settings");
        config.data_dir = data_dir;
        config.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_is_the_flag_defaults() {
        let config = Config::embedded(PathBuf::from("/tmp/x"));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert!(config.listen_addr.ip().is_loopback() && config.listen_addr.port() == 0);
        assert!(config.database_url.is_none() && config.redis_url.is_none());
        assert_eq!(config.token_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(config.send_rate, 10);
        assert_eq!(config.max_streams_per_user, 64);
        assert_eq!(config.hub_capacity, crate::fanout::hub::CHANNEL_CAPACITY);
        assert_eq!(
            config.db_acquire_timeout,
            crate::store::DEFAULT_ACQUIRE_TIMEOUT
        );
        assert_eq!(config.redis_key_prefix, "tidings:");
    }
}
