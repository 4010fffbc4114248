//! Sending, listing and receipts: MessagesService unary calls.

use std::collections::{BTreeMap, HashSet};

use tidings::proto::{ListMessagesRequest, Message, UpdateMessageStatusRequest};
use tonic::{Code, Status};

use crate::chats::get_chat;
use crate::helpers::{Backend, TestApp, TestUser, authed, expect_code, spawn_app, spawn_app_with};

both_backends!(
    send_assigns_sequential_seq_and_sent_status,
    content_validation,
    content_round_trips_byte_for_byte,
    oversized_request_is_rejected_and_nothing_stored,
    request_size_cap_is_configurable,
    list_messages_pages_without_duplicates_or_holes,
    list_messages_cursor_validation,
    status_follows_the_other_members_watermarks,
    status_in_a_group_needs_every_other_member,
    update_status_validation,
);

fn list(chat_id: &str, page: i32, limit: i32) -> ListMessagesRequest {
    ListMessagesRequest {
        chat_id: chat_id.into(),
        page,
        limit,
        ..Default::default()
    }
}

async fn update_status(
    app: &TestApp,
    user: &TestUser,
    message_id: &str,
    status: &str,
) -> Result<tidings::proto::UpdateMessageStatusResponse, Status> {
    app.messages
        .clone()
        .update_message_status(authed(
            UpdateMessageStatusRequest {
                message_id: message_id.into(),
                status: status.into(),
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// seq → status as `user` sees the chat's messages.
async fn statuses(app: &TestApp, user: &TestUser, chat_id: &str) -> BTreeMap<i64, String> {
    app.all_messages(user, chat_id)
        .await
        .messages
        .into_iter()
        .map(|m| (m.seq, m.status))
        .collect()
}

fn expect_statuses(actual: &BTreeMap<i64, String>, expected: &[&str], when: &str) {
    let expected: BTreeMap<i64, String> = expected
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i64 + 1, s.to_string()))
        .collect();
    assert_eq!(actual, &expected, "statuses {when}");
}

async fn send_assigns_sequential_seq_and_sent_status(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let mut ids = HashSet::new();
    for (i, (user, content)) in [
        (&alice, "one"),
        (&alice, "two"),
        (&bob, "three"),
        (&alice, "four"),
    ]
    .into_iter()
    .enumerate()
    {
        let m = app.send(user, &chat_id, content).await;
        assert_eq!(m.seq, i as i64 + 1, "seq is 1, 2, 3... per chat");
        assert_eq!(m.status, "SENT");
        assert_eq!(m.content, content);
        assert_eq!(m.chat_id, chat_id);
        assert_eq!(m.user_id, user.id);
        assert!(m.sent_at.is_some());
        assert!(ids.insert(m.id.clone()), "message ids are unique");
    }

    // Another chat has its own sequence.
    let room = app.group_chat(&alice, "room", &[&bob]).await;
    assert_ne!(room, chat_id);
    assert_eq!(app.send(&bob, &room, "elsewhere").await.seq, 1);
    assert_eq!(app.send(&alice, &chat_id, "five").await.seq, 5);

    let listed = app.all_messages(&bob, &chat_id).await;
    assert_eq!(listed.total, 5);
    let seqs: Vec<i64> = listed.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![5, 4, 3, 2, 1], "newest first");
}

async fn content_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let rejected = [
        String::new(),
        " ".into(),
        " \t\r\n  ".into(),
        "\0".into(),
        "a\0b".into(),
        "x".repeat(4097),
        "é".repeat(4097),
        "😀".repeat(4097),
    ];
    for content in &rejected {
        let r = app.try_send(&alice, &chat_id, content, "").await;
        let shown: String = content.chars().take(10).collect();
        let status = r.expect_err(&format!("content {shown:?} must be rejected"));
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "content {shown:?}: {status:?}"
        );
        assert!(status.message().contains("content"), "{status:?}");
    }
    assert_eq!(
        app.all_messages(&alice, &chat_id).await.total,
        0,
        "nothing stored"
    );

    // Limits count characters, not bytes: 4096 four-byte emoji are fine.
    let accepted = [
        ".".to_string(),
        "x".repeat(4096),
        "é".repeat(4096),
        "😀".repeat(4096),
    ];
    for (i, content) in accepted.iter().enumerate() {
        let m = app
            .try_send(&alice, &chat_id, content, "")
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "content of {} chars must be accepted: {s:?}",
                    content.chars().count()
                )
            });
        assert_eq!(m.seq, i as i64 + 1, "rejected sends consumed no seq");
        assert_eq!(m.content.as_bytes(), content.as_bytes());
    }
    assert_eq!(app.all_messages(&bob, &chat_id).await.total, 4);
}

/// Contents that a careless server would trim, normalise, escape or choke on.
pub fn tricky_contents() -> Vec<String> {
    vec![
        "héllo wörld".into(),
        "😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈".into(),
        // Decomposed and precomposed é must both survive as sent.
        "e\u{301}".into(),
        "\u{e9}".into(),
        "  leading and trailing spaces  ".into(),
        "\ttabbed\n".into(),
        "line1\nline2\r\nline3".into(),
        "'); DROP TABLE messages;--".into(),
        "Robert'); DROP TABLE users; --".into(),
        "1' OR '1'='1".into(),
        "%_\\ LIKE wildcards \\%".into(),
        "<script>alert(1)</script>&amp;".into(),
        "\u{202e}right-to-left override".into(),
        "zero\u{200b}width\u{200d}joiners\u{feff}".into(),
        "中文 日本語 한국어 العربية עברית".into(),
        "\u{1F600}\u{FE0F}\u{20E3}".into(),
        "\\0 not a NUL, \\u0000 neither".into(),
        // Escape sequences spelled out are text (the control characters
        // themselves are refused: tests/api/input.rs).
        "^[[31m not an escape \\x1b[0m".into(),
    ]
}

async fn content_round_trips_byte_for_byte(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let mut sub = app.subscribe(&bob, &chat_id, 0).await;

    let contents = tricky_contents();
    let mut sent: Vec<Message> = Vec::new();
    for content in &contents {
        let m = app.send(&alice, &chat_id, content).await;
        assert_eq!(
            m.content.as_bytes(),
            content.as_bytes(),
            "SendMessage response"
        );
        sent.push(m);
    }

    let listed = app.all_messages(&bob, &chat_id).await;
    assert_eq!(listed.total as usize, contents.len());
    for (m, content) in listed.messages.iter().rev().zip(&contents) {
        assert_eq!(m.content.as_bytes(), content.as_bytes(), "ListMessages");
    }
    for (i, content) in contents.iter().enumerate() {
        let frame = sub.next().await;
        assert_eq!(frame.message_id, sent[i].id);
        assert_eq!(
            frame.content.as_bytes(),
            content.as_bytes(),
            "SubscribeToChat"
        );
    }
    // The SQL-looking content was data: the tables are all still there.
    let chat = get_chat(&app, &alice, &chat_id).await;
    assert_eq!(
        chat.last_message.unwrap().content.as_bytes(),
        contents.last().unwrap().as_bytes()
    );
    app.register("carol").await;
}

async fn oversized_request_is_rejected_and_nothing_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let huge = "x".repeat(1024 * 1024);
    let r = app.try_send(&alice, &chat_id, &huge, "huge").await;
    let status = r.expect_err("a 1 MiB request must be rejected");
    assert_ne!(status.code(), Code::Ok);
    assert_eq!(
        app.all_messages(&bob, &chat_id).await.total,
        0,
        "nothing stored"
    );

    // The connection and the key are still good.
    let m = app
        .try_send(&alice, &chat_id, "small", "huge")
        .await
        .expect("small message");
    assert_eq!(m.seq, 1);
    assert_eq!(m.content, "small");
}

async fn request_size_cap_is_configurable(backend: Backend) {
    // 4096 emoji are valid content (4096 characters) but 16 KiB on the wire:
    // over an 8 KiB cap, only the size can be the reason for rejecting them.
    let app = spawn_app_with(backend, |c| c.max_request_bytes = 8 * 1024).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let big = "😀".repeat(4096);
    let status = app
        .try_send(&alice, &chat_id, &big, "")
        .await
        .expect_err("a request over max_request_bytes must be rejected");
    assert_ne!(status.code(), Code::Ok);
    assert_eq!(
        app.all_messages(&bob, &chat_id).await.total,
        0,
        "nothing stored"
    );
    let fits = "x".repeat(4000);
    let m = app
        .try_send(&alice, &chat_id, &fits, "")
        .await
        .expect("under the cap");
    assert_eq!(m.seq, 1);
}

async fn list_messages_pages_without_duplicates_or_holes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let mut by_seq = BTreeMap::new();
    for i in 0..120 {
        let user = if i % 3 == 0 { &bob } else { &alice };
        let m = app.send(user, &chat_id, &format!("message {i}")).await;
        assert_eq!(m.seq, i + 1);
        by_seq.insert(m.seq, m);
    }
    let check = |messages: &[Message]| {
        for m in messages {
            let sent = &by_seq[&m.seq];
            assert_eq!(
                (&m.id, &m.content, &m.user_id),
                (&sent.id, &sent.content, &sent.user_id)
            );
            assert_eq!(m.chat_id, chat_id);
        }
    };
    let seqs = |messages: &[Message]| messages.iter().map(|m| m.seq).collect::<Vec<_>>();

    // Defaults: limit 50, newest first, pages continue.
    let page1 = app.list_messages(&bob, list(&chat_id, 0, 0)).await.unwrap();
    assert_eq!(page1.total, 120);
    assert_eq!(seqs(&page1.messages), (71..=120).rev().collect::<Vec<_>>());
    check(&page1.messages);
    let page2 = app.list_messages(&bob, list(&chat_id, 2, 0)).await.unwrap();
    assert_eq!(seqs(&page2.messages), (21..=70).rev().collect::<Vec<_>>());
    let page3 = app.list_messages(&bob, list(&chat_id, 3, 0)).await.unwrap();
    assert_eq!(seqs(&page3.messages), (1..=20).rev().collect::<Vec<_>>());
    check(&page3.messages);
    let page4 = app.list_messages(&bob, list(&chat_id, 4, 0)).await.unwrap();
    assert!(page4.messages.is_empty());
    assert_eq!(page4.total, 120);

    // Limits are clamped to 1..=100; zero or negative means the default.
    for (limit, expected) in [(1000, 100), (101, 100), (100, 100), (-1, 50), (1, 1)] {
        let r = app
            .list_messages(&alice, list(&chat_id, 1, limit))
            .await
            .unwrap();
        assert_eq!(r.messages.len(), expected, "limit {limit}");
        assert_eq!(r.messages[0].seq, 120, "limit {limit}: newest first");
    }

    // Page by page with limit 7: every message exactly once.
    let mut seen = Vec::new();
    for page in 1.. {
        let r = app
            .list_messages(&alice, list(&chat_id, page, 7))
            .await
            .unwrap();
        assert!(page <= 19, "paging never ends");
        if r.messages.is_empty() {
            assert_eq!(page, 19, "18 pages of 7 cover 120, then empty");
            break;
        }
        check(&r.messages);
        let s = seqs(&r.messages);
        assert!(
            s.windows(2).all(|w| w[0] > w[1]),
            "newest first within a page: {s:?}"
        );
        seen.extend(s);
    }
    assert_eq!(
        seen,
        (1..=120).rev().collect::<Vec<_>>(),
        "no duplicates, no holes"
    );

    // Cursor backwards: before_seq, newest first.
    let mut seen = Vec::new();
    let mut cursor = 121;
    loop {
        let r = app
            .list_messages(
                &alice,
                ListMessagesRequest {
                    chat_id: chat_id.clone(),
                    limit: 7,
                    before_seq: cursor,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if r.messages.is_empty() {
            break;
        }
        check(&r.messages);
        let s = seqs(&r.messages);
        assert!(s.len() <= 7);
        assert!(
            s.iter().all(|&seq| seq < cursor),
            "before_seq {cursor}: {s:?}"
        );
        cursor = *s.last().unwrap();
        seen.extend(s);
        assert!(seen.len() <= 120, "cursor paging never ends");
    }
    assert_eq!(
        seen,
        (1..=120).rev().collect::<Vec<_>>(),
        "before_seq: no duplicates, no holes"
    );

    // Cursor forwards: after_seq, oldest first.
    let mut seen = Vec::new();
    let mut cursor = 50;
    loop {
        let r = app
            .list_messages(
                &bob,
                ListMessagesRequest {
                    chat_id: chat_id.clone(),
                    limit: 7,
                    after_seq: Some(cursor),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if r.messages.is_empty() {
            break;
        }
        check(&r.messages);
        let s = seqs(&r.messages);
        assert!(
            s.iter().all(|&seq| seq > cursor),
            "after_seq {cursor}: {s:?}"
        );
        cursor = *s.last().unwrap();
        seen.extend(s);
        assert!(seen.len() <= 120, "cursor paging never ends");
    }
    assert_eq!(
        seen,
        (51..=120).collect::<Vec<_>>(),
        "after_seq: oldest first, complete"
    );

    // The cursor ignores `page`, and a cursor in the middle works.
    let r = app
        .list_messages(
            &bob,
            ListMessagesRequest {
                chat_id: chat_id.clone(),
                page: 5,
                limit: 3,
                before_seq: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(&r.messages), vec![9, 8, 7]);
}

async fn list_messages_cursor_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    app.send(&alice, &chat_id, "one").await;

    for (before_seq, after_seq) in [(5, Some(1)), (-1, None), (0, Some(-1)), (3, Some(0))] {
        let r = app
            .list_messages(
                &alice,
                ListMessagesRequest {
                    chat_id: chat_id.clone(),
                    before_seq,
                    after_seq,
                    ..Default::default()
                },
            )
            .await;
        let status = r.expect_err(&format!("before_seq {before_seq}, after_seq {after_seq:?}"));
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let r = app
        .list_messages(
            &alice,
            ListMessagesRequest {
                chat_id: chat_id.clone(),
                after_seq: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("after the last message");
    assert!(r.messages.is_empty());
    // after_seq = 0 is a cursor too: from the start, oldest first (unset is
    // plain paging, newest first).
    app.send(&alice, &chat_id, "two").await;
    let from_start = app
        .list_messages(
            &alice,
            ListMessagesRequest {
                chat_id: chat_id.clone(),
                after_seq: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("from the start");
    let contents: Vec<&str> = from_start
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(contents, ["one", "two"], "oldest first");
    let newest = app
        .list_messages(
            &alice,
            ListMessagesRequest {
                chat_id: chat_id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("plain page");
    assert_eq!(newest.messages[0].content, "two", "newest first");
}

async fn status_follows_the_other_members_watermarks(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let m: Vec<Message> = vec![
        app.send(&alice, &chat_id, "m1").await,
        app.send(&alice, &chat_id, "m2").await,
        app.send(&alice, &chat_id, "m3").await,
    ];
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["SENT", "SENT", "SENT"],
        "at first",
    );
    let before = get_chat(&app, &bob, &chat_id).await;
    assert_eq!(
        (before.unread_count, before.read_seq),
        (3, 0),
        "bob has 3 unread"
    );

    // Bob's delivered watermark moves to m2: m1 and m2 are delivered.
    let r = update_status(&app, &bob, &m[1].id, "delivered")
        .await
        .expect("UpdateMessageStatus");
    assert_eq!(r.message_id, m[1].id);
    assert_eq!(r.status, "DELIVERED", "the status is echoed normalised");
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["DELIVERED", "DELIVERED", "SENT"],
        "after bob got m2",
    );

    // Bob reads m1: m1 is read, m2 still only delivered.
    let r = update_status(&app, &bob, &m[0].id, "Read").await.unwrap();
    assert_eq!(r.status, "READ");
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["READ", "DELIVERED", "SENT"],
        "after bob read m1",
    );
    let chat = get_chat(&app, &bob, &chat_id).await;
    assert_eq!((chat.unread_count, chat.read_seq), (2, 1));

    // Watermarks never move backwards.
    update_status(&app, &bob, &m[0].id, "DELIVERED")
        .await
        .unwrap();
    update_status(&app, &bob, &m[0].id, "SENT").await.unwrap();
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["READ", "DELIVERED", "SENT"],
        "after going backwards",
    );

    // Reading m3 implies delivering it: everything is read.
    update_status(&app, &bob, &m[2].id, "READ").await.unwrap();
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["READ", "READ", "READ"],
        "after bob read m3",
    );
    expect_statuses(
        &statuses(&app, &bob, &chat_id).await,
        &["READ", "READ", "READ"],
        "seen by bob",
    );
    let chat = get_chat(&app, &bob, &chat_id).await;
    assert_eq!((chat.unread_count, chat.read_seq), (0, 3));

    // Bob's own message waits for alice, whatever bob has marked.
    let reply = app.send(&bob, &chat_id, "m4").await;
    assert_eq!(reply.status, "SENT");
    update_status(&app, &bob, &reply.id, "READ").await.unwrap();
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["READ", "READ", "READ", "SENT"],
        "bob marking his own message",
    );
    update_status(&app, &alice, &reply.id, "READ")
        .await
        .unwrap();
    expect_statuses(
        &statuses(&app, &bob, &chat_id).await,
        &["READ", "READ", "READ", "READ"],
        "after alice read m4",
    );
}

async fn status_in_a_group_needs_every_other_member(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&alice, "room", &[&bob, &carol]).await;
    let m1 = app.send(&alice, &room, "hello all").await;

    update_status(&app, &bob, &m1.id, "READ").await.unwrap();
    expect_statuses(
        &statuses(&app, &alice, &room).await,
        &["SENT"],
        "carol has nothing yet",
    );
    update_status(&app, &carol, &m1.id, "DELIVERED")
        .await
        .unwrap();
    expect_statuses(
        &statuses(&app, &alice, &room).await,
        &["DELIVERED"],
        "all delivered",
    );
    update_status(&app, &carol, &m1.id, "READ").await.unwrap();
    expect_statuses(&statuses(&app, &alice, &room).await, &["READ"], "all read");
}

async fn update_status_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let m = app.send(&alice, &chat_id, "hello").await;

    for bad in ["", "SEEN", "read ", "DELIVERED,READ", "0"] {
        let r = update_status(&app, &bob, &m.id, bad).await;
        expect_code(r, Code::InvalidArgument, "status");
    }
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["SENT"],
        "after bad statuses",
    );
    for (given, normalised) in [
        ("sent", "SENT"),
        ("Delivered", "DELIVERED"),
        ("rEaD", "READ"),
    ] {
        let r = update_status(&app, &bob, &m.id, given).await.unwrap();
        assert_eq!(r.status, normalised);
        assert_eq!(r.message_id, m.id);
    }
    expect_statuses(
        &statuses(&app, &alice, &chat_id).await,
        &["READ"],
        "after READ",
    );
}
