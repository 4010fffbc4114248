//! Real-time delivery on one node: the user stream (resume, lag catch-up,
//! membership, typing, receipts, presence), and the bidirectional session.

use std::collections::HashMap;

use tidings::proto::events_service_client::EventsServiceClient;
use tidings::proto::{
    self, AddMembersRequest, ChatCursor, ClientFrame, LeaveChatRequest, MarkReadRequest,
    SendMessageRequest, SendTypingRequest, SubscribeRequest, client_frame, event, server_frame,
};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::helpers::*;

/// A user stream under test.
pub struct Events {
    pub stream: Streaming<proto::Event>,
}

pub async fn open_events(
    channel: &Channel,
    user: &TestUser,
    cursors: &[(&str, i64)],
) -> Result<Events, tonic::Status> {
    let cursors: Vec<(&str, i64, Option<i64>)> =
        cursors.iter().map(|(c, s)| (*c, *s, None)).collect();
    open_events_at(channel, user, &cursors).await
}

/// A user stream resuming from `(chat_id, after_seq, after_change)` cursors.
pub async fn open_events_at(
    channel: &Channel,
    user: &TestUser,
    cursors: &[(&str, i64, Option<i64>)],
) -> Result<Events, tonic::Status> {
    let mut client = EventsServiceClient::new(channel.clone());
    let req = SubscribeRequest {
        cursors: cursors
            .iter()
            .map(|(chat_id, after_seq, after_change)| ChatCursor {
                chat_id: (*chat_id).into(),
                after_seq: *after_seq,
                after_change: *after_change,
            })
            .collect(),
    };
    let stream = tokio::time::timeout(WAIT, client.subscribe(authed(req, &user.token)))
        .await
        .expect("Subscribe did not answer in time")?
        .into_inner();
    let mut events = Events { stream };
    match events.next_kind().await {
        event::Kind::Connected(c) => assert_eq!(c.user_id, user.id),
        other => panic!("first frame is not Connected: {other:?}"),
    }
    Ok(events)
}

impl Events {
    pub async fn next_item(&mut self) -> Result<Option<proto::Event>, tonic::Status> {
        tokio::time::timeout(WAIT, self.stream.message())
            .await
            .expect("no event within the bound")
    }

    /// The next event other than a heartbeat.
    pub async fn next_kind(&mut self) -> event::Kind {
        loop {
            match self.next_item().await {
                Ok(Some(proto::Event {
                    kind: Some(event::Kind::Heartbeat(_)),
                })) => continue,
                Ok(Some(proto::Event { kind: Some(kind) })) => return kind,
                Ok(Some(_)) => panic!("event without kind"),
                Ok(None) => panic!("event stream ended"),
                Err(s) => panic!("event stream failed: {s:?}"),
            }
        }
    }

    /// The next event matching `pick`, skipping others (receipts, presence...).
    pub async fn next_where<T>(&mut self, mut pick: impl FnMut(event::Kind) -> Option<T>) -> T {
        loop {
            if let Some(t) = pick(self.next_kind().await) {
                return t;
            }
        }
    }

    pub async fn next_message(&mut self) -> proto::Message {
        self.next_where(|k| match k {
            event::Kind::Message(m) => Some(m),
            _ => None,
        })
        .await
    }

    pub async fn next_change(&mut self) -> proto::ChatChange {
        self.next_where(|k| match k {
            event::Kind::Change(c) => Some(c),
            _ => None,
        })
        .await
    }

    pub async fn changes(&mut self, n: usize) -> Vec<proto::ChatChange> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_change().await);
        }
        out
    }

    pub async fn messages(&mut self, n: usize) -> Vec<proto::Message> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_message().await);
        }
        out
    }
}

fn seqs(messages: &[proto::Message]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

both_backends!(
    user_stream_delivers_new_messages_of_every_chat_of_the_user_only,
    resume_after_disconnect_mid_burst_gets_exactly_the_missed_messages,
    a_subscriber_that_stops_reading_later_receives_every_message_in_order,
    added_to_a_chat_mid_stream_starts_delivering_it_and_leaving_stops_it,
    typing_reaches_the_other_member_and_is_rate_limited,
    receipts_reach_the_sender_and_move_status_and_unread,
    presence_flips_online_and_offline,
    a_chat_opened_mid_stream_brings_its_online_peers_presence,
    user_stream_ends_unauthenticated_when_the_token_expires,
    bidi_session_sends_acks_and_delivers_events,
    legacy_chat_stream_resumes_after_seq_without_gap_or_duplicate,
);

async fn user_stream_delivers_new_messages_of_every_chat_of_the_user_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, c) = (
        app.register("rt_a").await,
        app.register("rt_b").await,
        app.register("rt_c").await,
    );
    let ab = app.direct_chat(&a, &b).await;
    let ac = app.direct_chat(&a, &c).await;
    let mut c_events = open_events(&app.channel, &c, &[]).await.unwrap();
    let mut b_events = open_events(&app.channel, &b, &[]).await.unwrap();

    app.send(&a, &ab, "for b only").await;
    app.send(&a, &ac, "for c").await;

    // c never sees the a–b chat: its first message is the a–c one.
    let first = c_events.next_message().await;
    assert_eq!(
        (first.chat_id.as_str(), first.content.as_str()),
        (ac.as_str(), "for c")
    );
    assert_eq!(first.username, "rt_a");
    let got = b_events.next_message().await;
    assert_eq!(
        (got.chat_id.as_str(), got.content.as_str(), got.seq),
        (ab.as_str(), "for b only", 1)
    );
}

async fn resume_after_disconnect_mid_burst_gets_exactly_the_missed_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("burst_a").await, app.register("burst_b").await);
    let chat = app.direct_chat(&a, &b).await;

    let mut events = open_events(&app.channel, &b, &[]).await.unwrap();
    let sender = {
        let app_messages = app.messages.clone();
        let token = a.token.clone();
        let chat = chat.clone();
        tokio::spawn(async move {
            for i in 1..=60 {
                let mut client = app_messages.clone();
                client
                    .send_message(authed(
                        SendMessageRequest {
                            chat_id: chat.clone(),
                            content: format!("burst {i}"),
                            idempotency_key: format!("burst-{i}"),
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .expect("send in burst");
            }
        })
    };
    // Read part of the burst, then disconnect in the middle of it.
    let seen = events.messages(17).await;
    assert_eq!(seqs(&seen), (1..=17).collect::<Vec<_>>());
    drop(events);
    sender.await.unwrap();
    for i in 61..=65 {
        app.send(&a, &chat, &format!("after {i}")).await;
    }

    let mut resumed = open_events(&app.channel, &b, &[(&chat, 17)]).await.unwrap();
    let rest = resumed.messages(65 - 17).await;
    assert_eq!(seqs(&rest), (18..=65).collect::<Vec<_>>());
    assert_eq!(rest[0].content, "burst 18");
    assert_eq!(rest.last().unwrap().content, "after 65");
    // And it is live after the replay, with nothing repeated at the seam.
    app.send(&a, &chat, "live again").await;
    let live = resumed.next_message().await;
    assert_eq!((live.seq, live.content.as_str()), (66, "live again"));
}

async fn a_subscriber_that_stops_reading_later_receives_every_message_in_order(backend: Backend) {
    // A tiny hub buffer so the subscriber overflows it quickly.
    let app = spawn_app_with(backend, |c| c.hub_capacity = 4).await;
    let (a, b) = (app.register("slow_a").await, app.register("slow_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let mut events = open_events(&app.channel, &b, &[]).await.unwrap();

    // Big messages and many of them: more than the HTTP/2 window, the
    // stream's buffer and the hub's channel hold while nobody reads.
    let body = "x".repeat(4000);
    let total = 700;
    for i in 1..=total {
        app.send(&a, &chat, &format!("{i} {body}")).await;
    }
    let got = events.messages(total).await;
    assert_eq!(seqs(&got), (1..=total as i64).collect::<Vec<_>>());
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, m)| m.content.starts_with(&format!("{} ", i + 1)))
    );
    assert!(
        app.state.hub.lag_count() > 0,
        "the subscriber never lagged: the test did not exercise the catch-up path"
    );
}

async fn added_to_a_chat_mid_stream_starts_delivering_it_and_leaving_stops_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, c) = (
        app.register("grp_a").await,
        app.register("grp_b").await,
        app.register("grp_c").await,
    );
    let room = app.group_chat(&a, "Room", &[&b]).await;
    app.send(&a, &room, "before c joined").await;
    let mut c_events = open_events(&app.channel, &c, &[]).await.unwrap();

    let mut chats = app.chats.clone();
    chats
        .add_members(authed(
            AddMembersRequest {
                chat_id: room.clone(),
                member_ids: vec![c.id.clone()],
                ..Default::default()
            },
            &b.token,
        ))
        .await
        .expect("AddMembers");
    let added = c_events
        .next_where(|k| match k {
            event::Kind::ChatAdded(chat) => Some(chat),
            _ => None,
        })
        .await;
    assert_eq!(added.id, room);
    assert!(added.members.iter().any(|m| m.id == c.id));
    assert_eq!(
        added.unread_count, 0,
        "history before joining is not unread"
    );

    app.send(&a, &room, "after c joined").await;
    let m = c_events.next_message().await;
    assert_eq!((m.seq, m.content.as_str()), (2, "after c joined"));

    chats
        .leave_chat(authed(
            LeaveChatRequest {
                chat_id: room.clone(),
            },
            &c.token,
        ))
        .await
        .expect("LeaveChat");
    let removed = c_events
        .next_where(|k| match k {
            event::Kind::ChatRemoved(r) => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(removed.chat_id, room);
    app.send(&a, &room, "c is gone").await;
    // The next message c gets is from another chat: nothing more of the room.
    let ac = app.direct_chat(&a, &c).await;
    app.send(&a, &ac, "direct to c").await;
    let next = c_events.next_message().await;
    assert_eq!(
        (next.chat_id.as_str(), next.content.as_str()),
        (ac.as_str(), "direct to c")
    );
    expect_code(
        app.try_send(&c, &room, "still here?", "").await,
        Code::NotFound,
        "chat",
    );
}

async fn typing_reaches_the_other_member_and_is_rate_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("typ_a").await, app.register("typ_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let mut b_events = open_events(&app.channel, &b, &[]).await.unwrap();

    let mut messages = app.messages.clone();
    for typing in [true, true, true, false] {
        messages
            .send_typing(authed(
                SendTypingRequest {
                    chat_id: chat.clone(),
                    typing,
                },
                &a.token,
            ))
            .await
            .expect("SendTyping");
    }
    app.send(&a, &chat, "done typing").await;
    let mut typing_events = Vec::new();
    loop {
        match b_events.next_kind().await {
            event::Kind::Typing(t) => {
                assert_eq!(
                    (t.chat_id.as_str(), t.user_id.as_str(), t.username.as_str()),
                    (chat.as_str(), a.id.as_str(), "typ_a")
                );
                typing_events.push(t.typing);
            }
            event::Kind::Message(m) => {
                assert_eq!(m.content, "done typing");
                break;
            }
            _ => {}
        }
    }
    // Three "typing" within the window collapse into one; "stopped" always passes.
    assert_eq!(typing_events, vec![true, false]);
    // Non-members cannot type into the chat.
    let c = app.register("typ_c").await;
    expect_code(
        messages
            .send_typing(authed(
                SendTypingRequest {
                    chat_id: chat.clone(),
                    typing: true,
                },
                &c.token,
            ))
            .await,
        Code::NotFound,
        "chat",
    );
}

async fn receipts_reach_the_sender_and_move_status_and_unread(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("rcp_a").await, app.register("rcp_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let mut a_events = open_events(&app.channel, &a, &[]).await.unwrap();

    for i in 1..=3 {
        app.send(&a, &chat, &format!("m{i}")).await;
    }
    let listed = app
        .chats
        .clone()
        .list_chats(authed(proto::ListChatsRequest::default(), &b.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.chats[0].unread_count, 3);

    // b's stream delivers them: the server records DELIVERED and tells a.
    let mut b_events = open_events(&app.channel, &b, &[(&chat, 0)]).await.unwrap();
    assert_eq!(seqs(&b_events.messages(3).await), vec![1, 2, 3]);
    let delivered = a_events
        .next_where(|k| match k {
            event::Kind::Receipt(r) if r.user_id == b.id && r.delivered_seq == 3 => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(delivered.chat_id, chat);

    // b reads up to 2.
    let marked = app
        .messages
        .clone()
        .mark_read(authed(
            MarkReadRequest {
                chat_id: chat.clone(),
                seq: 2,
            },
            &b.token,
        ))
        .await
        .expect("MarkRead")
        .into_inner();
    assert_eq!((marked.read_seq, marked.unread_count), (2, 1));
    let read = a_events
        .next_where(|k| match k {
            event::Kind::Receipt(r) if r.user_id == b.id && r.read_seq == 2 => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(read.delivered_seq, 3);
    let statuses: HashMap<i64, String> = app
        .all_messages(&a, &chat)
        .await
        .messages
        .into_iter()
        .map(|m| (m.seq, m.status))
        .collect();
    assert_eq!(statuses[&1], "READ");
    assert_eq!(statuses[&2], "READ");
    assert_eq!(statuses[&3], "DELIVERED");

    // Watermarks never move backwards; past the end is clamped.
    let back = app
        .messages
        .clone()
        .mark_read(authed(
            MarkReadRequest {
                chat_id: chat.clone(),
                seq: 1,
            },
            &b.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.read_seq, 2);
    let all = app
        .messages
        .clone()
        .mark_read(authed(
            MarkReadRequest {
                chat_id: chat.clone(),
                seq: 999,
            },
            &b.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.read_seq, all.unread_count), (3, 0));
}

async fn presence_flips_online_and_offline(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("prs_a").await, app.register("prs_b").await);
    app.direct_chat(&a, &b).await;
    let mut a_events = open_events(&app.channel, &a, &[]).await.unwrap();

    let b_events = open_events(&app.channel, &b, &[]).await.unwrap();
    let online = a_events
        .next_where(|k| match k {
            event::Kind::Presence(p) if p.user_id == b.id => Some(p),
            _ => None,
        })
        .await;
    assert!(online.online);
    // A second stream of b (another tab) changes nothing; closing both does.
    let second = open_events(&app.channel, &b, &[]).await.unwrap();
    drop(b_events);
    drop(second);
    let offline = a_events
        .next_where(|k| match k {
            event::Kind::Presence(p) if p.user_id == b.id => Some(p),
            _ => None,
        })
        .await;
    assert!(!offline.online);

    // A stream opened while b is offline learns nothing about b; once b is
    // back, a fresh stream of a is told b is online at once.
    let _b_again = open_events(&app.channel, &b, &[]).await.unwrap();
    let mut fresh = open_events(&app.channel, &a, &[]).await.unwrap();
    let snapshot = fresh
        .next_where(|k| match k {
            event::Kind::Presence(p) if p.user_id == b.id => Some(p),
            _ => None,
        })
        .await;
    assert!(snapshot.online);
}

async fn user_stream_ends_unauthenticated_when_the_token_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.register("exp_a").await;
    let short = TestUser {
        token: mint_token(&a.id, 2, JWT_SECRET),
        id: a.id.clone(),
        username: a.username.clone(),
        email: a.email.clone(),
    };
    let mut events = open_events(&app.channel, &short, &[]).await.unwrap();
    loop {
        match events.next_item().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                break;
            }
        }
    }
}

async fn bidi_session_sends_acks_and_delivers_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("bidi_a").await, app.register("bidi_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let mut b_events = open_events(&app.channel, &b, &[]).await.unwrap();

    let (tx, rx) = tokio::sync::mpsc::channel::<ClientFrame>(16);
    let mut client = EventsServiceClient::new(app.channel.clone());
    let frame = |r: &str, kind| ClientFrame {
        r#ref: r.into(),
        kind: Some(kind),
    };
    tx.send(frame(
        "s",
        client_frame::Kind::Subscribe(SubscribeRequest::default()),
    ))
    .await
    .unwrap();
    let mut session = client
        .session(authed(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            &a.token,
        ))
        .await
        .expect("Session")
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(WAIT, session.message())
            .await
            .expect("session frame in time")
            .expect("session ok")
            .expect("session open")
    };
    let connected = next().await;
    assert!(matches!(
        connected.kind,
        Some(server_frame::Kind::Event(proto::Event {
            kind: Some(event::Kind::Connected(_))
        }))
    ));

    let send = |content: &str, key: &str| {
        client_frame::Kind::Send(SendMessageRequest {
            chat_id: chat.clone(),
            content: content.into(),
            idempotency_key: key.into(),
            ..Default::default()
        })
    };
    tx.send(frame("1", send("over the session", "k1")))
        .await
        .unwrap();
    tx.send(frame("2", send("over the session", "k1")))
        .await
        .unwrap();
    tx.send(frame("3", send("   ", ""))).await.unwrap();
    tx.send(frame(
        "4",
        client_frame::Kind::MarkRead(MarkReadRequest {
            chat_id: chat.clone(),
            seq: 1,
        }),
    ))
    .await
    .unwrap();

    let mut acks = HashMap::new();
    let mut errors = HashMap::new();
    while acks.len() + errors.len() < 4 {
        match next().await.kind {
            Some(server_frame::Kind::Ack(ack)) => {
                acks.insert(ack.r#ref.clone(), ack);
            }
            Some(server_frame::Kind::Error(err)) => {
                errors.insert(err.r#ref.clone(), err);
            }
            _ => {}
        }
    }
    let first = acks["1"].message.clone().expect("ack carries the message");
    let again = acks["2"].message.clone().expect("ack carries the message");
    assert_eq!(
        (first.id.as_str(), first.seq),
        (again.id.as_str(), 1),
        "idempotent in-band send"
    );
    assert_eq!(errors["3"].code, Code::InvalidArgument as i32);
    assert!(errors["3"].message.contains("content"));
    assert!(acks.contains_key("4"));

    let got = b_events.next_message().await;
    assert_eq!(
        (got.id.as_str(), got.content.as_str()),
        (first.id.as_str(), "over the session")
    );
    assert_eq!(app.all_messages(&a, &chat).await.total, 1);
}

async fn legacy_chat_stream_resumes_after_seq_without_gap_or_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("leg_a").await, app.register("leg_b").await);
    let chat = app.direct_chat(&a, &b).await;
    for i in 1..=5 {
        app.send(&a, &chat, &format!("m{i}")).await;
    }
    let mut sub = app.subscribe(&b, &chat, 2).await;
    app.send(&a, &chat, "m6").await;
    let got = sub.take(4).await;
    assert_eq!(
        got.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    assert_eq!(got[3].content, "m6");
}

/// Both online, then a direct chat between them is opened: each stream
/// learns at once that the other is online (before, each showed the other
/// offline until it reconnected). Carol, online too but sharing nothing,
/// stays unknown to both.
async fn a_chat_opened_mid_stream_brings_its_online_peers_presence(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, c) = (
        app.register("pr_a").await,
        app.register("pr_b").await,
        app.register("pr_c").await,
    );
    let mut a_events = open_events(&app.channel, &a, &[]).await.unwrap();
    let mut b_events = open_events(&app.channel, &b, &[]).await.unwrap();
    let _c_events = open_events(&app.channel, &c, &[]).await.unwrap();
    let chat = app.direct_chat(&a, &b).await;
    for (events, peer) in [(&mut a_events, &b), (&mut b_events, &a)] {
        let added = events
            .next_where(|k| match k {
                event::Kind::ChatAdded(chat) => Some(chat),
                _ => None,
            })
            .await;
        assert_eq!(added.id, chat);
        match events.next_kind().await {
            event::Kind::Presence(p) => {
                assert_eq!((p.user_id.as_str(), p.online), (peer.id.as_str(), true))
            }
            other => panic!("expected {}'s presence, got {other:?}", peer.username),
        }
    }
}
