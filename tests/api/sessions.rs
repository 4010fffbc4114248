//! Sessions people can end: ChangePassword and LogoutEverywhere bump the
//! user's token generation, and every token issued before is refused, on
//! unary calls at once on this node and on open streams within
//! AUTH_CACHE_TTL.

use std::time::Duration;

use tidings::proto::{
    ChangePasswordRequest, GetMeRequest, LoginRequest, LogoutEverywhereRequest,
    RefreshTokenRequest, event,
};
use tonic::Code;

use crate::helpers::*;
use crate::realtime::open_events;

both_backends!(
    change_password_ends_every_older_token_and_keeps_this_device,
    a_wrong_current_password_changes_nothing,
    logout_everywhere_ends_other_devices_and_their_streams,
);

async fn get_me(app: &TestApp, token: &str) -> Result<(), tonic::Status> {
    app.users
        .clone()
        .get_me(authed(GetMeRequest {}, token))
        .await
        .map(drop)
}

async fn login(app: &TestApp, email: &str, password: &str) -> Result<String, tonic::Status> {
    app.users
        .clone()
        .login(tonic::Request::new(LoginRequest {
            email: email.into(),
            password: password.into(),
        }))
        .await
        .map(|r| r.into_inner().token)
}

fn assert_ended(result: Result<(), tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert!(
        status.message().starts_with("token ended"),
        "{what}: {status:?}"
    );
}

async fn change_password_ends_every_older_token_and_keeps_this_device(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let laptop = login(&app, &alice.email, PASSWORD).await.unwrap();
    let refreshed = app
        .users
        .clone()
        .refresh_token(authed(RefreshTokenRequest {}, &laptop))
        .await
        .unwrap()
        .into_inner()
        .token;
    let new_password = "a brand new passphrase";
    let answer = app
        .users
        .clone()
        .change_password(authed(
            ChangePasswordRequest {
                old_password: PASSWORD.into(),
                new_password: new_password.into(),
            },
            &alice.token,
        ))
        .await
        .expect("ChangePassword")
        .into_inner();
    assert!(answer.expires_at.is_some());
    get_me(&app, &answer.token)
        .await
        .expect("the new token works");
    for (what, token) in [
        ("the token that asked", &alice.token),
        ("another device's", &laptop),
        ("a refreshed one", &refreshed),
    ] {
        assert_ended(get_me(&app, token).await, what);
    }
    // The old password is gone, the new one logs in, and its tokens work.
    let old = login(&app, &alice.email, PASSWORD).await.expect_err("old");
    assert_eq!(old.code(), Code::Unauthenticated);
    let fresh = login(&app, &alice.email, new_password).await.expect("new");
    get_me(&app, &fresh)
        .await
        .expect("a token after the change");
    // An ended token cannot change it back.
    let again = app
        .users
        .clone()
        .change_password(authed(
            ChangePasswordRequest {
                old_password: new_password.into(),
                new_password: PASSWORD.into(),
            },
            &laptop,
        ))
        .await
        .map(drop);
    assert_ended(again, "ChangePassword with an ended token");
}

async fn a_wrong_current_password_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let mut users = app.users.clone();
    for (old, new, field) in [
        ("not my password", "whatever it is now", "old_password"),
        ("", "whatever it is now", "old_password"),
        (PASSWORD, "short", "new_password"),
    ] {
        let refused = users
            .change_password(authed(
                ChangePasswordRequest {
                    old_password: old.into(),
                    new_password: new.into(),
                },
                &alice.token,
            ))
            .await;
        expect_code(refused, Code::InvalidArgument, field);
    }
    get_me(&app, &alice.token)
        .await
        .expect("the token still works");
    login(&app, &alice.email, PASSWORD)
        .await
        .expect("the password is unchanged");
}

async fn logout_everywhere_ends_other_devices_and_their_streams(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.auth_cache_ttl = Duration::from_millis(300);
    })
    .await;
    let alice = app.register("alice").await;
    let phone = TestUser {
        token: login(&app, &alice.email, PASSWORD).await.unwrap(),
        ..alice.clone()
    };
    let mut phone_events = open_events(&app.channel, &phone, &[]).await.unwrap();
    let kept = app
        .users
        .clone()
        .logout_everywhere(authed(LogoutEverywhereRequest {}, &alice.token))
        .await
        .expect("LogoutEverywhere")
        .into_inner()
        .token;
    assert_ended(get_me(&app, &phone.token).await, "the phone's token");
    assert_ended(get_me(&app, &alice.token).await, "the asking token");
    get_me(&app, &kept).await.expect("the token it answered");
    // The phone's open stream ends with UNAUTHENTICATED (it asks again
    // every AUTH_CACHE_TTL), not by the token's expiry a day later.
    let end = loop {
        match phone_events.next_item().await {
            Ok(Some(tidings::proto::Event {
                kind: Some(event::Kind::Heartbeat(_) | event::Kind::Presence(_)),
            })) => continue,
            Ok(other) => panic!("the stream went on: {other:?}"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unauthenticated, "{end:?}");
    assert!(end.message().starts_with("token ended"), "{end:?}");
    // A stream opened with the kept token works.
    let me = TestUser {
        token: kept,
        ..alice.clone()
    };
    open_events(&app.channel, &me, &[])
        .await
        .expect("a stream with the new token");
}
