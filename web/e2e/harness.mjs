// The shared harness of the end-to-end tests (web/e2e/*.test.mjs): the real
// server binary, the embedded web client, and Debian's Chromium driven by
// playwright-core. Each test file calls useHarness() once and gets its own
// server (free port, temp data dir) and browser.
//
//   cargo build --release --bin tidings && node --test web/e2e/
//
// Environment: TIDINGS_BIN (default target/release/tidings), CHROMIUM_PATH
// (default /usr/bin/chromium). Screenshots go to web/e2e/screenshots/.
// E2E_VITE=1 (for working on the client): the pages come from `vite preview`
// of web/dist, which forwards the gRPC-Web calls to the spawned server, so a
// client change needs `npm run build` in web/ but no new server build.
//
// Nothing here sleeps to synchronise: every wait is a Playwright auto-waiting
// locator or a polled condition, with its timeout only as an upper bound.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = process.env.TIDINGS_BIN ?? path.join(root, "target/release/tidings");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SHOTS = path.join(here, "screenshots");
export const WAIT = 20_000;
/** Upper bound for reconnecting after the restart (backoff is capped at 10 s). */
export const RECONNECT_WAIT = 45_000;

// Live bindings: importers see the current values.
export let server = null;
let serverLog = "";
export let browser = null;
let dataDir = "";
let port = 0;
/** The server's own origin, for /healthz. */
export let serverBase = "";
/** Where the browser loads the client from: the server itself, or vite. */
export let base = "";
let vite = null;

/** Browser console errors and page errors. During the deliberate restart,
 * failed requests to the server are expected (the browser itself logs those
 * as errors, whatever the page does); nothing else is. */
export const problems = [];
let phase = "before restart";

/** Labels the problems recorded from now on ("restart": while the server is
 * deliberately down). */
export function setPhase(p) {
  phase = p;
}

/** A console error the browser logs by itself for a request that failed
 * while the server was deliberately down. */
export function expectedDuringRestart(p) {
  return (
    p.phase === "restart" &&
    p.kind === "console" &&
    /net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|INCOMPLETE_CHUNKED_ENCODING|CONNECTION_CLOSED)|Failed to load resource/.test(
      p.text,
    ) &&
    (p.url === "" || p.url.startsWith(base))
  );
}

async function startVite() {
  const vitePort = await freePort();
  vite = spawn(
    path.join(root, "web/node_modules/.bin/vite"),
    ["preview", "--host", "127.0.0.1", "--port", String(vitePort), "--strictPort"],
    {
      cwd: path.join(root, "web"),
      env: { ...process.env, TIDINGS_DEV_SERVER: serverBase },
      stdio: "ignore",
    },
  );
  const origin = `http://127.0.0.1:${vitePort}`;
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(origin)).ok) return origin;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("vite preview did not start");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts the server on this file's port and data dir (again, after a
 * stopServer, for a restart). */
export function startServer() {
  // Abuse limits off: the scroll-back test types 70 messages faster than
  // any person, and every page signs up from the same address.
  const env = {
    ...process.env,
    LOG_LEVEL: "warn",
    SEND_RATE: "0",
    TYPING_RATE: "0",
    AUTH_RATE: "0",
    ROOM_RATE: "0",
    LOOKUP_RATE: "0",
  };
  // Embedded mode, whatever the surrounding shell has set.
  for (const k of ["DATABASE_URL", "REDIS_URL", "LISTEN_ADDR", "DATA_DIR", "CORS_ORIGINS"]) delete env[k];
  const child = spawn(BIN, ["--listen-addr", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (serverLog += d));
  child.stderr.on("data", (d) => (serverLog += d));
  child.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  server = child;
  return child;
}

/** Polls /healthz until it answers 200 or the server process dies. */
export async function waitHealthy(child, timeoutMs = WAIT) {
  const deadline = Date.now() + timeoutMs;
  let died = false;
  child.exited.then(() => (died = true));
  while (Date.now() < deadline) {
    if (died) throw new Error(`server exited during start-up:\n${serverLog}`);
    try {
      const r = await fetch(`${serverBase}/healthz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server not healthy after ${timeoutMs} ms:\n${serverLog}`);
}

export async function stopServer(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timeout = new Promise((r) => setTimeout(() => r("timeout"), 20_000));
  if ((await Promise.race([child.exited, timeout])) === "timeout") {
    child.kill("SIGKILL");
    await child.exited;
    throw new Error("server did not stop within 20 s of SIGTERM");
  }
}

export function watch(page, who) {
  // A CSP violation is reported as an event; make it a console error, so it
  // counts as a problem like any other.
  page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    problems.push({ who, phase, kind: "console", text: msg.text(), url: msg.location()?.url ?? "" });
  });
  page.on("pageerror", (err) => {
    problems.push({ who, phase, kind: "pageerror", text: String(err?.stack ?? err), url: "" });
  });
}

export function shot(page, name) {
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Every chat bubble whose text is exactly `text`. */
export function bubbles(page, text) {
  return page.locator('[data-testid="message"]').filter({
    has: page.getByTestId("message-text").getByText(text, { exact: true }),
  });
}

/** Waits until exactly `n` bubbles show `text`. */
export async function waitCount(page, text, n = 1, timeout = WAIT) {
  await page.waitForFunction(
    ([t, want]) =>
      [...document.querySelectorAll('[data-testid="message-text"]')].filter((e) => e.textContent === t).length === want,
    [text, n],
    { timeout },
  );
}

export async function countOf(page, text) {
  return page.evaluate(
    (t) => [...document.querySelectorAll('[data-testid="message-text"]')].filter((e) => e.textContent === t).length,
    text,
  );
}

export async function register(page, user) {
  await page.goto(base);
  await page.getByRole("button", { name: "Create account", exact: true }).first().click();
  await page.getByLabel("Email").fill(user.email);
  await page.getByLabel("Username").fill(user.username);
  await page.getByLabel("Password").fill(user.password);
  await page.locator('form button[type="submit"]').click();
  await page.getByTestId("me").getByText(user.username, { exact: true }).waitFor({ timeout: WAIT });
}

export async function send(page, text) {
  const box = page.getByTestId("composer");
  await box.fill(text);
  await box.press("Enter");
  await bubbles(page, text).first().waitFor({ timeout: WAIT });
}

export function chatItem(page, name) {
  return page.locator(`[data-testid="chat-item"][data-chat-name="${name}"]`);
}

export async function waitTick(page, text, tick, timeout = WAIT) {
  await bubbles(page, text).locator(`[data-testid="tick"][data-tick="${tick}"]`).waitFor({ timeout });
}

export async function waitOnline(page, timeout = RECONNECT_WAIT) {
  await page.locator('[data-testid="app"][data-conn="online"]').waitFor({ timeout });
}

/** Registers the hooks that start the server and the browser before the
 * file's tests and stop them after. */
export function useHarness() {
  before(async () => {
    assert.ok(fs.existsSync(BIN), `${BIN} is missing: run \`cargo build --release --bin tidings\` first`);
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
    fs.mkdirSync(SHOTS, { recursive: true });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tidings-e2e-"));
    port = await freePort();
    serverBase = `http://127.0.0.1:${port}`;
    base = serverBase;
    await waitHealthy(startServer());
    if (process.env.E2E_VITE === "1") base = await startVite();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopServer(server).catch(() => {});
    vite?.kill("SIGTERM");
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });
}

// ---- steps the tests share ------------------------------------------------

/** Opens (or creates) the direct chat with the person with this email. */
export async function openDirect(page, email, username) {
  await page.getByRole("button", { name: "New chat" }).first().click();
  await page.getByTestId("new-chat-email").fill(email);
  await page.getByRole("button", { name: "Start chat" }).click();
  await page.getByTestId("chat-title").getByText(username, { exact: true }).waitFor({ timeout: WAIT });
}

/** Creates a group room of the caller and these people (by email). */
export async function createGroup(page, name, emails) {
  await page.getByRole("button", { name: "New chat" }).first().click();
  await page.getByRole("button", { name: "Group", exact: true }).click();
  await page.getByLabel("Group name").fill(name);
  await page.getByLabel("Members’ emails").fill(emails.join(", "));
  await page.getByRole("button", { name: "Create group" }).click();
  await page.getByTestId("chat-title").getByText(name, { exact: true }).waitFor({ timeout: WAIT });
}

/** Stops the server, waits until every page notices, starts it again and
 * waits until every page is back online. Failed requests meanwhile are
 * expected (see expectedDuringRestart); `then`: the phase afterwards (null:
 * still "restart", for a caller that keeps some page offline a while). */
export async function restartServer(pages, then = "after restart") {
  setPhase("restart");
  await stopServer(server);
  for (const page of pages)
    await page.locator('[data-testid="app"]:not([data-conn="online"])').waitFor({ timeout: WAIT });
  await waitHealthy(startServer());
  for (const page of pages) await waitOnline(page);
  if (then) setPhase(then);
}

/** No browser console or page errors from these people, but the failed
 * requests of a deliberate restart. */
export function assertNoProblems(t, who) {
  const mine = problems.filter((p) => who.includes(p.who));
  const unexpected = mine.filter((p) => !expectedDuringRestart(p));
  t.diagnostic(
    `browser errors while the server was down (failed requests, expected): ${mine.length - unexpected.length}`,
  );
  assert.deepEqual(unexpected, [], "browser console errors or page errors");
}
