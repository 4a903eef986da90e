// ui.mjs - the store page (/ui/) in headless Debian Chromium driven by puppeteer-core (issue 19):
// each page loads without console errors or failed requests, the run page's loss chart shows
// exactly the points of the run's metrics.jsonl, the dataset page its manifest, the traces page
// its filter, the run's before/after report is shown; a screenshot of each page into OUTDIR.
// Usage: node ui.mjs BASE_URL EXPECT.json OUTDIR  (EXPECT: {run_id, dataset, loss: [[step, v]...]})
import { createRequire } from 'module';
import fs from 'fs';
import os from 'os';
import path from 'path';

const [base, expectPath, outDir] = process.argv.slice(2);
const require = createRequire(path.join(process.env.TN_SRC, '.cache/npm/node_modules/'));
let puppeteer;
try { puppeteer = require('puppeteer-core'); } catch (e) {
  console.log('SKIP: puppeteer-core is not installed (scripts/test-setup.d/serve.sh)');
  process.exit(77);
}
const want = JSON.parse(fs.readFileSync(expectPath, 'utf8'));
fs.mkdirSync(outDir, { recursive: true });
let failures = 0;
const check = (cond, what) => { console.log((cond ? 'ok   ' : 'FAIL ') + what); if (!cond) failures++; };

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tn-chromium-'));
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--user-data-dir=' + profile],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  let errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('requestfailed', (r) => errors.push('requestfailed: ' + r.url()));
  page.on('response', (r) => { if (r.status() >= 400) errors.push('HTTP ' + r.status() + ' ' + r.url()); });

  async function visit(hash, shot) {
    errors = [];
    await page.evaluate(() => { if (document.body) delete document.body.dataset.loaded; }).catch(() => {});
    await page.goto(base + '/ui/#' + hash, { waitUntil: 'networkidle0' });
    await page.waitForFunction((h) => [h, 'error'].includes(document.body.dataset.loaded), { timeout: 15000 }, hash);
    const loaded = await page.evaluate(() => document.body.dataset.loaded);
    await page.screenshot({ path: path.join(outDir, shot + '.png'), fullPage: true });
    check(loaded !== 'error', `#${hash}: loaded (${loaded})`);
    check(errors.length === 0, `#${hash}: no console errors or failed requests ${errors.length ? JSON.stringify(errors) : ''}`);
  }

  await visit('runs', 'runs');
  check(await page.$$eval('#runs a', (a) => a.map((x) => x.textContent)).then((t) => t.includes(want.run_id)), 'runs: the run is listed');

  await visit('run/' + want.run_id, 'run');
  const lossLine = await page.$eval('svg[data-group="loss"] polyline[data-key="loss"]', (p) => +p.dataset.points).catch(() => -1);
  check(lossLine === want.loss.length, `run: the loss curve has ${lossLine} points, metrics.jsonl has ${want.loss.length}`);
  const lossPts = await page.$$eval('svg[data-group="loss"] circle.pt[data-key="loss"]', (cs) => cs.map((c) => [+c.dataset.step, +c.dataset.value]));
  const same = lossPts.length === want.loss.length && lossPts.length > 0 && lossPts.every((p, i) => p[0] === want.loss[i][0] &&
    Math.abs(p[1] - want.loss[i][1]) <= 1e-12 * Math.abs(want.loss[i][1]));
  if (!same) console.log(JSON.stringify(lossPts.slice(0, 3)), JSON.stringify(want.loss.slice(0, 3)));
  check(same, 'run: the loss points are the steps and values of metrics.jsonl (relative 1e-12)');
  // the points are placed in order along x (steps increase left to right)
  const xs = await page.$$eval('svg[data-group="loss"] circle.pt[data-key="loss"]', (cs) => cs.map((c) => +c.getAttribute('cx')));
  check(xs.length === want.loss.length && xs.every((x, i) => i === 0 || x > xs[i - 1]), 'run: loss points increase along x');
  const report = await page.$eval('#report-md', (e) => e.textContent).catch(() => '');
  check(report.includes('before') && report.length > 100, `run: the before/after report is shown (${report.length} chars)`);

  await visit('datasets', 'datasets');
  check(await page.$$eval('#datasets a', (a) => a.map((x) => x.textContent)).then((t) => t.includes(want.dataset)), 'datasets: listed');
  await visit('dataset/' + want.dataset, 'dataset');
  const man = JSON.parse(await page.$eval('#manifest', (e) => e.textContent));
  check(man.key === want.dataset && man.build_id === want.build_id, 'dataset: the manifest with its build id');
  check((await page.$eval('#preview', (e) => e.textContent)).includes('high_card_duel'), 'dataset: the preview shows traces');

  await visit('traces', 'traces');
  const rows0 = await page.$$eval('#traces tr', (r) => r.length - 1);
  check(rows0 === 20, `traces: first page of 20 (${rows0})`);
  await visit('traces?source=nobody', 'traces_filtered_empty');
  check(await page.$$eval('#traces tr', (r) => r.length - 1) === 0, 'traces: a filter that matches nothing shows no rows');
  // the filter form: type a source and a limit, submit
  await visit('traces', 'traces2');
  await page.$eval('input[name=source]', (e) => { e.value = 'ungar'; });
  await page.$eval('input[name=limit]', (e) => { e.value = '5'; });
  await Promise.all([page.click('#trace-filters button'), page.waitForFunction(() => location.hash.includes('limit=5'))]);
  await page.waitForFunction(() => document.querySelectorAll('#traces tr').length === 6, { timeout: 10000 }).catch(() => {});
  const rows = await page.$$eval('#traces tr td:nth-child(2)', (t) => t.map((x) => x.textContent));
  check(rows.length === 5 && rows.every((s) => s === 'ungar'), `traces: the form filters (${rows.length} ungar rows)`);
  check(await page.$('#next-page') !== null, 'traces: a next page link');
  await page.screenshot({ path: path.join(outDir, 'traces_filtered.png'), fullPage: true });
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(failures ? `${failures} checks failed` : 'all page checks passed');
process.exit(failures ? 1 : 0);
