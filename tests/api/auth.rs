//! Bearer tokens on every authenticated RPC.

use tidings::proto::{
    CreateChatRequest, GetChatRequest, GetMeRequest, GetUserRequest, ListChatsRequest,
    ListMessagesRequest, RefreshTokenRequest, SendMessageRequest, SubscribeToChatRequest,
    UpdateMessageStatusRequest,
};
use tidings::startup::Application;
use tonic::{Code, Status};

use crate::helpers::{
    Backend, JWT_SECRET, TestApp, TestUser, alg_none_token, authed, b64url, mint_token, spawn_app,
    spawn_app_with, with_authorization,
};

both_backends!(
    tokens_minted_with_the_configured_secret_are_accepted,
    bad_tokens_are_rejected_on_every_rpc,
    the_token_secret_is_configured_or_generated_once,
);

async fn tokens_minted_with_the_configured_secret_are_accepted(backend: Backend) {
    // The positive control for the rejections below: the minting helper
    // makes tokens the server accepts, so each rejection is about the one
    // thing that is wrong with the token.
    let app = spawn_app(backend).await;
    let fx = fixture(&app).await;
    let token = mint_token(&fx.a.id, 3600, JWT_SECRET);
    let me = app
        .users
        .clone()
        .get_me(authed(GetMeRequest {}, &token))
        .await
        .expect("GetMe with a minted token")
        .into_inner();
    assert_eq!(me.user.unwrap().id, fx.a.id);
    let results = call_every_rpc(&app, Some(&format!("Bearer {token}")), &fx).await;
    assert_eq!(results.len(), 10);
    for (rpc, result) in results {
        result.unwrap_or_else(|s| panic!("{rpc} with a valid minted token: {s:?}"));
    }
}

/// Two users with a chat and a message in it: the RPCs are called with
/// tokens for `a`, a member, so only the token can make them fail.
pub(crate) struct Fixture {
    pub a: TestUser,
    pub user_id: String,
    pub chat_id: String,
    pub message_id: String,
}

pub(crate) async fn fixture(app: &TestApp) -> Fixture {
    let a = app.register("fixture_a").await;
    let b = app.register("fixture_b").await;
    let chat_id = app.direct_chat(&a, &b).await;
    let message = app.send(&b, &chat_id, "hello").await;
    Fixture {
        a,
        user_id: b.id,
        chat_id,
        message_id: message.id,
    }
}

async fn bad_tokens_are_rejected_on_every_rpc(backend: Backend) {
    let app = spawn_app(backend).await;
    let fx = fixture(&app).await;
    let alice = &fx.a;

    // A real token with its payload swapped for another user's: the
    // signature no longer matches.
    let tampered = {
        let parts: Vec<&str> = alice.token.split('.').collect();
        let now = crate::helpers::now_secs();
        let claims = serde_json::json!({ "sub": fx.user_id, "iat": now, "exp": now + 3600 });
        format!(
            "{}.{}.{}",
            parts[0],
            b64url(claims.to_string().as_bytes()),
            parts[2]
        )
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage", Some("Bearer not-a-jwt".into())),
        ("garbage with dots", Some("Bearer a.b.c".into())),
        (
            "basic scheme",
            Some(format!("Basic {}", b64url(b"alice:password"))),
        ),
        (
            "wrong secret",
            Some(format!(
                "Bearer {}",
                mint_token(&alice.id, 3600, "some-other-secret-that-is-32-bytes-long!!")
            )),
        ),
        (
            "alg none",
            Some(format!("Bearer {}", alg_none_token(&alice.id))),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                mint_token(&alice.id, -3600, JWT_SECRET)
            )),
        ),
        // Past any reasonable clock-skew leeway (jsonwebtoken's default of
        // 60 s would still accept it).
        (
            "expired 30 s ago",
            Some(format!("Bearer {}", mint_token(&alice.id, -30, JWT_SECRET))),
        ),
        ("tampered payload", Some(format!("Bearer {tampered}"))),
    ];
    for (case, header) in &cases {
        let results = call_every_rpc(&app, header.as_deref(), &fx).await;
        assert_eq!(results.len(), 10);
        for (rpc, result) in results {
            match result {
                Err(status) if status.code() == Code::Unauthenticated => {}
                other => panic!("{rpc} with {case} token: expected UNAUTHENTICATED, got {other:?}"),
            }
        }
    }

    // None of the rejected calls had an effect: still the one message, and
    // still the one chat.
    let listed = app.all_messages(alice, &fx.chat_id).await;
    assert_eq!(listed.total, 1, "rejected SendMessage calls stored nothing");
    assert_eq!(listed.messages.len(), 1);
    let chats = app
        .chats
        .clone()
        .list_chats(authed(ListChatsRequest::default(), &alice.token))
        .await
        .expect("ListChats")
        .into_inner();
    assert_eq!(chats.total, 1);
}

/// Calls each authenticated RPC once with the given `authorization` value.
pub(crate) async fn call_every_rpc(
    app: &TestApp,
    header: Option<&str>,
    fx: &Fixture,
) -> Vec<(&'static str, Result<(), Status>)> {
    let mut users = app.users.clone();
    let mut chats = app.chats.clone();
    let mut messages = app.messages.clone();
    let mut out = Vec::new();
    out.push((
        "GetMe",
        users
            .get_me(with_authorization(GetMeRequest {}, header))
            .await
            .map(drop),
    ));
    out.push((
        "GetUser",
        users
            .get_user(with_authorization(
                GetUserRequest {
                    user_id: fx.user_id.clone(),
                },
                header,
            ))
            .await
            .map(drop),
    ));
    out.push((
        "RefreshToken",
        users
            .refresh_token(with_authorization(RefreshTokenRequest {}, header))
            .await
            .map(drop),
    ));
    out.push((
        "CreateChat",
        chats
            .create_chat(with_authorization(
                CreateChatRequest {
                    email: "fixture_b@example.com".into(),
                    ..Default::default()
                },
                header,
            ))
            .await
            .map(drop),
    ));
    out.push((
        "GetChat",
        chats
            .get_chat(with_authorization(
                GetChatRequest {
                    chat_id: fx.chat_id.clone(),
                },
                header,
            ))
            .await
            .map(drop),
    ));
    out.push((
        "ListChats",
        chats
            .list_chats(with_authorization(ListChatsRequest::default(), header))
            .await
            .map(drop),
    ));
    out.push((
        "SendMessage",
        messages
            .send_message(with_authorization(
                SendMessageRequest {
                    chat_id: fx.chat_id.clone(),
                    content: "should not be stored".into(),
                    idempotency_key: String::new(),
                    ..Default::default()
                },
                header,
            ))
            .await
            .map(drop),
    ));
    out.push((
        "ListMessages",
        messages
            .list_messages(with_authorization(
                ListMessagesRequest {
                    chat_id: fx.chat_id.clone(),
                    ..Default::default()
                },
                header,
            ))
            .await
            .map(drop),
    ));
    out.push((
        "UpdateMessageStatus",
        messages
            .update_message_status(with_authorization(
                UpdateMessageStatusRequest {
                    message_id: fx.message_id.clone(),
                    status: "READ".into(),
                },
                header,
            ))
            .await
            .map(drop),
    ));
    // A streaming call may report its status as the response or as the
    // first item of the stream.
    let subscribe = match messages
        .subscribe_to_chat(with_authorization(
            SubscribeToChatRequest {
                chat_id: fx.chat_id.clone(),
                after_seq: 0,
            },
            header,
        ))
        .await
    {
        Err(status) => Err(status),
        Ok(resp) => {
            let mut stream = resp.into_inner();
            match tokio::time::timeout(crate::helpers::WAIT, stream.message()).await {
                Ok(Err(status)) => Err(status),
                Ok(Ok(_)) => Ok(()),
                Err(_) => panic!("SubscribeToChat neither failed nor sent a frame"),
            }
        }
    };
    out.push(("SubscribeToChat", subscribe));
    out
}

async fn the_token_secret_is_configured_or_generated_once(backend: Backend) {
    // A secret shorter than 32 bytes is refused at start-up on any backend.
    let app = spawn_app(backend).await;
    let mut short = app.config.clone();
    short.jwt_secret = Some("too-short".into());
    assert!(
        Application::build(short).await.is_err(),
        "a short JWT secret must be refused"
    );
    let mut unset = app.config.clone();
    unset.jwt_secret = None;
    match backend {
        // Several nodes must share one secret: none configured is an error.
        Backend::Postgres => assert!(
            Application::build(unset).await.is_err(),
            "with DATABASE_URL the JWT secret is required"
        ),
        // Embedded: generated on first start, kept in the data dir.
        Backend::Sqlite => {
            drop(app);
            let mut app = spawn_app_with(backend, |c| c.jwt_secret = None).await;
            let alice = app.register("alice").await;
            let claims =
                jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&alice.token)
                    .expect("a JWT")
                    .claims;
            assert_eq!(claims["sub"], alice.id.as_str());
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.set_required_spec_claims(&["exp"]);
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(
                    &alice.token,
                    &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
                    &validation,
                )
                .is_err(),
                "the generated secret is not the test secret"
            );
            app.restart().await;
            let me = app
                .users
                .clone()
                .get_me(authed(GetMeRequest {}, &alice.token))
                .await
                .expect("the token survives a restart: the secret was kept");
            assert_eq!(me.into_inner().user.unwrap().id, alice.id);
        }
    }
}
