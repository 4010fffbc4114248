// The store's delivery guarantees, against a fake server in memory: what it
// sends back as cursors after a break, how it retries a send, and that
// messages and changes show once whatever order or how often they arrive.

import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UserSchema } from "../src/gen/messaging_pb";
import { type ChatEntry, Store } from "../src/store";
import { type EventInit, FakeServer, ME, msg, PEER, until } from "./fake-server";

let server: FakeServer;
let store: Store;

beforeEach(() => {
  localStorage.clear();
  server = new FakeServer();
  store = new Store(server.api);
});

afterEach(() => {
  store.logout();
});

/** Signs in and waits until the stream is live and the chat list loaded. */
async function online(): Promise<void> {
  store.signIn("token", create(UserSchema, ME), 0);
  await until(() => store.conn === "online" && store.chatsLoaded, "the stream to be live");
}

function chat(id: string): ChatEntry {
  const e = store.chats.get(id);
  if (!e) throw new Error(`no chat ${id}`);
  return e;
}

function seqs(id: string): number[] {
  return store.messagesOf(chat(id)).map((m) => m.seq);
}

/** Breaks the stream and waits until the store has opened it again. */
async function reconnect(): Promise<void> {
  const n = server.subscribes.length;
  server.drop();
  await until(() => server.subscribes.length === n + 1 && store.conn === "online", "the stream to be reopened");
}

describe("cursor resume", () => {
  it("reopens the stream after the last seq and change seen per chat", async () => {
    server.addChat("c1", 2, 4);
    server.addChat("c2", 7, 0);
    await online();
    server.message("c1", 3, "three");
    server.push({ kind: { case: "change", value: { chatId: "c1", changeSeq: 5n, userId: PEER.id } } });
    await until(() => chat("c1").cursor === 3 && chat("c1").changeCursor === 5, "seq 3 and change 5");

    await reconnect();
    const cursors = server.subscribes[1].cursors.map((c) => ({
      chat: c.chatId,
      afterSeq: c.afterSeq,
      afterChange: c.afterChange,
    }));
    expect(cursors).toEqual([
      { chat: "c1", afterSeq: 3n, afterChange: 5n },
      { chat: "c2", afterSeq: 7n, afterChange: 0n },
    ]);
  });

  it("does not move a cursor back for a message older than one already seen", async () => {
    server.addChat("c1", 1);
    await online();
    server.message("c1", 3, "three");
    server.message("c1", 2, "two");
    await until(() => chat("c1").messages.size === 2, "both messages");
    await reconnect();
    expect(server.subscribes[1].cursors[0].afterSeq).toBe(3n);
  });
});

describe("outbox", () => {
  it("retries a failed send with the same idempotency key until acknowledged", async () => {
    server.addChat("c1", 0);
    await online();
    server.failSends = 2;
    store.send("c1", "hello");
    await until(() => server.sends.length === 3 && chat("c1").pending.length === 0, "the third attempt to succeed");

    const keys = server.sends.map((s) => s.idempotencyKey);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(store.messagesOf(chat("c1")).map((m) => m.content)).toEqual(["hello"]);
  });

  it("keeps an unsent message across a reload and sends it with the same key", async () => {
    server.addChat("c1", 0);
    await online();
    server.failSends = 1_000;
    store.send("c1", "survives");
    await until(() => server.sends.length >= 1, "the first attempt");
    // A reload: the page goes away (its loops with it) and a new store
    // starts from what the old one left in localStorage.
    const saved = Object.entries(snapshot());
    store.logout();
    for (const [k, v] of saved) localStorage.setItem(k, v);
    server.failSends = 0;
    const before = server.sends.length;
    store = new Store(server.api);
    store.start();
    await until(() => server.sends.length > before && chat("c1").pending.length === 0, "the resend");

    const keys = new Set(server.sends.map((s) => s.idempotencyKey));
    expect(keys.size).toBe(1);
    expect(store.messagesOf(chat("c1")).map((m) => m.content)).toEqual(["survives"]);
  });
});

function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k !== null) out[k] = localStorage.getItem(k) ?? "";
  }
  return out;
}

describe("de-duplication", () => {
  it("shows a message once when it comes live and again in history", async () => {
    server.addChat("c1", 2);
    server.history.set("c1", [msg("c1", 1, "one"), msg("c1", 2, "two")]);
    await online();
    server.message("c1", 3, "three");
    server.history.get("c1")?.push(msg("c1", 3, "three"));
    await until(() => chat("c1").messages.size === 1, "the live message");

    store.openChat("c1");
    await until(() => chat("c1").history === "loaded", "the history page");
    expect(seqs("c1")).toEqual([1, 2, 3]);
    expect(store.messagesOf(chat("c1")).map((m) => m.content)).toEqual(["one", "two", "three"]);
  });

  it("shows a message once when the stream delivers it twice (a replay after a break)", async () => {
    server.addChat("c1", 0);
    await online();
    server.message("c1", 1, "once");
    await until(() => chat("c1").messages.size === 1, "the message");
    await reconnect();
    server.message("c1", 1, "once");
    server.message("c1", 2, "after");
    await until(() => chat("c1").messages.size === 2, "the next message");
    expect(store.messagesOf(chat("c1")).map((m) => m.content)).toEqual(["once", "after"]);
  });

  it("shows an own message once when the stream echo comes before the acknowledgement", async () => {
    server.addChat("c1", 0);
    await online();
    store.send("c1", "mine");
    await until(() => chat("c1").pending.length === 0, "the acknowledgement");
    server.push({ kind: { case: "message", value: msg("c1", 1, "mine", ME) } });
    server.message("c1", 2, "theirs");
    await until(() => chat("c1").messages.size === 2, "the next message");
    expect(store.messagesOf(chat("c1")).map((m) => m.content)).toEqual(["mine", "theirs"]);
    expect(store.pendingOf(chat("c1"))).toEqual([]);
  });
});

describe("out-of-order arrival", () => {
  it("puts seq 3 after seq 2 when 3 arrives first", async () => {
    server.addChat("c1", 1);
    server.history.set("c1", [msg("c1", 1, "one")]);
    await online();
    store.openChat("c1");
    await until(() => chat("c1").history === "loaded", "the history page");
    server.message("c1", 3, "three");
    server.message("c1", 2, "two");
    await until(() => chat("c1").messages.size === 3, "both messages");
    expect(seqs("c1")).toEqual([1, 2, 3]);
    expect(chat("c1").lastMessage?.content).toBe("three");
  });
});

describe("change events", () => {
  async function withMessage(): Promise<void> {
    server.addChat("c1", 1);
    server.history.set("c1", [msg("c1", 1, "original")]);
    await online();
    store.openChat("c1");
    await until(() => chat("c1").history === "loaded", "the history page");
  }

  function reaction(changeSeq: number, count: number) {
    return {
      kind: {
        case: "change" as const,
        value: {
          chatId: "c1",
          changeSeq: BigInt(changeSeq),
          userId: PEER.id,
          kind: { case: "reaction" as const, value: { messageId: "m-c1-1", emoji: "👍", added: true, count } },
        },
      },
    };
  }

  it("counts a reaction delivered twice once", async () => {
    await withMessage();
    server.push(reaction(1, 1));
    await until(() => chat("c1").changeCursor === 1, "the reaction");
    await reconnect();
    server.push(reaction(1, 1)); // replayed after the break
    server.message("c1", 2, "marker"); // events are handled in order
    await until(() => chat("c1").messages.size === 2, "the events after the replay");
    const [m] = store.messagesOf(chat("c1"));
    expect(m.reactions.map((r) => [r.emoji, r.count, r.userIds])).toEqual([["👍", 1, [PEER.id]]]);
  });

  it("applies an edit and a delete once, however often they arrive", async () => {
    await withMessage();
    const edit: EventInit = {
      kind: {
        case: "change" as const,
        value: {
          chatId: "c1",
          changeSeq: 1n,
          userId: PEER.id,
          kind: {
            case: "edited" as const,
            value: { ...msg("c1", 1, "edited"), editedAt: { seconds: 1_800_000_000n } },
          },
        },
      },
    };
    server.push(edit);
    server.push(edit);
    await until(() => store.messagesOf(chat("c1"))[0].content === "edited", "the edit");
    expect(store.messagesOf(chat("c1"))[0].editedAt).toBe(1_800_000_000_000);

    const del: EventInit = {
      kind: {
        case: "change" as const,
        value: {
          chatId: "c1",
          changeSeq: 2n,
          userId: PEER.id,
          kind: { case: "deleted" as const, value: { messageId: "m-c1-1", deletedAt: { seconds: 1_800_000_100n } } },
        },
      },
    };
    server.push(del);
    await until(() => store.messagesOf(chat("c1"))[0].deletedAt > 0, "the delete");
    // A late duplicate of the edit must not bring the text back.
    server.push(edit);
    server.push(del);
    server.message("c1", 2, "marker"); // events are handled in order
    await until(() => chat("c1").messages.size === 2, "the events after the duplicates");
    const [m] = store.messagesOf(chat("c1"));
    expect(m.content).toBe("");
    expect(m.deletedAt).toBe(1_800_000_100_000);
    expect(seqs("c1")).toEqual([1, 2]);
    expect(chat("c1").changeCursor).toBe(2);
  });
});
