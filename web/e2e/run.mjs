// End-to-end check of the web UI in Debian's Chromium, driven by playwright-core (no browser download).
// Usage: node e2e/run.mjs --url http://127.0.0.1:PORT/ [--screenshots DIR] [--expect-top ,] [--prompt TEXT]
//        [--timing-runs N] [--views next,ab,inside,...]
// Prints one line per check and, last, a JSON line "RESULT {...}"; exits 1 on the first failed check.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const url = args.url ?? 'http://127.0.0.1:8080/';
const origin = new URL(url).origin;
const shots = args.screenshots;
const prompt = args.prompt ?? 'Once upon a time';
const expectTop = args['expect-top'];
const timingRuns = Number(args['timing-runs'] ?? 5);
const views = (args.views ?? 'next,ab,inside,drift,steer,routing,map').split(',');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

const result = { url, requests: [], consoleErrors: [], enterToTableMs: [], checks: [] };
function check(ok, what) {
  result.checks.push(what);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 480 }, deviceScaleFactor: 1 });
  page.on('request', r => result.requests.push(r.url()));
  page.on('console', m => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  page.on('pageerror', e => result.consoleErrors.push(String(e)));
  if (shots) mkdirSync(shots, { recursive: true });
  const shot = async name => { if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true }); };

  await page.goto(views.includes('next') ? url : `${url}#${views[0]}`);
  if (views.includes('next')) {
  const table = page.getByRole('table', { name: 'Next-token distribution' });
  const box = page.getByRole('textbox', { name: 'Prompt' });
  const firstToken = () => table.locator('tbody tr').first().locator('td.tok').textContent();
  const topProb = () => table.locator('tbody tr').first().locator('td.prob').textContent();
  await table.locator('tbody tr').first().waitFor();
  check(true, 'the landing view shows the next-token table');

  // Enter runs the prompt: a different prompt first, then the one under test, each timed Enter → table.
  const timing = page.locator('.timing');
  async function enter(text) {
    // Wait on the run counter, not the time: two runs may take the same tenth of a millisecond.
    const before = await timing.getAttribute('data-run').catch(() => null);
    await box.fill(text);
    await box.press('Enter');
    await page.waitForFunction(b => { const t = document.querySelector('.timing'); return t && t.getAttribute('data-run') !== b; }, before);
    return Number(await timing.getAttribute('data-ms'));
  }
  await enter('The');
  const chipsAfterThe = await page.getByRole('list', { name: 'Tokens' }).locator('li').count();
  for (let i = 0; i < timingRuns; i++) result.enterToTableMs.push(await enter(i % 2 ? 'The' : prompt));
  if (timingRuns % 2 === 0) await enter(prompt);
  const chips = await page.getByRole('list', { name: 'Tokens' }).locator('li').count();
  check(chips > chipsAfterThe || prompt.split(' ').length > 1, `Enter ran the prompt (${chips} token chips)`);
  const top = (await firstToken())?.trim();
  result.topToken = top;
  if (expectTop != null) check(top === expectTop, `top token for "${prompt}" is "${top}" (expected "${expectTop}")`);
  const numbers = await table.locator('tbody tr').count();
  check(numbers >= 5, `the table lists ${numbers} rows`);

  // Temperature reshapes the shown distribution without re-running the model.
  const p1 = await topProb();
  await page.getByRole('slider', { name: 'Temperature' }).fill('1.6');
  const p2 = await topProb();
  check(p1 !== p2, `moving Temperature changes the top probability (${p1} → ${p2})`);
  await page.getByRole('slider', { name: 'Top-k' }).fill('3');
  const greyed = await table.locator('tbody tr.removed').count();
  check(greyed > 0, `Top-k 3 greys ${greyed} rows`);
  await page.getByRole('slider', { name: 'Top-k' }).fill('40');
  await page.getByRole('slider', { name: 'Temperature' }).fill('0.8');
  for (const name of ['Top-p', 'Min-p']) check(await page.getByRole('slider', { name }).count() === 1, `slider ${name} is there`);

  // Regenerate ×5 shows five runs side by side.
  await page.getByRole('button', { name: 'Regenerate ×5' }).click();
  await page.locator('.runs .run').nth(4).waitFor();
  check(await page.locator('.runs .run').count() === 5, 'Regenerate ×5 shows five runs');

  // Roll appends one token, seed shown.
  const before = await page.getByRole('list', { name: 'Tokens' }).locator('li').count();
  await page.getByRole('button', { name: 'Roll' }).click();
  await page.getByLabel('Last roll').waitFor();
  await page.waitForFunction(n => document.querySelectorAll('.chips li').length > n, before);
  check(/seed \d+/.test(await page.getByLabel('Last roll').textContent()), 'Roll draws with a visible seed and appends the token');
  await shot('next-token');

  // What is seen can be reproduced: the CLI command and the JSON behind the view.
  check(/^nexttoken next .*--temperature 0\.8/.test(await page.getByLabel('CLI command').textContent()), 'the view shows its CLI command');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
  const saved = JSON.parse(readFileSync(await download.path(), 'utf8'));
  check(Array.isArray(saved.report?.top) && saved.report.top.length > 0, `Download JSON saves the report (${download.suggestedFilename()})`);
  }

  const tab = name => page.getByRole('tab', { name });
  if (views.includes('ab')) {
    await tab('System prompt A/B').click();
    const t = page.getByRole('table', { name: 'With and without' });
    await t.locator('tbody tr').first().waitFor();
    const kl = await page.getByLabel('Divergence').textContent();
    check(/KL\(A‖B\) \d+\.\d+/.test(kl), `A/B shows KL and ${await t.locator('tbody tr').count()} rows`);
    await shot('system-prompt-ab');
  }
  if (views.includes('inside')) {
    await tab('Inside the model').click();
    await page.getByRole('table', { name: 'Logit lens' }).locator('tbody tr').first().waitFor();
    await page.getByRole('table', { name: 'Attention pattern' }).locator('tbody tr').first().waitFor();
    check(true, 'Inside the model shows the logit lens and an attention pattern');
    const norms = page.getByRole('table', { name: 'Residual norms' });
    await norms.locator('tbody tr').first().waitFor();
    const normCells = (await norms.locator('tbody td').allTextContents()).map(Number);
    check(normCells.length > 0 && normCells.every(v => Number.isFinite(v) && v > 0),
      `Inside the model shows residual norms (${await norms.locator('tbody tr').count()} layers, ${normCells.length} cells, all finite and positive)`);
    await shot('inside-the-model');
  }
  for (const [hash, name, file] of [['drift', 'Drift', 'drift'], ['steer', 'Steering lab', 'steering-lab'], ['routing', 'Routing', 'routing'], ['map', 'Activation Space Navigator', 'activation-space']]) {
    if (!views.includes(hash)) continue;
    await tab(name).click();
    await page.locator('[data-ready]').waitFor({ timeout: 60000 });
    check(true, `${name} loads and shows real numbers`);
    await shot(file);
  }

  check(result.consoleErrors.length === 0, `no console errors${result.consoleErrors.length ? ': ' + result.consoleErrors.join(' | ') : ''}`);
  const away = result.requests.filter(r => !r.startsWith(origin + '/') && !r.startsWith('blob:') && !r.startsWith('data:'));
  check(away.length === 0, `all ${result.requests.length} requests stay on ${origin}${away.length ? ': ' + away.join(' ') : ''}`);
} catch (e) {
  failed = true;
  console.log(String(e.stack ?? e));
} finally {
  await browser.close();
}
const sorted = [...result.enterToTableMs].sort((a, b) => a - b);
result.enterToTableMedianMs = sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
console.log('RESULT ' + JSON.stringify({ ...result, requests: result.requests.length, requestUrls: [...new Set(result.requests.map(r => new URL(r).pathname))] }));
process.exit(failed ? 1 : 0);
