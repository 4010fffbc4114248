//! SearchMessages (issue 16): words folded for case and accents in every
//! script, the last one a prefix; only the caller's chats; current text
//! only (edits, deletes); blocked senders left out; newest or best first,
//! paged by a cursor that belongs to its query; snippets marked with
//! U+0002 / U+0003 and otherwise plain text. CJK behaviour is pinned here
//! as docs/ARCHITECTURE.md describes it.

use std::collections::HashSet;

use prost_types::Timestamp;
use tidings::proto::{SearchHit, SearchMessagesRequest, SearchMessagesResponse};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::helpers::*;

both_backends!(
    words_match_with_case_and_accents_folded_in_every_script,
    the_last_word_is_a_prefix_and_every_word_must_occur,
    only_the_callers_chats_are_searched,
    edits_and_deletes_change_what_matches,
    a_blocked_senders_messages_are_left_out,
    newest_first_pages_by_cursor_without_gaps_or_duplicates,
    best_first_ranks_then_pages,
    a_cursor_belongs_to_its_query,
    bad_input_is_invalid_argument_naming_the_field,
    before_and_after_bound_the_time,
    snippets_mark_the_words_and_stay_plain_text,
    cjk_runs_match_whole_or_by_their_start,
);

impl TestApp {
    pub async fn try_search(
        &self,
        user: &TestUser,
        req: SearchMessagesRequest,
    ) -> Result<SearchMessagesResponse, Status> {
        self.messages
            .clone()
            .search_messages(authed(req, &user.token))
            .await
            .map(|r| r.into_inner())
    }

    /// The contents of every hit of `query` (first page, limit 100).
    pub async fn search_contents(&self, user: &TestUser, query: &str) -> Vec<String> {
        let resp = self
            .try_search(user, search(query).limit(100))
            .await
            .unwrap_or_else(|s| panic!("SearchMessages {query:?}: {s:?}"));
        resp.hits.iter().map(content).collect()
    }
}

fn search(query: &str) -> SearchMessagesRequest {
    SearchMessagesRequest {
        query: query.into(),
        ..Default::default()
    }
}

trait Build {
    fn limit(self, limit: i32) -> Self;
    fn chat(self, chat_id: &str) -> Self;
    fn cursor(self, cursor: &str) -> Self;
    fn best(self) -> Self;
}

impl Build for SearchMessagesRequest {
    fn limit(mut self, limit: i32) -> Self {
        self.limit = limit;
        self
    }
    fn chat(mut self, chat_id: &str) -> Self {
        self.chat_id = chat_id.into();
        self
    }
    fn cursor(mut self, cursor: &str) -> Self {
        self.cursor = cursor.into();
        self
    }
    fn best(mut self) -> Self {
        self.best_first = true;
        self
    }
}

fn content(hit: &SearchHit) -> String {
    hit.message
        .as_ref()
        .expect("SearchHit.message")
        .content
        .clone()
}

fn id(hit: &SearchHit) -> String {
    hit.message.as_ref().expect("SearchHit.message").id.clone()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The field an INVALID_ARGUMENT names in its BadRequest.
#[track_caller]
fn invalid_field(result: Result<SearchMessagesResponse, Status>) -> String {
    let status = result.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    assert_eq!(bad.field_violations.len(), 1, "{bad:?}");
    let field = bad.field_violations[0].field.clone();
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "{status:?}"
    );
    field
}

async fn words_match_with_case_and_accents_folded_in_every_script(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    for text in [
        "Meet me at the Café tomorrow",
        "cafe au lait",
        "CAFÉ OLÉ",
        "Привет, как дела?",
        "Καλημέρα κόσμε",
        "مرحبا بالعالم",
        "nothing to see",
    ] {
        app.send(&alice, &chat, text).await;
    }
    let cafes = strings(&["CAFÉ OLÉ", "Meet me at the Café tomorrow", "cafe au lait"]);
    for query in ["café", "CAFE", "cafe", "Cafè"] {
        assert_eq!(
            sorted(app.search_contents(&bob, query).await),
            cafes,
            "{query}"
        );
    }
    for (query, found) in [
        ("привет", "Привет, как дела?"),
        ("ПРИВЕТ", "Привет, как дела?"),
        ("дела", "Привет, как дела?"),
        ("Καλημέρα", "Καλημέρα κόσμε"),
        ("ΚΌΣΜΕ", "Καλημέρα κόσμε"),
        ("مرحبا", "مرحبا بالعالم"),
        ("بالعالم", "مرحبا بالعالم"),
    ] {
        assert_eq!(app.search_contents(&bob, query).await, [found], "{query}");
    }
    assert!(app.search_contents(&bob, "tomorrowland").await.is_empty());

    // A hit says where it is.
    let resp = app.try_search(&bob, search("lait")).await.unwrap();
    let hit = &resp.hits[0];
    let m = hit.message.as_ref().unwrap();
    assert_eq!(
        (hit.chat_id.as_str(), m.chat_id.as_str()),
        (chat.as_str(), chat.as_str())
    );
    assert_eq!(
        hit.chat_name, "alice",
        "a direct chat is named after the peer"
    );
    assert_eq!(
        (m.user_id.as_str(), m.username.as_str()),
        (alice.id.as_str(), "alice")
    );
    assert_eq!(m.seq, 2);
    assert!(resp.next_cursor.is_empty());
}

async fn the_last_word_is_a_prefix_and_every_word_must_occur(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    for text in ["pomegranate juice", "pomegranates are red", "apple juice"] {
        app.send(&alice, &chat, text).await;
    }
    let found = |q: &'static str| {
        let app = &app;
        let alice = &alice;
        async move { sorted(app.search_contents(alice, q).await) }
    };
    assert_eq!(
        found("pomegr").await,
        strings(&["pomegranate juice", "pomegranates are red"])
    );
    assert_eq!(found("juice pomegranate").await, ["pomegranate juice"]);
    assert_eq!(found("JUICE").await, ["apple juice", "pomegranate juice"]);
    assert_eq!(found("apple jui").await, ["apple juice"]);
    // Only the last word is a prefix.
    assert!(found("pomegr juice").await.is_empty());
    // Every word must occur.
    assert!(found("apple pomegranate").await.is_empty());
    // Operators are only text: no OR, no NOT, no column filter.
    assert!(found("apple OR pomegranate").await.is_empty());
    assert_eq!(found("juice NOT apple").await, Vec::<String>::new());
    assert!(found("content:apple").await.is_empty());
    assert_eq!(found("\"apple\" -juice").await, ["apple juice"]);
    assert_eq!(found("apple & | ! juice:*").await, ["apple juice"]);
}

async fn only_the_callers_chats_are_searched(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let direct = app.direct_chat(&alice, &bob).await;
    let room = app.group_chat(&alice, "Plans", &[&bob]).await;
    let theirs = app.direct_chat(&carol, &dave).await;
    app.send(&alice, &direct, "secret plans in the direct chat")
        .await;
    app.send(&bob, &room, "secret plans in the room").await;
    app.send(&carol, &theirs, "secret plans of carol").await;

    assert_eq!(
        sorted(app.search_contents(&alice, "secret").await),
        strings(&[
            "secret plans in the direct chat",
            "secret plans in the room"
        ])
    );
    assert_eq!(
        app.search_contents(&dave, "secret").await,
        ["secret plans of carol"]
    );
    let outsider = app.register("eve").await;
    assert!(app.search_contents(&outsider, "secret").await.is_empty());

    // Scoped to one chat: nothing of the others.
    let resp = app
        .try_search(&alice, search("secret").chat(&room))
        .await
        .unwrap();
    assert_eq!(resp.hits.len(), 1);
    assert_eq!(content(&resp.hits[0]), "secret plans in the room");
    assert_eq!(
        (
            resp.hits[0].chat_id.as_str(),
            resp.hits[0].chat_name.as_str()
        ),
        (room.as_str(), "Plans")
    );

    // Another's chat, and one that is no chat: NOT_FOUND, as everywhere.
    for chat_id in [
        theirs.as_str(),
        "0192e3a0-0000-7000-8000-000000000000",
        "not-an-id",
    ] {
        let err = app
            .try_search(&alice, search("secret").chat(chat_id))
            .await
            .expect_err("a chat alice is not in");
        assert_eq!(err.code(), Code::NotFound, "{chat_id}: {err:?}");
        assert_eq!(err.message(), "chat not found");
    }
    let err = app
        .try_search(&outsider, search("secret").chat(&theirs))
        .await;
    assert_eq!(err.unwrap_err().code(), Code::NotFound);
}

async fn edits_and_deletes_change_what_matches(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let edited = app.send(&alice, &chat, "original wording here").await;
    let doomed = app.send(&alice, &chat, "doomed words here").await;
    assert_eq!(
        app.search_contents(&bob, "original").await,
        ["original wording here"]
    );
    assert_eq!(
        app.search_contents(&bob, "doomed").await,
        ["doomed words here"]
    );
    assert_eq!(app.search_contents(&bob, "here").await.len(), 2);

    app.edit(&alice, &edited.id, "revised phrasing here")
        .await
        .expect("edit");
    app.delete(&alice, &doomed.id).await.expect("delete");

    assert!(app.search_contents(&bob, "original").await.is_empty());
    assert!(app.search_contents(&bob, "wording").await.is_empty());
    assert_eq!(
        app.search_contents(&bob, "revised").await,
        ["revised phrasing here"]
    );
    assert!(app.search_contents(&bob, "doomed").await.is_empty());
    let resp = app.try_search(&bob, search("here")).await.unwrap();
    assert_eq!(resp.hits.len(), 1);
    let m = resp.hits[0].message.as_ref().unwrap();
    assert_eq!(m.id, edited.id);
    assert!(m.edited_at.is_some());
    assert!(resp.hits[0].snippet.contains("phrasing"));
    // The rest of the history is still found.
    app.send(&bob, &chat, "here again").await;
    assert_eq!(app.search_contents(&alice, "here").await.len(), 2);
}

async fn a_blocked_senders_messages_are_left_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.group_chat(&carol, "Bakery", &[&alice, &bob]).await;
    app.send(&bob, &room, "banana bread").await;
    let answer = app.send(&carol, &room, "banana split").await;
    assert_eq!(app.search_contents(&alice, "banana").await.len(), 2);

    app.block(&alice, &bob.id).await.expect("BlockUser");
    assert_eq!(
        app.search_contents(&alice, "banana").await,
        ["banana split"]
    );
    assert!(app.search_contents(&alice, "bread").await.is_empty());
    // Only for the blocker.
    assert_eq!(app.search_contents(&carol, "banana").await.len(), 2);
    assert_eq!(app.search_contents(&bob, "banana").await.len(), 2);
    assert_eq!(answer.user_id, carol.id);

    app.unblock(&alice, &bob.id).await.expect("UnblockUser");
    assert_eq!(app.search_contents(&alice, "banana").await.len(), 2);
}

/// Follows next_cursor to the end; every page but the last is full.
async fn all_pages(
    app: &TestApp,
    user: &TestUser,
    req: SearchMessagesRequest,
) -> Vec<Vec<SearchHit>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let resp = app
            .try_search(user, req.clone().cursor(&cursor))
            .await
            .expect("SearchMessages page");
        let full = resp.hits.len() == req.limit as usize;
        pages.push(resp.hits);
        if resp.next_cursor.is_empty() {
            return pages;
        }
        assert!(full, "a page before the last is full");
        assert!(pages.len() < 50, "paging does not end");
        cursor = resp.next_cursor;
    }
}

async fn newest_first_pages_by_cursor_without_gaps_or_duplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let direct = app.direct_chat(&alice, &bob).await;
    let room = app.group_chat(&bob, "Room", &[&alice]).await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let chat = if i % 3 == 0 { &room } else { &direct };
        sent.push(app.send(&bob, chat, &format!("filler number {i}")).await.id);
        if i % 5 == 0 {
            app.send(&bob, chat, "something else").await;
        }
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();

    let pages = all_pages(&app, &alice, search("filler").limit(10)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let ids: Vec<String> = pages.iter().flatten().map(id).collect();
    assert_eq!(ids, newest_first, "newest first, each once, none missing");

    // Exactly one page: no cursor.
    let resp = app
        .try_search(&alice, search("filler").limit(25))
        .await
        .unwrap();
    assert_eq!(resp.hits.len(), 25);
    assert!(resp.next_cursor.is_empty());
    // The default page is 20.
    let resp = app.try_search(&alice, search("filler")).await.unwrap();
    assert_eq!(resp.hits.len(), 20);
    assert!(!resp.next_cursor.is_empty());

    // A message sent between two pages is newer than the cursor: the
    // following pages neither repeat nor skip anything.
    let first = app
        .try_search(&alice, search("number").limit(4))
        .await
        .unwrap();
    app.send(&bob, &direct, "filler number 99").await;
    let rest = app
        .try_search(
            &alice,
            search("number").limit(100).cursor(&first.next_cursor),
        )
        .await
        .unwrap();
    let ids: Vec<String> = first.hits.iter().chain(&rest.hits).map(id).collect();
    assert_eq!(ids, newest_first);
}

async fn best_first_ranks_then_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    // Same length; the oldest says it three times.
    for text in ["kiwi kiwi kiwi", "kiwi pear plum", "kiwi lime fig"] {
        app.send(&alice, &chat, text).await;
    }
    let newest = app.try_search(&bob, search("kiwi")).await.unwrap();
    assert_eq!(
        newest.hits.iter().map(content).collect::<Vec<_>>(),
        ["kiwi lime fig", "kiwi pear plum", "kiwi kiwi kiwi"]
    );
    let best = app.try_search(&bob, search("kiwi").best()).await.unwrap();
    let order = ["kiwi kiwi kiwi", "kiwi lime fig", "kiwi pear plum"];
    assert_eq!(best.hits.iter().map(content).collect::<Vec<_>>(), order);

    let pages = all_pages(&app, &bob, search("kiwi").best().limit(1)).await;
    assert_eq!(
        pages.iter().flatten().map(content).collect::<Vec<_>>(),
        order
    );
}

async fn a_cursor_belongs_to_its_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    for i in 0..3 {
        app.send(&alice, &chat, &format!("cursor test {i}")).await;
    }
    let first = app
        .try_search(&alice, search("cursor").limit(1))
        .await
        .unwrap();
    let cursor = first.next_cursor.clone();
    assert!(!cursor.is_empty());
    // The same search goes on (the page size may change).
    let next = app
        .try_search(&alice, search("cursor").limit(2).cursor(&cursor))
        .await
        .unwrap();
    assert_eq!(next.hits.len(), 2);
    assert_ne!(id(&next.hits[0]), id(&first.hits[0]));

    let time = Timestamp {
        seconds: 1,
        nanos: 0,
    };
    for (what, req) in [
        ("another query", search("cursors")),
        ("another chat", search("cursor").chat(&chat)),
        ("best first", search("cursor").best()),
        (
            "a bound",
            SearchMessagesRequest {
                after: Some(time),
                ..search("cursor")
            },
        ),
    ] {
        let err = app
            .try_search(&alice, req.limit(1).cursor(&cursor))
            .await
            .expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message()
                .starts_with("cursor: belongs to another search"),
            "{what}: {err:?}"
        );
    }
    // Another user may not read more with it, but it shows nothing either:
    // the cursor is only a position, every page is filtered by the caller.
    let resp = app
        .try_search(&bob, search("cursor").limit(1).cursor(&cursor))
        .await
        .unwrap();
    assert_eq!(resp.hits.len(), 1);
}

async fn bad_input_is_invalid_argument_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    app.send(&alice, &chat, "something to find").await;
    let long = "a".repeat(257);
    let at = |seconds: i64, nanos: i32| Some(Timestamp { seconds, nanos });
    let cases: Vec<(&str, SearchMessagesRequest, &str)> = vec![
        ("empty", search(""), "query"),
        ("blank", search("  \t\n "), "query"),
        ("too long", search(&long), "query"),
        ("punctuation only", search("?! ... -- «»"), "query"),
        ("limit 101", search("find").limit(101), "limit"),
        ("limit -1", search("find").limit(-1), "limit"),
        (
            "garbage cursor",
            search("find").cursor("garbage!"),
            "cursor",
        ),
        (
            "base64 but not a cursor",
            search("find").cursor("eyJ2IjoxfQ"),
            "cursor",
        ),
        (
            "after later than before",
            SearchMessagesRequest {
                before: at(10, 0),
                after: at(20, 0),
                ..search("find")
            },
            "before",
        ),
        (
            "bad nanos",
            SearchMessagesRequest {
                after: at(10, -1),
                ..search("find")
            },
            "after",
        ),
    ];
    for (what, req, field) in cases {
        assert_eq!(
            invalid_field(app.try_search(&alice, req).await),
            field,
            "{what}"
        );
    }
    // 256 characters are fine.
    let ok = format!("{} find", "b".repeat(251));
    assert_eq!(ok.chars().count(), 256);
    app.try_search(&alice, search(&ok))
        .await
        .expect("256 characters");
    // Without a token: UNAUTHENTICATED.
    let err = app
        .messages
        .clone()
        .search_messages(search("find"))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
}

async fn before_and_after_bound_the_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let one = app.send(&alice, &chat, "tick one").await;
    app.send(&alice, &chat, "tick two").await;
    let three = app.send(&alice, &chat, "tick three").await;
    let bounded = |before: Option<Timestamp>, after: Option<Timestamp>| {
        let app = &app;
        let bob = &bob;
        async move {
            let req = SearchMessagesRequest {
                before,
                after,
                ..search("tick")
            };
            let resp = app.try_search(bob, req).await.expect("bounded search");
            resp.hits.iter().map(content).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        bounded(None, None).await,
        ["tick three", "tick two", "tick one"]
    );
    assert_eq!(bounded(None, one.sent_at).await, ["tick three", "tick two"]);
    assert_eq!(bounded(three.sent_at, None).await, ["tick two", "tick one"]);
    assert_eq!(bounded(three.sent_at, one.sent_at).await, ["tick two"]);
    let future = Timestamp {
        seconds: now_secs() + 3600,
        nanos: 0,
    };
    assert!(bounded(None, Some(future)).await.is_empty());
    assert_eq!(bounded(Some(future), None).await.len(), 3);
}

async fn snippets_mark_the_words_and_stay_plain_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let markup = "Say <b>html</b> & <script>alert(1)</script> to alice@example.com";
    app.send(&alice, &chat, markup).await;
    app.send(&alice, &chat, "pomegranates are red").await;
    let long: Vec<String> = (0..100)
        .map(|i| {
            if i == 50 {
                "needle".to_owned()
            } else {
                format!("w{i}")
            }
        })
        .collect();
    app.send(&alice, &chat, &long.join(" ")).await;

    let snippet = |q: &'static str| {
        let app = &app;
        let bob = &bob;
        async move {
            let resp = app.try_search(bob, search(q)).await.expect("search");
            assert_eq!(resp.hits.len(), 1, "{q}");
            resp.hits[0].snippet.clone()
        }
    };
    // The content as it is, each match between U+0002 and U+0003.
    assert_eq!(
        snippet("html").await,
        "Say <b>\u{2}html\u{3}</b> & <script>alert(1)</script> to alice@example.com"
    );
    assert_eq!(
        snippet("example").await,
        "Say <b>html</b> & <script>alert(1)</script> to alice@\u{2}example\u{3}.com"
    );
    assert_eq!(
        snippet("script").await,
        "Say <b>html</b> & <\u{2}script\u{3}>alert(1)</\u{2}script\u{3}> to alice@example.com"
    );
    assert_eq!(
        snippet("pomegranate").await,
        "\u{2}pomegranates\u{3} are red"
    );
    // A long message: a window of about 30 words around the match.
    let s = snippet("needle").await;
    assert!(s.contains("\u{2}needle\u{3}"), "{s}");
    assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
    let words = s.split_whitespace().count();
    assert!((10..=31).contains(&words), "{words} words: {s}");
    assert_eq!(s.matches('\u{2}').count(), 1);
    assert_eq!(s.matches('\u{3}').count(), 1);
}

async fn cjk_runs_match_whole_or_by_their_start(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let text = "東京タワー 我爱北京 서울 특별시";
    app.send(&alice, &chat, text).await;
    // Both tokenisers read a run of CJK characters without spaces as one
    // word: the whole run matches, and its start as the last word.
    let found: HashSet<&str> = ["東京タワー", "東京", "我爱北京", "我爱", "서울", "특별"].into();
    for q in ["東京タワー", "東京", "我爱北京", "我爱", "서울", "특별"] {
        assert_eq!(
            app.search_contents(&bob, q).await.len(),
            usize::from(found.contains(q)),
            "{q}"
        );
    }
    // Not its middle or end, nor its start when another word follows.
    for q in ["タワー", "北京", "京", "東京 서울"] {
        assert!(app.search_contents(&bob, q).await.is_empty(), "{q}");
    }
    assert_eq!(app.search_contents(&bob, "서울 특별").await, [text]);
}
