// t/browser/common.js - shared by the browser tests: TAP steps, Chromium
// launch with the flags this machine needs, small helpers for nodes.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

// Without the background-networking flags Chromium keeps dialing Google's
// hosts, which a closed network refuses (many at a time).
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
  '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

// Steps run in order; each prints "ok - title" or "not ok - title" (the .t
// numbers them).  A failed step does not stop the others: later ones say
// for themselves whether they could still run.
function steps() {
  const list = [];
  return {
    add(title, fn) { list.push({ title, fn }); },
    async run(cleanup) {
      if (process.argv.includes('--list')) {
        for (const s of list) console.log(s.title);
        return 0;
      }
      let failed = 0;
      try {
        for (const s of list) {
          try {
            await s.fn();
            console.log(`ok - ${s.title}`);
          } catch (e) {
            failed++;
            console.log(`not ok - ${s.title}`);
            for (const l of String(e && e.stack || e).split('\n').slice(0, 12))
              console.log(`#   ${l}`);
          }
        }
      } finally {
        if (cleanup) await cleanup();
      }
      return failed ? 1 : 0;
    },
  };
}

// A browser with a fresh, empty profile: playwright's launch() makes a new
// temporary --user-data-dir for every launch and removes it on close.
async function launch() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

// Every page newPage opened, for the end-of-run checks.
const opened = [];

async function newPage(browser, opts) {
  const context = await browser.newContext(Object.assign({
    viewport: { width: 1280, height: 860 },
  }, opts || {}));
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.dialogs = [];
  // Any alert/confirm/prompt is recorded (and dismissed): the XSS checks
  // assert none ever fired.
  page.on('dialog', (d) => { page.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  // Uncaught exceptions in the page's scripts, which the tests assert
  // never happen.
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  opened.push(page);
  return { context, page };
}

function shotDir() {
  const d = process.env.SCREENSHOTS ||
    path.join(process.env.TEST_BUILD_DIR || '.', 't', 'artifacts', 'screenshots');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shotDir(), `${name}.png`), fullPage: true });
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg || 'assertion failed');
}

// Poll fn (async, returns truthy when done) every `every` ms for `ms`.
async function until(fn, ms, what, every) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, every || 100));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(cmd, args, input) {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

async function login(page, url, user, password) {
  await page.goto(`${url}/sync/login`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL(/\/sync\/dashboard/), page.getByRole('button', { name: 'Log in' }).click()]);
}

// Assert that no page opened so far showed a dialog or threw.
function noDialogsNoErrors() {
  assert(opened.length > 0, 'no page was opened');
  for (const p of opened) {
    assert(p.dialogs.length === 0, `dialogs on ${p.url()}: ${p.dialogs}`);
    assert(p.errors.length === 0, `page errors on ${p.url()}: ${p.errors}`);
  }
}

module.exports = { env, steps, launch, newPage, shot, assert, until, sleep, run, login, noDialogsNoErrors };
