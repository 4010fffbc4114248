import { useEffect, useRef, useState } from "preact/hooks";
import { type ChatEntry, store } from "../store";
import { formatListTime } from "../util";
import { BlockedUsersDialog } from "./Blocking";
import { ChatView } from "./ChatView";
import { Avatar, Ticks } from "./common";
import { NewChatDialog } from "./Dialogs";
import { SearchButton } from "./Search";

/** `#/chat/<id>` is the open chat, so reloads and the browser's back button
 * work as expected. */
function chatFromHash(): string | null {
  const m = /^#\/chat\/([^/]+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

export function openChatRoute(id: string) {
  const current = chatFromHash();
  const url = `#/chat/${encodeURIComponent(id)}`;
  // One history entry for "a chat is open" above the list, whichever chat:
  // the back button (and "Back to chats") then always returns to the list.
  if (current === null) history.pushState({ chat: id, inApp: true }, "", url);
  else if (current !== id) history.replaceState({ chat: id, inApp: history.state?.inApp === true }, "", url);
  store.openChat(id);
}

export function closeChatRoute() {
  if (history.state?.inApp) history.back();
  else {
    history.replaceState(null, "", location.pathname + location.search);
    store.openChat(null);
  }
}

/** The other person of a direct chat. */
export function peerOf(e: ChatEntry) {
  if (e.isGroup) return undefined;
  return e.members.find((m) => m.id !== store.me);
}

export function presenceOf(e: ChatEntry): boolean | null {
  const peer = peerOf(e);
  return peer ? store.presenceOf(peer.id) : null;
}

export function chatTitle(e: ChatEntry): string {
  if (e.name) return e.name;
  if (e.isGroup) return "Group";
  return peerOf(e)?.username ?? "Chat";
}

export function Messenger() {
  const [dialog, setDialog] = useState(false);
  const [blockedOpen, setBlockedOpen] = useState(false);
  const newChatBtn = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    store.start();
    store.openChat(chatFromHash());
    const onPop = () => store.openChat(chatFromHash());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  useEffect(() => {
    const n = store.totalUnread;
    document.title = n ? `(${n}) Tidings` : "Tidings";
  });

  const open = store.openChatId;
  const me = store.session?.user;
  if (!me) return null; // App shows the log-in screen
  return (
    <div class="app" data-view={open ? "chat" : "list"} data-conn={store.conn} data-testid="app">
      <aside class="sidebar" aria-label="Chats">
        <header class="side-head">
          <Avatar name={me.username} size="sm" />
          <div class="me">
            <span class="me-name" data-testid="me">
              {me.username}
            </span>
            <span class="me-email">{me.email}</span>
          </div>
          <SearchButton />
          <button
            class="icon-btn"
            type="button"
            onClick={() => setBlockedOpen(true)}
            aria-label="Blocked users"
            title="Blocked users"
            aria-haspopup="dialog"
            data-testid="open-blocked"
          >
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
              <circle cx="12" cy="12" r="8.5" fill="none" stroke="currentColor" stroke-width="2" />
              <path d="M6 18L18 6" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
          </button>
          <button class="icon-btn" type="button" onClick={() => store.logout()} aria-label="Log out" title="Log out">
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
              <path
                d="M15 4h3a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-3M10 17l5-5-5-5M15 12H4"
                fill="none"
                stroke="currentColor"
                stroke-width="2"
                stroke-linecap="round"
                stroke-linejoin="round"
              />
            </svg>
          </button>
        </header>
        <div class="side-title">
          <h1>Chats</h1>
          <button
            ref={newChatBtn}
            class="primary small"
            type="button"
            onClick={() => setDialog(true)}
            aria-haspopup="dialog"
          >
            <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true">
              <path d="M8 2.5v11M2.5 8h11" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
            New chat
          </button>
        </div>
        <ConnectionBanner />
        <ChatList />
      </aside>
      <main class="pane" aria-label="Conversation">
        {open ? <ChatView key={open} chatId={open} /> : <EmptyPane onNew={() => setDialog(true)} />}
      </main>
      {dialog && (
        <NewChatDialog
          onClose={(created) => {
            setDialog(false);
            if (created) openChatRoute(created);
            // Once the modal dialog is gone (focus cannot leave it before).
            else setTimeout(() => newChatBtn.current?.focus(), 0);
          }}
        />
      )}
      {blockedOpen && <BlockedUsersDialog onClose={() => setBlockedOpen(false)} />}
      <div class="sr-only" aria-live="polite" data-testid="announcer">
        {store.announcement}
      </div>
    </div>
  );
}

function ConnectionBanner() {
  const [grace, setGrace] = useState(true);
  useEffect(() => {
    const t = setTimeout(() => setGrace(false), 1500);
    return () => clearTimeout(t);
  }, []);
  if (store.conn === "online" || (grace && !store.everConnected)) return null;
  return (
    <p class={`conn-banner ${store.conn}`} role="status" data-testid="conn-banner">
      {store.conn === "offline" ? "Offline. Reconnecting…" : "Connecting…"}
    </p>
  );
}

function EmptyPane({ onNew }: { onNew: () => void }) {
  return (
    <div class="empty-pane">
      <svg viewBox="0 0 64 64" width="72" height="72" aria-hidden="true">
        <path
          d="M12 16a6 6 0 0 1 6-6h28a6 6 0 0 1 6 6v20a6 6 0 0 1-6 6H30l-10 9v-9h-2a6 6 0 0 1-6-6z"
          fill="currentColor"
          opacity=".18"
        />
      </svg>
      <p>Select a chat, or start a new one.</p>
      <button class="secondary" type="button" onClick={onNew}>
        New chat
      </button>
    </div>
  );
}

function ChatList() {
  const list = store.chatList;
  if (!store.chatsLoaded && !list.length) {
    return (
      <div class="list-state">
        {store.chatsError ? (
          <>
            <p role="alert">{store.chatsError}</p>
            <button class="secondary" type="button" onClick={() => void store.refreshChats()}>
              Try again
            </button>
          </>
        ) : (
          <p class="muted">Loading chats…</p>
        )}
      </div>
    );
  }
  if (!list.length) {
    return (
      <div class="list-state">
        <p class="muted">No chats yet. Start one with “New chat”.</p>
      </div>
    );
  }
  return (
    <nav class="chat-list-wrap" aria-label="Chat list">
      <ul class="chat-list" data-testid="chat-list">
        {list.map((e) => (
          <ChatItem key={e.id} e={e} active={e.id === store.openChatId} />
        ))}
      </ul>
    </nav>
  );
}

function ChatItem({ e, active }: { e: ChatEntry; active: boolean }) {
  const title = chatTitle(e);
  const last = e.lastMessage;
  const own = last && last.userId === store.me;
  const typing = store.typingNames(e);
  let preview = "";
  if (typing.length) preview = e.isGroup ? `${typing[0]} is typing…` : "typing…";
  else if (last)
    preview = `${own ? "You: " : e.isGroup ? `${last.username}: ` : ""}${last.deletedAt ? "Message deleted" : last.hidden ? "Message from someone you blocked" : last.content}`;
  else preview = e.isGroup ? `${e.members.length} members` : "No messages yet";
  const time = formatListTime(last?.sentAt ?? e.createdAt);
  return (
    <li>
      <button
        type="button"
        class={`chat-item${active ? " active" : ""}${e.unread ? " has-unread" : ""}`}
        aria-current={active ? "true" : undefined}
        data-testid="chat-item"
        data-chat-id={e.id}
        data-chat-name={title}
        onClick={() => openChatRoute(e.id)}
      >
        <Avatar name={title} online={presenceOf(e)} />
        <span class="chat-item-main">
          <span class="chat-item-top">
            <span class="chat-name">{title}</span>
            <span class="chat-time">{time}</span>
          </span>
          <span class="chat-item-bottom">
            <span class={`chat-preview${typing.length ? " typing" : ""}`}>
              {own && last && !typing.length && <Ticks tick={store.tickOf(e, last)} />}
              {preview}
            </span>
            {e.mentions > 0 && (
              <span
                class="badge mention-badge"
                role="img"
                data-testid="mention-badge"
                aria-label={`${e.mentions} ${e.mentions === 1 ? "mention" : "mentions"} of you`}
                title="You were mentioned"
              >
                @
              </span>
            )}
            {e.unread > 0 && (
              <span class="badge" role="img" data-testid="unread" aria-label={`${e.unread} unread`}>
                {e.unread > 99 ? "99+" : e.unread}
              </span>
            )}
          </span>
        </span>
      </button>
    </li>
  );
}
