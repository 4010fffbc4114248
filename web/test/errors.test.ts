// The standard error details (google.rpc) the server attaches, read by the
// client: BadRequest field violations and RetryInfo's delay.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { describe as describeError, fieldErrors, retryDelayMs } from "../src/api";
import { BadRequestSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb";
import { UserSchema } from "../src/gen/messaging_pb";
import { Store } from "../src/store";
import { FakeServer, ME, until } from "./fake-server";

function badRequest(...violations: [string, string][]): ConnectError {
  return new ConnectError(`${violations[0][0]}: ${violations[0][1]}`, Code.InvalidArgument, undefined, [
    {
      desc: BadRequestSchema,
      value: { fieldViolations: violations.map(([field, description]) => ({ field, description })) },
    },
  ]);
}

function rateLimited(ms: number): ConnectError {
  return new ConnectError("too many messages", Code.ResourceExhausted, undefined, [
    {
      desc: RetryInfoSchema,
      value: { retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } },
    },
  ]);
}

describe("field violations", () => {
  it("names each field, with the index of a list entry", () => {
    const e = badRequest(["username", "must be 3 to 32 characters"], ["member_emails[2]", "no one has this address"]);
    expect(fieldErrors(e)).toEqual([
      { field: "username", index: null, description: "must be 3 to 32 characters" },
      { field: "member_emails", index: 2, description: "no one has this address" },
    ]);
  });

  it("is empty for an error without details (no guessing from the text)", () => {
    expect(fieldErrors(new ConnectError("email: looks like a field", Code.InvalidArgument))).toEqual([]);
  });

  it("survives the trip through a transport", async () => {
    const server = new FakeServer();
    server.addChat("c1");
    server.sendErrors.push(badRequest(["content", "must not be blank"]));
    const err = await server.api.messages.sendMessage({ chatId: "c1", content: " " }).catch((e: unknown) => e);
    expect(fieldErrors(err)).toEqual([{ field: "content", index: null, description: "must not be blank" }]);
  });
});

describe("retry info", () => {
  it("reads the delay and says it", () => {
    expect(retryDelayMs(rateLimited(12_500))).toBe(12_500);
    expect(retryDelayMs(new ConnectError("slow down", Code.ResourceExhausted))).toBeNull();
    expect(describeError(rateLimited(12_500))).toBe("Too many requests. Try again in 13 seconds.");
  });

  let store: Store | null = null;
  afterEach(() => store?.logout());

  it("makes the outbox wait the delay the server asked for before resending", async () => {
    localStorage.clear();
    const server = new FakeServer();
    server.addChat("c1");
    store = new Store(server.api);
    const s = store;
    s.signIn("token", create(UserSchema, ME), 0);
    await until(() => s.conn === "online" && s.chatsLoaded, "the stream to be live");
    server.sendErrors.push(rateLimited(700));
    s.send("c1", "patient");
    // `until` fires "online" every 10 ms, which cuts an ordinary backoff
    // short: only the server's delay holds the resend back.
    await until(() => server.sends.length === 2 && s.chats.get("c1")?.pending.length === 0, "the resend");
    const waited = server.sendTimes[1] - server.sendTimes[0];
    expect(waited).toBeGreaterThanOrEqual(690);
    expect(new Set(server.sends.map((x) => x.idempotencyKey)).size).toBe(1);
  });
});
