// End-to-end: two people chat in the browser across a server restart, and
// history pages back (harness: ./harness.mjs).
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
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  base,
  browser,
  bubbles,
  chatItem,
  countOf,
  expectedDuringRestart,
  problems,
  RECONNECT_WAIT,
  register,
  SHOTS,
  send,
  server,
  serverBase,
  setPhase,
  shot,
  startServer,
  stopServer,
  useHarness,
  WAIT,
  waitCount,
  waitHealthy,
  waitOnline,
  waitTick,
  watch,
} from "./harness.mjs";

useHarness();

test("two people chat in the browser across a server restart", { timeout: 240_000 }, async (t) => {
  const alice = { username: "alice", email: "alice@example.com", password: "alice-password-1" };
  const bob = { username: "bob", email: "bob@example.com", password: "bob-password-1" };

  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const ctxB = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const pageA = await ctxA.newPage();
  const pageB = await ctxB.newPage();
  watch(pageA, "alice");
  watch(pageB, "bob");

  // --- the page's security headers (the server's own, also under vite) ----
  const page = await fetch(`${serverBase}/`);
  const csp = page.headers.get("content-security-policy") ?? "";
  for (const directive of ["script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) {
    assert.ok(csp.includes(directive), `CSP lacks ${directive}: ${csp}`);
  }
  assert.ok(!csp.includes("unsafe-inline"), csp);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");

  // --- accounts, with the error messages a person sees ---------------------
  await pageA.goto(base);
  await pageA.getByRole("button", { name: "Log in", exact: true }).first().waitFor();
  await shot(pageA, "01-login");
  await register(pageA, alice);

  await pageB.goto(base);
  await pageB.getByLabel("Email").fill(alice.email);
  await pageB.getByLabel("Password").fill("not-the-password");
  await pageB.locator('form button[type="submit"]').click();
  await pageB.getByTestId("auth-error").getByText("Wrong email or password.").waitFor({ timeout: WAIT });

  await pageB.getByRole("button", { name: "Create account", exact: true }).first().click();
  await pageB.getByLabel("Email").fill(alice.email);
  await pageB.getByLabel("Username").fill(bob.username);
  await pageB.getByLabel("Password").fill(bob.password);
  await pageB.locator('form button[type="submit"]').click();
  await pageB.getByText("An account with this email already exists").waitFor({ timeout: WAIT });
  await register(pageB, bob);

  // The token survives a reload.
  await pageB.reload();
  await pageB.getByTestId("me").getByText(bob.username, { exact: true }).waitFor({ timeout: WAIT });
  await waitOnline(pageA, WAIT);
  await waitOnline(pageB, WAIT);

  // --- a direct chat by email ----------------------------------------------
  await pageA.getByRole("button", { name: "New chat" }).first().click();
  await pageA.getByTestId("new-chat-email").fill(bob.email);
  await shot(pageA, "02-new-chat");
  await pageA.getByRole("button", { name: "Start chat" }).click();
  await pageA.getByTestId("chat-title").getByText(bob.username, { exact: true }).waitFor({ timeout: WAIT });

  const a1 = "Hi Bob! Are we still on for Friday?";
  await send(pageA, a1);

  // Bob has not opened the chat: it appears in his list with an unread badge.
  const bobsChat = chatItem(pageB, alice.username);
  await bobsChat.getByTestId("unread").getByText("1", { exact: true }).waitFor({ timeout: WAIT });
  await shot(pageB, "03-unread-badge");
  await bobsChat.click();
  await waitCount(pageB, a1, 1);
  await bobsChat.getByTestId("unread").waitFor({ state: "detached", timeout: WAIT });
  // ... and Alice sees it read.
  await waitTick(pageA, a1, "READ");

  const b1 = "Hey Alice, yes! 7 pm at the usual place?";
  await send(pageB, b1);
  await waitCount(pageA, b1, 1);

  // Typing indicator: Bob types, Alice sees it; sending clears it.
  const b2 = "Great, see you at the café then!";
  await pageB.getByTestId("composer").fill("");
  await pageB.getByTestId("composer").pressSequentially("Great, see", { delay: 20 });
  await pageA.getByTestId("chat-sub").getByText("typing…").waitFor({ timeout: WAIT });
  await pageB.getByTestId("composer").fill(b2);
  await pageB.getByTestId("composer").press("Enter");
  await waitCount(pageA, b2, 1);
  await pageA.waitForFunction(
    () => !document.querySelector('[data-testid="chat-sub"]')?.textContent?.includes("typing"),
    null,
    {
      timeout: WAIT,
    },
  );

  const a2 = "Perfect. I'll book a table for four.";
  await send(pageA, a2);
  await waitCount(pageB, a2, 1);
  await waitTick(pageA, a2, "READ");

  // --- the server restarts mid-conversation ----------------------------------
  setPhase("restart");
  await stopServer(server);
  await pageA.locator('[data-testid="app"]:not([data-conn="online"])').waitFor({ timeout: WAIT });
  await pageB.locator('[data-testid="app"]:not([data-conn="online"])').waitFor({ timeout: WAIT });

  // Sent while the server is down: shown at once, delivered later.
  const a3 = "Can you bring the board game?";
  const box = pageA.getByTestId("composer");
  await box.fill(a3);
  await box.press("Enter");
  await bubbles(pageA, a3).locator('[data-tick="sending"]').waitFor({ timeout: WAIT });

  await waitHealthy(startServer());
  await waitOnline(pageA);
  await waitOnline(pageB);
  // Acknowledged: a stored message now, no longer the pending one.
  await pageA
    .locator('[data-testid="message"]:not([data-pending])')
    .filter({ has: pageA.getByTestId("message-text").getByText(a3, { exact: true }) })
    .waitFor({ timeout: RECONNECT_WAIT });
  await waitCount(pageB, a3, 1, RECONNECT_WAIT);
  setPhase("after restart");

  const b3 = "Sure, I'll bring Catan.";
  await send(pageB, b3);
  await waitCount(pageA, b3, 1);
  const a4 = "Deal! See you Friday.";
  await send(pageA, a4);
  await waitCount(pageB, a4, 1);
  await waitTick(pageA, a4, "READ");

  // --- a group room; the unread badge of a chat that is not open -------------
  await pageA.getByRole("button", { name: "New chat" }).first().click();
  await pageA.getByRole("button", { name: "Group", exact: true }).click();
  await pageA.getByLabel("Group name").fill("Book club");
  await pageA.getByLabel("Members’ emails").fill(bob.email);
  await pageA.getByRole("button", { name: "Create group" }).click();
  await pageA.getByTestId("chat-title").getByText("Book club", { exact: true }).waitFor({ timeout: WAIT });
  const g1 = "Welcome to the book club! First pick: Dune.";
  await send(pageA, g1);

  const bobsGroup = chatItem(pageB, "Book club");
  await bobsGroup.getByTestId("unread").getByText("1", { exact: true }).waitFor({ timeout: WAIT });
  await shot(pageB, "04-list-with-unread");
  await bobsGroup.click();
  await waitCount(pageB, g1, 1);
  await bobsGroup.getByTestId("unread").waitFor({ state: "detached", timeout: WAIT });
  await waitTick(pageA, g1, "READ");
  const g2 = "Love it, I'm in.";
  await send(pageB, g2);
  await waitCount(pageA, g2, 1);

  // --- back in the direct chat: nothing lost, nothing twice -------------------
  await chatItem(pageA, bob.username).click();
  const conversation = [a1, b1, b2, a2, a3, b3, a4];
  for (const t of conversation) await waitCount(pageA, t, 1);
  await waitTick(pageA, a4, "READ");
  await pageA.getByTestId("composer").click();
  await shot(pageA, "05-chat");
  fs.copyFileSync(path.join(SHOTS, "05-chat.png"), path.join(SHOTS, "web-client.png"));

  await chatItem(pageB, alice.username).click();
  for (const t of conversation) await waitCount(pageB, t, 1);

  // A reload rebuilds the same conversation from the server.
  await pageB.reload();
  await waitOnline(pageB, WAIT);
  for (const t of conversation) await waitCount(pageB, t, 1);
  const order = await pageB.$$eval('[data-testid="message-text"]', (els) => els.map((e) => e.textContent));
  assert.deepEqual(order, conversation, "Bob's view after reload, in order");

  // Phone width: one pane at a time with a back button.
  await pageB.setViewportSize({ width: 360, height: 740 });
  await pageB.getByRole("button", { name: "Back to chats" }).waitFor({ timeout: WAIT });
  await shot(pageB, "06-phone-chat");
  await pageB.getByRole("button", { name: "Back to chats" }).click();
  await chatItem(pageB, alice.username).waitFor({ timeout: WAIT });
  await shot(pageB, "07-phone-list");

  for (const t of conversation) {
    assert.equal(await countOf(pageA, t), 1, `Alice sees "${t}" once`);
  }

  // --- no errors in the browser ---------------------------------------------
  const unexpected = problems.filter((p) => !expectedDuringRestart(p));
  const tolerated = problems.length - unexpected.length;
  t.diagnostic(`browser errors while the server was down (failed requests, expected): ${tolerated}`);
  for (const p of problems.filter(expectedDuringRestart)) t.diagnostic(`  ${p.who}: ${p.text}`);
  assert.deepEqual(unexpected, [], "browser console errors or page errors");

  await ctxA.close();
  await ctxB.close();
});

test("history pages back when scrolling up", { timeout: 120_000 }, async () => {
  const carol = { username: "carol", email: "carol@example.com", password: "carol-password-1" };
  const dave = { username: "dave", email: "dave@example.com", password: "dave-password-1" };
  const ctxC = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const ctxD = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const pageC = await ctxC.newPage();
  const pageD = await ctxD.newPage();
  watch(pageC, "carol");
  watch(pageD, "dave");
  await register(pageC, carol);
  await register(pageD, dave);

  await pageC.getByRole("button", { name: "New chat" }).first().click();
  await pageC.getByTestId("new-chat-email").fill(dave.email);
  await pageC.getByRole("button", { name: "Start chat" }).click();
  await pageC.getByTestId("chat-title").getByText(dave.username, { exact: true }).waitFor({ timeout: WAIT });

  // More than one page (the client loads 50 at a time).
  const total = 70;
  const texts = Array.from({ length: total }, (_, i) => `Line ${i + 1} of the long story`);
  const box = pageC.getByTestId("composer");
  for (const t of texts) {
    await box.fill(t);
    await box.press("Enter");
  }
  // All acknowledged: no pending bubble left.
  await pageC.waitForFunction(() => !document.querySelector('[data-pending="true"]'), null, { timeout: 60_000 });

  const item = chatItem(pageD, carol.username);
  await item.getByTestId("unread").getByText(String(total), { exact: true }).waitFor({ timeout: WAIT });
  // Dave's stream already brought all of them; after a reload the client
  // knows only the chat list and must page through the history.
  await pageD.reload();
  await waitOnline(pageD, WAIT);
  await item.getByTestId("unread").getByText(String(total), { exact: true }).waitFor({ timeout: WAIT });
  await item.click();
  await waitCount(pageD, texts[total - 1], 1);
  const firstPage = await pageD.getByTestId("message").count();
  assert.ok(firstPage < total, `the first page holds fewer than ${total} messages (got ${firstPage})`);

  // Scrolling to the top fetches the older page.
  await pageD.getByTestId("messages").evaluate((el) => {
    el.scrollTop = 0;
  });
  await waitCount(pageD, texts[0], 1);
  const shown = await pageD.$$eval('[data-testid="message-text"]', (els) => els.map((e) => e.textContent));
  assert.deepEqual(shown, texts, "every message once, in order");
  await item.getByTestId("unread").waitFor({ state: "detached", timeout: WAIT });

  const unexpected = problems.filter((p) => p.who === "carol" || p.who === "dave");
  assert.deepEqual(unexpected, [], "browser console errors or page errors");
  await ctxC.close();
  await ctxD.close();
});
