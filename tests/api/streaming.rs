//! SubscribeToChat: live delivery, resume, isolation, release, expiry.

use tidings::proto::SubscribeToChatRequest;
use tonic::Code;

use crate::helpers::{
    Backend, JWT_SECRET, WAIT, authed, connect, mint_token, spawn_app, spawn_app_with,
};

both_backends!(
    subscribers_receive_new_messages_in_order,
    resume_replays_then_goes_live_without_gaps,
    streams_are_isolated_per_chat,
    dropping_the_stream_releases_the_subscription,
    subscribe_cancel_cycles_leave_no_subscribers,
    stream_ends_with_unauthenticated_when_the_token_expires,
    concurrent_senders_are_delivered_in_seq_order,
    chats_of_different_committers_each_stay_in_order,
    shutdown_ends_open_streams_with_unavailable,
);

async fn subscribers_receive_new_messages_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let mut bobs = app.subscribe(&bob, &chat_id, 0).await;
    let mut alices = app.subscribe(&alice, &chat_id, 0).await;

    // Sent right after CONNECTED: must be delivered to both.
    let mut sent = Vec::new();
    for (i, user) in [&alice, &bob, &alice, &alice, &bob].into_iter().enumerate() {
        sent.push((user, app.send(user, &chat_id, &format!("live {i}")).await));
    }
    for sub in [&mut bobs, &mut alices] {
        for (user, m) in &sent {
            let frame = sub.next().await;
            assert_eq!(frame.message_id, m.id);
            assert_eq!(frame.chat_id, chat_id);
            assert_eq!(frame.user_id, user.id);
            assert_eq!(frame.username, user.username);
            assert_eq!(frame.content, m.content);
            assert_eq!(frame.seq, m.seq);
            assert_eq!(frame.sent_at, m.sent_at);
            assert!(
                ["SENT", "DELIVERED", "READ"].contains(&frame.status.as_str()),
                "status {:?}",
                frame.status
            );
        }
    }
    let seqs: Vec<i64> = sent.iter().map(|(_, m)| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

async fn resume_replays_then_goes_live_without_gaps(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    for i in 1..=5 {
        app.send(&alice, &chat_id, &format!("before {i}")).await;
    }

    // Plain resume: 3, 4, 5 from storage, then live.
    let mut sub = app.subscribe(&bob, &chat_id, 2).await;
    let replayed: Vec<i64> = sub.take(3).await.iter().map(|m| m.seq).collect();
    assert_eq!(replayed, vec![3, 4, 5]);
    let live = app.send(&alice, &chat_id, "live 6").await;
    let frame = sub.next().await;
    assert_eq!(
        (frame.seq, frame.message_id.as_str()),
        (6, live.id.as_str())
    );
    drop(sub);

    // Resume while messages keep arriving: the switch from replay to live
    // must neither lose nor repeat a message.
    let sender = {
        let messages = app.messages.clone();
        let token = alice.token.clone();
        let chat_id = chat_id.clone();
        tokio::spawn(async move {
            for i in 7..=36 {
                let mut client = messages.clone();
                client
                    .send_message(authed(
                        tidings::proto::SendMessageRequest {
                            chat_id: chat_id.clone(),
                            content: format!("racing {i}"),
                            idempotency_key: String::new(),
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .expect("send while resuming");
            }
        })
    };
    let mut sub = app.subscribe(&bob, &chat_id, 4).await;
    let got: Vec<i64> = sub.take(32).await.iter().map(|m| m.seq).collect();
    assert_eq!(
        got,
        (5..=36).collect::<Vec<_>>(),
        "in order, no gaps, no duplicates"
    );
    sender.await.unwrap();
    // Nothing beyond: the next frame is the next new message.
    let last = app.send(&bob, &chat_id, "the end").await;
    assert_eq!(sub.next().await.message_id, last.id);
}

async fn streams_are_isolated_per_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let ab = app.direct_chat(&alice, &bob).await;
    let ac = app.direct_chat(&alice, &carol).await;
    let mut bobs = app.subscribe(&bob, &ab, 0).await;
    let mut carols = app.subscribe(&carol, &ac, 0).await;

    app.send(&alice, &ab, "for bob").await;
    let for_carol = app.send(&alice, &ac, "for carol").await;
    let for_bob_2 = app.send(&alice, &ab, "for bob again").await;

    let frame = carols.next().await;
    assert_eq!(
        frame.message_id, for_carol.id,
        "carol gets only her chat's messages"
    );
    assert_eq!(frame.content, "for carol");
    let frames = bobs.take(2).await;
    assert_eq!(frames[0].content, "for bob");
    assert_eq!(
        frames[1].message_id, for_bob_2.id,
        "bob never sees carol's chat"
    );
}

async fn dropping_the_stream_releases_the_subscription(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    assert_eq!(app.state.hub.subscriber_count(), 0);

    let sub = app.subscribe(&bob, &chat_id, 0).await;
    app.wait_subscribers("1", |n| *n == 1).await;
    drop(sub);
    app.wait_subscribers("0 after the drop", |n| *n == 0).await;

    // Ten at once, on separate connections too; then all gone.
    let mut subs = Vec::new();
    for i in 0..10 {
        if i % 2 == 0 {
            subs.push(app.subscribe(&alice, &chat_id, 0).await);
        } else {
            let client = tidings::proto::messages_service_client::MessagesServiceClient::new(
                connect(app.addr).await,
            );
            subs.push(
                crate::helpers::subscribe_on(&client, &bob.token, &chat_id, 0)
                    .await
                    .unwrap(),
            );
        }
    }
    app.wait_subscribers("10", |n| *n == 10).await;
    // Every one of them is live.
    let m = app.send(&alice, &chat_id, "to all ten").await;
    for sub in &mut subs {
        assert_eq!(sub.next().await.message_id, m.id);
    }
    subs.truncate(5);
    app.wait_subscribers("5", |n| *n == 5).await;
    subs.clear();
    app.wait_subscribers("0 after dropping all", |n| *n == 0)
        .await;
}

async fn subscribe_cancel_cycles_leave_no_subscribers(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    for i in 0..200 {
        let user = if i % 2 == 0 { &alice } else { &bob };
        let sub = app.subscribe(user, &chat_id, 0).await;
        drop(sub);
    }
    app.wait_subscribers("0 after 200 cycles", |n| *n == 0)
        .await;
    assert_eq!(app.state.hub.subscriber_count(), 0);

    // The hub still works after all that churn.
    let mut sub = app.subscribe(&bob, &chat_id, 0).await;
    let m = app.send(&alice, &chat_id, "still alive").await;
    assert_eq!(sub.next().await.message_id, m.id);
}

async fn stream_ends_with_unauthenticated_when_the_token_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let short = mint_token(&bob.id, 2, JWT_SECRET);
    let started = std::time::Instant::now();
    let mut stream = app
        .messages
        .clone()
        .subscribe_to_chat(authed(
            SubscribeToChatRequest {
                chat_id: chat_id.clone(),
                after_seq: 0,
            },
            &short,
        ))
        .await
        .expect("a still-valid token opens the stream")
        .into_inner();
    let first = stream.message().await.expect("CONNECTED").expect("a frame");
    assert_eq!(first.status, "CONNECTED");
    let live = app.send(&alice, &chat_id, "before expiry").await;

    // The stream keeps delivering until the token expires, then ends with
    // UNAUTHENTICATED — not with OK, and not never.
    let mut delivered = Vec::new();
    let end = tokio::time::timeout(WAIT + std::time::Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(m)) => delivered.push(m.message_id),
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream must end once its token expires");
    let status = end.expect("the stream ended with OK instead of UNAUTHENTICATED");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "not before expiry"
    );
    assert_eq!(
        delivered,
        vec![live.id],
        "messages before expiry were delivered"
    );
    app.wait_subscribers("0 after expiry", |n| *n == 0).await;
}

/// Sends `count` messages ("<label> message <i>") one after the other on
/// `client`, for a task of a concurrent-senders test.
async fn send_many(
    mut client: tidings::proto::messages_service_client::MessagesServiceClient<
        tonic::transport::Channel,
    >,
    chat_id: String,
    token: String,
    count: usize,
    label: String,
) {
    for i in 0..count {
        client
            .send_message(authed(
                tidings::proto::SendMessageRequest {
                    chat_id: chat_id.clone(),
                    content: format!("{label} message {i}"),
                    idempotency_key: String::new(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("concurrent send");
    }
}

async fn concurrent_senders_are_delivered_in_seq_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let mut bobs = app.subscribe(&bob, &chat_id, 0).await;
    let mut alices = app.subscribe(&alice, &chat_id, 0).await;

    // Four senders on four connections race for the chat's next seq; the
    // order they publish in is not the order of their seqs.
    let mut senders = tokio::task::JoinSet::new();
    for task in 0..4 {
        let client = tidings::proto::messages_service_client::MessagesServiceClient::new(
            connect(app.addr).await,
        );
        let token = if task % 2 == 0 {
            alice.token.clone()
        } else {
            bob.token.clone()
        };
        senders.spawn(send_many(
            client,
            chat_id.clone(),
            token,
            25,
            format!("sender {task}"),
        ));
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }

    let stored = app.all_messages(&alice, &chat_id).await;
    assert_eq!(stored.total, 100);
    let mut stored_ids: Vec<(i64, String)> =
        stored.messages.into_iter().map(|m| (m.seq, m.id)).collect();
    stored_ids.sort();
    for sub in [&mut bobs, &mut alices] {
        let got: Vec<(i64, String)> = sub
            .take(100)
            .await
            .into_iter()
            .map(|m| (m.seq, m.message_id))
            .collect();
        let seqs: Vec<i64> = got.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            seqs,
            (1..=100).collect::<Vec<_>>(),
            "in seq order, no gaps, no duplicates"
        );
        assert_eq!(got, stored_ids, "the stream carries the stored messages");
    }
}

/// Sends to chats owned by different committers run side by side; each
/// chat's stream still carries its messages in seq order without gaps.
async fn chats_of_different_committers_each_stay_in_order(backend: Backend) {
    const COMMITTERS: usize = 3;
    const PER_SENDER: usize = 15;
    let app = spawn_app_with(backend, |c| c.send_committers = COMMITTERS).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    // Rooms until three committers own at least one each.
    let mut chats: Vec<String> = Vec::new();
    let mut owners = std::collections::HashSet::new();
    for i in 0..30 {
        let room = app.group_chat(&alice, &format!("room {i}"), &[&bob]).await;
        owners.insert(tidings::services::messages::commit::shard_of(
            &room, COMMITTERS,
        ));
        chats.push(room);
        if owners.len() == COMMITTERS && chats.len() >= 4 {
            break;
        }
    }
    assert_eq!(
        owners.len(),
        COMMITTERS,
        "rooms spread over every committer"
    );
    let mut subs = Vec::new();
    for chat in &chats {
        subs.push(app.subscribe(&bob, chat, 0).await);
    }
    let mut senders = tokio::task::JoinSet::new();
    for (n, chat) in chats.iter().enumerate() {
        for user in [&alice, &bob] {
            let client = tidings::proto::messages_service_client::MessagesServiceClient::new(
                connect(app.addr).await,
            );
            senders.spawn(send_many(
                client,
                chat.clone(),
                user.token.clone(),
                PER_SENDER,
                format!("chat {n}"),
            ));
        }
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }
    let total = 2 * PER_SENDER;
    for (chat, sub) in chats.iter().zip(subs.iter_mut()) {
        let got = sub.take(total).await;
        let seqs: Vec<i64> = got.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=total as i64).collect::<Vec<_>>(),
            "chat {chat}: in seq order, no gaps, no duplicates"
        );
        assert!(got.iter().all(|m| &m.chat_id == chat), "only its own chat");
    }
}

async fn shutdown_ends_open_streams_with_unavailable(backend: Backend) {
    // A grace period longer than the harness waits for a stop: the server
    // can only stop in time by ending its streams itself.
    let mut app = spawn_app_with(backend, |c| {
        c.shutdown_grace = std::time::Duration::from_secs(120)
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let mut sub = app.subscribe(&bob, &chat_id, 0).await;

    app.stop().await;
    match sub.next_item().await {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(other) => panic!("expected UNAVAILABLE at shutdown, got {other:?}"),
    }
}
