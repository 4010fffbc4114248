import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { takeUploaded } from "../files";
import { type ChatEntry, type Member, type Msg, store } from "../store";
import { charCount, MAX_MESSAGE_CHARS } from "../util";
import { AttachButton, pasteFiles, UploadTray, useFileDrop, useUploads } from "./Attachments";
import { QuoteBlock } from "./Message";

/** Drafts survive switching between chats. */
const drafts = new Map<string, string>();

/** The `@name` being typed just before the caret, if any. */
function mentionAt(text: string, caret: number): { start: number; query: string } | null {
  const m = /(^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]{0,32})$/.exec(text.slice(0, caret));
  return m ? { start: caret - m[2].length - 1, query: m[2] } : null;
}

export interface ComposerProps {
  e: ChatEntry;
  /** The message being edited, or null. */
  editing: Msg | null;
  /** The message being answered, or null. */
  replyTo: Msg | null;
  /** Up arrow in an empty composer. */
  onEditLast: () => void;
  onDoneEditing: () => void;
  onCancelReply: () => void;
  onError: (message: string) => void;
}

export function Composer(props: ComposerProps) {
  const { e, editing, replyTo } = props;
  const [text, setText] = useState(drafts.get(e.id) ?? "");
  const [caret, setCaret] = useState(0);
  const [active, setActive] = useState(0);
  /** The mention list was closed with Escape for this `@` position. */
  const [dismissed, setDismissed] = useState(-1);
  const ref = useRef<HTMLTextAreaElement>(null);
  const count = charCount(text);
  const left = MAX_MESSAGE_CHARS - count;
  const blank = text.trim().length === 0;
  // Files: a message may be files alone; sending waits for uploads.
  const wrapRef = useRef<HTMLDivElement>(null);
  const uploads = useUploads(e.id);
  const dropOver = useFileDrop(wrapRef, e.id, (s) => s && props.onError(s));
  const uploading = uploads.some((u) => u.state === "uploading");
  const withFiles = !editing && uploads.some((u) => u.state === "done");
  const canSend = (!blank || withFiles) && left >= 0 && (editing !== null || !uploading);

  const mq = mentionAt(text, caret);
  const suggestions: Member[] =
    mq && mq.start !== dismissed
      ? e.members
          .filter((m) => m.id !== store.me && m.username.toLowerCase().startsWith(mq.query.toLowerCase()))
          .sort((a, b) => a.username.localeCompare(b.username))
          .slice(0, 6)
      : [];
  const listOpen = suggestions.length > 0;
  const activeIdx = Math.min(active, suggestions.length - 1);
  /** The name is typed in full: Enter sends rather than completes. */
  const typedInFull =
    listOpen && mq !== null && suggestions.some((m) => m.username.toLowerCase() === mq.query.toLowerCase());

  useEffect(() => {
    // Desktop: ready to type on opening a chat. Phones keep the keyboard down.
    if (window.matchMedia("(min-width: 761px)").matches) ref.current?.focus();
    autosize();
  }, [e.id]);

  // Editing puts the message's text in the box; leaving it brings the draft
  // back. Before the browser paints, so the box never shows the mode without
  // its text.
  const editingId = editing?.id ?? "";
  const mounted = useRef(false);
  useLayoutEffect(() => {
    if (!mounted.current) {
      mounted.current = true;
      return;
    }
    const v = editing ? editing.content : (drafts.get(e.id) ?? "");
    setText(v);
    const t = ref.current;
    if (t) {
      t.value = v;
      t.focus();
      t.setSelectionRange(v.length, v.length);
    }
    setCaret(v.length);
    queueMicrotask(autosize);
  }, [editingId]);

  useEffect(() => {
    if (replyTo) ref.current?.focus();
  }, [replyTo?.id]);

  function autosize() {
    const t = ref.current;
    if (!t) return;
    t.style.height = "auto";
    t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
  }

  function update(v: string, at: number) {
    setText(v);
    setCaret(at);
    setActive(0);
    if (!editing) drafts.set(e.id, v);
    autosize();
  }

  function pick(m: Member) {
    if (!mq) return;
    const insert = `@${m.username} `;
    const v = text.slice(0, mq.start) + insert + text.slice(caret);
    const at = mq.start + insert.length;
    update(v, at);
    const t = ref.current;
    if (t) {
      t.value = v;
      t.focus();
      t.setSelectionRange(at, at);
    }
  }

  function submit(ev?: Event) {
    ev?.preventDefault();
    if (!canSend) return;
    if (editing) {
      const target = editing;
      props.onDoneEditing();
      if (text !== target.content) {
        store.edit(e.id, target.id, text).catch((err: Error) => props.onError(`Not saved: ${err.message}`));
      }
      return;
    }
    store.send(e.id, blank ? "" : text, replyTo?.id, takeUploaded(e.id));
    props.onCancelReply();
    drafts.delete(e.id);
    setText("");
    setCaret(0);
    queueMicrotask(autosize);
    ref.current?.focus();
  }

  function onKeyDown(ev: KeyboardEvent) {
    if (listOpen) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        const n = suggestions.length;
        setActive((activeIdx + (ev.key === "ArrowDown" ? 1 : n - 1)) % n);
        return;
      }
      if ((ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && !typedInFull) || ev.key === "Tab") {
        ev.preventDefault();
        pick(suggestions[activeIdx]);
        return;
      }
      if (ev.key === "Escape") {
        ev.preventDefault();
        if (mq) setDismissed(mq.start);
        return;
      }
    }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) return submit(ev);
    if (ev.key === "Escape") {
      if (editing) {
        ev.preventDefault();
        props.onDoneEditing();
      } else if (replyTo) {
        ev.preventDefault();
        props.onCancelReply();
      }
      return;
    }
    if (
      ev.key === "ArrowUp" &&
      !editing &&
      text.length === 0 &&
      !ev.shiftKey &&
      !ev.altKey &&
      !ev.metaKey &&
      !ev.ctrlKey
    ) {
      ev.preventDefault();
      props.onEditLast();
    }
  }

  return (
    <div class={`composer-wrap${dropOver ? " drop-over" : ""}`} ref={wrapRef}>
      {listOpen && (
        <ul
          class="mention-list"
          id="mention-list"
          // biome-ignore lint/a11y/noNoninteractiveElementToInteractiveRole: the ARIA combobox pattern: focus stays in the textarea, which points at the active option with aria-activedescendant
          role="listbox"
          aria-label="People to mention"
          data-testid="mention-suggestions"
        >
          {suggestions.map((m, i) => (
            // biome-ignore lint/a11y/useFocusableInteractive: focus stays in the textarea, which points at the active option with aria-activedescendant
            <li
              key={m.id}
              id={`mention-${m.id}`}
              // biome-ignore lint/a11y/noNoninteractiveElementToInteractiveRole: an option of the combobox, chosen with the arrow keys from the textarea (aria-activedescendant)
              role="option"
              aria-selected={i === activeIdx}
              class={i === activeIdx ? "active" : ""}
              data-testid="mention-option"
              data-username={m.username}
              onMouseDown={(ev) => {
                ev.preventDefault(); // keep the focus in the box
                pick(m);
              }}
            >
              <strong>@{m.username}</strong> <span class="muted small">{m.email}</span>
            </li>
          ))}
        </ul>
      )}
      {editing && (
        <div class="compose-banner" data-testid="edit-banner">
          <span>
            <strong>Editing message</strong>
            <span class="muted small"> · Escape to cancel</span>
          </span>
          <button
            class="icon-btn"
            type="button"
            aria-label="Cancel editing"
            data-testid="edit-cancel"
            onClick={props.onDoneEditing}
          >
            <CloseIcon />
          </button>
        </div>
      )}
      {!editing && replyTo && (
        <div class="compose-banner" data-testid="reply-preview">
          <QuoteBlock
            q={{
              messageId: replyTo.id,
              userId: replyTo.userId,
              username: replyTo.userId === store.me ? "You" : replyTo.username,
              excerpt: replyTo.content,
              hidden: replyTo.hidden,
              deleted: replyTo.deletedAt > 0,
            }}
          />
          <button
            class="icon-btn"
            type="button"
            aria-label="Cancel reply"
            data-testid="reply-cancel"
            onClick={props.onCancelReply}
          >
            <CloseIcon />
          </button>
        </div>
      )}
      {!editing && <UploadTray chatId={e.id} uploads={uploads} />}
      <form class="composer" onSubmit={submit}>
        {!editing && <AttachButton chatId={e.id} onError={(s) => s && props.onError(s)} />}
        <label for="composer-input" class="sr-only">
          {editing ? "Edit message" : replyTo ? `Reply to ${replyTo.username}` : "Message"}
        </label>
        <textarea
          id="composer-input"
          ref={ref}
          rows={1}
          placeholder={editing ? "Edit message" : replyTo ? "Reply" : "Message"}
          value={text}
          aria-describedby="composer-count composer-help"
          aria-invalid={left < 0 ? "true" : undefined}
          aria-autocomplete="list"
          aria-controls={listOpen ? "mention-list" : undefined}
          aria-activedescendant={listOpen ? `mention-${suggestions[activeIdx].id}` : undefined}
          data-testid="composer"
          data-mode={editing ? "edit" : replyTo ? "reply" : "new"}
          onInput={(ev) => {
            const t = ev.currentTarget;
            update(t.value, t.selectionStart ?? t.value.length);
            if (!editing) store.typing(e.id, t.value.length > 0);
          }}
          onKeyDown={onKeyDown}
          onPaste={(ev) => !editing && pasteFiles(ev, e.id, (s) => s && props.onError(s))}
          onKeyUp={(ev) => {
            if (ev.key.startsWith("Arrow") || ev.key === "Home" || ev.key === "End")
              setCaret(ev.currentTarget.selectionStart ?? 0);
          }}
          onClick={(ev) => setCaret(ev.currentTarget.selectionStart ?? 0)}
          onBlur={() => store.typing(e.id, false)}
        />
        <span id="composer-help" class="sr-only">
          Enter sends, Shift+Enter starts a new line. Up arrow in an empty box edits your last message.
        </span>
        <span
          id="composer-count"
          class={`count${left < 0 ? " over" : left < 200 ? " near" : ""}`}
          data-testid="composer-count"
        >
          {left}
          <span class="sr-only"> characters left</span>
        </span>
        <button
          class="send"
          type="submit"
          disabled={!canSend}
          aria-label={editing ? "Save" : "Send"}
          title={editing ? "Save" : uploading ? "Waiting for the files to upload" : "Send"}
        >
          {editing ? (
            <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
              <path
                d="M5 12.5l4.5 4.5L19 7.5"
                fill="none"
                stroke="currentColor"
                stroke-width="2.4"
                stroke-linecap="round"
                stroke-linejoin="round"
              />
            </svg>
          ) : (
            <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
              <path
                d="M3.4 20.4l17.5-7.5a1 1 0 0 0 0-1.8L3.4 3.6a.5.5 0 0 0-.7.6L5 11l9 1-9 1-2.3 6.8a.5.5 0 0 0 .7.6z"
                fill="currentColor"
              />
            </svg>
          )}
        </button>
      </form>
    </div>
  );
}

function CloseIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path d="M6 6l12 12M18 6L6 18" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
    </svg>
  );
}
