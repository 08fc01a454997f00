// The staff panel in a real browser, played by a member of staff who is not technical: every
// control they use is found by its visible label or role, never by a CSS selector (only what
// the test reads back, an order's facts, is found by its place on the page). Each failure class
// the demo seeds is resolved from the queue in at most three clicks, and the order's final
// state is checked; axe-core checks every page; the same flow passes with JavaScript off.
//
// Needs: ORDERLY_BIN (the `orderly` binary), Chromium at CHROMIUM (default /usr/bin/chromium).
// Screenshots of the queue, an order and the messages page go to ORDERLY_SCREENSHOTS if set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const BIN = process.env.ORDERLY_BIN;
const SHOTS = process.env.ORDERLY_SCREENSHOTS;
const STAFF = {
  support: ['sam@shop.example', 'support password'],
  manager: ['mia@shop.example', 'manager password'],
  engineer: ['ian@shop.example', 'engineer password'],
};

let dir, server, base, browser, mailPort, clicks = {};
/** The order the payment test got paid, for the refund test. */
let paidOrder;

/** A free port on loopback, with nothing listening on it (the mail server that is down). */
async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A mail server that takes every message (enough SMTP for the notifier), on `port`. */
function startMailServer(port) {
  const received = [];
  const srv = net.createServer((socket) => {
    let data = false, buffer = '';
    socket.write('220 mail.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let at;
      while ((at = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (data) {
          if (line === '.') { data = false; received.push(Date.now()); socket.write('250 queued\r\n'); }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250 mail.test\r\n');
        else if (verb === 'DATA') { data = true; socket.write('354 go ahead\r\n'); }
        else if (verb === 'QUIT') { socket.end('221 bye\r\n'); }
        else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve({ srv, received })));
}

function run(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`orderly ${args[0]}: ${out}`))));
    child.stdin.end(input ?? '');
  });
}

before(async () => {
  assert.ok(BIN, 'set ORDERLY_BIN to the orderly binary');
  dir = mkdtempSync(path.join(os.tmpdir(), 'orderly-panel-'));
  const db = `sqlite://${dir}/panel.db`;
  mailPort = await freePort();
  server = spawn(BIN, [
    'serve', '--database-url', db, '--bind', '127.0.0.1:0', '--demo-failures',
    '--notifier', 'smtp', '--smtp-host', '127.0.0.1', '--smtp-port', String(mailPort),
    '--smtp-tls', 'none', '--notify-from', 'Orderly Shop <orders@shop.example>',
    '--notify-admin-email', 'staff@shop.example',
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ORDERLY_LOG: 'warn' } });
  let log = '';
  server.stderr.on('data', (d) => { log += d; });
  base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`orderly serve did not start:\n${out}\n${log}`)), 30_000);
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on('exit', (code) => reject(new Error(`orderly serve exited (${code}):\n${out}\n${log}`)));
  });
  for (const [role, [email, password]] of Object.entries(STAFF)) {
    await run(['user', 'create', '--database-url', db, '--role', role, '--email', email, '--name', 'Staff ✨'], `${password}\n`);
  }
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (Object.keys(clicks).length) console.log('clicks from the queue to resolved:', JSON.stringify(clicks));
  for (const [what, n] of Object.entries(clicks)) assert.ok(n <= 3, `${what} took ${n} clicks`);
});

/** A page in a fresh context (its own cookies); axe-core is injected, so the CSP is bypassed. */
async function open(javaScriptEnabled = true) {
  const context = await browser.newContext({ javaScriptEnabled, bypassCSP: true, baseURL: base });
  const page = await context.newPage();
  return { context, page };
}

/** No accessibility violation axe-core can find on the page as it is now. */
async function accessible(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object').catch(() => false))) {
    await page.addScriptTag({ path: AXE });
  }
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  assert.deepEqual(
    violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`),
    [],
    `axe-core on ${page.url()}`,
  );
}

async function signIn(page, [email, password]) {
  await page.goto('/admin');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Needs attention' }).waitFor();
}

/** Reloads the queue until a case that says `words` is there (the saga gets there by itself). */
async function caseSaying(page, words) {
  for (let i = 0; i < 100; i++) {
    await page.goto('/admin');
    const found = page.getByRole('listitem').filter({ hasText: words });
    if (await found.count()) return found;
    await page.waitForTimeout(300);
  }
  assert.fail(`no case saying "${words}" reached the queue`);
}

/** Reloads the order page until `ok(statusText)`. */
async function statusBecomes(page, url, status) {
  for (let i = 0; i < 100; i++) {
    await page.goto(url);
    const text = await page.locator('.facts .status').first().textContent();
    if (text.trim() === status) return;
    await page.waitForTimeout(300);
  }
  assert.fail(`order at ${url} never became ${status}`);
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

test('support signs in, and the sign-in and queue pages pass axe-core', async () => {
  const { context, page } = await open();
  await page.goto('/admin');
  assert.match(page.url(), /\/admin\/login/);
  await accessible(page);
  await page.getByLabel('E-mail').fill(STAFF.support[0]);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await signIn(page, STAFF.support);
  await accessible(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await context.close();
});

test('a payment the provider could not take: retry now, two clicks, and it is paid', async () => {
  const { context, page } = await open();
  await signIn(page, STAFF.support);
  const theCase = await caseSaying(page, 'The payment could not be taken');
  await shot(page, 'panel-queue');
  // Support sees the case in plain words, never the raw error.
  assert.equal(await theCase.getByText('Last error').count(), 0);
  const orderLink = await theCase.getByRole('link', { name: /^Order / }).getAttribute('href');
  let n = 0;
  await theCase.getByRole('link', { name: 'Retry now' }).click(); n++;
  await page.getByRole('heading', { name: /Run it again/ }).waitFor();
  await accessible(page);
  await page.getByRole('button', { name: 'Retry now' }).click(); n++;
  await page.getByRole('status').filter({ hasText: 'Done: the step runs again now' }).waitFor();
  clicks['payment provider down'] = n;
  await statusBecomes(page, orderLink, 'paid');
  paidOrder = orderLink;
  await accessible(page);
  await shot(page, 'panel-order');
  const timeline = await page.getByRole('region', { name: /Timeline/ }).textContent();
  assert.match(timeline, /RetryRequested/);
  assert.match(timeline, /staff:sam@shop\.example/);
  assert.match(timeline, /PaymentCaptured/);
  assert.match(timeline, /payment gave up after 4 attempts/);
  assert.doesNotMatch(timeline, /simulated|sim_unavailable/, 'support sees no raw error in the timeline');
  await context.close();
});

test('stage 1 at work: the declined card waits for its automatic retry, and says so', async () => {
  const { context, page } = await open();
  await signIn(page, STAFF.support);
  let table;
  for (let i = 0; i < 100; i++) {
    await page.goto('/admin');
    table = page.getByRole('region', { name: 'Trying again on their own' });
    if (await table.count()) break;
    await page.waitForTimeout(300);
  }
  const row = table.getByRole('row').filter({ hasText: 'card was declined' });
  assert.match(await row.textContent(), /automatic retry in \d+:\d\d/);
  await accessible(page);
  await row.getByRole('link').click();
  const stage = page.getByRole('region', { name: 'Trying again on its own' });
  assert.match(await stage.textContent(), /automatic retry in \d+:\d\d · retry now/);
  await accessible(page);
  await context.close();
});

test('an address the carrier cannot deliver to: corrected in two clicks, emoji and all', async () => {
  const { context, page } = await open();
  await signIn(page, STAFF.support);
  const theCase = await caseSaying(page, 'The carrier cannot deliver');
  const orderLink = await theCase.getByRole('link', { name: /^Order / }).getAttribute('href');
  let n = 0;
  await theCase.getByRole('link', { name: 'Correct the address' }).click(); n++;
  await accessible(page);
  // A required field emptied: the form says what to fix and keeps what was typed.
  await page.getByLabel('City or town').fill(' ');
  await page.getByLabel('Street and number').fill('渋谷区神南 1-2-3 🏠');
  await page.getByRole('button', { name: 'Save the new address' }).click();
  await page.getByRole('alert').filter({ hasText: 'City or town' }).waitFor();
  assert.equal(await page.getByLabel('Street and number').inputValue(), '渋谷区神南 1-2-3 🏠');
  await accessible(page);
  await page.getByLabel('City or town').fill('東京都');
  await page.getByLabel(/Reason/).fill('the customer gave the right number by phone');
  await page.getByRole('button', { name: 'Save the new address' }).click(); n++;
  await page.getByRole('status').filter({ hasText: 'ships to the new address' }).waitFor();
  clicks['undeliverable address'] = n;
  const facts = await page.locator('.facts').textContent();
  assert.match(facts, /山田 太郎, 渋谷区神南 1-2-3 🏠, 東京都, 150-0041, JP/);
  assert.equal(await page.getByRole('region', { name: 'Needs attention' }).count(), 0);
  await page.goto('/admin');
  assert.equal(await page.getByRole('listitem').filter({ hasText: 'The carrier cannot deliver' }).count(), 0);
  assert.match(orderLink, /^\/admin\/orders\//);
  await context.close();
});

test('messages a down mail server did not take: sent again in one click once it is back', async () => {
  const { context, page } = await open();
  await signIn(page, STAFF.support);
  await page.getByRole('link', { name: 'Messages not sent' }).click();
  // Every message of the demo's orders fails after its retries: wait until the list stops
  // growing for longer than a message's retries take, so none is still being retried.
  const failed = page.getByRole('listitem').filter({ hasText: 'The mail server did not take the message' });
  let count = -1, steady = 0;
  for (let i = 0; i < 100 && steady < 6; i++) {
    await page.waitForTimeout(750);
    await page.reload();
    const now = await failed.count();
    steady = now > 0 && now === count ? steady + 1 : 0;
    count = now;
  }
  assert.ok((await failed.count()) > 0, 'failed messages are listed');
  assert.equal(await page.getByText('SMTP').count(), 0, 'support sees no raw error');
  await accessible(page);
  await shot(page, 'panel-messages');
  const before = await failed.count();
  const mail = await startMailServer(mailPort);
  try {
    await failed.first().getByRole('button', { name: /^Send again/ }).click();
    await page.getByRole('status').filter({ hasText: 'Done: the message went out.' }).waitFor();
    clicks['mail server down'] = 1;
    assert.equal(mail.received.length, 1);
    assert.equal(await page.getByRole('listitem').filter({ hasText: 'The mail server did not take the message' }).count(), before - 1);
  } finally {
    mail.srv.close();
  }
  await context.close();
});

test('an engineer reads the raw error; a customer token opens nothing', async () => {
  const { context, page } = await open();
  await signIn(page, STAFF.engineer);
  await page.getByRole('link', { name: 'Messages not sent' }).click();
  await page.getByText('Last error').first().click();
  assert.ok(await page.getByText(/SMTP|connect|refused/i).count(), 'the engineer sees the raw error');
  assert.equal(await page.getByRole('button', { name: /^Send again/ }).count(), 0);
  await accessible(page);
  await page.getByRole('link', { name: 'With engineering' }).click();
  await page.getByRole('heading', { name: 'With engineering' }).waitFor();
  await accessible(page);
  // A customer signs up and presents their bearer token: the panel sends them to sign in.
  const register = await page.request.post('/v1/auth/register', {
    data: { email: 'zoe@example.com', password: 'correct horse battery', name: 'Zoë 🌻' },
  });
  assert.equal(register.status(), 201);
  const token = (await register.json()).tokens.accessToken;
  const { context: customer, page: theirs } = await open();
  await customer.setExtraHTTPHeaders({ authorization: `Bearer ${token}` });
  await theirs.goto('/admin');
  assert.match(theirs.url(), /\/admin\/login/);
  await customer.close();
  await context.close();
});

// axe-core needs scripts, so it checks these pages in the tests above; here they are used as a
// browser without JavaScript uses them.
test('with JavaScript off, the same forms work: sign in, note, sign out', async () => {
  const { context, page } = await open(false);
  await signIn(page, STAFF.manager);
  // Customer 002's page, from the search box, then their latest order.
  await page.getByLabel('Find an order or a customer').fill('002');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('heading', { name: 'Orders, newest first' }).waitFor();
  await page.getByRole('link', { name: /^[0-9a-f-]{36}$/ }).first().click();
  await page.getByLabel(/Add a note/).fill('Called Zoé back: all good 👍');
  await page.getByRole('button', { name: 'Add note' }).click();
  await page.getByRole('status').filter({ hasText: 'your note is on the timeline' }).waitFor();
  assert.ok(await page.getByText('Called Zoé back: all good 👍').count());
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await context.close();
});

test('support refunds part of a paid order: how much and why, then exactly what goes back', async () => {
  const { context, page } = await open();
  await signIn(page, STAFF.support);
  // The order the payment test got paid: support may refund part of it.
  assert.ok(paidOrder, 'the payment test ran first and left a paid order');
  await page.goto(paidOrder);
  let n = 0;
  await page.getByRole('link', { name: 'Refund part' }).click(); n++;
  await page.getByRole('heading', { name: /Refund part of the payment/ }).waitFor();
  await accessible(page);
  await page.getByLabel('Amount to refund, in USD').fill('10.00');
  await page.getByLabel('Reason').fill('the parcel came a week late 🐌');
  await page.getByRole('button', { name: 'Review the refund' }).click(); n++;
  await page.getByText('10.00 USD goes back to the payment method the order was paid with.').waitFor();
  await accessible(page);
  await page.getByRole('button', { name: 'Refund 10.00 USD' }).click(); n++;
  await page.getByRole('status').filter({ hasText: 'Done: the refund is on its way' }).waitFor();
  clicks['refund part of a payment'] = n;
  const timeline = await page.getByRole('region', { name: /Timeline/ }).textContent();
  assert.match(timeline, /refund of 10\.00 USD asked for: the parcel came a week late 🐌/);
  await context.close();
});
