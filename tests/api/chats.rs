//! Chats: direct and group rooms, listing, membership.

use std::collections::HashSet;

use tidings::proto::{
    Chat, CreateChatRequest, GetChatRequest, ListChatsRequest, ListMessagesRequest,
    SendMessageRequest, UpdateMessageStatusRequest,
};
use tonic::Code;

use crate::helpers::{Backend, TestApp, TestUser, authed, expect_code, spawn_app, ts};

both_backends!(
    direct_chat_is_unique_per_pair,
    create_chat_validation,
    group_chats_by_email_and_id,
    non_members_get_not_found_on_every_chat_rpc,
    list_chats_orders_by_recent_activity,
    list_chats_pages_and_clamps_limits,
    last_message_reflects_the_latest_message,
);

pub async fn get_chat(app: &TestApp, user: &TestUser, chat_id: &str) -> Chat {
    app.chats
        .clone()
        .get_chat(authed(
            GetChatRequest {
                chat_id: chat_id.into(),
            },
            &user.token,
        ))
        .await
        .unwrap_or_else(|s| panic!("GetChat: {s:?}"))
        .into_inner()
        .chat
        .expect("GetChatResponse.chat")
}

pub async fn list_chats(
    app: &TestApp,
    user: &TestUser,
    page: i32,
    limit: i32,
) -> tidings::proto::ListChatsResponse {
    app.chats
        .clone()
        .list_chats(authed(ListChatsRequest { page, limit }, &user.token))
        .await
        .unwrap_or_else(|s| panic!("ListChats: {s:?}"))
        .into_inner()
}

fn member_ids(chat: &Chat) -> HashSet<String> {
    chat.members.iter().map(|m| m.id.clone()).collect()
}

fn ids(users: &[&TestUser]) -> HashSet<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

async fn direct_chat_is_unique_per_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let chat_id = app.direct_chat(&alice, &bob).await;
    assert_eq!(
        app.direct_chat(&alice, &bob).await,
        chat_id,
        "same pair, same chat"
    );
    assert_eq!(
        app.direct_chat(&bob, &alice).await,
        chat_id,
        "either direction"
    );
    let by_upper_email = app
        .create_chat(
            &alice,
            CreateChatRequest {
                email: "BOB@Example.COM".into(),
                ..Default::default()
            },
        )
        .await
        .expect("CreateChat with the email in another case");
    assert_eq!(by_upper_email, chat_id, "emails are case-insensitive");

    let seen_by_alice = get_chat(&app, &alice, &chat_id).await;
    assert_eq!(seen_by_alice.id, chat_id);
    assert_eq!(member_ids(&seen_by_alice), ids(&[&alice, &bob]));
    assert_eq!(seen_by_alice.members.len(), 2);
    assert_eq!(
        seen_by_alice.name, "bob",
        "an unnamed direct chat is named after the peer"
    );
    assert!(!seen_by_alice.is_group);
    assert!(seen_by_alice.created_at.is_some());
    let bob_in_chat = seen_by_alice
        .members
        .iter()
        .find(|m| m.id == bob.id)
        .unwrap();
    assert_eq!(bob_in_chat.username, "bob");

    let seen_by_bob = get_chat(&app, &bob, &chat_id).await;
    assert_eq!(seen_by_bob.name, "alice");

    for user in [&alice, &bob] {
        let listed = list_chats(&app, user, 0, 0).await;
        assert_eq!(listed.total, 1, "no duplicate direct chats were created");
        assert_eq!(listed.chats.len(), 1);
        assert_eq!(listed.chats[0].id, chat_id);
    }
}

async fn create_chat_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;

    let unknown = app
        .create_chat(
            &alice,
            CreateChatRequest {
                email: "nobody@example.com".into(),
                ..Default::default()
            },
        )
        .await;
    expect_code(unknown, Code::NotFound, "");
    let own = app
        .create_chat(
            &alice,
            CreateChatRequest {
                email: alice.email.clone(),
                ..Default::default()
            },
        )
        .await;
    expect_code(own, Code::InvalidArgument, "email");
    let long_name = app
        .create_chat(
            &alice,
            CreateChatRequest {
                name: "n".repeat(51),
                email: bob.email.clone(),
                ..Default::default()
            },
        )
        .await;
    expect_code(long_name, Code::InvalidArgument, "name");
    let nothing = app.create_chat(&alice, CreateChatRequest::default()).await;
    expect_code(nothing, Code::InvalidArgument, "");
    let group_without_name = app
        .create_chat(
            &alice,
            CreateChatRequest {
                member_emails: vec![bob.email.clone(), carol.email.clone()],
                ..Default::default()
            },
        )
        .await;
    expect_code(group_without_name, Code::InvalidArgument, "name");
    let group_long_name = app
        .create_chat(
            &alice,
            CreateChatRequest {
                name: "n".repeat(51),
                member_emails: vec![bob.email.clone(), carol.email.clone()],
                ..Default::default()
            },
        )
        .await;
    expect_code(group_long_name, Code::InvalidArgument, "name");

    // Nothing of the above created a chat.
    assert_eq!(list_chats(&app, &alice, 1, 100).await.total, 0);

    // The longest allowed name.
    let name50 = "N".repeat(50);
    let chat_id = app
        .create_chat(
            &alice,
            CreateChatRequest {
                name: name50.clone(),
                member_emails: vec![bob.email.clone(), carol.email.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("a 50-character name is allowed");
    assert_eq!(get_chat(&app, &carol, &chat_id).await.name, name50);
}

async fn group_chats_by_email_and_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;

    let team = app
        .create_chat(
            &alice,
            CreateChatRequest {
                name: "Team".into(),
                member_emails: vec![bob.email.clone()],
                member_ids: vec![carol.id.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("group by email and id");
    let by_ids = app
        .create_chat(
            &bob,
            CreateChatRequest {
                name: "By ids".into(),
                member_ids: vec![alice.id.clone(), carol.id.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("group by ids");
    assert_ne!(team, by_ids);
    let direct = app.direct_chat(&alice, &bob).await;
    assert_ne!(direct, team, "a group is not the direct chat");
    assert_ne!(direct, by_ids);

    for (chat_id, name) in [(&team, "Team"), (&by_ids, "By ids")] {
        for viewer in [&alice, &bob, &carol] {
            let chat = get_chat(&app, viewer, chat_id).await;
            assert_eq!(chat.name, name);
            assert!(chat.is_group);
            assert_eq!(member_ids(&chat), ids(&[&alice, &bob, &carol]));
            assert_eq!(chat.members.len(), 3);
        }
    }
    let carols = list_chats(&app, &carol, 1, 100).await;
    assert_eq!(carols.total, 2);
    let listed: HashSet<_> = carols.chats.iter().map(|c| c.id.clone()).collect();
    assert_eq!(listed, HashSet::from([team.clone(), by_ids.clone()]));
    assert_eq!(list_chats(&app, &alice, 1, 100).await.total, 3);

    // Every member can talk in the group.
    for (i, user) in [&alice, &bob, &carol].into_iter().enumerate() {
        let m = app.send(user, &team, &format!("hi from {i}")).await;
        assert_eq!(m.seq, i as i64 + 1);
    }
}

async fn non_members_get_not_found_on_every_chat_rpc(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mallory = app.register("mallory").await;
    let chat_id = app.direct_chat(&alice, &bob).await;
    let message = app.send(&alice, &chat_id, "private").await;

    let missing = uuid::Uuid::new_v4().to_string();
    let targets = [
        ("a chat of others", chat_id.as_str(), &mallory),
        ("an unknown chat", missing.as_str(), &alice),
        ("a malformed id", "not-a-chat-id", &alice),
    ];
    for (what, target, user) in targets {
        let ctx = |rpc: &str| format!("{rpc} on {what}");
        let mut chats = app.chats.clone();
        let mut messages = app.messages.clone();
        let r = chats
            .get_chat(authed(
                GetChatRequest {
                    chat_id: target.into(),
                },
                &user.token,
            ))
            .await;
        assert_eq!(
            r.map(drop).unwrap_err().code(),
            Code::NotFound,
            "{}",
            ctx("GetChat")
        );
        let r = messages
            .list_messages(authed(
                ListMessagesRequest {
                    chat_id: target.into(),
                    ..Default::default()
                },
                &user.token,
            ))
            .await;
        assert_eq!(
            r.map(drop).unwrap_err().code(),
            Code::NotFound,
            "{}",
            ctx("ListMessages")
        );
        let r = messages
            .send_message(authed(
                SendMessageRequest {
                    chat_id: target.into(),
                    content: "let me in".into(),
                    idempotency_key: String::new(),
                    ..Default::default()
                },
                &user.token,
            ))
            .await;
        assert_eq!(
            r.map(drop).unwrap_err().code(),
            Code::NotFound,
            "{}",
            ctx("SendMessage")
        );
        let r = app.try_subscribe(user, target, 0).await;
        assert_eq!(
            r.map(drop).unwrap_err().code(),
            Code::NotFound,
            "{}",
            ctx("SubscribeToChat")
        );
    }
    // UpdateMessageStatus by message id: another chat's message, an unknown
    // message, a malformed id.
    for (what, target, user) in [
        ("a message of others", message.id.as_str(), &mallory),
        ("an unknown message", missing.as_str(), &alice),
        ("a malformed id", "not-a-message-id", &alice),
    ] {
        let r = app
            .messages
            .clone()
            .update_message_status(authed(
                UpdateMessageStatusRequest {
                    message_id: target.into(),
                    status: "READ".into(),
                },
                &user.token,
            ))
            .await;
        assert_eq!(
            r.map(drop).unwrap_err().code(),
            Code::NotFound,
            "UpdateMessageStatus on {what}"
        );
    }
    // An empty chat id is a client error, not a lookup.
    let r = app
        .chats
        .clone()
        .get_chat(authed(GetChatRequest::default(), &alice.token))
        .await;
    expect_code(r, Code::InvalidArgument, "chat_id");
    let r = app
        .list_messages(&alice, ListMessagesRequest::default())
        .await;
    expect_code(r, Code::InvalidArgument, "chat_id");
    let r = app.try_send(&alice, "", "hello", "").await;
    expect_code(r, Code::InvalidArgument, "chat_id");
    let r = app.try_subscribe(&alice, "", 0).await;
    expect_code(r.map(drop), Code::InvalidArgument, "chat_id");

    // Mallory saw nothing and changed nothing: no chat, no extra message,
    // and alice's message was not marked read.
    assert_eq!(list_chats(&app, &mallory, 1, 100).await.total, 0);
    let listed = app.all_messages(&bob, &chat_id).await;
    assert_eq!(listed.total, 1);
    assert_eq!(listed.messages[0].content, "private");
    assert_eq!(listed.messages[0].status, "SENT");
}

async fn list_chats_orders_by_recent_activity(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let ab = app.direct_chat(&alice, &bob).await;
    let ac = app.direct_chat(&alice, &carol).await;
    let ad = app.direct_chat(&alice, &dave).await;

    // The moment of a chat's last activity: its last message, else its
    // creation. Equal moments may come in any order, so the check is that
    // the list is sorted and that a strictly newest chat comes first.
    let activity = |chat: &Chat| match &chat.last_message {
        Some(m) => ts(&m.sent_at),
        None => ts(&chat.created_at),
    };
    for (chat, user) in [(&ac, &carol), (&ab, &bob), (&ad, &alice), (&ab, &alice)] {
        let sent = app.send(user, chat, "activity").await;
        let listed = list_chats(&app, &alice, 1, 20).await;
        assert_eq!(listed.total, 3);
        let order: Vec<_> = listed.chats.iter().map(&activity).collect();
        assert!(
            order.windows(2).all(|w| w[0] >= w[1]),
            "most recent activity first: {order:?}"
        );
        let first = &listed.chats[0];
        if listed.chats[1..]
            .iter()
            .all(|c| activity(c) < ts(&sent.sent_at))
        {
            assert_eq!(&first.id, chat, "the chat just written to comes first");
        }
        assert!(
            listed
                .chats
                .iter()
                .any(|c| &c.id == chat && c.last_message.as_ref().map(|m| &m.id) == Some(&sent.id))
        );
    }
}

async fn list_chats_pages_and_clamps_limits(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mut created = HashSet::new();
    for i in 0..105 {
        let id = app
            .create_chat(
                &alice,
                CreateChatRequest {
                    name: format!("room {i}"),
                    member_emails: vec![bob.email.clone(), carol.email.clone()],
                    ..Default::default()
                },
            )
            .await
            .expect("CreateChat group");
        assert!(created.insert(id), "every group is a new chat");
    }

    let default = list_chats(&app, &alice, 0, 0).await;
    assert_eq!(default.total, 105);
    assert_eq!(default.chats.len(), 20, "default limit is 20");
    let page1 = list_chats(&app, &alice, 1, 20).await;
    let same: Vec<_> = page1.chats.iter().map(|c| &c.id).collect();
    let default_ids: Vec<_> = default.chats.iter().map(|c| &c.id).collect();
    assert_eq!(default_ids, same, "page 0 means page 1");
    assert_eq!(
        list_chats(&app, &alice, 1, -3).await.chats.len(),
        20,
        "negative limit: default"
    );
    let clamped = list_chats(&app, &alice, 1, 1000).await;
    assert_eq!(clamped.chats.len(), 100, "limit clamped to 100");
    assert_eq!(clamped.total, 105);
    assert_eq!(list_chats(&app, &alice, 2, 100).await.chats.len(), 5);
    assert_eq!(list_chats(&app, &bob, 1, 1).await.total, 105);

    // Paging through with limit 7 yields each chat exactly once.
    let mut seen = Vec::new();
    for page in 1.. {
        let listed = list_chats(&app, &alice, page, 7).await;
        assert_eq!(listed.total, 105);
        if listed.chats.is_empty() {
            assert_eq!(page, 16, "15 pages of 7, then empty");
            break;
        }
        assert!(listed.chats.len() <= 7);
        seen.extend(listed.chats.into_iter().map(|c| c.id));
        assert!(page <= 16, "paging never ends");
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 105, "no chat listed twice");
    assert_eq!(unique, created, "no chat missing");
}

async fn last_message_reflects_the_latest_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let empty = get_chat(&app, &alice, &chat_id).await;
    assert!(
        empty.last_message.is_none(),
        "an empty chat has no last_message"
    );
    assert_eq!(empty.last_seq, 0);
    let listed = list_chats(&app, &alice, 1, 20).await;
    assert!(listed.chats[0].last_message.is_none());

    app.send(&alice, &chat_id, "first").await;
    let second = app.send(&bob, &chat_id, "second").await;
    for viewer in [&alice, &bob] {
        let chat = get_chat(&app, viewer, &chat_id).await;
        let last = chat.last_message.expect("last_message after sending");
        assert_eq!(last.id, second.id);
        assert_eq!(last.content, "second");
        assert_eq!(last.user_id, bob.id);
        assert_eq!(last.chat_id, chat_id);
        assert_eq!(chat.last_seq, 2);
        let listed = list_chats(&app, viewer, 1, 20).await;
        let last = listed.chats[0]
            .last_message
            .as_ref()
            .expect("last_message in ListChats");
        assert_eq!(last.id, second.id);
        assert_eq!(last.content, "second");
    }
}
