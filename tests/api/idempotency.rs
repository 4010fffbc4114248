//! Idempotent SendMessage: keys per sender, under concurrency, across
//! restarts and with the fast-path cache gone.

use std::collections::HashSet;

use tidings::proto::messages_service_client::MessagesServiceClient;
use tidings::proto::{GetMeRequest, Message, SendMessageRequest};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, TestUser, authed, connect, delete_redis_keys, expect_code, spawn_app,
    spawn_app_with,
};

both_backends!(
    repeated_key_returns_the_original_message,
    key_reuse_with_other_content_or_chat_is_rejected,
    keys_are_scoped_to_the_sender,
    empty_key_never_deduplicates,
    key_length_is_limited,
    failed_send_does_not_consume_the_key,
    concurrent_duplicates_make_one_message,
    racing_keys_with_different_contents_keep_exact_answers,
    survives_a_server_restart,
    survives_losing_the_fast_path_cache,
    retry_announces_a_stored_but_unannounced_message,
    a_key_raced_across_committers_is_stored_once,
);

fn same_message(a: &Message, b: &Message) {
    assert_eq!(a.id, b.id, "same message id");
    assert_eq!(a.seq, b.seq, "same seq");
    assert_eq!(a.content, b.content);
    assert_eq!(a.user_id, b.user_id);
    assert_eq!(a.chat_id, b.chat_id);
    assert_eq!(a.sent_at, b.sent_at, "same sent_at");
}

async fn setup(app: &TestApp) -> (TestUser, TestUser, String) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    (alice, bob, chat_id)
}

async fn repeated_key_returns_the_original_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;

    let first = app
        .try_send(&alice, &chat_id, "hello", "key-1")
        .await
        .unwrap();
    for _ in 0..3 {
        let again = app
            .try_send(&alice, &chat_id, "hello", "key-1")
            .await
            .unwrap();
        same_message(&first, &again);
    }
    let listed = app.all_messages(&bob, &chat_id).await;
    assert_eq!(listed.total, 1);
    assert_eq!(listed.messages[0].id, first.id);
    // The next new message gets the next seq: retries consumed none.
    assert_eq!(
        app.try_send(&alice, &chat_id, "hello", "key-2")
            .await
            .unwrap()
            .seq,
        2
    );
}

async fn key_reuse_with_other_content_or_chat_is_rejected(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let other_chat = app.group_chat(&alice, "other", &[&bob]).await;

    let first = app
        .try_send(&alice, &chat_id, "hello", "key-1")
        .await
        .unwrap();
    let other_content = app.try_send(&alice, &chat_id, "hello!", "key-1").await;
    expect_code(other_content, Code::FailedPrecondition, "");
    let other_chat_result = app.try_send(&alice, &other_chat, "hello", "key-1").await;
    expect_code(other_chat_result, Code::FailedPrecondition, "");

    assert_eq!(app.all_messages(&bob, &chat_id).await.total, 1);
    assert_eq!(app.all_messages(&bob, &other_chat).await.total, 0);
    // The original is still what the key answers.
    let again = app
        .try_send(&alice, &chat_id, "hello", "key-1")
        .await
        .unwrap();
    same_message(&first, &again);
}

async fn keys_are_scoped_to_the_sender(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;

    let from_alice = app
        .try_send(&alice, &chat_id, "hello", "shared-key")
        .await
        .unwrap();
    let from_bob = app
        .try_send(&bob, &chat_id, "hello", "shared-key")
        .await
        .unwrap();
    assert_ne!(
        from_alice.id, from_bob.id,
        "another sender's key is another message"
    );
    assert_eq!((from_alice.seq, from_bob.seq), (1, 2));
    assert_eq!(from_bob.user_id, bob.id);
    // Each key still answers for its own sender.
    let again = app
        .try_send(&bob, &chat_id, "hello", "shared-key")
        .await
        .unwrap();
    same_message(&from_bob, &again);
    assert_eq!(app.all_messages(&alice, &chat_id).await.total, 2);
}

async fn empty_key_never_deduplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let a = app.try_send(&alice, &chat_id, "same", "").await.unwrap();
    let b = app.try_send(&alice, &chat_id, "same", "").await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(app.all_messages(&bob, &chat_id).await.total, 2);
}

async fn key_length_is_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let too_long = "k".repeat(129);
    let r = app.try_send(&alice, &chat_id, "hello", &too_long).await;
    expect_code(r, Code::InvalidArgument, "idempotency_key");
    assert_eq!(app.all_messages(&bob, &chat_id).await.total, 0);

    let longest = "k".repeat(128);
    let first = app
        .try_send(&alice, &chat_id, "hello", &longest)
        .await
        .unwrap();
    let again = app
        .try_send(&alice, &chat_id, "hello", &longest)
        .await
        .unwrap();
    same_message(&first, &again);
}

async fn failed_send_does_not_consume_the_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let carol = app.register("carol").await;
    let not_mine = app.direct_chat(&bob, &carol).await;

    let blank = app.try_send(&alice, &chat_id, "   ", "key").await;
    expect_code(blank, Code::InvalidArgument, "content");
    let forbidden = app.try_send(&alice, &not_mine, "hello", "key").await;
    expect_code(forbidden, Code::NotFound, "");

    let m = app
        .try_send(&alice, &chat_id, "hello", "key")
        .await
        .expect("the key is still free");
    assert_eq!(m.seq, 1);
    let again = app
        .try_send(&alice, &chat_id, "hello", "key")
        .await
        .unwrap();
    same_message(&m, &again);
}

async fn concurrent_duplicates_make_one_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    // Four separate connections, so the duplicates really race in the server.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(MessagesServiceClient::new(connect(app.addr).await));
    }

    for round in 0..3 {
        let key = format!("race-{round}");
        let content = format!("raced message {round}");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let mut client = clients[i % clients.len()].clone();
            let req = authed(
                SendMessageRequest {
                    chat_id: chat_id.clone(),
                    content: content.clone(),
                    idempotency_key: key.clone(),
                    ..Default::default()
                },
                &alice.token,
            );
            tasks.spawn(async move { client.send_message(req).await });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let msg = joined
                .expect("task")
                .unwrap_or_else(|s| panic!("a concurrent duplicate failed: {s:?}"))
                .into_inner()
                .message
                .expect("message");
            results.push(msg);
        }
        assert_eq!(results.len(), 16);
        let ids: HashSet<_> = results.iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids.len(), 1, "all 16 got the same message: {ids:?}");
        for m in &results {
            same_message(&results[0], m);
        }
        assert_eq!(results[0].seq, round + 1, "exactly one seq used per round");

        let listed = app.all_messages(&bob, &chat_id).await;
        assert_eq!(listed.total as i64, round + 1, "exactly one row per key");
        assert_eq!(listed.messages[0].id, results[0].id);
    }
}

/// Sends race with unique keys, no keys, repeated keys and reused keys with
/// other content, so the group committer sees them mixed in its batches.
/// Every caller still gets the exact answer, and the stored seqs are gapless.
async fn racing_keys_with_different_contents_keep_exact_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(MessagesServiceClient::new(connect(app.addr).await));
    }
    // (key, content) per send: 20 unique keys, 10 without a key, 5 keys sent
    // 3 times with one content, 5 keys sent with two different contents.
    let mut sends: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        sends.push((format!("unique-{i}"), format!("unique {i}")));
    }
    for i in 0..10 {
        sends.push((String::new(), format!("no key {i}")));
    }
    for i in 0..5 {
        for _ in 0..3 {
            sends.push((format!("same-{i}"), format!("same {i}")));
        }
        sends.push((format!("clash-{i}"), format!("clash {i} first")));
        sends.push((format!("clash-{i}"), format!("clash {i} second")));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, (key, content)) in sends.iter().cloned().enumerate() {
        let mut client = clients[n % clients.len()].clone();
        let req = authed(
            SendMessageRequest {
                chat_id: chat_id.clone(),
                content: content.clone(),
                idempotency_key: key.clone(),
                ..Default::default()
            },
            &alice.token,
        );
        tasks.spawn(async move {
            let result = client.send_message(req).await;
            (
                key,
                content,
                result.map(|r| r.into_inner().message.expect("message")),
            )
        });
    }
    // Per key: (content sent, answer) of every send with it.
    type Answers = Vec<(String, Result<Message, Code>)>;
    let mut by_key: std::collections::HashMap<String, Answers> = std::collections::HashMap::new();
    let mut unkeyed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, content, result) = joined.expect("task");
        let result = result.map_err(|s| s.code());
        if key.is_empty() {
            unkeyed.push(result.expect("a send without a key succeeds"));
        } else {
            by_key.entry(key).or_default().push((content, result));
        }
    }
    let mut stored_ids = HashSet::new();
    for m in &unkeyed {
        stored_ids.insert(m.id.clone());
    }
    for (key, answers) in &by_key {
        let ok: Vec<&Message> = answers
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect();
        if key.starts_with("clash-") {
            // The first one stored wins; the other content is refused.
            assert_eq!(
                ok.len(),
                1,
                "{key}: exactly one content stored: {answers:?}"
            );
            let refused: Vec<_> = answers.iter().filter(|(_, r)| r.is_err()).collect();
            assert_eq!(refused.len(), 1, "{key}: {answers:?}");
            assert_eq!(refused[0].1, Err(Code::FailedPrecondition), "{key}");
            assert_ne!(
                refused[0].0, ok[0].content,
                "{key}: the refused one is the other content"
            );
        } else {
            assert_eq!(
                ok.len(),
                answers.len(),
                "{key}: every repeat succeeds: {answers:?}"
            );
            for (content, r) in answers {
                assert_eq!(&r.as_ref().unwrap().content, content);
                same_message(ok[0], r.as_ref().unwrap());
            }
        }
        stored_ids.insert(ok[0].id.clone());
    }
    // 20 unique + 10 unkeyed + 5 same + 5 clash = 40 messages.
    assert_eq!(stored_ids.len(), 40);
    let listed = app.all_messages(&bob, &chat_id).await;
    assert_eq!(listed.total, 40, "one row per distinct message");
    let mut seqs: Vec<i64> = listed.messages.iter().map(|m| m.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "seqs gapless");
    let listed_ids: HashSet<String> = listed.messages.into_iter().map(|m| m.id).collect();
    assert_eq!(
        listed_ids, stored_ids,
        "the answers name the stored messages"
    );
}

async fn survives_a_server_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let first = app
        .try_send(&alice, &chat_id, "before restart", "key")
        .await
        .unwrap();

    app.restart().await;

    // Tokens stay valid across a restart (same secret).
    app.users
        .clone()
        .get_me(authed(GetMeRequest {}, &alice.token))
        .await
        .expect("token valid after restart");
    let again = app
        .try_send(&alice, &chat_id, "before restart", "key")
        .await
        .unwrap();
    same_message(&first, &again);
    let changed = app.try_send(&alice, &chat_id, "changed", "key").await;
    expect_code(changed, Code::FailedPrecondition, "");
    let next = app
        .try_send(&alice, &chat_id, "after restart", "key-2")
        .await
        .unwrap();
    assert_eq!(next.seq, 2, "seq continues after a restart");
    let listed = app.all_messages(&bob, &chat_id).await;
    assert_eq!(listed.total, 2);
}

async fn survives_losing_the_fast_path_cache(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let first = app
        .try_send(&alice, &chat_id, "remember me", "key")
        .await
        .unwrap();

    match backend {
        Backend::Postgres => {
            // Delete this test's Redis keys (never the whole server's).
            let (url, prefix) = app.redis().expect("redis for the postgres backend");
            let deleted = delete_redis_keys(url, prefix)
                .await
                .expect("delete redis keys");
            assert!(
                deleted > 0,
                "the idempotency fast path keeps keys under {prefix}"
            );
        }
        // The embedded cache is in-process: a restart loses it.
        Backend::Sqlite => app.restart().await,
    }

    let again = app
        .try_send(&alice, &chat_id, "remember me", "key")
        .await
        .unwrap();
    same_message(&first, &again);
    let changed = app
        .try_send(&alice, &chat_id, "something else", "key")
        .await;
    expect_code(changed, Code::FailedPrecondition, "");
    // Concurrent retries with the cache cold still make no second row.
    if backend == Backend::Postgres {
        let (url, prefix) = app.redis().unwrap();
        delete_redis_keys(url, prefix).await.unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = app.messages.clone();
        let req = authed(
            SendMessageRequest {
                chat_id: chat_id.clone(),
                content: "remember me".into(),
                idempotency_key: "key".into(),
                ..Default::default()
            },
            &alice.token,
        );
        tasks.spawn(async move { client.send_message(req).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let m = joined
            .unwrap()
            .expect("retry")
            .into_inner()
            .message
            .unwrap();
        same_message(&first, &m);
    }
    assert_eq!(app.all_messages(&bob, &chat_id).await.total, 1);
}

/// A node stored a message but died before announcing it to live streams
/// (and before answering): the client's retry with the same key announces
/// it, so subscribers get it now rather than when the chat's next message
/// reveals the gap.
async fn retry_announces_a_stored_but_unannounced_message(backend: Backend) {
    use tidings::store::messages::NewMessage;
    let app = spawn_app(backend).await;
    let (alice, bob, chat_id) = setup(&app).await;
    let mut sub = app.subscribe(&bob, &chat_id, 0).await;
    // Stored the way the send path stores it, but never published.
    let stored = app
        .state
        .store
        .append_message(NewMessage {
            id: tidings::domain::new_id(),
            chat_id: chat_id.clone(),
            sender_id: alice.id.clone(),
            idempotency_key: Some("lost-ack".into()),
            content: "hello".into(),
            created_at: tidings::domain::now_micros(),
            reply_to_id: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
        })
        .await
        .expect("store the message");
    let again = app
        .try_send(&alice, &chat_id, "hello", "lost-ack")
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), again.seq), (stored.id.as_str(), 1));
    let got = sub.next().await;
    assert_eq!((got.message_id.as_str(), got.seq), (stored.id.as_str(), 1));
    // A further retry announces it again; the stream does not repeat it.
    app.try_send(&alice, &chat_id, "hello", "lost-ack")
        .await
        .unwrap();
    let next = app.send(&alice, &chat_id, "after").await;
    assert_eq!(
        sub.next().await.seq,
        next.seq,
        "the stream repeated a message"
    );
}

/// With several committers, two chats of one sender can belong to different
/// committers, whose batches then race for the same (sender, key) in the
/// unique index. Each caller must still get the exact answer: one message
/// stored, the send to the other chat refused, whichever committer wins.
async fn a_key_raced_across_committers_is_stored_once(backend: Backend) {
    const COMMITTERS: usize = 4;
    let app = spawn_app_with(backend, |c| c.send_committers = COMMITTERS).await;
    let (alice, bob, first) = setup(&app).await;
    let shard = |chat: &str| tidings::services::messages::commit::shard_of(chat, COMMITTERS);
    // A second chat that another committer owns (1 in 4 rooms share the
    // first chat's committer; 20 tries all sharing it would be a bug).
    let mut second = None;
    for i in 0..20 {
        let room = app.group_chat(&alice, &format!("room {i}"), &[&bob]).await;
        if shard(&room) != shard(&first) {
            second = Some(room);
            break;
        }
    }
    let second = second.expect("a chat owned by another committer");
    let mut a = MessagesServiceClient::new(connect(app.addr).await);
    let mut b = MessagesServiceClient::new(connect(app.addr).await);
    for round in 0..20 {
        let key = format!("raced-{round}");
        let req = |chat: &str| {
            authed(
                SendMessageRequest {
                    chat_id: chat.to_owned(),
                    content: format!("round {round}"),
                    idempotency_key: key.clone(),
                    ..Default::default()
                },
                &alice.token,
            )
        };
        let (ra, rb) = tokio::join!(a.send_message(req(&first)), b.send_message(req(&second)));
        let answers = [ra.map(|r| r.into_inner()), rb.map(|r| r.into_inner())];
        let ok: Vec<_> = answers.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok.len(), 1, "{key}: exactly one send stored: {answers:?}");
        let refused: Vec<Code> = answers
            .iter()
            .filter_map(|r| r.as_ref().err().map(|s| s.code()))
            .collect();
        assert_eq!(
            refused,
            vec![Code::FailedPrecondition],
            "{key}: {answers:?}"
        );
    }
    let stored = app.all_messages(&alice, &first).await.total
        + app.all_messages(&alice, &second).await.total;
    assert_eq!(stored, 20, "one message per key across both chats");
}
