//! Blocking (BlockUser / UnblockUser / ListBlocked): a blocked user cannot
//! write to or open a direct chat with the blocker, nor add them to a
//! room, and stops seeing their presence and typing; the blocker gets the
//! blocked user's messages hidden by the server (content withheld, seq
//! kept), live, on resume, in history and in the chat list.

use tidings::proto::{
    self, AddMembersRequest, BlockUserRequest, CreateChatRequest, ListBlockedRequest,
    ListChatsRequest, SendTypingRequest, UnblockUserRequest, event,
};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::*;
use crate::realtime::{Events, open_events};

both_backends!(
    the_blocker_gets_the_blocked_users_messages_hidden_everywhere,
    a_blocked_user_cannot_write_to_open_or_add_the_blocker,
    a_blocked_user_stops_seeing_the_blockers_typing_and_presence,
    block_input_is_checked_and_repeats_change_nothing,
);

impl TestApp {
    pub async fn block(&self, user: &TestUser, other: &str) -> Result<proto::BlockedUser, Status> {
        let req = BlockUserRequest {
            user_id: other.into(),
        };
        let resp = self
            .users
            .clone()
            .block_user(authed(req, &user.token))
            .await?;
        Ok(resp
            .into_inner()
            .blocked
            .expect("BlockUserResponse.blocked"))
    }

    pub async fn unblock(&self, user: &TestUser, other: &str) -> Result<(), Status> {
        let req = UnblockUserRequest {
            user_id: other.into(),
        };
        self.users
            .clone()
            .unblock_user(authed(req, &user.token))
            .await
            .map(drop)
    }

    pub async fn blocked(&self, user: &TestUser) -> Vec<proto::BlockedUser> {
        self.users
            .clone()
            .list_blocked(authed(ListBlockedRequest {}, &user.token))
            .await
            .expect("ListBlocked")
            .into_inner()
            .users
    }
}

use tonic::Status;

/// The next `block_changed` event of a stream.
async fn next_block_change(events: &mut Events) -> proto::BlockChanged {
    events
        .next_where(|k| match k {
            event::Kind::BlockChanged(b) => Some(b),
            _ => None,
        })
        .await
}

fn assert_hidden(m: &proto::Message, who: &str) {
    assert!(m.hidden, "{who}: not hidden: {m:?}");
    assert!(
        m.content.is_empty() && m.mentions.is_empty(),
        "{who}: withheld parts were sent: {m:?}"
    );
}

async fn the_blocker_gets_the_blocked_users_messages_hidden_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&carol, "room", &[&alice, &bob]).await;
    let before = app.send(&bob, &room, "before the block").await;

    let mut alice_events = open_events(&app.channel, &alice, &[]).await.unwrap();
    let mut carol_events = open_events(&app.channel, &carol, &[]).await.unwrap();
    app.block(&alice, &bob.id).await.expect("BlockUser");
    let change = next_block_change(&mut alice_events).await;
    assert_eq!(
        (change.user_id.as_str(), change.blocked),
        (bob.id.as_str(), true)
    );

    // Live: hidden for alice, whole for carol; seq kept.
    let sent = app.send(&bob, &room, "hello @alice @carol").await;
    let live = alice_events.next_message().await;
    assert_eq!((live.id.as_str(), live.seq), (sent.id.as_str(), sent.seq));
    assert_hidden(&live, "alice live");
    assert_eq!(live.user_id, bob.id);
    let whole = carol_events.next_message().await;
    assert_eq!(whole.content, "hello @alice @carol");
    assert!(!whole.hidden);

    // An answer to bob's message: carol's own words, the quote withheld.
    let answer = app
        .reply(&carol, &room, "answering bob", &sent.id)
        .await
        .expect("reply");
    let live = alice_events.next_message().await;
    assert_eq!(live.id, answer.id);
    assert_eq!(live.content, "answering bob");
    assert!(!live.hidden);
    let quote = live.reply_to.expect("quote");
    assert!(quote.hidden && quote.excerpt.is_empty(), "{quote:?}");

    // An edit of bob's reaches alice hidden too.
    app.edit(&bob, &sent.id, "edited secret")
        .await
        .expect("edit");
    let edit = alice_events.next_change().await;
    match edit.kind {
        Some(proto::chat_change::Kind::Edited(m)) => assert_hidden(&m, "alice edit"),
        other => panic!("expected an edit, got {other:?}"),
    }

    // History, earlier messages included, and the chat list.
    let history = app.all_messages(&alice, &room).await.messages;
    let of = |id: &str| history.iter().find(|m| m.id == id).unwrap().clone();
    assert_hidden(&of(&before.id), "alice history (before)");
    assert_hidden(&of(&sent.id), "alice history");
    let carols = app.all_messages(&carol, &room).await.messages;
    assert!(carols.iter().all(|m| !m.hidden && !m.content.is_empty()));
    app.send(&bob, &room, "last").await;
    let _ = alice_events.next_message().await;
    let chats = app
        .chats
        .clone()
        .list_chats(authed(ListChatsRequest::default(), &alice.token))
        .await
        .unwrap()
        .into_inner()
        .chats;
    let last = chats[0].last_message.clone().expect("last message");
    assert_hidden(&last, "alice chat list");

    // Resuming from a cursor replays hidden.
    drop(alice_events);
    let missed = app.send(&bob, &room, "while alice was away").await;
    let mut resumed = open_events(&app.channel, &alice, &[(&room, missed.seq - 1)])
        .await
        .unwrap();
    let replayed = resumed.next_message().await;
    assert_eq!(replayed.id, missed.id);
    assert_hidden(&replayed, "alice resume");

    // Unblocked: the stream says so, and bob's words come through again.
    app.unblock(&alice, &bob.id).await.expect("UnblockUser");
    let change = next_block_change(&mut resumed).await;
    assert_eq!(
        (change.user_id.as_str(), change.blocked),
        (bob.id.as_str(), false)
    );
    app.send(&bob, &room, "visible again").await;
    let m = resumed.next_message().await;
    assert_eq!(m.content, "visible again");
    assert!(!m.hidden);
    let history = app.all_messages(&alice, &room).await.messages;
    assert!(history.iter().all(|m| !m.hidden), "history still hidden");
}

fn violation_field(status: &Status) -> String {
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    bad.field_violations[0].field.clone()
}

async fn a_blocked_user_cannot_write_to_open_or_add_the_blocker(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dm = app.direct_chat(&alice, &bob).await;
    app.send(&bob, &dm, "hi").await;
    app.block(&alice, &bob.id).await.expect("BlockUser");

    let refused = app.try_send(&bob, &dm, "let me in", "").await;
    let status = expect_code(refused, Code::PermissionDenied, "does not accept messages");
    assert!(!status.message().contains(&alice.id));
    let own = app.try_send(&alice, &dm, "one last word", "").await;
    expect_code(own, Code::FailedPrecondition, "unblock them");
    // Nothing was stored by either refusal.
    assert_eq!(app.all_messages(&alice, &dm).await.messages.len(), 1);

    let open = app
        .create_chat(
            &bob,
            CreateChatRequest {
                email: alice.email.clone(),
                ..Default::default()
            },
        )
        .await;
    let status = expect_code(open, Code::PermissionDenied, "email");
    assert_eq!(violation_field(&status), "email");

    let room = app
        .create_chat(
            &bob,
            CreateChatRequest {
                name: "bob's room".into(),
                member_ids: vec![carol.id.clone(), alice.id.clone()],
                is_group: true,
                ..Default::default()
            },
        )
        .await;
    let status = expect_code(room, Code::PermissionDenied, "alice");
    assert_eq!(violation_field(&status), "member_ids");

    let bobs_room = app.group_chat(&bob, "bob's room", &[&carol]).await;
    let add = app
        .chats
        .clone()
        .add_members(authed(
            AddMembersRequest {
                chat_id: bobs_room.clone(),
                member_emails: vec![alice.email.clone()],
                ..Default::default()
            },
            &bob.token,
        ))
        .await;
    let status = expect_code(add, Code::PermissionDenied, "alice");
    assert_eq!(violation_field(&status), "member_emails");
    // Carol, whom alice did not block, may add her to bob's room.
    app.chats
        .clone()
        .add_members(authed(
            AddMembersRequest {
                chat_id: bobs_room,
                member_ids: vec![alice.id.clone()],
                ..Default::default()
            },
            &carol.token,
        ))
        .await
        .expect("carol adds alice");
    // The blocker may still add the person she blocked.
    app.group_chat(&alice, "alice's room", &[&bob]).await;

    app.unblock(&alice, &bob.id).await.expect("UnblockUser");
    app.send(&bob, &dm, "thanks").await;
    app.send(&alice, &dm, "ok").await;
}

async fn a_blocked_user_stops_seeing_the_blockers_typing_and_presence(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&carol, "room", &[&alice, &bob]).await;
    let mut bob_events = open_events(&app.channel, &bob, &[]).await.unwrap();
    app.block(&alice, &bob.id).await.expect("BlockUser");

    let typing = |who: &TestUser| {
        let mut messages = app.messages.clone();
        let req = authed(
            SendTypingRequest {
                chat_id: room.clone(),
                typing: true,
            },
            &who.token,
        );
        async move { messages.send_typing(req).await.expect("SendTyping") }
    };
    // Alice's typing would arrive before carol's (one chat, one order).
    typing(&alice).await;
    typing(&carol).await;
    let first = bob_events
        .next_where(|k| match k {
            event::Kind::Typing(t) => Some(t),
            _ => None,
        })
        .await;
    assert_eq!(first.user_id, carol.id, "bob saw alice typing");

    // Alice comes online, then carol: bob hears only of carol.
    let _alice_online = open_events(&app.channel, &alice, &[]).await.unwrap();
    let _carol_online = open_events(&app.channel, &carol, &[]).await.unwrap();
    let first = bob_events
        .next_where(|k| match k {
            event::Kind::Presence(p) if p.online => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(first.user_id, carol.id, "bob saw alice come online");
    // A new stream of bob's starts without alice in its snapshot.
    let mut again = open_events(&app.channel, &bob, &[]).await.unwrap();
    app.send(&carol, &room, "marker").await;
    loop {
        match again.next_kind().await {
            event::Kind::Presence(p) => assert_ne!(p.user_id, alice.id, "snapshot had alice"),
            event::Kind::Message(m) if m.content == "marker" => break,
            _ => {}
        }
    }
    // The blocker does not see the blocked user either.
    drop(bob_events);
    drop(again);
    let mut alice_events = open_events(&app.channel, &alice, &[]).await.unwrap();
    let _bob_online = open_events(&app.channel, &bob, &[]).await.unwrap();
    app.send(&carol, &room, "marker 2").await;
    loop {
        match alice_events.next_kind().await {
            event::Kind::Presence(p) => assert_ne!(p.user_id, bob.id, "alice saw bob"),
            event::Kind::Message(m) if m.content == "marker 2" => break,
            _ => {}
        }
    }
    // Unblocked: alice learns that bob is online.
    app.unblock(&alice, &bob.id).await.unwrap();
    let p = alice_events
        .next_where(|k| match k {
            event::Kind::Presence(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!((p.user_id.as_str(), p.online), (bob.id.as_str(), true));
}

async fn block_input_is_checked_and_repeats_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;

    expect_code(
        app.block(&alice, &alice.id).await,
        Code::InvalidArgument,
        "user_id",
    );
    expect_code(
        app.block(&alice, "").await,
        Code::InvalidArgument,
        "user_id",
    );
    // As everywhere: what is not an id names nobody.
    expect_code(app.block(&alice, "not-an-id").await, Code::NotFound, "user");
    expect_code(
        app.block(&alice, "0192e3a0-0000-7000-8000-000000000001")
            .await,
        Code::NotFound,
        "user",
    );
    let anonymous = app
        .users
        .clone()
        .block_user(tonic::Request::new(BlockUserRequest {
            user_id: bob.id.clone(),
        }))
        .await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    assert!(app.blocked(&alice).await.is_empty());

    let first = app.block(&alice, &bob.id).await.unwrap();
    assert_eq!(
        (first.user_id.as_str(), first.username.as_str()),
        (bob.id.as_str(), "bob")
    );
    let again = app.block(&alice, &bob.id).await.unwrap();
    assert_eq!(
        again.blocked_at, first.blocked_at,
        "a repeat is a new block"
    );
    app.block(&alice, &carol.id).await.unwrap();
    let list: Vec<String> = app
        .blocked(&alice)
        .await
        .into_iter()
        .map(|b| b.username)
        .collect();
    assert_eq!(list, ["carol", "bob"], "most recent first, once each");
    assert!(app.blocked(&bob).await.is_empty(), "bob blocked nobody");

    app.unblock(&alice, &bob.id).await.unwrap();
    app.unblock(&alice, &bob.id)
        .await
        .expect("unblocking again is fine");
    expect_code(
        app.unblock(&alice, "").await,
        Code::InvalidArgument,
        "user_id",
    );
    let list: Vec<String> = app
        .blocked(&alice)
        .await
        .into_iter()
        .map(|b| b.username)
        .collect();
    assert_eq!(list, ["carol"]);
}
