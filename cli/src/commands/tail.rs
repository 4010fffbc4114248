//! tail: every new message as one plain line, with resume.
//!
//! It follows the user stream (`EventsService.Subscribe`) with a cursor per
//! chat: the last seq it printed, kept in `cursors.json`. The server replays
//! what came after each cursor before going live, so a tail that lost its
//! connection, or was stopped and started again, prints exactly what it
//! missed. Every line is printed and flushed before its cursor is saved: a
//! tail killed between the two (SIGKILL, power loss) prints that one
//! message again next time rather than lose it. Ctrl-C and SIGTERM are only
//! looked at between messages, so a stopped tail never repeats a line.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;

use anyhow::Context as _;
use tidings_proto::{ChatCursor, Event, GetChatRequest, Message, SubscribeRequest, event};
use tokio::time::Instant;
use tonic::Streaming;

use super::StopSignal;
use super::chats::all_chats;
use crate::api::{Api, Context, call};
use crate::args::TailArgs;
use crate::error::CliError;
use crate::format::tail_line;
use crate::retry::{Backoff, is_final, is_transient, wait_after};
use crate::store::Store;

pub async fn run(ctx: &Context, args: TailArgs) -> anyhow::Result<()> {
    if args.count == Some(0) {
        return Ok(());
    }
    let mut api = ctx.login().await?;
    let me = api.session.user_id.clone();
    let filter: Option<HashSet<String>> =
        (!args.chat_ids.is_empty()).then(|| args.chat_ids.iter().cloned().collect());
    let mut stop = StopSignal::new();
    let mut backoff = Backoff::default();

    // Where each chat starts: its saved cursor; else its whole history with
    // --from-start, or what comes from now on.
    let chats = loop {
        match starting_points(&mut api, filter.as_ref()).await {
            Ok(chats) => break chats,
            Err(err) if is_transient(&err) => {
                if !pause(&mut backoff, &mut stop, &err, "starting").await {
                    return Ok(());
                }
            }
            Err(err) => return Err(err).context("finding the chats to follow"),
        }
    };
    let saved = if args.from_start {
        BTreeMap::new()
    } else {
        ctx.store.cursors(&me)?
    };
    let mut cursors = BTreeMap::new();
    for (chat_id, last_seq) in chats {
        let start = match saved.get(&chat_id) {
            Some(seq) => *seq,
            None if args.from_start => 0,
            None => last_seq,
        };
        cursors.insert(chat_id, start);
    }
    // A later run resumes from here even if this one prints nothing.
    ctx.store.save_cursors(&me, &cursors)?;

    let mut tail = Tail {
        store: &ctx.store,
        me,
        filter,
        cursors,
        printed: 0,
        count: args.count,
    };
    let mut connections = 0u64;
    loop {
        if api.refresh_at() <= Instant::now() {
            match api.refresh(&ctx.store).await {
                Ok(()) => {}
                Err(err) => match err.downcast::<CliError>() {
                    Ok(err) if is_transient(&err) => {
                        if !pause(&mut backoff, &mut stop, &err, "refreshing the token").await {
                            return Ok(());
                        }
                        continue;
                    }
                    Ok(err) => return Err(err).context("refreshing the token"),
                    Err(err) => return Err(err),
                },
            }
        }
        // Chats joined while the stream was down have no cursor yet: without
        // one they would start live and lose what was sent meanwhile.
        if connections > 0
            && tail.filter.is_none()
            && let Err(err) = tail.adopt_new_chats(&mut api).await
        {
            match err.downcast::<CliError>() {
                Ok(err) if !is_final(&err) => {
                    if !pause(&mut backoff, &mut stop, &err, "listing chats").await {
                        return Ok(());
                    }
                    continue;
                }
                Ok(err) => return Err(err).context("listing chats"),
                Err(err) => return Err(err),
            }
        }
        let opened = call(api.events.subscribe(SubscribeRequest {
            cursors: tail.request_cursors(),
        }))
        .await;
        let outcome = match opened {
            Ok(mut stream) => {
                tail.follow(&mut stream, &mut stop, api.refresh_at(), || {
                    connections += 1;
                    backoff.reset();
                    if connections == 1 {
                        eprintln!(
                            "tidings-chat: tail: connected to {} as {}",
                            api.server, api.session.username
                        );
                    } else {
                        eprintln!("tidings-chat: tail: reconnected");
                    }
                })
                .await?
            }
            Err(err) => Outcome::Lost(err),
        };
        match outcome {
            Outcome::Done => return Ok(()),
            // The stream is reopened with the fresh token at the top.
            Outcome::Refresh => continue,
            Outcome::Lost(err) if is_final(&err) => {
                return Err(err).context("following the event stream");
            }
            Outcome::Lost(err) => {
                if !pause(&mut backoff, &mut stop, &err, "stream lost").await {
                    return Ok(());
                }
            }
        }
    }
}

/// Waits out one backoff step; false when asked to stop meanwhile.
async fn pause(backoff: &mut Backoff, stop: &mut StopSignal, err: &CliError, what: &str) -> bool {
    let (delay, told) = wait_after(err, backoff);
    if let Some(told) = told {
        eprintln!("tidings-chat: tail: {what}: {told}");
    } else if backoff.worth_reporting() {
        eprintln!(
            "tidings-chat: tail: {what}: {err}; reconnecting (attempt {})",
            backoff.failures()
        );
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop.recv() => false,
    }
}

/// The chats to follow with their last seq: the named ones, or all.
async fn starting_points(
    api: &mut Api,
    filter: Option<&HashSet<String>>,
) -> Result<Vec<(String, i64)>, CliError> {
    match filter {
        Some(ids) => {
            let mut out = Vec::new();
            for id in ids {
                let chat = call(api.chats.get_chat(GetChatRequest {
                    chat_id: id.clone(),
                }))
                .await?
                .chat
                .unwrap_or_default();
                out.push((id.clone(), chat.last_seq));
            }
            Ok(out)
        }
        None => Ok(all_chats(api)
            .await?
            .into_iter()
            .map(|c| (c.id, c.last_seq))
            .collect()),
    }
}

enum Outcome {
    /// --count reached, stdout closed, or asked to stop.
    Done,
    /// The token is due for a refresh; reopen the stream with the new one.
    Refresh,
    Lost(CliError),
}

struct Tail<'a> {
    store: &'a Store,
    me: String,
    filter: Option<HashSet<String>>,
    /// Last seq printed (or the starting point) per followed chat.
    cursors: BTreeMap<String, i64>,
    printed: u64,
    count: Option<u64>,
}

impl Tail<'_> {
    fn request_cursors(&self) -> Vec<ChatCursor> {
        self.cursors
            .iter()
            .map(|(chat_id, after_seq)| ChatCursor {
                chat_id: chat_id.clone(),
                after_seq: *after_seq,
                ..Default::default()
            })
            .collect()
    }

    fn wanted(&self, chat_id: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.contains(chat_id))
    }

    async fn follow(
        &mut self,
        stream: &mut Streaming<Event>,
        stop: &mut StopSignal,
        refresh_at: Instant,
        mut on_connected: impl FnMut(),
    ) -> anyhow::Result<Outcome> {
        loop {
            let item = tokio::select! {
                biased;
                _ = stop.recv() => return Ok(Outcome::Done),
                _ = tokio::time::sleep_until(refresh_at) => return Ok(Outcome::Refresh),
                item = stream.message() => item,
            };
            let kind = match item {
                Ok(Some(Event { kind: Some(kind) })) => kind,
                Ok(Some(Event { kind: None })) => continue,
                Ok(None) => {
                    return Ok(Outcome::Lost(CliError::server(
                        tonic::Code::Unavailable,
                        "the server ended the stream",
                    )));
                }
                Err(status) => return Ok(Outcome::Lost(status.into())),
            };
            match kind {
                event::Kind::Connected(_) => on_connected(),
                event::Kind::Message(m) => {
                    let more = self.print(&m)?;
                    if !more {
                        return Ok(Outcome::Done);
                    }
                }
                event::Kind::ChatAdded(chat) => self.added(&chat.id, chat.read_seq)?,
                event::Kind::ChatRemoved(removed) => {
                    self.cursors.remove(&removed.chat_id);
                }
                _ => {}
            }
        }
    }

    /// A chat joined while tailing is delivered from the user's read
    /// watermark on (0 for a chat someone just opened with us); saving that
    /// as its cursor makes a later run start there too.
    fn added(&mut self, chat_id: &str, read_seq: i64) -> anyhow::Result<()> {
        if self.wanted(chat_id) && !self.cursors.contains_key(chat_id) {
            self.cursors.insert(chat_id.to_owned(), read_seq);
            self.save(chat_id, read_seq)?;
        }
        Ok(())
    }

    /// Gives every chat of the user without a cursor one at its read
    /// watermark, as if its `ChatAdded` had been seen.
    async fn adopt_new_chats(&mut self, api: &mut Api) -> anyhow::Result<()> {
        for chat in all_chats(api).await? {
            self.added(&chat.id, chat.read_seq)?;
        }
        Ok(())
    }

    /// Prints one message unless it was printed before; false when done.
    fn print(&mut self, m: &Message) -> anyhow::Result<bool> {
        if !self.wanted(&m.chat_id) {
            return Ok(true);
        }
        if self
            .cursors
            .get(&m.chat_id)
            .is_some_and(|&last| m.seq <= last)
        {
            return Ok(true);
        }
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{}", tail_line(m)).and_then(|()| out.flush()) {
            Ok(()) => {}
            // Whoever read our output is gone (`tail | head -3`).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e).context("writing to stdout"),
        }
        drop(out);
        self.cursors.insert(m.chat_id.clone(), m.seq);
        self.save(&m.chat_id, m.seq)?;
        self.printed += 1;
        Ok(self.count.is_none_or(|n| self.printed < n))
    }

    fn save(&self, chat_id: &str, seq: i64) -> anyhow::Result<()> {
        self.store
            .save_cursors(&self.me, &BTreeMap::from([(chat_id.to_owned(), seq)]))
    }
}
