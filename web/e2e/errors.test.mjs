// End-to-end: the server's standard error details (google.rpc.BadRequest)
// put its validation errors next to the input they are about
// (harness: ./harness.mjs).
//
//   cargo build --release --bin tidings && node --test web/e2e/errors.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";
import { assertNoProblems, base, browser, register, shot, useHarness, WAIT, watch } from "./harness.mjs";

useHarness();

test("a sign-up the server refuses shows its reason next to the field", { timeout: 120_000 }, async (t) => {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await ctx.newPage();
  watch(page, "eve");

  await page.goto(base);
  await page.getByRole("button", { name: "Create account", exact: true }).first().click();
  // Passes the page's own check (something@something) but not the
  // server's (a dotted domain): only the server's BadRequest can place it.
  await page.getByLabel("Email").fill("eve@localhost");
  await page.getByLabel("Username").fill("eve");
  await page.getByLabel("Password").fill("eve-password-1");
  await page.locator('form button[type="submit"]').click();

  const emailError = page.locator("#email-error");
  await emailError.waitFor({ timeout: WAIT });
  assert.equal(await emailError.textContent(), "Must be a valid email address.");
  assert.equal(await page.getByLabel("Email").getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByLabel("Email").getAttribute("aria-describedby"), "email-error");
  assert.equal(await page.locator("#username-error").count(), 0, "no error next to the username");
  assert.equal(await page.locator("#password-error").count(), 0, "no error next to the password");
  assert.equal(await page.getByTestId("auth-error").textContent(), "", "nothing under the form");
  await shot(page, "errors-01-signup-field");

  // Corrected, the same form goes through.
  await register(page, { username: "eve", email: "eve@example.com", password: "eve-password-1" });

  // A group with an address nobody has: the error is the member list's.
  await page.getByRole("button", { name: "New chat" }).first().click();
  await page.getByRole("button", { name: "Group", exact: true }).click();
  await page.getByLabel("Group name").fill("Nobody here");
  await page.getByLabel("Members’ emails").fill("nobody@example.com");
  await page.getByRole("button", { name: "Create group" }).click();
  const membersError = page.getByTestId("group-members-error");
  await membersError.waitFor({ timeout: WAIT });
  // The server names the entry (member_emails[0]), so the address is named.
  assert.equal(await membersError.textContent(), "“nobody@example.com”: No one with this address has an account here.");
  assert.equal(await page.getByLabel("Members’ emails").getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByTestId("new-chat-error").textContent(), "");
  await shot(page, "errors-02-members-field");

  assertNoProblems(t, ["eve"]);
  await ctx.close();
});
