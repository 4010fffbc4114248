// End-to-end: blocking (harness: ./harness.mjs). Alice blocks Bob from the
// member list of a room the three of them share: Bob's next message there
// is a collapsed "Message from someone you blocked" line on Alice's screen
// and a normal message on Carol's; Bob cannot send in his direct chat with
// Alice nor add her to a room of his; Alice's direct chat with Bob shows
// "You blocked bob — Unblock" instead of the composer, and her blocked list
// has him. Unblocking (from that banner) brings his message back.
//
//   cargo build --release --bin tidings && node --test web/e2e/blocking.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  assertNoProblems,
  browser,
  bubbles,
  chatItem,
  createGroup,
  openDirect,
  register,
  send,
  shot,
  useHarness,
  WAIT,
  watch,
} from "./harness.mjs";

useHarness();

test("Alice blocks Bob in a shared room, then unblocks him", { timeout: 240_000 }, async (t) => {
  const alice = { username: "alice", email: "alice@example.com", password: "alice-password-1" };
  const bob = { username: "bob", email: "bob@example.com", password: "bob-password-1" };
  const carol = { username: "carol", email: "carol@example.com", password: "carol-password-1" };
  const pages = {};
  for (const who of [alice, bob, carol]) {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await ctx.newPage();
    watch(page, who.username);
    await register(page, who);
    pages[who.username] = page;
  }
  const { alice: pageA, bob: pageB, carol: pageC } = pages;

  // A direct chat of Alice and Bob, and a room of the three.
  await openDirect(pageA, bob.email, bob.username);
  await send(pageA, "hi bob");
  await createGroup(pageA, "Trio", [bob.email, carol.email]);
  await send(pageA, "welcome both");
  for (const page of [pageB, pageC]) {
    await chatItem(page, "Trio").click();
    await bubbles(page, "welcome both").first().waitFor({ timeout: WAIT });
  }

  // --- Alice blocks Bob from the room's member list -------------------------
  await pageA.getByRole("button", { name: "Group details" }).click();
  await pageA.locator('[data-testid="member"][data-username="bob"] [data-testid="member-block"]').click();
  await pageA.getByTestId("confirm-ok").click();
  await pageA
    .locator('[data-testid="member"][data-username="bob"] [data-testid="member-block"][data-blocked="true"]')
    .waitFor({ timeout: WAIT });
  await pageA.getByRole("button", { name: "Close" }).click();

  // Bob's next message in the room: hidden for Alice, plain for Carol.
  await send(pageB, "can anyone read this");
  await bubbles(pageC, "can anyone read this").first().waitFor({ timeout: WAIT });
  const hidden = pageA.locator('[data-testid="message"][data-hidden="true"]');
  await hidden.first().waitFor({ timeout: WAIT });
  assert.equal(await hidden.count(), 1);
  assert.match(await hidden.getByTestId("message-hidden").textContent(), /^Message from someone you blocked/);
  assert.equal(await bubbles(pageA, "can anyone read this").count(), 0, "no content on Alice's screen");
  assert.equal(await hidden.getByTestId("message-actions").count(), 0, "no actions on a hidden line");
  await shot(pageA, "blocking-01-hidden-for-alice");
  await shot(pageC, "blocking-02-plain-for-carol");

  // Bob cannot send in the direct chat: his message fails, with the reason.
  await chatItem(pageB, alice.username).click();
  await bubbles(pageB, "hi bob").first().waitFor({ timeout: WAIT });
  await send(pageB, "please unblock me");
  const failed = pageB.locator('[data-testid="message"][data-pending="true"] .failed-line');
  await failed.waitFor({ timeout: WAIT });
  assert.match(await failed.textContent(), /^Not sent: /);
  await shot(pageB, "blocking-03-bob-cannot-send");
  // Nor add Alice to a room of his: the error is the member list's.
  await pageB.getByRole("button", { name: "New chat" }).first().click();
  await pageB.getByRole("button", { name: "Group", exact: true }).click();
  await pageB.getByLabel("Group name").fill("Bob's room");
  await pageB.getByLabel("Members’ emails").fill(alice.email);
  await pageB.getByRole("button", { name: "Create group" }).click();
  const membersError = pageB.getByTestId("group-members-error");
  await membersError.waitFor({ timeout: WAIT });
  t.diagnostic(`Bob adding Alice: ${await membersError.textContent()}`);
  await pageB.getByRole("button", { name: "Cancel" }).click();

  // Alice's direct chat with Bob: no composer, an Unblock instead.
  await chatItem(pageA, bob.username).click();
  await pageA.getByTestId("blocked-banner").waitFor({ timeout: WAIT });
  assert.equal(await pageA.getByTestId("composer").count(), 0);
  assert.match(await pageA.getByTestId("blocked-banner").textContent(), /You blocked bob\./);
  // The header menu offers the unblock too.
  await pageA.getByTestId("chat-menu").click();
  assert.equal(await pageA.getByTestId("block-toggle").textContent(), "Unblock bob");
  await pageA.keyboard.press("Escape");
  // Her blocked list has him.
  await pageA.getByTestId("open-blocked").click();
  await pageA.locator('[data-testid="blocked-user"][data-username="bob"]').waitFor({ timeout: WAIT });
  await shot(pageA, "blocking-04-blocked-list");
  await pageA.getByRole("button", { name: "Close" }).click();
  await shot(pageA, "blocking-05-banner");

  // --- Unblock (from the banner): the composer and Bob's message are back ----
  await pageA.getByTestId("blocked-banner-unblock").click();
  await pageA.getByTestId("composer").waitFor({ timeout: WAIT });
  await chatItem(pageA, "Trio").click();
  await bubbles(pageA, "can anyone read this").first().waitFor({ timeout: WAIT });
  assert.equal(await pageA.locator('[data-testid="message"][data-hidden="true"]').count(), 0);
  // And Bob can write to her again.
  await chatItem(pageB, alice.username).click();
  await send(pageB, "thanks alice");
  await chatItem(pageA, bob.username).click();
  await bubbles(pageA, "thanks alice").first().waitFor({ timeout: WAIT });
  await shot(pageA, "blocking-06-unblocked");

  assertNoProblems(t, ["alice", "bob", "carol"]);
});
