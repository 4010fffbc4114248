import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { asConnectError, Code, describe, fieldOf } from "../api";
import { type ChatEntry, type Member, store } from "../store";
import { Avatar } from "./common";

/** A modal <dialog>: the browser traps focus, Escape closes it, and focus
 * returns to where it was. */
function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; labelId: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    // biome-ignore lint/a11y/useKeyWithClickEvents: a click on the backdrop closes the dialog; the keyboard way is Escape (onCancel)
    <dialog
      ref={ref}
      class="modal"
      aria-labelledby={props.labelId}
      onCancel={(ev) => {
        ev.preventDefault();
        props.onClose();
      }}
      onClick={(ev) => {
        if (ev.target === ref.current) props.onClose(); // the backdrop
      }}
    >
      <div class="modal-body">
        <header class="modal-head">
          <h2 id={props.labelId}>{props.title}</h2>
          <button class="icon-btn" type="button" aria-label="Close" onClick={props.onClose}>
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
              <path d="M6 6l12 12M18 6L6 18" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
          </button>
        </header>
        {props.children}
      </div>
    </dialog>
  );
}

/** "Are you sure?" for an action that cannot be undone; stays open with
 * the error if the action fails. */
export function ConfirmDialog(props: {
  title: string;
  confirm: string;
  children: ComponentChildren;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const ok = useRef<HTMLButtonElement>(null);
  useEffect(() => ok.current?.focus(), []);
  async function run() {
    if (busy) return;
    setBusy(true);
    setError("");
    try {
      await props.onConfirm();
      props.onClose();
    } catch (err) {
      setError(err instanceof Error ? err.message : describe(err));
      setBusy(false);
    }
  }
  return (
    <Modal title={props.title} labelId="confirm-title" onClose={props.onClose}>
      <div data-testid="confirm-dialog">
        {props.children}
        <p class="form-error" role="alert">
          {error}
        </p>
        <div class="modal-actions">
          <button class="secondary" type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button ref={ok} class="danger" type="button" disabled={busy} onClick={run} data-testid="confirm-ok">
            {props.confirm}
          </button>
        </div>
      </div>
    </Modal>
  );
}

/** Emails typed into one box, separated by commas, semicolons, spaces or new lines. */
export function parseEmails(s: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const part of s.split(/[\s,;]+/)) {
    const t = part.trim();
    if (t && !seen.has(t.toLowerCase())) {
      seen.add(t.toLowerCase());
      out.push(t);
    }
  }
  return out;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+$/;

function chatError(err: unknown, several: boolean): string {
  const e = asConnectError(err);
  if (e.code === Code.NotFound) {
    // The server names the address when it can ("email: x@y not found").
    const f = fieldOf(e.rawMessage);
    const named = f?.detail.includes("@") ? ` (${f.detail})` : "";
    return several
      ? `Some of these addresses do not belong to anyone here${named}.`
      : "No one with that email address has an account here.";
  }
  return describe(e);
}

export function NewChatDialog({ onClose }: { onClose: (created?: string) => void }) {
  const [group, setGroup] = useState(false);
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [members, setMembers] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const firstRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    firstRef.current?.focus();
  }, [group]);

  async function submit(ev: Event) {
    ev.preventDefault();
    if (busy) return;
    setError("");
    let run: () => Promise<string>;
    if (!group) {
      const addr = email.trim();
      if (!EMAIL_RE.test(addr)) return setError("Enter the email address of the person to chat with.");
      if (addr.toLowerCase() === store.session?.user.email.toLowerCase())
        return setError("That is your own email address.");
      run = () => store.createDirect(addr);
    } else {
      const list = parseEmails(members);
      if (!name.trim()) return setError("Give the group a name.");
      if ([...name.trim()].length > 50) return setError("Group names have at most 50 characters.");
      if (!list.length) return setError("Add at least one member by email.");
      const bad = list.find((x) => !EMAIL_RE.test(x));
      if (bad) return setError(`“${bad}” is not an email address.`);
      run = () => store.createGroup(name, list);
    }
    setBusy(true);
    try {
      const id = await run();
      onClose(id);
    } catch (err) {
      setError(chatError(err, group));
      setBusy(false);
    }
  }

  return (
    <Modal title="New chat" labelId="new-chat-title" onClose={() => onClose()}>
      {/* biome-ignore lint/a11y/useSemanticElements: a row of toggle buttons; a <fieldset> would bring a legend and the browser's border for no gain */}
      <div class="segmented" role="group" aria-label="Kind of chat">
        <button
          type="button"
          aria-pressed={!group}
          onClick={() => {
            setGroup(false);
            setError("");
          }}
        >
          Direct message
        </button>
        <button
          type="button"
          aria-pressed={group}
          onClick={() => {
            setGroup(true);
            setError("");
          }}
        >
          Group
        </button>
      </div>
      <form onSubmit={submit} noValidate aria-busy={busy}>
        {!group ? (
          <div class="field">
            <label for="new-email">Their email</label>
            <input
              ref={firstRef}
              id="new-email"
              type="email"
              inputMode="email"
              autoComplete="off"
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
              aria-describedby="new-chat-error"
              data-testid="new-chat-email"
            />
          </div>
        ) : (
          <>
            <div class="field">
              <label for="group-name">Group name</label>
              <input
                ref={firstRef}
                id="group-name"
                maxLength={50}
                value={name}
                onInput={(e) => setName(e.currentTarget.value)}
                aria-describedby="new-chat-error"
              />
            </div>
            <div class="field">
              <label for="group-members">Members’ emails</label>
              <textarea
                id="group-members"
                rows={3}
                value={members}
                onInput={(e) => setMembers(e.currentTarget.value)}
                aria-describedby="group-members-hint new-chat-error"
              />
              <p id="group-members-hint" class="hint">
                Separate them with commas or new lines.
              </p>
            </div>
          </>
        )}
        <p id="new-chat-error" class="form-error" role="alert" data-testid="new-chat-error">
          {error}
        </p>
        <div class="modal-actions">
          <button class="secondary" type="button" onClick={() => onClose()}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            {busy ? "Opening…" : group ? "Create group" : "Start chat"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function GroupInfoDialog({ e, onClose }: { e: ChatEntry; onClose: () => void }) {
  const [emails, setEmails] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [name, setName] = useState(e.name);
  const [toRemove, setToRemove] = useState<Member | null>(null);
  const owner = e.ownerId !== "" && e.ownerId === store.me;

  async function rename(ev: Event) {
    ev.preventDefault();
    const n = name.trim();
    if (!n) return setError("Give the group a name.");
    if ([...n].length > 50) return setError("Group names have at most 50 characters.");
    if (n === e.name) return;
    setBusy(true);
    setError("");
    try {
      await store.rename(e.id, n);
    } catch (err) {
      setError((err as Error).message);
    }
    setBusy(false);
  }

  async function add(ev: Event) {
    ev.preventDefault();
    const list = parseEmails(emails);
    if (!list.length) return setError("Enter at least one email address.");
    setBusy(true);
    setError("");
    try {
      await store.addMembers(e.id, list);
      setEmails("");
    } catch (err) {
      setError(chatError(err, list.length > 1));
    }
    setBusy(false);
  }

  async function leave() {
    if (!window.confirm(`Leave “${e.name}”?`)) return;
    setBusy(true);
    try {
      await store.leave(e.id);
      onClose();
      history.replaceState(null, "", location.pathname + location.search);
    } catch (err) {
      setError(describe(err));
      setBusy(false);
    }
  }

  return (
    <Modal title={e.name || "Group"} labelId="group-info-title" onClose={onClose}>
      {owner && (
        <form class="rename-form" onSubmit={rename} noValidate>
          <div class="field">
            <label for="rename-group">Group name</label>
            <input
              id="rename-group"
              maxLength={50}
              value={name}
              onInput={(ev) => setName(ev.currentTarget.value)}
              aria-describedby="group-info-error"
              data-testid="rename-input"
            />
          </div>
          <button class="secondary" type="submit" disabled={busy || name.trim() === e.name} data-testid="rename-save">
            Rename
          </button>
        </form>
      )}
      <h3 class="modal-sub">{e.members.length} members</h3>
      <ul class="member-list">
        {e.members.map((m) => (
          <li key={m.id} data-testid="member" data-user-id={m.id} data-username={m.username}>
            <Avatar name={m.username} size="sm" online={m.id === store.me ? null : store.presenceOf(m.id)} />
            <span>
              {m.username}
              {m.id === store.me && " (you)"}
              {m.id === e.ownerId && <span class="owner-tag"> owner</span>}
            </span>
            <span class="muted small">{m.email}</span>
            {owner && m.id !== store.me && (
              <button
                class="link danger-link member-remove"
                type="button"
                data-testid="member-remove"
                aria-label={`Remove ${m.username} from the group`}
                disabled={busy}
                onClick={() => setToRemove(m)}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {toRemove && (
        <ConfirmDialog
          title={`Remove ${toRemove.username}?`}
          confirm="Remove"
          onClose={() => setToRemove(null)}
          onConfirm={() => store.removeMember(e.id, toRemove.id)}
        >
          <p>
            {toRemove.username} will no longer see “{e.name}” or its new messages.
          </p>
        </ConfirmDialog>
      )}
      <form onSubmit={add} noValidate>
        <div class="field">
          <label for="add-members">Add people by email</label>
          <input
            id="add-members"
            value={emails}
            onInput={(ev) => setEmails(ev.currentTarget.value)}
            aria-describedby="group-info-error"
          />
        </div>
        <p id="group-info-error" class="form-error" role="alert">
          {error}
        </p>
        <div class="modal-actions">
          <button class="danger" type="button" onClick={leave} disabled={busy}>
            Leave group
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Add
          </button>
        </div>
      </form>
    </Modal>
  );
}
