// The only way this app talks to the server: gRPC-Web (binary) over fetch,
// with clients generated from proto/messaging.proto.

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb";
import { ChatsService, EventsService, FilesService, MessagesService, UsersService } from "./gen/messaging_pb";

let bearer: string | null = null;

/** The token every call after this one carries (null: none). */
export function setAuthToken(token: string | null): void {
  bearer = token;
}

/** The token calls carry now (null: none), for the HTTP upload. */
export function authToken(): string | null {
  return bearer;
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
  files: Client<typeof FilesService>;
}

/** The clients over `t` (the unit tests pass an in-memory transport). */
export function clientsFor(t: Transport): Api {
  return {
    users: createClient(UsersService, t),
    chats: createClient(ChatsService, t),
    messages: createClient(MessagesService, t),
    events: createClient(EventsService, t),
    files: createClient(FilesService, t),
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

/** One field a request got wrong, from the error's `google.rpc.BadRequest`
 * detail: `field` is the request's field name as the server spells it
 * (`email`, `member_emails`; an entry of a list may carry its index,
 * `member_emails[2]`), `index` that index when there is one. */
export interface FieldError {
  field: string;
  index: number | null;
  description: string;
}

/** The field violations the server attached to an error (none: []). */
export function fieldErrors(err: unknown): FieldError[] {
  const e = asConnectError(err);
  const out: FieldError[] = [];
  for (const bad of e.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) {
      const open = v.field.indexOf("[");
      const index = open > 0 && v.field.endsWith("]") ? Number(v.field.slice(open + 1, -1)) : Number.NaN;
      out.push({
        field: open > 0 ? v.field.slice(0, open) : v.field,
        index: Number.isInteger(index) ? index : null,
        description: v.description,
      });
    }
  }
  return out;
}

/** How long the server asked to wait before trying again (ms), from the
 * error's `google.rpc.RetryInfo` detail; null when it sent none. */
export function retryDelayMs(err: unknown): number | null {
  for (const info of asConnectError(err).findDetails(RetryInfoSchema)) {
    const d = info.retryDelay;
    if (d) return Math.max(0, Number(d.seconds) * 1000 + Math.ceil(d.nanos / 1_000_000));
  }
  return null;
}

/** "Try again in 12 seconds." for a wait in ms. */
export function tryAgainIn(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s < 90) return `Try again in ${s} ${s === 1 ? "second" : "seconds"}.`;
  const m = Math.ceil(s / 60);
  return `Try again in ${m} minutes.`;
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
    case Code.ResourceExhausted: {
      const wait = retryDelayMs(e);
      return wait === null
        ? "Too many requests. Wait a moment and try again."
        : `Too many requests. ${tryAgainIn(wait)}`;
    }
    case Code.Unauthenticated:
      return "Your session has expired. Please log in again.";
    case Code.PermissionDenied: {
      // Refused because of what a field names (someone who blocked you):
      // the server says why in a BadRequest violation.
      const [f] = fieldErrors(e);
      if (f?.description) return sentence(f.description);
      return e.rawMessage ? sentence(e.rawMessage) : "You are not allowed to do that.";
    }
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

/** A server's sentence fragment as a sentence: capital first, full stop. */
export function sentence(s: string): string {
  const t = s.trim();
  const up = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(up) ? up : `${up}.`;
}

export function tsToMs(ts: Timestamp | undefined): number {
  if (!ts) return 0;
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000);
}
