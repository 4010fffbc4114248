// Attachments: uploads over HTTP (gRPC-Web has no client streaming), the
// per-chat queue of files waiting in the composer, and the signed URLs that
// <img> tags and download links use (they cannot send a bearer header).
//
//  - Upload: POST /v1/files?name=<file name>, `Authorization: Bearer`, the
//    body is the File itself (streamed by the browser, never read into
//    memory here); XMLHttpRequest, because fetch reports no upload progress.
//    The answer is the stored file (an Attachment as JSON).
//  - URLs: FilesService.GetFileUrls, asked for in batches (every id a render
//    needs, one call), cached until a little before `expires_at`.

import { authToken, CALL_TIMEOUT_MS, describe, tsToMs } from "./api";
import type { AttachmentView } from "./model";
import { store } from "./store";

/** The server's default size limit per file; it checks again (and may be
 * configured lower or higher: its answer is what counts). */
export const MAX_FILE_BYTES = 25 * 1024 * 1024;
/** At most this many files in one message. */
export const MAX_FILES = 10;

/** "2.0 MiB", "312 KiB", "12 bytes". */
export function formatSize(n: number): string {
  if (n < 1024) return `${n} ${n === 1 ? "byte" : "bytes"}`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Images the server makes previews of and serves inline. */
export function isImage(a: AttachmentView): boolean {
  return a.contentType.startsWith("image/") && a.width > 0 && a.height > 0;
}

/** Display size of a preview that fits in `box` × `box`, from the pixels
 * the server measured, so the layout is right before the bytes arrive. */
export function fitIn(w: number, h: number, box: number): { width: number; height: number } {
  if (w <= 0 || h <= 0) return { width: box, height: box };
  const k = Math.min(1, box / w, box / h);
  return { width: Math.max(1, Math.round(w * k)), height: Math.max(1, Math.round(h * k)) };
}

/** Why a file cannot be sent, checked before any byte goes out (null: ok). */
export function refuseLocally(file: File, limit = MAX_FILE_BYTES): string | null {
  if (file.size > limit) {
    return `${file.name || "This file"} is too large (${formatSize(file.size)}). Files can be at most ${formatSize(limit)}.`;
  }
  if (file.size === 0) return `${file.name || "This file"} is empty.`;
  return null;
}

// ---- upload -----------------------------------------------------------------

export class UploadError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** A field of a JSON object in snake_case or camelCase. */
function field(o: Record<string, unknown>, snake: string): unknown {
  if (snake in o) return o[snake];
  const camel = snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return o[camel];
}

/** The Attachment in the upload's answer ({file: {...}} or the file itself;
 * proto-JSON or plain field names). */
export function parseUploaded(body: unknown): AttachmentView {
  if (!body || typeof body !== "object") throw new Error("no file in the answer");
  const top = body as Record<string, unknown>;
  const f = (top.file && typeof top.file === "object" ? top.file : top) as Record<string, unknown>;
  const id = field(f, "id");
  if (typeof id !== "string" || !id) throw new Error("no file id in the answer");
  const num = (k: string) => Number(field(f, k) ?? 0) || 0;
  return {
    id,
    name: String(field(f, "name") ?? ""),
    contentType: String(field(f, "content_type") ?? ""),
    size: num("size"),
    width: num("width"),
    height: num("height"),
    hasThumbnail: field(f, "has_thumbnail") === true,
  };
}

/** The server's own sentence from an error answer (JSON or text). */
function serverReason(xhr: XMLHttpRequest): string {
  const text = typeof xhr.responseText === "string" ? xhr.responseText.trim() : "";
  if (!text) return "";
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    for (const k of ["message", "error", "detail", "reason"]) {
      const v = j[k];
      if (typeof v === "string" && v) return v;
      if (v && typeof v === "object" && typeof (v as { message?: unknown }).message === "string")
        return (v as { message: string }).message;
    }
    return "";
  } catch {
    return text.length <= 300 && !text.startsWith("<") ? text : "";
  }
}

function withStop(s: string): string {
  const t = s.trim();
  const up = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(up) ? up : `${up}.`;
}

/** A sentence for a refused or failed upload of `name`. */
export function uploadFailure(name: string, status: number, reason: string): string {
  const why = reason ? ` ${withStop(reason)}` : "";
  switch (status) {
    case 0:
      return navigator.onLine === false
        ? `${name} was not uploaded: you are offline.`
        : `${name} was not uploaded: can't reach the server.`;
    case 401:
      return "Your session has expired. Please log in again.";
    case 413:
      return `${name} is too large.${why || ` Files can be at most ${formatSize(MAX_FILE_BYTES)}.`}`;
    case 429:
      return `${name} was not uploaded: too many uploads.${why || " Try again later."}`;
    case 400:
    case 415:
    case 422:
      return `${name} was refused.${why}`;
    default:
      return status >= 500 ? `${name} was not uploaded: the server failed. Try again.` : `${name} was refused.${why}`;
  }
}

/** Uploads `file`; `onProgress` gets the fraction sent (0..1). Rejects with
 * an UploadError whose message is for the person, or an AbortError. */
export function uploadFile(
  file: File,
  onProgress: (sent: number) => void,
  signal: AbortSignal,
): Promise<AttachmentView> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const name = file.name || "file";
    xhr.open("POST", `/v1/files?name=${encodeURIComponent(name)}`);
    const token = authToken();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable && ev.total > 0) onProgress(ev.loaded / ev.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(parseUploaded(JSON.parse(xhr.responseText)));
        } catch {
          reject(new UploadError(`${name} was not uploaded: the server's answer was not understood.`, xhr.status));
        }
        return;
      }
      if (xhr.status === 401) store.expired();
      reject(new UploadError(uploadFailure(name, xhr.status, serverReason(xhr)), xhr.status));
    };
    xhr.onerror = () => reject(new UploadError(uploadFailure(name, 0, ""), 0));
    xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    if (signal.aborted) return xhr.abort();
    xhr.send(file);
  });
}

// ---- the files waiting in a composer ------------------------------------------

export interface Upload {
  key: number;
  name: string;
  size: number;
  /** Fraction sent, 0..1. */
  progress: number;
  state: "uploading" | "done" | "error";
  error: string;
  /** The stored file, once done. */
  file: AttachmentView | null;
  /** A small local preview of an image (a data: URL), "" while none. */
  preview: string;
  abort: AbortController;
}

let nextKey = 1;
const queues = new Map<string, Upload[]>();
const listeners = new Set<() => void>();

function notify(): void {
  for (const fn of listeners) fn();
}

/** Called when any chat's queue changes. */
export function onUploadsChanged(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function uploadsOf(chatId: string): Upload[] {
  return queues.get(chatId) ?? [];
}

function patch(chatId: string, key: number, p: Partial<Upload>): void {
  const list = queues.get(chatId);
  if (!list) return;
  queues.set(
    chatId,
    list.map((u) => (u.key === key ? { ...u, ...p } : u)),
  );
  notify();
}

/** Queues files for the chat's next message and starts uploading them.
 * Returns a sentence when some were not taken (too many). */
export function addFiles(chatId: string, files: File[]): string {
  const list = [...uploadsOf(chatId)];
  const room = MAX_FILES - list.filter((u) => u.state !== "error").length;
  const taken = files.slice(0, Math.max(0, room));
  for (const file of taken) {
    const key = nextKey++;
    const refused = refuseLocally(file);
    const u: Upload = {
      key,
      name: file.name || "file",
      size: file.size,
      progress: 0,
      state: refused ? "error" : "uploading",
      error: refused ?? "",
      file: null,
      preview: "",
      abort: new AbortController(),
    };
    list.push(u);
    if (refused) continue;
    uploadFile(file, (progress) => patch(chatId, key, { progress }), u.abort.signal).then(
      (stored) => patch(chatId, key, { state: "done", progress: 1, file: stored }),
      (err: unknown) => {
        if (err instanceof DOMException && err.name === "AbortError") return;
        patch(chatId, key, { state: "error", error: err instanceof Error ? err.message : String(err) });
      },
    );
    if (file.type.startsWith("image/")) {
      void localPreview(file).then((preview) => preview && patch(chatId, key, { preview }));
    }
  }
  queues.set(chatId, list);
  notify();
  return taken.length < files.length ? `At most ${MAX_FILES} files can go in one message.` : "";
}

/** Cancels an upload in flight, or takes a file out of the message. */
export function removeUpload(chatId: string, key: number): void {
  const list = uploadsOf(chatId);
  list.find((u) => u.key === key)?.abort.abort();
  queues.set(
    chatId,
    list.filter((u) => u.key !== key),
  );
  notify();
}

/** The stored files, ready to send; the queue is emptied of them and of
 * failed ones. */
export function takeUploaded(chatId: string): AttachmentView[] {
  const list = uploadsOf(chatId);
  const done = list.filter((u) => u.state === "done" && u.file).map((u) => u.file as AttachmentView);
  queues.set(
    chatId,
    list.filter((u) => u.state === "uploading"),
  );
  notify();
  return done;
}

/** A 96 px preview drawn from the picked image (a data: URL: the page's
 * CSP allows data: images, not blob:). "" when the browser cannot decode it. */
async function localPreview(file: File): Promise<string> {
  try {
    const bmp = await createImageBitmap(file);
    const { width, height } = fitIn(bmp.width, bmp.height, 96);
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d")?.drawImage(bmp, 0, 0, width, height);
    bmp.close();
    return canvas.toDataURL("image/jpeg", 0.8);
  } catch {
    return "";
  }
}

// ---- signed URLs ----------------------------------------------------------------

export interface SignedUrls {
  url: string;
  thumbnailUrl: string;
  expiresAt: number;
}

/** Asked again this long before they expire. */
const EXPIRY_MARGIN_MS = 30_000;
const urlCache = new Map<string, SignedUrls>();
const waiting = new Map<string, ((u: SignedUrls | null) => void)[]>();
let batchScheduled = false;

function fresh(u: SignedUrls | undefined): u is SignedUrls {
  return !!u && u.expiresAt - EXPIRY_MARGIN_MS > Date.now();
}

/** The cached URLs of a file, if still good. */
export function cachedUrls(id: string): SignedUrls | null {
  const u = urlCache.get(id);
  return fresh(u) ? u : null;
}

/** Forgets a file's URLs (an <img> failed: maybe they expired early). */
export function dropUrls(id: string): void {
  urlCache.delete(id);
}

/** The file's signed URLs; ids asked for in the same tick go in one call
 * (at most 100 per call). null: the server would not give them. */
export function signedUrls(id: string): Promise<SignedUrls | null> {
  const hit = cachedUrls(id);
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve) => {
    const list = waiting.get(id);
    if (list) list.push(resolve);
    else waiting.set(id, [resolve]);
    if (!batchScheduled) {
      batchScheduled = true;
      setTimeout(() => void flushBatch(), 0);
    }
  });
}

async function flushBatch(): Promise<void> {
  batchScheduled = false;
  const ids = [...waiting.keys()];
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100);
    const got = new Map<string, SignedUrls>();
    try {
      const r = await store.api.files.getFileUrls({ fileIds: chunk }, { timeoutMs: CALL_TIMEOUT_MS });
      for (const u of r.urls) {
        const v = { url: u.url, thumbnailUrl: u.thumbnailUrl, expiresAt: tsToMs(u.expiresAt) || Date.now() + 60_000 };
        urlCache.set(u.fileId, v);
        got.set(u.fileId, v);
      }
    } catch (err) {
      // A drawn placeholder stays; the next render asks again.
      console.warn(`file URLs: ${describe(err)}`);
    }
    for (const id of chunk) {
      const fns = waiting.get(id) ?? [];
      waiting.delete(id);
      for (const fn of fns) fn(got.get(id) ?? null);
    }
  }
}
