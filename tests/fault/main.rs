//! The fault suite: the real `tidings` binary, two nodes, on a PostgreSQL
//! and a Redis of the suite's own, which the tests stop, kill and restart
//! under traffic. Clients retry every send with its idempotency key until it
//! is acknowledged and resume every stream from the last seq they have.
//! Each test then checks: acked = stored = delivered to every subscriber,
//! zero duplicates, zero gaps; and prints what it measured (`FAULT ...`
//! lines; run with `--nocapture`). See docs/RELIABILITY.md.
//!
//! Needs the PostgreSQL server binaries (initdb, pg_ctl; found in
//! /usr/lib/postgresql/<major>/bin, TIDINGS_PG_BIN or PATH) and
//! redis-server. As root, PostgreSQL runs as the `postgres` OS user
//! (TIDINGS_PG_USER) through runuser. Without the tools the suite is skipped
//! with a notice, except with CI=true, where that is an error.
//!
//! `FAULT_LOG=1` echoes the nodes' logs.

mod harness;
mod traffic;

use std::time::{Duration, Instant};

use harness::{Node, NodeConfig, Postgres, Redis, WAIT, poll};
use sea_orm::{ConnectionTrait as _, DbBackend, Statement, TransactionTrait as _};
use tonic::Code;
use traffic::{Ledger, Sender, Subscriber, User, ms};

/// Two nodes on one PostgreSQL and one Redis, three users in one group chat.
struct Cluster {
    // Fields drop in this order: nodes first, then Redis and PostgreSQL.
    a: Node,
    b: Node,
    db: sea_orm::DatabaseConnection,
    config: NodeConfig,
    users: [User; 3],
    chat: String,
    redis: Redis,
    pg: Postgres,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// None when the tools are missing (and this is not CI).
    async fn start(env: &[(&str, &str)]) -> Option<Cluster> {
        let tools = harness::tools()?;
        let serial = harness::serial().await;
        let started = Instant::now();
        let pg = Postgres::start(&tools).await;
        let redis = Redis::start(&tools).await;
        let config = NodeConfig {
            database_url: pg.url(),
            redis_url: redis.url(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        // One after the other: the first one runs the migrations.
        let a = Node::start("A", &config).await;
        let b = Node::start("B", &config).await;
        let users = [
            traffic::register(&a.channel, "alice").await,
            traffic::register(&a.channel, "bob").await,
            traffic::register(&b.channel, "carol").await,
        ];
        let chat = traffic::group(&a.channel, &users[0], &[&users[1], &users[2]]).await;
        let db = pg.connect().await;
        eprintln!("cluster up in {}", ms(started.elapsed()));
        Some(Cluster {
            a,
            b,
            db,
            config,
            users,
            chat,
            redis,
            pg,
            _serial: serial,
        })
    }

    fn sender(&self, name: &str, user: usize, targets: &[&Node], ledger: &Ledger) -> Sender {
        Sender {
            name: name.to_owned(),
            user: self.users[user].clone(),
            chat_id: self.chat.clone(),
            targets: targets.iter().map(|n| n.channel.clone()).collect(),
            ledger: ledger.clone(),
            current: Default::default(),
        }
    }

    async fn subscriber(&self, name: &str, user: usize, targets: &[&Node]) -> Subscriber {
        Subscriber::start(
            name,
            &self.users[user],
            &self.chat,
            targets.iter().map(|n| n.channel.clone()).collect(),
        )
        .await
    }

    /// Backends of the nodes waiting for a lock right now.
    async fn lock_waiters(&self) -> i64 {
        self.db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND backend_type = 'client backend'",
            ))
            .await
            .expect("read pg_stat_activity")
            .expect("a row")
            .try_get("", "n")
            .unwrap()
    }
}

/// A node's `tidings_sends_pending` gauge: sends it has taken in and not
/// answered yet (the group committer queues them behind a held batch).
async fn sends_pending(addr: std::net::SocketAddr) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("tidings_sends_pending "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(
            tokio::time::timeout(WAIT * 2, h)
                .await
                .expect("client task hung")
                .expect("client task panicked"),
        );
    }
    out
}

/// Redis is SIGKILLed mid-traffic and restarted (empty) a little later.
/// Sends keep succeeding throughout (idempotency falls back to the
/// database's unique (sender, key) index), and the subscribers on node B,
/// which get nothing from node A while Redis is down, receive every message
/// sent on A during the outage once Redis is back — in order, without
/// re-subscribing: B resyncs its streams from storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart() {
    let Some(mut c) = Cluster::start(&[]).await else {
        return;
    };
    let ledger = Ledger::default();
    let s_a = c.sender("alice-A", 0, &[&c.a], &ledger);
    let s_b = c.sender("bob-B", 1, &[&c.b], &ledger);
    let s_c = c.sender("carol-A", 2, &[&c.a], &ledger);
    let alice_a = c.subscriber("alice@A", 0, &[&c.a]).await;
    let bob_b = c.subscriber("bob@B", 1, &[&c.b]).await;
    let carol_b = c.subscriber("carol@B", 2, &[&c.b]).await;

    // 1. Redis up: traffic through both nodes.
    let phase1 = join_all(vec![
        s_a.spawn_burst(0..15),
        s_b.spawn_burst(0..15),
        s_c.spawn_burst(0..15),
    ])
    .await;
    let n1 = 45;
    for s in [&alice_a, &bob_b, &carol_b] {
        s.wait_seq(n1, WAIT).await;
    }

    // 2. Through node A only; Redis dies after the first few of these.
    let bursts = vec![s_a.spawn_burst(15..45), s_c.spawn_burst(15..45)];
    ledger.wait_acks(n1 as usize + 6).await;
    c.redis.kill().await;
    let killed = Instant::now();
    join_all(bursts).await;
    // Redis stays down until B has failed to re-subscribe a few times (its
    // retries back off, so this is a real outage, not a blip).
    poll("B retrying its Redis subscription", WAIT, || async {
        (c.b.log_lines("cross-node subscription failed").len() >= 4).then_some(())
    })
    .await;
    let n2 = n1 + 60;
    // Re-sends of keys acknowledged before the outage: the cache is gone,
    // the database answers with the original message.
    for ack in &phase1[0][..5] {
        let i: usize = ack.key.rsplit('-').next().unwrap().parse().unwrap();
        let again = s_a.send_until_acked(&ack.key, &s_a.content(i)).await;
        assert_eq!(
            (&again.id, again.seq),
            (&ack.id, ack.seq),
            "re-send during the outage made a new message"
        );
    }
    let outage_sends = ledger.acks().iter().filter(|a| a.at > killed).count();
    assert!(
        ledger.failures().is_empty(),
        "sends failed while Redis was down: {:?}",
        ledger.failures()
    );
    let b_had = bob_b.last_seq();

    // 3. Redis back (empty): B's subscription is restored and its streams
    // re-read storage.
    c.redis.restart().await;
    let up = Instant::now();
    let outage = up - killed;
    let mut caught_up = up;
    for s in [&bob_b, &carol_b, &alice_a] {
        caught_up = caught_up.max(s.wait_seq(n2, WAIT).await);
    }
    let recovery = caught_up - up;

    // 4. Cross-node delivery is live again both ways; re-sends after the
    // restart (empty cache) still answer with the original message.
    join_all(vec![s_a.spawn_burst(45..55), s_b.spawn_burst(15..25)]).await;
    for ack in &phase1[1][..5] {
        let i: usize = ack.key.rsplit('-').next().unwrap().parse().unwrap();
        let again = s_b.send_until_acked(&ack.key, &s_b.content(i)).await;
        assert_eq!(
            (&again.id, again.seq),
            (&ack.id, ack.seq),
            "re-send after the restart made a new message"
        );
    }
    let n3 = n2 + 20;
    let mut received = Vec::new();
    for s in [alice_a, bob_b, carol_b] {
        received.push(s.finish(n3).await);
    }
    for r in &received {
        assert_eq!(
            r.resumes, 0,
            "{}: the stream was cut ({:?}); B should have resynced it",
            r.name, r.ends
        );
    }
    let (rows, last_seq) = traffic::stored(&c.db, &c.chat).await;
    let outcome = traffic::verify("redis_restart", &ledger.acks(), &rows, last_seq, &received);
    traffic::report(
        "redis_restart",
        &outcome,
        &ledger,
        &[
            ("outage", ms(outage)),
            ("sends acked while Redis was down", outage_sends.to_string()),
            (
                "B's subscribers had seq when Redis came back",
                format!("{b_had} of {n2}"),
            ),
            (
                "B's subscribers caught up after Redis restart",
                ms(recovery),
            ),
        ],
    );
}

/// PostgreSQL is stopped (fast shutdown: sessions cut, open transactions
/// rolled back) under traffic and started again. Calls fail fast with
/// UNAVAILABLE while it is down, the nodes recover without a restart, and
/// nothing is half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart() {
    let Some(c) = Cluster::start(&[]).await else {
        return;
    };
    let ledger = Ledger::default();
    let senders = [
        c.sender("alice", 0, &[&c.a, &c.b], &ledger),
        c.sender("bob", 1, &[&c.b, &c.a], &ledger),
        c.sender("carol", 2, &[&c.a, &c.b], &ledger),
    ];
    let alice = c.subscriber("alice@A", 0, &[&c.a, &c.b]).await;
    let bob = c.subscriber("bob@B", 1, &[&c.b, &c.a]).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = senders
        .iter()
        .map(|s| s.spawn_until(0, stop_rx.clone()))
        .collect();

    ledger.wait_acks(30).await;
    c.pg.stop().await;
    let down = Instant::now();
    // The outage lasts until every sender has seen a call fail.
    poll("every sender failing", WAIT, || async {
        let failed: std::collections::HashSet<String> = ledger
            .failures()
            .iter()
            .filter(|f| f.at >= down)
            .map(|f| f.key.rsplit_once('-').unwrap().0.to_owned())
            .collect();
        (failed.len() == senders.len()).then_some(())
    })
    .await;
    c.pg.start_again().await;
    let up = Instant::now();
    let outage = up - down;

    let before = ledger.ack_count();
    ledger.wait_acks(before + 30).await;
    let _ = stop.send(true);
    join_all(tasks).await;
    let acks = ledger.acks();
    let first_ack = acks
        .iter()
        .filter(|a| a.at > up)
        .map(|a| a.at)
        .min()
        .expect("acks after restart");
    let n = acks.len() as i64;
    let mut received = Vec::new();
    for s in [alice, bob] {
        received.push(s.finish(n).await);
    }
    let (rows, last_seq) = traffic::stored(&c.db, &c.chat).await;
    let outcome = traffic::verify("postgres_restart", &acks, &rows, last_seq, &received);

    // What clients saw while it was down: UNAVAILABLE, fast.
    let failures = ledger.failures();
    let during: Vec<_> = failures
        .iter()
        .filter(|f| f.at >= down && f.at < up)
        .collect();
    assert!(!during.is_empty(), "no call failed during the outage");
    for f in &failures {
        assert_eq!(
            f.code,
            Code::Unavailable,
            "a call failed with another status than UNAVAILABLE: {f:?}"
        );
    }
    let slowest = during.iter().map(|f| f.latency).max().unwrap();
    // DB_ACQUIRE_TIMEOUT (2 s by default), plus slack for a loaded machine.
    assert!(
        slowest < Duration::from_millis(3500),
        "calls did not fail fast during the outage: the slowest took {slowest:?}"
    );
    traffic::report(
        "postgres_restart",
        &outcome,
        &ledger,
        &[
            ("outage", ms(outage)),
            ("slowest failed call during the outage", ms(slowest)),
            (
                "first acked send after PostgreSQL was back",
                ms(first_ack - up),
            ),
            (
                "subscriber resumes",
                received
                    .iter()
                    .map(|r| format!("{}={}", r.name, r.resumes))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ],
    );
}

/// Node A is SIGKILLed in the middle of a send storm. Its clients retry on
/// node B with the same keys and its subscribers resume there from their
/// last seq: every key is stored exactly once, every seq without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_sigkill() {
    let Some(mut c) = Cluster::start(&[]).await else {
        return;
    };
    let ledger = Ledger::default();
    let senders = [
        c.sender("alice", 0, &[&c.a, &c.b], &ledger),
        c.sender("bob", 1, &[&c.a, &c.b], &ledger),
        c.sender("carol", 2, &[&c.a, &c.b], &ledger),
        c.sender("bob2", 1, &[&c.b, &c.a], &ledger),
    ];
    let alice = c.subscriber("alice@A", 0, &[&c.a, &c.b]).await;
    let carol = c.subscriber("carol@A", 2, &[&c.a, &c.b]).await;
    let bob = c.subscriber("bob@B", 1, &[&c.b, &c.a]).await;
    let per = 40;
    let tasks: Vec<_> = senders.iter().map(|s| s.spawn_burst(0..per)).collect();

    ledger.wait_acks(per).await;
    c.a.sigkill().await;
    let killed = Instant::now();
    let results = join_all(tasks).await;
    let n = (per * senders.len()) as i64;
    // How long the clients of A were without service: the first ack each
    // of A's senders got after the kill.
    let senders_back = results[..3]
        .iter()
        .filter_map(|acks| acks.iter().find(|a| a.at > killed).map(|a| a.at - killed))
        .max()
        .unwrap_or_default();
    let mut received = Vec::new();
    for s in [alice, carol, bob] {
        received.push(s.finish(n).await);
    }
    let failed = ledger.failures();
    assert!(
        !failed.is_empty(),
        "the kill hit no send: the storm was over too soon"
    );
    for r in &received[..2] {
        assert!(
            r.resumes >= 1,
            "{}: its stream through the killed node was never cut",
            r.name
        );
    }
    let subs_back = received[..2]
        .iter()
        .filter_map(|r| {
            r.arrivals
                .iter()
                .find(|t| **t > killed)
                .map(|t| *t - killed)
        })
        .max()
        .unwrap_or_default();
    let (rows, last_seq) = traffic::stored(&c.db, &c.chat).await;
    let outcome = traffic::verify("node_sigkill", &ledger.acks(), &rows, last_seq, &received);
    let retried: std::collections::HashSet<&str> = failed.iter().map(|f| f.key.as_str()).collect();
    traffic::report(
        "node_sigkill",
        &outcome,
        &ledger,
        &[
            ("keys retried on the other node", retried.len().to_string()),
            (
                "A's senders acked again after the kill within",
                ms(senders_back),
            ),
            (
                "A's subscribers received again after the kill within",
                ms(subs_back),
            ),
        ],
    );
}

/// SIGTERM on node A while sends are in flight (held at a row lock in
/// PostgreSQL, so they really are in flight): A stops accepting, its streams
/// end with UNAVAILABLE at once (clients resume on B), the in-flight sends
/// finish and are acknowledged, and A exits. Then, with sends held past
/// SHUTDOWN_GRACE, a node still exits within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm() {
    let grace = Duration::from_secs(3);
    let Some(mut c) = Cluster::start(&[("SHUTDOWN_GRACE", "3s")]).await else {
        return;
    };
    let ledger = Ledger::default();
    let alice = c.subscriber("alice@A", 0, &[&c.a, &c.b]).await;
    let bob = c.subscriber("bob@B", 1, &[&c.b]).await;
    let warm = c.sender("warm", 2, &[&c.b], &ledger);
    join_all(vec![warm.spawn_burst(0..5)]).await;

    // 1. Four sends in flight on A, held at the chat's row lock.
    let lock = c.db.begin().await.expect("begin");
    let hold_chat = || {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT last_seq FROM chats WHERE id = $1 FOR UPDATE",
            [c.chat.clone().into()],
        )
    };
    lock.execute_raw(hold_chat())
        .await
        .expect("lock the chat row");
    let in_flight = c.sender("inflight", 0, &[&c.a, &c.b], &ledger);
    let held = 4;
    let tasks: Vec<_> = (0..held).map(|i| in_flight.spawn_burst(i..i + 1)).collect();
    // Group commit: the first send's transaction waits on the lock, the
    // others queue behind it in A's committer.
    let a_addr = c.a.addr;
    poll("sends waiting on the lock", WAIT, || async {
        (c.lock_waiters().await >= 1 && sends_pending(a_addr).await >= held as f64).then_some(())
    })
    .await;
    c.a.sigterm();
    let term = Instant::now();
    let addr = c.a.addr;
    poll("A to stop accepting", WAIT, || async {
        harness::refuses_connections(addr).await.then_some(())
    })
    .await;
    let closed = term.elapsed();
    // Streams end with a status the client resumes from, while the sends
    // are still held.
    poll("alice's stream on A to end", WAIT, || async {
        (!alice.ends().is_empty()).then_some(())
    })
    .await;
    let stream_end = alice.ends()[0].clone();
    assert_eq!(
        stream_end.0,
        Code::Unavailable,
        "stream end on SIGTERM: {stream_end:?}"
    );
    assert!(c.lock_waiters().await >= 1, "the held sends finished early");
    lock.rollback().await.expect("release the lock");
    let held_acks: Vec<_> = join_all(tasks).await.into_iter().flatten().collect();
    for a in &held_acks {
        assert_eq!(
            a.target, 0,
            "in-flight send {} was not acknowledged by A",
            a.key
        );
    }
    assert!(
        ledger.failures().is_empty(),
        "in-flight sends failed: {:?}",
        ledger.failures()
    );
    let status =
        c.a.wait_exit(grace + Duration::from_secs(5))
            .await
            .expect("A did not exit");
    let exited = term.elapsed();
    assert!(status.success(), "A exited with {status}");
    assert!(
        exited < grace + Duration::from_secs(2),
        "A took {exited:?} to exit"
    );

    // 2. A node whose sends stay held past the grace period still exits
    // within it (plus a little); those sends are retried on B.
    let mut a2 = Node::start("A2", &c.config).await;
    let lock = c.db.begin().await.expect("begin");
    lock.execute_raw(hold_chat())
        .await
        .expect("lock the chat row");
    let stuck = c.sender("stuck", 2, &[&a2, &c.b], &ledger);
    let tasks: Vec<_> = (0..2).map(|i| stuck.spawn_burst(i..i + 1)).collect();
    let a2_addr = a2.addr;
    poll("sends waiting on the lock", WAIT, || async {
        (c.lock_waiters().await >= 1 && sends_pending(a2_addr).await >= 2.0).then_some(())
    })
    .await;
    a2.sigterm();
    let term2 = Instant::now();
    let status2 = a2.wait_exit(grace + Duration::from_secs(5)).await;
    let exited2 = term2.elapsed();
    lock.rollback().await.expect("release the lock");
    assert!(
        status2.is_some(),
        "A2 did not exit within SHUTDOWN_GRACE ({grace:?}) + 5 s while sends were held"
    );
    assert!(
        exited2 >= grace - Duration::from_millis(100),
        "A2 exited before the grace period: {exited2:?}"
    );
    join_all(tasks).await;
    join_all(vec![warm.spawn_burst(5..10)]).await;

    let acks = ledger.acks();
    let n = acks.len() as i64;
    let mut received = Vec::new();
    for s in [alice, bob] {
        received.push(s.finish(n).await);
    }
    assert!(received[0].resumes >= 1, "alice never resumed on B");
    let (rows, last_seq) = traffic::stored(&c.db, &c.chat).await;
    let outcome = traffic::verify("sigterm", &acks, &rows, last_seq, &received);
    traffic::report(
        "sigterm",
        &outcome,
        &ledger,
        &[
            ("stopped accepting after SIGTERM within", ms(closed)),
            (
                "stream end status",
                format!("{:?} {:?}", stream_end.0, stream_end.1),
            ),
            (
                "held in-flight sends acknowledged by A",
                format!("{}/{held}", held_acks.len()),
            ),
            ("exit after SIGTERM (sends released)", ms(exited)),
            (
                "exit after SIGTERM (sends held past the 3 s grace)",
                ms(exited2),
            ),
        ],
    );
}
