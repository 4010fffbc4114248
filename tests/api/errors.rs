//! The standard error details (`google.rpc`, in `grpc-status-details-bin`):
//! every validation rule names its field in a `BadRequest` violation, a rate
//! limit carries a `RetryInfo` with the real delay, on native gRPC and on
//! gRPC-Web alike. The message text stays as it was.

use std::time::Duration;

use tidings::proto::events_service_client::EventsServiceClient;
use tidings::proto::{
    AddMembersRequest, ChatCursor, CreateChatRequest, GetUserRequest, ListMessagesRequest,
    LoginRequest, MarkReadRequest, SendMessageRequest, SendTypingRequest, SubscribeRequest,
    SubscribeToChatRequest, UpdateMessageStatusRequest,
};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::grpc_web::{GrpcWeb, MESSAGES, Mode};
use crate::helpers::{Backend, PASSWORD, authed, spawn_app, spawn_app_with};

both_backends!(
    every_validation_rule_names_its_field_in_bad_request,
    rate_limits_carry_the_retry_delay_in_retry_info,
    an_unknown_member_is_named_by_its_place_in_the_list,
);

/// The one field violation of an INVALID_ARGUMENT status.
#[track_caller]
fn violation(what: &str, result: Result<impl std::fmt::Debug, Status>) -> (String, String) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("{what}: no BadRequest details on {status:?}"));
    assert_eq!(bad.field_violations.len(), 1, "{what}: {bad:?}");
    let v = &bad.field_violations[0];
    // The text is unchanged: "<field>: <description>".
    assert_eq!(
        status.message(),
        format!("{}: {}", v.field, v.description),
        "{what}"
    );
    (v.field.clone(), v.description.clone())
}

async fn every_validation_rule_names_its_field_in_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let room = app.group_chat(&alice, "Room", &[&bob]).await;
    let (users, chats, messages) = (app.users.clone(), app.chats.clone(), app.messages.clone());
    let some_id = "0192e3a0-0000-7000-8000-000000000000";
    let send = |content: &str, key: &str, chat_id: &str| {
        let mut messages = messages.clone();
        let req = authed(
            SendMessageRequest {
                chat_id: chat_id.into(),
                content: content.into(),
                idempotency_key: key.into(),
                ..Default::default()
            },
            &alice.token,
        );
        async move { messages.send_message(req).await }
    };

    let mut cases: Vec<(&str, &str, (String, String))> = Vec::new();
    let mut case = |what: &'static str, field: &'static str, got: (String, String)| {
        cases.push((what, field, got));
    };
    case(
        "short username",
        "username",
        violation("u", app.try_register("ab", "x@example.com", PASSWORD).await),
    );
    case(
        "bad email",
        "email",
        violation("e", app.try_register("carol", "nope", PASSWORD).await),
    );
    case(
        "short password",
        "password",
        violation(
            "p",
            app.try_register("carol", "c@example.com", "short").await,
        ),
    );
    let login = |email: &str, password: &str| {
        let mut users = users.clone();
        let req = LoginRequest {
            email: email.into(),
            password: password.into(),
        };
        async move { users.login(req).await }
    };
    case(
        "login without email",
        "email",
        violation("le", login("", "x").await),
    );
    case(
        "login without password",
        "password",
        violation("lp", login("a@example.com", "").await),
    );
    case(
        "empty content",
        "content",
        violation("c0", send("", "", &chat).await),
    );
    case(
        "blank content",
        "content",
        violation("c1", send(" \n ", "", &chat).await),
    );
    case(
        "NUL in content",
        "content",
        violation("c2", send("a\0b", "", &chat).await),
    );
    case(
        "content too long",
        "content",
        violation("c3", send(&"x".repeat(4097), "", &chat).await),
    );
    case(
        "idempotency key too long",
        "idempotency_key",
        violation("k", send("hi", &"k".repeat(129), &chat).await),
    );
    case(
        "no chat id",
        "chat_id",
        violation("ci", send("hi", "", "").await),
    );
    let create = |req: CreateChatRequest| {
        let mut chats = chats.clone();
        let req = authed(req, &alice.token);
        async move { chats.create_chat(req).await }
    };
    case(
        "chat name too long",
        "name",
        violation(
            "n",
            create(CreateChatRequest {
                name: "n".repeat(51),
                is_group: true,
                ..Default::default()
            })
            .await,
        ),
    );
    case(
        "direct chat without email",
        "email",
        violation("de", create(CreateChatRequest::default()).await),
    );
    case(
        "an empty member id",
        "member_ids",
        violation(
            "mi",
            create(CreateChatRequest {
                name: "Room".into(),
                member_ids: vec![String::new()],
                ..Default::default()
            })
            .await,
        ),
    );
    let list = |before: i64, after: Option<i64>| {
        let mut messages = messages.clone();
        let req = authed(
            ListMessagesRequest {
                chat_id: chat.clone(),
                before_seq: before,
                after_seq: after,
                ..Default::default()
            },
            &alice.token,
        );
        async move { messages.list_messages(req).await }
    };
    case(
        "negative before_seq",
        "before_seq",
        violation("b", list(-1, None).await),
    );
    case(
        "negative after_seq",
        "after_seq",
        violation("a", list(0, Some(-1)).await),
    );
    case(
        "both cursors",
        "before_seq",
        violation("ba", list(5, Some(1)).await),
    );
    case(
        "unknown status",
        "status",
        violation(
            "s",
            messages
                .clone()
                .update_message_status(authed(
                    UpdateMessageStatusRequest {
                        message_id: some_id.into(),
                        status: "SEEN".into(),
                    },
                    &alice.token,
                ))
                .await,
        ),
    );
    case(
        "no message id",
        "message_id",
        violation(
            "mid",
            messages
                .clone()
                .update_message_status(authed(
                    UpdateMessageStatusRequest {
                        message_id: String::new(),
                        status: "READ".into(),
                    },
                    &alice.token,
                ))
                .await,
        ),
    );
    case(
        "negative read mark",
        "seq",
        violation(
            "mr",
            messages
                .clone()
                .mark_read(authed(
                    MarkReadRequest {
                        chat_id: chat.clone(),
                        seq: -1,
                    },
                    &alice.token,
                ))
                .await,
        ),
    );
    case(
        "typing without chat",
        "chat_id",
        violation(
            "t",
            messages
                .clone()
                .send_typing(authed(SendTypingRequest::default(), &alice.token))
                .await,
        ),
    );
    case(
        "adding nobody",
        "member_emails",
        violation(
            "am",
            chats
                .clone()
                .add_members(authed(
                    AddMembersRequest {
                        chat_id: room.clone(),
                        ..Default::default()
                    },
                    &alice.token,
                ))
                .await,
        ),
    );
    case(
        "negative SubscribeToChat cursor",
        "after_seq",
        violation(
            "sc",
            messages
                .clone()
                .subscribe_to_chat(authed(
                    SubscribeToChatRequest {
                        chat_id: chat.clone(),
                        after_seq: -1,
                    },
                    &alice.token,
                ))
                .await,
        ),
    );
    case(
        "a cursor that is no chat id",
        "cursors",
        violation(
            "cu",
            EventsServiceClient::new(app.channel.clone())
                .subscribe(authed(
                    SubscribeRequest {
                        cursors: vec![ChatCursor {
                            chat_id: "x".into(),
                            after_seq: 1,
                            ..Default::default()
                        }],
                    },
                    &alice.token,
                ))
                .await,
        ),
    );
    case(
        "GetUser without id",
        "user_id",
        violation(
            "gu",
            users
                .clone()
                .get_user(authed(GetUserRequest::default(), &alice.token))
                .await,
        ),
    );
    for (what, field, (got, description)) in &cases {
        assert_eq!(got, field, "{what}: the violation names {got:?}");
        assert!(!description.is_empty(), "{what}: a description");
    }

    // Over gRPC-Web the same details travel in grpc-status-details-bin.
    let web = GrpcWeb::new(&app);
    for mode in [Mode::Binary, Mode::Text] {
        let reply = web
            .call(
                &format!("{MESSAGES}/SendMessage"),
                &SendMessageRequest {
                    chat_id: chat.clone(),
                    content: String::new(),
                    idempotency_key: String::new(),
                    ..Default::default()
                },
                Some(&alice.token),
                mode,
            )
            .await;
        assert_eq!(reply.status, Code::InvalidArgument as i32, "{reply:?}");
        let details = reply.details.clone().expect("grpc-status-details-bin");
        let status =
            Status::with_details(Code::InvalidArgument, reply.message.clone(), details.into());
        let bad = status.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "content", "{mode:?}");
    }
}

async fn rate_limits_carry_the_retry_delay_in_retry_info(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.send_rate = 1;
        c.send_burst = 1;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    app.try_send(&alice, &chat, "first", "")
        .await
        .expect("within the burst");
    let refused = app
        .try_send(&alice, &chat, "second", "")
        .await
        .expect_err("over the rate");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry = refused
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo delay on {refused:?}"));
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(1001),
        "one a second: {retry:?}"
    );
    let hint: u64 = refused
        .metadata()
        .get("retry-after-ms")
        .expect("retry-after-ms too")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry,
        Duration::from_millis(hint),
        "the details and the hint agree"
    );
}

/// The entry a NOT_FOUND's BadRequest names; the text is as before.
#[track_caller]
fn unknown_entry(result: Result<impl std::fmt::Debug, Status>, text: &str) -> String {
    let status = result.expect_err(text);
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), text);
    let bad = status.get_details_bad_request().expect("BadRequest");
    bad.field_violations[0].field.clone()
}

/// CreateChat / AddMembers with one unknown person among known ones: still
/// NOT_FOUND with the same text, and a BadRequest naming the entry, so a
/// client can point at the address (or id) that belongs to nobody.
async fn an_unknown_member_is_named_by_its_place_in_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mut chats = app.chats.clone();
    let create = |emails: Vec<String>, ids: Vec<String>| {
        authed(
            CreateChatRequest {
                name: "room".into(),
                member_emails: emails,
                member_ids: ids,
                is_group: true,
                ..Default::default()
            },
            &alice.token,
        )
    };
    let emails = vec![
        bob.email.clone(),
        "nobody@example.com".into(),
        carol.email.clone(),
    ];
    let r = chats.create_chat(create(emails, vec![])).await;
    assert_eq!(
        unknown_entry(r, "member_emails: user not found"),
        "member_emails[1]"
    );
    let ids = vec![
        bob.id.clone(),
        carol.id.clone(),
        "0192e3a0-0000-7000-8000-00000000dead".into(),
    ];
    let r = chats.create_chat(create(vec![], ids)).await;
    assert_eq!(
        unknown_entry(r, "member_ids: user not found"),
        "member_ids[2]"
    );
    let room = app.group_chat(&alice, "room", &[&bob]).await;
    let r = chats
        .add_members(authed(
            AddMembersRequest {
                chat_id: room,
                member_emails: vec!["ghost@example.com".into(), carol.email.clone()],
                ..Default::default()
            },
            &alice.token,
        ))
        .await;
    assert_eq!(
        unknown_entry(r, "member_emails: user not found"),
        "member_emails[0]"
    );
}
