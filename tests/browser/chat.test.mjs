// Real-browser test of `rfc6455 chat`: our page (src/chat/page.html, served at GET /) and the
// tutorial's page (tutorial-page.html, from file://) in Debian's headless Chromium.
//
//   node chat.test.mjs            (or ./run.sh, which installs the npm deps first)
//
// Env: RFC6455_BIN  the server binary [../../target/release/rfc6455]
// The server runs on 127.0.0.1:8080 because the tutorial page hard-codes ws://localhost:8080.
// Prints one line per step and ends with "N passed, N failed[, N skipped]"; exits 1 on failure.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const BIN = path.resolve(here, process.env.RFC6455_BIN || '../../target/release/rfc6455');
const CHROMIUM = '/usr/bin/chromium';
const HOST = '127.0.0.1';
const PORT = 8080;
// RFC6455_TLS=1: the same run over https:// and wss://, the server with the test certificate
// (tests/data/tls, for localhost and 127.0.0.1; the browser is told to accept it, and node
// trusts its CA through NODE_EXTRA_CA_CERTS, set by run.sh).
const TLS = process.env.RFC6455_TLS === '1';
const SCHEME = TLS ? 'https' : 'http';
const URL_ = `${SCHEME}://${HOST}:${PORT}/`;
const TUTORIAL = pathToFileURL(path.join(here, 'tutorial-page.html')).href;
// The README's screenshot is rewritten only on request (UPDATE_SCREENSHOT=1), so that a test
// run leaves the work tree clean; otherwise it goes to the temp folder for a look.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT === '1'
  ? path.join(repo, 'docs', 'chat.png')
  : path.join(os.tmpdir(), 'rfc6455-chat.png');
const TOTAL_BUDGET_MS = 110_000;   // the whole run, hard limit
const T = 10_000;                  // default bound for one wait

const started = Date.now();
let server = null;                 // { proc, log, exited }
let browser = null;
let passed = 0, failed = 0, skipped = 0, aborted = false;
const pageErrors = [];

// ---------------------------------------------------------------- helpers

function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
class Failure extends Error {}   // an expectation not met: reported without a stack
function assert(cond, msg) { if (!cond) throw new Failure(msg); }

async function step(name, fn) {
  if (aborted) { skipped++; log(`skip  ${name}`); return; }
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    log(`ok    ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    aborted = true;               // later steps build on this one's state
    log(`FAIL  ${name}: ${err instanceof Failure || !err?.stack ? err?.message ?? err : err.stack}`);
    if (server) log(`server output (last lines):\n${server.log.join('').split('\n').slice(-30).join('\n')}`);
  }
}

/** Fails clearly when something else already holds the port. */
function checkPortFree() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (e) => reject(new Failure(e.code === 'EADDRINUSE'
      ? `port ${PORT} is taken: stop whatever listens on ${HOST}:${PORT} (the tutorial page needs this port)`
      : `cannot probe port ${PORT}: ${e.message}`)));
    probe.listen(PORT, HOST, () => probe.close(resolve));
  });
}

function tcpConnects() {
  return new Promise((resolve) => {
    const s = net.connect(PORT, HOST);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
  });
}

async function startServer() {
  const args = ['chat', '--listen', `${HOST}:${PORT}`, '--heartbeat', '1'];
  if (TLS) {
    args.push('--tls-cert', path.join(repo, 'tests/data/tls/server.pem'),
      '--tls-key', path.join(repo, 'tests/data/tls/server.key'));
  }
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { proc, log: [], exited: null };
  s.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  proc.once('error', (e) => s.log.push(`spawn error: ${e.message}\n`));
  proc.stdout.on('data', (d) => s.log.push(d.toString()));
  proc.stderr.on('data', (d) => s.log.push(d.toString()));
  server = s;
  let gone = null;
  s.exited.then((r) => { gone = r; });
  const deadline = Date.now() + T;
  while (Date.now() < deadline) {
    if (gone) throw new Failure(`server exited early (${JSON.stringify(gone)}): ${s.log.join('').trim()}`);
    if (await tcpConnects()) return s;
    await sleep(100);
  }
  throw new Failure(`server not listening on ${HOST}:${PORT} after ${T} ms`);
}

async function stopServer() {
  const s = server;
  if (!s) return;
  if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGTERM');
  const r = await Promise.race([s.exited, sleep(5000).then(() => null)]);
  if (!r) {
    s.proc.kill('SIGKILL');
    await s.exited;
    server = null;
    throw new Failure('server did not exit within 5 s of SIGTERM');
  }
  server = null;
}

async function cleanup() {
  try { if (browser) await Promise.race([browser.close(), sleep(5000)]); } catch { /* ignore */ }
  browser = null;
  if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
    server.proc.kill('SIGKILL');
  }
}
// Last resort: never leave the server running, whatever happens.
process.on('exit', () => {
  if (server && server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => { log(`got ${sig}`); await cleanup(); process.exit(130); });
}

/** Opens our page with a WebSocket-frame counter and a record of #status states. */
async function openChat(context, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const info = { label, heartbeats: 0, sockets: [] };
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
  page.on('websocket', (ws) => {
    const rec = { url: ws.url(), closed: false };
    info.sockets.push(rec);
    ws.on('close', () => { rec.closed = true; });
    ws.on('framereceived', (f) => {
      if (typeof f.payload === 'string' && f.payload.includes('"type":1')) info.heartbeats++;
    });
  });
  await page.addInitScript(() => {
    // Keep each WebSocket the page opens, to read what it negotiated (its `extensions`).
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) { super(...args); window.__sockets.push(this); }
    };
    window.__states = [];
    document.addEventListener('DOMContentLoaded', () => {
      const s = document.getElementById('status');
      if (!s) return;
      window.__states.push(s.dataset.state);
      new MutationObserver(() => window.__states.push(s.dataset.state))
        .observe(s, { attributes: true, attributeFilter: ['data-state'] });
    });
  });
  await page.goto(URL_, { timeout: T });
  page.info = info;
  return page;
}

const state = (page) => page.getAttribute('#status', 'data-state');
async function waitState(page, want, timeout = T) {
  await page.waitForSelector(`#status[data-state="${want}"]`, { timeout });
}
async function setNick(page, name) {
  await page.bringToFront();
  await page.fill('#nick', name);
  await page.click('#nick-set');
  await page.waitForFunction((n) => document.getElementById('me').textContent === n, name, { timeout: T, polling: 50 });
}
/** Waits until `page` shows a chat message with this text (and sender, if given). */
async function waitMsg(page, text, name, timeout = T) {
  try {
    await page.waitForFunction(([text, name]) => [...document.querySelectorAll('#list li.msg')].some((li) =>
      li.querySelector('.text')?.textContent === text &&
      (name === null || li.querySelector('.name')?.textContent === name)), [text, name ?? null], { timeout, polling: 50 });
  } catch (e) {
    const seen = await page.$$eval('#list li.msg', (lis) => lis.slice(-5).map((li) =>
      `${li.querySelector('.name')?.textContent}: ${li.querySelector('.text')?.textContent}`)).catch(() => []);
    throw new Failure(`${page.info?.label ?? 'page'} did not show ${JSON.stringify(text)} from ${name}; last messages: ${JSON.stringify(seen)}`);
  }
}
async function typeEnter(page, text) {
  await page.bringToFront();
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}
async function clickSend(page, text) {
  await page.bringToFront();
  await page.fill('#input', text);
  await page.click('#send');
}
// Chromium stops animation frames in a page that is not in front, and Playwright's actionability
// checks wait on them: act on a page only after bringing it to the front.
const front = async (page) => { await page.bringToFront(); return page; };
const liveSockets = (page) => page.info.sockets.filter((s) => !s.closed).length;

// ---------------------------------------------------------------- the test

const watchdog = setTimeout(async () => {
  log(`FAIL  whole test took longer than ${TOTAL_BUDGET_MS / 1000} s`);
  failed++;
  await cleanup();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}, TOTAL_BUDGET_MS);

let ctx, A, B, tut;

await step('preconditions: server binary, chromium, free port 8080', async () => {
  assert(existsSync(BIN), `server binary not found: ${BIN} (build it with \`cargo build --release\`, or set RFC6455_BIN)`);
  assert(existsSync(CHROMIUM), `${CHROMIUM} not found (apt-get install -y chromium fonts-noto-cjk)`);
  await checkPortFree();
});

await step('start server and browser', async () => {
  await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    timeout: 30_000,
  });
  ctx = await browser.newContext({ viewport: { width: 900, height: 650 }, ignoreHTTPSErrors: TLS });
  const res = await fetch(URL_);
  assert(res.status === 200, `GET / answered ${res.status}`);
  assert((res.headers.get('content-type') || '').startsWith('text/html'), `GET / content-type ${res.headers.get('content-type')}`);
  const missing = await fetch(`${SCHEME}://${HOST}:${PORT}/nope`);
  assert(missing.status === 404, `GET /nope answered ${missing.status}, want 404`);
});

await step('1. two pages connect, rename to alice and bob, chat by Enter and by button', async () => {
  A = await openChat(ctx, 'A');
  B = await openChat(ctx, 'B');
  await waitState(A, 'open');
  await waitState(B, 'open');
  assert(/^guest-/.test(await A.textContent('#me')), 'A was not given a guest name');
  await setNick(A, 'alice');
  await setNick(B, 'bob');
  await typeEnter(A, 'hello from alice');
  await waitMsg(B, 'hello from alice', 'alice');
  await waitMsg(A, 'hello from alice', 'alice');
  assert(await A.inputValue('#input') === '', 'A\'s input was not cleared after sending');
  assert(await A.$$eval('#list li.msg', (lis) => lis.at(-1).classList.contains('mine')), 'own message not marked .mine');
  assert(!await B.$$eval('#list li.msg', (lis) => lis.at(-1).classList.contains('mine')), 'another\'s message marked .mine');
  await clickSend(B, 'hi alice, bob here');
  await waitMsg(A, 'hi alice, bob here', 'bob');
  await waitMsg(B, 'hi alice, bob here', 'bob');
  // Empty input sends nothing.
  const before = await B.$$eval('#list li.msg', (l) => l.length);
  await front(A);
  await A.fill('#input', '   ');
  await A.press('#input', 'Enter');
  await A.click('#send');
  await sleep(300);
  assert(await B.$$eval('#list li.msg', (l) => l.length) === before, 'an empty message was sent');
  // A message over the server's frame limit is refused by the page, which stays connected.
  const errorCount = (n) => A.waitForFunction((n) => document.querySelectorAll('#list li.notice.error').length === n,
    n, { timeout: T, polling: 50 });
  await errorCount(0);
  await A.fill('#input', 'x'.repeat(70_000));
  await A.press('#input', 'Enter');
  await errorCount(1);
  assert(await state(A) === 'open', 'A left the open state after a too-long message');
  await A.fill('#input', '');
  // A bad nickname is refused by the server (type 5) and shown as a notice.
  await A.fill('#nick', 'x'.repeat(33));
  await A.click('#nick-set');
  await errorCount(2);
  assert(await A.textContent('#me') === 'alice', 'a refused nickname changed #me');
});

await step('1a. the Members button lists who is online, by name', async () => {
  await front(A);
  await A.click('#who');
  await A.waitForFunction(() => [...document.querySelectorAll('#list li.notice.presence')]
    .some((li) => /Members \(2\): alice, bob$/.test(li.textContent)), null, { timeout: T, polling: 50 });
});

await step('1b. Chromium and the chat agreed to permessage-deflate, and long messages flow both ways', async () => {
  for (const p of [A, B]) {
    const ext = await p.evaluate(() => window.__sockets.at(-1)?.extensions);
    assert(/^permessage-deflate\b/.test(ext || ''), `${p.info.label} negotiated ${JSON.stringify(ext)}`);
    const url = await p.evaluate(() => window.__sockets.at(-1)?.url);
    const scheme = TLS ? 'wss://' : 'ws://';
    assert((url || '').startsWith(scheme), `${p.info.label} opened ${url}, not ${scheme}`);
  }
  // Over the server's threshold (128 bytes): Chromium compresses it, the server inflates it,
  // and compresses the broadcast for both pages.
  const long = 'compress me, ' + 'the same words again and again '.repeat(60);
  await typeEnter(A, long);
  await waitMsg(B, long, 'alice');
  await waitMsg(A, long, 'alice');
  const back = 'and back: ' + 'more of the same, '.repeat(80);
  await typeEnter(B, back);
  await waitMsg(A, back, 'bob');
});

await step('2. heartbeats arrive but never show in the list', async () => {
  const a0 = A.info.heartbeats, b0 = B.info.heartbeats;
  await sleep(3200);
  assert(A.info.heartbeats - a0 >= 2 && B.info.heartbeats - b0 >= 2,
    `expected heartbeats every 1 s, got ${A.info.heartbeats - a0} (A) and ${B.info.heartbeats - b0} (B) in 3.2 s`);
  for (const p of [A, B]) {
    const text = await p.$$eval('#list *', (els) => els.map((e) => e.textContent).join('\n'));
    assert(!text.includes('心跳检测'), `${p.info.label}'s list shows a heartbeat`);
  }
});

await step('3. HTML in a message is shown as text, never run', async () => {
  const evil = '<img src=x onerror=window.__pwned=1>';
  await typeEnter(A, evil);
  await waitMsg(B, evil, 'alice');
  await waitMsg(A, evil, 'alice');
  await sleep(500);               // give a wrongly inserted <img> time to fail and fire onerror
  for (const p of [A, B]) {
    assert(await p.$('#list img') === null, `${p.info.label}: an <img> element was created from a message`);
    assert(await p.evaluate(() => window.__pwned) === undefined, `${p.info.label}: window.__pwned is set`);
  }
});

await step('4. server restart: pages notice, reconnect by themselves, chat again', async () => {
  await stopServer();
  await A.waitForFunction(() => document.getElementById('status').dataset.state !== 'open', null, { timeout: T, polling: 50 });
  await B.waitForFunction(() => document.getElementById('status').dataset.state !== 'open', null, { timeout: T, polling: 50 });
  assert(await A.isDisabled('#input') && await A.isDisabled('#send'), 'input and send stay enabled while disconnected');
  await sleep(1000);              // let a reconnect attempt or two fail against the closed port
  const st = await A.evaluate(() => window.__states);
  assert(st.includes('reconnecting'), `A never showed "reconnecting": ${st.join(',')}`);
  await startServer();
  await waitState(A, 'open', 20_000);
  await waitState(B, 'open', 20_000);
  // The page re-applies the chosen nickname after a reconnect.
  await A.waitForFunction(() => document.getElementById('me').textContent === 'alice', null, { timeout: T, polling: 50 });
  await B.waitForFunction(() => document.getElementById('me').textContent === 'bob', null, { timeout: T, polling: 50 });
  await typeEnter(A, 'back after the restart');
  await waitMsg(B, 'back after the restart', 'alice');
  await sleep(200);
  for (const p of [A, B]) {
    assert(liveSockets(p) === 1, `${p.info.label} holds ${liveSockets(p)} open sockets, want exactly 1`);
  }
});

await step('5. disconnect button stays disconnected, then reconnects on click', async () => {
  await (await front(B)).click('#stop');
  await waitState(B, 'closed');
  const stopLabel = await B.textContent('#stop');
  assert(stopLabel.includes('重新连接'), `#stop did not turn into a connect button: ${JSON.stringify(stopLabel)}`);
  await B.evaluate(() => { window.__states = []; });
  const socketsBefore = B.info.sockets.length;
  await A.waitForFunction(() => /\b1\b/.test(document.getElementById('online').textContent), null, { timeout: T, polling: 50 });
  const missed = ['bob went away', 'while bob was away', 'and a third one'];
  for (const text of missed) {
    await typeEnter(A, text);
    await waitMsg(A, text, 'alice');
  }
  await sleep(3000);
  const st = await B.evaluate(() => window.__states);
  assert(st.every((s) => s === 'closed') && await state(B) === 'closed',
    `B left "closed" on its own: ${st.join(',')}`);
  assert(B.info.sockets.length === socketsBefore, 'B opened a socket while disconnected');
  assert(await B.isDisabled('#input'), 'B\'s input is enabled while disconnected');
  await (await front(B)).click('#stop');
  await waitState(B, 'open');
  await B.waitForFunction(() => document.getElementById('me').textContent === 'bob', null, { timeout: T, polling: 50 });
  // What was said while B was away comes back as history: B asked for what came after the
  // last message it saw (?since=ID), and shows each message once, none twice.
  const resumedUrl = B.info.sockets.at(-1).url;
  assert(/\/\?since=\d+$/.test(resumedUrl), `B reconnected without ?since=: ${resumedUrl}`);
  await B.waitForFunction((texts) => texts.every((t) => [...document.querySelectorAll('#list li.msg.history .text')]
    .some((e) => e.textContent === t)), missed, { timeout: T, polling: 50 });
  await typeEnter(A, 'welcome back bob');
  await waitMsg(B, 'welcome back bob', 'alice');
  const counts = await B.$$eval('#list li.msg .text', (els) => {
    const n = {};
    for (const e of els) n[e.textContent] = (n[e.textContent] || 0) + 1;
    return n;
  });
  const twice = Object.entries(counts).filter(([, n]) => n > 1);
  assert(twice.length === 0, `B shows messages more than once after resuming: ${JSON.stringify(twice)}`);
  for (const text of [...missed, 'back after the restart', 'welcome back bob']) {
    assert(counts[text] === 1, `B shows ${JSON.stringify(text)} ${counts[text] || 0} times, want 1`);
  }
  assert(liveSockets(B) === 1, `B holds ${liveSockets(B)} open sockets, want exactly 1`);
});

await step('6. the tutorial page talks to our page', async () => {
  if (TLS) {
    // The tutorial's page opens ws://localhost:8080 as it was written; over TLS that is not
    // this server. The plain run covers it.
    log('      (over TLS the tutorial page, which opens ws:// only, is left to the plain run)');
    return;
  }
  tut = await ctx.newPage();
  tut.setDefaultTimeout(T);
  const tutSockets = [];
  tut.on('websocket', (ws) => { const r = { closed: false }; tutSockets.push(r); ws.on('close', () => { r.closed = true; }); });
  await tut.goto(TUTORIAL, { timeout: T });
  await A.waitForFunction(() => /\b3\b/.test(document.getElementById('online').textContent), null, { timeout: T, polling: 50 });
  const fromTutorial = '教程页面发来的消息 from the tutorial page';
  await tut.fill('#input', fromTutorial);
  await tut.click('#send');
  await waitMsg(A, fromTutorial, null);
  assert(/^guest-/.test(await A.$$eval('#list li.msg', (lis) => lis.at(-1).querySelector('.name').textContent)),
    'the tutorial page\'s message is not from a guest name');
  const toTutorial = 'hello tutorial page, from alice';
  await typeEnter(A, toTutorial);
  await tut.waitForFunction((t) => [...document.querySelectorAll('#list li')].some((li) => li.innerText === t),
    toTutorial, { timeout: T, polling: 50 });
  const tutText = await tut.$$eval('#list li', (lis) => lis.map((li) => li.innerText).join('\n'));
  assert(!tutText.includes('心跳检测'), 'the tutorial page listed a heartbeat');
  await tut.close();
});

await step('7. screenshots (docs/chat.png, and a phone-width one)', async () => {
  // A clean chat: fresh server (no history), fresh pages.
  await ctx.close();
  ctx = null;
  await stopServer();
  await startServer();
  const c = await browser.newContext({ viewport: { width: 900, height: 650 }, locale: 'zh-CN', ignoreHTTPSErrors: TLS });
  const a = await openChat(c, 'shot-A');
  await waitState(a, 'open');
  await setNick(a, 'alice');
  const b = await openChat(c, 'shot-B');
  await waitState(b, 'open');
  await setNick(b, 'bob');
  const script = [
    [a, 'alice', '大家好！新的聊天服务器已经上线了。'],
    [b, 'bob', '你好，世界'],
    [b, 'bob', 'Nice: the page came back by itself when I restarted the server.'],
    [a, 'alice', '对，断线以后会自动重连。The disconnect button really stays disconnected now.'],
    [b, 'bob', '明天见 See you tomorrow!'],
  ];
  for (const [p, name, text] of script) {
    await typeEnter(p, text);
    await waitMsg(a, text, name);
    await waitMsg(b, text, name);
  }
  await (await front(a)).click('#input');        // the composer as a user sees it
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await a.screenshot({ path: SCREENSHOT });
  log(`wrote ${SCREENSHOT}`);
  // Phone width: only to look at, not kept in docs/.
  await b.setViewportSize({ width: 390, height: 800 });
  const phone = path.join(os.tmpdir(), 'rfc6455-chat-phone.png');
  await b.screenshot({ path: phone });
  log(`wrote ${phone}`);
  for (const width of [390, 360]) {
    await b.setViewportSize({ width, height: 800 });
    const fit = await b.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      right: Math.max(...['#input', '#send', '#stop'].map((s) => document.querySelector(s).getBoundingClientRect().right)),
      input: document.querySelector('#input').getBoundingClientRect().width,
    }));
    assert(fit.scroll <= width && fit.right <= width && fit.input >= 120,
      `input row does not fit ${width} px: ${JSON.stringify(fit)}`);
  }
  await c.close();
});

await step('no script errors in our pages', async () => {
  assert(pageErrors.length === 0, `page errors:\n${pageErrors.join('\n')}`);
});

clearTimeout(watchdog);
try { await stopServer(); } catch (e) { log(`stopping the server: ${e.message}`); failed++; }
await cleanup();
log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed ? 1 : 0);
