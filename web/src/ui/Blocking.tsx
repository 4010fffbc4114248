// Blocking people: the action (DM header menu, group member list), the
// banner that replaces a direct chat's composer, and the list of blocked
// people with unblock. The store keeps the list in step with the server
// (ListBlocked on each connect, block_changed from any of the caller's
// devices).

import { useEffect, useRef, useState } from "preact/hooks";
import { describe } from "../api";
import { store } from "../store";
import { formatListTime } from "../util";
import { Avatar } from "./common";
import { ConfirmDialog, Modal } from "./Dialogs";

export interface Person {
  id: string;
  username: string;
}

/** "Block X?" with what it does; stays open with the error if it fails. */
export function BlockConfirm({ who, onClose }: { who: Person; onClose: () => void }) {
  return (
    <ConfirmDialog title={`Block ${who.username}?`} confirm="Block" onClose={onClose} onConfirm={() => blockOrSay(who)}>
      <p>
        {who.username} will not be able to message you in a direct chat or add you to groups, and will not see when you
        are online or typing. Their messages in groups you share are hidden from you. You can unblock them at any time.
      </p>
    </ConfirmDialog>
  );
}

async function blockOrSay(who: Person): Promise<void> {
  try {
    await store.block(who.id);
  } catch (err) {
    throw new Error(describe(err));
  }
}

/** Unblocks; resolves to an error sentence ("" when it worked). */
export async function unblockOrSay(userId: string): Promise<string> {
  try {
    await store.unblock(userId);
    return "";
  } catch (err) {
    return describe(err);
  }
}

/** The "⋯" menu of a direct chat's header: block or unblock the peer. */
export function ChatMenu({ peer, onError }: { peer: Person; onError: (s: string) => void }) {
  const [open, setOpen] = useState(false);
  const [confirm, setConfirm] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  const blocked = store.isBlocked(peer.id);

  useEffect(() => {
    if (!open) return;
    ref.current?.querySelector<HTMLButtonElement>('[role="menuitem"]')?.focus();
    const away = (ev: MouseEvent) => {
      if (ref.current && !ref.current.contains(ev.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", away);
    return () => document.removeEventListener("mousedown", away);
  }, [open]);

  async function pick() {
    setOpen(false);
    if (!blocked) return setConfirm(true);
    onError(await unblockOrSay(peer.id));
  }

  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: Escape from the focused menu items bubbles here to close the menu
    <div
      class="menu-wrap"
      ref={ref}
      onKeyDown={(ev) => {
        if (ev.key === "Escape" && open) {
          ev.stopPropagation();
          setOpen(false);
          ref.current?.querySelector<HTMLButtonElement>("button")?.focus();
        }
      }}
    >
      <button
        class="icon-btn"
        type="button"
        aria-label="More actions"
        title="More actions"
        aria-haspopup="menu"
        aria-expanded={open}
        data-testid="chat-menu"
        onClick={() => setOpen((v) => !v)}
      >
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
          <circle cx="5.5" cy="12" r="1.8" fill="currentColor" />
          <circle cx="12" cy="12" r="1.8" fill="currentColor" />
          <circle cx="18.5" cy="12" r="1.8" fill="currentColor" />
        </svg>
      </button>
      {open && (
        <div class="menu" role="menu" aria-label="Chat actions">
          <button type="button" role="menuitem" class="menu-item" data-testid="block-toggle" onClick={pick}>
            {blocked ? `Unblock ${peer.username}` : `Block ${peer.username}`}
          </button>
        </div>
      )}
      {confirm && <BlockConfirm who={peer} onClose={() => setConfirm(false)} />}
    </div>
  );
}

/** Block / Unblock beside a member of a group. */
export function MemberBlockButton({
  who,
  disabled,
  onError,
}: {
  who: Person;
  disabled?: boolean;
  onError: (s: string) => void;
}) {
  const [confirm, setConfirm] = useState(false);
  const blocked = store.isBlocked(who.id);
  return (
    <>
      <button
        class="link member-block"
        type="button"
        data-testid="member-block"
        data-blocked={String(blocked)}
        aria-label={blocked ? `Unblock ${who.username}` : `Block ${who.username}`}
        disabled={disabled}
        onClick={async () => {
          if (!blocked) return setConfirm(true);
          onError(await unblockOrSay(who.id));
        }}
      >
        {blocked ? "Unblock" : "Block"}
      </button>
      {confirm && <BlockConfirm who={who} onClose={() => setConfirm(false)} />}
    </>
  );
}

/** In place of a direct chat's composer while the caller blocks the peer. */
export function BlockedBanner({ peer }: { peer: Person }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <div class="blocked-banner" data-testid="blocked-banner">
      <p>
        You blocked {peer.username}.{" "}
        <button
          class="link"
          type="button"
          disabled={busy}
          data-testid="blocked-banner-unblock"
          onClick={async () => {
            setBusy(true);
            setError(await unblockOrSay(peer.id));
            setBusy(false);
          }}
        >
          Unblock
        </button>
      </p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** The people the caller blocked, each with Unblock. */
export function BlockedUsersDialog({ onClose }: { onClose: () => void }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  useEffect(() => {
    void store.refreshBlocked();
  }, []);
  const list = store.blockedList;
  return (
    <Modal title="Blocked users" labelId="blocked-title" onClose={onClose}>
      <div data-testid="blocked-users">
        {!list.length ? (
          <p class="muted">{store.blockedLoaded ? "You have not blocked anyone." : "Loading…"}</p>
        ) : (
          <ul class="member-list">
            {list.map((b) => (
              <li key={b.userId} data-testid="blocked-user" data-user-id={b.userId} data-username={b.username}>
                <Avatar name={b.username || "?"} size="sm" />
                <span>{b.username || "Someone"}</span>
                <span class="muted small">{b.blockedAt ? `since ${formatListTime(b.blockedAt)}` : ""}</span>
                <button
                  class="link"
                  type="button"
                  data-testid="blocked-unblock"
                  aria-label={`Unblock ${b.username || "this person"}`}
                  disabled={busy === b.userId}
                  onClick={async () => {
                    setBusy(b.userId);
                    setError(await unblockOrSay(b.userId));
                    setBusy("");
                  }}
                >
                  Unblock
                </button>
              </li>
            ))}
          </ul>
        )}
        <p class="form-error" role="alert">
          {error}
        </p>
      </div>
    </Modal>
  );
}
