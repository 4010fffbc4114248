//! Several nodes sharing one Postgres and one Redis: every subscriber on
//! every node receives every message exactly once, in seq order, whichever
//! node accepted it — also when a node is killed and its subscribers resume
//! on another one.
//!
//! Postgres + Redis only (the embedded backend is a single node by design).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;

use tidings::config::Config;
use tidings::proto::messages_service_client::MessagesServiceClient;
use tidings::proto::{self, SendMessageRequest};
use tidings::startup::Application;
use tokio::io::AsyncBufReadExt as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::helpers::*;
use crate::realtime::{Events, open_events, open_events_at};

/// An extra in-process node on the same storage as `config`.
struct Node {
    channel: Channel,
    shutdown: CancellationToken,
}

impl Node {
    async fn start(config: &Config) -> Node {
        let app = Application::build(config.clone())
            .await
            .expect("build node");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run());
        Node {
            channel: connect(addr).await,
            shutdown,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A node in a child process, so it can be killed for real (SIGKILL).
struct ProcessNode {
    child: tokio::process::Child,
    channel: Channel,
}

impl ProcessNode {
    async fn start(config: &Config) -> ProcessNode {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("--listen-addr")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&config.data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", config.database_url.as_ref().unwrap())
            .env("REDIS_URL", config.redis_url.as_ref().unwrap())
            .env("REDIS_KEY_PREFIX", &config.redis_key_prefix)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the tidings binary");
        // Ready when it says it is listening (an event, not a timer).
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("listening") {
                    return;
                }
            }
            panic!("node exited before listening");
        })
        .await
        .expect("node did not start listening in time");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ProcessNode {
            child,
            channel: connect(addr).await,
        }
    }
}

fn postgres_only() -> bool {
    postgres_services().is_some()
}

/// Sends `count` messages from `user` through `channel`, each with its own
/// idempotency key, retrying a send until it is acknowledged (the node may
/// be killed under it). Returns the acknowledged ids.
async fn send_all(
    channel: Channel,
    token: String,
    chat: String,
    tag: String,
    count: usize,
    fallback: Option<Channel>,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    let mut client = MessagesServiceClient::new(channel);
    for i in 0..count {
        let req = SendMessageRequest {
            chat_id: chat.clone(),
            content: format!("{tag} #{i}"),
            idempotency_key: format!("{tag}-{i}"),
            ..Default::default()
        };
        let mut tries = 0;
        loop {
            match client.send_message(authed(req.clone(), &token)).await {
                Ok(r) => {
                    ids.push(r.into_inner().message.unwrap().id);
                    break;
                }
                Err(e) => {
                    tries += 1;
                    assert!(tries < 5, "send kept failing: {e:?}");
                    // The node is gone: retry the same key on the fallback.
                    let fb = fallback
                        .clone()
                        .unwrap_or_else(|| panic!("send failed: {e:?}"));
                    client = MessagesServiceClient::new(fb);
                }
            }
        }
    }
    ids
}

fn assert_exactly_once_in_order(who: &str, got: &[proto::Message], expected_ids: &HashSet<String>) {
    let seqs: Vec<i64> = got.iter().map(|m| m.seq).collect();
    let want: Vec<i64> = (1..=expected_ids.len() as i64).collect();
    assert_eq!(seqs, want, "{who}: seqs out of order, missing or repeated");
    let ids: HashSet<String> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        &ids, expected_ids,
        "{who}: not exactly the acknowledged messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_every_message_to_every_subscriber_exactly_once_in_order() {
    if !postgres_only() {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let node2 = Node::start(&app.config).await;
    let node3 = Node::start(&app.config).await;
    let channels = [
        app.channel.clone(),
        node2.channel.clone(),
        node3.channel.clone(),
    ];

    let users = [
        app.register("mn_a").await,
        app.register("mn_b").await,
        app.register("mn_c").await,
    ];
    let chat = app
        .group_chat(&users[0], "multi", &[&users[1], &users[2]])
        .await;

    // Two subscribers per node, live before anything is sent.
    let mut subs: Vec<(String, Events)> = Vec::new();
    for (n, channel) in channels.iter().enumerate() {
        for u in [&users[n], &users[(n + 1) % 3]] {
            subs.push((
                format!("node{} {}", n + 1, u.username),
                open_events(channel, u, &[]).await.unwrap(),
            ));
        }
    }

    // 1,080 messages, sent concurrently by every user through every node.
    let per_sender = 120;
    let mut senders = Vec::new();
    for (n, channel) in channels.iter().enumerate() {
        for u in &users {
            senders.push(tokio::spawn(send_all(
                channel.clone(),
                u.token.clone(),
                chat.clone(),
                format!("n{n}-{}", u.username),
                per_sender,
                None,
            )));
        }
    }
    let mut acked = HashSet::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert_eq!(acked.len(), 9 * per_sender);

    let readers: Vec<_> = subs
        .into_iter()
        .map(|(who, mut events)| {
            let n = acked.len();
            tokio::spawn(async move { (who, events.messages(n).await) })
        })
        .collect();
    for r in readers {
        let (who, got) = r.await.unwrap();
        assert_exactly_once_in_order(&who, &got, &acked);
    }
    assert_eq!(
        app.all_messages(&users[0], &chat).await.total as usize,
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_subscribers_resume_on_another_node_and_miss_nothing() {
    if !postgres_only() {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let mut doomed = ProcessNode::start(&app.config).await;
    let (a, b) = (app.register("kill_a").await, app.register("kill_b").await);
    let chat = app.direct_chat(&a, &b).await;

    // b watches through the node that will die; a sends through node 1.
    let mut watching = open_events(&doomed.channel, &b, &[]).await.unwrap();
    let first = send_all(
        app.channel.clone(),
        a.token.clone(),
        chat.clone(),
        "before".into(),
        200,
        None,
    );
    let first = tokio::spawn(first);

    // Read part of the burst, then the node dies under the stream.
    let mut seen = watching.messages(50).await;
    doomed.child.kill().await.expect("SIGKILL the node");
    // The stream fails (the connection is gone)...
    loop {
        match watching.next_item().await {
            Ok(Some(proto::Event {
                kind: Some(proto::event::Kind::Message(m)),
            })) => seen.push(m),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    // ...and b resumes on node 1 from the last seq it has.
    let last = seen.last().map_or(0, |m| m.seq);
    let mut resumed = open_events(&app.channel, &b, &[(&chat, last)])
        .await
        .unwrap();
    let mut acked: HashSet<String> = first.await.unwrap().into_iter().collect();
    acked.extend(
        send_all(
            app.channel.clone(),
            a.token.clone(),
            chat.clone(),
            "after".into(),
            20,
            None,
        )
        .await,
    );
    let rest = resumed.messages(acked.len() - seen.len()).await;
    seen.extend(rest);
    assert_exactly_once_in_order("b", &seen, &acked);
}

/// Changes (edits here) made through node 1 while b watches through a node
/// that is SIGKILLed mid-burst: b resumes on node 1 from the last change it
/// has and gets every change exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_streams_resume_changes_on_another_node() {
    if !postgres_only() {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let mut doomed = ProcessNode::start(&app.config).await;
    let (a, b) = (app.register("chg_a").await, app.register("chg_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let m = app.send(&a, &chat, "v0").await;
    let start = app.chat_of(&b, &chat).await.unwrap().last_change;
    let mut watching = open_events_at(&doomed.channel, &b, &[(&chat, m.seq, Some(start))])
        .await
        .unwrap();
    const EDITS: i64 = 150;
    let editing = {
        let (channel, token, id) = (app.channel.clone(), a.token.clone(), m.id.clone());
        tokio::spawn(async move {
            let mut client = MessagesServiceClient::new(channel);
            for i in 1..=EDITS {
                let req = proto::EditMessageRequest {
                    message_id: id.clone(),
                    content: format!("v{i}"),
                };
                client
                    .edit_message(authed(req, &token))
                    .await
                    .expect("edit");
            }
        })
    };
    let mut seen: Vec<i64> = watching
        .changes(40)
        .await
        .iter()
        .map(|c| c.change_seq)
        .collect();
    doomed.child.kill().await.expect("SIGKILL the node");
    loop {
        match watching.next_item().await {
            Ok(Some(proto::Event {
                kind: Some(proto::event::Kind::Change(c)),
            })) => seen.push(c.change_seq),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let last = *seen.last().unwrap();
    let mut resumed = open_events_at(&app.channel, &b, &[(&chat, m.seq, Some(last))])
        .await
        .unwrap();
    editing.await.unwrap();
    let rest = resumed.changes((start + EDITS - last) as usize).await;
    seen.extend(rest.iter().map(|c| c.change_seq));
    assert_eq!(
        seen,
        ((start + 1)..=(start + EDITS)).collect::<Vec<_>>(),
        "every change once, in order, across the kill"
    );
    // A replayed edit carries the text as it is now.
    if let Some(c) = rest.last() {
        match &c.kind {
            Some(proto::chat_change::Kind::Edited(e)) => {
                assert_eq!(e.content, format!("v{EDITS}"))
            }
            other => panic!("the last change is the last edit: {other:?}"),
        }
    }
}

/// A block made on one node applies at once on another: its streams hide
/// the blocked sender and its send check refuses the direct chat, with no
/// wait for a cache to expire (AUTH_CACHE_TTL is set far beyond the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_made_on_one_node_applies_at_once_on_another() {
    if !postgres_only() {
        return;
    }
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.auth_cache_ttl = std::time::Duration::from_secs(3600)
    })
    .await;
    let other = Node::start(&app.config).await;
    let (a, b, c) = (
        app.register("blk_a").await,
        app.register("blk_b").await,
        app.register("blk_c").await,
    );
    let dm = app.direct_chat(&a, &b).await;
    let room = app.group_chat(&c, "room", &[&a, &b]).await;
    // Node 2 has read both users' (empty) block sets into its cache.
    let mut on_other = MessagesServiceClient::new(other.channel.clone());
    let send = |chat: &str, content: &str| {
        authed(
            SendMessageRequest {
                chat_id: chat.into(),
                content: content.into(),
                ..Default::default()
            },
            &b.token,
        )
    };
    on_other.send_message(send(&dm, "before")).await.unwrap();
    let mut a_there = open_events(&other.channel, &a, &[]).await.unwrap();

    app.block(&a, &b.id).await.expect("BlockUser on node 1");
    // Node 2's stream hears of it (so node 2's watcher has run).
    let change = a_there
        .next_where(|k| match k {
            proto::event::Kind::BlockChanged(x) => Some(x),
            _ => None,
        })
        .await;
    assert!(change.blocked);
    let refused = on_other.send_message(send(&dm, "after")).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let sent = on_other
        .send_message(send(&room, "in the room"))
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    let got = a_there.next_message().await;
    assert_eq!(got.id, sent.id);
    assert!(got.hidden && got.content.is_empty(), "{got:?}");
}
