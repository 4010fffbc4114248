// Message search: a dialog opened with Ctrl/Cmd-K or the sidebar's button,
// over MessagesService.SearchMessages (newest first, paged by next_cursor),
// in every chat or only the open one. Picking a hit opens its chat at that
// message (see openAt).

import "./search.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { asConnectError, CALL_TIMEOUT_MS, Code, describe } from "../api";
import type { SearchHit } from "../gen/messaging_pb";
import { type Msg, toMsg } from "../model";
import { snippetParts } from "../search";
import { type ChatEntry, store } from "../store";
import { formatFull, formatListTime } from "../util";
import { Modal } from "./Dialogs";
import { chatTitle, openChatRoute } from "./Messenger";

const PAGE = 20;
const DEBOUNCE_MS = 250;
/** Messages shown above the hit once it is opened. */
const CONTEXT = 10;
/** Scroll-back pages (of 100) loaded at most to reach a hit. */
const MAX_PAGES = 40;

/** The sidebar's search button; also owns the Ctrl/Cmd-K shortcut. */
export function SearchButton() {
  const [open, setOpen] = useState(false);
  const btn = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const onKey = (ev: KeyboardEvent) => {
      if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && !ev.shiftKey && ev.key.toLowerCase() === "k") {
        ev.preventDefault();
        setOpen(true);
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);
  const mac = /Mac|iPhone|iPad/.test(navigator.platform);
  return (
    <>
      <button
        ref={btn}
        class="icon-btn"
        type="button"
        aria-label="Search messages"
        title={`Search messages (${mac ? "⌘K" : "Ctrl+K"})`}
        aria-haspopup="dialog"
        aria-keyshortcuts="Control+K Meta+K"
        data-testid="open-search"
        onClick={() => setOpen(true)}
      >
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
          <circle cx="10.5" cy="10.5" r="6" fill="none" stroke="currentColor" stroke-width="2" />
          <path d="M15 15l5 5" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
        </svg>
      </button>
      {open && (
        <SearchDialog
          onClose={(jumped) => {
            setOpen(false);
            if (!jumped) setTimeout(() => btn.current?.focus(), 0);
          }}
        />
      )}
    </>
  );
}

interface Results {
  hits: SearchHit[];
  next: string;
  error: string;
  loading: boolean;
  /** The query these are for (so "no results" is not shown for a newer one). */
  query: string;
}

const EMPTY: Results = { hits: [], next: "", error: "", loading: false, query: "" };

function SearchDialog({ onClose }: { onClose: (jumped: boolean) => void }) {
  const openChat = store.openChatId ? store.chats.get(store.openChatId) : undefined;
  const [query, setQuery] = useState("");
  const [scope, setScope] = useState<"all" | "chat">("all");
  const [res, setRes] = useState<Results>(EMPTY);
  const [opening, setOpening] = useState("");
  const [jumpError, setJumpError] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const list = useRef<HTMLOListElement>(null);
  const gen = useRef(0);
  const chatId = scope === "chat" && openChat ? openChat.id : "";

  useEffect(() => input.current?.focus(), []);

  async function run(q: string, cursor: string, keep: SearchHit[]) {
    const mine = ++gen.current;
    setRes((r) => ({ ...r, loading: true, error: "" }));
    try {
      const r = await store.api.messages.searchMessages(
        { query: q, chatId, limit: PAGE, cursor },
        { timeoutMs: CALL_TIMEOUT_MS },
      );
      if (mine !== gen.current) return;
      setRes({ hits: [...keep, ...r.hits], next: r.nextCursor, error: "", loading: false, query: q });
    } catch (err) {
      if (mine !== gen.current) return;
      const x = asConnectError(err);
      if (x.code === Code.Unauthenticated) return store.expired();
      setRes({ hits: keep, next: cursor, error: describe(x), loading: false, query: q });
    }
  }

  // Search as the person types (debounced); a new query or scope starts over.
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      gen.current++;
      setRes(EMPTY);
      return;
    }
    const t = setTimeout(() => void run(q, "", []), DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [query, chatId]);

  async function pick(hit: SearchHit) {
    const m = hit.message;
    if (!m || opening) return;
    setOpening(m.id);
    setJumpError("");
    const got = await openAt(hit.chatId, toMsg(m));
    setOpening("");
    if (typeof got === "string") return setJumpError(got);
    onClose(true);
    // Once the dialog is gone (closing it gives the focus back to the button).
    setTimeout(() => flash(got), 0);
  }

  function onListKey(ev: KeyboardEvent) {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    const items = [...(list.current?.querySelectorAll<HTMLButtonElement>("button.hit") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLButtonElement);
    const next = ev.key === "ArrowDown" ? at + 1 : at - 1;
    ev.preventDefault();
    if (next < 0) input.current?.focus();
    else items[Math.min(next, items.length - 1)]?.focus();
  }

  const q = query.trim();
  const done = !res.loading && res.query === q && q !== "";
  return (
    <Modal title="Search messages" labelId="search-title" onClose={() => onClose(false)}>
      {/* biome-ignore lint/a11y/noStaticElementInteractions: arrow keys move between the input and the results (plain Tab works too) */}
      <div class="search" data-testid="search" onKeyDown={onListKey}>
        <form
          onSubmit={(ev) => {
            ev.preventDefault();
            if (q) void run(q, "", []);
          }}
        >
          <label for="search-input" class="sr-only">
            Words to find
          </label>
          <input
            id="search-input"
            ref={input}
            type="search"
            placeholder="Search messages"
            autocomplete="off"
            maxLength={256}
            value={query}
            data-testid="search-input"
            aria-describedby="search-status"
            onInput={(ev) => setQuery(ev.currentTarget.value)}
          />
        </form>
        {openChat && (
          <fieldset class="search-scope">
            <legend class="sr-only">Where to search</legend>
            <label>
              <input
                type="radio"
                name="search-scope"
                checked={scope === "all"}
                onChange={() => setScope("all")}
                data-testid="search-scope-all"
              />
              All chats
            </label>
            <label>
              <input
                type="radio"
                name="search-scope"
                checked={scope === "chat"}
                onChange={() => setScope("chat")}
                data-testid="search-scope-chat"
              />
              In {chatTitle(openChat)}
            </label>
          </fieldset>
        )}
        <p id="search-status" class="search-status muted small" role="status" data-testid="search-status">
          {res.loading && !res.hits.length
            ? "Searching…"
            : done && !res.hits.length && !res.error
              ? `No messages match “${q}”.`
              : done && res.hits.length
                ? `${res.hits.length}${res.next ? "+" : ""} ${res.hits.length === 1 ? "message" : "messages"} found`
                : ""}
        </p>
        {res.error && (
          <p class="search-error" role="alert" data-testid="search-error">
            {res.error}
          </p>
        )}
        {jumpError && (
          <p class="search-error" role="alert" data-testid="search-jump-error">
            {jumpError}
          </p>
        )}
        {res.hits.length > 0 && (
          <ol class="search-hits" ref={list} aria-label="Results" data-testid="search-results">
            {res.hits.map((h) => (
              <li key={h.message?.id ?? h.snippet}>
                <HitButton hit={h} busy={opening === h.message?.id} onPick={() => void pick(h)} />
              </li>
            ))}
          </ol>
        )}
        {res.next && res.hits.length > 0 && (
          <button
            class="secondary search-more"
            type="button"
            disabled={res.loading}
            data-testid="search-more"
            onClick={() => void run(res.query, res.next, res.hits)}
          >
            {res.loading ? "Loading…" : "More results"}
          </button>
        )}
      </div>
    </Modal>
  );
}

function HitButton({ hit, busy, onPick }: { hit: SearchHit; busy: boolean; onPick: () => void }) {
  const m = hit.message ? toMsg(hit.message) : null;
  const known = store.chats.get(hit.chatId);
  const chat = hit.chatName || (known ? chatTitle(known) : "Chat");
  const who = !m ? "" : m.userId === store.me ? "You" : m.username || "Someone";
  return (
    <button
      type="button"
      class="hit"
      data-testid="search-hit"
      data-chat-id={hit.chatId}
      data-message-id={m?.id}
      data-seq={m?.seq}
      aria-busy={busy ? "true" : undefined}
      onClick={onPick}
    >
      <span class="hit-top">
        <span class="hit-chat">{chat}</span>
        {m && (
          <time class="hit-time muted small" dateTime={new Date(m.sentAt).toISOString()} title={formatFull(m.sentAt)}>
            {formatListTime(m.sentAt)}
          </time>
        )}
      </span>
      <span class="hit-text">
        <span class="hit-who">{who}: </span>
        <span data-testid="search-snippet">
          <Snippet text={hit.snippet} />
        </span>
      </span>
      {busy && <span class="muted small">Opening…</span>}
    </button>
  );
}

/** The snippet with the matched words (between U+0002 and U+0003) marked;
 * everything is text nodes, never HTML. */
export function Snippet({ text }: { text: string }) {
  return <>{snippetParts(text).map((p, i) => (p.mark ? <mark key={i}>{p.text}</mark> : p.text))}</>;
}

// ---- opening a chat at a message ----------------------------------------------

/** Resolves at the store's next change (or after `ms`, as an upper bound). */
function nextChange(ms = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    const off = store.subscribe(done);
    function done() {
      clearTimeout(t);
      off();
      resolve();
    }
  });
}

/** Opens the chat and brings `m` into view: the chat's newest page first
 * (as any opening does), then older pages (ListMessages before_seq, 100 at
 * a time) until it and a few messages above it are loaded, so the history
 * stays one unbroken run down to the newest message. Returns its bubble
 * (for flash), or a sentence when it cannot. */
export async function openAt(chatId: string, m: Msg): Promise<HTMLElement | string> {
  openChatRoute(chatId);
  const deadline = Date.now() + 60_000;
  const current = () => store.openChatId === chatId && Date.now() < deadline;
  let e: ChatEntry | undefined;
  for (;;) {
    e = store.chats.get(chatId);
    if (!current()) return "The chat was closed.";
    if (e && e.history === "error") return e.historyError;
    if (e && !e.stub && e.history === "loaded") break;
    if (store.chatsLoaded && !e) return "This chat is not available.";
    await nextChange();
  }
  for (let pages = 0; current(); ) {
    const oldest = store.messagesOf(e)[0]?.seq ?? 0;
    if (!store.hasOlder(e) || oldest <= Math.max(1, m.seq - CONTEXT)) break;
    if (e.olderError) return e.olderError;
    if (e.olderLoading) {
      await nextChange();
      continue;
    }
    if (pages++ >= MAX_PAGES) return "That message is too far back to open. Search within the chat for newer words.";
    await store.loadOlder(e, 100);
  }
  if (!e.messages.has(m.seq)) return "That message is no longer there.";
  // The list renders after the store's change: wait for the bubble.
  for (let i = 0; i < 120; i++) {
    const el = document.querySelector<HTMLElement>(`[data-testid="messages"] [data-message-id="${CSS.escape(m.id)}"]`);
    if (el) return el;
    await new Promise((r) => requestAnimationFrame(r));
  }
  return "That message could not be shown.";
}

/** Scrolls the bubble to the middle, focuses and highlights it briefly. */
export function flash(el: HTMLElement): void {
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  el.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
  el.focus({ preventScroll: true });
  el.dataset.flash = "true";
  el.dataset.searchHit = "true";
  setTimeout(() => {
    delete el.dataset.flash;
    delete el.dataset.searchHit;
  }, 2500);
}
