//! The clients a fault test drives: senders that retry every message with
//! its idempotency key until it is acknowledged (switching node on failure),
//! subscribers that resume from their last seq after every cut, and the
//! final check: acked = stored = delivered to every subscriber, no duplicate,
//! no gap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use tidings::proto::chats_service_client::ChatsServiceClient;
use tidings::proto::messages_service_client::MessagesServiceClient;
use tidings::proto::users_service_client::UsersServiceClient;
use tidings::proto::{
    CreateChatRequest, CreateUserRequest, SendMessageRequest, SubscribeToChatRequest,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::harness::{WAIT, poll};

/// One call never takes longer than this from the client's side; past it
/// the client gives up on the call and retries (same key).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub fn authed<T>(req: T, token: &str) -> Request<T> {
    let mut req = Request::new(req);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token"),
    );
    req
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub token: String,
}

pub async fn register(channel: &Channel, name: &str) -> User {
    let resp = UsersServiceClient::new(channel.clone())
        .create_user(CreateUserRequest {
            username: name.into(),
            email: format!("{name}@example.com"),
            password: "correct horse battery staple".into(),
        })
        .await
        .unwrap_or_else(|s| panic!("CreateUser {name}: {s:?}"))
        .into_inner();
    User {
        id: resp.user.expect("user").id,
        token: resp.token,
    }
}

/// A group chat of `owner` and `members`.
pub async fn group(channel: &Channel, owner: &User, members: &[&User]) -> String {
    ChatsServiceClient::new(channel.clone())
        .create_chat(authed(
            CreateChatRequest {
                name: "fault".into(),
                member_ids: members.iter().map(|m| m.id.clone()).collect(),
                is_group: true,
                ..Default::default()
            },
            &owner.token,
        ))
        .await
        .expect("CreateChat")
        .into_inner()
        .chat_id
}

/// An acknowledged send.
#[derive(Clone, Debug)]
pub struct Ack {
    pub key: String,
    /// Index of the node (in the sender's target list) that acknowledged it.
    pub target: usize,
    pub id: String,
    pub seq: i64,
    pub at: Instant,
}

/// A failed call as the client saw it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub key: String,
    pub at: Instant,
    pub latency: Duration,
    pub code: Code,
    pub message: String,
}

/// Every ack and failure of every sender of a test.
#[derive(Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<LedgerInner>>,
}

#[derive(Default)]
struct LedgerInner {
    acks: Vec<Ack>,
    failures: Vec<Failure>,
}

impl Ledger {
    pub fn acks(&self) -> Vec<Ack> {
        self.inner.lock().unwrap().acks.clone()
    }

    pub fn ack_count(&self) -> usize {
        self.inner.lock().unwrap().acks.len()
    }

    pub fn failures(&self) -> Vec<Failure> {
        self.inner.lock().unwrap().failures.clone()
    }

    /// Failed calls per status code, with the first message of each, for
    /// the report.
    pub fn codes(&self) -> BTreeMap<String, (usize, String)> {
        let mut codes = BTreeMap::new();
        for f in &self.inner.lock().unwrap().failures {
            codes
                .entry(format!("{:?}", f.code))
                .or_insert((0, f.message.clone()))
                .0 += 1;
        }
        codes
    }

    /// Waits until at least `n` sends were acknowledged.
    pub async fn wait_acks(&self, n: usize) {
        poll(&format!("{n} acknowledged sends"), WAIT, || async {
            (self.ack_count() >= n).then_some(())
        })
        .await
    }
}

/// A client that sends as one user through a list of nodes.
#[derive(Clone)]
pub struct Sender {
    pub name: String,
    pub user: User,
    pub chat_id: String,
    /// Nodes to try, in order; a failed call moves on to the next one, and
    /// the sender stays with the node that last answered.
    pub targets: Vec<Channel>,
    pub ledger: Ledger,
    pub current: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sender {
    /// Sends one message, retrying with the same idempotency key until it is
    /// acknowledged (bounded by [`WAIT`]). Statuses that say the request
    /// itself is wrong fail the test at once.
    pub async fn send_until_acked(&self, key: &str, content: &str) -> Ack {
        let deadline = Instant::now() + WAIT;
        use std::sync::atomic::Ordering::Relaxed;
        let mut target = self.current.load(Relaxed);
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            let mut client = MessagesServiceClient::new(self.targets[target].clone());
            let req = SendMessageRequest {
                chat_id: self.chat_id.clone(),
                content: content.into(),
                idempotency_key: key.into(),
                ..Default::default()
            };
            let result = tokio::time::timeout(
                CALL_TIMEOUT,
                client.send_message(authed(req, &self.user.token)),
            )
            .await;
            let (code, message) = match result {
                Ok(Ok(resp)) => {
                    let m = resp
                        .into_inner()
                        .message
                        .expect("SendMessageResponse.message");
                    assert_eq!(m.content, content, "{}: ack of another message", self.name);
                    let ack = Ack {
                        key: key.to_owned(),
                        target,
                        id: m.id,
                        seq: m.seq,
                        at: Instant::now(),
                    };
                    self.ledger.inner.lock().unwrap().acks.push(ack.clone());
                    self.current.store(target, Relaxed);
                    return ack;
                }
                Ok(Err(status)) => (status.code(), status.message().to_owned()),
                Err(_) => (
                    Code::DeadlineExceeded,
                    "client-side call timeout".to_owned(),
                ),
            };
            assert!(
                matches!(
                    code,
                    Code::Unavailable
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::DeadlineExceeded
                        | Code::Internal
                        | Code::Aborted
                ),
                "{}: send {key} failed with a non-retryable status {code:?}: {message}",
                self.name
            );
            self.ledger.inner.lock().unwrap().failures.push(Failure {
                key: key.to_owned(),
                at: started,
                latency: started.elapsed(),
                code,
                message: message.clone(),
            });
            assert!(
                Instant::now() < deadline,
                "{}: send {key} not acknowledged within {WAIT:?}; last: {code:?} {message}",
                self.name
            );
            target = (target + 1) % self.targets.len();
            // Retry pacing (not synchronisation): don't spin on a dead node.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(400));
        }
    }

    /// Sends messages `range` (key `<name>-<i>`), one after the other.
    pub fn spawn_burst(&self, range: std::ops::Range<usize>) -> JoinHandle<Vec<Ack>> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in range {
                acks.push(this.send_until_acked(&this.key(i), &this.content(i)).await);
            }
            acks
        })
    }

    /// Sends messages from `first` on until `stop` is set (the message in
    /// flight then is still sent until acknowledged). Returns the next index.
    pub fn spawn_until(&self, first: usize, stop: watch::Receiver<bool>) -> JoinHandle<usize> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut i = first;
            while !*stop.borrow() {
                this.send_until_acked(&this.key(i), &this.content(i)).await;
                i += 1;
            }
            i
        })
    }

    pub fn key(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    pub fn content(&self, i: usize) -> String {
        format!("{} #{i}", self.name)
    }
}

/// What a subscriber received, across all its reconnections.
#[derive(Debug)]
pub struct Received {
    pub name: String,
    /// (seq, message id) in arrival order, duplicates included.
    pub messages: Vec<(i64, String)>,
    /// How a stream ended each time it did (before the test was done).
    pub ends: Vec<(Code, String)>,
    /// Successful re-subscriptions after the first one.
    pub resumes: usize,
    /// When each message arrived (parallel to `messages`).
    pub arrivals: Vec<Instant>,
}

/// A live subscriber in the background.
pub struct Subscriber {
    pub name: String,
    progress: watch::Receiver<i64>,
    target: watch::Sender<Option<i64>>,
    ends: Arc<Mutex<Vec<(Code, String)>>>,
    task: JoinHandle<Received>,
}

impl Subscriber {
    /// Subscribes to `chat_id` through `targets[0]` and returns once the
    /// stream is live (its CONNECTED frame arrived). On any cut it resumes
    /// from the last seq it has, trying the next target if one refuses.
    pub async fn start(
        name: &str,
        user: &User,
        chat_id: &str,
        targets: Vec<Channel>,
    ) -> Subscriber {
        let (progress_tx, progress) = watch::channel(0i64);
        let (target, target_rx) = watch::channel(None);
        let (live_tx, live_rx) = tokio::sync::oneshot::channel();
        let ends = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(subscribe_loop(
            name.to_owned(),
            user.token.clone(),
            chat_id.to_owned(),
            targets,
            progress_tx,
            target_rx,
            live_tx,
            ends.clone(),
        ));
        tokio::time::timeout(WAIT, live_rx)
            .await
            .unwrap_or_else(|_| panic!("{name}: stream not live within {WAIT:?}"))
            .expect("subscriber task ended before going live");
        Subscriber {
            name: name.to_owned(),
            progress,
            target,
            ends,
            task,
        }
    }

    /// The highest seq received so far.
    pub fn last_seq(&self) -> i64 {
        *self.progress.borrow()
    }

    /// Waits until a message with seq >= `seq` arrived; returns when.
    pub async fn wait_seq(&self, seq: i64, bound: Duration) -> Instant {
        let mut rx = self.progress.clone();
        tokio::time::timeout(bound, rx.wait_for(|s| *s >= seq))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: seq {seq} not received within {bound:?} (has {})",
                    self.name,
                    self.last_seq()
                )
            })
            .expect("subscriber task ended");
        Instant::now()
    }

    /// How its streams ended so far.
    pub fn ends(&self) -> Vec<(Code, String)> {
        self.ends.lock().unwrap().clone()
    }

    /// Lets it finish once it has everything up to `last_seq`.
    pub async fn finish(self, last_seq: i64) -> Received {
        let _ = self.target.send(Some(last_seq));
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: did not receive up to seq {last_seq} within {WAIT:?} (has {})",
                    self.name,
                    *self.progress.borrow()
                )
            })
            .expect("subscriber task panicked")
    }
}

#[allow(clippy::too_many_arguments)]
async fn subscribe_loop(
    name: String,
    token: String,
    chat_id: String,
    targets: Vec<Channel>,
    progress: watch::Sender<i64>,
    mut target_rx: watch::Receiver<Option<i64>>,
    live: tokio::sync::oneshot::Sender<()>,
    ends: Arc<Mutex<Vec<(Code, String)>>>,
) -> Received {
    let mut got = Received {
        name: name.clone(),
        messages: Vec::new(),
        ends: Vec::new(),
        resumes: 0,
        arrivals: Vec::new(),
    };
    let mut live = Some(live);
    let mut last = 0i64;
    let mut at = 0usize;
    let mut backoff = Duration::from_millis(50);
    let done = |last: i64, target: &Option<i64>| target.is_some_and(|t| last >= t);
    let deadline = Instant::now() + WAIT * 3;
    loop {
        if done(last, &target_rx.borrow()) {
            got.ends = ends.lock().unwrap().clone();
            return got;
        }
        assert!(Instant::now() < deadline, "{name}: gave up resubscribing");
        let mut client = MessagesServiceClient::new(targets[at].clone());
        let req = authed(
            SubscribeToChatRequest {
                chat_id: chat_id.clone(),
                after_seq: last,
            },
            &token,
        );
        let opened = tokio::time::timeout(CALL_TIMEOUT, client.subscribe_to_chat(req)).await;
        let mut stream = match opened {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(_)) | Err(_) => {
                // Node down or refusing: try the next one after a pause.
                at = (at + 1) % targets.len();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(400));
                continue;
            }
        };
        let mut connected = false;
        let end: (Code, String) = loop {
            let item = tokio::select! {
                item = stream.message() => item,
                changed = target_rx.changed() => {
                    if changed.is_ok() && done(last, &target_rx.borrow()) {
                        got.ends = ends.lock().unwrap().clone();
                        return got;
                    }
                    continue;
                }
            };
            match item {
                Ok(Some(m)) if m.message_id == "connection" => {
                    assert_eq!(m.status, "CONNECTED", "{name}: {m:?}");
                    connected = true;
                    backoff = Duration::from_millis(50);
                    match live.take() {
                        Some(tx) => {
                            let _ = tx.send(());
                        }
                        None => got.resumes += 1,
                    }
                }
                Ok(Some(m)) => {
                    assert!(connected, "{name}: a message before CONNECTED");
                    got.messages.push((m.seq, m.message_id));
                    got.arrivals.push(Instant::now());
                    last = last.max(m.seq);
                    progress.send_replace(last);
                    if done(last, &target_rx.borrow()) {
                        got.ends = ends.lock().unwrap().clone();
                        return got;
                    }
                }
                Ok(None) => break (Code::Ok, "stream ended".to_owned()),
                Err(status) => break (status.code(), status.message().to_owned()),
            }
        };
        ends.lock().unwrap().push(end);
        // Resume on the same node first; if it refuses, the next one.
    }
}

/// A stored message row, read straight from the database.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub seq: i64,
    pub key: Option<String>,
}

pub async fn stored(db: &sea_orm::DatabaseConnection, chat_id: &str) -> (Vec<Row>, i64) {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, seq, idempotency_key FROM messages WHERE chat_id = $1 ORDER BY seq",
            [chat_id.into()],
        ))
        .await
        .expect("read the stored messages");
    let rows = rows
        .into_iter()
        .map(|r| Row {
            id: r.try_get("", "id").unwrap(),
            seq: r.try_get("", "seq").unwrap(),
            key: r.try_get("", "idempotency_key").unwrap(),
        })
        .collect();
    let last_seq: i64 = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT last_seq FROM chats WHERE id = $1",
            [chat_id.into()],
        ))
        .await
        .expect("read the chat")
        .expect("the chat row")
        .try_get("", "last_seq")
        .unwrap();
    (rows, last_seq)
}

/// The numbers of one fault run, as the report prints them.
pub struct Outcome {
    pub acked: usize,
    pub stored: usize,
    pub delivered: Vec<(String, usize)>,
}

/// acked = stored = delivered to every subscriber; zero duplicates, zero
/// gaps. `acks` may hold several acks of one key (deliberate re-sends): they
/// must all name the same message.
pub fn verify(
    case: &str,
    acks: &[Ack],
    rows: &[Row],
    chat_last_seq: i64,
    received: &[Received],
) -> Outcome {
    // Stored: seq 1..=n, no gap, no repeat, and the chat's counter agrees.
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let want: Vec<i64> = (1..=rows.len() as i64).collect();
    assert_eq!(seqs, want, "{case}: stored seqs have a gap or a repeat");
    assert_eq!(
        chat_last_seq,
        rows.len() as i64,
        "{case}: the chat's last_seq disagrees with the stored messages"
    );
    // Every stored message has a key (every client send carries one) and
    // each key is stored exactly once.
    let mut by_key: HashMap<&str, &Row> = HashMap::new();
    for r in rows {
        let key = r
            .key
            .as_deref()
            .unwrap_or_else(|| panic!("{case}: stored without a key: {r:?}"));
        assert!(
            by_key.insert(key, r).is_none(),
            "{case}: key {key} stored twice"
        );
    }
    // Acked: every ack names the stored row of its key (same id, same seq),
    // and nothing is stored that was never acknowledged.
    let mut acked_keys = HashSet::new();
    for a in acks {
        let row = by_key
            .get(a.key.as_str())
            .unwrap_or_else(|| panic!("{case}: acked key {} is not stored (lost)", a.key));
        assert_eq!(
            (&row.id, row.seq),
            (&a.id, a.seq),
            "{case}: key {} acked as another message than the stored one",
            a.key
        );
        acked_keys.insert(a.key.as_str());
    }
    assert_eq!(
        acked_keys.len(),
        rows.len(),
        "{case}: stored messages that no client got an ack for"
    );
    // Delivered: every subscriber got exactly 1..=n in order, the stored ids.
    let mut delivered = Vec::new();
    for r in received {
        let seqs: Vec<i64> = r.messages.iter().map(|(s, _)| *s).collect();
        if seqs != want {
            let mut seen = HashSet::new();
            let dups: Vec<i64> = seqs.iter().copied().filter(|s| !seen.insert(*s)).collect();
            let missing: Vec<i64> = want.iter().copied().filter(|s| !seen.contains(s)).collect();
            panic!(
                "{case}: subscriber {} got {} messages, not 1..={} in order: \
                 duplicates {dups:?}, missing {missing:?}",
                r.name,
                seqs.len(),
                rows.len()
            );
        }
        for ((seq, id), row) in r.messages.iter().zip(rows) {
            assert_eq!(
                id, &row.id,
                "{case}: {} got another message at seq {seq}",
                r.name
            );
        }
        delivered.push((r.name.clone(), r.messages.len()));
    }
    Outcome {
        acked: acked_keys.len(),
        stored: rows.len(),
        delivered,
    }
}

/// Prints the run's summary (for docs/RELIABILITY.md).
pub fn report(case: &str, outcome: &Outcome, ledger: &Ledger, extra: &[(&str, String)]) {
    let delivered: Vec<String> = outcome
        .delivered
        .iter()
        .map(|(n, c)| format!("{n}={c}"))
        .collect();
    eprintln!(
        "FAULT {case}: acked={} stored={} delivered=[{}] lost=0 duplicates=0 \
         failed_calls={} codes={:?}",
        outcome.acked,
        outcome.stored,
        delivered.join(" "),
        ledger.failures().len(),
        ledger.codes(),
    );
    for (k, v) in extra {
        eprintln!("FAULT {case}: {k}: {v}");
    }
}

pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
