// The dashboard end to end in headless Chromium: a real `tandem serve` (the binary named by
// TANDEM_BIN) on a free port and a temporary data directory, a participant service in this
// process whose "flaky" branch answers 500 until the test flips it, and the app driven like
// an operator would: list, filters, paging, one transaction's timeline and attempts, the
// parked list, retry now (then the transaction succeeds), force stop (the reason is
// recorded and shown as text, not markup), and the login page's token handling.
// Screenshots of each step go to target/browser-artifacts/ (or $ARTIFACTS_DIR); the
// overview is copied to docs/dashboard.png when UPDATE_SCREENSHOT=1.
//
// Guards against: a dashboard that renders but cannot act, user data interpreted as HTML,
// a script blocked by the server's CSP (any console error fails the test), a UI whose
// state disagrees with the API's, screenshots taken before the page's data arrived (every
// shot first waits for the route, the live counters and the chart), and a control a screen
// reader cannot name (each page state's accessibility tree, as Chromium computes it, is
// checked: every button, link, field and select has an accessible name).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = process.env.TANDEM_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(ROOT, 'target', 'browser-artifacts');
const STEP_MS = 10_000;

let server; // { proc, url, dir, log }
let participant; // { url, healthy, calls, close }
let browser;
let page;
const consoleErrors = [];
let load; // background traffic, so the live counters and the chart move

// ---------------------------------------------------------------- helpers

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function api(method, p, body) {
  const res = await fetch(server.url + p, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  return { status: res.status, body: json };
}

async function until(what, fn, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Waits until page `p` shows its data: the route in the address bar rendered, the node name,
 * every live counter and the throughput chart filled in (they start as "–").
 */
async function loaded(p = page) {
  await p.waitForFunction(() => {
    const v = document.getElementById('view');
    if (document.getElementById('login')) return true; // the login page has no data to wait for
    if (v.dataset.route === undefined || v.dataset.route !== (location.hash || '#/')) return false;
    if (!document.getElementById('node').textContent) return false;
    const ids = ['stat-active', 'stat-parked', 'stat-succeeded', 'stat-failed', 'stat-rate'];
    if (ids.some((id) => document.getElementById(id).textContent.trim() === '–')) return false;
    return Number(document.getElementById('throughput').dataset.points || 0) >= 2;
  });
}

/** Roles a user operates; each needs an accessible name. */
const CONTROL_ROLES = new Set(['button', 'link', 'textbox', 'searchbox', 'combobox', 'listbox',
  'checkbox', 'radio', 'spinbutton', 'slider', 'switch', 'tab', 'menuitem', 'textarea',
  // Chromium's own roles for date and time fields.
  'DateTime', 'Date', 'InputTime']);

/**
 * Every control in `p`'s accessibility tree (Chromium's own computation, through the DevTools
 * protocol) has a non-empty accessible name. `where` names the page state in the failure.
 */
async function assertNamedControls(p, where) {
  const cdp = await p.context().newCDPSession(p);
  try {
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const unnamed = nodes
      .filter((n) => !n.ignored && CONTROL_ROLES.has(n.role?.value))
      .filter((n) => !(n.name?.value || '').trim())
      .map((n) => `${n.role.value} (backend node ${n.backendDOMNodeId})`);
    const controls = nodes.filter((n) => !n.ignored && CONTROL_ROLES.has(n.role?.value)).length;
    assert.ok(controls > 0, `${where}: no controls found: is the tree being read?`);
    if (unnamed.length) {
      // Say which elements they are.
      const described = [];
      for (const n of nodes.filter((x) => !x.ignored && CONTROL_ROLES.has(x.role?.value) && !(x.name?.value || '').trim())) {
        const { object } = await cdp.send('DOM.resolveNode', { backendNodeId: n.backendDOMNodeId });
        const { result } = await cdp.send('Runtime.callFunctionOn', {
          objectId: object.objectId, returnByValue: true,
          functionDeclaration: 'function () { return this.outerHTML ? this.outerHTML.slice(0, 160) : String(this.nodeName); }',
        });
        described.push(`${n.role.value}: ${result.value}`);
      }
      assert.fail(`${where}: controls without an accessible name:\n${described.join('\n')}`);
    }
  } finally {
    await cdp.detach();
  }
}

/** A screenshot of page `p` once its data has loaded, after checking its controls' names. */
async function shot(name, fullPage = true, p = page) {
  await loaded(p);
  await assertNamedControls(p, name);
  await p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage });
}

/** A participant: /ok succeeds, /fail is a business failure, /flaky is 500 until healed, /down always 500. */
function startParticipant() {
  return new Promise((resolve) => {
    const state = { healthy: false, calls: [] };
    const srv = http.createServer((req, res) => {
      const u = new URL(req.url, 'http://x');
      state.calls.push(`${u.pathname} ${u.searchParams.get('op')} ${u.searchParams.get('gid')}`);
      req.resume();
      const reply = (code, body) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(body);
      };
      if (u.pathname.startsWith('/fail')) reply(409, '{"dtm_result":"FAILURE"}');
      else if (u.pathname.startsWith('/down') || (u.pathname.startsWith('/flaky') && !state.healthy)) {
        res.writeHead(500, { 'content-type': 'text/html' });
        res.end('<b>ledger unavailable</b>');
      } else reply(200, '{"dtm_result":"SUCCESS"}');
    });
    srv.keepAliveTimeout = 1000;
    srv.listen(0, '127.0.0.1', () => {
      state.url = `http://127.0.0.1:${srv.address().port}`;
      state.close = () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); });
      resolve(state);
    });
  });
}

/** `tandem serve` on port 0; its address is read from its start-up line `tandem serving ... listen=...`. */
function startServer(extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-browser-'));
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--grpc-listen', '', '--data-dir', dir], {
    env: { ...process.env, NO_COLOR: '1', TANDEM_LOG: 'info', TANDEM_NODE_NAME: 'demo', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const s = { proc, dir, log: '' };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tandem serve did not start:\n${s.log}`)), 15_000);
    const onData = (d) => {
      s.log += d.toString();
      // eslint-disable-next-line no-control-regex
      const m = s.log.replace(/\x1b\[[0-9;]*m/g, '').match(/tandem serving.* listen=(\S+)/);
      if (m && !s.url) {
        s.url = `http://${m[1]}`;
        clearTimeout(timer);
        resolve(s);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => {
      if (!s.url) { clearTimeout(timer); reject(new Error(`tandem serve exited ${code}:\n${s.log}`)); }
    });
  });
}

function saga(gid, actions, options) {
  return {
    gid,
    wait_result: true,
    options,
    steps: actions.map((a, i) => ({
      action: a ? `${participant.url}/${a}` : '',
      compensate: a ? `${participant.url}/undo` : '',
      payload: { step: i, amount: 10 * (i + 1) },
    })),
  };
}

/** Traffic in the background: empty-URL sagas (no calls), 0-12 a second, one in nine failing. */
function startLoad() {
  let stop = false;
  let n = 0;
  const done = (async () => {
    while (!stop) {
      const t = Date.now() / 1000;
      const burst = Math.max(0, Math.round(1.2 + 1.2 * Math.sin(t / 2.5) + Math.random()));
      await Promise.all(Array.from({ length: burst }, () => {
        n += 1;
        const fail = n % 9 === 0;
        const name = ['order', 'payment', 'order', 'shipment', 'order', 'refund'][n % 6];
        return api('POST', '/v1/sagas', saga(`${name}-${10400 + n}`, fail ? ['', 'fail'] : ['', ''])).catch(() => {});
      }));
      await sleep(250);
    }
  })();
  return { stop: async () => { stop = true; await done; } };
}

/** Waits until the app has rendered the route in the address bar. */
async function settled() {
  await page.waitForFunction(() => {
    const v = document.getElementById('view');
    return v.dataset.route !== undefined && v.dataset.route === (location.hash || '#/');
  });
}

async function click(selector) {
  await page.click(selector);
  await settled();
}

async function rows(table) {
  return page.$$eval(`#${table} tbody tr`, (trs) => trs.map((tr) => tr.dataset.gid));
}

async function confirmDialog(reason) {
  const dlg = page.locator('#confirm');
  await dlg.waitFor({ state: 'visible' });
  if (reason !== undefined) await page.fill('#confirm-reason', reason);
  await page.click('#confirm-ok');
}

// ---------------------------------------------------------------- set-up

before(async () => {
  assert.ok(BIN, 'TANDEM_BIN must name the tandem binary (scripts/browser-tests builds it)');
  assert.ok(fs.existsSync(BIN), `no tandem binary at ${BIN}`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  participant = await startParticipant();
  server = await startServer();

  const created = [];
  for (let i = 1; i <= 3; i += 1) created.push(api('POST', '/v1/sagas', saga(`transfer-ok-${i}`, ['ok', 'ok'])));
  for (let i = 1; i <= 2; i += 1) created.push(api('POST', '/v1/sagas', saga(`transfer-fail-${i}`, ['ok', 'fail'])));
  created.push(api('POST', '/v1/2pc', {
    gid: 'invoice-2pc-1',
    wait_result: true,
    participants: [1, 2].map((i) => ({
      prepare: `${participant.url}/ok`, commit: `${participant.url}/ok`, rollback: `${participant.url}/undo`, payload: { line: i },
    })),
  }));
  // Parked: the second step keeps answering 500; past two calls an operator must decide.
  const parkOpts = { retry_limit: 2, retry_interval_ms: 50 };
  created.push(api('POST', '/v1/sagas', saga('payout-park-retry', ['ok', 'flaky'], parkOpts)));
  created.push(api('POST', '/v1/sagas', saga('payout-park-stop', ['ok', 'flaky'], parkOpts)));
  const answers = await Promise.all(created);
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
  const by = Object.fromEntries(answers.map((a) => [a.body.gid, a.body]));
  assert.equal(by['transfer-ok-1'].status, 'succeed');
  assert.equal(by['transfer-fail-1'].status, 'failed');
  assert.equal(by['invoice-2pc-1'].status, 'succeed');
  assert.ok(by['payout-park-retry'].parked, JSON.stringify(by['payout-park-retry']));
  assert.ok(by['payout-park-stop'].parked, JSON.stringify(by['payout-park-stop']));

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'UTC', locale: 'en-US' });
  page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('dialog', (d) => { consoleErrors.push(`unexpected browser dialog: ${d.message()}`); d.dismiss(); });
  load = startLoad();
});

after(async () => {
  if (load) await load.stop();
  if (browser) await browser.close();
  if (server) {
    server.proc.kill('SIGTERM');
    await new Promise((r) => { if (server.proc.exitCode !== null) r(); else server.proc.on('exit', r); });
    fs.writeFileSync(path.join(ARTIFACTS, 'server.log'), server.log);
    fs.rmSync(server.dir, { recursive: true, force: true });
  }
  if (participant) await participant.close();
});

// ---------------------------------------------------------------- the tests (in order)

// Each step builds on the one before: after a failure the rest are skipped, not piled on.
let broken = false;
function step(name, fn) {
  test(name, async (t) => {
    if (broken) { t.skip('an earlier step failed'); return; }
    try { await fn(); } catch (e) {
      broken = true;
      const file = path.join(ARTIFACTS, `failed-${name.replace(/\W+/g, '-')}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw e;
    }
  });
}

step('the list shows the transactions and the live counters', async () => {
  await page.goto(server.url + '/');
  await page.waitForSelector('#tx-table');
  for (const gid of ['transfer-ok-1', 'transfer-fail-2', 'invoice-2pc-1', 'payout-park-retry']) {
    // Newest first: the background load pushes older ones onto later pages, so search.
    await page.fill('#f-gid', gid);
    await click('#f-apply');
    await page.waitForSelector(`#tx-table tr[data-gid="${gid}"]`);
  }
  await click('#f-reset');
  await page.waitForFunction(() => Number(document.getElementById('stat-succeeded').textContent.replace(/,/g, '')) >= 4);
  await page.waitForFunction(() => document.getElementById('stat-parked').textContent === '2');
  assert.equal(await page.textContent('#tab-parked-count'), '2');
  assert.match(await page.textContent('#node'), /^demo · v\d/);
  await shot('01-list');
});

step('filters: gid search, status, type, time range; paging', async () => {
  await page.fill('#f-gid', 'transfer-');
  await page.selectOption('#f-status', 'failed');
  await click('#f-apply');
  await page.waitForFunction(() => document.querySelectorAll('#tx-table tbody tr').length === 2);
  assert.deepEqual((await rows('tx-table')).sort(), ['transfer-fail-1', 'transfer-fail-2']);
  assert.match(page.url(), /status=failed/);
  await shot('02-filtered');

  await click('#f-reset');
  await page.selectOption('#f-type', '2pc');
  await click('#f-apply');
  await page.waitForFunction(() => document.querySelectorAll('#tx-table tbody tr').length === 1);
  assert.deepEqual(await rows('tx-table'), ['invoice-2pc-1']);

  // Created from a minute in the future: nothing; from an hour ago: everything again.
  const local = (ms) => {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
  };
  await click('#f-reset');
  await page.fill('#f-from', local(Date.now() + 120_000));
  await click('#f-apply');
  await page.waitForSelector('#tx-empty');
  await page.fill('#f-from', local(Date.now() - 3_600_000));
  await page.fill('#f-to', local(Date.now() + 3_600_000));
  await page.fill('#f-gid', 'transfer-ok-');
  await click('#f-apply');
  await page.waitForFunction(() => document.querySelectorAll('#tx-table tbody tr').length === 3);

  // Paging: 25 a page, and there are more than 25 by now.
  await until('more than 25 transactions', async () => {
    const r = await api('GET', '/v1/transactions?limit=30');
    return r.body.transactions.length >= 30;
  });
  await click('#f-reset');
  await page.waitForFunction(() => document.querySelectorAll('#tx-table tbody tr').length === 25);
  const first = await rows('tx-table');
  await click('#page-older');
  await page.waitForFunction(() => document.getElementById('page-info').textContent.startsWith('Page 2'));
  const second = await rows('tx-table');
  assert.ok(second.length > 0);
  for (const g of second) assert.ok(!first.includes(g), `${g} is on both pages`);
  await shot('03-page-2');
  await click('#page-newer');
  await page.waitForFunction(() => document.getElementById('page-info').textContent.startsWith('Page 1'));
  await click('#f-reset');
});

step('a transaction shows its branches, timeline and every attempt', async () => {
  await page.fill('#f-gid', 'transfer-fail-1');
  await click('#f-apply');
  await page.click('#tx-table a:text-is("transfer-fail-1")');
  await page.waitForSelector('#tx[data-gid="transfer-fail-1"]');
  assert.equal(await page.textContent('#tx-gid'), 'transfer-fail-1');
  assert.equal(await page.getAttribute('#tx', 'data-status'), 'failed');
  const branches = await page.$$eval('#branch-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].slice(0, 3).map((c) => c.textContent).join(' ')));
  assert.ok(branches.includes('01 action succeed'), branches.join('; '));
  assert.ok(branches.includes('02 action failed'), branches.join('; '));
  assert.ok(branches.includes('01 compensate succeed'), branches.join('; '));
  const attempts = await page.$$eval('#attempt-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.ok(attempts.some((a) => a[2] === 'action' && a[3] === 'failure' && a[4] === '409'), JSON.stringify(attempts));
  assert.ok(attempts.every((a) => /^\d+(\.\d+)? (µs|ms|s)$/.test(a[5])), JSON.stringify(attempts));
  assert.ok(await page.$$eval('#timeline .tl-mark', (m) => m.length) >= 3);
  await shot('04-transaction');

  // A parked one: its 500s, with the participant's HTML body shown as text.
  await page.goto(server.url + '/#/tx/payout-park-retry');
  await page.waitForSelector('#tx[data-gid="payout-park-retry"] #tx-parked');
  const errs = await page.$$eval('#attempt-table tbody tr.o-error', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.ok(errs.length >= 2, JSON.stringify(errs));
  assert.ok(errs.every((a) => a[4] === '500'), JSON.stringify(errs));
  assert.equal(await page.$$eval('#view b', (b) => b.length), 0, 'a participant body became markup');
});

step('parked list: retry now after the participant is back, the transaction succeeds', async () => {
  await click('#tab-parked');
  await page.waitForSelector('#parked-table');
  assert.deepEqual((await rows('parked-table')).sort(), ['payout-park-retry', 'payout-park-stop']);
  await shot('05-parked');

  participant.healthy = true;
  await page.click('#parked-table tr[data-gid="payout-park-retry"] button[data-action="retry"]');
  await page.locator('#confirm').waitFor({ state: 'visible' });
  await page.click('#confirm-ok'); // no reason: refused in the dialog
  await page.waitForSelector('#confirm-error:not([hidden])');
  assert.equal(await page.textContent('#confirm-error'), 'A reason is required.');
  await page.fill('#confirm-reason', 'ledger is back (INC-7)');
  await shot('06-retry-dialog');
  await page.click('#confirm-ok');
  await page.locator('#confirm').waitFor({ state: 'hidden' });
  await page.waitForFunction(() => !document.querySelector('#parked-table tr[data-gid="payout-park-retry"]'));

  await page.goto(server.url + '/#/tx/payout-park-retry');
  // The page follows an unfinished transaction by itself.
  await page.waitForSelector('#tx[data-status="succeed"]');
  assert.equal(await page.$('#tx-parked'), null);
  assert.equal(await page.$('#tx-actions button'), null, 'a finished transaction offers no actions');
  const hist = await page.$$eval('#history li', (lis) => lis.map((li) => li.textContent));
  assert.ok(hist.some((h) => h.includes('ledger is back (INC-7)')), hist.join('; '));
  await shot('07-retried');

  const r = await api('GET', '/v1/transactions/payout-park-retry');
  assert.equal(r.body.status, 'succeed');
  assert.equal(r.body.parked, null);
  assert.ok(r.body.history.some((h) => h.reason === 'ledger is back (INC-7)'), JSON.stringify(r.body.history));
  assert.ok(participant.calls.some((c) => c === '/flaky action payout-park-retry'));
});

step('parked list: force stop with a reason, recorded and shown as text', async () => {
  const reason = 'INC-42: refunded by hand <img src=x id=injected>';
  await click('#tab-parked');
  await page.waitForSelector('#parked-table tr[data-gid="payout-park-stop"]');
  await page.click('#parked-table tr[data-gid="payout-park-stop"] button[data-action="stop"]');
  await page.locator('#confirm').waitFor({ state: 'visible' });
  await page.fill('#confirm-reason', reason);
  await shot('08-stop-dialog');
  await page.click('#confirm-ok');
  await page.locator('#confirm').waitFor({ state: 'hidden' });
  await page.waitForSelector('#parked-empty');

  await page.goto(server.url + '/#/tx/payout-park-stop');
  await page.waitForSelector('#tx[data-status="failed"]');
  const hist = await page.$$eval('#history li .reason', (s) => s.map((x) => x.textContent));
  assert.ok(hist.includes(reason), hist.join('; '));
  assert.equal(await page.$('#injected'), null, 'the reason became markup');
  await shot('09-stopped');

  const r = await api('GET', '/v1/transactions/payout-park-stop');
  assert.equal(r.body.status, 'failed');
  assert.ok(r.body.branches.every((b) => b.status !== 'running'), JSON.stringify(r.body.branches));
  const shown = await page.$$eval('#branch-table tbody tr', (trs) => trs.map((tr) => tr.cells[2].textContent));
  assert.ok(!shown.includes('running'), shown.join('; '));
  assert.ok(r.body.history.some((h) => h.reason === reason), JSON.stringify(r.body.history));
});

step('topics: subscribed through DTM\'s API, listed with their subscribers, shown as text', async () => {
  const url = 'http://127.0.0.1:9/ship?<b>x</b>';
  let r = await api('GET', '/api/dtmsvr/subscribe?topic=orders&remark=' + encodeURIComponent('<i>ship</i>') + '&url=' + encodeURIComponent(url));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await api('POST', '/v1/topics/orders/subscribers', { url: 'http://127.0.0.1:9/bill', remark: 'billing' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await click('#tab-topics');
  await page.waitForSelector('#topics-table tr[data-topic="orders"]');
  const cells = await page.$$eval('#topics-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(cells.map((c) => c.slice(0, 3)), [['orders', url, '<i>ship</i>'], ['', 'http://127.0.0.1:9/bill', 'billing']]);
  assert.equal(await page.$('#topics-table b'), null, 'a URL became markup');
  await shot('09b-topics');
});

step('overview screenshot, and no console errors', async () => {
  // Enough seconds of traffic for the chart, then one more parked for the picture.
  await click('#tab-list');
  const points = Number(process.env.CHART_POINTS_MIN || 30);
  await page.waitForFunction((n) => Number(document.getElementById('throughput').dataset.points) >= n,
    points, { timeout: (points + 10) * 1000 });
  await page.waitForSelector('#toast', { state: 'hidden' });
  const parked = await api('POST', '/v1/sagas', saga('settlement-2207', ['ok', 'down'], { retry_limit: 2, retry_interval_ms: 50 }));
  assert.ok(parked.body.parked, JSON.stringify(parked.body));
  await click('#f-reset');
  await page.waitForSelector('#tx-table tr[data-gid="settlement-2207"]');
  await page.waitForFunction(() => document.getElementById('stat-parked').textContent === '1');
  await shot('10-overview', false);
  if (process.env.UPDATE_SCREENSHOT === '1') {
    fs.copyFileSync(path.join(ARTIFACTS, '10-overview.png'), path.join(ROOT, 'docs', 'dashboard.png'));
  }
  assert.deepEqual(consoleErrors, []);
});

// A second server that requires a token (TANDEM_AUTH_TOKEN): the dashboard's files load
// without it, every API call without the right bearer header is refused with 401.
step('login: a 401 asks for a token, which is then sent as a bearer header; log out forgets it', async () => {
  const guarded = await startServer({ TANDEM_AUTH_TOKEN: 's3cret-token' });
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'UTC' });
  try {
    const seen = [];
    ctx.on('request', (r) => { if (r.url().includes('/v1/')) seen.push(r.headers().authorization || null); });
    const p = await ctx.newPage();
    p.setDefaultTimeout(STEP_MS);
    const errors = [];
    p.on('pageerror', (e) => errors.push(String(e)));
    await p.goto(guarded.url + '/#/parked');
    await p.waitForSelector('#login');
    assert.equal(await p.isVisible('#logout'), false);
    await shot('11-login', false, p);

    await p.fill('#login-token', 'wrong');
    await p.click('#login-submit');
    await p.waitForSelector('#login-error');
    assert.match(await p.textContent('#login-error'), /refused: the bearer token is not valid/);

    await p.fill('#login-token', 's3cret-token');
    await p.click('#login-submit');
    await p.waitForSelector('#parked-table, #parked-empty');
    assert.equal(await p.isVisible('#logout'), true);
    await p.waitForFunction(() => document.getElementById('stat-succeeded').textContent !== '–');
    assert.ok(seen.includes('Bearer s3cret-token'));
    assert.equal(await p.evaluate(() => sessionStorage.getItem('tandem.token')), 's3cret-token');

    await p.click('#logout');
    await p.waitForSelector('#login');
    assert.equal(await p.evaluate(() => sessionStorage.getItem('tandem.token')), null);
    assert.deepEqual(errors, []);
    assert.ok(!guarded.log.includes('s3cret-token'), 'the token never appears in the log');
  } finally {
    await ctx.close();
    guarded.proc.kill('SIGTERM');
  }
});
