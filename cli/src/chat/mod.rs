//! The interactive chat: one bidirectional `Session` stream carries the
//! chat's events in and the person's messages, typing and read marks out.
//!
//! Every message typed gets an idempotency key when Enter is pressed and
//! stays pending until the server acknowledges it. When the stream fails
//! the client reconnects with backoff, resumes from the last seq shown (the
//! server replays the gap, so nothing is missed or shown twice) and sends
//! the pending messages again with the same keys, so none is lost or
//! stored twice.
//!
//! Messages are named by the `#seq` printed in front of them: `/reply`,
//! `/edit`, `/delete` and `/react` act on one (see [`command`]). Edits,
//! deletions, reactions, renames and membership changes are shown as the
//! stream delivers them, and the stream resumes from the last change shown
//! as well as the last message, so a change made while the connection was
//! down is shown once when it comes back.
//!
//! People are named by username: `/block NAME` hides a member's messages
//! (the server withholds them; they are shown as hidden) and `/unblock`
//! undoes it (see [`blocks`]).

mod blocks;
mod changes;
mod command;
mod files;
mod ui;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use tidings_proto::{
    Chat, ChatCursor, ClientFrame, Event, GetChatRequest, ListMessagesRequest, MarkReadRequest,
    Message, SendMessageRequest, SendTypingRequest, ServerFrame, SubscribeRequest, client_frame,
    event, server_frame,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::api::{Api, Context, call};
use crate::args::ChatArgs;
use crate::error::{CliError, code_name};
use crate::format::{chat_line, content_preview, preview};
use crate::retry::{Backoff, is_final, is_transient, wait_after};
use command::Command;
use ui::{Input, Ui};

/// A typing=true is repeated this often while the person keeps typing, so
/// the others' indicator stays on.
const TYPING_REPEAT: Duration = Duration::from_secs(3);
/// No key for this long ends "typing".
const TYPING_IDLE: Duration = Duration::from_secs(5);
/// After Ctrl-D, how long to wait for messages still unacknowledged.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// Frames queued towards the server; a full queue waits for a reconnect.
const OUTBOX: usize = 64;

pub async fn run(ctx: &Context, args: ChatArgs) -> anyhow::Result<()> {
    let mut api = ctx.login().await?;
    let chat = call(api.chats.get_chat(GetChatRequest {
        chat_id: args.chat_id.clone(),
    }))
    .await
    .with_context(|| format!("opening chat {}", args.chat_id))?
    .chat
    .context("the server answered without the chat")?;
    let history = call(api.messages.list_messages(ListMessagesRequest {
        chat_id: chat.id.clone(),
        page: 1,
        limit: args.history.clamp(1, 100),
        ..Default::default()
    }))
    .await
    .context("loading earlier messages")?
    .messages;

    let (ui, inputs) = Ui::start("> ".into())?;
    let mut room = Room::new(&api, &chat, ui);
    room.load_blocked(&mut api).await;
    // Changes made before the history was read are already in it.
    room.last_change = chat.last_change;
    let title = if chat.is_group {
        format!("#{}: you, {}", chat.name, room.others())
    } else {
        format!("chat with {}", room.others())
    };
    room.ui.print(format!("— {title} — /help for help"));
    // ListMessages answers newest first.
    for m in history.iter().rev() {
        room.show(m);
    }
    room.converse(ctx, &mut api, inputs).await
}

/// A message typed here and not yet acknowledged.
struct Pending {
    key: String,
    content: String,
    /// The message this one answers.
    reply_to_id: String,
    /// Files uploaded to go with it.
    attachment_ids: Vec<String>,
    /// Sent on the current stream, answer awaited.
    in_flight: bool,
}

struct Link {
    outbox: mpsc::Sender<ClientFrame>,
    inbound: Streaming<ServerFrame>,
}

struct Room {
    ui: Ui,
    chat_id: String,
    /// A room, not a direct chat.
    is_group: bool,
    me: String,
    names: HashMap<String, String>,
    /// Last seq shown: the resume cursor.
    last_seq: i64,
    /// Last change shown: the other half of the cursor.
    last_change: i64,
    /// The ids of the messages shown, by seq, for the commands that name one.
    ids: HashMap<i64, String>,
    /// And their seqs by id, to name them in changes.
    seqs: HashMap<String, i64>,
    /// Highest seq marked read on the current stream.
    read_sent: i64,
    /// The files of the messages shown, by seq, for `/files N`.
    files: HashMap<i64, Vec<tidings_proto::Attachment>>,
    /// Seqs of my own messages, to tell when someone has read them.
    mine: BTreeSet<i64>,
    read_by: HashMap<String, i64>,
    typing_peers: HashSet<String>,
    /// Last presence shown per member (a reconnect repeats the snapshot).
    online: HashMap<String, bool>,
    /// The people the person blocked (user id → username), to tell each
    /// block and unblock once.
    blocked: HashMap<String, String>,
    pending: BTreeMap<u64, Pending>,
    next_ref: u64,
    typing_since: Option<Instant>,
    typing_idle: Instant,
}

enum Step {
    Go,
    Quit,
}

impl Room {
    fn new(api: &Api, chat: &Chat, ui: Ui) -> Room {
        Room {
            ui,
            chat_id: chat.id.clone(),
            is_group: chat.is_group,
            me: api.session.user_id.clone(),
            names: chat
                .members
                .iter()
                .map(|u| (u.id.clone(), u.username.clone()))
                .collect(),
            last_seq: 0,
            last_change: 0,
            ids: HashMap::new(),
            seqs: HashMap::new(),
            read_sent: 0,
            mine: BTreeSet::new(),
            read_by: HashMap::new(),
            typing_peers: HashSet::new(),
            online: HashMap::new(),
            blocked: HashMap::new(),
            pending: BTreeMap::new(),
            files: HashMap::new(),
            next_ref: 0,
            typing_since: None,
            typing_idle: Instant::now(),
        }
    }

    fn others(&self) -> String {
        let mut names: Vec<&str> = self
            .names
            .iter()
            .filter(|(id, _)| **id != self.me)
            .map(|(_, n)| n.as_str())
            .collect();
        names.sort_unstable();
        if names.is_empty() {
            "nobody else yet".into()
        } else {
            names.join(", ")
        }
    }

    fn name<'a>(&'a self, user_id: &'a str) -> &'a str {
        self.names.get(user_id).map_or(user_id, String::as_str)
    }

    /// Shows a message of this chat once, in seq order.
    fn show(&mut self, m: &Message) {
        if m.seq <= self.last_seq {
            return;
        }
        let mut m = m.clone();
        if m.username.is_empty() {
            m.username = self.name(&m.user_id).to_owned();
        }
        self.last_seq = m.seq;
        self.remember(&m.id, m.seq);
        if !m.attachments.is_empty() {
            self.files.insert(m.seq, m.attachments.clone());
        }
        if m.user_id == self.me {
            self.mine.insert(m.seq);
        } else {
            self.typing_peers.remove(&m.user_id);
        }
        self.ui.print(chat_line(&m));
    }

    fn remember(&mut self, id: &str, seq: i64) {
        self.ids.insert(seq, id.to_owned());
        self.seqs.insert(id.to_owned(), seq);
    }

    async fn converse(
        &mut self,
        ctx: &Context,
        api: &mut Api,
        mut inputs: mpsc::Receiver<Input>,
    ) -> anyhow::Result<()> {
        let mut link: Option<Link> = None;
        let mut backoff = Backoff::default();
        let mut retry_at = Instant::now();
        let mut resend_at: Option<Instant> = None;
        let mut refresh_at = api.refresh_at();
        let mut closing: Option<Instant> = None;
        let mut connections = 0u32;
        loop {
            if closing.is_some() && self.pending.is_empty() {
                return Ok(());
            }
            tokio::select! {
                input = inputs.recv(), if closing.is_none() => {
                    let input = input.unwrap_or(Input::Eof);
                    match input {
                        Input::Line(line) => {
                            if let Step::Quit = self.on_line(&line, link.as_ref(), api).await {
                                closing = Some(Instant::now() + CLOSE_WAIT);
                            }
                        }
                        Input::Typing => self.on_key(link.as_ref()),
                        Input::Eof => closing = Some(Instant::now() + CLOSE_WAIT),
                        Input::Interrupted => {
                            self.warn_unsent();
                            return Ok(());
                        }
                    }
                }
                frame = next_frame(&mut link) => match frame {
                    Ok(Some(frame)) => match self.on_frame(frame, link.as_ref(), &mut connections, &mut backoff, &mut resend_at) {
                        Step::Go => {}
                        Step::Quit => return Ok(()),
                    },
                    Ok(None) => {
                        let err = CliError::server(
                            tonic::Code::Unavailable,
                            "the server ended the session",
                        );
                        self.lost(&mut link, &mut backoff, &mut retry_at, err)?;
                    }
                    Err(status) => self.lost(&mut link, &mut backoff, &mut retry_at, status.into())?,
                },
                _ = tokio::time::sleep_until(retry_at), if link.is_none() => {
                    match self.connect(api).await {
                        Ok(new) => link = Some(new),
                        Err(err) => self.lost(&mut link, &mut backoff, &mut retry_at, err)?,
                    }
                }
                _ = sleep_until_some(resend_at) => {
                    resend_at = None;
                    self.flush_pending(link.as_ref());
                }
                _ = tokio::time::sleep_until(self.typing_idle), if self.typing_since.is_some() => {
                    self.stop_typing(link.as_ref());
                }
                _ = tokio::time::sleep_until(refresh_at) => {
                    match api.refresh(&ctx.store).await {
                        Ok(()) => {
                            // Reopen at once with the new token, before the
                            // server ends the stream for the old one.
                            self.drop_link(&mut link);
                            retry_at = Instant::now();
                            refresh_at = api.refresh_at();
                        }
                        Err(err) => {
                            self.ui.print(format!("· could not refresh the token: {err:#}"));
                            refresh_at = Instant::now() + Duration::from_secs(30);
                        }
                    }
                }
                _ = sleep_until_some(closing) => {
                    self.warn_unsent();
                    anyhow::bail!("{} message(s) were not acknowledged by the server", self.pending.len());
                }
            }
        }
    }

    /// Opens the session: the subscribe frame (with the cursor of this
    /// chat) is queued before the call, because the server reads it before
    /// it answers.
    async fn connect(&mut self, api: &mut Api) -> Result<Link, CliError> {
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let subscribe = ClientFrame {
            r#ref: "subscribe".into(),
            kind: Some(client_frame::Kind::Subscribe(SubscribeRequest {
                cursors: vec![ChatCursor {
                    chat_id: self.chat_id.clone(),
                    after_seq: self.last_seq,
                    after_change: Some(self.last_change),
                }],
            })),
        };
        let _ = outbox.try_send(subscribe);
        let inbound = call(api.events.session(ReceiverStream::new(rx))).await?;
        let link = Link { outbox, inbound };
        self.read_sent = 0;
        for p in self.pending.values_mut() {
            p.in_flight = false;
        }
        self.flush_pending(Some(&link));
        self.mark_read(Some(&link));
        Ok(link)
    }

    fn lost(
        &mut self,
        link: &mut Option<Link>,
        backoff: &mut Backoff,
        retry_at: &mut Instant,
        err: CliError,
    ) -> anyhow::Result<()> {
        self.drop_link(link);
        if is_final(&err) {
            return Err(err).context("chat session");
        }
        let (delay, told) = wait_after(&err, backoff);
        if let Some(told) = told {
            self.ui.print(format!("· {told} ({err})"));
        } else if backoff.worth_reporting() {
            let what = if backoff.failures() <= 1 {
                "connection lost"
            } else {
                "still disconnected"
            };
            self.ui.print(format!("· {what} ({err}); reconnecting…"));
        }
        *retry_at = Instant::now() + delay;
        Ok(())
    }

    fn drop_link(&mut self, link: &mut Option<Link>) {
        *link = None;
        for p in self.pending.values_mut() {
            p.in_flight = false;
        }
    }

    async fn on_line(&mut self, line: &str, link: Option<&Link>, api: &mut Api) -> Step {
        let mut attachment_ids = Vec::new();
        let (text, reply_to_id) = match command::parse(line) {
            Command::Nothing => return Step::Go,
            Command::Quit => return Step::Quit,
            Command::Help => {
                self.ui.print(format!("· {}", command::HELP));
                return Step::Go;
            }
            Command::Who => {
                let who = format!("· members: {}", self.others());
                self.ui.print(who);
                return Step::Go;
            }
            Command::Usage(usage) => {
                self.ui.print(format!("· usage: {usage}"));
                return Step::Go;
            }
            Command::Unknown(cmd) => {
                self.ui
                    .print(format!("· unknown command {cmd}; /help lists them"));
                return Step::Go;
            }
            Command::Send(text) => (text, String::new()),
            Command::Upload { path, caption } => match self.upload_file(api, path).await {
                Some(id) => {
                    attachment_ids.push(id);
                    (caption, String::new())
                }
                None => return Step::Go,
            },
            Command::Files { seq } => {
                self.show_file_urls(api, seq).await;
                return Step::Go;
            }
            Command::Reply { seq, text } => match self.id_of(seq) {
                Some(id) => (text, id),
                None => return Step::Go,
            },
            Command::Block { name } => {
                self.block(api, name).await;
                return Step::Go;
            }
            Command::Unblock { name } => {
                self.unblock(api, name).await;
                return Step::Go;
            }
            Command::Blocked => {
                self.show_blocked(api).await;
                return Step::Go;
            }
            action => {
                self.act(api, action).await;
                return Step::Go;
            }
        };
        self.stop_typing(link);
        self.next_ref += 1;
        self.pending.insert(
            self.next_ref,
            Pending {
                key: uuid::Uuid::now_v7().to_string(),
                content: text.to_owned(),
                reply_to_id,
                attachment_ids,
                in_flight: false,
            },
        );
        self.flush_pending(link);
        Step::Go
    }

    /// Sends every pending message not already on its way.
    fn flush_pending(&mut self, link: Option<&Link>) {
        let Some(l) = link else { return };
        for (n, p) in self.pending.iter_mut().filter(|(_, p)| !p.in_flight) {
            let frame = ClientFrame {
                r#ref: format!("send-{n}"),
                kind: Some(client_frame::Kind::Send(SendMessageRequest {
                    chat_id: self.chat_id.clone(),
                    content: p.content.clone(),
                    idempotency_key: p.key.clone(),
                    reply_to_id: p.reply_to_id.clone(),
                    attachment_ids: p.attachment_ids.clone(),
                })),
            };
            // A full outbox: it goes again on the next stream.
            if l.outbox.try_send(frame).is_err() {
                break;
            }
            p.in_flight = true;
        }
    }

    fn on_key(&mut self, link: Option<&Link>) {
        let now = Instant::now();
        self.typing_idle = now + TYPING_IDLE;
        if self
            .typing_since
            .is_some_and(|since| now.duration_since(since) < TYPING_REPEAT)
        {
            return;
        }
        self.typing_since = Some(now);
        self.send_typing(link, true);
    }

    fn stop_typing(&mut self, link: Option<&Link>) {
        if self.typing_since.take().is_some() {
            self.send_typing(link, false);
        }
    }

    fn send_typing(&mut self, link: Option<&Link>, typing: bool) {
        if let Some(l) = link {
            let _ = l.outbox.try_send(ClientFrame {
                r#ref: "typing".into(),
                kind: Some(client_frame::Kind::Typing(SendTypingRequest {
                    chat_id: self.chat_id.clone(),
                    typing,
                })),
            });
        }
    }

    /// Marks read everything shown so far.
    fn mark_read(&mut self, link: Option<&Link>) {
        let Some(l) = link else { return };
        if self.last_seq <= self.read_sent {
            return;
        }
        let frame = ClientFrame {
            r#ref: "read".into(),
            kind: Some(client_frame::Kind::MarkRead(MarkReadRequest {
                chat_id: self.chat_id.clone(),
                seq: self.last_seq,
            })),
        };
        if l.outbox.try_send(frame).is_ok() {
            self.read_sent = self.last_seq;
        }
    }

    fn on_frame(
        &mut self,
        frame: ServerFrame,
        link: Option<&Link>,
        connections: &mut u32,
        backoff: &mut Backoff,
        resend_at: &mut Option<Instant>,
    ) -> Step {
        match frame.kind {
            Some(server_frame::Kind::Event(Event { kind: Some(kind) })) => {
                if let event::Kind::Connected(_) = kind {
                    *connections += 1;
                    backoff.reset();
                    if *connections > 1 {
                        self.ui.print("· reconnected");
                    }
                    return Step::Go;
                }
                let step = self.on_event(kind);
                self.mark_read(link);
                step
            }
            Some(server_frame::Kind::Ack(ack)) => {
                if let Some(n) = send_ref(&ack.r#ref)
                    && self.pending.remove(&n).is_some()
                    && let Some(m) = ack.message
                {
                    self.mine.insert(m.seq);
                    self.remember(&m.id, m.seq);
                    self.ui.print(format!("  ✓ #{}", m.seq));
                }
                Step::Go
            }
            Some(server_frame::Kind::Error(e)) => {
                let code = tonic::Code::from_i32(e.code);
                match send_ref(&e.r#ref) {
                    Some(n) => {
                        // A frame's error carries no details: the usual
                        // backoff, rate limits included.
                        let err = CliError::server(code, e.message.clone());
                        if is_transient(&err) {
                            if let Some(p) = self.pending.get_mut(&n) {
                                p.in_flight = false;
                            }
                            *resend_at = Some(Instant::now() + backoff.next_delay());
                        } else if let Some(p) = self.pending.remove(&n) {
                            self.ui.print(format!(
                                "✗ not sent: {} ({}): {}",
                                e.message,
                                code_name(code),
                                preview(&p.content, 40)
                            ));
                            if code == tonic::Code::FailedPrecondition
                                && let Some(hint) = self.unblock_hint()
                            {
                                self.ui.print(format!("· {hint}"));
                            }
                        }
                    }
                    None if e.r#ref == "typing" => {}
                    None => self
                        .ui
                        .print(format!("· server: {} ({})", e.message, code_name(code))),
                }
                Step::Go
            }
            _ => Step::Go,
        }
    }

    fn on_event(&mut self, kind: event::Kind) -> Step {
        match kind {
            event::Kind::Message(m) if m.chat_id == self.chat_id => self.show(&m),
            event::Kind::Message(m) => self.ui.print(format!(
                "· {} in another chat ({}): {}",
                m.username,
                m.chat_id,
                content_preview(&m, 40)
            )),
            event::Kind::Typing(t) if t.chat_id == self.chat_id && t.user_id != self.me => {
                if !t.typing {
                    self.typing_peers.remove(&t.user_id);
                } else if self.typing_peers.insert(t.user_id.clone()) {
                    let name = if t.username.is_empty() {
                        self.name(&t.user_id).to_owned()
                    } else {
                        t.username
                    };
                    self.ui.print(format!("· {name} is typing…"));
                }
            }
            event::Kind::Receipt(r) if r.chat_id == self.chat_id && r.user_id != self.me => {
                let before = self.read_by.get(&r.user_id).copied().unwrap_or(0);
                if r.read_seq > before {
                    self.read_by.insert(r.user_id.clone(), r.read_seq);
                    if self.mine.range(before + 1..=r.read_seq).next().is_some() {
                        let seen = format!(
                            "  ✓✓ seen by {} (up to #{})",
                            self.name(&r.user_id),
                            r.read_seq
                        );
                        self.ui.print(seen);
                    }
                }
            }
            event::Kind::Presence(p)
                if p.user_id != self.me && self.names.contains_key(&p.user_id) =>
            {
                let before = self.online.insert(p.user_id.clone(), p.online);
                if before != Some(p.online) {
                    let state = if p.online { "online" } else { "offline" };
                    let line = format!("· {} is {state}", self.name(&p.user_id));
                    self.ui.print(line);
                }
            }
            event::Kind::Change(c) if c.chat_id == self.chat_id => self.on_change(c),
            event::Kind::BlockChanged(b) => self.on_block_changed(b),
            event::Kind::ChatRemoved(r) if r.chat_id == self.chat_id => {
                self.ui.print("· you are no longer a member of this chat");
                return Step::Quit;
            }
            _ => {}
        }
        Step::Go
    }

    fn warn_unsent(&mut self) {
        for p in self.pending.values() {
            let line = format!("✗ not confirmed: {}", preview(&p.content, 40));
            self.ui.print(line);
        }
    }
}

fn send_ref(r: &str) -> Option<u64> {
    r.strip_prefix("send-")?.parse().ok()
}

async fn next_frame(link: &mut Option<Link>) -> Result<Option<ServerFrame>, tonic::Status> {
    match link {
        Some(l) => l.inbound.message().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
