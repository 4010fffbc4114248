//! End to end: the `tidings-chat` binary, run as separate processes for two
//! people, against the `tidings` server binary run as a process of its own
//! on the embedded default (SQLite in a temporary dir, port 0).
//!
//! Nothing waits on a timer: every step waits for the line a process prints
//! when the thing happened (`timeout` is only an upper bound).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Upper bound for any one step.
const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    child: Child,
}

/// The server binary: `TIDINGS_BIN`, or the `tidings` that `cargo test
/// --workspace` builds beside this test (the client crate does not depend on
/// the server crate, so it cannot name the binary itself).
fn server_binary() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("TIDINGS_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/tidings
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("tidings");
    assert!(
        bin.exists(),
        "{} is missing: build the server first (cargo build -p tidings --bin tidings, \
         or run cargo test --workspace), or set TIDINGS_BIN",
        bin.display()
    );
    bin
}

/// Starts a server process on `data_dir`; `addr` may have port 0. Returns
/// once it listens (its log says so, with the address it got).
async fn start_server(data_dir: &Path, addr: SocketAddr) -> Server {
    start_server_with(data_dir, addr, &[]).await
}

/// As [`start_server`], with some settings changed (a limit turned on).
async fn start_server_with(data_dir: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(server_binary());
    command
        .env_clear()
        .env("DATA_DIR", data_dir)
        .env("LISTEN_ADDR", addr.to_string())
        .env("JWT_SECRET", "x".repeat(40))
        .env("SHUTDOWN_GRACE", "2s")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        // The tests sign up and send faster than people: no abuse limits in the way.
        .env("AUTH_RATE", "0")
        .env("ROOM_RATE", "0")
        .env("LOOKUP_RATE", "0")
        .env("SEND_RATE", "0")
        .env("TYPING_RATE", "0")
        .env("MAX_STREAMS_PER_USER", "0")
        .envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let mut logs = BufReader::new(child.stdout.take().expect("server stdout")).lines();
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            let line = logs
                .next_line()
                .await
                .expect("read the server's log")
                .expect("the server exited before it listened");
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if entry["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening"))
            {
                let addr = entry["addr"].as_str().expect("the listening line has addr");
                return addr.parse::<SocketAddr>().expect("a socket address");
            }
        }
    })
    .await
    .expect("the server listens in time");
    // Keep reading its log so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = logs.next_line().await {} });
    Server { addr, child }
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, and the server exits cleanly in time.
    async fn stop(mut self) {
        let pid = self.child.id().expect("the server is running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal the server");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("server stops in time")
            .expect("wait for the server");
        assert!(status.success(), "server exited with {status}");
    }
}

// ---------------------------------------------------------------------------
// People using the client
// ---------------------------------------------------------------------------

/// One person: their own config dir, so their own session and cursors.
struct Person {
    name: &'static str,
    config: TempDir,
    server: String,
}

impl Person {
    async fn register(server: &str, name: &'static str) -> Person {
        let person = Person {
            name,
            config: TempDir::new().unwrap(),
            server: server.to_owned(),
        };
        let out = person
            .run(&["register", "--username", name, "--email", &person.email()])
            .await;
        assert!(out.contains(&format!("logged in as {name}")), "{out}");
        person
    }

    fn email(&self) -> String {
        format!("{}@example.com", self.name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings-chat"));
        cmd.args(args)
            .env("TIDINGS_CONFIG_DIR", self.config.path())
            .env("TIDINGS_SERVER", &self.server)
            .env("TIDINGS_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a command to the end; it must succeed. Its stdout.
    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(WAIT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} did not finish", self.name))
            .expect("runs");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
            self.name,
            out.status
        );
        stdout
    }

    /// Sends a message; its seq.
    async fn send(&self, chat: &str, text: &str) -> i64 {
        let out = self.run(&["send", chat, text]).await;
        let (seq, id) = out.trim_end().split_once('\t').expect("seq<TAB>id");
        assert!(!id.is_empty());
        seq.parse().expect("a seq")
    }

    fn spawn(&self, args: &[&str]) -> Proc {
        self.spawn_with(self.command(args))
    }

    fn spawn_with(&self, mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("spawns");
        Proc {
            what: self.name,
            stdin: child.stdin.take(),
            out: BufReader::new(child.stdout.take().unwrap()).lines(),
            err: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
        }
    }
}

/// A running client process whose output lines are the events we wait on.
struct Proc {
    what: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Lines<BufReader<ChildStdout>>,
    err: Lines<BufReader<ChildStderr>>,
}

impl Proc {
    async fn line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.out.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let stderr = self.rest_of_stderr().await;
                panic!("{}: stdout ended; stderr: {stderr}", self.what)
            }
            Ok(Err(e)) => panic!("{}: reading stdout: {e}", self.what),
            Err(_) => panic!("{}: no line within {WAIT:?}", self.what),
        }
    }

    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.line().await);
        }
        out
    }

    /// Reads stdout up to the first line containing `needle`.
    async fn line_containing(&mut self, needle: &str) -> String {
        loop {
            let line = self.line().await;
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Reads stderr up to the first line containing `needle`.
    async fn stderr_containing(&mut self, needle: &str) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.err.next_line()).await {
                Ok(Ok(Some(line))) if line.contains(needle) => return line,
                Ok(Ok(Some(_))) => continue,
                other => panic!("{}: no stderr line with {needle:?}: {other:?}", self.what),
            }
        }
    }

    async fn rest_of_stderr(&mut self) -> String {
        let mut all = String::new();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(2), self.err.next_line()).await
        {
            all.push_str(&line);
            all.push('\n');
        }
        all
    }

    async fn type_line(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Sends SIGTERM, as a service manager or `kill` would.
    fn terminate(&self) {
        let pid = self.child.id().expect("still running") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }

    /// Waits for the exit; the status and whatever stdout was left.
    async fn finish(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit", self.what))
            .unwrap();
        let mut rest = Vec::new();
        while let Ok(Some(line)) = self.out.next_line().await {
            rest.push(line);
        }
        (status, rest)
    }
}

fn tail_line(chat: &str, seq: i64, user: &str, content: &str) -> String {
    format!("{chat}\t{seq}\t{user}\t{content}")
}

/// A server, alice and bob, and their direct chat.
async fn two_people(server: &Server) -> (Person, Person, String) {
    let alice = Person::register(&server.url(), "alice").await;
    let bob = Person::register(&server.url(), "bob").await;
    let chat = alice.run(&["open", &bob.email()]).await.trim().to_owned();
    assert!(!chat.is_empty());
    (alice, bob, chat)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_and_a_stopped_tail_resumes_with_exactly_the_missed_messages() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, bob, chat) = two_people(&server).await;

    // Both see the chat; opening it again finds the same one.
    assert!(bob.run(&["chats"]).await.contains(&chat));
    assert_eq!(alice.run(&["open", &bob.email()]).await.trim(), chat);
    let who = bob.run(&["whoami"]).await;
    assert!(who.contains("bob <bob@example.com>"), "{who}");

    // Both send; each side's tail sees the other's message (and its own).
    assert_eq!(alice.send(&chat, "hi bob").await, 1);
    assert_eq!(bob.send(&chat, "hi alice").await, 2);
    let both = vec![
        tail_line(&chat, 1, "alice", "hi bob"),
        tail_line(&chat, 2, "bob", "hi alice"),
    ];
    for person in [&alice, &bob] {
        let out = person.run(&["tail", "--from-start", "--count", "2"]).await;
        assert_eq!(out.lines().collect::<Vec<_>>(), both, "{}", person.name);
    }
    // Alice's list: bob's answer is unread (a tail does not mark read).
    let list = alice.run(&["chats"]).await;
    let row = list
        .lines()
        .find(|l| l.starts_with(&chat))
        .expect("the chat is listed");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..4], ["bob", "1", "bob:"], "{list}");
    assert!(row.ends_with("bob: hi alice"), "{list}");

    // Bob tails live (resuming from the cursor the last tail saved)...
    let mut tail = bob.spawn(&["tail"]);
    tail.stderr_containing("connected").await;
    alice.send(&chat, "three").await;
    assert_eq!(tail.line().await, tail_line(&chat, 3, "alice", "three"));

    // ...and is cut off mid-stream.
    tail.terminate();
    let (status, rest) = tail.finish().await;
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "{rest:?}");

    // Messages while bob is away, one with a tab and a newline in it.
    alice.send(&chat, "four").await;
    alice.send(&chat, "five\tand\na half").await;
    bob.send(&chat, "six, from bob's other device").await;

    // Restarted, bob's tail prints exactly what he missed, in order...
    let out = bob.run(&["tail", "--count", "3"]).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            tail_line(&chat, 4, "alice", "four"),
            tail_line(&chat, 5, "alice", "five\\tand\\na half"),
            tail_line(&chat, 6, "bob", "six, from bob's other device"),
        ]
    );
    // ...and nothing twice: the next tail's first line is the next message
    // (a repeat would be replayed before it).
    let mut tail = bob.spawn(&["tail"]);
    tail.stderr_containing("connected").await;
    alice.send(&chat, "seven").await;
    assert_eq!(tail.line().await, tail_line(&chat, 7, "alice", "seven"));
    // Alice's cursors are her own: her tail resumes after seq 2.
    let out = alice.run(&["tail", "--count", "5"]).await;
    assert_eq!(
        out.lines().next(),
        Some(tail_line(&chat, 3, "alice", "three").as_str())
    );
    assert_eq!(out.lines().count(), 5);

    drop(tail);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_off_from_the_network_reconnects_and_prints_exactly_the_missed_messages() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, bob, chat) = two_people(&server).await;
    alice.send(&chat, "before").await;

    // Bob's tail reaches the server through a proxy we can cut.
    let proxy = Proxy::start(server.addr).await;
    let mut cmd = bob.command(&["tail"]);
    cmd.env("TIDINGS_SERVER", proxy.url());
    let mut tail = bob.spawn_with(cmd);
    tail.stderr_containing("connected").await;
    alice.send(&chat, "live").await;
    assert_eq!(tail.line().await, tail_line(&chat, 2, "alice", "live"));

    // A chat someone opens with bob while he tails is followed at once.
    let carol = Person::register(&server.url(), "carol").await;
    let carol_chat = carol.run(&["open", &bob.email()]).await.trim().to_owned();
    carol.send(&carol_chat, "hi from carol").await;
    assert_eq!(
        tail.line().await,
        tail_line(&carol_chat, 1, "carol", "hi from carol")
    );

    // The network goes: open connections are dropped, new ones refused.
    proxy.cut();
    tail.stderr_containing("reconnecting").await;
    for text in ["m3", "m4", "m5"] {
        alice.send(&chat, text).await;
    }
    // Meanwhile dave opens a chat with bob, which bob's tail has not seen.
    let dave = Person::register(&server.url(), "dave").await;
    let dave_chat = dave.run(&["open", &bob.email()]).await.trim().to_owned();
    dave.send(&dave_chat, "hi from dave").await;

    // It comes back: the same process resumes from its last seq per chat,
    // and picks up the new chat from its start.
    proxy.restore();
    tail.stderr_containing("reconnected").await;
    let lines = tail.lines(4).await;
    let of =
        |chat: &str| -> Vec<&String> { lines.iter().filter(|l| l.starts_with(chat)).collect() };
    assert_eq!(
        of(&chat),
        [
            &tail_line(&chat, 3, "alice", "m3"),
            &tail_line(&chat, 4, "alice", "m4"),
            &tail_line(&chat, 5, "alice", "m5"),
        ]
    );
    assert_eq!(
        of(&dave_chat),
        [&tail_line(&dave_chat, 1, "dave", "hi from dave")]
    );
    alice.send(&chat, "m6").await;
    assert_eq!(tail.line().await, tail_line(&chat, 6, "alice", "m6"));

    tail.terminate();
    let (status, rest) = tail.finish().await;
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "{rest:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_follows_a_server_restart_and_a_send_retries_until_the_server_is_back() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = server.addr;
    let (alice, bob, chat) = two_people(&server).await;

    let mut tail = bob.spawn(&["tail"]);
    tail.stderr_containing("connected").await;
    alice.send(&chat, "one").await;
    assert_eq!(tail.line().await, tail_line(&chat, 1, "alice", "one"));

    // The server stops; the tail notices.
    server.stop().await;
    tail.stderr_containing("reconnecting").await;

    // A send while it is down keeps its idempotency key and retries.
    let mut send = alice.spawn(&["send", &chat, "sent while the server was down"]);
    send.stderr_containing("retrying").await;

    // The same data, the same secret, the same port.
    let server = start_server(data.path(), addr).await;
    let (status, out) = send.finish().await;
    assert!(status.success(), "{status}");
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("2\t"), "{out:?}");
    alice.send(&chat, "three").await;

    tail.stderr_containing("reconnected").await;
    assert_eq!(
        tail.lines(2).await,
        vec![
            tail_line(&chat, 2, "alice", "sent while the server was down"),
            tail_line(&chat, 3, "alice", "three"),
        ]
    );
    tail.terminate();
    let (status, rest) = tail.finish().await;
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "{rest:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_chat_sends_over_the_session_and_shows_messages_and_receipts() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, bob, chat) = two_people(&server).await;
    alice.send(&chat, "earlier").await;

    let open = |person: &Person| {
        let mut cmd = person.command(&["chat", &chat]);
        cmd.stdin(Stdio::piped());
        person.spawn_with(cmd)
    };
    let mut alice_chat = open(&alice);
    let mut bob_chat = open(&bob);
    // Both show the history (bob's shows alice's earlier message).
    bob_chat.line_containing("alice: earlier").await;
    alice_chat.line_containing("alice: earlier").await;

    // Bob types a line: it goes over his session, he gets the ack, alice
    // sees it live.
    bob_chat.type_line("hello from bob's terminal").await;
    bob_chat.line_containing("✓ #2").await;
    let shown = alice_chat
        .line_containing("hello from bob's terminal")
        .await;
    assert!(
        shown.starts_with("#2 ") && shown.contains("bob: "),
        "{shown}"
    );

    // Alice answers; bob's chat shows it and marks it read, which alice's
    // chat shows as a receipt.
    alice_chat.type_line("hi bob").await;
    alice_chat.line_containing("✓ #3").await;
    bob_chat.line_containing("#3 ").await;
    let seen = alice_chat.line_containing("seen by bob").await;
    assert!(seen.contains("#3"), "{seen}");

    // The messages are stored once each.
    let out = alice.run(&["tail", "--from-start", "--count", "3"]).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            tail_line(&chat, 1, "alice", "earlier"),
            tail_line(&chat, 2, "bob", "hello from bob's terminal"),
            tail_line(&chat, 3, "alice", "hi bob"),
        ]
    );

    // End of input ends the chat cleanly once nothing is pending.
    for proc in [alice_chat, bob_chat] {
        let (status, _) = proc.finish().await;
        assert!(status.success(), "{status}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_chat_replies_edits_reacts_and_deletes_and_shows_the_others_changes_live() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, bob, chat) = two_people(&server).await;
    bob.send(&chat, "lunch?").await;

    let open = |person: &Person| {
        let mut cmd = person.command(&["chat", &chat]);
        cmd.stdin(Stdio::piped());
        person.spawn_with(cmd)
    };
    let mut alice_chat = open(&alice);
    let mut bob_chat = open(&bob);
    alice_chat.line_containing("bob: lunch?").await;
    bob_chat.line_containing("bob: lunch?").await;

    // A reply carries the quote of #1 to the other side.
    alice_chat.type_line("/reply 1 sure").await;
    alice_chat.line_containing("✓ #2").await;
    let quote = bob_chat.line_containing("┌").await;
    assert!(quote.ends_with("┌ bob: lunch?"), "{quote}");
    let reply = bob_chat.line().await;
    assert!(
        reply.starts_with("#2 ") && reply.ends_with("alice: sure"),
        "{reply}"
    );

    // Only the sender may edit: bob's try is refused and changes nothing.
    bob_chat.type_line("/edit 2 hijacked").await;
    let refused = bob_chat.line_containing("could not edit #2").await;
    assert!(
        refused.contains("PERMISSION_DENIED") || refused.contains("NOT_FOUND"),
        "{refused}"
    );
    alice_chat.type_line("/edit 2 sure, at noon").await;
    assert_eq!(
        bob_chat.line_containing("edited").await,
        "· alice edited #2: sure, at noon"
    );
    alice_chat
        .line_containing("· you edited #2: sure, at noon")
        .await;

    // A reaction, shown with its count; a message never shown is named.
    bob_chat.type_line("/react 2 👍").await;
    assert_eq!(
        alice_chat.line_containing("reacted").await,
        "· bob reacted 👍 to #2 (1)"
    );
    bob_chat.type_line("/react 9 👍").await;
    bob_chat
        .line_containing("no message #9 has been shown here")
        .await;
    bob_chat.type_line("/react 2").await;
    bob_chat.line_containing("usage: /react N 👍").await;

    // Deleting: the other side hears of it, and the stored text is gone.
    alice_chat.type_line("/delete 2").await;
    assert_eq!(
        bob_chat.line_containing("deleted").await,
        "· alice deleted #2"
    );
    alice_chat.line_containing("· you deleted #2").await;
    let out = alice.run(&["tail", "--from-start", "--count", "2"]).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            tail_line(&chat, 1, "bob", "lunch?"),
            tail_line(&chat, 2, "alice", ""),
        ]
    );

    // Reopened, the history shows the tombstone, not the old text.
    let (status, _) = alice_chat.finish().await;
    assert!(status.success(), "{status}");
    let mut again = open(&alice);
    let tomb = again.line_containing("#2 ").await;
    assert!(tomb.ends_with("alice: (deleted)"), "{tomb}");
    for proc in [again, bob_chat] {
        let (status, rest) = proc.finish().await;
        assert!(status.success(), "{status}");
        assert!(!rest.iter().any(|l| l.contains("sure")), "{rest:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_server_message_and_a_failing_exit_code() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let alice = Person::register(&server.url(), "alice").await;

    // Not logged in: exit code 3.
    let nobody = Person {
        name: "nobody",
        config: TempDir::new().unwrap(),
        server: server.url(),
    };
    let out = nobody.command(&["chats"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not logged in"));

    // The server's own words for bad input.
    let out = alice
        .command(&["open", "nobody@example.com"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOT_FOUND"), "{stderr}");

    let out = alice
        .command(&[
            "register",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALREADY_EXISTS"));

    // Wrong password: UNAUTHENTICATED, exit code 3.
    let out = alice
        .command(&[
            "login",
            "--email",
            "alice@example.com",
            "--password",
            "not the password",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    assert!(alice.run(&["logout"]).await.contains("logged out"));
    let out = alice.command(&["whoami"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_send_waits_as_long_as_the_servers_retry_info_says_and_is_stored_once() {
    let data = TempDir::new().unwrap();
    // One message a second per user, no burst: of two sends at once one
    // is refused with a RetryInfo of about a second.
    let server = start_server_with(
        data.path(),
        "127.0.0.1:0".parse().unwrap(),
        &[("SEND_RATE", "1"), ("SEND_BURST", "1")],
    )
    .await;
    let (alice, _bob, chat) = two_people(&server).await;

    /// A send run to its end: when each stderr line came, when it exited.
    async fn timed(mut proc: Proc) -> (Vec<(Instant, String)>, Instant, ExitStatus, Vec<String>) {
        let mut err = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, proc.err.next_line()).await {
            err.push((Instant::now(), line));
        }
        let (status, out) = proc.finish().await;
        (err, Instant::now(), status, out)
    }
    let (a, b) = tokio::join!(
        timed(alice.spawn(&["send", &chat, "first"])),
        timed(alice.spawn(&["send", &chat, "second"])),
    );
    let mut seqs = Vec::new();
    let mut waited = Vec::new();
    for (err, exited, status, out) in [a, b] {
        assert!(status.success(), "{status}: {err:?}");
        let (seq, _) = out[0].split_once('\t').expect("seq<TAB>id");
        seqs.push(seq.parse::<i64>().unwrap());
        for (at, line) in &err {
            let Some(rest) = line
                .split_once("rate limited, retrying in ")
                .map(|(_, r)| r)
            else {
                continue;
            };
            assert!(rest.ends_with("s with the same idempotency key"), "{line}");
            let secs: f64 = rest.split_once('s').unwrap().0.parse().expect("seconds");
            // The server's delay, not the first step of the backoff
            // (100 ms): about a second.
            assert!(secs > 0.3 && secs <= 1.05, "{line}");
            let slept = exited.duration_since(*at).as_secs_f64();
            assert!(slept >= secs - 0.1, "slept {slept}s after {line:?}");
            waited.push(secs);
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2]);
    assert!(!waited.is_empty(), "neither send was rate limited");

    // Stored once each: the next message is #3, and the history has both.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(alice.send(&chat, "third").await, 3);
    let out = alice.run(&["tail", "--from-start", "--count", "3"]).await;
    let mut texts: Vec<&str> = out
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    texts[..2].sort_unstable();
    assert_eq!(texts, ["first", "second", "third"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_someone_in_a_room_hides_their_messages_until_unblocked() {
    let data = TempDir::new().unwrap();
    let server = start_server(data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let alice = Person::register(&server.url(), "alice").await;
    let bob = Person::register(&server.url(), "bob").await;
    let carol = Person::register(&server.url(), "carol").await;
    let room = alice
        .run(&[
            "room",
            "team",
            "--member",
            &bob.email(),
            "--member",
            &carol.email(),
        ])
        .await
        .trim()
        .to_owned();

    let open = |person: &Person| {
        let mut cmd = person.command(&["chat", &room]);
        cmd.stdin(Stdio::piped());
        person.spawn_with(cmd)
    };
    let mut alice_chat = open(&alice);
    let mut bob_chat = open(&bob);
    alice_chat.line_containing("/help").await;
    bob_chat.line_containing("/help").await;
    bob_chat.type_line("before the block").await;
    bob_chat.line_containing("✓ #1").await;
    alice_chat.line_containing("bob: before the block").await;

    // Names that are not members, and oneself, are refused here.
    alice_chat.type_line("/block mallory").await;
    alice_chat
        .line_containing("nobody called mallory is a member of this chat")
        .await;
    alice_chat.type_line("/block alice").await;
    alice_chat
        .line_containing("you cannot block yourself")
        .await;

    alice_chat.type_line("/block @bob").await;
    let told = alice_chat.line_containing("you blocked bob").await;
    assert!(told.contains("/unblock bob"), "{told}");

    // Bob's next message reaches alice hidden, and only that is shown (the
    // block's echo on her stream is not told twice).
    bob_chat.type_line("you cannot read this").await;
    bob_chat.line_containing("✓ #2").await;
    let mut lines = Vec::new();
    loop {
        let line = alice_chat.line().await;
        let done = line.starts_with("#2 ");
        lines.push(line);
        if done {
            break;
        }
    }
    let (hidden, before) = lines.split_last().unwrap();
    assert!(
        hidden.ends_with("bob: [message from someone you blocked]"),
        "{hidden}"
    );
    assert!(
        !before.iter().any(|l| l.contains("you blocked")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("cannot read")),
        "{lines:?}"
    );
    // Carol blocked nobody: she reads it.
    let out = carol.run(&["tail", "--from-start", "--count", "2"]).await;
    assert!(out.ends_with("bob\tyou cannot read this\n"), "{out}");

    // Nor can bob open a direct chat with alice now.
    let out = bob
        .command(&["open", &alice.email()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PERMISSION_DENIED"), "{stderr}");

    alice_chat.type_line("/blocked").await;
    let listed = alice_chat.line_containing("blocked:").await;
    assert!(listed.starts_with("· blocked: bob (since "), "{listed}");

    alice_chat.type_line("/unblock bob").await;
    alice_chat.line_containing("· you unblocked bob").await;
    alice_chat.type_line("/blocked").await;
    alice_chat
        .line_containing("· you have blocked nobody")
        .await;
    bob_chat.type_line("visible again").await;
    bob_chat.line_containing("✓ #3").await;
    let shown = alice_chat.line_containing("#3 ").await;
    assert!(shown.ends_with("bob: visible again"), "{shown}");

    for proc in [alice_chat, bob_chat] {
        let (status, _) = proc.finish().await;
        assert!(status.success(), "{status}");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------
// A TCP proxy that can cut the network
// ---------------------------------------------------------------------------

struct Proxy {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, watch) = watch::channel(true);
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*watch.borrow() {
                    // Refused: closed at once.
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            addr,
            open,
            connections,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.open.send_replace(false);
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
