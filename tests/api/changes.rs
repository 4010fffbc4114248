//! Every change to a chat (edit, delete, reaction, rename, membership) is an
//! event of the user stream, numbered per chat by `change_seq` and
//! resumable like messages: a client that was away gets exactly the changes
//! it missed, once each, in order, then live ones.

use tidings::proto::chat_change::Kind;
use tidings::proto::{self, UpdateChatRequest};

use crate::helpers::*;
use crate::realtime::{Events, open_events, open_events_at};

both_backends!(
    changes_missed_while_away_are_replayed_once_in_order_then_live,
    replay_and_live_changes_overlap_without_repeats,
    a_reader_that_falls_behind_gets_every_change_once,
);

/// Kinds of these changes, shortly.
fn kinds(changes: &[proto::ChatChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match &c.kind {
            Some(Kind::Edited(m)) => format!("edited {}", m.content),
            Some(Kind::Deleted(d)) => format!("deleted {}", d.message_id),
            Some(Kind::Reaction(r)) => {
                format!(
                    "{} {} {}",
                    if r.added { "+" } else { "-" },
                    r.emoji,
                    r.count
                )
            }
            Some(Kind::Renamed(r)) => format!("renamed {}", r.name),
            Some(Kind::Member(m)) => format!("member {}", m.joined),
            None => "none".into(),
        })
        .collect()
}

/// Reads the stream up to the message `sentinel`, returning the changes
/// seen on the way (every change published before the sentinel message
/// reaches the stream first or is replayed before it).
async fn changes_until(events: &mut Events, sentinel: &str) -> Vec<proto::ChatChange> {
    let mut out = Vec::new();
    loop {
        match events.next_kind().await {
            proto::event::Kind::Change(c) => out.push(c),
            proto::event::Kind::Message(m) if m.content == sentinel => return out,
            _ => {}
        }
    }
}

async fn rename(app: &TestApp, user: &TestUser, chat: &str, name: &str) {
    app.chats
        .clone()
        .update_chat(authed(
            UpdateChatRequest {
                chat_id: chat.into(),
                name: name.into(),
            },
            &user.token,
        ))
        .await
        .expect("rename");
}

async fn changes_missed_while_away_are_replayed_once_in_order_then_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.group_chat(&alice, "Room", &[&bob]).await;
    let mut ms = Vec::new();
    for i in 1..=5 {
        ms.push(app.send(&alice, &room, &format!("m{i}")).await);
    }
    // Bob has seen everything so far, then goes away.
    let standing = app.chat_of(&bob, &room).await.unwrap();
    let (seen_seq, seen_change) = (standing.last_seq, standing.last_change);
    assert_eq!(seen_seq, 5);

    for (i, m) in ms.iter().take(3).enumerate() {
        app.edit(&alice, &m.id, &format!("m{} edited", i + 1))
            .await
            .unwrap();
    }
    app.delete(&alice, &ms[3].id).await.unwrap();
    app.delete(&alice, &ms[4].id).await.unwrap();
    app.react(&alice, &ms[0].id, "👍").await.unwrap();
    app.react(&alice, &ms[1].id, "🎉").await.unwrap();
    app.unreact(&alice, &ms[0].id, "👍").await.unwrap();
    rename(&app, &alice, &room, "Renamed").await;
    // Repeats change nothing and log nothing.
    app.delete(&alice, &ms[4].id).await.unwrap();
    app.react(&alice, &ms[1].id, "🎉").await.unwrap();

    let mut back = open_events_at(&app.channel, &bob, &[(&room, seen_seq, Some(seen_change))])
        .await
        .unwrap();
    let replayed = back.changes(9).await;
    let seqs: Vec<i64> = replayed.iter().map(|c| c.change_seq).collect();
    assert_eq!(
        seqs,
        ((seen_change + 1)..=(seen_change + 9)).collect::<Vec<_>>()
    );
    assert_eq!(
        kinds(&replayed),
        [
            "edited m1 edited".to_owned(),
            "edited m2 edited".into(),
            "edited m3 edited".into(),
            format!("deleted {}", ms[3].id),
            format!("deleted {}", ms[4].id),
            "+ 👍 1".into(),
            "+ 🎉 1".into(),
            "- 👍 0".into(),
            "renamed Renamed".into(),
        ]
    );
    assert!(
        replayed
            .iter()
            .all(|c| c.user_id == alice.id && c.chat_id == room)
    );

    // Then live: the next change once, and nothing replayed twice.
    app.edit(&alice, &ms[2].id, "m3 again").await.unwrap();
    app.send(&alice, &room, "sentinel").await;
    let live = changes_until(&mut back, "sentinel").await;
    assert_eq!(kinds(&live), ["edited m3 again"]);
    assert_eq!(live[0].change_seq, seen_change + 10);

    // A fresh ListMessages shows the current state without any replay.
    let listed = app.all_messages(&bob, &room).await.messages;
    let by_seq = |seq: i64| listed.iter().find(|m| m.seq == seq).unwrap();
    assert_eq!(by_seq(1).content, "m1 edited");
    assert!(by_seq(1).reactions.is_empty());
    assert_eq!(by_seq(2).reactions[0].emoji, "🎉");
    assert!(by_seq(4).deleted_at.is_some() && by_seq(4).content.is_empty());
    assert_eq!(app.chat_of(&bob, &room).await.unwrap().name, "Renamed");

    // A client without a change cursor starts live for changes.
    let mut fresh = open_events(&app.channel, &bob, &[(&room, 6)])
        .await
        .unwrap();
    app.react(&alice, &ms[1].id, "👍").await.unwrap();
    app.send(&alice, &room, "second sentinel").await;
    assert_eq!(
        kinds(&changes_until(&mut fresh, "second sentinel").await),
        ["+ 👍 1"]
    );
}

async fn replay_and_live_changes_overlap_without_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&alice, "Room", &[&bob]).await;
    let m = app.send(&alice, &room, "target").await;
    let start = app.chat_of(&bob, &room).await.unwrap().last_change;
    // Changes before, during and after Bob's reconnect, from two people.
    let toggles = |user: TestUser, emoji: &'static str, n: usize| {
        let app = &app;
        let id = m.id.clone();
        async move {
            for _ in 0..n {
                app.react(&user, &id, emoji).await.unwrap();
                app.unreact(&user, &id, emoji).await.unwrap();
            }
        }
    };
    toggles(alice.clone(), "🔥", 10).await;
    let cursor = [(room.as_str(), 1, Some(start))];
    let (events, (), ()) = tokio::join!(
        open_events_at(&app.channel, &bob, &cursor),
        toggles(alice.clone(), "👍", 20),
        async {
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
            toggles(carol.clone(), "🎉", 10).await;
        },
    );
    let mut events = events.unwrap();
    app.send(&alice, &room, "sentinel").await;
    let got = changes_until(&mut events, "sentinel").await;
    let last = app.chat_of(&bob, &room).await.unwrap().last_change;
    let seqs: Vec<i64> = got.iter().map(|c| c.change_seq).collect();
    assert_eq!(
        seqs,
        ((start + 1)..=last).collect::<Vec<_>>(),
        "every change once, in order"
    );
    assert_eq!(last - start, 20 + 40 + 1 + 20);
    assert!(
        got.iter()
            .any(|c| matches!(&c.kind, Some(Kind::Member(mc)) if mc.joined
        && mc.user.as_ref().is_some_and(|u| u.id == carol.id)))
    );
}

/// A stream that stops reading falls more than the hub's buffer (4 here)
/// behind: it catches up from the change log, and the live events still
/// buffered (already delivered by then) are not delivered again.
async fn a_reader_that_falls_behind_gets_every_change_once(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.hub_capacity = 4).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.group_chat(&alice, "Room", &[&bob]).await;
    let m = app.send(&alice, &room, "v0").await;
    let start = app.chat_of(&bob, &room).await.unwrap().last_change;
    let mut events = open_events_at(&app.channel, &bob, &[(&room, 1, Some(start))])
        .await
        .unwrap();
    // Big edits, so the stream's buffers fill while Bob reads nothing.
    let filler = "😀".repeat(4000); // 16 KB each
    const EDITS: i64 = 300;
    for i in 1..=EDITS {
        app.edit(&alice, &m.id, &format!("v{i} {filler}"))
            .await
            .unwrap();
    }
    // The end marker is a change too: messages and changes are two
    // sequences, and a catch-up may deliver the one before the other.
    rename(&app, &alice, &room, "the end").await;
    let mut seqs = Vec::new();
    loop {
        let c = events.next_change().await;
        seqs.push(c.change_seq);
        if matches!(&c.kind, Some(Kind::Renamed(r)) if r.name == "the end") {
            break;
        }
    }
    assert_eq!(
        seqs,
        ((start + 1)..=(start + EDITS + 1)).collect::<Vec<_>>()
    );
    assert!(
        app.state.hub.lag_count() > 0,
        "the stream really fell behind"
    );
    // What was still buffered live is not delivered again: the next change
    // is the next one.
    rename(&app, &alice, &room, "after the end").await;
    let next = events.next_change().await;
    assert_eq!(
        next.change_seq,
        start + EDITS + 2,
        "{:?}",
        kinds(std::slice::from_ref(&next))
    );
}
