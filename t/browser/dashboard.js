// t/browser/dashboard.js - the dashboard in real Chromium, driven by
// t/6101-dashboard-browser.t (which starts the nodes and passes them in
// the environment).  Prints "ok - ..." lines; the .t numbers them.
'use strict';

const fs = require('fs');
const path = require('path');
const { env, steps, launch, newPage, shot, assert, until, sleep, run, login, noDialogsNoErrors } = require('./common');

const T = steps();
const listing = process.argv.includes('--list');
const E = listing ? {} : {
  ms: env('MESHSYNC'),
  aUrl: env('A_URL'), aPw: env('A_PW'), aDir: env('A_DIR'), aAddr: env('A_ADDR'),
  bUrl: env('B_URL'), bPw: env('B_PW'), bDir: env('B_DIR'), bAddr: env('B_ADDR'),
  bNode: env('B_NODE_ID'), opsPw: env('OPS_PW'), xss: env('XSS_NAME'),
};
const MARKUP = '<img src=x onerror=alert(2)>';
const FILE_MARKUP = '<img src=x onerror=alert(3)>.txt';

let browser, sa, page;	// sa: the superadmin's context

function sql(dir, statement) {
  return run('sqlite3', ['-cmd', '.timeout 5000', path.join(dir, 'instance', 'app.db'), statement]).trim();
}
function stateSql(dir, statement) {
  return run('sqlite3', ['-cmd', '.timeout 5000', path.join(dir, 'meshsync.db'), statement]).trim();
}
function workerPid(dir) {
  return parseInt(fs.readFileSync(path.join(dir, 'run', 'worker.pid'), 'utf8'), 10);
}
// Text as the user sees it (markup that was escaped shows up literally).
const bodyText = () => page.evaluate(() => document.body.innerText);
// Nothing injected: no element a payload would have created.
async function noInjected(p) {
  const bad = await (p || page).evaluate(() => {
    const scripts = [...document.querySelectorAll('script')].filter((s) => /alert/.test(s.textContent));
    return scripts.length + document.querySelectorAll('img[src="x"], img[onerror]').length;
  });
  assert(bad === 0, `${bad} injected element(s) in the DOM`);
}
// The dashboard reloads itself when it sees a gap in the event sequence;
// a reload racing our own navigation is retried, it is not what is tested.
async function visit(p) {
  for (let i = 0; ; i++) {
    try {
      const resp = await page.goto(E.aUrl + p);
      assert(resp && resp.status() === 200, `${p}: HTTP ${resp && resp.status()}`);
      return resp;
    } catch (e) {
      if (i >= 2 || !/interrupted by another navigation/.test(String(e))) throw e;
      await page.waitForLoadState('load').catch(() => {});
    }
  }
}

T.add('superadmin logs in with the form', async () => {
  browser = await launch();
  ({ context: sa, page } = await newPage(browser));
  await page.goto(`${E.aUrl}/sync/dashboard`);
  assert(/\/sync\/login/.test(page.url()), `not sent to the login form: ${page.url()}`);
  await shot(page, 'login');
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').waitFor();
  await login(page, E.aUrl, 'admin', E.aPw);
  assert(/Dashboard/.test(await page.locator('h1').innerText()), 'no dashboard heading');
  const nav = await page.locator('nav[aria-label="Main"] a').allInnerTexts();
  for (const l of ['Dashboard', 'Logs', 'Conflicts', 'Locks', 'Servers', 'Users', 'Config'])
    assert(nav.includes(l), `nav lacks ${l}: ${nav}`);
});

T.add('servers: look up the second node by address, see its identity, confirm', async () => {
  await visit('/sync/servers');
  await page.getByLabel(/Address/).fill(E.bAddr);
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByRole('heading', { name: /Add b\?/ }).waitFor();
  const text = await bodyText();
  assert(text.includes(E.bNode), 'the node id of b is not shown before confirming');
  assert(/Key fingerprint/.test(text), 'no fingerprint shown');
  await shot(page, 'servers-lookup');
  await page.getByRole('button', { name: 'Confirm and add' }).click();
  await page.locator('.notice').waitFor();
  assert(/b added/.test(await page.locator('.notice').innerText()), 'no "added" notice');
  await shot(page, 'servers');
});

T.add('after pairing back with the CLI the dashboard shows b connected', async () => {
  run(E.ms, ['peer', 'add', '--dir', E.bDir, E.aAddr]);
  await until(async () => {
    await visit('/sync/dashboard');
    return (await page.locator('tr[data-peer="b"] .badge').innerText()) === 'connected';
  }, 20000, 'b connected on the dashboard', 500);
});

T.add('"Sync now" shows the result line: sent, received, conflicts', async () => {
  sql(E.aDir, "INSERT INTO teams VALUES (1, 'Robots', 'Lyon')");
  // Every text the status line shows, in order: the live sync event
  // writes one of the same shape ("b: 3 sent, ..."), which may replace
  // the button's own line a moment later.
  await page.evaluate(() => {
    const l = document.getElementById('live');
    window.__lines = [];
    new MutationObserver(() => window.__lines.push(`${l.className}|${l.textContent}`))
      .observe(l, { childList: true, characterData: true, subtree: true, attributes: true });
  });
  await page.locator('tr[data-peer="b"] form.sync-now button').click();
  const mine = await until(async () => (await page.evaluate(() => window.__lines))
    .find((t) => /\|\d+ sent, \d+ received, \d+ conflicts; files: /.test(t)), 20000,
  'the button\'s result line');
  assert(/(^| )ok\|/.test(mine), `not ok: ${mine}`);
  await until(() => sql(E.bDir, 'SELECT name FROM teams WHERE number = 1') === 'Robots', 10000,
    'row 1 on b');
  await shot(page, 'dashboard');
});

T.add('a row written with sqlite3 on b shows up on a\'s dashboard without reload', async () => {
  await page.evaluate(() => { window.__noReload = 1; });
  const old = new Set(await page.locator('#activity li').allInnerTexts());
  sql(E.bDir, "INSERT INTO teams VALUES (2, 'Falcons', 'Nantes')");
  // A line about b's change; lines about relaying it to the other
  // (markup-named, never connected) peer do not count.
  const top = await until(async () => (await page.locator('#activity li').allInnerTexts())
    .filter((t) => !old.has(t) && !t.includes(E.xss)).find((t) => /changes received from b\b/.test(t)),
  15000, 'a new activity line: changes received from b');
  assert(await page.evaluate(() => window.__noReload === 1), 'the page was reloaded');
  // And the row really arrived.
  await until(() => sql(E.aDir, 'SELECT name FROM teams WHERE number = 2') === 'Falcons', 10000, 'row on a');
  console.log(`# activity line: ${top.replace(/\s+/g, ' ')}`);
});

T.add('a peer named like a script tag renders as text (dashboard, servers)', async () => {
  for (const p of ['/sync/dashboard', '/sync/servers']) {
    await visit(p);
    assert((await bodyText()).includes(E.xss), `${p}: the name is not shown literally`);
    await noInjected();
  }
});

T.add('conflicts: what lost to what, markup as text, restore the loser', async () => {
  // Two concurrent edits of one value (workers frozen so neither syncs
  // before both are written), and a file created on both sides.
  sql(E.aDir, "INSERT INTO teams VALUES (3, 'Owls', 'Brest')");
  run(E.ms, ['sync', '--dir', E.aDir, '--peer', 'b']);
  await until(() => sql(E.bDir, 'SELECT count(*) FROM teams WHERE number = 3') === '1', 10000, 'row 3 on b');
  const pa = workerPid(E.aDir), pb = workerPid(E.bDir);
  process.kill(pa, 'SIGSTOP'); process.kill(pb, 'SIGSTOP');
  try {
    sql(E.aDir, `UPDATE teams SET name = '${MARKUP} from a' WHERE number = 3`);
    fs.writeFileSync(path.join(E.aDir, 'instance', FILE_MARKUP), 'written on a\n');
    await sleep(50);
    sql(E.bDir, `UPDATE teams SET name = '${MARKUP} from b' WHERE number = 3`);
    fs.writeFileSync(path.join(E.bDir, 'instance', FILE_MARKUP), 'written on b\n');
  } finally {
    process.kill(pa, 'SIGCONT'); process.kill(pb, 'SIGCONT');
  }
  await until(() => {
    run(E.ms, ['sync', '--dir', E.aDir, '--peer', 'b']);
    return sql(E.aDir, 'SELECT name FROM teams WHERE number = 3') ===
      sql(E.bDir, 'SELECT name FROM teams WHERE number = 3') &&
      sql(E.aDir, 'SELECT count(*) FROM _meshsync_conflicts') !== '0';
  }, 20000, 'the edits converge with a conflict on a', 500);
  const winner = sql(E.aDir, 'SELECT name FROM teams WHERE number = 3');
  const loser = winner.endsWith('from a') ? `${MARKUP} from b` : `${MARKUP} from a`;

  await visit('/sync/conflicts');
  const row = page.locator('table.conflicts tr', { hasText: 'number=3' }).first();
  assert((await row.locator('.loser .val').innerText()) === loser, 'losing value not shown literally');
  assert((await row.locator('.winner .val').innerText()) === winner, 'winning value not shown literally');
  await noInjected();
  // The file conflict is recorded on the node that held the losing
  // version; look at whichever that is.
  const fileNode = stateSql(E.aDir, 'SELECT count(*) FROM files_conflicts') !== '0' ? 'a' :
    stateSql(E.bDir, 'SELECT count(*) FROM files_conflicts') !== '0' ? 'b' : null;
  assert(fileNode, 'no file conflict was recorded on either node');
  if (fileNode === 'a') {
    assert((await bodyText()).includes(FILE_MARKUP), 'file path not shown literally');
  } else {
    const { page: pb2, context } = await newPage(browser);
    await login(pb2, E.bUrl, 'admin', E.bPw);
    await pb2.goto(`${E.bUrl}/sync/conflicts`);
    assert((await pb2.evaluate(() => document.body.innerText)).includes(FILE_MARKUP), 'file path not shown literally on b');
    await noInjected(pb2);
    assert(pb2.dialogs.length === 0, `dialogs on b: ${pb2.dialogs}`);
    await context.close();
  }
  await shot(page, 'conflicts');

  await row.getByRole('button', { name: /Restore/ }).click();
  await page.locator('.notice').waitFor();
  assert(/Restored/.test(await page.locator('.notice').innerText()), 'no restore notice');
  assert(sql(E.aDir, 'SELECT name FROM teams WHERE number = 3') === loser, 'the losing value was not written back');
  await until(() => sql(E.bDir, 'SELECT name FROM teams WHERE number = 3') === loser ||
    (run(E.ms, ['sync', '--dir', E.aDir, '--peer', 'b']), false), 20000, 'the restored value reaches b', 500);
});

T.add('conflicts: a forged restore (unknown db or id) is refused with 400', async () => {
  const r = await page.evaluate(async () => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const post = (body) => fetch('/sync/conflicts/restore', {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(Object.assign({ csrf }, body)) }).then((x) => x.status);
    return [await post({ db: '../meshsync.db', id: '1' }), await post({ db: 'app.db', id: '99999' }),
      await post({ db: 'app.db', id: '1; DROP TABLE teams' })];
  });
  assert(r.every((s) => s === 400), `statuses ${r}`);
  assert(sql(E.aDir, 'SELECT count(*) FROM teams') !== '', 'teams table gone');
});

T.add('logs: newest first, filter by kind and server, paged, markup as text, local time zone', async () => {
  // 60 extra entries so there is a second page; one carries markup.
  const ins = [];
  for (let i = 0; i < 60; i++)
    ins.push(`INSERT INTO events(time, level, kind, peer, message) VALUES ('2026-01-15T12:00:${String(i).padStart(2, '0')}.000Z', 'info', 'test', NULL, 'filler ${i}')`);
  ins.push(`INSERT INTO events(time, level, kind, peer, message) VALUES ('2026-07-15T12:00:00.000Z', 'warn', 'test', 'b', 'odd ${MARKUP} message')`);
  stateSql(E.aDir, `BEGIN; ${ins.join('; ')}; COMMIT;`);
  await visit('/sync/logs');
  assert((await bodyText()).includes(`odd ${MARKUP} message`), 'markup in a message not shown literally');
  await noInjected();
  await shot(page, 'logs');
  await page.getByLabel('Kind').selectOption('test');
  await Promise.all([page.waitForURL(/kind=test/), page.getByRole('button', { name: 'Filter' }).click()]);
  const kinds = await page.locator('table.log td.kind').allInnerTexts();
  assert(kinds.length === 50 && kinds.every((k) => k === 'test'), `page 1: ${kinds.length} rows`);
  // Europe/Paris: summer entries are CEST, winter ones CET.
  const times = await page.locator('table.log time').allInnerTexts();
  assert(times[0] === '2026-07-15 14:00:00 CEST', `first time ${times[0]}`);
  assert(times[1] === '2026-01-15 13:00:59 CET', `second time ${times[1]}`);
  await page.getByRole('link', { name: /Older/ }).click();
  await page.waitForURL(/page=2/);
  const kinds2 = await page.locator('table.log td.kind').allInnerTexts();
  assert(kinds2.length === 11, `page 2 has ${kinds2.length} rows`);
  assert(/Page 2 of 2/.test(await bodyText()), 'no "Page 2 of 2"');
  await page.getByLabel('Server').selectOption('b');
  await Promise.all([page.waitForURL(/peer=b/), page.getByRole('button', { name: 'Filter' }).click()]);
  const rows = await page.locator('table.log tbody tr').count();
  assert(rows === 1, `server b + kind test: ${rows} rows`);
});

T.add('locks: current leases with expiry in the node\'s time zone', async () => {
  run(E.ms, ['lock', 'acquire', '--dir', E.aDir, 'report-export', 'worker-7', '--ttl', '600']);
  await visit('/sync/locks');
  const row = page.locator('tr', { hasText: 'report-export' });
  assert((await row.innerText()).includes('worker-7'), 'owner not shown');
  assert(/ CES?T/.test(await row.locator('time').last().innerText()), 'expiry not in Paris time');
  assert(/in \d+ min/.test(await row.innerText()), 'no remaining time');
  assert(/Europe\/Paris/.test(await page.locator('footer').innerText()), 'footer does not name the zone');
  await shot(page, 'locks');
});

T.add('config: invalid values are shown inline and nothing is saved', async () => {
  const conf = path.join(E.aDir, 'meshsync.conf');
  const before = fs.readFileSync(conf, 'utf8');
  await visit('/sync/config');
  await page.getByLabel('Sync interval (seconds)').fill('soon');
  await page.getByLabel('Time zone').fill('Mars/Olympus');
  await page.getByLabel('Ignored files').fill('*.tmp');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').first().waitFor();
  assert(/Nothing was saved/.test(await page.getByRole('alert').first().innerText()), 'no "nothing saved"');
  const errs = await page.locator('.field-error').allInnerTexts();
  assert(errs.length === 2, `field errors: ${errs}`);
  assert(await page.getByLabel('Sync interval (seconds)').getAttribute('aria-invalid') === 'true', 'not marked invalid');
  assert(await page.getByLabel('Ignored files').inputValue() === '*.tmp', 'entered value lost');
  assert(fs.readFileSync(conf, 'utf8') === before, 'meshsync.conf changed');
  await shot(page, 'config-errors');
});

T.add('config: saved, applied without restart, immediate flag stored', async () => {
  await visit('/sync/config');
  await page.getByLabel('Sync interval (seconds)').fill('45');
  await page.getByLabel('Ignored files').fill('*.swp *~ *.tmp');
  const box = page.getByRole('checkbox', { name: /app.db reports/ });
  assert(!(await box.isChecked()), 'reports already immediate');
  await box.check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(/saved=1/);
  assert(/saved; applied without restart/i.test(await page.locator('.notice').innerText()), 'no saved notice');
  const conf = fs.readFileSync(path.join(E.aDir, 'meshsync.conf'), 'utf8');
  assert(/^sync_interval = 45$/m.test(conf), 'sync_interval not in meshsync.conf');
  assert(/^ignore = \*\.swp \*~ \*\.tmp$/m.test(conf), 'ignore not in meshsync.conf');
  assert(stateSql(E.aDir, "SELECT immediate FROM tracked WHERE db = 'app.db' AND tbl = 'reports'") === '1', 'flag not stored');
  assert(await page.getByLabel('Sync interval (seconds)').inputValue() === '45', 'form does not show the saved value');
  assert(await box.isChecked(), 'checkbox not checked after saving');
  await shot(page, 'config');
});

T.add('users page renders for the superadmin', async () => {
  await visit('/sync/users');
  assert((await bodyText()).includes('ops'), 'user ops not listed');
  await shot(page, 'users');
});

T.add('an admin (not superadmin) gets 403 on servers, users, config and sees no such links', async () => {
  const { context, page: p } = await newPage(browser);
  await login(p, E.aUrl, 'ops', E.opsPw);
  for (const u of ['/sync/servers', '/sync/users', '/sync/config']) {
    const r = await p.goto(E.aUrl + u);
    assert(r.status() === 403, `${u}: ${r.status()}`);
  }
  await p.goto(`${E.aUrl}/sync/dashboard`);
  const nav = await p.locator('nav[aria-label="Main"] a').allInnerTexts();
  assert(!nav.includes('Servers') && !nav.includes('Users') && !nav.includes('Config'), `nav: ${nav}`);
  assert(nav.includes('Logs') && nav.includes('Conflicts') && nav.includes('Locks'), `nav: ${nav}`);
  for (const u of ['/sync/logs', '/sync/conflicts', '/sync/locks']) {
    const r = await p.goto(E.aUrl + u);
    assert(r.status() === 200, `${u}: ${r.status()}`);
  }
  await context.close();
});

T.add('narrow screen: the dashboard fits a phone', async () => {
  const { context, page: p } = await newPage(browser, { viewport: { width: 390, height: 844 } });
  await login(p, E.aUrl, 'admin', E.aPw);
  const over = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(over <= 1, `page is ${over}px wider than the screen`);
  await shot(p, 'dashboard-phone');
  await context.close();
});

T.add('keyboard: Tab reaches the nav with a visible focus ring', async () => {
  await visit('/sync/dashboard');
  let outline = '';
  for (let i = 0; i < 4 && !outline; i++) {
    await page.keyboard.press('Tab');
    outline = await page.evaluate(() => {
      const e = document.activeElement;
      const s = getComputedStyle(e);
      return e.tagName === 'A' && s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 ? e.textContent : '';
    });
  }
  assert(outline, 'no focused link with a visible outline');
});

T.add('logout ends the session', async () => {
  await visit('/sync/dashboard');
  await Promise.all([page.waitForURL(/\/sync\/login/), page.getByRole('button', { name: 'Log out' }).click()]);
  await page.goto(`${E.aUrl}/sync/dashboard`);
  assert(/\/sync\/login/.test(page.url()), `still in: ${page.url()}`);
});

T.add('no script ever ran from data: no dialog fired, no page error, on any page', async () => {
  noDialogsNoErrors();
});

T.run(async () => { if (browser) await browser.close(); }).then((rc) => process.exit(rc));
