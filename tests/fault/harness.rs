//! The processes a fault test owns: a PostgreSQL cluster (initdb into a temp
//! dir, on a free port), a Redis server, and server nodes (the real `tidings`
//! binary as child processes). The test can stop, kill and restart each of
//! them; nothing here touches the shared services on 5432 / 6379.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;

/// Upper bound for anything a fault test waits on (generous: CI is a slow,
/// loaded 2-core machine). Never a synchronisation delay: every wait polls a
/// condition and returns as soon as it holds.
pub const WAIT: Duration = Duration::from_secs(60);
pub const JWT_SECRET: &str = "tidings-fault-suite-jwt-secret-0123456789abcdef";

/// The fault tests run one at a time: each starts a database, a Redis and two
/// nodes, and their timings are only meaningful on a quiet machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Where the PostgreSQL server binaries and redis-server are.
#[derive(Clone, Debug)]
pub struct Tools {
    pub pg_bin: PathBuf,
    pub redis_server: PathBuf,
}

/// The tools, or None (with a notice) when they are missing. With `CI=true`
/// a missing tool is an error, so the suite cannot silently not run on CI.
pub fn tools() -> Option<Tools> {
    let pg_bin = pg_bin_dir();
    let redis_server = find_in_path("redis-server");
    match (pg_bin, redis_server) {
        (Some(pg_bin), Some(redis_server)) => Some(Tools {
            pg_bin,
            redis_server,
        }),
        (pg, redis) => {
            let what = format!(
                "PostgreSQL server binaries (initdb, pg_ctl: {}) and redis-server ({}); \
                 set TIDINGS_PG_BIN to the directory holding initdb if it is elsewhere",
                if pg.is_some() { "found" } else { "missing" },
                if redis.is_some() { "found" } else { "missing" },
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but the fault suite cannot run: it needs {what}");
            }
            eprintln!("skipping the fault suite: it needs {what}");
            None
        }
    }
}

fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TIDINGS_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    // Debian/Ubuntu keep the server binaries out of PATH: the newest
    // /usr/lib/postgresql/<major>/bin, else whatever PATH has.
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    if let Some((_, bin)) = majors.pop() {
        return Some(bin);
    }
    find_in_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A free loopback port (there is a small window in which another process
/// could take it; the servers fail loudly if that happens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Polls `check` until it returns Some, for at most `bound`.
pub async fn poll<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {bound:?} (polled)"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// A PostgreSQL cluster of the test's own. initdb and postgres refuse to run
/// as root, so as root they run as the `postgres` OS user (or
/// TIDINGS_PG_USER) through `runuser`.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
}

impl Postgres {
    pub async fn start(tools: &Tools) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("tidings-fault-pg")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let run_as = if is_root() {
            let user = std::env::var("TIDINGS_PG_USER").unwrap_or_else(|_| "postgres".into());
            let status = std::process::Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "running as root: PostgreSQL must run as another OS user; \
                 chown to {user:?} failed (set TIDINGS_PG_USER to an existing user)"
            );
            Some(user)
        } else {
            None
        };
        let pg = Postgres {
            dir,
            bin: tools.pg_bin.clone(),
            port: free_port(),
            run_as,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
        )
        .await;
        pg.start_again().await;
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&exe);
                c
            }
            None => tokio::process::Command::new(&exe),
        };
        let out = tokio::time::timeout(WAIT, cmd.args(args).stdin(Stdio::null()).output())
            .await
            .unwrap_or_else(|_| panic!("{tool} did not finish within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_args(&self, action: &str, mode: Option<&str>) -> Vec<String> {
        let mut args = vec![
            "-D".to_owned(),
            self.data_dir().to_str().unwrap().to_owned(),
            "-w".to_owned(),
            "-t".to_owned(),
            "60".to_owned(),
        ];
        if let Some(mode) = mode {
            args.extend(["-m".to_owned(), mode.to_owned()]);
        }
        if action == "start" {
            args.extend([
                "-l".to_owned(),
                self.dir.path().join("log").to_str().unwrap().to_owned(),
                "-o".to_owned(),
                format!(
                    "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off",
                    self.port,
                    self.dir.path().display()
                ),
            ]);
        }
        args.push(action.to_owned());
        args
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub async fn start_again(&self) {
        let args = self.pg_ctl_args("start", None);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("pg_ctl", &args).await;
    }

    /// `pg_ctl stop -m fast`: open sessions are terminated, open
    /// transactions roll back; returns once the server is down.
    pub async fn stop(&self) {
        let args = self.pg_ctl_args("stop", Some("fast"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("pg_ctl", &args).await;
    }

    /// A connection for the test's own checks and locks.
    pub async fn connect(&self) -> sea_orm::DatabaseConnection {
        let mut opts = sea_orm::ConnectOptions::new(self.url());
        opts.max_connections(2).sqlx_logging(false);
        sea_orm::Database::connect(opts)
            .await
            .expect("connect to the test's PostgreSQL")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let args = self.pg_ctl_args("stop", Some("immediate"));
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        let _ = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// A Redis server of the test's own, without persistence: a restart comes
/// back empty, as after losing the machine.
pub struct Redis {
    exe: PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl Redis {
    pub async fn start(tools: &Tools) -> Redis {
        let mut redis = Redis {
            exe: tools.redis_server.clone(),
            port: free_port(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "Redis is already running");
        let child = tokio::process::Command::new(&self.exe)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let port = self.port;
        poll("Redis answering PING", WAIT, || async move {
            ping_redis(port).await.then_some(())
        })
        .await;
    }

    /// SIGKILL: connections are cut and everything it held is lost.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("Redis is not running");
        child.kill().await.expect("SIGKILL redis-server");
    }
}

async fn ping_redis(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await?;
        std::io::Result::Ok(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

// ---------------------------------------------------------------------------
// Server nodes
// ---------------------------------------------------------------------------

/// What every node of a cluster is started with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub database_url: String,
    pub redis_url: String,
    /// Extra environment (e.g. SHUTDOWN_GRACE).
    pub env: Vec<(String, String)>,
}

/// The `tidings` binary in a child process.
pub struct Node {
    pub addr: SocketAddr,
    pub channel: Channel,
    child: tokio::process::Child,
    _data: TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts a node on a free port and waits until it logs that it is
    /// listening (it binds port 0 and logs the address it got).
    pub async fn start(name: &str, config: &NodeConfig) -> Node {
        let data = tempfile::tempdir().expect("node data dir");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("DATA_DIR", data.path())
            .env("DATABASE_URL", &config.database_url)
            .env("REDIS_URL", &config.redis_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
            .env("HEALTH_INTERVAL", "1s")
            // The traffic here is many clients from one address, as fast as
            // they can: the abuse limits are off (tests/api/abuse.rs covers them).
            .env("SEND_RATE", "0")
            .env("TYPING_RATE", "0")
            .env("AUTH_RATE", "0")
            .env("ROOM_RATE", "0")
            .env("LOOKUP_RATE", "0")
            .env("MAX_CONNECTIONS_PER_IP", "0")
            .env("MAX_STREAMS_PER_USER", "0");
        for (k, v) in &config.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the tidings binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var_os("FAULT_LOG").is_some();
        // stderr: drained (and echoed with FAULT_LOG) so it never blocks.
        let stderr = child.stderr.take().unwrap();
        {
            let (log, name) = (log.clone(), name.to_owned());
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[{name} stderr] {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("read node stdout") {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                log.lock().unwrap().push(line.clone());
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("listening"))
                    && let Some(addr) = v["addr"].as_str()
                {
                    return addr.parse::<SocketAddr>().expect("listening addr");
                }
            }
            panic!(
                "node {name} exited before listening:\n{}",
                log.lock().unwrap().join("\n")
            );
        })
        .await
        .unwrap_or_else(|_| panic!("node {name} did not start listening within {WAIT:?}"));
        {
            let (log, name) = (log.clone(), name.to_owned());
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[{name}] {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        Node {
            addr,
            channel: lazy_channel(addr),
            child,
            _data: data,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("node still running")
    }

    /// SIGKILL: the process dies at once, mid-whatever.
    pub async fn sigkill(&mut self) {
        self.child.kill().await.expect("SIGKILL the node");
    }

    /// SIGTERM: asks for a graceful stop.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `bound`.
    pub async fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(bound, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("wait for the node"))
    }

    /// Log lines (JSON) the node printed that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

/// A channel that connects on first use and reconnects after failures, so a
/// client keeps one per node across that node's restarts and deaths.
pub fn lazy_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

/// A port nothing listens on any more accepts no connection.
pub async fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Err(_))
    )
}
