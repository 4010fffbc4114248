//! Input the probe found accepted and should not have been: terminal
//! control sequences and invisible-only text in content, and other
//! spellings of ids.

use tidings::proto::GetChatRequest;
use tonic::Code;

use crate::helpers::{Backend, authed, expect_code, spawn_app};

both_backends!(
    control_characters_and_invisible_text_are_refused_and_nothing_is_stored,
    ids_have_one_spelling,
);

async fn control_characters_and_invisible_text_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    for bad in [
        "\u{1b}[2J\u{1b}[31mred alert",
        "bell\u{7}",
        "c1 csi \u{9b}31m",
        "del\u{7f}",
        "nul\0",
    ] {
        let status = expect_code(
            app.try_send(&alice, &chat, bad, "").await,
            Code::InvalidArgument,
            "content",
        );
        assert!(
            status.message().contains("control") || status.message().contains("NUL"),
            "{bad:?}: {status:?}"
        );
    }
    for blank in [
        "\u{200B}",
        "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}",
        " \u{2800} ",
    ] {
        let status = expect_code(
            app.try_send(&alice, &chat, blank, "").await,
            Code::InvalidArgument,
            "content",
        );
        assert!(status.message().contains("blank"), "{blank:?}: {status:?}");
    }
    assert_eq!(
        app.all_messages(&bob, &chat).await.total,
        0,
        "nothing refused was stored"
    );
    // What passes is kept byte for byte: tabs, line breaks, a joined emoji.
    let kept = "tab\there\r\nline\n👩\u{200D}💻";
    let sent = app.send(&alice, &chat, kept).await;
    assert_eq!(sent.content, kept);
    let listed = app.all_messages(&bob, &chat).await;
    assert_eq!(listed.messages[0].content, kept);
}

async fn ids_have_one_spelling(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let get = |chat_id: String| {
        let mut chats = app.chats.clone();
        let req = authed(GetChatRequest { chat_id }, &alice.token);
        async move { chats.get_chat(req).await }
    };
    get(chat.clone())
        .await
        .expect("the id as the server wrote it");
    let bare: String = chat.chars().filter(|c| *c != '-').collect();
    for other in [
        chat.to_uppercase(),
        format!("{{{chat}}}"),
        format!("urn:uuid:{chat}"),
        bare,
    ] {
        expect_code(get(other.clone()).await, Code::NotFound, "chat");
        expect_code(
            app.try_send(&alice, &other, "hi", "").await,
            Code::NotFound,
            "chat",
        );
    }
    assert_eq!(app.all_messages(&bob, &chat).await.total, 0);
}
