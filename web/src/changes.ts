// Messages people can change: edits, deletes, reactions, and the chat's own
// changes (renames, members), as they come from the user stream
// (`Event.change`) and as the caller makes them.
//
// Delivery: every change of a chat carries a per-chat gapless change_seq.
// Per chat the store keeps the highest one seen (`changeCursor`) and sends it
// as the cursor's `after_change` whenever the stream is reopened, so what was
// missed meanwhile is replayed once. Applying a change is idempotent (an edit
// carries the message's current text, a reaction the emoji's current count),
// so a change seen twice or one already reflected in a loaded page is
// harmless. A change to a message that is not loaded is not needed: the page
// that loads it later has it. Only a page in flight while the change arrived
// may predate it, so the last changes are kept and applied again to what such
// a page brings (see `reapplyRecent`).

import { asConnectError, CALL_TIMEOUT_MS, Code, describe, tsToMs } from "./api";
import type { ChatChange } from "./gen/messaging_pb";
import { excerptOf, type Msg, type ReactionView, toMember, toMsg, toReaction } from "./model";
import type { ChatEntry, Store } from "./store";

/** The emoji the picker offers. */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
/** At most this many distinct emoji per message (the server's limit). */
export const MAX_DISTINCT_REACTIONS = 20;
const RECENT_CHANGES = 200;

// ---- applying --------------------------------------------------------------

/** Replaces the message with this id, where the chat holds it (its loaded
 * messages, its last message), by `fn` of it. */
function patchMessage(e: ChatEntry, id: string, fn: (m: Msg) => Msg): boolean {
  let found = false;
  const seq = e.byId.get(id);
  const old = seq === undefined ? undefined : e.messages.get(seq);
  if (old && old.id === id) {
    const next = fn(old);
    e.messages.set(old.seq, next);
    e.sorted = null;
    if (e.lastMessage?.id === id) e.lastMessage = next;
    found = true;
  } else if (e.lastMessage?.id === id) {
    e.lastMessage = fn(e.lastMessage);
    found = true;
  }
  return found;
}

/** The quotes of the message `id` in the answers to it that are loaded. */
function patchQuotes(e: ChatEntry, id: string, excerpt: string, deleted: boolean): void {
  for (const m of e.messages.values()) {
    if (m.replyToId !== id || !m.replyTo) continue;
    if (m.replyTo.excerpt === excerpt && m.replyTo.deleted === deleted) continue;
    e.messages.set(m.seq, { ...m, replyTo: { ...m.replyTo, excerpt, deleted } });
    e.sorted = null;
  }
}

/** `now`: the message as it is now (an edit's result). */
export function applyEdited(e: ChatEntry, now: Msg): void {
  if (now.hidden) {
    // From someone the caller blocked: no content to show, nor to quote.
    patchMessage(e, now.id, (m) => ({ ...m, hidden: true, editedAt: now.editedAt || m.editedAt }));
    return;
  }
  patchMessage(e, now.id, (m) => {
    // Content is never blank but once deleted (or when files carry it).
    const gone = !now.content && !now.attachments.length;
    if (m.deletedAt || now.deletedAt || gone) return tombstone(m, m.deletedAt || now.deletedAt || Date.now());
    return { ...m, content: now.content, editedAt: now.editedAt || m.editedAt || Date.now(), mentions: now.mentions };
  });
  if (now.deletedAt || (!now.content && !now.attachments.length)) patchQuotes(e, now.id, "", true);
  else patchQuotes(e, now.id, excerptOf(now.content), false);
}

function tombstone(m: Msg, at: number): Msg {
  return { ...m, content: "", deletedAt: at, mentions: [], reactions: [], attachments: [] };
}

export function applyDeleted(e: ChatEntry, id: string, at: number): void {
  patchMessage(e, id, (m) => (m.deletedAt ? m : tombstone(m, at || Date.now())));
  patchQuotes(e, id, "", true);
}

/** `userId` added (or took back) `emoji`, which `count` people have now. */
export function applyReaction(
  e: ChatEntry,
  me: string,
  id: string,
  userId: string,
  emoji: string,
  added: boolean,
  count: number,
): void {
  patchMessage(e, id, (m) => ({ ...m, reactions: withReaction(m.reactions, me, userId, emoji, added, count) }));
}

function withReaction(
  list: ReactionView[],
  me: string,
  userId: string,
  emoji: string,
  added: boolean,
  count: number,
): ReactionView[] {
  const i = list.findIndex((r) => r.emoji === emoji);
  if (count <= 0) return i < 0 ? list : list.filter((_, j) => j !== i);
  const old = i < 0 ? { emoji, count: 0, mine: false, userIds: [] as string[] } : list[i];
  let userIds = old.userIds.filter((u) => u !== userId);
  if (added) userIds = [...userIds, userId].slice(0, 5);
  const next: ReactionView = { emoji, count, mine: userId === me ? added : old.mine, userIds };
  return i < 0 ? [...list, next] : list.map((r, j) => (j === i ? next : r));
}

function setReactions(e: ChatEntry, id: string, reactions: ReactionView[]): void {
  patchMessage(e, id, (m) => ({ ...m, reactions }));
}

/** One change from the user stream. */
export function applyChange(s: Store, c: ChatChange): void {
  const e = s.chats.get(c.chatId);
  if (!e) return;
  const seq = Number(c.changeSeq);
  if (!e.hasChangeCursor || seq > e.changeCursor) e.changeCursor = seq;
  e.hasChangeCursor = true;
  e.changeCount++;
  e.recent.push({ n: e.changeCount, c });
  if (e.recent.length > RECENT_CHANGES) e.recent.shift();
  applyToChat(s, e, c);
}

function applyToChat(s: Store, e: ChatEntry, c: ChatChange, only?: Set<string>): void {
  const k = c.kind;
  switch (k.case) {
    case "edited":
      if (!only || only.has(k.value.id)) applyEdited(e, toMsg(k.value));
      break;
    case "deleted":
      if (!only || only.has(k.value.messageId)) applyDeleted(e, k.value.messageId, tsToMs(k.value.deletedAt));
      break;
    case "reaction": {
      const r = k.value;
      if (!only || only.has(r.messageId)) applyReaction(e, s.me, r.messageId, c.userId, r.emoji, r.added, r.count);
      break;
    }
    case "renamed":
      if (!only && e.isGroup) e.name = k.value.name;
      break;
    case "member": {
      const m = k.value;
      if (only || !m.user) break;
      const uid = m.user.id;
      const others = e.members.filter((x) => x.id !== uid);
      e.members = m.joined ? [...others, toMember(m.user)] : others;
      break;
    }
    default:
      break;
  }
}

/** Applies again the changes received after `since` (a `changeCount`) to
 * the messages `ids`, just taken from a page that may predate them. */
export function reapplyRecent(s: Store, e: ChatEntry, since: number, ids: Set<string>): void {
  if (!ids.size) return;
  for (const { n, c } of e.recent) if (n > since) applyToChat(s, e, c, ids);
}

/** Keeps an edit or a delete a fresher page shows of a message already held
 * (reactions come from the changes only: a page cannot tell their order). */
export function mergeFresh(e: ChatEntry, held: Msg, page: Msg): void {
  if (page.deletedAt && !held.deletedAt) applyDeleted(e, held.id, page.deletedAt);
  else if (!held.deletedAt && page.editedAt > held.editedAt) applyEdited(e, page);
}

// ---- the caller's changes ----------------------------------------------------

function messageOf(e: ChatEntry, id: string): Msg | undefined {
  const seq = e.byId.get(id);
  const m = seq === undefined ? undefined : e.messages.get(seq);
  return m && m.id === id ? m : undefined;
}

/** A sentence for a failed change (and a log-out when the session ended). */
function failure(s: Store, err: unknown): Error {
  const x = asConnectError(err);
  if (x.code === Code.Unauthenticated) s.expired();
  if (x.code === Code.FailedPrecondition && /delet/i.test(x.rawMessage)) return new Error("That message was deleted.");
  return new Error(describe(x), { cause: x });
}

export async function editMessage(s: Store, chatId: string, id: string, content: string): Promise<void> {
  const e = s.chats.get(chatId);
  const before = e && messageOf(e, id);
  if (!e || !before) return;
  // Shown at once; the server's answer (or the previous text) follows.
  applyEdited(e, { ...before, content, editedAt: Date.now() });
  s.changed();
  try {
    const r = await s.api.messages.editMessage({ messageId: id, content }, { timeoutMs: CALL_TIMEOUT_MS });
    if (r.message) applyEdited(e, toMsg(r.message));
  } catch (err) {
    const now = messageOf(e, id);
    if (now && !now.deletedAt && now.content === content) {
      patchMessage(e, id, (m) => ({
        ...m,
        content: before.content,
        editedAt: before.editedAt,
        mentions: before.mentions,
      }));
      patchQuotes(e, id, excerptOf(before.content), false);
    }
    throw failure(s, err);
  } finally {
    s.changed();
  }
}

export async function deleteMessage(s: Store, chatId: string, id: string): Promise<void> {
  const e = s.chats.get(chatId);
  if (!e) return;
  try {
    await s.api.messages.deleteMessage({ messageId: id }, { timeoutMs: CALL_TIMEOUT_MS });
    applyDeleted(e, id, Date.now());
  } catch (err) {
    throw failure(s, err);
  } finally {
    s.changed();
  }
}

/** Reaction calls of one message go one at a time, so their answers (each
 * the whole summary) arrive in the order they were made. */
const reacting = new Map<string, Promise<unknown>>();

/** Clicking an emoji: takes the caller's reaction back if it has one, else
 * adds it (the server's calls are idempotent, not toggles). */
export function toggleReaction(s: Store, chatId: string, id: string, emoji: string): Promise<void> {
  const e = s.chats.get(chatId);
  const m = e && messageOf(e, id);
  if (!e || !m || m.deletedAt) return Promise.resolve();
  const had = m.reactions.find((r) => r.emoji === emoji);
  const remove = had?.mine === true;
  if (!remove && !had && m.reactions.length >= MAX_DISTINCT_REACTIONS) {
    return Promise.reject(new Error(`A message can have at most ${MAX_DISTINCT_REACTIONS} different reactions.`));
  }
  const previous = m.reactions;
  applyReaction(e, s.me, id, s.me, emoji, !remove, (had?.count ?? 0) + (remove ? -1 : 1));
  s.changed();
  const run = async () => {
    try {
      const req = { messageId: id, emoji };
      const r = remove
        ? await s.api.messages.removeReaction(req, { timeoutMs: CALL_TIMEOUT_MS })
        : await s.api.messages.addReaction(req, { timeoutMs: CALL_TIMEOUT_MS });
      setReactions(e, id, r.reactions.filter((x) => x.count > 0).map(toReaction));
    } catch (err) {
      setReactions(e, id, previous);
      throw failure(s, err);
    } finally {
      s.changed();
    }
  };
  const prev = reacting.get(id) ?? Promise.resolve();
  const next = prev.catch(() => {}).then(run);
  reacting.set(id, next);
  void next
    .finally(() => {
      if (reacting.get(id) === next) reacting.delete(id);
    })
    .catch(() => {});
  return next;
}

export async function renameChat(s: Store, chatId: string, name: string): Promise<void> {
  try {
    const r = await s.api.chats.updateChat({ chatId, name: name.trim() }, { timeoutMs: CALL_TIMEOUT_MS });
    const e = s.chats.get(chatId);
    if (e && r.chat) e.name = r.chat.name;
  } catch (err) {
    throw failure(s, err);
  } finally {
    s.changed();
  }
}

export async function removeMember(s: Store, chatId: string, userId: string): Promise<void> {
  try {
    const r = await s.api.chats.removeMember({ chatId, userId }, { timeoutMs: CALL_TIMEOUT_MS });
    const e = s.chats.get(chatId);
    if (e && r.chat) e.members = r.chat.members.map(toMember);
    else if (e) e.members = e.members.filter((x) => x.id !== userId);
  } catch (err) {
    throw failure(s, err);
  } finally {
    s.changed();
  }
}

/** Whether the caller may delete `m` in this chat: its sender, or the
 * owner of a group room. */
export function canDelete(e: ChatEntry, me: string, m: Msg): boolean {
  if (m.deletedAt) return false;
  return m.userId === me || (e.isGroup && e.ownerId === me);
}

/** The caller's newest message that can still be edited (for the up arrow). */
export function lastEditable(messages: Msg[], me: string): Msg | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m.userId === me && !m.deletedAt) return m;
  }
  return undefined;
}
