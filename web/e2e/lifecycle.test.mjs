// End-to-end: messages people can change (issue 15), between people in the
// browser: edit (the up arrow), delete with a tombstone, reply with a quote,
// reactions, @mentions with their badge, and a group room's owner renaming
// it and removing a member. Changes made while someone's stream is down are
// replayed when it comes back (ChatCursor.after_change), and everything
// survives a server restart and a reload. Harness: ./harness.mjs.
//
// Nothing here sleeps to synchronise: every wait is a Playwright auto-waiting
// locator or a polled condition, with its timeout only as an upper bound.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  assertNoProblems,
  browser,
  bubbles,
  chatItem,
  countOf,
  createGroup,
  openDirect,
  RECONNECT_WAIT,
  register,
  restartServer,
  send,
  setPhase,
  shot,
  useHarness,
  WAIT,
  waitCount,
  waitOnline,
  watch,
} from "./harness.mjs";

useHarness();

/** The reaction chip of `emoji` under the bubble showing `text`. */
function chip(page, text, emoji) {
  return bubbles(page, text).locator(`[data-testid="reaction"][data-emoji="${emoji}"]`);
}

/** Waits until the chip shows `count` (and, if given, whether it is mine). */
async function waitChip(page, text, emoji, count, mine) {
  const sel = mine === undefined ? "" : `[data-mine="${mine}"]`;
  await bubbles(page, text)
    .locator(`[data-testid="reaction"][data-emoji="${emoji}"]${sel}`)
    .getByTestId("reaction-count")
    .getByText(String(count), { exact: true })
    .waitFor({ timeout: WAIT });
}

/** Hovers the bubble (its actions show on hover) and clicks one of them. */
async function act(page, text, action) {
  const b = bubbles(page, text);
  await b.hover();
  await b.getByTestId(action).click();
}

async function react(page, text, emoji) {
  await act(page, text, "action-react");
  await bubbles(page, text).locator(`[data-testid="reaction-option"][data-emoji="${emoji}"]`).click();
}

/** The one tombstone with this seq. */
function tombstone(page, seq) {
  return page.locator(`[data-testid="message"][data-seq="${seq}"][data-deleted="true"]`).getByTestId("message-deleted");
}

/** Waits until the composer is in `mode` ("new", "edit", "reply") and holds `value`. */
async function waitComposer(page, mode, value) {
  await page.waitForFunction(
    ([m, v]) => {
      const box = document.querySelector('[data-testid="composer"]');
      return box?.getAttribute("data-mode") === m && box.value === v;
    },
    [mode, value],
    { timeout: WAIT },
  );
}

async function seqOf(page, text) {
  return bubbles(page, text).getAttribute("data-seq");
}

test("people edit, delete, reply, react and mention, live and across a restart", { timeout: 300_000 }, async (t) => {
  const erin = { username: "erin", email: "erin@example.com", password: "erin-password-1" };
  const frank = { username: "frank", email: "frank@example.com", password: "frank-password-1" };
  const gina = { username: "gina", email: "gina@example.com", password: "gina-password-1" };
  const ctxE = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const ctxF = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const ctxG = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const pageE = await ctxE.newPage();
  const pageF = await ctxF.newPage();
  const pageG = await ctxG.newPage();
  watch(pageE, "erin");
  watch(pageF, "frank");
  watch(pageG, "gina");
  await register(pageE, erin);
  await register(pageF, frank);
  await register(pageG, gina);
  for (const p of [pageE, pageF, pageG]) await waitOnline(p, WAIT);

  // --- a direct chat -----------------------------------------------------------
  await openDirect(pageE, frank.email, frank.username);
  const e1 = "Lunch at noon tomorrow?";
  await send(pageE, e1);
  await chatItem(pageF, erin.username).click();
  await waitCount(pageF, e1, 1);

  // --- edit: the up arrow in the empty composer edits the last own message ---
  const e1b = "Lunch at 1 pm tomorrow?";
  const boxE = pageE.getByTestId("composer");
  await boxE.click();
  await boxE.press("ArrowUp");
  // The composer holds the message being edited.
  await waitComposer(pageE, "edit", e1);
  await pageE.getByTestId("edit-banner").waitFor({ timeout: WAIT });
  await boxE.fill(e1b);
  await boxE.press("Enter");
  // Empty again after saving the edit.
  await waitComposer(pageE, "new", "");
  // Frank sees it live: the same bubble, new text, marked edited.
  await waitCount(pageF, e1b, 1);
  assert.equal(await countOf(pageF, e1), 0, "the old text is gone");
  await bubbles(pageF, e1b).getByTestId("message-edited").getByText("(edited)").waitFor({ timeout: WAIT });
  await bubbles(pageE, e1b).getByTestId("message-edited").waitFor({ timeout: WAIT });
  const e1Id = await bubbles(pageE, e1b).getAttribute("data-message-id");

  // --- reply: the composer shows what is answered; the message quotes it -----
  const f1 = "Works for me, see you there.";
  await act(pageF, e1b, "action-reply");
  await pageF.getByTestId("reply-preview").getByText(e1b).waitFor({ timeout: WAIT });
  await pageF.getByTestId("composer").fill(f1);
  await pageF.getByTestId("composer").press("Enter");
  await waitCount(pageE, f1, 1);
  await pageF.getByTestId("reply-preview").waitFor({ state: "detached", timeout: WAIT });
  const quoteE = bubbles(pageE, f1).getByTestId("message-quote");
  await quoteE.getByText(e1b).waitFor({ timeout: WAIT });
  assert.equal(await quoteE.getAttribute("data-reply-to"), e1Id, "the quote names the original");
  await bubbles(pageF, f1).getByTestId("message-quote").getByText(e1b).waitFor({ timeout: WAIT });
  // Clicking the quote brings the original into view (and focus).
  await quoteE.click();
  await pageE.waitForFunction((id) => document.activeElement?.getAttribute("data-message-id") === id, e1Id, {
    timeout: WAIT,
  });

  // --- reactions: add, add by the other, take back -----------------------------
  await react(pageE, f1, "🎉");
  await waitChip(pageE, f1, "🎉", 1, true);
  await waitChip(pageF, f1, "🎉", 1, false);
  await chip(pageF, f1, "🎉").click(); // Frank adds his
  await waitChip(pageF, f1, "🎉", 2, true);
  await waitChip(pageE, f1, "🎉", 2, true);
  await chip(pageE, f1, "🎉").click(); // Erin takes hers back
  await waitChip(pageE, f1, "🎉", 1, false);
  await waitChip(pageF, f1, "🎉", 1, true);

  // --- delete with confirmation: a tombstone for both ---------------------------
  const e2 = "Oops, that was meant for someone else.";
  await send(pageE, e2);
  await waitCount(pageF, e2, 1);
  const e2Seq = await seqOf(pageE, e2);
  await act(pageE, e2, "action-delete");
  await pageE.getByTestId("confirm-dialog").waitFor({ timeout: WAIT });
  await pageE.getByTestId("confirm-ok").click();
  await tombstone(pageE, e2Seq).waitFor({ timeout: WAIT });
  await tombstone(pageF, e2Seq).waitFor({ timeout: WAIT });
  await waitCount(pageF, e2, 0);
  // Frank cannot delete or edit Erin's messages.
  await bubbles(pageF, e1b).hover();
  assert.equal(
    await bubbles(pageF, e1b).getByTestId("action-delete").count(),
    0,
    "no delete on another's direct message",
  );
  assert.equal(await bubbles(pageF, e1b).getByTestId("action-edit").count(), 0, "no edit on another's message");
  await shot(pageE, "10-lifecycle-direct");

  // --- a group room: a mention, with its badge and autocomplete ---------------
  await createGroup(pageE, "Trip planning", [frank.email, gina.email]);
  const boxG = pageE.getByTestId("composer");
  await boxG.pressSequentially("Hi @fr", { delay: 10 });
  await pageE.locator('[data-testid="mention-option"][data-username="frank"]').click();
  await waitComposer(pageE, "new", "Hi @frank "); // the name completed
  await boxG.pressSequentially("can you book the train?", { delay: 5 });
  const g1 = "Hi @frank can you book the train?";
  await boxG.press("Enter");
  await bubbles(pageE, g1).first().waitFor({ timeout: WAIT });
  // Frank has the direct chat open: the room shows the mention badge.
  const franksRoom = chatItem(pageF, "Trip planning");
  await franksRoom.getByTestId("mention-badge").waitFor({ timeout: WAIT });
  await chatItem(pageG, "Trip planning").getByTestId("unread").waitFor({ timeout: WAIT });
  assert.equal(
    await chatItem(pageG, "Trip planning").getByTestId("mention-badge").count(),
    0,
    "no mention badge for Gina",
  );
  await shot(pageF, "11-mention-badge");
  await franksRoom.click();
  await bubbles(pageF, g1)
    .locator('[data-testid="mention"][data-me="true"]')
    .getByText("@frank")
    .waitFor({ timeout: WAIT });
  await pageF.locator(`[data-testid="message"][data-mentions-me="true"]`).first().waitFor({ timeout: WAIT });
  await franksRoom.getByTestId("mention-badge").waitFor({ state: "detached", timeout: WAIT });

  // The owner may delete anyone's message in a group room; others may not.
  const g2 = "Wrong room, sorry!";
  await send(pageF, g2);
  await waitCount(pageE, g2, 1);
  await bubbles(pageF, g1).hover();
  assert.equal(
    await bubbles(pageF, g1).getByTestId("action-delete").count(),
    0,
    "a member cannot delete the owner's message",
  );
  const g2Seq = await seqOf(pageE, g2);
  await act(pageE, g2, "action-delete");
  await pageE.getByTestId("confirm-ok").click();
  await tombstone(pageF, g2Seq).waitFor({ timeout: WAIT });

  // --- the owner renames the room and removes a member -------------------------
  await pageE.getByRole("button", { name: "Group details" }).click();
  await pageE.getByTestId("rename-input").fill("Trip to Lisbon");
  await pageE.getByTestId("rename-save").click();
  await pageF.getByTestId("chat-title").getByText("Trip to Lisbon", { exact: true }).waitFor({ timeout: WAIT });
  await chatItem(pageG, "Trip to Lisbon").waitFor({ timeout: WAIT });
  await pageE.locator('[data-testid="member"][data-username="gina"]').getByTestId("member-remove").click();
  await pageE.getByTestId("confirm-ok").click();
  await pageE.locator('[data-testid="member"][data-username="gina"]').waitFor({ state: "detached", timeout: WAIT });
  await chatItem(pageG, "Trip to Lisbon").waitFor({ state: "detached", timeout: WAIT });
  await pageF.waitForFunction(
    () => !document.querySelector('[data-testid="chat-sub"]')?.textContent?.includes("gina"),
    null,
    {
      timeout: WAIT,
    },
  );
  await shot(pageE, "12-group-owner");
  await pageE.keyboard.press("Escape");
  await pageE.locator("dialog[open]").waitFor({ state: "detached", timeout: WAIT });
  // Frank is not the owner: no rename, no removing.
  await pageF.getByRole("button", { name: "Group details" }).click();
  await pageF.locator("dialog[open]").getByText("members").first().waitFor({ timeout: WAIT });
  assert.equal(await pageF.getByTestId("rename-input").count(), 0, "only the owner renames");
  assert.equal(await pageF.getByTestId("member-remove").count(), 0, "only the owner removes members");
  await pageF.keyboard.press("Escape");
  await pageF.locator("dialog[open]").waitFor({ state: "detached", timeout: WAIT });

  // --- changes made while Frank's stream is down are replayed when it is back --
  await chatItem(pageF, erin.username).click();
  await waitCount(pageF, f1, 1);
  await chatItem(pageE, frank.username).click();
  await waitCount(pageE, f1, 1);
  // Frank's stream cannot reconnect until the route is lifted.
  await ctxF.route("**/messaging.EventsService/**", (route) => route.abort());
  // Frank's blocked reconnects fail (and are logged) until he is back.
  await restartServer([pageE], null);
  await pageF.locator('[data-testid="app"]:not([data-conn="online"])').waitFor({ timeout: WAIT });
  // Meanwhile: Erin reacts again (reactions reach Frank by the change
  // stream only), and edits her reply target once more.
  await react(pageE, f1, "❤️");
  await waitChip(pageE, f1, "❤️", 1, true);
  const e1c = "Lunch at 1:30 pm tomorrow?";
  await act(pageE, e1b, "action-edit");
  await waitComposer(pageE, "edit", e1b);
  await boxE.fill(e1c);
  await boxE.press("Enter");
  await waitCount(pageE, e1c, 1);
  await ctxF.unroute("**/messaging.EventsService/**");
  await pageF.evaluate(() => window.dispatchEvent(new Event("online"))); // cut the backoff short
  await waitOnline(pageF, RECONNECT_WAIT);
  setPhase("after restart");
  await waitChip(pageF, f1, "❤️", 1, false);
  await waitChip(pageF, f1, "🎉", 1, true);
  await waitCount(pageF, e1c, 1);
  // The quote of the reply follows the edit.
  await bubbles(pageF, f1).getByTestId("message-quote").getByText(e1c).waitFor({ timeout: WAIT });

  // --- everything survives the restart: a reload rebuilds it from the server ---
  for (const page of [pageE, pageF]) {
    await page.reload();
    await waitOnline(page, WAIT);
    await chatItem(page, page === pageE ? frank.username : erin.username).click();
    await waitCount(page, e1c, 1);
    await bubbles(page, e1c).getByTestId("message-edited").waitFor({ timeout: WAIT });
    await bubbles(page, f1).getByTestId("message-quote").getByText(e1c).waitFor({ timeout: WAIT });
    await tombstone(page, e2Seq).waitFor({ timeout: WAIT });
    assert.equal(await countOf(page, e2), 0, "the deleted text stays gone");
    await waitChip(page, f1, "🎉", 1, page === pageF);
    await waitChip(page, f1, "❤️", 1, page === pageE);
    const shown = await page.$$eval('[data-testid="message"]', (els) =>
      els.map((e) =>
        e.getAttribute("data-deleted") ? "(deleted)" : e.querySelector('[data-testid="message-text"]')?.textContent,
      ),
    );
    assert.deepEqual(shown, [e1c, f1, "(deleted)"], "the direct chat after a reload, each message once");
    await chatItem(page, "Trip to Lisbon").click();
    await waitCount(page, g1, 1);
    await tombstone(page, g2Seq).waitFor({ timeout: WAIT });
  }
  await bubbles(pageF, g1).locator('[data-testid="mention"][data-me="true"]').waitFor({ timeout: WAIT });
  await shot(pageF, "13-after-reload");

  assertNoProblems(t, ["erin", "frank", "gina"]);
  await ctxE.close();
  await ctxF.close();
  await ctxG.close();
});
