//! Registration, login and profiles: UsersService.

use tidings::proto::{
    GetMeRequest, GetUserRequest, LeaveChatRequest, LoginRequest, RefreshTokenRequest,
};
use tonic::Code;

use crate::helpers::{
    Backend, PASSWORD, TestUser, authed, decode_token, expect_code, now_secs, spawn_app,
};

both_backends!(
    create_user_returns_user_and_working_token,
    username_rules,
    email_rules,
    password_rules,
    duplicates_are_rejected_case_insensitively,
    login_accepts_only_the_right_password,
    get_user_and_get_me,
    get_user_shows_the_e_mail_only_to_people_who_share_a_chat,
    refresh_token_gives_a_working_token,
);

async fn create_user_returns_user_and_working_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .try_register("Alice_1.x-y", "Alice.Mixed@Example.COM", PASSWORD)
        .await
        .expect("CreateUser");
    let user = resp.user.expect("user");
    assert!(!user.id.is_empty());
    assert_eq!(user.username, "Alice_1.x-y", "username is kept as given");
    assert_eq!(
        user.email, "alice.mixed@example.com",
        "email is stored lower-case"
    );
    assert!(user.created_at.is_some(), "created_at is set");

    // The token is an HS256 JWT for this user, signed with the configured secret.
    let claims = decode_token(&resp.token);
    assert_eq!(claims["sub"], user.id.as_str());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    let now = now_secs();
    assert!(iat <= now + 5 && iat >= now - 60, "iat {iat} vs now {now}");
    assert!(exp > now + 3600, "default lifetime is 24h, exp {exp}");
    let header = jsonwebtoken::decode_header(&resp.token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    if let Some(expires_at) = resp.expires_at {
        assert!(
            (expires_at.seconds - exp).abs() <= 1,
            "expires_at matches exp"
        );
    }

    let me = app
        .users
        .clone()
        .get_me(authed(GetMeRequest {}, &resp.token))
        .await
        .expect("GetMe with the new token")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.id, user.id);
    assert_eq!(me.email, "alice.mixed@example.com");
    assert_eq!(me.username, "Alice_1.x-y");
}

async fn username_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let too_long = "u".repeat(33);
    for (i, bad) in [
        "",
        "ab",
        too_long.as_str(),
        "has space",
        "émile",
        "semi;colon",
        "at@sign",
        "slash/",
        "tab\tname",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("user{i}@example.com");
        let result = app.try_register(bad, &email, PASSWORD).await;
        expect_code(result, Code::InvalidArgument, "username");
    }
    // The boundaries and every allowed character class.
    app.try_register("a_b", "three@example.com", PASSWORD)
        .await
        .expect("3-character username");
    let longest = format!("Ab9_.-{}", "z".repeat(26));
    assert_eq!(longest.len(), 32);
    app.try_register(&longest, "thirtytwo@example.com", PASSWORD)
        .await
        .expect("32-character username");
}

async fn email_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    // Labels stay within 63 and the local part within 64, so only the total
    // length decides: 254 is allowed, 255 is not.
    let email_of_len = |len: usize| {
        let local = "u".repeat(60);
        let last = len - (60 + 1 + 63 + 1 + 63 + 1 + 1 + 3);
        format!(
            "{local}@{}.{}.{}.com",
            "d".repeat(63),
            "e".repeat(63),
            "f".repeat(last)
        )
    };
    let too_long = email_of_len(255);
    assert_eq!(too_long.len(), 255);
    for (i, bad) in [
        "",
        "not-an-email",
        "a@",
        "@example.com",
        "two@@example.com",
        "sp ace@example.com",
        too_long.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let result = app.try_register(&format!("user{i}"), bad, PASSWORD).await;
        expect_code(result, Code::InvalidArgument, "email");
    }
    let longest = email_of_len(254);
    assert_eq!(longest.len(), 254);
    let user = app
        .try_register("longest", &longest.to_uppercase(), PASSWORD)
        .await
        .expect("254-character email")
        .user
        .unwrap();
    assert_eq!(user.email, longest, "stored lower-case");
}

async fn password_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    // The limits are in bytes: 7 two-byte characters are 14 bytes (allowed),
    // 65 of them are 130 bytes (too long).
    let cases = [
        ("short", "1234567".to_string(), false),
        ("empty", String::new(), false),
        ("long", "p".repeat(129), false),
        ("longutf8", "é".repeat(65), false),
        ("min", "12345678".to_string(), true),
        ("max", "p".repeat(128), true),
        ("utf8", "é".repeat(7), true),
    ];
    for (name, password, ok) in cases {
        let result = app
            .try_register(name, &format!("{name}@example.com"), &password)
            .await;
        if ok {
            result.unwrap_or_else(|s| panic!("password {name} must be accepted: {s:?}"));
            // And it is the password: Login with it works.
            app.users
                .clone()
                .login(LoginRequest {
                    email: format!("{name}@example.com"),
                    password,
                })
                .await
                .unwrap_or_else(|s| panic!("login with password {name}: {s:?}"));
        } else {
            expect_code(result, Code::InvalidArgument, "password");
        }
    }
}

async fn duplicates_are_rejected_case_insensitively(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let same_username = app
        .try_register("ALICE", "someone.else@example.com", PASSWORD)
        .await;
    expect_code(same_username, Code::AlreadyExists, "");
    let same_email = app
        .try_register("someone_else", "Alice@EXAMPLE.com", PASSWORD)
        .await;
    expect_code(same_email, Code::AlreadyExists, "");
    // The rejected attempts left nothing behind: the names are still free.
    app.try_register("someone_else", "someone.else@example.com", PASSWORD)
        .await
        .expect("a fresh username and email are accepted");
}

async fn login_accepts_only_the_right_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let mut users = app.users.clone();

    let ok = users
        .login(LoginRequest {
            email: "alice@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("Login")
        .into_inner();
    assert_eq!(ok.user.as_ref().unwrap().id, alice.id);
    assert_eq!(decode_token(&ok.token)["sub"], alice.id.as_str());
    let me = users
        .get_me(authed(GetMeRequest {}, &ok.token))
        .await
        .expect("GetMe with the login token")
        .into_inner();
    assert_eq!(me.user.unwrap().id, alice.id);

    // Emails are case-insensitive, so logging in with another case works.
    let upper = users
        .login(LoginRequest {
            email: "ALICE@Example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("Login with the email in another case");
    assert_eq!(upper.into_inner().user.unwrap().id, alice.id);

    let wrong_password = users
        .login(LoginRequest {
            email: "alice@example.com".into(),
            password: "not the password".into(),
        })
        .await;
    let wrong_password = expect_code(wrong_password, Code::Unauthenticated, "");
    let unknown_email = users
        .login(LoginRequest {
            email: "nobody@example.com".into(),
            password: PASSWORD.into(),
        })
        .await;
    let unknown_email = expect_code(unknown_email, Code::Unauthenticated, "");
    assert_eq!(
        wrong_password.message(),
        unknown_email.message(),
        "wrong password and unknown email must be indistinguishable"
    );

    let no_email = users
        .login(LoginRequest {
            email: String::new(),
            password: PASSWORD.into(),
        })
        .await;
    expect_code(no_email, Code::InvalidArgument, "email");
    let no_password = users
        .login(LoginRequest {
            email: "alice@example.com".into(),
            password: String::new(),
        })
        .await;
    expect_code(no_password, Code::InvalidArgument, "password");
}

async fn get_user_and_get_me(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut users = app.users.clone();

    let me = users
        .get_me(authed(GetMeRequest {}, &alice.token))
        .await
        .expect("GetMe")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (me.id.as_str(), me.username.as_str(), me.email.as_str()),
        (alice.id.as_str(), "alice", "alice@example.com")
    );
    let bob_me = users
        .get_me(authed(GetMeRequest {}, &bob.token))
        .await
        .expect("GetMe")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(bob_me.id, bob.id, "GetMe answers for the caller");

    let other = users
        .get_user(authed(
            GetUserRequest {
                user_id: bob.id.clone(),
            },
            &alice.token,
        ))
        .await
        .expect("GetUser")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(other.id, bob.id);
    assert_eq!(other.username, "bob");

    let unknown = users
        .get_user(authed(
            GetUserRequest {
                user_id: uuid::Uuid::new_v4().to_string(),
            },
            &alice.token,
        ))
        .await;
    expect_code(unknown, Code::NotFound, "");
    let malformed = users
        .get_user(authed(
            GetUserRequest {
                user_id: "not-a-user-id".into(),
            },
            &alice.token,
        ))
        .await
        .expect_err("GetUser with a malformed id");
    assert!(
        matches!(malformed.code(), Code::NotFound | Code::InvalidArgument),
        "malformed user id: {malformed:?}"
    );
}

async fn get_user_shows_the_e_mail_only_to_people_who_share_a_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let mut users = app.users.clone();
    let mut email_of = async |whom: &TestUser, asker: &TestUser| {
        users
            .get_user(authed(
                GetUserRequest {
                    user_id: whom.id.clone(),
                },
                &asker.token,
            ))
            .await
            .expect("GetUser")
            .into_inner()
            .user
            .unwrap()
            .email
    };
    // Strangers see the username, not the address; oneself sees it.
    assert_eq!(email_of(&bob, &alice).await, "");
    assert_eq!(email_of(&alice, &alice).await, "alice@example.com");
    // Sharing a chat shows it, both ways; carol, outside it, still sees none.
    app.direct_chat(&alice, &bob).await;
    assert_eq!(email_of(&bob, &alice).await, "bob@example.com");
    assert_eq!(email_of(&alice, &bob).await, "alice@example.com");
    assert_eq!(email_of(&bob, &carol).await, "");
    // A room carol is in with bob shows it to her; leaving it hides it again.
    let room = app.group_chat(&carol, "room", &[&bob]).await;
    assert_eq!(email_of(&bob, &carol).await, "bob@example.com");
    app.chats
        .clone()
        .leave_chat(authed(
            LeaveChatRequest {
                chat_id: room.clone(),
            },
            &carol.token,
        ))
        .await
        .expect("LeaveChat");
    assert_eq!(email_of(&bob, &carol).await, "");
}

async fn refresh_token_gives_a_working_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let mut users = app.users.clone();
    let old_exp = decode_token(&alice.token)["exp"].as_i64().unwrap();

    let refreshed = users
        .refresh_token(authed(RefreshTokenRequest {}, &alice.token))
        .await
        .expect("RefreshToken")
        .into_inner();
    let claims = decode_token(&refreshed.token);
    assert_eq!(claims["sub"], alice.id.as_str());
    assert!(claims["exp"].as_i64().unwrap() >= old_exp);
    let me = users
        .get_me(authed(GetMeRequest {}, &refreshed.token))
        .await
        .expect("GetMe with the refreshed token")
        .into_inner();
    assert_eq!(me.user.unwrap().id, alice.id);
}
