import type { ComponentChildren } from "preact";
import { memo } from "preact/compat";
import { useEffect, useRef, useState } from "preact/hooks";
import { QUICK_REACTIONS } from "../changes";
import { NAME_CHAR } from "../model";
import { type Member, type Msg, type Pending, type QuoteView, type ReactionView, store, type Tick } from "../store";
import { formatFull, formatTime } from "../util";
import { AttachmentList, PendingFiles } from "./Attachments";
import { Ticks } from "./common";

/** What a message's action buttons do; one object per chat view, so the
 * memoised bubbles do not re-render for it. */
export interface MessageActions {
  reply(m: Msg): void;
  edit(m: Msg): void;
  remove(m: Msg): void;
  react(m: Msg, emoji: string): void;
  jumpTo(messageId: string): void;
}

export interface BubbleProps {
  m: Msg;
  own: boolean;
  tick: Tick | null;
  showName: boolean;
  tail: boolean;
  canDelete: boolean;
  /** Lower-cased username to member, for drawing mentions. */
  names: Map<string, Member>;
  actions: MessageActions;
}

export const Bubble = memo(function Bubble(props: BubbleProps) {
  const { m, own, tick, showName, tail, canDelete, names, actions } = props;
  const [selected, setSelected] = useState(false);
  const deleted = m.deletedAt > 0;
  if (m.hidden && !deleted) return <HiddenBubble m={m} />;
  const me = store.me;
  const mentionsMe = !deleted && m.mentions.includes(me);
  const cls = `msg ${own ? "own" : "other"}${tail ? " tail" : ""}${deleted ? " deleted" : ""}${mentionsMe ? " mentions-me" : ""}${selected ? " selected" : ""}`;
  return (
    <li
      class={cls}
      data-testid="message"
      data-seq={m.seq}
      data-message-id={m.id}
      data-own={String(own)}
      data-deleted={deleted ? "true" : undefined}
      data-mentions-me={mentionsMe ? "true" : undefined}
      tabIndex={-1}
    >
      {/* biome-ignore lint/a11y/noStaticElementInteractions lint/a11y/useKeyWithClickEvents: a tap shows the action bar where there is no hover; keyboard users reach the same buttons by Tab (the bar shows on focus-within) */}
      <div
        class="bubble"
        onClick={(ev) => {
          // A tap on the bubble (not on one of its buttons) shows the
          // actions where there is no hover.
          if (!(ev.target as Element).closest("button, a")) setSelected((v) => !v);
        }}
      >
        {showName && <span class="author">{m.username}</span>}
        <span class="sr-only">{own ? "You" : m.username}: </span>
        {m.replyTo && !deleted && <QuoteBlock q={m.replyTo} onJump={actions.jumpTo} />}
        {deleted ? (
          <p class="text tombstone" data-testid="message-deleted">
            Message deleted
          </p>
        ) : (
          <>
            {m.attachments.length > 0 && <AttachmentList files={m.attachments} />}
            {(m.content || !m.attachments.length) && (
              <p class="text" data-testid="message-text">
                <RichText text={m.content} mentions={m.mentions} names={names} />
              </p>
            )}
          </>
        )}
        <span class="meta">
          {m.editedAt > 0 && !deleted && (
            <span class="edited" data-testid="message-edited" title={`Edited ${formatFull(m.editedAt)}`}>
              (edited)
            </span>
          )}
          <time dateTime={new Date(m.sentAt).toISOString()} title={formatFull(m.sentAt)}>
            {formatTime(m.sentAt)}
          </time>
          {tick && <Ticks tick={tick} />}
        </span>
      </div>
      {!deleted && m.reactions.length > 0 && <Reactions m={m} names={names} onReact={actions.react} />}
      {!deleted && <ActionBar m={m} own={own} canDelete={canDelete} actions={actions} />}
    </li>
  );
});

/** A message from someone the caller blocked: one collapsed line, no
 * content (the server withheld it), no actions. */
function HiddenBubble({ m }: { m: Msg }) {
  return (
    <li class="msg other hidden-msg" data-testid="message" data-seq={m.seq} data-message-id={m.id} data-hidden="true">
      <p class="hidden-line" data-testid="message-hidden">
        Message from someone you blocked
        <time dateTime={new Date(m.sentAt).toISOString()} title={formatFull(m.sentAt)}>
          {formatTime(m.sentAt)}
        </time>
      </p>
    </li>
  );
}

const HIDDEN_QUOTE = "Message from someone you blocked";

/** The quote of the message another one answers; a click shows the original. */
export function QuoteBlock({ q, onJump }: { q: QuoteView; onJump?: (id: string) => void }) {
  const body = (
    <>
      <span class="quote-author">{q.username || "Someone"}</span>
      <span class={`quote-text${q.deleted || q.hidden ? " tombstone" : ""}`}>
        {q.deleted ? "Message deleted" : q.hidden ? HIDDEN_QUOTE : q.excerpt}
      </span>
    </>
  );
  if (!onJump) {
    return (
      <span class="quote" data-testid="message-quote" data-reply-to={q.messageId}>
        {body}
      </span>
    );
  }
  return (
    <button
      type="button"
      class="quote"
      data-testid="message-quote"
      data-reply-to={q.messageId}
      aria-label={`In reply to ${q.username || "someone"}: ${q.deleted ? "message deleted" : q.hidden ? "a message from someone you blocked" : q.excerpt}. Show the original.`}
      onClick={() => onJump(q.messageId)}
    >
      {body}
    </button>
  );
}

/** Content with the @mentions the server resolved drawn as such. */
function RichText({ text, mentions, names }: { text: string; mentions: string[]; names: Map<string, Member> }) {
  if (!mentions.length || !text.includes("@")) return <>{text}</>;
  const out: ComponentChildren[] = [];
  let plain = 0;
  const re = /@([A-Za-z0-9_.-]+)/g;
  for (let hit = re.exec(text); hit; hit = re.exec(text)) {
    if (hit.index > 0 && NAME_CHAR.test(text[hit.index - 1])) continue;
    // A trailing "." or "-" may end the sentence rather than the name.
    let name = hit[1];
    let member = names.get(name.toLowerCase());
    if (!member || !mentions.includes(member.id)) {
      name = name.replace(/[.-]+$/, "");
      member = names.get(name.toLowerCase());
    }
    if (!member || !mentions.includes(member.id)) continue;
    if (hit.index > plain) out.push(text.slice(plain, hit.index));
    const me = member.id === store.me;
    out.push(
      <span
        class={`mention${me ? " mention-me" : ""}`}
        data-testid="mention"
        data-user-id={member.id}
        data-me={String(me)}
        key={hit.index}
      >
        @{name}
      </span>,
    );
    plain = hit.index + 1 + name.length;
    re.lastIndex = plain;
  }
  if (plain < text.length) out.push(text.slice(plain));
  return <>{out}</>;
}

function Reactions({
  m,
  names,
  onReact,
}: {
  m: Msg;
  names: Map<string, Member>;
  onReact: (m: Msg, emoji: string) => void;
}) {
  return (
    // biome-ignore lint/a11y/useSemanticElements: a group of buttons, not a form section (no <fieldset> legend or border wanted)
    <div class="reactions" data-testid="reactions" role="group" aria-label="Reactions">
      {m.reactions.map((r) => (
        <button
          key={r.emoji}
          type="button"
          class={`reaction${r.mine ? " mine" : ""}`}
          data-testid="reaction"
          data-emoji={r.emoji}
          data-mine={String(r.mine)}
          aria-pressed={r.mine}
          aria-label={`${r.emoji} ${r.count}${r.mine ? ", including you. Click to take yours back" : ". Click to add yours"}`}
          title={whoReacted(r, names)}
          onClick={() => onReact(m, r.emoji)}
        >
          <span aria-hidden="true">{r.emoji}</span>
          <span class="reaction-count" data-testid="reaction-count">
            {r.count}
          </span>
        </button>
      ))}
    </div>
  );
}

function whoReacted(r: ReactionView, names: Map<string, Member>): string {
  const byId = new Map([...names.values()].map((x) => [x.id, x.username]));
  const shown = r.userIds.map((id) => (id === store.me ? "you" : (byId.get(id) ?? "someone")));
  const more = r.count - shown.length;
  return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
}

function ActionBar({
  m,
  own,
  canDelete,
  actions,
}: {
  m: Msg;
  own: boolean;
  canDelete: boolean;
  actions: MessageActions;
}) {
  const [picker, setPicker] = useState(false);
  return (
    <div class={`msg-actions${picker ? " open" : ""}`} data-testid="message-actions">
      <div class="picker-wrap">
        <ActionButton
          label="Add a reaction"
          testid="action-react"
          onClick={() => setPicker((v) => !v)}
          expanded={picker}
        >
          <path d="M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM8.5 14.5s1.3 1.8 3.5 1.8 3.5-1.8 3.5-1.8M9 9.5h.01M15 9.5h.01" />
        </ActionButton>
        {picker && (
          <ReactionPicker
            m={m}
            onPick={(emoji) => {
              setPicker(false);
              actions.react(m, emoji);
            }}
            onClose={() => setPicker(false)}
          />
        )}
      </div>
      <ActionButton label="Reply" testid="action-reply" onClick={() => actions.reply(m)}>
        <path d="M10 8L5 12.5 10 17M5.5 12.5H14a5 5 0 0 1 5 5V19" />
      </ActionButton>
      {own && (
        <ActionButton label="Edit" testid="action-edit" onClick={() => actions.edit(m)}>
          <path d="M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4" />
        </ActionButton>
      )}
      {canDelete && (
        <ActionButton label="Delete" testid="action-delete" onClick={() => actions.remove(m)}>
          <path d="M5 7h14M10 11v6M14 11v6M6.5 7l1 12.5h9l1-12.5M9.5 7V4.5h5V7" />
        </ActionButton>
      )}
    </div>
  );
}

function ActionButton(props: {
  label: string;
  testid: string;
  onClick: () => void;
  expanded?: boolean;
  children: ComponentChildren;
}) {
  return (
    <button
      type="button"
      class="msg-action"
      aria-label={props.label}
      title={props.label}
      data-testid={props.testid}
      aria-expanded={props.expanded}
      onClick={props.onClick}
    >
      <svg
        viewBox="0 0 24 24"
        width="16"
        height="16"
        aria-hidden="true"
        fill="none"
        stroke="currentColor"
        stroke-width="2"
        stroke-linecap="round"
        stroke-linejoin="round"
      >
        {props.children}
      </svg>
    </button>
  );
}

function ReactionPicker({ m, onPick, onClose }: { m: Msg; onPick: (emoji: string) => void; onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.querySelector("button")?.focus();
    const away = (ev: MouseEvent) => {
      if (ref.current && !ref.current.parentElement?.contains(ev.target as Node)) onClose();
    };
    document.addEventListener("mousedown", away);
    return () => document.removeEventListener("mousedown", away);
  }, []);
  return (
    // biome-ignore lint/a11y/useSemanticElements: a group of buttons, not a form section; Escape on it closes the picker
    <div
      ref={ref}
      class="reaction-picker"
      role="group"
      aria-label="Pick a reaction"
      data-testid="reaction-picker"
      onKeyDown={(ev) => {
        if (ev.key === "Escape") {
          ev.stopPropagation();
          onClose();
        }
      }}
    >
      {QUICK_REACTIONS.map((emoji) => {
        const mine = m.reactions.some((r) => r.emoji === emoji && r.mine);
        return (
          <button
            key={emoji}
            type="button"
            class={`reaction-option${mine ? " mine" : ""}`}
            data-testid="reaction-option"
            data-emoji={emoji}
            aria-pressed={mine}
            aria-label={mine ? `Take back ${emoji}` : `React with ${emoji}`}
            onClick={() => onPick(emoji)}
          >
            {emoji}
          </button>
        );
      })}
    </div>
  );
}

export function PendingBubble({ p, quote }: { p: Pending; quote: QuoteView | null }) {
  const failed = p.state === "failed";
  return (
    <li
      class={`msg own tail pending${failed ? " failed" : ""}`}
      data-testid="message"
      data-pending="true"
      data-own="true"
    >
      <div class="bubble">
        <span class="sr-only">You: </span>
        {quote && <QuoteBlock q={quote} />}
        {p.attachments?.length ? <PendingFiles files={p.attachments} /> : null}
        {(p.content || !p.attachments?.length) && (
          <p class="text" data-testid="message-text">
            {p.content}
          </p>
        )}
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
