// Attachments and search in the client: the checks made before any byte is
// uploaded, how the upload's answer and refusals are read, that a message's
// files go out with it (and survive a reload in the outbox), and how a
// search snippet's marks are split.

import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fitIn, formatSize, MAX_FILE_BYTES, parseUploaded, refuseLocally, uploadFailure } from "../src/files";
import { UserSchema } from "../src/gen/messaging_pb";
import type { AttachmentView } from "../src/model";
import { snippetParts } from "../src/search";
import { Store } from "../src/store";
import { FakeServer, ME, until } from "./fake-server";

describe("before uploading", () => {
  it("refuses a file over the limit, naming it and both sizes", () => {
    const big = { name: "film.mov", size: 30 * 1024 * 1024 } as File;
    expect(refuseLocally(big)).toBe("film.mov is too large (30 MiB). Files can be at most 25 MiB.");
    expect(refuseLocally({ name: "ok.png", size: MAX_FILE_BYTES } as File)).toBeNull();
    expect(refuseLocally({ name: "empty.txt", size: 0 } as File)).toBe("empty.txt is empty.");
  });

  it("writes sizes in binary units", () => {
    expect(formatSize(1)).toBe("1 byte");
    expect(formatSize(1023)).toBe("1023 bytes");
    expect(formatSize(2048)).toBe("2.0 KiB");
    expect(formatSize(2.5 * 1024 * 1024)).toBe("2.5 MiB");
    expect(formatSize(300 * 1024)).toBe("300 KiB");
  });

  it("fits a preview in its box, keeping the proportions, never enlarging", () => {
    expect(fitIn(4000, 3000, 260)).toEqual({ width: 260, height: 195 });
    expect(fitIn(600, 2400, 260)).toEqual({ width: 65, height: 260 });
    expect(fitIn(100, 50, 260)).toEqual({ width: 100, height: 50 });
  });
});

describe("the upload's answer", () => {
  const want: AttachmentView = {
    id: "f1",
    name: "cat.png",
    contentType: "image/png",
    size: 1234,
    width: 640,
    height: 480,
    hasThumbnail: true,
  };

  it("reads proto-JSON (camelCase, int64 as a string) and snake_case, wrapped or not", () => {
    expect(
      parseUploaded({
        file: {
          id: "f1",
          name: "cat.png",
          contentType: "image/png",
          size: "1234",
          width: 640,
          height: 480,
          hasThumbnail: true,
        },
      }),
    ).toEqual(want);
    expect(
      parseUploaded({
        id: "f1",
        name: "cat.png",
        content_type: "image/png",
        size: 1234,
        width: 640,
        height: 480,
        has_thumbnail: true,
      }),
    ).toEqual(want);
  });

  it("refuses an answer without an id", () => {
    expect(() => parseUploaded({ file: { name: "x" } })).toThrow();
  });

  it("says why a file was refused, with the server's reason", () => {
    expect(uploadFailure("big.bin", 413, "")).toBe("big.bin is too large. Files can be at most 25 MiB.");
    expect(uploadFailure("big.bin", 413, "the limit is 10 MiB")).toBe("big.bin is too large. The limit is 10 MiB.");
    expect(uploadFailure("a.exe", 415, "this type of file is not accepted")).toBe(
      "a.exe was refused. This type of file is not accepted.",
    );
    expect(uploadFailure("a.txt", 429, "")).toBe("a.txt was not uploaded: too many uploads. Try again later.");
    expect(uploadFailure("a.txt", 503, "")).toBe("a.txt was not uploaded: the server failed. Try again.");
  });
});

describe("search snippets", () => {
  it("splits matched words out, dropping stray markers, never reading HTML", () => {
    expect(snippetParts("see \u0002Café\u0003 <b>at</b> \u0002noon\u0003")).toEqual([
      { text: "see ", mark: false },
      { text: "Café", mark: true },
      { text: " <b>at</b> ", mark: false },
      { text: "noon", mark: true },
    ]);
    expect(snippetParts("no marks")).toEqual([{ text: "no marks", mark: false }]);
    expect(snippetParts("a\u0003b \u0002open")).toEqual([
      { text: "ab ", mark: false },
      { text: "open", mark: true },
    ]);
  });
});

describe("sending files", () => {
  let server: FakeServer;
  let store: Store;
  const file: AttachmentView = {
    id: "f9",
    name: "report.pdf",
    contentType: "application/pdf",
    size: 2048,
    width: 0,
    height: 0,
    hasThumbnail: false,
  };

  beforeEach(() => {
    localStorage.clear();
    server = new FakeServer();
    store = new Store(server.api);
  });

  afterEach(() => store.logout());

  it("sends the attachment ids with an empty text, and again with the same key after a reload", async () => {
    server.addChat("c1");
    server.failSends = 1_000; // never acknowledged before the reload
    store.signIn("token", create(UserSchema, ME), 0);
    await until(() => store.conn === "online" && store.chatsLoaded, "the stream to be live");
    store.send("c1", "", undefined, [file]);
    await until(() => server.sends.length >= 1, "the first attempt");
    const first = server.sends[0];
    expect(first.content).toBe("");
    expect(first.attachmentIds).toEqual(["f9"]);

    // A reload: the page goes away (its loops with it) and a new store
    // starts from what the old one left in localStorage, files included.
    const saved: [string, string][] = [];
    for (let k = 0; k < localStorage.length; k++) {
      const key = localStorage.key(k) as string;
      saved.push([key, localStorage.getItem(key) as string]);
    }
    store.logout();
    for (const [k, v] of saved) localStorage.setItem(k, v);
    server.failSends = 0;
    const before = server.sends.length;
    store = new Store(server.api);
    store.start();
    await until(() => server.sends.length > before && store.chats.get("c1")?.pending.length === 0, "the resend");
    const last = server.sends[server.sends.length - 1];
    expect(last.idempotencyKey).toBe(first.idempotencyKey);
    expect(last.attachmentIds).toEqual(["f9"]);
  });
});
