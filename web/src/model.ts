// The client's view of the wire entities: plain objects the store keeps and
// the UI draws, converted from the generated protobuf messages.

import { tsToMs } from "./api";
import type { Attachment, Message, Quote, Reaction, User } from "./gen/messaging_pb";

export interface Member {
  id: string;
  username: string;
  email: string;
}

/** The message another one answers, as much as a quote needs. */
export interface QuoteView {
  messageId: string;
  userId: string;
  username: string;
  excerpt: string;
  deleted: boolean;
  /** From someone the caller blocked: `excerpt` is withheld. */
  hidden: boolean;
}

/** The reactions of one emoji on a message. */
export interface ReactionView {
  emoji: string;
  count: number;
  /** Whether the caller is one of them. */
  mine: boolean;
  /** The first few who reacted (at most 5 as the server sends them). */
  userIds: string[];
}

export interface Msg {
  id: string;
  seq: number;
  chatId: string;
  userId: string;
  username: string;
  /** Empty once deleted. */
  content: string;
  sentAt: number;
  /** SENT, DELIVERED or READ as the server last said. */
  status: string;
  /** When last edited (ms; 0: never). */
  editedAt: number;
  /** When deleted (ms; 0: not deleted). A deleted message stays as a
   * tombstone so seqs stay gapless. */
  deletedAt: number;
  /** The message this one answers ("" when none). */
  replyToId: string;
  replyTo: QuoteView | null;
  /** Ids of the members it names with @username. */
  mentions: string[];
  reactions: ReactionView[];
  /** From someone the caller blocked: the server withheld content,
   * mentions and the quote's excerpt. */
  hidden: boolean;
  /** Files sent with it, in order (none for a text message). */
  attachments: AttachmentView[];
}

/** A file sent with a message (see files.ts). */
export interface AttachmentView {
  id: string;
  name: string;
  /** Sniffed by the server from the bytes. */
  contentType: string;
  size: number;
  /** Pixels, images only (0 otherwise). */
  width: number;
  height: number;
  hasThumbnail: boolean;
}

export function toAttachment(a: Attachment): AttachmentView {
  return {
    id: a.id,
    name: a.name,
    contentType: a.contentType,
    size: Number(a.size),
    width: a.width,
    height: a.height,
    hasThumbnail: a.hasThumbnail,
  };
}

/** Someone the caller blocked. */
export interface BlockedView {
  userId: string;
  username: string;
  blockedAt: number;
}

export function toMember(u: User): Member {
  return { id: u.id, username: u.username, email: u.email };
}

export function toQuote(q: Quote | undefined, replyToId: string): QuoteView | null {
  if (!q && !replyToId) return null;
  return {
    messageId: q?.messageId || replyToId,
    userId: q?.userId ?? "",
    username: q?.username ?? "",
    excerpt: q?.excerpt ?? "",
    deleted: q?.deleted ?? false,
    hidden: q?.hidden ?? false,
  };
}

export function toReaction(r: Reaction): ReactionView {
  return { emoji: r.emoji, count: r.count, mine: r.mine, userIds: [...r.userIds] };
}

export function toMsg(m: Message): Msg {
  return {
    id: m.id,
    seq: Number(m.seq),
    chatId: m.chatId,
    userId: m.userId,
    username: m.username,
    content: m.content,
    sentAt: tsToMs(m.sentAt) || Date.now(),
    status: m.status || "SENT",
    editedAt: tsToMs(m.editedAt),
    deletedAt: tsToMs(m.deletedAt),
    replyToId: m.replyToId,
    replyTo: toQuote(m.replyTo, m.replyToId),
    mentions: [...m.mentions],
    reactions: m.reactions.filter((r) => r.count > 0).map(toReaction),
    hidden: m.hidden,
    attachments: m.attachments.map(toAttachment),
  };
}

/** The first 200 characters, as the server quotes a message. */
export function excerptOf(content: string): string {
  return [...content].slice(0, 200).join("");
}

/** Characters that may be part of a username after an `@` (as the server
 * reads mentions). */
export const NAME_CHAR = /[A-Za-z0-9_.-]/;
