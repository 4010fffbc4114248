// A fake Tidings server in memory for the store's unit tests: just enough of
// the four services, reached through Connect's router transport (so every
// request and answer goes through the generated code, as over the wire).
// The test drives the user stream: `push` an event, `drop` the stream as a
// restart would; it reads what the store sent (`subscribes`, `sends`).

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { type Api, clientsFor } from "../src/api";
import {
  type ChatSchema,
  ChatsService,
  type Event,
  EventSchema,
  EventsService,
  type MessageSchema,
  MessagesService,
  type SendMessageRequest,
  type SubscribeRequest,
  UsersService,
} from "../src/gen/messaging_pb";

export const ME = { id: "u-me", username: "me", email: "me@example.com" };
export const PEER = { id: "u-peer", username: "peer", email: "peer@example.com" };

type ChatInit = MessageInitShape<typeof ChatSchema>;
type MessageInit = MessageInitShape<typeof MessageSchema>;
export type EventInit = MessageInitShape<typeof EventSchema>;

const DROP = Symbol("drop");

/** The events of one open stream, waiting to be sent. */
class Outbox {
  private items: (Event | typeof DROP)[] = [];
  private wake: (() => void) | null = null;
  put(x: Event | typeof DROP): void {
    this.items.push(x);
    this.wake?.();
  }
  async next(signal: AbortSignal): Promise<Event | typeof DROP | null> {
    while (!this.items.length) {
      if (signal.aborted) return null;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      this.wake = null;
    }
    return this.items.shift() ?? null;
  }
}

export function msg(chatId: string, seq: number, content: string, from = PEER) {
  return {
    id: `m-${chatId}-${seq}`,
    chatId,
    seq: BigInt(seq),
    userId: from.id,
    username: from.username,
    content,
    status: "SENT",
    sentAt: { seconds: BigInt(1_700_000_000 + seq) },
  } satisfies MessageInit;
}

export class FakeServer {
  /** What ListChats and GetChat answer. */
  chats: ChatInit[] = [];
  /** What ListMessages answers, per chat (oldest first). */
  history = new Map<string, MessageInit[]>();
  /** Every Subscribe request, in order (their cursors). */
  subscribes: SubscribeRequest[] = [];
  /** Every SendMessage request, failed ones included. */
  sends: SendMessageRequest[] = [];
  /** The next this many SendMessage calls fail with UNAVAILABLE. */
  failSends = 0;
  /** Each SendMessage call fails with the first of these, taken off. */
  sendErrors: ConnectError[] = [];
  /** Who the caller blocked, as ListBlocked answers. */
  blocked = new Map<string, { userId: string; username: string; blockedAt: { seconds: bigint } }>();
  /** When each SendMessage call came (ms). */
  sendTimes: number[] = [];
  private stream: Outbox | null = null;
  private nextSeq = new Map<string, number>();
  readonly api: Api;

  constructor() {
    this.api = clientsFor(
      createRouterTransport((router) => {
        router.service(UsersService, {
          getMe: () => ({ user: ME }),
          listBlocked: () => ({ users: [...this.blocked.values()] }),
          blockUser: (req) => {
            const b = { userId: req.userId, username: "peer", blockedAt: { seconds: 1_800_000_000n } };
            this.blocked.set(req.userId, b);
            return { blocked: b };
          },
          unblockUser: (req) => {
            this.blocked.delete(req.userId);
            return {};
          },
        });
        router.service(ChatsService, {
          listChats: () => ({ chats: this.chats, total: this.chats.length }),
          getChat: (req) => {
            const chat = this.chats.find((c) => c.id === req.chatId);
            if (!chat) throw new ConnectError("chat not found", Code.NotFound);
            return { chat };
          },
        });
        router.service(MessagesService, {
          listMessages: (req) => ({ messages: this.history.get(req.chatId) ?? [] }),
          markRead: (req) => ({ readSeq: req.seq }),
          sendTyping: () => ({}),
          sendMessage: (req) => {
            this.sends.push(req);
            this.sendTimes.push(Date.now());
            const err = this.sendErrors.shift();
            if (err) throw err;
            if (this.failSends > 0) {
              this.failSends--;
              throw new ConnectError("try again", Code.Unavailable);
            }
            const seq = this.nextSeq.get(req.chatId) ?? 1;
            this.nextSeq.set(req.chatId, seq + 1);
            return { message: msg(req.chatId, seq, req.content, ME) };
          },
        });
        router.service(EventsService, {
          subscribe: (req, ctx) => this.subscribe(req, ctx),
        });
      }),
    );
  }

  private async *subscribe(req: SubscribeRequest, ctx: HandlerContext): AsyncGenerator<Event> {
    this.subscribes.push(req);
    const out = new Outbox();
    this.stream = out;
    yield create(EventSchema, { kind: { case: "connected", value: { userId: ME.id } } });
    for (;;) {
      const ev = await out.next(ctx.signal);
      if (ev === null) return;
      if (ev === DROP) throw new ConnectError("server restarting", Code.Unavailable);
      yield ev;
    }
  }

  /** A chat of the caller and PEER whose last message is `lastSeq`. */
  addChat(id: string, lastSeq = 0, lastChange = 0): void {
    this.chats.push({
      id,
      isGroup: false,
      members: [ME, PEER],
      lastSeq: BigInt(lastSeq),
      lastChange: BigInt(lastChange),
    });
    this.nextSeq.set(id, lastSeq + 1);
  }

  /** Sends an event on the open stream. */
  push(ev: EventInit): void {
    if (!this.stream) throw new Error("no stream is open");
    this.stream.put(create(EventSchema, ev));
  }

  message(chatId: string, seq: number, content: string): void {
    this.push({ kind: { case: "message", value: msg(chatId, seq, content) } });
  }

  /** Ends the open stream with UNAVAILABLE, as a restart of the server does. */
  drop(): void {
    this.stream?.put(DROP);
    this.stream = null;
  }
}

/** Polls `cond` until it holds (upper bound 3 s). `poke` runs on each try:
 * firing "online" cuts the store's reconnect and retry backoff short. */
export async function until(cond: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    window.dispatchEvent(new Event("online"));
    await new Promise((r) => setTimeout(r, 10));
  }
}
