// Attachments in the conversation (previews, chips, the full view) and in
// the composer (attach button, drop, paste, the tray of uploads). The
// logic is in ../files.ts.

import "./attachments.css";
import { useEffect, useReducer, useRef, useState } from "preact/hooks";
import {
  addFiles,
  cachedUrls,
  dropUrls,
  fitIn,
  formatSize,
  isImage,
  onUploadsChanged,
  removeUpload,
  type SignedUrls,
  signedUrls,
  type Upload,
  uploadsOf,
} from "../files";
import type { AttachmentView } from "../model";
import { Modal } from "./Dialogs";

/** Longest side of an inline preview, in CSS pixels. */
const PREVIEW_BOX = 260;

/** The file's signed URLs (null until they arrive, or if refused); `retry`
 * forgets them and asks again (after an <img> failed to load). */
function useSignedUrls(id: string): { urls: SignedUrls | null; retry: () => void } {
  const [urls, setUrls] = useState<SignedUrls | null>(() => cachedUrls(id));
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let live = true;
    const hit = cachedUrls(id);
    if (hit) setUrls(hit);
    else void signedUrls(id).then((u) => live && setUrls(u));
    // Ask again shortly before they expire, while on screen.
    const left = urls ? urls.expiresAt - Date.now() - 20_000 : 0;
    const t = left > 0 ? setTimeout(() => setAttempt((n) => n + 1), Math.min(left, 2 ** 31 - 1)) : undefined;
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [id, attempt, urls?.expiresAt]);
  return {
    urls,
    retry: () => {
      dropUrls(id);
      if (attempt < 3) setAttempt((n) => n + 1);
    },
  };
}

/** The files of a message, under its text. */
export function AttachmentList({ files }: { files: AttachmentView[] }) {
  const [open, setOpen] = useState<AttachmentView | null>(null);
  return (
    <div class="attachments" data-testid="attachments">
      {files.map((a) =>
        isImage(a) ? <ImagePreview key={a.id} a={a} onOpen={() => setOpen(a)} /> : <FileChip key={a.id} a={a} />,
      )}
      {open && <ImageViewer a={open} onClose={() => setOpen(null)} />}
    </div>
  );
}

function ImagePreview({ a, onOpen }: { a: AttachmentView; onOpen: () => void }) {
  const { urls, retry } = useSignedUrls(a.id);
  const { width, height } = fitIn(a.width, a.height, PREVIEW_BOX);
  const src = urls ? urls.thumbnailUrl || urls.url : "";
  return (
    <button
      type="button"
      class="att-image"
      data-testid="attachment-image"
      data-file-id={a.id}
      aria-label={`Open image ${a.name} (${a.width} × ${a.height}, ${formatSize(a.size)})`}
      onClick={onOpen}
    >
      {/* width/height from the server's measurements: the space is kept before the bytes arrive */}
      {src ? (
        <img src={src} width={width} height={height} alt={a.name} data-testid="attachment-thumb" onError={retry} />
      ) : (
        <span
          class="att-placeholder"
          data-testid="attachment-placeholder"
          aria-hidden="true"
          style={{ width: `${width}px`, height: `${height}px` }}
        >
          <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true">
            <rect x="3" y="5" width="18" height="14" rx="2" fill="none" stroke="currentColor" stroke-width="1.6" />
            <path d="M4 17l5-5 4 4 3-3 4 4" fill="none" stroke="currentColor" stroke-width="1.6" />
          </svg>
        </span>
      )}
    </button>
  );
}

function FileChip({ a }: { a: AttachmentView }) {
  const { urls } = useSignedUrls(a.id);
  const body = (
    <>
      <svg class="att-icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
        <path
          d="M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5"
          fill="none"
          stroke="currentColor"
          stroke-width="1.7"
          stroke-linejoin="round"
        />
      </svg>
      <span class="att-name" data-testid="attachment-name">
        {a.name}
      </span>
      <span class="att-size muted small" data-testid="attachment-size">
        {formatSize(a.size)}
      </span>
    </>
  );
  return urls ? (
    <a
      class="att-chip"
      href={urls.url}
      download={a.name}
      data-testid="attachment-file"
      data-file-id={a.id}
      aria-label={`Download ${a.name} (${formatSize(a.size)})`}
    >
      {body}
    </a>
  ) : (
    <span class="att-chip" data-testid="attachment-file" data-file-id={a.id}>
      {body}
    </span>
  );
}

/** The whole picture in a modal dialog (Escape or the backdrop closes it). */
function ImageViewer({ a, onClose }: { a: AttachmentView; onClose: () => void }) {
  const { urls, retry } = useSignedUrls(a.id);
  const { width, height } = fitIn(a.width, a.height, 4096);
  return (
    <Modal title={a.name} labelId="image-viewer-title" onClose={onClose}>
      <div class="att-viewer" data-testid="image-viewer">
        {urls ? (
          <img src={urls.url} width={width} height={height} alt={a.name} data-testid="image-full" onError={retry} />
        ) : (
          <p class="muted">Loading…</p>
        )}
        <p class="att-viewer-meta muted small">
          {a.width} × {a.height} · {formatSize(a.size)}
          {urls && (
            <>
              {" · "}
              <a href={urls.url} download={a.name}>
                Download
              </a>
            </>
          )}
        </p>
      </div>
    </Modal>
  );
}

// ---- composer ---------------------------------------------------------------

/** The chat's queued uploads, re-rendering as they progress. */
export function useUploads(chatId: string): Upload[] {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => onUploadsChanged(() => bump(0)), []);
  return uploadsOf(chatId);
}

/** Files dropped anywhere on the conversation (the closest `.chat` around
 * `ref`) and pasted into the box go to the chat's next message. */
export function useFileDrop(
  ref: { current: HTMLElement | null },
  chatId: string,
  onError: (s: string) => void,
): boolean {
  const [over, setOver] = useState(false);
  useEffect(() => {
    const zone = ref.current?.closest<HTMLElement>(".chat") ?? ref.current;
    if (!zone) return;
    const hasFiles = (ev: DragEvent) => [...(ev.dataTransfer?.types ?? [])].includes("Files");
    let depth = 0;
    const enter = (ev: DragEvent) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth++;
      setOver(true);
    };
    const overFn = (ev: DragEvent) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
    };
    const leave = () => {
      depth = Math.max(0, depth - 1);
      if (!depth) setOver(false);
    };
    const drop = (ev: DragEvent) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth = 0;
      setOver(false);
      const files = [...(ev.dataTransfer?.files ?? [])];
      if (files.length) onError(addFiles(chatId, files));
    };
    zone.addEventListener("dragenter", enter);
    zone.addEventListener("dragover", overFn);
    zone.addEventListener("dragleave", leave);
    zone.addEventListener("drop", drop);
    return () => {
      zone.removeEventListener("dragenter", enter);
      zone.removeEventListener("dragover", overFn);
      zone.removeEventListener("dragleave", leave);
      zone.removeEventListener("drop", drop);
    };
  }, [chatId]);
  return over;
}

/** For the textarea's onPaste: pasted files (a screenshot) are attached
 * instead of pasted as text. */
export function pasteFiles(ev: ClipboardEvent, chatId: string, onError: (s: string) => void): void {
  const files = [...(ev.clipboardData?.files ?? [])];
  if (!files.length) return;
  ev.preventDefault();
  onError(addFiles(chatId, files));
}

export function AttachButton({ chatId, onError }: { chatId: string; onError: (s: string) => void }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <>
      <button
        class="icon-btn attach"
        type="button"
        aria-label="Attach files"
        title="Attach files"
        data-testid="attach"
        onClick={() => input.current?.click()}
      >
        <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
          <path
            d="M20 11.5l-8.1 8.1a5 5 0 0 1-7.1-7.1l8.5-8.5a3.4 3.4 0 0 1 4.8 4.8l-8.5 8.5a1.7 1.7 0 0 1-2.4-2.4l7.8-7.8"
            fill="none"
            stroke="currentColor"
            stroke-width="1.8"
            stroke-linecap="round"
            stroke-linejoin="round"
          />
        </svg>
      </button>
      <input
        ref={input}
        type="file"
        multiple
        class="sr-only"
        tabIndex={-1}
        aria-hidden="true"
        data-testid="attach-input"
        onChange={(ev) => {
          const t = ev.currentTarget;
          const files = [...(t.files ?? [])];
          t.value = ""; // the same file can be picked again
          if (files.length) onError(addFiles(chatId, files));
        }}
      />
    </>
  );
}

/** The files going with the next message: progress, cancel, errors. */
export function UploadTray({ chatId, uploads }: { chatId: string; uploads: Upload[] }) {
  if (!uploads.length) return null;
  return (
    <ul class="upload-tray" aria-label="Files to send" data-testid="upload-tray">
      {uploads.map((u) => (
        <li key={u.key} class={`upload ${u.state}`} data-testid="upload" data-state={u.state} data-name={u.name}>
          {u.preview ? (
            <img class="upload-thumb" src={u.preview} alt="" width={40} height={40} />
          ) : (
            <span class="upload-thumb file" aria-hidden="true" />
          )}
          <span class="upload-main">
            <span class="upload-name">{u.name}</span>
            {u.state === "error" ? (
              <span class="upload-error" role="alert" data-testid="upload-error">
                {u.error}
              </span>
            ) : (
              <span class="muted small">
                {formatSize(u.size)}
                {u.state === "uploading" && ` · ${Math.round(u.progress * 100)} %`}
              </span>
            )}
            {u.state === "uploading" && (
              <progress
                class="upload-progress"
                max={1}
                value={u.progress}
                aria-label={`Uploading ${u.name}`}
                data-testid="upload-progress"
              />
            )}
          </span>
          <button
            class="icon-btn"
            type="button"
            aria-label={u.state === "uploading" ? `Cancel upload of ${u.name}` : `Remove ${u.name}`}
            title={u.state === "uploading" ? "Cancel upload" : "Remove"}
            data-testid="upload-remove"
            onClick={() => removeUpload(chatId, u.key)}
          >
            <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
              <path d="M6 6l12 12M18 6L6 18" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
          </button>
        </li>
      ))}
    </ul>
  );
}

/** Names of the files a pending (unsent) message carries. */
export function PendingFiles({ files }: { files: AttachmentView[] }) {
  return (
    <div class="attachments pending-files">
      {files.map((a) => (
        <span key={a.id} class="att-chip" data-testid="pending-file">
          <span class="att-name">{a.name}</span>
          <span class="att-size muted small">{formatSize(a.size)}</span>
        </span>
      ))}
    </div>
  );
}
