import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { canDelete, lastEditable } from "../changes";
import { type ChatEntry, type Member, type Msg, type Pending, type QuoteView, store, type Tick } from "../store";
import { formatDay, sameDay } from "../util";
import { BlockedBanner, ChatMenu } from "./Blocking";
import { Composer } from "./Composer";
import { Avatar, Spinner } from "./common";
import { ConfirmDialog, GroupInfoDialog } from "./Dialogs";
import { Bubble, type MessageActions, PendingBubble } from "./Message";
import { chatTitle, closeChatRoute, peerOf, presenceOf } from "./Messenger";

export function ChatView({ chatId }: { chatId: string }) {
  const e = store.chats.get(chatId);
  const [info, setInfo] = useState(false);
  const [replyId, setReplyId] = useState<string | null>(null);
  const [editId, setEditId] = useState<string | null>(null);
  const [toDelete, setToDelete] = useState<Msg | null>(null);
  const [actionError, setActionError] = useState("");
  const listRef = useRef<HTMLDivElement>(null);

  // Stable for the memoised bubbles: only state setters and refs inside.
  const actions = useMemo<MessageActions>(
    () => ({
      reply: (m) => {
        setEditId(null);
        setReplyId(m.id);
      },
      edit: (m) => {
        setReplyId(null);
        setEditId(m.id);
      },
      remove: (m) => setToDelete(m),
      react: (m, emoji) => {
        setActionError("");
        store.toggleReaction(chatId, m.id, emoji).catch((err: Error) => setActionError(err.message));
      },
      jumpTo: (id) => jumpTo(listRef.current, id, setActionError),
    }),
    [chatId],
  );

  if (!e || e.stub) {
    return (
      <section class="chat chat-missing">
        <header class="chat-head">
          <BackButton />
        </header>
        <div class="empty-pane">
          {store.chatsLoaded && !e ? <p>This chat is not available.</p> : <Spinner label="Loading chat" />}
        </div>
      </section>
    );
  }
  const title = chatTitle(e);
  const peer = peerOf(e);
  const typing = store.typingNames(e);
  const online = presenceOf(e);
  let sub = "";
  if (typing.length) {
    sub = e.isGroup
      ? typing.length === 1
        ? `${typing[0]} is typing…`
        : `${typing.slice(0, -1).join(", ")} and ${typing[typing.length - 1]} are typing…`
      : "typing…";
  } else if (e.isGroup) {
    sub = e.members.map((m) => (m.id === store.me ? "you" : m.username)).join(", ");
  } else {
    sub = online === true ? "online" : online === false ? "offline" : (peerOf(e)?.email ?? "");
  }
  return (
    <section class="chat" aria-labelledby="chat-title">
      <header class="chat-head">
        <BackButton />
        <Avatar name={title} online={online} />
        <div class="chat-head-text">
          <h2 id="chat-title" data-testid="chat-title">
            {title}
          </h2>
          <p class={`chat-sub${typing.length ? " typing" : ""}`} data-testid="chat-sub">
            {sub}
          </p>
        </div>
        {e.isGroup && (
          <button
            class="icon-btn"
            type="button"
            aria-label="Group details"
            title="Group details"
            aria-haspopup="dialog"
            onClick={() => setInfo(true)}
          >
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
              <circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2" />
              <path d="M12 11v6M12 7.5v.1" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
          </button>
        )}
        {!e.isGroup && peer && <ChatMenu peer={peer} onError={setActionError} />}
      </header>
      <MessageList e={e} title={title} actions={actions} listRef={listRef} />
      {actionError && (
        <p class="action-error" role="alert" data-testid="action-error">
          <span>{actionError}</span>
          <button class="link" type="button" onClick={() => setActionError("")}>
            Dismiss
          </button>
        </p>
      )}
      <div class="typing-line" aria-live="polite" data-testid="typing">
        {typing.length > 0 && (
          <span>
            <span class="dots" aria-hidden="true">
              <i />
              <i />
              <i />
            </span>
            {e.isGroup ? sub : `${typing[0]} is typing…`}
          </span>
        )}
      </div>
      {peer && store.isBlocked(peer.id) ? (
        <BlockedBanner peer={peer} />
      ) : (
        <Composer
          e={e}
          editing={(editId && live(store.messageById(e, editId))) || null}
          replyTo={(replyId && live(store.messageById(e, replyId))) || null}
          onEditLast={() => {
            const m = lastEditable(store.messagesOf(e), store.me);
            if (m) actions.edit(m);
          }}
          onDoneEditing={() => setEditId(null)}
          onCancelReply={() => setReplyId(null)}
          onError={setActionError}
        />
      )}
      {info && <GroupInfoDialog e={e} onClose={() => setInfo(false)} />}
      {toDelete && (
        <ConfirmDialog
          title="Delete message?"
          confirm="Delete"
          onClose={() => setToDelete(null)}
          onConfirm={async () => {
            const m = toDelete;
            setActionError("");
            if (editId === m.id) setEditId(null);
            if (replyId === m.id) setReplyId(null);
            await store.deleteMessage(e.id, m.id);
          }}
        >
          <p>{describeMsg(toDelete)} will be replaced by “Message deleted” for everyone in this chat.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

/** A message that is still there (not deleted). */
function live(m: Msg | undefined): Msg | undefined {
  return m && !m.deletedAt ? m : undefined;
}

function describeMsg(msg: Msg): string {
  const who = msg.userId === store.me ? "Your message" : `${msg.username}’s message`;
  const text = msg.content.length > 60 ? `${msg.content.slice(0, 60)}…` : msg.content;
  return `${who} “${text}”`;
}

/** Brings the message `id` into view and flashes it, if it is loaded. */
function jumpTo(list: HTMLElement | null, id: string, onError: (s: string) => void): void {
  const el = list?.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(id)}"]`);
  if (!el) {
    onError("The original message is not loaded. Scroll up to find it.");
    return;
  }
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  el.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
  el.focus({ preventScroll: true });
  el.dataset.flash = "true";
  setTimeout(() => delete el.dataset.flash, 2000);
}

function BackButton() {
  return (
    <button class="icon-btn back" type="button" aria-label="Back to chats" onClick={closeChatRoute}>
      <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
        <path
          d="M15 5l-7 7 7 7"
          fill="none"
          stroke="currentColor"
          stroke-width="2.2"
          stroke-linecap="round"
          stroke-linejoin="round"
        />
      </svg>
    </button>
  );
}

type Row =
  | { kind: "day"; key: string; at: number }
  | {
      kind: "msg";
      key: string;
      m: Msg;
      own: boolean;
      tick: Tick | null;
      showName: boolean;
      tail: boolean;
      canDelete: boolean;
    }
  | { kind: "pending"; key: string; p: Pending; quote: QuoteView | null };

function buildRows(e: ChatEntry): Row[] {
  const rows: Row[] = [];
  const list = store.messagesOf(e);
  let prev: Msg | null = null;
  for (let i = 0; i < list.length; i++) {
    const m = list[i];
    if (!prev || !sameDay(prev.sentAt, m.sentAt)) rows.push({ kind: "day", key: `d${m.seq}`, at: m.sentAt });
    const own = m.userId === store.me;
    const next = list[i + 1];
    const firstOfRun = !prev || prev.userId !== m.userId || !sameDay(prev.sentAt, m.sentAt);
    const lastOfRun = !next || next.userId !== m.userId;
    rows.push({
      kind: "msg",
      key: `s${m.seq}`,
      m,
      own,
      tick: own ? store.tickOf(e, m) : null,
      showName: e.isGroup && !own && firstOfRun,
      tail: lastOfRun,
      canDelete: canDelete(e, store.me, m),
    });
    prev = m;
  }
  const pending = store.pendingOf(e);
  if (pending.length && (!prev || !sameDay(prev.sentAt, Date.now()))) {
    rows.push({ kind: "day", key: "dpending", at: pending[0].createdAt });
  }
  for (const p of pending) rows.push({ kind: "pending", key: `p${p.key}`, p, quote: quoteOf(e, p.replyToId) });
  return rows;
}

/** The quote a pending reply will carry, from the message it answers. */
function quoteOf(e: ChatEntry, id: string | undefined): QuoteView | null {
  if (!id) return null;
  const m = store.messageById(e, id);
  if (!m) return { messageId: id, userId: "", username: "", excerpt: "", deleted: false, hidden: false };
  return {
    messageId: id,
    userId: m.userId,
    username: m.username,
    excerpt: m.content.slice(0, 200),
    deleted: m.deletedAt > 0,
    hidden: m.hidden,
  };
}

function MessageList(props: {
  e: ChatEntry;
  title: string;
  actions: MessageActions;
  listRef: { current: HTMLDivElement | null };
}) {
  const { e, title, actions } = props;
  const ref = props.listRef;
  const rows = buildRows(e);
  const members = e.members;
  const names = useMemo(() => new Map<string, Member>(members.map((x) => [x.username.toLowerCase(), x])), [members]);
  const firstKey = rows.find((r) => r.kind !== "day")?.key ?? "";
  const lastRow = rows[rows.length - 1];
  const lastKey = lastRow?.key ?? "";
  const lastOwn = lastRow ? lastRow.kind === "pending" || (lastRow.kind === "msg" && lastRow.own) : false;

  // Read the scroll position of the DOM as it is before this render commits.
  const el = ref.current;
  const before = el
    ? { height: el.scrollHeight, top: el.scrollTop, nearBottom: el.scrollHeight - el.scrollTop - el.clientHeight < 120 }
    : null;
  const prev = useRef({ firstKey: "", lastKey: "", loaded: false });

  useLayoutEffect(() => {
    const node = ref.current;
    if (!node) return;
    const p = prev.current;
    const loaded = e.history === "loaded";
    if (loaded && !p.loaded) {
      node.scrollTop = node.scrollHeight;
    } else if (lastKey !== p.lastKey && (!before || before.nearBottom || lastOwn)) {
      node.scrollTop = node.scrollHeight;
    } else if (firstKey !== p.firstKey && before) {
      // Older messages went in above: keep the same message in view.
      node.scrollTop = before.top + (node.scrollHeight - before.height);
    }
    prev.current = { firstKey, lastKey, loaded };
  });

  // Fill the screen: a tall window may need more than one page.
  useEffect(() => {
    const node = ref.current;
    if (
      node &&
      e.history === "loaded" &&
      node.scrollHeight <= node.clientHeight + 40 &&
      store.hasOlder(e) &&
      !e.olderError
    ) {
      void store.loadOlder(e);
    }
  });

  function onScroll() {
    const node = ref.current;
    if (node && node.scrollTop < 120 && store.hasOlder(e) && !e.olderError) void store.loadOlder(e);
  }

  return (
    // biome-ignore lint/a11y/useSemanticElements: the same landmark as a <section> with a label; the scroll code and its ref are typed for this <div>
    <div
      role="region"
      class="messages"
      ref={ref}
      onScroll={onScroll}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard to scroll it (WCAG 2.1.1)
      tabIndex={0}
      aria-label={`Messages with ${title}`}
      data-testid="messages"
    >
      {e.history === "loading" && (
        <div class="history-state">
          <Spinner label="Loading messages" />
        </div>
      )}
      {e.history === "error" && (
        <div class="history-state" role="alert">
          <p>{e.historyError}</p>
          <button class="secondary" type="button" onClick={() => void store.loadLatest(e, false)}>
            Try again
          </button>
        </div>
      )}
      {e.history === "loaded" && (store.hasOlder(e) || e.olderLoading) && (
        <div class="history-state">
          {e.olderLoading ? (
            <Spinner label="Loading earlier messages" />
          ) : (
            <button class="link" type="button" onClick={() => void store.loadOlder(e)}>
              {e.olderError ? `${e.olderError} Try again` : "Load earlier messages"}
            </button>
          )}
        </div>
      )}
      {e.history === "loaded" && rows.length === 0 && <p class="history-state muted">No messages yet. Say hello!</p>}
      <div role="log" aria-live="polite" aria-relevant="additions" aria-label="Messages">
        <ol class="msg-list">
          {rows.map((r) =>
            r.kind === "day" ? (
              // biome-ignore lint/a11y/noNoninteractiveElementToInteractiveRole lint/a11y/useSemanticElements: a non-focusable separator between days inside the list (an <hr> cannot be a list item)
              <li key={r.key} class="day-sep" role="separator">
                <span>{formatDay(r.at)}</span>
              </li>
            ) : r.kind === "msg" ? (
              <Bubble
                key={r.key}
                m={r.m}
                own={r.own}
                tick={r.tick}
                showName={r.showName}
                tail={r.tail}
                canDelete={r.canDelete}
                names={names}
                actions={actions}
              />
            ) : (
              <PendingBubble key={r.key} p={r.p} quote={r.quote} />
            ),
          )}
        </ol>
      </div>
    </div>
  );
}
