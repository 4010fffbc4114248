//! chats, open, room.

use anyhow::Context as _;
use tidings_proto::{Chat, CreateChatRequest, ListChatsRequest, Message};

use crate::api::{Api, Context, call};
use crate::args::{OpenArgs, RoomArgs};
use crate::error::CliError;
use crate::format::content_preview;

/// ListChats' largest page.
const PAGE: i32 = 100;

pub async fn list(ctx: &Context) -> anyhow::Result<()> {
    let mut api = ctx.login().await?;
    let chats = all_chats(&mut api).await.context("listing chats")?;
    if chats.is_empty() {
        println!("no chats yet; open one with `tidings-chat open EMAIL`");
        return Ok(());
    }
    let rows: Vec<[String; 4]> = chats
        .iter()
        .map(|c| {
            let name = if c.is_group {
                format!("#{}", c.name)
            } else {
                c.name.clone()
            };
            let last = c
                .last_message
                .as_ref()
                .map(|m| format!("{}: {}", sender(c, m), content_preview(m, 50)))
                .unwrap_or_default();
            [c.id.clone(), name, c.unread_count.to_string(), last]
        })
        .collect();
    let header = ["ID", "NAME", "UNREAD", "LAST MESSAGE"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        println!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(())
}

/// Who sent `m`: its username, else looked up among the chat's members.
fn sender<'a>(chat: &'a Chat, m: &'a Message) -> &'a str {
    if !m.username.is_empty() {
        return &m.username;
    }
    chat.members
        .iter()
        .find(|u| u.id == m.user_id)
        .map_or("?", |u| u.username.as_str())
}

/// Every chat of the caller, most recently active first.
pub async fn all_chats(api: &mut Api) -> Result<Vec<Chat>, CliError> {
    let mut chats = Vec::new();
    for page in 1.. {
        let reply = call(api.chats.list_chats(ListChatsRequest { page, limit: PAGE })).await?;
        let got = reply.chats.len();
        chats.extend(reply.chats);
        if got < PAGE as usize || chats.len() >= reply.total.max(0) as usize {
            break;
        }
    }
    Ok(chats)
}

pub async fn open(ctx: &Context, args: OpenArgs) -> anyhow::Result<()> {
    let mut api = ctx.login().await?;
    let reply = call(api.chats.create_chat(CreateChatRequest {
        name: args.name.unwrap_or_default(),
        email: args.email.clone(),
        ..Default::default()
    }))
    .await
    .with_context(|| format!("opening a chat with {}", args.email))?;
    println!("{}", reply.chat_id);
    Ok(())
}

pub async fn room(ctx: &Context, args: RoomArgs) -> anyhow::Result<()> {
    let mut api = ctx.login().await?;
    let reply = call(api.chats.create_chat(CreateChatRequest {
        name: args.name.clone(),
        member_emails: args.members,
        is_group: true,
        ..Default::default()
    }))
    .await
    .with_context(|| format!("creating room {}", args.name))?;
    println!("{}", reply.chat_id);
    Ok(())
}
