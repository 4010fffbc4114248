//! A client generated from the original server's .proto alone
//! (tests/compat/original.proto) works against Tidings unmodified.

use tonic::Code;

use crate::helpers::{Backend, PASSWORD, WAIT, authed, spawn_app};

use original::chats_service_client::ChatsServiceClient;
use original::messages_service_client::MessagesServiceClient;
use original::users_service_client::UsersServiceClient;
use tidings_proto::original;

both_backends!(original_client_full_flow);

async fn original_client_full_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut users = UsersServiceClient::new(app.channel.clone());
    let mut chats = ChatsServiceClient::new(app.channel.clone());
    let mut messages = MessagesServiceClient::new(app.channel.clone());

    let mut created = Vec::new();
    for name in ["alice", "bob"] {
        let resp = users
            .create_user(original::CreateUserRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
            })
            .await
            .expect("CreateUser")
            .into_inner();
        let user = resp.user.expect("user");
        assert_eq!(user.username, name);
        assert_eq!(user.email, format!("{name}@example.com"));
        assert!(user.created_at.is_some());
        assert!(!resp.token.is_empty());
        created.push((user, resp.token));
    }
    let (bob, bob_token) = created.pop().unwrap();
    let (alice, _) = created.pop().unwrap();

    let login = users
        .login(original::LoginRequest {
            email: "alice@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("Login")
        .into_inner();
    assert_eq!(login.user.unwrap().id, alice.id);
    let alice_token = login.token;
    let bad_login = users
        .login(original::LoginRequest {
            email: "alice@example.com".into(),
            password: "not it at all".into(),
        })
        .await
        .expect_err("wrong password");
    assert_eq!(bad_login.code(), Code::Unauthenticated);

    let open_chat = original::CreateChatRequest {
        name: String::new(),
        email: "bob@example.com".into(),
    };
    let chat_id = chats
        .create_chat(authed(open_chat.clone(), &alice_token))
        .await
        .expect("CreateChat by email")
        .into_inner()
        .chat_id;
    let again = chats
        .create_chat(authed(open_chat, &alice_token))
        .await
        .expect("CreateChat again")
        .into_inner()
        .chat_id;
    assert_eq!(again, chat_id, "the same two people share one direct chat");

    // Bob listens before alice writes.
    let mut stream = messages
        .subscribe_to_chat(authed(
            original::SubscribeToChatRequest {
                chat_id: chat_id.clone(),
            },
            &bob_token,
        ))
        .await
        .expect("SubscribeToChat")
        .into_inner();
    let next = async |stream: &mut tonic::Streaming<original::ChatMessage>| {
        tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("a frame within the bound")
            .expect("stream ok")
            .expect("stream open")
    };
    let connected = next(&mut stream).await;
    assert_eq!(connected.message_id, "connection");
    assert_eq!(connected.status, "CONNECTED");

    let send = original::SendMessageRequest {
        chat_id: chat_id.clone(),
        content: "hello from an original client ✉".into(),
        idempotency_key: "compat-key-1".into(),
    };
    let sent = messages
        .send_message(authed(send.clone(), &alice_token))
        .await
        .expect("SendMessage")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(sent.status, "SENT");
    assert_eq!(sent.user_id, alice.id);
    assert_eq!(sent.chat_id, chat_id);
    assert!(sent.sent_at.is_some());
    let retried = messages
        .send_message(authed(send, &alice_token))
        .await
        .expect("SendMessage retry")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(
        retried.id, sent.id,
        "a retry with the same key is the same message"
    );

    let frame = next(&mut stream).await;
    assert_eq!(frame.message_id, sent.id);
    assert_eq!(frame.chat_id, chat_id);
    assert_eq!(frame.user_id, alice.id);
    assert_eq!(frame.username, "alice");
    assert_eq!(frame.content, "hello from an original client ✉");
    assert_eq!(frame.sent_at, sent.sent_at);

    let listed_chats = chats
        .list_chats(authed(
            original::ListChatsRequest { page: 1, limit: 10 },
            &alice_token,
        ))
        .await
        .expect("ListChats")
        .into_inner();
    assert_eq!(listed_chats.total, 1);
    let chat = &listed_chats.chats[0];
    assert_eq!(chat.id, chat_id);
    assert_eq!(chat.name, "bob");
    assert_eq!(chat.members.len(), 2);
    assert_eq!(
        chat.last_message.as_ref().expect("last_message").id,
        sent.id
    );
    let got = chats
        .get_chat(authed(
            original::GetChatRequest {
                chat_id: chat_id.clone(),
            },
            &bob_token,
        ))
        .await
        .expect("GetChat")
        .into_inner()
        .chat
        .unwrap();
    assert_eq!(got.name, "alice");

    let list = original::ListMessagesRequest {
        chat_id: chat_id.clone(),
        page: 1,
        limit: 50,
    };
    let listed = messages
        .list_messages(authed(list.clone(), &bob_token))
        .await
        .expect("ListMessages")
        .into_inner();
    assert_eq!(listed.total, 1, "the retry stored nothing");
    assert_eq!(listed.messages[0].id, sent.id);
    assert_eq!(listed.messages[0].status, "SENT");

    let updated = messages
        .update_message_status(authed(
            original::UpdateMessageStatusRequest {
                message_id: sent.id.clone(),
                status: "READ".into(),
            },
            &bob_token,
        ))
        .await
        .expect("UpdateMessageStatus")
        .into_inner();
    assert_eq!(updated.message_id, sent.id);
    assert_eq!(updated.status, "READ");
    let listed = messages
        .list_messages(authed(list, &alice_token))
        .await
        .expect("ListMessages")
        .into_inner();
    assert_eq!(listed.messages[0].status, "READ", "alice sees bob read it");

    // Bob's own reply reaches his stream too.
    let reply = messages
        .send_message(authed(
            original::SendMessageRequest {
                chat_id: chat_id.clone(),
                content: "got it".into(),
                idempotency_key: String::new(),
            },
            &bob_token,
        ))
        .await
        .expect("reply")
        .into_inner()
        .message
        .unwrap();
    let frame = next(&mut stream).await;
    assert_eq!((frame.message_id, frame.user_id), (reply.id, bob.id));
}
