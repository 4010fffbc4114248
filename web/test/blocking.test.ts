// Blocking in the store: the blocked list from ListBlocked and kept in step
// by block_changed, hidden messages, and their content back after unblocking.

import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, expect, it } from "vitest";
import { UserSchema } from "../src/gen/messaging_pb";
import { type ChatEntry, Store } from "../src/store";
import { FakeServer, ME, msg, PEER, until } from "./fake-server";

let server: FakeServer;
let store: Store;

beforeEach(() => {
  localStorage.clear();
  server = new FakeServer();
  store = new Store(server.api);
});

afterEach(() => store.logout());

async function online(): Promise<void> {
  store.signIn("token", create(UserSchema, ME), 0);
  await until(() => store.conn === "online" && store.chatsLoaded && store.blockedLoaded, "the stream to be live");
}

function chat(id: string): ChatEntry {
  const e = store.chats.get(id);
  if (!e) throw new Error(`no chat ${id}`);
  return e;
}

it("loads the blocked list on connect and follows block_changed from other devices", async () => {
  server.blocked.set("u-x", { userId: "u-x", username: "xavier", blockedAt: { seconds: 1_700_000_000n } });
  server.addChat("c1");
  await online();
  expect(store.blockedList.map((b) => b.username)).toEqual(["xavier"]);

  // Blocked on another device: the event, then the list as the server has it.
  server.blocked.set(PEER.id, { userId: PEER.id, username: PEER.username, blockedAt: { seconds: 1_800_000_000n } });
  server.push({ kind: { case: "blockChanged", value: { userId: PEER.id, blocked: true } } });
  await until(() => store.isBlocked(PEER.id), "the block");
  await until(() => store.blockedList.length === 2, "the refreshed list");
  expect(store.blockedList.map((b) => b.username)).toEqual(["peer", "xavier"]);

  server.blocked.delete("u-x");
  server.push({ kind: { case: "blockChanged", value: { userId: "u-x", blocked: false } } });
  await until(() => !store.isBlocked("u-x"), "the unblock");
  expect(store.blockedList.map((b) => b.userId)).toEqual([PEER.id]);
});

it("keeps a hidden message hidden and brings its content back after an unblock", async () => {
  server.addChat("c1", 1);
  server.history.set("c1", [{ ...msg("c1", 1, ""), hidden: true }]);
  await online();
  await store.block(PEER.id);
  store.openChat("c1");
  await until(() => chat("c1").history === "loaded", "the history page");
  const [m] = store.messagesOf(chat("c1"));
  expect([m.hidden, m.content, m.deletedAt]).toEqual([true, "", 0]);

  // A hidden edit must not turn it into a tombstone.
  server.push({
    kind: {
      case: "change",
      value: {
        chatId: "c1",
        changeSeq: 1n,
        userId: PEER.id,
        kind: { case: "edited", value: { ...msg("c1", 1, ""), hidden: true } },
      },
    },
  });
  await until(() => chat("c1").changeCursor === 1, "the hidden edit");
  expect(store.messagesOf(chat("c1"))[0].deletedAt).toBe(0);

  server.history.set("c1", [msg("c1", 1, "now you see me")]);
  await store.unblock(PEER.id);
  await until(() => store.messagesOf(chat("c1"))[0]?.content === "now you see me", "the reloaded page");
  expect(store.messagesOf(chat("c1"))[0].hidden).toBe(false);
});
