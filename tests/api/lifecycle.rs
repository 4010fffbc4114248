//! Messages people can change: edit, delete, reply, reactions, mentions,
//! and what a group room's owner may do. Who may do what is checked for the
//! sender, another member and a stranger; a refusal changes nothing.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait as _, Statement};
use tidings::proto::{
    self, AddReactionRequest, DeleteMessageRequest, EditMessageRequest, GetChatRequest,
    ListMessagesRequest, MarkReadRequest, RemoveMemberRequest, RemoveReactionRequest,
    SendMessageRequest, UpdateChatRequest, event,
};
use tonic::{Code, Status};

use crate::helpers::*;
use crate::realtime::open_events;

both_backends!(
    only_the_sender_edits_and_the_message_keeps_its_id_and_seq,
    deleting_erases_the_content_keeps_a_tombstone_and_is_idempotent,
    replies_quote_a_message_of_the_same_chat_only,
    reactions_are_idempotent_capped_and_mine_is_per_viewer,
    mentions_resolve_to_members_and_count_until_read,
    the_owner_renames_the_room_and_removes_members,
);

impl TestApp {
    pub async fn edit(
        &self,
        user: &TestUser,
        message_id: &str,
        content: &str,
    ) -> Result<proto::Message, Status> {
        let req = EditMessageRequest {
            message_id: message_id.into(),
            content: content.into(),
        };
        let resp = self
            .messages
            .clone()
            .edit_message(authed(req, &user.token))
            .await?;
        Ok(resp
            .into_inner()
            .message
            .expect("EditMessageResponse.message"))
    }

    pub async fn delete(&self, user: &TestUser, message_id: &str) -> Result<(), Status> {
        let req = DeleteMessageRequest {
            message_id: message_id.into(),
        };
        self.messages
            .clone()
            .delete_message(authed(req, &user.token))
            .await
            .map(|_| ())
    }

    pub async fn react(
        &self,
        user: &TestUser,
        message_id: &str,
        emoji: &str,
    ) -> Result<Vec<proto::Reaction>, Status> {
        let req = AddReactionRequest {
            message_id: message_id.into(),
            emoji: emoji.into(),
        };
        let resp = self
            .messages
            .clone()
            .add_reaction(authed(req, &user.token))
            .await?;
        Ok(resp.into_inner().reactions)
    }

    pub async fn unreact(
        &self,
        user: &TestUser,
        message_id: &str,
        emoji: &str,
    ) -> Result<Vec<proto::Reaction>, Status> {
        let req = RemoveReactionRequest {
            message_id: message_id.into(),
            emoji: emoji.into(),
        };
        let resp = self
            .messages
            .clone()
            .remove_reaction(authed(req, &user.token))
            .await?;
        Ok(resp.into_inner().reactions)
    }

    pub async fn reply(
        &self,
        user: &TestUser,
        chat_id: &str,
        content: &str,
        reply_to_id: &str,
    ) -> Result<proto::Message, Status> {
        let req = SendMessageRequest {
            chat_id: chat_id.into(),
            content: content.into(),
            reply_to_id: reply_to_id.into(),
            ..Default::default()
        };
        let resp = self
            .messages
            .clone()
            .send_message(authed(req, &user.token))
            .await?;
        Ok(resp
            .into_inner()
            .message
            .expect("SendMessageResponse.message"))
    }

    /// The message with this id, as `user` lists it.
    pub async fn listed(&self, user: &TestUser, chat_id: &str, id: &str) -> proto::Message {
        self.all_messages(user, chat_id)
            .await
            .messages
            .into_iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("message {id} is listed"))
    }

    pub async fn chat_of(&self, user: &TestUser, chat_id: &str) -> Result<proto::Chat, Status> {
        let req = GetChatRequest {
            chat_id: chat_id.into(),
        };
        let resp = self
            .chats
            .clone()
            .get_chat(authed(req, &user.token))
            .await?;
        Ok(resp.into_inner().chat.expect("GetChatResponse.chat"))
    }

    /// One column of one row, read straight from the database.
    pub async fn column(&self, sql: &str) -> Vec<String> {
        let conn = self.state.store.conn();
        let rows = conn
            .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .expect("raw query");
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).expect("a text column"))
            .collect()
    }
}

async fn only_the_sender_edits_and_the_message_keeps_its_id_and_seq(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mallory = app.register("mallory").await;
    let chat = app.direct_chat(&alice, &bob).await;
    app.send(&alice, &chat, "first").await;
    let sent = app.send(&alice, &chat, "typo here").await;
    assert!(sent.edited_at.is_none(), "never edited yet");

    expect_code(
        app.edit(&mallory, &sent.id, "hacked").await,
        Code::NotFound,
        "message",
    );
    expect_code(
        app.edit(&bob, &sent.id, "hacked").await,
        Code::PermissionDenied,
        "message_id",
    );
    expect_code(
        app.edit(&alice, &sent.id, "   ").await,
        Code::InvalidArgument,
        "content",
    );
    expect_code(
        app.edit(&alice, &sent.id, "\u{1b}[2J").await,
        Code::InvalidArgument,
        "content",
    );
    expect_code(
        app.edit(&alice, "0192e3a0-0000-7000-8000-000000000000", "x")
            .await,
        Code::NotFound,
        "message",
    );
    assert_eq!(app.listed(&bob, &chat, &sent.id).await.content, "typo here");

    let edited = app
        .edit(&alice, &sent.id, "fixed")
        .await
        .expect("the sender edits");
    assert_eq!(
        (edited.id.as_str(), edited.seq),
        (sent.id.as_str(), sent.seq)
    );
    assert_eq!(edited.content, "fixed");
    assert!(edited.edited_at.is_some());
    let listed = app.listed(&bob, &chat, &sent.id).await;
    assert_eq!(listed.content, "fixed");
    assert_eq!(listed.edited_at, edited.edited_at);
    assert_eq!(
        app.all_messages(&bob, &chat).await.total,
        2,
        "no new message"
    );

    app.delete(&alice, &sent.id).await.unwrap();
    expect_code(
        app.edit(&alice, &sent.id, "back again").await,
        Code::FailedPrecondition,
        "message_id",
    );
}

async fn deleting_erases_the_content_keeps_a_tombstone_and_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mallory = app.register("mallory").await;
    let room = app.group_chat(&alice, "Room", &[&bob, &carol]).await;
    let secret = "the launch code is 0000";
    let bobs = app.send(&bob, &room, secret).await;
    let answer = app.reply(&carol, &room, "noted", &bobs.id).await.unwrap();
    app.edit(&bob, &bobs.id, &format!("{secret}, edited"))
        .await
        .unwrap();
    app.react(&carol, &bobs.id, "👍").await.unwrap();
    let after = app.send(&carol, &room, "after").await;

    expect_code(
        app.delete(&mallory, &bobs.id).await,
        Code::NotFound,
        "message",
    );
    expect_code(
        app.delete(&carol, &bobs.id).await,
        Code::PermissionDenied,
        "message_id",
    );
    assert!(
        app.listed(&alice, &room, &bobs.id)
            .await
            .deleted_at
            .is_none()
    );

    app.delete(&bob, &bobs.id)
        .await
        .expect("the sender deletes");
    app.delete(&bob, &bobs.id)
        .await
        .expect("deleting twice is OK");
    let tomb = app.listed(&alice, &room, &bobs.id).await;
    assert_eq!((tomb.content.as_str(), tomb.seq), ("", bobs.seq));
    assert!(tomb.deleted_at.is_some());
    assert!(tomb.reactions.is_empty(), "its reactions went with it");
    let seqs: Vec<i64> = app
        .all_messages(&alice, &room)
        .await
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [after.seq, answer.seq, bobs.seq], "seq stays gapless");
    // The reply still resolves, to a quote that says so.
    let quote = app
        .listed(&alice, &room, &answer.id)
        .await
        .reply_to
        .expect("a quote");
    assert!(quote.deleted && quote.excerpt.is_empty(), "{quote:?}");

    // Erased in storage, not hidden: neither the row nor the change log
    // holds the text.
    let stored = app
        .column(&format!(
            "SELECT content FROM messages WHERE id = '{}'",
            bobs.id
        ))
        .await;
    assert_eq!(stored, [""]);
    let log = app.column("SELECT payload FROM chat_changes").await;
    assert!(!log.is_empty());
    assert!(log.iter().all(|p| !p.contains("launch")), "{log:?}");

    // A group room's owner may delete anyone's message.
    app.delete(&alice, &after.id)
        .await
        .expect("the owner deletes");
    assert!(
        app.listed(&bob, &room, &after.id)
            .await
            .deleted_at
            .is_some()
    );
    expect_code(
        app.react(&bob, &after.id, "👍").await,
        Code::FailedPrecondition,
        "message_id",
    );
}

async fn replies_quote_a_message_of_the_same_chat_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let other = app.direct_chat(&alice, &carol).await;
    let hidden = app.direct_chat(&bob, &carol).await;
    let long = "é".repeat(300);
    let original = app.send(&bob, &chat, &long).await;
    let elsewhere = app.send(&carol, &other, "in another chat").await;
    let secret = app.send(&carol, &hidden, "bob and carol only").await;

    let answer = app
        .reply(&alice, &chat, "answer", &original.id)
        .await
        .unwrap();
    assert_eq!(answer.reply_to_id, original.id);
    let quote = answer.reply_to.expect("a quote");
    assert_eq!(
        (quote.user_id.as_str(), quote.username.as_str()),
        (bob.id.as_str(), "bob")
    );
    assert_eq!(quote.excerpt, "é".repeat(200), "the first 200 characters");
    assert!(!quote.deleted);
    let listed = app.listed(&bob, &chat, &answer.id).await;
    assert_eq!(
        listed.reply_to.map(|q| q.message_id),
        Some(original.id.clone())
    );

    // Another chat's message: refused, and how depends on whether the
    // sender may see it.
    expect_code(
        app.reply(&alice, &chat, "x", &elsewhere.id).await,
        Code::InvalidArgument,
        "reply_to_id",
    );
    expect_code(
        app.reply(&alice, &chat, "x", &secret.id).await,
        Code::NotFound,
        "reply_to_id",
    );
    expect_code(
        app.reply(&alice, &chat, "x", "0192e3a0-0000-7000-8000-000000000000")
            .await,
        Code::NotFound,
        "reply_to_id",
    );
    assert_eq!(
        app.all_messages(&alice, &chat).await.total,
        2,
        "nothing refused was stored"
    );
}

async fn reactions_are_idempotent_capped_and_mine_is_per_viewer(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mallory = app.register("mallory").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let m = app.send(&alice, &chat, "react to me").await;

    // Eight identical calls at once (a retry storm): counted once.
    let calls = (0..8).map(|_| app.react(&bob, &m.id, "👍"));
    for result in futures::future::join_all(calls).await {
        let reactions = result.expect("every identical call succeeds");
        assert_eq!(reactions.len(), 1, "{reactions:?}");
        assert_eq!((reactions[0].count, reactions[0].mine), (1, true));
    }
    let changes = app
        .column(&format!(
            "SELECT kind FROM chat_changes WHERE message_id = '{}'",
            m.id
        ))
        .await;
    assert_eq!(changes, ["reaction"], "one change for eight calls");

    let theirs = app.react(&alice, &m.id, "👍").await.unwrap();
    assert_eq!((theirs[0].count, theirs[0].mine), (2, true));
    assert_eq!(
        theirs[0].user_ids,
        [bob.id.clone(), alice.id.clone()],
        "oldest first"
    );
    let listed = app.listed(&bob, &chat, &m.id).await;
    assert_eq!(
        (listed.reactions[0].count, listed.reactions[0].mine),
        (2, true)
    );

    let left = app.unreact(&bob, &m.id, "👍").await.unwrap();
    assert_eq!((left[0].count, left[0].mine), (1, false));
    app.unreact(&bob, &m.id, "👍")
        .await
        .expect("taking back twice is OK");
    assert_eq!(app.listed(&alice, &chat, &m.id).await.reactions[0].count, 1);

    for bad in ["", "a", "👍👍", ":thumbsup:", &"👍".repeat(9)] {
        expect_code(
            app.react(&bob, &m.id, bad).await,
            Code::InvalidArgument,
            "emoji",
        );
    }
    expect_code(
        app.react(&mallory, &m.id, "👍").await,
        Code::NotFound,
        "message",
    );

    // At most 20 different emoji on one message.
    let emoji: Vec<&str> = vec![
        "😀", "😂", "😍", "😎", "😢", "😡", "🎉", "🔥", "💯", "🙏", "👏", "🤔", "🙌", "🚀", "🍕",
        "☕", "🐱", "🌈", "⭐",
    ];
    for e in &emoji {
        app.react(&bob, &m.id, e)
            .await
            .unwrap_or_else(|s| panic!("{e}: {s:?}"));
    }
    assert_eq!(app.listed(&bob, &chat, &m.id).await.reactions.len(), 20);
    expect_code(
        app.react(&bob, &m.id, "🍀").await,
        Code::FailedPrecondition,
        "emoji",
    );
    // An emoji already there still takes one more person.
    app.react(&bob, &m.id, "👍")
        .await
        .expect("an existing emoji is not a new one");
    let distinct: HashSet<String> = app
        .listed(&bob, &chat, &m.id)
        .await
        .reactions
        .into_iter()
        .map(|r| r.emoji)
        .collect();
    assert_eq!(distinct.len(), 20);
}

async fn mentions_resolve_to_members_and_count_until_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&alice, "Room", &[&bob]).await;
    let m = app
        .send(
            &alice,
            &room,
            "hi @Bob and @carol (not here), and @alice myself; mail bob@example.com",
        )
        .await;
    assert_eq!(
        m.mentions,
        [bob.id.as_str()],
        "only members, not the author"
    );
    assert_eq!(
        app.listed(&bob, &room, &m.id).await.mentions,
        [bob.id.as_str()]
    );
    app.send(&alice, &room, "no mention").await;
    let chat = app.chat_of(&bob, &room).await.unwrap();
    assert_eq!((chat.unread_count, chat.unread_mentions), (2, 1));
    assert_eq!(app.chat_of(&alice, &room).await.unwrap().unread_mentions, 0);

    // An edit resolves again.
    app.edit(&alice, &m.id, "never mind").await.unwrap();
    assert_eq!(app.chat_of(&bob, &room).await.unwrap().unread_mentions, 0);
    app.edit(&alice, &m.id, "@bob again").await.unwrap();
    assert_eq!(app.chat_of(&bob, &room).await.unwrap().unread_mentions, 1);
    app.messages
        .clone()
        .mark_read(authed(
            MarkReadRequest {
                chat_id: room.clone(),
                seq: m.seq,
            },
            &bob.token,
        ))
        .await
        .unwrap();
    assert_eq!(
        app.chat_of(&bob, &room).await.unwrap().unread_mentions,
        0,
        "read"
    );
    // A deleted message mentions nobody.
    let again = app.send(&alice, &room, "@bob one more").await;
    assert_eq!(app.chat_of(&bob, &room).await.unwrap().unread_mentions, 1);
    app.delete(&alice, &again.id).await.unwrap();
    assert_eq!(app.chat_of(&bob, &room).await.unwrap().unread_mentions, 0);
    // Carol joins later: the old mention of her name stays plain text.
    app.chats
        .clone()
        .add_members(authed(
            proto::AddMembersRequest {
                chat_id: room.clone(),
                member_ids: vec![carol.id.clone()],
                ..Default::default()
            },
            &alice.token,
        ))
        .await
        .unwrap();
    assert_eq!(app.chat_of(&carol, &room).await.unwrap().unread_mentions, 0);
}

async fn the_owner_renames_the_room_and_removes_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&alice, "Room", &[&bob, &carol]).await;
    let direct = app.direct_chat(&alice, &bob).await;
    assert_eq!(app.chat_of(&bob, &room).await.unwrap().owner_id, alice.id);
    assert_eq!(app.chat_of(&bob, &direct).await.unwrap().owner_id, "");

    let rename = |user: &TestUser, chat: &str, name: &str| {
        let mut chats = app.chats.clone();
        let req = authed(
            UpdateChatRequest {
                chat_id: chat.into(),
                name: name.into(),
            },
            &user.token,
        );
        async move { chats.update_chat(req).await.map(|r| r.into_inner()) }
    };
    expect_code(
        rename(&bob, &room, "Bob's").await,
        Code::PermissionDenied,
        "chat_id",
    );
    expect_code(
        rename(&alice, &direct, "Ours").await,
        Code::FailedPrecondition,
        "chat_id",
    );
    expect_code(
        rename(&alice, &room, "").await,
        Code::InvalidArgument,
        "name",
    );
    let renamed = rename(&alice, &room, "Team").await.unwrap();
    assert_eq!(renamed.chat.unwrap().name, "Team");
    assert_eq!(app.chat_of(&carol, &room).await.unwrap().name, "Team");

    let mut carols = open_events(&app.channel, &carol, &[]).await.unwrap();
    let remove = |user: &TestUser, member: &str| {
        let mut chats = app.chats.clone();
        let req = authed(
            RemoveMemberRequest {
                chat_id: room.clone(),
                user_id: member.into(),
            },
            &user.token,
        );
        async move { chats.remove_member(req).await.map(|r| r.into_inner()) }
    };
    expect_code(
        remove(&bob, &carol.id).await,
        Code::PermissionDenied,
        "chat_id",
    );
    let after = remove(&alice, &carol.id).await.unwrap().chat.unwrap();
    assert!(after.members.iter().all(|m| m.id != carol.id));
    let gone = carols
        .next_where(|k| match k {
            event::Kind::ChatRemoved(r) => Some(r.chat_id),
            _ => None,
        })
        .await;
    assert_eq!(gone, room, "her streams stop getting the room at once");
    expect_code(app.chat_of(&carol, &room).await, Code::NotFound, "chat");
    expect_code(remove(&alice, &carol.id).await, Code::NotFound, "member");
    app.send(&bob, &room, "after carol left").await;
    let listed = app
        .list_messages(
            &carol,
            ListMessagesRequest {
                chat_id: room.clone(),
                ..Default::default()
            },
        )
        .await;
    expect_code(listed, Code::NotFound, "chat");
}
