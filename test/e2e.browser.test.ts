/// <reference lib="dom" />
/**
 * The example page in headless Chromium (Debian's `chromium`, driven by playwright-core): two
 * browser contexts log in as one user; the first sees both sessions and logs the other out,
 * and the second page is logged out live, without reloading. A screenshot of each page is
 * saved under test-artifacts/ (not committed).
 */
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { createExampleApp, type ExampleApp } from "../examples/app.js";
import { requireBinary } from "./harness/redis-server.ts";
import { closeClients, newRedis, testPrefix } from "./helpers.js";

const artifacts = join(__dirname, "..", "test-artifacts");
let browser: Browser;
let app: ExampleApp;
let server: Server;
let url: string;

beforeAll(async () => {
  const executablePath = process.env.CHROMIUM_PATH ?? (await requireBinary("chromium"));
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  app = createExampleApp(newRedis(), testPrefix(__filename));
  server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  mkdirSync(artifacts, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  server?.close();
  await app?.close();
  await closeClients();
});

async function logIn(page: Page, account: string) {
  await page.goto(url);
  await page.fill("#account", account);
  await page.fill("#password", "demo");
  await page.click("#login");
  await page.waitForFunction((who) => document.body.dataset.user === who, account);
  await page.waitForFunction(() => document.getElementById("stream")?.textContent === "open");
}

test("a second browser of the same user is logged out live when the first revokes it", async () => {
  const first = await (await browser.newContext({ userAgent: "first-browser" })).newPage();
  const second = await (await browser.newContext({ userAgent: "second-browser" })).newPage();
  await logIn(first, "alice");
  await logIn(second, "alice");
  // A mark on the second page: if it reloaded, the mark would be gone.
  await second.evaluate(() => {
    (window as unknown as { mark: number }).mark = 42;
  });

  await first.click("#refresh-sessions");
  await first.waitForFunction(() => document.querySelectorAll("#sessions-list li").length === 2);
  const items = await first.$$eval("#sessions-list li", (lis) =>
    lis.map((li) => ({ className: li.className, text: li.textContent ?? "" })),
  );
  expect(items.map((i) => i.className).sort()).toEqual(["current", "other"]);
  expect(items.find((i) => i.className === "other")!.text).toContain("second-browser");

  await first.click("#sessions-list li.other button.revoke");
  await second.waitForFunction(() => document.body.dataset.user === "");
  expect(await second.textContent("#whoami")).toContain("revoked from another device");
  expect(await second.evaluate(() => (window as unknown as { mark?: number }).mark)).toBe(42);
  // The server agrees: the second browser's cookie no longer has a user.
  const me = await second.evaluate(() => fetch("/api/me").then((r) => r.json()));
  expect(me).toEqual({ user: null, session: null });

  await first.click("#refresh-sessions");
  await first.waitForFunction(() => document.querySelectorAll("#sessions-list li").length === 1);
  await first.screenshot({ path: join(artifacts, "example-first-browser.png"), fullPage: true });
  await second.screenshot({ path: join(artifacts, "example-second-browser.png"), fullPage: true });
}, 60_000);
