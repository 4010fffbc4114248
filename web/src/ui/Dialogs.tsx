import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { asConnectError, Code, describe, fieldErrors, sentence } from "../api";
import { type ChatEntry, type Member, store } from "../store";
import { MemberBlockButton } from "./Blocking";
import { Avatar } from "./common";

/** A modal <dialog>: the browser traps focus, Escape closes it, and focus
 * returns to where it was. */
export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; labelId: string }) {
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

/** Where a chat call's error belongs: next to the direct chat's email, the
 * group's name, its member list, or under the form. */
export type ChatField = "email" | "name" | "members" | "form";
export type ChatErrors = Partial<Record<ChatField, string>>;

const FIELD_OF: Record<string, ChatField> = {
  email: "email",
  member_emails: "members",
  member_ids: "members",
  name: "name",
};

/** Maps a failed CreateChat/AddMembers to messages next to the right input:
 * the fields the server's BadRequest violations name (an entry of the list,
 * `member_emails[i]`, is named by its address), else by what the call was.
 * `emails`: the addresses sent, in order; `direct`: a direct chat's email. */
export function chatErrors(err: unknown, emails: string[], direct = false): ChatErrors {
  const e = asConnectError(err);
  const out: ChatErrors = {};
  for (const f of fieldErrors(e)) {
    const where = FIELD_OF[f.field] ?? "form";
    const addr = f.index !== null && f.field === "member_emails" ? emails[f.index] : undefined;
    const text = sentence(f.description || e.rawMessage);
    out[where] ??= addr ? `“${addr}”: ${text}` : text;
  }
  if (Object.keys(out).length) return out;
  if (e.code === Code.NotFound) {
    if (direct) return { email: "No one with that email address has an account here." };
    return {
      members:
        emails.length > 1
          ? "Some of these addresses do not belong to anyone here."
          : "No one with that email address has an account here.",
    };
  }
  return { form: describe(e) };
}

/** Props that tie an input to its error message below it. */
function invalid(msg: string | undefined, id: string, also = "") {
  const ids = [msg ? id : "", also].filter(Boolean).join(" ");
  return { "aria-invalid": msg ? ("true" as const) : undefined, "aria-describedby": ids || undefined };
}

function FieldError({ id, msg }: { id: string; msg: string | undefined }) {
  if (!msg) return null;
  return (
    <p id={id} class="field-error" data-testid={id}>
      {msg}
    </p>
  );
}

export function NewChatDialog({ onClose }: { onClose: (created?: string) => void }) {
  const [group, setGroup] = useState(false);
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [members, setMembers] = useState("");
  const [errors, setErrors] = useState<ChatErrors>({});
  const [busy, setBusy] = useState(false);
  const firstRef = useRef<HTMLInputElement>(null);
  const setError = (form: string) => setErrors(form ? { form } : {});

  useEffect(() => {
    firstRef.current?.focus();
  }, [group]);

  async function submit(ev: Event) {
    ev.preventDefault();
    if (busy) return;
    setErrors({});
    let run: () => Promise<string>;
    let sent: string[];
    if (!group) {
      const addr = email.trim();
      if (!EMAIL_RE.test(addr)) return setErrors({ email: "Enter the email address of the person to chat with." });
      if (addr.toLowerCase() === store.session?.user.email.toLowerCase())
        return setErrors({ email: "That is your own email address." });
      sent = [addr];
      run = () => store.createDirect(addr);
    } else {
      const list = parseEmails(members);
      if (!name.trim()) return setErrors({ name: "Give the group a name." });
      if ([...name.trim()].length > 50) return setErrors({ name: "Group names have at most 50 characters." });
      if (!list.length) return setErrors({ members: "Add at least one member by email." });
      const bad = list.find((x) => !EMAIL_RE.test(x));
      if (bad) return setErrors({ members: `“${bad}” is not an email address.` });
      sent = list;
      run = () => store.createGroup(name, list);
    }
    setBusy(true);
    try {
      const id = await run();
      onClose(id);
    } catch (err) {
      setErrors(chatErrors(err, sent, !group));
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
              {...invalid(errors.email, "new-email-error")}
              data-testid="new-chat-email"
            />
            <FieldError id="new-email-error" msg={errors.email} />
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
                {...invalid(errors.name, "group-name-error")}
              />
              <FieldError id="group-name-error" msg={errors.name} />
            </div>
            <div class="field">
              <label for="group-members">Members’ emails</label>
              <textarea
                id="group-members"
                rows={3}
                value={members}
                onInput={(e) => setMembers(e.currentTarget.value)}
                {...invalid(errors.members, "group-members-error", "group-members-hint")}
              />
              <FieldError id="group-members-error" msg={errors.members} />
              <p id="group-members-hint" class="hint">
                Separate them with commas or new lines.
              </p>
            </div>
          </>
        )}
        <p id="new-chat-error" class="form-error" role="alert" data-testid="new-chat-error">
          {errors.form ?? ""}
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
  const [errors, setErrors] = useState<ChatErrors>({});
  const setError = (form: string) => setErrors(form ? { form } : {});
  const [busy, setBusy] = useState(false);
  const [name, setName] = useState(e.name);
  const [toRemove, setToRemove] = useState<Member | null>(null);
  const owner = e.ownerId !== "" && e.ownerId === store.me;

  async function rename(ev: Event) {
    ev.preventDefault();
    const n = name.trim();
    if (!n) return setErrors({ name: "Give the group a name." });
    if ([...n].length > 50) return setErrors({ name: "Group names have at most 50 characters." });
    if (n === e.name) return;
    setBusy(true);
    setErrors({});
    try {
      await store.rename(e.id, n);
    } catch (err) {
      // The store's sentence, placed by the server's BadRequest (its cause).
      const cause = err instanceof Error ? err.cause : undefined;
      const named = cause ? chatErrors(cause, []) : {};
      setErrors(named.name ? { name: named.name } : { form: (err as Error).message });
    }
    setBusy(false);
  }

  async function add(ev: Event) {
    ev.preventDefault();
    const list = parseEmails(emails);
    if (!list.length) return setErrors({ members: "Enter at least one email address." });
    setBusy(true);
    setErrors({});
    try {
      await store.addMembers(e.id, list);
      setEmails("");
    } catch (err) {
      const errs = chatErrors(err, list);
      // Only the member list is asked for here.
      setErrors(errs.members || errs.email ? { members: errs.members ?? errs.email } : errs);
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
              {...invalid(errors.name, "rename-group-error")}
              data-testid="rename-input"
            />
            <FieldError id="rename-group-error" msg={errors.name} />
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
            {m.id !== store.me && <MemberBlockButton who={m} disabled={busy} onError={setError} />}
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
            {...invalid(errors.members, "add-members-error")}
            data-testid="add-members"
          />
          <FieldError id="add-members-error" msg={errors.members} />
        </div>
        <p id="group-info-error" class="form-error" role="alert">
          {errors.form ?? ""}
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
