// All client state and all talking to the server. The UI reads this store and
// calls its methods; it re-renders when the store says it changed.
//
// Delivery model:
//  - One user stream (EventsService.Subscribe) carries every event of every
//    chat. Per chat, `cursor` is the highest seq up to which the client has
//    everything it needs; on any break the stream is reopened with those
//    cursors, so the server replays exactly what was missed. Messages are keyed
//    by (chat, seq), so a replayed or doubly delivered message is shown once.
//  - Sends are optimistic: a pending bubble with a client-made idempotency key,
//    retried with the same key until the server acknowledges it.
//  - Changes (edits, deletes, reactions, renames, members) have a per-chat
//    cursor of their own (`changeCursor`, sent as `after_change`); see
//    changes.ts, which applies them.

import { create } from "@bufbuild/protobuf";
import {
  type Api,
  asConnectError,
  CALL_TIMEOUT_MS,
  Code,
  api as defaultApi,
  describe,
  isTransient,
  retryDelayMs,
  setAuthToken,
  tsToMs,
} from "./api";
import * as changes from "./changes";
import { type Chat, type ChatChange, ChatCursorSchema, type Event, type User } from "./gen/messaging_pb";
import { type AttachmentView, type BlockedView, type Member, type Msg, toMember, toMsg } from "./model";
import { backoffDelay, uuid } from "./util";

export type { AttachmentView, BlockedView, Member, Msg, QuoteView, ReactionView } from "./model";

export interface Pending {
  key: string;
  chatId: string;
  content: string;
  /** The message it answers, if any. */
  replyToId?: string;
  /** Uploaded files it carries (see files.ts); content may then be empty. */
  attachments?: AttachmentView[];
  createdAt: number;
  state: "sending" | "retrying" | "failed";
  error?: string;
  attempt: number;
  /** Seq of the stream message that is (very likely) this one, seen before
   * the acknowledgement: the pending bubble hides meanwhile. */
  echoSeq?: number;
}

export interface ChatEntry {
  id: string;
  name: string;
  isGroup: boolean;
  members: Member[];
  createdAt: number;
  lastMessage: Msg | null;
  /** Highest seq known to exist in the chat. */
  lastSeq: number;
  /** Resume point for the stream: nothing up to here is expected from it. */
  cursor: number;
  /** Whether `cursor` is meaningful (the chat is known to the stream). */
  hasCursor: boolean;
  /** Resume point for the chat's changes: the highest change_seq seen. */
  changeCursor: number;
  /** Whether `changeCursor` is meaningful (unset: changes start live). */
  hasChangeCursor: boolean;
  /** Changes received in this session (a counter), and the last of them,
   * to apply again to a page that was in flight meanwhile. */
  changeCount: number;
  recent: { n: number; c: ChatChange }[];
  /** A group room's owner ("" for a direct chat). */
  ownerId: string;
  /** `unread` accounts for messages up to this seq. */
  countedSeq: number;
  unread: number;
  /** Unread messages that mention the caller. */
  mentions: number;
  /** The caller's read watermark as the server knows it. */
  readSeq: number;
  /** Highest seq a MarkRead was sent for. */
  markedSeq: number;
  activity: number;
  rank: number;
  messages: Map<number, Msg>;
  /** Message id to seq, for the changes (which name messages by id). */
  byId: Map<string, number>;
  sorted: Msg[] | null;
  history: "none" | "loading" | "loaded" | "error";
  historyError: string;
  olderLoading: boolean;
  olderError: string;
  receipts: Map<string, { delivered: number; read: number }>;
  typing: Map<string, { username: string; until: number }>;
  pending: Pending[];
  sending: boolean;
  /** Known only from an event so far; GetChat is filling it in. */
  stub: boolean;
}

export type ConnState = "connecting" | "online" | "offline";

export interface Session {
  token: string;
  user: Member;
  /** When the token stops working (ms since the epoch; 0: unknown). */
  expiresAt: number;
}

export type Tick = "sending" | "failed" | "SENT" | "DELIVERED" | "READ";

const SESSION_KEY = "tidings.session";
const OUTBOX_PREFIX = "tidings.outbox.";
/** Assumed heartbeat interval is 25 s: two of them without any frame means
 * the stream is dead even if the socket does not say so. */
const STREAM_SILENCE_MS = 60_000;
const TYPING_SEND_EVERY_MS = 3_000;
const TYPING_SHOW_MS = 6_000;
const PAGE = 50;

const STATUS_RANK: Record<string, number> = { SENT: 0, DELIVERED: 1, READ: 2 };

function newEntry(id: string): ChatEntry {
  return {
    id,
    name: "",
    isGroup: false,
    members: [],
    createdAt: 0,
    lastMessage: null,
    lastSeq: 0,
    cursor: 0,
    hasCursor: false,
    changeCursor: 0,
    hasChangeCursor: false,
    changeCount: 0,
    recent: [],
    ownerId: "",
    countedSeq: 0,
    unread: 0,
    mentions: 0,
    readSeq: 0,
    markedSeq: 0,
    activity: 0,
    rank: 0,
    messages: new Map(),
    byId: new Map(),
    sorted: null,
    history: "none",
    historyError: "",
    olderLoading: false,
    olderError: "",
    receipts: new Map(),
    typing: new Map(),
    pending: [],
    sending: false,
    stub: true,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class Store {
  session: Session | null = null;
  chats = new Map<string, ChatEntry>();
  presence = new Map<string, boolean>();
  /** The people the caller blocked, by user id (kept in step with
   * `block_changed` from every device of the caller). */
  blocked = new Map<string, BlockedView>();
  blockedLoaded = false;
  openChatId: string | null = null;
  conn: ConnState = "connecting";
  /** The stream has been live at least once since start(). */
  everConnected = false;
  chatsLoaded = false;
  chatsError = "";
  /** A message for the log-in screen (e.g. the session expired). */
  notice = "";
  /** Text for the polite live region (new messages in other chats). */
  announcement = "";

  private listeners = new Set<() => void>();
  private scheduled = false;
  private running = false;
  /** Bumped by start() and logout(), so loops of an old session stop. */
  private generation = 0;
  private streamAbort: AbortController | null = null;
  /** Aborted to cut a backoff wait short (network back, a new chat...). */
  private wake = new AbortController();
  private refreshGen = 0;
  private markTimer: ReturnType<typeof setTimeout> | undefined;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private typingSent = new Map<string, number>();
  private fetchingChats = new Set<string>();

  /** `api`: the server's services (tests pass clients of a fake one). */
  constructor(readonly api: Api = defaultApi) {
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.scheduleMarkRead();
    });
    window.addEventListener("online", () => this.wakeUp());
    const raw = localStorage.getItem(SESSION_KEY);
    if (raw) {
      try {
        const s = JSON.parse(raw) as Session;
        if (s && typeof s.token === "string" && s.user?.id) {
          if (s.expiresAt && s.expiresAt <= Date.now()) {
            localStorage.removeItem(SESSION_KEY);
            this.notice = "Your session has expired. Please log in again.";
          } else {
            this.session = { ...s, expiresAt: s.expiresAt || 0 };
          }
        }
      } catch {
        localStorage.removeItem(SESSION_KEY);
      }
    }
  }

  // ---- change notification -------------------------------------------------

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Tells the UI to re-render (batched). */
  changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    });
  }

  get me(): string {
    return this.session?.user.id ?? "";
  }

  // ---- session -------------------------------------------------------------

  /** After log-in or registration. */
  signIn(token: string, user: User, expiresAt: number): void {
    this.session = { token, user: toMember(user), expiresAt };
    localStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    this.notice = "";
    this.start();
  }

  /** Starts syncing for the current session (also after a reload). */
  start(): void {
    if (!this.session || this.running) return;
    setAuthToken(this.session.token);
    this.running = true;
    this.generation++;
    this.restoreOutbox();
    this.scheduleRefresh();
    void this.checkSession();
    void this.runStream();
    this.changed();
  }

  logout(notice = ""): void {
    this.running = false;
    this.generation++;
    this.streamAbort?.abort();
    this.wakeUp();
    clearTimeout(this.markTimer);
    clearTimeout(this.typingTimer);
    clearTimeout(this.refreshTimer);
    if (this.session) localStorage.removeItem(OUTBOX_PREFIX + this.session.user.id);
    localStorage.removeItem(SESSION_KEY);
    setAuthToken(null);
    this.session = null;
    this.chats = new Map();
    this.presence = new Map();
    this.blocked = new Map();
    this.blockedLoaded = false;
    this.openChatId = null;
    this.conn = "connecting";
    this.everConnected = false;
    this.chatsLoaded = false;
    this.chatsError = "";
    this.announcement = "";
    this.typingSent.clear();
    this.notice = notice;
    this.changed();
  }

  expired(): void {
    if (this.session) this.logout("Your session has expired. Please log in again.");
  }

  /** A token kept from an earlier visit may have expired meanwhile. */
  private async checkSession(): Promise<void> {
    try {
      const r = await this.api.users.getMe({}, { timeoutMs: CALL_TIMEOUT_MS });
      if (r.user && this.session) {
        this.session.user = toMember(r.user);
        localStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
        this.changed();
      }
    } catch (err) {
      if (asConnectError(err).code === Code.Unauthenticated) this.expired();
      // Anything else: the stream's retries will tell the user.
    }
  }

  /** Swaps the token for a fresh one well before it expires, so a person
   * who keeps the tab open is not logged out. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const s = this.session;
    if (!s?.expiresAt) return;
    const left = s.expiresAt - Date.now();
    // At 80 % of what is left, but not sooner than 30 s from now; timers
    // cannot wait longer than about 24 days.
    const wait = Math.min(Math.max(left * 0.8, 30_000), 2 ** 31 - 1);
    this.refreshTimer = setTimeout(() => void this.refreshToken(), wait);
  }

  private async refreshToken(): Promise<void> {
    const s = this.session;
    if (!s || !this.running) return;
    try {
      const r = await this.api.users.refreshToken({}, { timeoutMs: CALL_TIMEOUT_MS });
      if (this.session !== s || !r.token) return;
      s.token = r.token;
      s.expiresAt = tsToMs(r.expiresAt);
      setAuthToken(r.token);
      localStorage.setItem(SESSION_KEY, JSON.stringify(s));
      this.scheduleRefresh();
    } catch (err) {
      const e = asConnectError(err);
      if (e.code === Code.Unauthenticated) return this.expired();
      if (this.session === s) this.refreshTimer = setTimeout(() => void this.refreshToken(), 60_000);
    }
  }

  private wakeUp(): void {
    this.wake.abort();
    this.wake = new AbortController();
  }

  // ---- the user stream -----------------------------------------------------

  private cursors() {
    const out = [];
    for (const e of this.chats.values()) {
      if (!e.hasCursor) continue;
      out.push(
        create(ChatCursorSchema, {
          chatId: e.id,
          afterSeq: BigInt(e.cursor),
          afterChange: e.hasChangeCursor ? BigInt(e.changeCursor) : undefined,
        }),
      );
    }
    return out;
  }

  private async runStream(): Promise<void> {
    const gen = this.generation;
    const live = () => this.running && gen === this.generation;
    let attempt = 0;
    while (live()) {
      const abort = new AbortController();
      this.streamAbort = abort;
      let silence: ReturnType<typeof setTimeout> | undefined;
      const alive = () => {
        clearTimeout(silence);
        silence = setTimeout(() => abort.abort(), STREAM_SILENCE_MS);
      };
      const token = this.session?.token;
      try {
        alive();
        const stream = this.api.events.subscribe({ cursors: this.cursors() }, { signal: abort.signal });
        for await (const ev of stream) {
          if (!live()) break;
          alive();
          if (ev.kind.case === "connected") attempt = 0;
          this.onEvent(ev);
        }
      } catch (err) {
        if (!live()) break;
        const e = asConnectError(err);
        if (e.code === Code.Unauthenticated) {
          // A stream opened with a token that was refreshed since ends when
          // the old token expires: reopen it with the new one.
          if (this.session && this.session.token !== token) continue;
          this.expired();
          break;
        }
      } finally {
        clearTimeout(silence);
      }
      if (!live()) break;
      this.conn = "offline";
      this.changed();
      await sleep(backoffDelay(attempt++), this.wake.signal);
      if (live() && this.conn === "offline") {
        this.conn = "connecting";
        this.changed();
      }
    }
  }

  private onEvent(ev: Event): void {
    const k = ev.kind;
    switch (k.case) {
      case "connected": {
        const first = !this.everConnected;
        // The server follows this with who of our peers is online right now
        // (only those): forget what we knew before the break.
        this.presence.clear();
        this.conn = "online";
        this.everConnected = true;
        void this.refreshChats();
        void this.refreshBlocked();
        if (!first) {
          const open = this.openEntry();
          if (open && open.history === "loaded") void this.loadLatest(open, true);
        }
        this.wakeUp();
        for (const e of this.chats.values()) this.pumpSends(e);
        break;
      }
      case "message":
        this.onMessage(toMsg(k.value));
        break;
      case "receipt": {
        const r = k.value;
        const e = this.chats.get(r.chatId);
        if (!e) break;
        const prev = e.receipts.get(r.userId) ?? { delivered: 0, read: 0 };
        const next = {
          delivered: Math.max(prev.delivered, Number(r.deliveredSeq)),
          read: Math.max(prev.read, Number(r.readSeq)),
        };
        e.receipts.set(r.userId, next);
        if (r.userId === this.me && next.read > e.readSeq) {
          e.readSeq = next.read;
          this.recountUnread(e);
        }
        break;
      }
      case "typing": {
        const t = k.value;
        if (t.userId === this.me) break;
        const e = this.chats.get(t.chatId);
        if (!e) break;
        if (t.typing) e.typing.set(t.userId, { username: t.username, until: Date.now() + TYPING_SHOW_MS });
        else e.typing.delete(t.userId);
        this.scheduleTypingExpiry();
        break;
      }
      case "presence":
        this.presence.set(k.value.userId, k.value.online);
        break;
      case "chatAdded": {
        const e = this.mergeChat(k.value, -1);
        if (!e.hasCursor) {
          // Delivered on the stream from here on.
          e.cursor = Number(k.value.lastSeq);
          e.hasCursor = true;
        }
        break;
      }
      case "blockChanged": {
        const b = k.value;
        if (b.blocked) this.markBlocked(b.userId, this.usernameOf(b.userId), Date.now());
        else this.markUnblocked(b.userId);
        void this.refreshBlocked(); // names and times as the server has them
        break;
      }
      case "chatRemoved":
        this.dropChat(k.value.chatId, "You are no longer a member of this chat.");
        break;
      case "memberChanged": {
        const m = k.value;
        const e = this.chats.get(m.chatId);
        if (!e || !m.user) break;
        if (m.user.id === this.me && !m.joined) {
          this.dropChat(e.id, "You left this chat.");
          break;
        }
        const uid = m.user.id;
        const others = e.members.filter((x) => x.id !== uid);
        e.members = m.joined ? [...others, toMember(m.user)] : others;
        break;
      }
      case "change":
        changes.applyChange(this, k.value);
        break;
      default: // heartbeat
        return; // nothing visible changes
    }
    this.changed();
  }

  /** Online, offline, or unknown (null) while the stream is down. */
  presenceOf(userId: string): boolean | null {
    if (this.conn !== "online") return null;
    return this.presence.get(userId) ?? false;
  }

  // ---- blocking ------------------------------------------------------------

  isBlocked(userId: string): boolean {
    return this.blocked.has(userId);
  }

  /** Blocked people, most recent first. */
  get blockedList(): BlockedView[] {
    return [...this.blocked.values()].sort((a, b) => b.blockedAt - a.blockedAt);
  }

  async refreshBlocked(): Promise<void> {
    try {
      const r = await this.api.users.listBlocked({}, { timeoutMs: CALL_TIMEOUT_MS });
      const next = new Map<string, BlockedView>();
      for (const u of r.users) {
        next.set(u.userId, { userId: u.userId, username: u.username, blockedAt: tsToMs(u.blockedAt) });
      }
      const gone = [...this.blocked.keys()].filter((id) => !next.has(id));
      this.blocked = next;
      this.blockedLoaded = true;
      for (const id of gone) this.reloadHiddenFrom(id);
    } catch (err) {
      if (asConnectError(err).code === Code.Unauthenticated) return this.expired();
      // Otherwise the next reconnect asks again; block_changed keeps it in step.
    }
    this.changed();
  }

  /** Rejects with the server's error (describe() words it). */
  async block(userId: string): Promise<void> {
    const r = await this.api.users.blockUser({ userId }, { timeoutMs: CALL_TIMEOUT_MS });
    const b = r.blocked;
    this.markBlocked(userId, b?.username || this.usernameOf(userId), tsToMs(b?.blockedAt) || Date.now());
    this.changed();
  }

  async unblock(userId: string): Promise<void> {
    await this.api.users.unblockUser({ userId }, { timeoutMs: CALL_TIMEOUT_MS });
    this.markUnblocked(userId);
    this.changed();
  }

  private markBlocked(userId: string, username: string, at: number): void {
    const had = this.blocked.get(userId);
    this.blocked.set(userId, { userId, username: username || had?.username || "", blockedAt: had?.blockedAt || at });
  }

  private markUnblocked(userId: string): void {
    if (this.blocked.delete(userId)) this.reloadHiddenFrom(userId);
  }

  /** After an unblock: their messages came without content, so the chats
   * that hold any are loaded again (the server sends the content now). */
  private reloadHiddenFrom(userId: string): void {
    let any = false;
    for (const e of this.chats.values()) {
      const stale = [...e.messages.values()].some((m) => m.hidden && m.userId === userId);
      const last = e.lastMessage?.hidden === true && e.lastMessage.userId === userId;
      if (!stale && !last) continue;
      any = true;
      if (stale) {
        e.messages = new Map();
        e.byId = new Map();
        e.sorted = null;
        e.history = "none";
        if (this.openChatId === e.id) void this.loadLatest(e, false);
      }
    }
    if (any) void this.refreshChats();
  }

  private usernameOf(userId: string): string {
    for (const e of this.chats.values()) {
      const m = e.members.find((x) => x.id === userId);
      if (m) return m.username;
    }
    return "";
  }

  // ---- chats ---------------------------------------------------------------

  private openEntry(): ChatEntry | undefined {
    return this.openChatId ? this.chats.get(this.openChatId) : undefined;
  }

  /** The chat list, most recently active first. */
  get chatList(): ChatEntry[] {
    return [...this.chats.values()].filter((e) => !e.stub).sort((a, b) => b.activity - a.activity || a.rank - b.rank);
  }

  get totalUnread(): number {
    let n = 0;
    for (const e of this.chats.values()) n += e.unread;
    return n;
  }

  /** Reconciles with the server's list; called whenever the stream goes live
   * (so events missed while it was down, like new chats, are picked up). */
  async refreshChats(): Promise<void> {
    const gen = ++this.refreshGen;
    const before = new Set(this.chats.keys());
    try {
      const all: Chat[] = [];
      let total = 0;
      for (let page = 1; page <= 50; page++) {
        const r = await this.api.chats.listChats({ page, limit: 100 }, { timeoutMs: CALL_TIMEOUT_MS });
        all.push(...r.chats);
        total = r.total;
        if (r.chats.length === 0 || all.length >= total) break;
      }
      if (gen !== this.refreshGen || !this.running) return;
      all.forEach((c, i) => {
        const e = this.mergeChat(c, i);
        // Taken after the stream went live: anything newer comes on the stream.
        if (!e.hasCursor) {
          e.cursor = Number(c.lastSeq);
          e.hasCursor = true;
        }
      });
      if (all.length >= total) {
        const seen = new Set(all.map((c) => c.id));
        for (const id of before) if (!seen.has(id)) this.dropChat(id, "You are no longer a member of this chat.");
      }
      this.chatsLoaded = true;
      this.chatsError = "";
      const open = this.openEntry();
      if (open && open.history === "none") void this.loadLatest(open, false);
    } catch (err) {
      const e = asConnectError(err);
      if (e.code === Code.Unauthenticated) return this.expired();
      if (!this.chatsLoaded) this.chatsError = describe(e);
    }
    this.scheduleMarkRead();
    this.changed();
  }

  private mergeChat(c: Chat, rank: number): ChatEntry {
    let e = this.chats.get(c.id);
    if (!e) {
      e = newEntry(c.id);
      this.chats.set(c.id, e);
    }
    e.stub = false;
    e.name = c.name;
    e.isGroup = c.isGroup;
    e.members = c.members.map(toMember);
    e.ownerId = c.ownerId;
    e.createdAt = tsToMs(c.createdAt);
    if (!e.hasChangeCursor) {
      // As `cursor`: newer changes come on the stream. Never moved up from
      // a snapshot once set: changes up to it may still be on their way.
      e.changeCursor = Number(c.lastChange);
      e.hasChangeCursor = true;
    }
    e.rank = rank;
    const snapLast = Number(c.lastSeq);
    const last = c.lastMessage?.id ? toMsg(c.lastMessage) : null;
    if (last && last.seq >= (e.lastMessage?.seq ?? 0)) e.lastMessage = last;
    e.lastSeq = Math.max(e.lastSeq, snapLast, last?.seq ?? 0);
    e.readSeq = Math.max(e.readSeq, Number(c.readSeq));
    if (snapLast >= e.countedSeq) {
      e.unread = c.unreadCount;
      e.mentions = c.unreadMentions;
      e.countedSeq = snapLast;
    } else {
      e.unread = c.unreadCount + this.countFromOthers(e, snapLast, e.countedSeq);
      e.mentions = c.unreadMentions + this.countFromOthers(e, snapLast, e.countedSeq, true);
    }
    if (e.readSeq >= e.lastSeq) e.unread = e.mentions = 0;
    e.activity = Math.max(e.activity, e.lastMessage?.sentAt ?? 0, e.createdAt);
    return e;
  }

  private dropChat(id: string, why: string): void {
    const e = this.chats.get(id);
    if (!e) return;
    this.chats.delete(id);
    if (this.openChatId === id) {
      this.openChatId = null;
      this.announcement = why;
    }
    this.saveOutbox();
    this.changed();
  }

  /** Fills in a chat first heard of from an event. */
  private async fetchChat(id: string): Promise<void> {
    if (this.fetchingChats.has(id)) return;
    this.fetchingChats.add(id);
    try {
      for (let attempt = 0; this.running && this.chats.get(id)?.stub; attempt++) {
        try {
          const r = await this.api.chats.getChat({ chatId: id }, { timeoutMs: CALL_TIMEOUT_MS });
          if (r.chat && this.chats.has(id)) this.mergeChat(r.chat, -1);
          break;
        } catch (err) {
          const e = asConnectError(err);
          if (e.code === Code.Unauthenticated) return this.expired();
          if (!isTransient(e)) {
            this.chats.delete(id);
            break;
          }
          await sleep(backoffDelay(attempt), this.wake.signal);
        }
      }
    } finally {
      this.fetchingChats.delete(id);
      this.changed();
    }
  }

  /** Opens (or creates) the direct chat with the person with this email. */
  async createDirect(email: string): Promise<string> {
    const r = await this.api.chats.createChat({ email: email.trim() }, { timeoutMs: CALL_TIMEOUT_MS });
    await this.ensureChat(r.chatId);
    return r.chatId;
  }

  async createGroup(name: string, emails: string[]): Promise<string> {
    const r = await this.api.chats.createChat(
      { name: name.trim(), memberEmails: emails, isGroup: true },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    await this.ensureChat(r.chatId);
    return r.chatId;
  }

  async addMembers(chatId: string, emails: string[]): Promise<void> {
    const r = await this.api.chats.addMembers({ chatId, memberEmails: emails }, { timeoutMs: CALL_TIMEOUT_MS });
    if (r.chat) this.mergeChat(r.chat, this.chats.get(chatId)?.rank ?? -1);
    this.changed();
  }

  async leave(chatId: string): Promise<void> {
    await this.api.chats.leaveChat({ chatId }, { timeoutMs: CALL_TIMEOUT_MS });
    this.dropChat(chatId, "You left the chat.");
  }

  private async ensureChat(id: string): Promise<void> {
    const known = this.chats.get(id);
    if (known && !known.stub) return;
    const r = await this.api.chats.getChat({ chatId: id }, { timeoutMs: CALL_TIMEOUT_MS });
    if (!r.chat) return;
    const e = this.mergeChat(r.chat, -1);
    if (!e.hasCursor) {
      // Created after the stream went live (or while it is down): the stream
      // delivers it from its creation on; resume from what GetChat saw.
      e.cursor = Number(r.chat.lastSeq);
      e.hasCursor = true;
    }
    this.changed();
  }

  // ---- messages ------------------------------------------------------------

  private onMessage(m: Msg): void {
    let e = this.chats.get(m.chatId);
    if (!e) {
      e = newEntry(m.chatId);
      e.cursor = m.seq - 1;
      e.countedSeq = m.seq - 1;
      e.hasCursor = true;
      this.chats.set(m.chatId, e);
      void this.fetchChat(m.chatId);
    }
    if (m.seq > e.cursor) e.cursor = m.seq;
    const existing = e.messages.get(m.seq);
    if (existing) {
      this.upgradeStatus(e, existing, m.status);
      return;
    }
    this.insert(e, m);
    if (m.userId === this.me) {
      const files = m.attachments.map((a) => a.id).join();
      const p = e.pending.find(
        (x) =>
          x.state !== "failed" &&
          x.echoSeq === undefined &&
          x.content === m.content &&
          (x.attachments?.map((a) => a.id).join() ?? "") === files,
      );
      if (p) p.echoSeq = m.seq;
    } else {
      e.typing.delete(m.userId);
    }
    if (m.seq > e.countedSeq) {
      if (m.userId !== this.me && m.seq > e.readSeq && !this.isReading(e)) {
        e.unread++;
        if (m.mentions.includes(this.me)) e.mentions++;
        if (this.openChatId !== e.id) {
          this.announcement = m.hidden
            ? "New message from someone you blocked"
            : `New message from ${m.username || "someone"}: ${m.content.slice(0, 80)}`;
        }
      }
      e.countedSeq = m.seq;
    }
    this.scheduleMarkRead();
  }

  private insert(e: ChatEntry, m: Msg): void {
    e.messages.set(m.seq, m);
    e.byId.set(m.id, m.seq);
    e.sorted = null;
    // Sending moves the sender's own watermarks up to the message (the server
    // does so without a Receipt event): they have seen everything before it.
    const r = e.receipts.get(m.userId);
    if (!r) e.receipts.set(m.userId, { delivered: m.seq, read: m.seq });
    else if (r.read < m.seq) e.receipts.set(m.userId, { delivered: Math.max(r.delivered, m.seq), read: m.seq });
    if (m.seq >= e.lastSeq || !e.lastMessage || m.seq > e.lastMessage.seq) {
      e.lastSeq = Math.max(e.lastSeq, m.seq);
      e.lastMessage = m;
      e.activity = Math.max(e.activity, m.sentAt);
    }
  }

  private upgradeStatus(e: ChatEntry, existing: Msg, status: string): void {
    if ((STATUS_RANK[status] ?? 0) > (STATUS_RANK[existing.status] ?? 0)) {
      const next = { ...existing, status };
      e.messages.set(existing.seq, next);
      if (e.lastMessage?.seq === next.seq) e.lastMessage = next;
      e.sorted = null;
    }
  }

  /** Messages from others with from < seq <= to that are not read. */
  private countFromOthers(e: ChatEntry, from: number, to: number, mentioning = false): number {
    let n = 0;
    for (const m of e.messages.values()) {
      if (m.seq > from && m.seq <= to && m.seq > e.readSeq && m.userId !== this.me) {
        if (!mentioning || m.mentions.includes(this.me)) n++;
      }
    }
    return n;
  }

  private recountUnread(e: ChatEntry): void {
    if (e.readSeq >= e.countedSeq) e.unread = e.mentions = 0;
    else if (e.history === "loaded") {
      e.unread = this.countFromOthers(e, e.readSeq, e.countedSeq);
      e.mentions = this.countFromOthers(e, e.readSeq, e.countedSeq, true);
    }
  }

  /** The chat's messages in seq order. */
  messagesOf(e: ChatEntry): Msg[] {
    if (!e.sorted) e.sorted = [...e.messages.values()].sort((a, b) => a.seq - b.seq);
    return e.sorted;
  }

  hasOlder(e: ChatEntry): boolean {
    const list = this.messagesOf(e);
    return list.length > 0 && list[0].seq > 1;
  }

  /** Highest seq such that everything from the oldest loaded message up to
   * it is on screen. */
  private shownTop(e: ChatEntry): number {
    const list = this.messagesOf(e);
    if (!list.length) return 0;
    let top = list[0].seq;
    for (const m of list) {
      if (m.seq > top + 1) break;
      top = m.seq;
    }
    return top;
  }

  openChat(id: string | null): void {
    if (this.openChatId === id) return;
    // What was on screen in the chat being left counts as read now, not
    // after the debounce (when another chat is open).
    clearTimeout(this.markTimer);
    void this.flushMarkRead();
    this.openChatId = id;
    this.announcement = "";
    const e = this.openEntry();
    if (e && (e.history === "none" || e.history === "error")) void this.loadLatest(e, false);
    this.scheduleMarkRead();
    this.changed();
  }

  /** The newest page. `quiet`: a refresh of what is on screen (after a
   * reconnect, for ticks that moved meanwhile), not a first load. */
  async loadLatest(e: ChatEntry, quiet: boolean): Promise<void> {
    if (!quiet) {
      e.history = "loading";
      e.historyError = "";
      this.changed();
    }
    const mark = e.changeCount;
    try {
      const r = await this.api.messages.listMessages({ chatId: e.id, limit: PAGE }, { timeoutMs: CALL_TIMEOUT_MS });
      const page = r.messages.map(toMsg);
      const fresh = new Set<string>();
      if (page.length) {
        const min = Math.min(...page.map((m) => m.seq));
        const have = this.messagesOf(e);
        // A gap between what was kept and this page: drop the older part
        // (scrolling back fetches it again) so the view never hides a hole.
        if (have.length && have[have.length - 1].seq < min - 1) {
          for (const m of have) if (m.seq < min) e.messages.delete(m.seq);
          e.sorted = null;
        }
      }
      for (const m of page) {
        const existing = e.messages.get(m.seq);
        if (existing) {
          this.upgradeStatus(e, existing, m.status);
          changes.mergeFresh(e, existing, m);
        } else {
          this.insert(e, m);
          fresh.add(m.id);
        }
      }
      changes.reapplyRecent(this, e, mark, fresh);
      e.history = "loaded";
      this.recountUnread(e);
    } catch (err) {
      const x = asConnectError(err);
      if (x.code === Code.Unauthenticated) return this.expired();
      if (!quiet) {
        e.history = "error";
        e.historyError = describe(x);
      }
    }
    this.scheduleMarkRead();
    this.changed();
  }

  /** Scroll-back: the page before the oldest message shown (`limit`: up
   * to 100; a jump to a search hit takes bigger steps). */
  async loadOlder(e: ChatEntry, limit = PAGE): Promise<void> {
    if (e.olderLoading || !this.hasOlder(e)) return;
    const before = this.messagesOf(e)[0].seq;
    e.olderLoading = true;
    e.olderError = "";
    this.changed();
    const mark = e.changeCount;
    try {
      const r = await this.api.messages.listMessages(
        { chatId: e.id, beforeSeq: BigInt(before), limit },
        { timeoutMs: CALL_TIMEOUT_MS },
      );
      const fresh = new Set<string>();
      for (const m of r.messages.map(toMsg)) {
        if (e.messages.has(m.seq)) continue;
        this.insert(e, m);
        fresh.add(m.id);
      }
      changes.reapplyRecent(this, e, mark, fresh);
    } catch (err) {
      const x = asConnectError(err);
      if (x.code === Code.Unauthenticated) return this.expired();
      e.olderError = describe(x);
    } finally {
      e.olderLoading = false;
      this.changed();
    }
  }

  /** The ticks on one of the caller's own messages. */
  tickOf(e: ChatEntry, m: Msg): Tick {
    let best = STATUS_RANK[m.status] ?? 0;
    const others = e.members.filter((x) => x.id !== this.me);
    if (others.length) {
      let read = Infinity;
      let delivered = Infinity;
      let all = true;
      for (const o of others) {
        const r = e.receipts.get(o.id);
        if (!r) {
          all = false;
          break;
        }
        read = Math.min(read, r.read);
        delivered = Math.min(delivered, Math.max(r.delivered, r.read));
      }
      if (all) {
        if (m.seq <= read) best = Math.max(best, 2);
        else if (m.seq <= delivered) best = Math.max(best, 1);
      }
    }
    return best === 2 ? "READ" : best === 1 ? "DELIVERED" : "SENT";
  }

  /** Pending bubbles to show after the stored messages. */
  pendingOf(e: ChatEntry): Pending[] {
    return e.pending.filter((p) => p.echoSeq === undefined || !e.messages.has(p.echoSeq));
  }

  // ---- reading -------------------------------------------------------------

  private isReading(e: ChatEntry): boolean {
    return this.openChatId === e.id && document.visibilityState === "visible" && e.history === "loaded";
  }

  scheduleMarkRead(): void {
    const e = this.openEntry();
    if (!e || !this.isReading(e)) return;
    if (e.unread > 0 || e.mentions > 0) {
      e.unread = e.mentions = 0; // the badge clears at once; the server follows
      this.changed();
    }
    clearTimeout(this.markTimer);
    this.markTimer = setTimeout(() => void this.flushMarkRead(), 300);
  }

  private async flushMarkRead(): Promise<void> {
    const e = this.openEntry();
    if (!e || !this.isReading(e)) return;
    const seq = this.shownTop(e);
    if (seq <= Math.max(e.readSeq, e.markedSeq)) return;
    e.markedSeq = seq;
    try {
      const r = await this.api.messages.markRead({ chatId: e.id, seq: BigInt(seq) }, { timeoutMs: CALL_TIMEOUT_MS });
      e.readSeq = Math.max(e.readSeq, Number(r.readSeq));
      this.recountUnread(e);
      if (this.openChatId === e.id) e.unread = e.mentions = 0;
      this.changed();
    } catch (err) {
      const x = asConnectError(err);
      if (x.code === Code.Unauthenticated) return this.expired();
      e.markedSeq = e.readSeq; // try again on the next occasion
      if (isTransient(x) && this.running) {
        clearTimeout(this.markTimer);
        this.markTimer = setTimeout(() => this.scheduleMarkRead(), 3_000);
      }
    }
  }

  // ---- typing --------------------------------------------------------------

  /** Called on every keystroke in the composer: at most one call per 3 s. */
  typing(chatId: string, active: boolean): void {
    const last = this.typingSent.get(chatId) ?? 0;
    const now = Date.now();
    if (active) {
      if (now - last < TYPING_SEND_EVERY_MS) return;
      this.typingSent.set(chatId, now);
    } else {
      if (!last) return; // never said we were typing
      this.typingSent.delete(chatId);
    }
    this.api.messages.sendTyping({ chatId, typing: active }, { timeoutMs: CALL_TIMEOUT_MS }).catch(() => {
      // Ephemeral: a lost typing notice is not worth a retry or a message.
    });
  }

  typingNames(e: ChatEntry): string[] {
    const now = Date.now();
    return [...e.typing.values()].filter((t) => t.until > now).map((t) => t.username || "Someone");
  }

  private scheduleTypingExpiry(): void {
    clearTimeout(this.typingTimer);
    let next = Infinity;
    const now = Date.now();
    for (const e of this.chats.values()) {
      for (const [id, t] of e.typing) {
        if (t.until <= now) e.typing.delete(id);
        else next = Math.min(next, t.until);
      }
    }
    if (next !== Infinity) {
      this.typingTimer = setTimeout(
        () => {
          this.scheduleTypingExpiry();
          this.changed();
        },
        next - now + 20,
      );
    }
  }

  // ---- sending -------------------------------------------------------------

  /** `replyToId`: the message of this chat it answers; `attachments`:
   * uploaded files to send with it. */
  send(chatId: string, content: string, replyToId?: string, attachments?: AttachmentView[]): void {
    const e = this.chats.get(chatId);
    if (!e) return;
    this.typing(chatId, false);
    const files = attachments?.length ? attachments : undefined;
    e.pending.push({
      key: uuid(),
      chatId,
      content,
      replyToId,
      attachments: files,
      createdAt: Date.now(),
      state: "sending",
      attempt: 0,
    });
    this.saveOutbox();
    this.changed();
    this.pumpSends(e);
  }

  retry(chatId: string, key: string): void {
    const e = this.chats.get(chatId);
    const p = e?.pending.find((x) => x.key === key);
    if (!e || !p) return;
    // A new key: the old one may be tied to a refused request.
    p.key = uuid();
    p.state = "sending";
    p.error = undefined;
    p.attempt = 0;
    this.saveOutbox();
    this.changed();
    this.pumpSends(e);
  }

  discard(chatId: string, key: string): void {
    const e = this.chats.get(chatId);
    if (!e) return;
    e.pending = e.pending.filter((x) => x.key !== key);
    this.saveOutbox();
    this.changed();
  }

  /** Sends a chat's pending messages one at a time, in order, each retried
   * with its own key until the server acknowledges it. */
  private pumpSends(e: ChatEntry): void {
    if (e.sending || !this.running) return;
    e.sending = true;
    void (async () => {
      try {
        while (this.running && this.chats.get(e.id) === e) {
          const p = e.pending.find((x) => x.state !== "failed");
          if (!p) break;
          try {
            const r = await this.api.messages.sendMessage(
              {
                chatId: e.id,
                content: p.content,
                idempotencyKey: p.key,
                replyToId: p.replyToId ?? "",
                attachmentIds: p.attachments?.map((a) => a.id) ?? [],
              },
              { timeoutMs: CALL_TIMEOUT_MS },
            );
            e.pending = e.pending.filter((x) => x !== p);
            if (r.message) {
              const m = toMsg(r.message);
              if (!e.messages.has(m.seq)) this.insert(e, m);
              if (m.seq > e.countedSeq && e.cursor >= m.seq - 1) e.countedSeq = m.seq;
            }
            this.saveOutbox();
            this.scheduleMarkRead();
            this.changed();
          } catch (err) {
            const x = asConnectError(err);
            if (x.code === Code.Unauthenticated) return this.expired();
            if (
              x.code === Code.InvalidArgument ||
              x.code === Code.NotFound ||
              x.code === Code.FailedPrecondition ||
              x.code === Code.PermissionDenied ||
              x.code === Code.Unimplemented
            ) {
              p.state = "failed";
              p.error = describe(x);
            } else {
              p.state = "retrying";
              p.attempt++;
            }
            this.saveOutbox();
            this.changed();
            if (p.state === "retrying") {
              // A rate limit says how long to wait (RetryInfo): that long,
              // not cut short by a reconnect. Anything else: backoff.
              const wait = retryDelayMs(x);
              if (wait !== null) await sleep(wait);
              else await sleep(backoffDelay(p.attempt - 1), this.wake.signal);
            }
          }
        }
      } finally {
        e.sending = false;
      }
    })();
  }

  // ---- changing messages and rooms (see changes.ts) ------------------------

  /** Rejects with an Error whose message is a sentence for the person. */
  edit(chatId: string, messageId: string, content: string): Promise<void> {
    return changes.editMessage(this, chatId, messageId, content);
  }

  deleteMessage(chatId: string, messageId: string): Promise<void> {
    return changes.deleteMessage(this, chatId, messageId);
  }

  toggleReaction(chatId: string, messageId: string, emoji: string): Promise<void> {
    return changes.toggleReaction(this, chatId, messageId, emoji);
  }

  rename(chatId: string, name: string): Promise<void> {
    return changes.renameChat(this, chatId, name);
  }

  removeMember(chatId: string, userId: string): Promise<void> {
    return changes.removeMember(this, chatId, userId);
  }

  /** A loaded message of the chat, by id. */
  messageById(e: ChatEntry, id: string): Msg | undefined {
    const seq = e.byId.get(id);
    const m = seq === undefined ? undefined : e.messages.get(seq);
    return m && m.id === id ? m : undefined;
  }

  private saveOutbox(): void {
    if (!this.session) return;
    const all: Pending[] = [];
    for (const e of this.chats.values()) all.push(...e.pending);
    const key = OUTBOX_PREFIX + this.session.user.id;
    if (all.length) {
      const slim = all.map(({ key, chatId, content, replyToId, attachments, createdAt, state, error }) => ({
        key,
        chatId,
        content,
        replyToId,
        attachments,
        createdAt,
        state,
        error,
      }));
      localStorage.setItem(key, JSON.stringify(slim));
    } else {
      localStorage.removeItem(key);
    }
  }

  /** Unsent messages from before a reload go out again with the same keys,
   * so the server stores each at most once. */
  private restoreOutbox(): void {
    if (!this.session) return;
    const raw = localStorage.getItem(OUTBOX_PREFIX + this.session.user.id);
    if (!raw) return;
    try {
      const list = JSON.parse(raw) as Pending[];
      for (const p of list) {
        let e = this.chats.get(p.chatId);
        if (!e) {
          e = newEntry(p.chatId);
          this.chats.set(p.chatId, e);
        }
        e.pending.push({ ...p, state: p.state === "failed" ? "failed" : "sending", attempt: 0 });
      }
    } catch {
      localStorage.removeItem(OUTBOX_PREFIX + this.session.user.id);
      return;
    }
    for (const e of this.chats.values()) {
      if (e.pending.length) {
        void this.fetchChat(e.id);
        this.pumpSends(e);
      }
    }
  }
}

export const store = new Store();
