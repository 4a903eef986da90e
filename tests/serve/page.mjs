// page.mjs - the chat page of `tunic serve` (GET /) in headless Debian chromium driven by
// puppeteer-core (no browser download), run by tests/serve/run_node.py against a live server.
// Checks: the page loads without console errors, the model list holds the base, the adapter and
// "auto"; typing a prompt and pressing Enter streams an answer into the page (several DOM updates
// seen before it is done) that equals the server's non-streamed greedy answer for the same
// conversation; choosing "auto" with a math prompt shows the route. Screenshots go to TN_OUT.
// Not for: the API's details (client.mjs, limits.py).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.TN_NPM, "x.js"));
const puppeteer = require("puppeteer-core");
const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));
if (!chromium) { console.log("skip: no /usr/bin/chromium"); process.exit(77); }
const url = process.env.TN_SERVE_URL, out = process.env.TN_OUT;
let failed = 0;
function check(ok, what) {
  console.log((ok ? "ok    " : "FAIL  ") + what);
  if (!ok) failed++;
}

const browser = await puppeteer.launch({ executablePath: chromium, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + path.join(out, "profile")] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 700 });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url + "/", { waitUntil: "networkidle0" });
  await page.waitForFunction(() => document.querySelectorAll("#model option").length >= 3, { timeout: 20000 });
  const opts = await page.$$eval("#model option", (o) => o.map((x) => x.value));
  check(opts.includes("base") && opts.includes("lora") && opts.includes("auto"), `model list: ${opts.join(", ")}`);
  await page.select("#model", "base");
  await page.$eval("#temp", (e) => { e.value = "0"; });
  await page.$eval("#maxtok", (e) => { e.value = "24"; });
  // count the answer's text changes while it streams
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => { window.__updates++; }).observe(document.getElementById("log"), { childList: true, subtree: true, characterData: true });
  });
  await page.type("#prompt", "Tell me about the sea");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".assistant[data-state=done], .error", { timeout: 60000 });
  const answer = await page.$eval(".assistant", (e) => e.firstChild ? e.firstChild.textContent : "");
  const updates = await page.evaluate(() => window.__updates);
  await page.screenshot({ path: path.join(out, "chat.png") });
  const r = await fetch(url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: "base", messages: [{ role: "user", content: "Tell me about the sea" }], max_tokens: 24, temperature: 0 }) });
  const j = await r.json();
  check(answer.length > 0 && answer === j.choices[0].message.content, `the streamed answer is shown and equals the API's (${answer.length} chars)`);
  check(updates >= 4, `it arrived in pieces (${updates} DOM updates)`);
  const meta = await page.$eval(".assistant .meta", (e) => e.textContent);
  check(meta.includes("base"), `under it: ${meta}`);
  // a second turn through "auto": the route is shown
  await page.select("#model", "auto");
  await page.type("#prompt", "what is the sum of 2+3?");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll(".assistant[data-state=done]").length === 2 || document.querySelector(".error"), { timeout: 60000 });
  const meta2 = await page.$$eval(".assistant .meta", (e) => e.map((x) => x.textContent));
  check(meta2.length === 2 && meta2[1].includes("route math"), `auto: ${meta2[1]}`);
  await page.screenshot({ path: path.join(out, "chat-auto.png"), fullPage: true });
  check(errors.length === 0, `no console errors (${errors.join(" | ")})`);
  check(fs.statSync(path.join(out, "chat.png")).size > 1000, `screenshot ${path.join(out, "chat.png")}`);
} finally {
  await browser.close();
}
console.log(failed ? `\n${failed} check(s) failed` : "\nall checks passed");
process.exit(failed ? 1 : 0);
