// The only way this app talks to the server: gRPC-Web (binary) over fetch,
// with clients generated from proto/messaging.proto.

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ChatsService, EventsService, MessagesService, UsersService } from "./gen/messaging_pb";

let bearer: string | null = null;

/** The token every call after this one carries (null: none). */
export function setAuthToken(token: string | null): void {
  bearer = token;
}

const authorization: Interceptor = (next) => (req) => {
  if (bearer) req.header.set("authorization", `Bearer ${bearer}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [authorization],
});

/** The clients of every service, over one transport. */
export interface Api {
  users: Client<typeof UsersService>;
  chats: Client<typeof ChatsService>;
  messages: Client<typeof MessagesService>;
  events: Client<typeof EventsService>;
}

/** The clients over `t` (the unit tests pass an in-memory transport). */
export function clientsFor(t: Transport): Api {
  return {
    users: createClient(UsersService, t),
    chats: createClient(ChatsService, t),
    messages: createClient(MessagesService, t),
    events: createClient(EventsService, t),
  };
}

/** The clients over gRPC-Web to the page's own origin. */
export const api = clientsFor(transport);
export const usersApi = api.users;

/** Upper bound for every unary call, so nothing waits forever. */
export const CALL_TIMEOUT_MS = 15_000;

export { Code, ConnectError };

export function asConnectError(err: unknown): ConnectError {
  return ConnectError.from(err);
}

/**
 * True when the server could not be reached or the connection broke (as
 * opposed to the server answering with an error): worth retrying.
 */
export function isTransient(err: ConnectError): boolean {
  switch (err.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Unknown: // fetch failures ("Failed to fetch", "network error")
    case Code.Internal:
    case Code.ResourceExhausted:
    case Code.Canceled:
      return true;
    default:
      return false;
  }
}

/** A server message "field: detail" split into its field and detail. */
export function fieldOf(message: string): { field: string; detail: string } | null {
  const m = /^([a-z_]+):\s*(.*)$/s.exec(message);
  return m ? { field: m[1], detail: m[2] } : null;
}

const OFFLINE = "Can't reach the server. Check your connection and try again.";

/** A sentence a person can act on, for an error of any call. */
export function describe(err: unknown): string {
  const e = asConnectError(err);
  switch (e.code) {
    case Code.Unavailable:
    case Code.Unknown:
    case Code.Canceled:
      return navigator.onLine === false ? "You are offline." : OFFLINE;
    case Code.DeadlineExceeded:
      return "The server took too long to answer. Try again.";
    case Code.ResourceExhausted:
      return "Too many requests. Wait a moment and try again.";
    case Code.Unauthenticated:
      return "Your session has expired. Please log in again.";
    case Code.PermissionDenied:
      return "You are not allowed to do that.";
    case Code.Unimplemented:
      return "The server does not support this yet.";
    case Code.NotFound:
      return e.rawMessage ? sentence(e.rawMessage) : "Not found.";
    case Code.InvalidArgument:
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
      return sentence(e.rawMessage || "That was not accepted.");
    default:
      return "Something went wrong on the server. Try again.";
  }
}

function sentence(s: string): string {
  const t = s.trim();
  const up = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(up) ? up : `${up}.`;
}

export function tsToMs(ts: Timestamp | undefined): number {
  if (!ts) return 0;
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000);
}
