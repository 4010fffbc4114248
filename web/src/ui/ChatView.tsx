import { memo } from "preact/compat";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { store, type ChatEntry, type Msg, type Pending, type Tick } from "../store";
import { MAX_MESSAGE_CHARS, charCount, formatDay, formatFull, formatTime, sameDay } from "../util";
import { Avatar, Spinner, Ticks } from "./common";
import { GroupInfoDialog } from "./Dialogs";
import { chatTitle, closeChatRoute, peerOf, presenceOf } from "./Messenger";

/** Drafts survive switching between chats. */
const drafts = new Map<string, string>();

export function ChatView({ chatId }: { chatId: string }) {
  const e = store.chats.get(chatId);
  const [info, setInfo] = useState(false);
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
          <button class="icon-btn" type="button" aria-label="Group details" title="Group details" aria-haspopup="dialog" onClick={() => setInfo(true)}>
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
              <circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2" />
              <path d="M12 11v6M12 7.5v.1" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
          </button>
        )}
      </header>
      <MessageList e={e} title={title} />
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
      <Composer e={e} />
      {info && <GroupInfoDialog e={e} onClose={() => setInfo(false)} />}
    </section>
  );
}

function BackButton() {
  return (
    <button class="icon-btn back" type="button" aria-label="Back to chats" onClick={closeChatRoute}>
      <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
        <path d="M15 5l-7 7 7 7" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round" />
      </svg>
    </button>
  );
}

type Row =
  | { kind: "day"; key: string; at: number }
  | { kind: "msg"; key: string; m: Msg; own: boolean; tick: Tick | null; showName: boolean; tail: boolean }
  | { kind: "pending"; key: string; p: Pending };

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
    });
    prev = m;
  }
  const pending = store.pendingOf(e);
  if (pending.length && (!prev || !sameDay(prev.sentAt, Date.now()))) {
    rows.push({ kind: "day", key: "dpending", at: pending[0].createdAt });
  }
  for (const p of pending) rows.push({ kind: "pending", key: `p${p.key}`, p });
  return rows;
}

function MessageList({ e, title }: { e: ChatEntry; title: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const rows = buildRows(e);
  const firstKey = rows.find((r) => r.kind !== "day")?.key ?? "";
  const lastRow = rows[rows.length - 1];
  const lastKey = lastRow?.key ?? "";
  const lastOwn = lastRow ? lastRow.kind === "pending" || (lastRow.kind === "msg" && lastRow.own) : false;

  // Read the scroll position of the DOM as it is before this render commits.
  const el = ref.current;
  const before = el ? { height: el.scrollHeight, top: el.scrollTop, nearBottom: el.scrollHeight - el.scrollTop - el.clientHeight < 120 } : null;
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
    if (node && e.history === "loaded" && node.scrollHeight <= node.clientHeight + 40 && store.hasOlder(e) && !e.olderError) {
      void store.loadOlder(e);
    }
  });

  function onScroll() {
    const node = ref.current;
    if (node && node.scrollTop < 120 && store.hasOlder(e) && !e.olderError) void store.loadOlder(e);
  }

  return (
    <div class="messages" ref={ref} onScroll={onScroll} tabIndex={0} aria-label={`Messages with ${title}`} data-testid="messages">
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
      {e.history === "loaded" && rows.length === 0 && (
        <p class="history-state muted">No messages yet. Say hello!</p>
      )}
      <div role="log" aria-live="polite" aria-relevant="additions" aria-label="Messages">
      <ol class="msg-list">
        {rows.map((r) =>
          r.kind === "day" ? (
            <li key={r.key} class="day-sep" role="separator">
              <span>{formatDay(r.at)}</span>
            </li>
          ) : r.kind === "msg" ? (
            <Bubble key={r.key} m={r.m} own={r.own} tick={r.tick} showName={r.showName} tail={r.tail} />
          ) : (
            <PendingBubble key={r.key} p={r.p} />
          ),
        )}
      </ol>
      </div>
    </div>
  );
}

const Bubble = memo(function Bubble(props: { m: Msg; own: boolean; tick: Tick | null; showName: boolean; tail: boolean }) {
  const { m, own, tick, showName, tail } = props;
  return (
    <li class={`msg ${own ? "own" : "other"}${tail ? " tail" : ""}`} data-testid="message" data-seq={m.seq} data-own={String(own)}>
      <div class="bubble">
        {showName && <span class="author">{m.username}</span>}
        <span class="sr-only">{own ? "You" : m.username}: </span>
        <p class="text" data-testid="message-text">
          {m.content}
        </p>
        <span class="meta">
          <time dateTime={new Date(m.sentAt).toISOString()} title={formatFull(m.sentAt)}>
            {formatTime(m.sentAt)}
          </time>
          {tick && <Ticks tick={tick} />}
        </span>
      </div>
    </li>
  );
});

function PendingBubble({ p }: { p: Pending }) {
  const failed = p.state === "failed";
  return (
    <li class={`msg own tail pending${failed ? " failed" : ""}`} data-testid="message" data-pending="true" data-own="true">
      <div class="bubble">
        <span class="sr-only">You: </span>
        <p class="text" data-testid="message-text">
          {p.content}
        </p>
        <span class="meta">
          <time dateTime={new Date(p.createdAt).toISOString()}>{formatTime(p.createdAt)}</time>
          <Ticks tick={failed ? "failed" : "sending"} />
        </span>
      </div>
      {failed && (
        <div class="failed-line" role="alert">
          <span>Not sent: {p.error}</span>
          <button class="link" type="button" onClick={() => store.retry(p.chatId, p.key)}>
            Retry
          </button>
          <button class="link" type="button" onClick={() => store.discard(p.chatId, p.key)}>
            Delete
          </button>
        </div>
      )}
    </li>
  );
}

function Composer({ e }: { e: ChatEntry }) {
  const [text, setText] = useState(drafts.get(e.id) ?? "");
  const ref = useRef<HTMLTextAreaElement>(null);
  const count = charCount(text);
  const left = MAX_MESSAGE_CHARS - count;
  const blank = text.trim().length === 0;
  const canSend = !blank && left >= 0;

  useEffect(() => {
    // Desktop: ready to type on opening a chat. Phones keep the keyboard down.
    if (window.matchMedia("(min-width: 761px)").matches) ref.current?.focus();
    autosize();
  }, [e.id]);

  function autosize() {
    const t = ref.current;
    if (!t) return;
    t.style.height = "auto";
    t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
  }

  function update(v: string) {
    setText(v);
    drafts.set(e.id, v);
    autosize();
  }

  function submit(ev?: Event) {
    ev?.preventDefault();
    if (!canSend) return;
    store.send(e.id, text);
    drafts.delete(e.id);
    setText("");
    queueMicrotask(autosize);
    ref.current?.focus();
  }

  return (
    <form class="composer" onSubmit={submit}>
      <label for="composer-input" class="sr-only">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        placeholder="Message"
        value={text}
        aria-describedby="composer-count composer-help"
        aria-invalid={left < 0 ? "true" : undefined}
        data-testid="composer"
        onInput={(ev) => {
          update(ev.currentTarget.value);
          store.typing(e.id, ev.currentTarget.value.length > 0);
        }}
        onKeyDown={(ev) => {
          if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) submit(ev);
        }}
        onBlur={() => store.typing(e.id, false)}
      />
      <span id="composer-help" class="sr-only">
        Enter sends, Shift+Enter starts a new line.
      </span>
      <span id="composer-count" class={`count${left < 0 ? " over" : left < 200 ? " near" : ""}`} data-testid="composer-count" aria-label={`${left} characters left`}>
        {left}
      </span>
      <button class="send" type="submit" disabled={!canSend} aria-label="Send" title="Send">
        <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
          <path d="M3.4 20.4l17.5-7.5a1 1 0 0 0 0-1.8L3.4 3.6a.5.5 0 0 0-.7.6L5 11l9 1-9 1-2.3 6.8a.5.5 0 0 0 .7.6z" fill="currentColor" />
        </svg>
      </button>
    </form>
  );
}
