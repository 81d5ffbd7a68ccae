// t/browser/auto_sync.js - www/js/auto_sync.js on the demo page in real
// Chromium, driven by t/6102-auto-sync-browser.t.  Counts the trigger
// POSTs the page makes; prints "ok - ..." lines, the .t numbers them.
'use strict';

const { env, steps, launch, newPage, shot, assert, until, sleep, noDialogsNoErrors } = require('./common');

const T = steps();
const listing = process.argv.includes('--list');
const E = listing ? {} : { aUrl: env('A_URL'), cUrl: env('C_URL') };
const DEMO = '/sync/static/demo/index.html';

let browser, context, page, t0;
const sent = [];	// { origin, at } of every POST /api/sync/trigger
const answers = [];	// { status, body }

function watch(p) {
  p.on('request', (req) => {
    const u = new URL(req.url());
    if (req.method() === 'POST' && u.pathname === '/api/sync/trigger')
      sent.push({ origin: u.origin, at: Date.now() });
  });
  p.on('response', async (res) => {
    if (new URL(res.url()).pathname !== '/api/sync/trigger') return;
    answers.push({ status: res.status(), body: await res.text().catch(() => '') });
  });
}
const count = (origin) => sent.filter((s) => s.origin === origin).length;
const focus = () => page.evaluate(() => {
  window.dispatchEvent(new Event('focus'));
  document.dispatchEvent(new Event('visibilitychange'));
});

T.add('the demo page loads with the documented snippet', async () => {
  browser = await launch();
  ({ context, page } = await newPage(browser));
  watch(page);
  t0 = Date.now();
  const r = await page.goto(E.aUrl + DEMO);
  assert(r.status() === 200, `demo page: HTTP ${r.status()}`);
  const tag = await page.evaluate(() => {
    const s = document.querySelector('script[src="/sync/static/js/auto_sync.js"]');
    return s && s.defer;
  });
  assert(tag, 'no <script src="/sync/static/js/auto_sync.js" defer>');
});

T.add('no trigger before one second, exactly one about 1 s after load', async () => {
  await page.waitForLoadState('load');
  /* The page's own record of its load event: the test's clock after
   * waitForLoadState can lag by hundreds of ms on a busy machine. */
  const loaded = await page.evaluate(() => performance.timing.loadEventEnd ||
    performance.timing.loadEventStart);
  await sleep(Math.max(0, 700 - (Date.now() - loaded)));
  assert(count(new URL(E.aUrl).origin) === 0, 'a trigger was sent before one second');
  await until(() => count(new URL(E.aUrl).origin) === 1, 3000, 'the trigger after load');
  const after = sent[0].at - loaded;
  assert(after >= 900 && after < 2500, `sent ${after} ms after load`);
  await until(() => answers.length === 1, 3000, 'the answer');
  assert(answers[0].status === 202 && JSON.parse(answers[0].body).started === true,
    `answer ${answers[0].status} ${answers[0].body}`);
});

T.add('a notice says so and goes away by itself', async () => {
  const notice = page.getByRole('status').filter({ hasText: /Syncing/ });
  await notice.waitFor({ timeout: 2000 });
  await shot(page, 'demo');
  await notice.waitFor({ state: 'detached', timeout: 5000 });
});

T.add('focus and visibility within the 5 s cooldown send nothing', async () => {
  const first = sent[0].at;
  assert(Date.now() - first < 4500, 'too late to test the cooldown');
  await focus();
  await sleep(600);
  await focus();
  await sleep(300);
  assert(count(new URL(E.aUrl).origin) === 1, `${count(new URL(E.aUrl).origin)} triggers`);
});

T.add('after the cooldown, focus sends exactly one', async () => {
  await sleep(Math.max(0, sent[0].at + 5200 - Date.now()));
  await focus();
  await until(() => count(new URL(E.aUrl).origin) === 2, 2000, 'the second trigger');
  await sleep(800);
  assert(count(new URL(E.aUrl).origin) === 2, `${count(new URL(E.aUrl).origin)} triggers`);
});

T.add('offline: focus and visibility send nothing', async () => {
  await context.setOffline(true);
  assert(await page.evaluate(() => navigator.onLine) === false, 'navigator.onLine is still true');
  await sleep(Math.max(0, sent[1].at + 5200 - Date.now()));
  await focus();
  await sleep(1000);
  assert(count(new URL(E.aUrl).origin) === 2, `${count(new URL(E.aUrl).origin)} triggers while offline`);
});

T.add('back online: one trigger', async () => {
  await context.setOffline(false);
  await until(() => count(new URL(E.aUrl).origin) === 3, 3000, 'the trigger on "online"');
  await sleep(800);
  assert(count(new URL(E.aUrl).origin) === 3, `${count(new URL(E.aUrl).origin)} triggers`);
});

T.add('a node without peers: one trigger, then never again', async () => {
  const { context: c2, page: p2 } = await newPage(browser);
  watch(p2);
  const origin = new URL(E.cUrl).origin;
  await p2.goto(E.cUrl + DEMO);
  await until(() => count(origin) === 1, 3000, 'the first trigger on c');
  await until(() => answers.some((a) => /no peers/.test(a.body)), 3000, 'the "no peers" answer');
  await sleep(5500);
  await p2.evaluate(() => {
    window.dispatchEvent(new Event('focus'));
    window.dispatchEvent(new Event('online'));
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await sleep(1200);
  assert(count(origin) === 1, `${count(origin)} triggers on a node without peers`);
  assert(await p2.getByRole('status').count() === 0, 'a notice was shown on a node without peers');
  await c2.close();
});

T.add('no dialogs, no page errors', async () => {
  noDialogsNoErrors();
});

T.run(async () => { if (browser) await browser.close(); }).then((rc) => process.exit(rc));
