// Tandem dashboard: a small single-page app over the /v1 API. No framework, no build step.
//
// Routes (in the URL's hash): #/ (transactions, with filters in the hash's query),
// #/parked, #/topics, #/tx/<gid>. Rule: data from the server reaches the page only through
// textContent / attributes set by el() — never as HTML — because gids, errors, reasons and
// URLs are user data.
'use strict';

const TOKEN_KEY = 'tandem.token';
const STATS_EVERY_MS = 1000;
const PARKED_EVERY_MS = 5000;
const REFRESH_EVERY_MS = 2000;
const CHART_POINTS = 60;
const STATUSES = ['prepared', 'submitted', 'aborting', 'succeed', 'failed'];
const TYPES = ['saga', '2pc', 'tcc', 'msg', 'workflow'];
const PAGE_SIZES = [25, 50, 100];

// ---------------------------------------------------------------- DOM helpers

/** Makes an element. `attrs`: class, text, on* handlers, dataset via data-*, others as attributes. */
function el(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const e = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const $ = (id) => document.getElementById(id);

function pad(n, w = 2) { return String(n).padStart(w, '0'); }

/** 2026-11-26 15:42:07 (local time). */
function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** 15:42:07.123 */
function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

function fmtLatency(us) {
  if (us === null || us === undefined) return '—';
  if (us < 1000) return `${us} µs`;
  if (us < 1000000) return `${(us / 1000).toFixed(us < 10000 ? 1 : 0)} ms`;
  return `${(us / 1000000).toFixed(2)} s`;
}

function fmtCount(n) {
  return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
}

function badge(status, extra) {
  return el('span', { class: `badge s-${status}${extra ? ' ' + extra : ''}`, text: status });
}

function statusCell(t) {
  return el('span', { class: 'badges' }, badge(t.status), t.parked ? badge('parked') : null,
    t.heuristic ? badge('heuristic') : null);
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

/** Calls /v1; any 401 shows the login page. Resolves to the parsed JSON body. */
async function api(path, opts = {}) {
  const headers = { accept: 'application/json' };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  let res;
  try {
    res = await fetch(path, {
      method: opts.method || 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store',
    });
  } catch (e) {
    setConnected(false);
    throw new ApiError(0, 'unreachable', `the server is unreachable (${e.message})`);
  }
  setConnected(true);
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (res.status === 401) {
    showLogin(body && body.error ? body.error.message : 'a token is required');
    throw new ApiError(401, 'unauthorized', 'unauthorized');
  }
  if (!res.ok) {
    const err = body && body.error ? body.error : { code: 'http_' + res.status, message: res.statusText };
    throw new ApiError(res.status, err.code, err.message);
  }
  return body;
}

function setConnected(ok) {
  const c = $('conn');
  c.className = 'conn ' + (ok ? 'up' : 'down');
  c.title = ok ? 'connected' : 'cannot reach the server';
}

// ---------------------------------------------------------------- routing

let loginShown = false;
let routeSeq = 0;

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  return { path, params };
}

function go(path, params) {
  const qs = params && [...params].length ? '?' + params.toString() : '';
  const next = '#' + path + qs;
  // The same place again (Apply, Reset) means "load it again".
  if ((location.hash || '#/') === next) route();
  else location.hash = next;
}

async function route() {
  if (loginShown) return;
  const seq = ++routeSeq;
  const { path, params } = parseHash();
  const view = $('view');
  delete view.dataset.route;
  for (const a of document.querySelectorAll('.tabs a')) a.classList.remove('active');
  try {
    if (path.startsWith('/tx/')) {
      let gid;
      try { gid = decodeURIComponent(path.slice(4)); } catch (_) {
        throw new ApiError(404, 'not_found', 'this address names no transaction');
      }
      const t = await renderTx(view, gid, seq);
      // An unfinished transaction is followed live; the page is redrawn only when it changed
      // (a redraw would drop the reader's text selection).
      if (t && !finished(t)) {
        refreshLater(seq, async () => (await api('/v1/transactions/' + encodeURIComponent(gid))).version !== t.version);
      }
    } else if (path === '/topics') {
      $('tab-topics').classList.add('active');
      const list = await renderTopics(view, seq);
      if (list) refreshLater(seq, async () => JSON.stringify(await api('/v1/topics')) !== JSON.stringify(list));
    } else if (path === '/parked') {
      $('tab-parked').classList.add('active');
      const page = await renderParked(view, seq);
      if (page) refreshLater(seq, async () => parkedSig(await api(PARKED_QUERY)) !== parkedSig(page));
    } else {
      $('tab-list').classList.add('active');
      refreshParked();
      await renderList(view, params, seq);
    }
    // What was rendered, for whoever waits for it (the browser test).
    if (!stale(seq)) view.dataset.route = location.hash || '#/';
  } catch (e) {
    if (e.status === 401 || seq !== routeSeq) return;
    view.replaceChildren(el('div', { class: 'panel error-panel', id: 'view-error' },
      el('h2', { text: e.status === 404 ? 'Not found' : 'Something went wrong' }),
      el('p', { text: e.message }),
      el('a', { href: '#/', class: 'btn', text: 'Back to transactions' })));
  }
}

/** True when a newer navigation started while this one awaited. */
function stale(seq) { return seq !== routeSeq; }

/**
 * Checks again in a moment whether what is shown `changed()`, and renders the route again if
 * so — unless the user moved on, or a dialog is open, or the tab is hidden.
 */
function refreshLater(seq, changed) {
  setTimeout(async () => {
    if (stale(seq) || loginShown) return;
    let redraw = false;
    if (!$('confirm').open && document.visibilityState === 'visible') {
      try { redraw = await changed(); } catch (_) { redraw = false; }
    }
    if (stale(seq) || loginShown) return;
    if (redraw) route();
    else refreshLater(seq, changed);
  }, REFRESH_EVERY_MS);
}

// ---------------------------------------------------------------- transaction list

// Cursor stack per filter set: pages[i] is the cursor that fetched page i (null: first).
const paging = { key: '', cursors: [null], index: 0 };

function toLocalInput(ms) {
  if (!ms) return '';
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(v) {
  if (!v) return null;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? t : null;
}

function select(id, label, values, current) {
  return el('label', { class: 'field' }, el('span', { text: label }),
    el('select', { id, name: id },
      el('option', { value: '', text: 'any' }),
      values.map((v) => el('option', { value: v, text: v, selected: v === current }))));
}

async function renderList(view, params, seq) {
  const f = {
    status: params.get('status') || '',
    type: params.get('type') || '',
    gid: params.get('gid') || '',
    from: params.get('from') || '',
    to: params.get('to') || '',
    limit: PAGE_SIZES.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 25,
  };
  const key = JSON.stringify(f);
  if (paging.key !== key) {
    paging.key = key;
    paging.cursors = [null];
    paging.index = 0;
  }
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.type) q.set('type', f.type);
  if (f.gid) q.set('gid_prefix', f.gid);
  if (f.from) q.set('created_from_ms', f.from);
  if (f.to) q.set('created_to_ms', f.to);
  q.set('limit', String(f.limit));
  const cursor = paging.cursors[paging.index];
  if (cursor) q.set('cursor', cursor);

  const form = el('form', { class: 'filters', id: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    const v = (id) => $(id).value.trim();
    if (v('f-status')) p.set('status', v('f-status'));
    if (v('f-type')) p.set('type', v('f-type'));
    if (v('f-gid')) p.set('gid', v('f-gid'));
    const from = fromLocalInput(v('f-from'));
    const to = fromLocalInput(v('f-to'));
    if (from !== null) p.set('from', String(from));
    if (to !== null) p.set('to', String(to));
    if (v('f-limit') !== '25') p.set('limit', v('f-limit'));
    go('/', p);
  } },
  el('label', { class: 'field grow' }, el('span', { text: 'Search gid' }),
    el('input', { id: 'f-gid', type: 'search', placeholder: 'gid or its beginning', value: f.gid, autocomplete: 'off', spellcheck: 'false' })),
  select('f-status', 'Status', STATUSES, f.status),
  select('f-type', 'Type', TYPES, f.type),
  el('label', { class: 'field' }, el('span', { text: 'Created from' }),
    el('input', { id: 'f-from', type: 'datetime-local', value: toLocalInput(f.from) })),
  el('label', { class: 'field' }, el('span', { text: 'to' }),
    el('input', { id: 'f-to', type: 'datetime-local', value: toLocalInput(f.to) })),
  el('label', { class: 'field' }, el('span', { text: 'Per page' }),
    el('select', { id: 'f-limit' }, PAGE_SIZES.map((n) => el('option', { value: n, text: n, selected: n === f.limit })))),
  el('div', { class: 'field buttons' },
    el('button', { type: 'submit', class: 'btn primary', id: 'f-apply', text: 'Apply' }),
    el('button', { type: 'button', class: 'btn', id: 'f-reset', text: 'Reset', onclick: () => go('/', null) })));

  const page = await api('/v1/transactions?' + q.toString());
  if (stale(seq)) return;
  const rows = page.transactions.map((t) => el('tr', { 'data-gid': t.gid },
    el('td', { class: 'gid' }, el('a', { href: '#/tx/' + encodeURIComponent(t.gid), text: t.gid })),
    el('td', {}, el('span', { class: 'type', text: t.type })),
    el('td', {}, statusCell(t)),
    el('td', { class: 'num', text: t.branch_count }),
    el('td', { class: 'time', text: fmtTime(t.created_at_ms), title: new Date(t.created_at_ms).toISOString() }),
    el('td', { class: 'num', text: t.finished_at_ms ? fmtDuration(t.finished_at_ms - t.created_at_ms) : '—' }),
    el('td', { class: 'why', text: t.parked || t.fail_reason || '', title: t.parked || t.fail_reason || null })));

  const first = paging.index === 0;
  const pager = el('div', { class: 'pager' },
    el('span', { class: 'muted', id: 'page-info',
      text: `Page ${paging.index + 1} · ${page.transactions.length} shown${page.next_cursor ? '' : ' · end of list'}` }),
    el('button', { class: 'btn', id: 'page-newer', disabled: first, text: '← Newer', onclick: () => {
      paging.index -= 1; route();
    } }),
    el('button', { class: 'btn', id: 'page-older', disabled: !page.next_cursor, text: 'Older →', onclick: () => {
      paging.cursors[paging.index + 1] = page.next_cursor;
      paging.cursors.length = paging.index + 2;
      paging.index += 1;
      route();
    } }));

  const filtered = f.status || f.type || f.gid || f.from || f.to;
  view.replaceChildren(
    el('section', { class: 'panel' },
      el('div', { class: 'panel-head' }, el('h1', { text: 'Transactions' }),
        el('span', { class: 'muted', text: 'newest first' })),
      form,
      page.transactions.length
        ? el('table', { class: 'grid', id: 'tx-table' },
          el('thead', {}, el('tr', {}, ['gid', 'type', 'status', 'branches', 'created', 'took', 'reason']
            .map((h, i) => el('th', { text: h, class: i === 3 || i === 5 ? 'num' : null })))),
          el('tbody', {}, rows))
        : el('p', { class: 'empty', id: 'tx-empty', text: filtered ? 'No transaction matches these filters.' : 'No transactions yet.' }),
      pager));
}

// ---------------------------------------------------------------- parked list

const PARKED_QUERY = '/v1/transactions?parked=true&limit=100';

/** What the parked list shows, to tell whether it changed. */
function parkedSig(page) {
  return JSON.stringify(page.transactions.map((t) => [t.gid, t.status, t.parked]));
}

async function renderParked(view, seq) {
  const page = await api(PARKED_QUERY);
  if (stale(seq)) return null;
  const rows = page.transactions.map((t) => el('tr', { 'data-gid': t.gid },
    el('td', { class: 'gid' }, el('a', { href: '#/tx/' + encodeURIComponent(t.gid), text: t.gid })),
    el('td', {}, el('span', { class: 'type', text: t.type })),
    el('td', {}, statusCell(t)),
    el('td', { class: 'time', text: fmtTime(t.created_at_ms) }),
    el('td', { class: 'why', text: t.parked, title: t.parked }),
    el('td', { class: 'actions' }, actionButtons(t, () => route()))));
  view.replaceChildren(el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h1', { text: 'Parked transactions' }),
      el('span', { class: 'muted', text: 'automatic retries stopped at the retry limit; an operator decides' })),
    page.transactions.length
      ? el('table', { class: 'grid', id: 'parked-table' },
        el('thead', {}, el('tr', {}, ['gid', 'type', 'status', 'created', 'why parked', ''].map((h) => el('th', { text: h })))),
        el('tbody', {}, rows))
      : el('p', { class: 'empty', id: 'parked-empty', text: 'Nothing is parked.' }),
    page.next_cursor ? el('p', { class: 'muted', text: 'Showing the newest 100.' }) : null));
  return page;
}

/** Message topics: a msg step whose action is topic://<name> is delivered to each subscriber. */
async function renderTopics(view, seq) {
  const list = await api('/v1/topics');
  if (stale(seq)) return null;
  const rows = list.topics.flatMap((t) => (t.subscribers.length ? t.subscribers : [null]).map((s, i) =>
    el('tr', { 'data-topic': t.name },
      el('td', { class: 'gid', text: i === 0 ? t.name : '' }),
      el('td', { class: 'url', text: s ? s.url : '(no subscriber)' }),
      el('td', { class: 'why', text: s ? s.remark : '' }),
      el('td', { class: 'time', text: i === 0 ? fmtTime(t.updated_at_ms) : '' }))));
  view.replaceChildren(el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h1', { text: 'Topics' }),
      el('span', { class: 'muted', text: 'a message step sent to topic://<name> is delivered to every subscriber' })),
    list.topics.length
      ? el('table', { class: 'grid', id: 'topics-table' },
        el('thead', {}, el('tr', {}, ['topic', 'subscriber', 'remark', 'updated'].map((h) => el('th', { text: h })))),
        el('tbody', {}, rows))
      : el('p', { class: 'empty', id: 'topics-empty', text: 'No topics yet (DTM clients create them with subscribe).' })));
  return list;
}

function finished(t) { return t.status === 'succeed' || t.status === 'failed'; }

/** Retry now / Force stop for an unfinished transaction; `after` runs once one succeeded. */
function actionButtons(t, after) {
  if (finished(t)) return [];
  return [
    el('button', { class: 'btn primary small', 'data-action': 'retry', text: 'Retry now',
      onclick: () => operate(t.gid, 'retry', after) }),
    el('button', { class: 'btn danger small', 'data-action': 'stop', text: 'Force stop',
      onclick: () => operate(t.gid, 'stop', after) }),
  ];
}

const ACTIONS = {
  retry: {
    title: 'Retry now',
    ok: 'Retry now',
    text: (gid) => `Call every unfinished branch of ${gid} again now. Its parking is cleared; ` +
      'if the retry limit is reached again, it is parked again.',
  },
  stop: {
    title: 'Force stop',
    ok: 'Force stop',
    text: (gid) => `Stop ${gid} for good. A saga ends failed at once with no further calls ` +
      '(compensation is yours to do); a 2PC or TCC before its decision, or a prepared ' +
      'message, is rolled back. This cannot be undone.',
  },
};

/** Asks for confirmation and a reason, then POSTs the action. */
function operate(gid, action, after) {
  const a = ACTIONS[action];
  const dlg = $('confirm');
  $('confirm-title').textContent = `${a.title}: ${gid}`;
  $('confirm-text').textContent = a.text(gid);
  const ok = $('confirm-ok');
  ok.textContent = a.ok;
  ok.className = 'btn ' + (action === 'stop' ? 'danger solid' : 'primary');
  ok.disabled = false;
  const reason = $('confirm-reason');
  reason.value = '';
  const err = $('confirm-error');
  err.hidden = true;
  reason.oninput = () => { err.hidden = true; };
  dlg.dataset.action = action;
  dlg.onsubmit = async (e) => {
    e.preventDefault();
    const why = reason.value.trim();
    if (!why) {
      err.textContent = 'A reason is required.';
      err.hidden = false;
      reason.focus();
      return;
    }
    ok.disabled = true;
    try {
      const tx = await api(`/v1/transactions/${encodeURIComponent(gid)}/${action}`,
        { method: 'POST', body: { reason: why } });
      dlg.close();
      toast(`${a.title}: ${gid} is now ${tx.status}${tx.parked ? ' (parked)' : ''}`);
      refreshParked();
      after(tx);
    } catch (x) {
      ok.disabled = false;
      if (x.status === 401) { dlg.close(); return; }
      err.textContent = `${x.message} (${x.code})`;
      err.hidden = false;
    }
  };
  $('confirm-cancel').onclick = () => dlg.close();
  dlg.showModal();
  reason.focus();
}

let toastTimer = null;
function toast(msg) {
  const t = $('toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

// ---------------------------------------------------------------- one transaction

async function renderTx(view, gid, seq) {
  const t = await api('/v1/transactions/' + encodeURIComponent(gid));
  if (stale(seq)) return null;
  const o = t.options || {};
  const facts = [
    ['type', t.type],
    ['created', fmtTime(t.created_at_ms)],
    ['updated', fmtTime(t.updated_at_ms)],
    ['finished', t.finished_at_ms ? fmtTime(t.finished_at_ms) : '—'],
    ['took', t.finished_at_ms ? fmtDuration(t.finished_at_ms - t.created_at_ms) : '—'],
    ['retry limit', o.retry_limit ?? 'default'],
    ['retry interval', o.retry_interval_ms ? fmtDuration(o.retry_interval_ms) : 'default'],
    ['timeout to fail', o.timeout_to_fail_ms ? fmtDuration(o.timeout_to_fail_ms) : 'none'],
    ['version', t.version],
  ];
  if (t.query_prepared) facts.push(['query prepared', t.query_prepared]);

  const attempts = [];
  t.branches.forEach((b, i) => b.recent.forEach((a) => attempts.push({ b, i, a })));
  attempts.sort((x, y) => x.a.at_ms - y.a.at_ms);

  view.replaceChildren(el('section', { class: 'panel', id: 'tx', 'data-gid': t.gid, 'data-status': t.status },
    el('div', { class: 'crumbs' }, el('a', { href: '#/', text: 'Transactions' }), ' / '),
    el('div', { class: 'panel-head tx-head' },
      el('h1', { class: 'gid', id: 'tx-gid', text: t.gid }),
      el('span', { id: 'tx-status' }, statusCell(t)),
      el('div', { class: 'spacer' }),
      el('div', { class: 'actions', id: 'tx-actions' }, actionButtons(t, () => route()))),
    t.heuristic ? el('div', { class: 'callout bad', id: 'tx-heuristic', role: 'alert' },
      el('strong', { text: 'Heuristic outcome: ' }), el('span', { text: t.heuristic }),
      el('span', { text: ' — a participant disagrees with the log. Check the databases, repair, then force stop.' })) : null,
    t.parked ? el('div', { class: 'callout warn', id: 'tx-parked' },
      el('strong', { text: 'Parked: ' }), el('span', { text: t.parked })) : null,
    t.fail_reason ? el('div', { class: 'callout bad', id: 'tx-fail' },
      el('strong', { text: 'Failed: ' }), el('span', { text: t.fail_reason })) : null,
    el('dl', { class: 'facts' }, facts.map(([k, v]) => el('div', {}, el('dt', { text: k }), el('dd', { text: v })))),
    el('h2', { text: 'Timeline' }),
    timeline(t),
    el('h2', { text: `Branches (${t.branches.length})` }),
    el('table', { class: 'grid', id: 'branch-table' },
      el('thead', {}, el('tr', {}, ['branch', 'op', 'status', 'calls', 'next call', 'url'].map((h) => el('th', { text: h })))),
      el('tbody', {}, t.branches.map((b) => el('tr', {},
        el('td', { class: 'mono', text: b.branch_id }),
        el('td', { text: b.op }),
        el('td', {}, badge(b.status)),
        el('td', { class: 'num', text: b.attempts }),
        el('td', { class: 'time', text: b.next_at_ms ? fmtTime(b.next_at_ms) : '—' }),
        el('td', { class: 'url mono', text: b.url || '(no-op)', title: b.url || null }))))),
    el('h2', { text: `Attempts (${attempts.length})` }),
    attempts.length
      ? el('table', { class: 'grid', id: 'attempt-table' },
        el('thead', {}, el('tr', {}, ['time', 'branch', 'op', 'outcome', 'code', 'latency', 'error']
          .map((h, i) => el('th', { text: h, class: i === 4 || i === 5 ? 'num' : null })))),
        el('tbody', {}, attempts.map(({ b, a }) => el('tr', { class: 'o-' + a.outcome },
          el('td', { class: 'time', text: fmtClock(a.at_ms), title: fmtTime(a.at_ms) }),
          el('td', { class: 'mono', text: b.branch_id }),
          el('td', { text: b.op }),
          el('td', {}, el('span', { class: 'badge o-' + a.outcome, text: a.outcome })),
          el('td', { class: 'num', text: a.code ?? '—' }),
          el('td', { class: 'num', text: fmtLatency(a.latency_us) }),
          el('td', { class: 'why', text: a.error || '', title: a.error || null })))))
      : el('p', { class: 'empty', text: 'No calls yet (no-op branches are not called).' }),
    t.branches.some((b) => b.attempts > b.recent.length)
      ? el('p', { class: 'muted', text: 'Only the newest attempts of each branch are kept; the calls column counts them all.' })
      : null,
    el('h2', { text: 'History' }),
    t.history.length
      ? el('ol', { class: 'history', id: 'history' }, t.history.map((h) => el('li', {},
        el('span', { class: 'time', text: fmtTime(h.at_ms) }),
        el('span', { class: 'what', text: h.what }),
        el('span', { class: 'reason', text: h.reason }))))
      : el('p', { class: 'empty', id: 'history-empty', text: 'No operator actions or notable events.' })));
  return t;
}

const OUTCOME_COLORS = {
  success: '#16a34a', read_only: '#16a34a', failure: '#dc2626', ongoing: '#2563eb', error: '#ea580c',
};

/** The branches on one time axis: a row per branch, a mark per remembered attempt. */
function timeline(t) {
  const W = 1000, rowH = 26, labelW = 200, top = 22;
  const all = [...t.branches.flatMap((b) => b.recent.map((a) => a.at_ms)), ...t.history.map((h) => h.at_ms)];
  const start = Math.min(t.created_at_ms, ...all);
  const endCandidates = [t.finished_at_ms || 0, ...t.branches.flatMap((b) =>
    b.recent.map((a) => a.at_ms + Math.ceil(a.latency_us / 1000)))];
  endCandidates.push(...t.history.map((h) => h.at_ms));
  if (!t.finished_at_ms) endCandidates.push(Date.now());
  const end = Math.max(start + 1, ...endCandidates);
  const span = end - start;
  const x = (ms) => labelW + ((ms - start) / span) * (W - labelW - 12);
  const h = top + Math.max(1, t.branches.length) * rowH + 6;
  const svg = el('svg:svg', { viewBox: `0 0 ${W} ${h}`, class: 'timeline', id: 'timeline', role: 'img',
    'aria-label': 'branch calls over time' });
  // Axis: start, middle, end.
  for (const frac of [0, 0.5, 1]) {
    const at = start + span * frac;
    const gx = x(at);
    svg.append(el('svg:line', { x1: gx, x2: gx, y1: top - 4, y2: h, class: 'tl-grid' }));
    svg.append(el('svg:text', { x: gx, y: 12, class: 'tl-axis',
      'text-anchor': frac === 0 ? 'start' : frac === 1 ? 'end' : 'middle',
      text: frac === 0 ? fmtClock(at) : '+' + fmtDuration(Math.round(at - start)) }));
  }
  t.branches.forEach((b, i) => {
    const y = top + i * rowH;
    svg.append(el('svg:rect', { x: 0, y, width: W, height: rowH, class: i % 2 ? 'tl-row odd' : 'tl-row' }));
    svg.append(el('svg:text', { x: 8, y: y + rowH / 2 + 4, class: 'tl-label', text: `${b.branch_id} · ${b.op}` }));
    svg.append(el('svg:line', { x1: labelW, x2: W - 12, y1: y + rowH / 2, y2: y + rowH / 2, class: 'tl-track' }));
    for (const a of b.recent) {
      const x0 = x(a.at_ms);
      const w = Math.max(6, x(a.at_ms + a.latency_us / 1000) - x0);
      const mark = el('svg:rect', { x: x0, y: y + 6, width: w, height: rowH - 12, rx: 3,
        fill: OUTCOME_COLORS[a.outcome] || '#64748b', class: 'tl-mark' });
      mark.append(el('svg:title', { text: `${fmtClock(a.at_ms)} ${a.outcome}` +
        `${a.code ? ' HTTP ' + a.code : ''} in ${fmtLatency(a.latency_us)}${a.error ? ' — ' + a.error : ''}` }));
      svg.append(mark);
    }
  });
  // Operator actions and notable events: a line across every branch.
  for (const hist of t.history) {
    const hx = x(hist.at_ms);
    const mark = el('svg:line', { x1: hx, x2: hx, y1: top - 2, y2: h, class: 'tl-event' });
    mark.append(el('svg:title', { text: `${fmtClock(hist.at_ms)} ${hist.what}: ${hist.reason}` }));
    svg.append(mark);
  }
  return el('div', { class: 'timeline-wrap' }, svg,
    el('div', { class: 'legend' }, Object.entries({ success: 'success', failure: 'failure (409)', error: 'error (retried)', ongoing: 'ongoing' })
      .map(([k, v]) => el('span', {}, el('i', { class: 'dot o-' + k }), v)),
      t.history.length ? el('span', {}, el('i', { class: 'dot event' }), 'operator action / event') : null));
}

// ---------------------------------------------------------------- live counters

const series = []; // { at, rate, failed }
let lastStats = null;

async function pollStats() {
  if (loginShown) return;
  try {
    const s = await api('/v1/stats');
    $('node').textContent = `${s.node_name} · v${s.version}`;
    $('stat-active').textContent = fmtCount(s.active);
    $('stat-succeeded').textContent = fmtCount(s.succeeded);
    $('stat-failed').textContent = fmtCount(s.failed);
    showParkedCount(s.parked);
    if (lastStats && s.now_ms > lastStats.now_ms && s.succeeded + s.failed >= lastStats.succeeded + lastStats.failed) {
      const dt = (s.now_ms - lastStats.now_ms) / 1000;
      series.push({
        at: s.now_ms,
        rate: (s.succeeded + s.failed - lastStats.succeeded - lastStats.failed) / dt,
        failed: (s.failed - lastStats.failed) / dt,
      });
      while (series.length > CHART_POINTS) series.shift();
      $('throughput').dataset.points = String(series.length);
      const r = series[series.length - 1].rate;
      $('stat-rate').textContent = r >= 100 ? Math.round(r).toLocaleString('en-US') : r.toFixed(r ? 1 : 0);
    }
    lastStats = s;
    drawChart();
  } catch (_) { /* shown by the connection dot or the login page */ }
}

/** The header's and the tab's parked count: the server's gauge of transactions parked now. */
function showParkedCount(n) {
  const text = fmtCount(n);
  $('stat-parked').textContent = text;
  const c = $('tab-parked-count');
  c.textContent = n ? text : '';
  $('stat-parked').parentElement.classList.toggle('hot', n > 0);
}

async function refreshParked() {
  if (loginShown) return;
  try { showParkedCount((await api('/v1/stats')).parked); } catch (_) { /* idem */ }
}

function drawChart() {
  const c = $('throughput');
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== w * dpr) { c.width = w * dpr; c.height = h * dpr; }
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.strokeStyle = 'rgba(148,163,184,0.25)';
  g.lineWidth = 1;
  g.beginPath(); g.moveTo(0, h - 0.5); g.lineTo(w, h - 0.5); g.stroke();
  if (series.length < 2) return;
  const max = Math.max(1, ...series.map((p) => p.rate)) * 1.15;
  const step = w / (CHART_POINTS - 1);
  const x0 = w - (series.length - 1) * step;
  const y = (v) => h - 2 - (v / max) * (h - 4);
  const path = (key) => {
    g.beginPath();
    series.forEach((p, i) => (i ? g.lineTo : g.moveTo).call(g, x0 + i * step, y(p[key])));
  };
  path('rate');
  g.lineTo(x0 + (series.length - 1) * step, h); g.lineTo(x0, h); g.closePath();
  const grad = g.createLinearGradient(0, 0, 0, h);
  grad.addColorStop(0, 'rgba(56,189,248,0.45)'); grad.addColorStop(1, 'rgba(56,189,248,0.02)');
  g.fillStyle = grad; g.fill();
  path('rate'); g.strokeStyle = '#38bdf8'; g.lineWidth = 1.5; g.stroke();
  if (series.some((p) => p.failed > 0)) {
    path('failed'); g.strokeStyle = '#f87171'; g.lineWidth = 1.2; g.stroke();
  }
}

// ---------------------------------------------------------------- login

function showLogin(message) {
  if (loginShown) return;
  loginShown = true;
  document.body.classList.add('locked');
  const had = !!token();
  const input = el('input', { id: 'login-token', type: 'password', autocomplete: 'current-password',
    placeholder: 'bearer token', required: true });
  const form = el('form', { class: 'login panel', id: 'login', onsubmit: (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    loginShown = false;
    document.body.classList.remove('locked');
    $('logout').hidden = false;
    route(); pollStats(); refreshParked();
  } },
  el('img', { src: '/dashboard/favicon.svg', alt: '', width: 40, height: 40 }),
  el('h1', { text: 'Sign in to Tandem' }),
  el('p', { class: 'muted', text: 'This server requires a token (TANDEM_AUTH_TOKEN). It is kept in this tab only.' }),
  had ? el('p', { class: 'error', id: 'login-error', text: `The token was refused: ${message}` }) : null,
  el('label', { for: 'login-token', text: 'Token' }), input,
  el('button', { type: 'submit', class: 'btn primary', id: 'login-submit', text: 'Sign in' }));
  sessionStorage.removeItem(TOKEN_KEY);
  $('logout').hidden = true;
  $('view').replaceChildren(form);
  input.focus();
}

function logout(e) {
  e.preventDefault();
  sessionStorage.removeItem(TOKEN_KEY);
  lastStats = null;
  series.length = 0;
  showLogin('');
}

// ---------------------------------------------------------------- start

function start() {
  $('logout').hidden = !token();
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', drawChart);
  route();
  pollStats();
  refreshParked();
  setInterval(pollStats, STATS_EVERY_MS);
  setInterval(refreshParked, PARKED_EVERY_MS);
}

start();
