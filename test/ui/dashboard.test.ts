// The dashboard in a real browser (Debian's Chromium driven by Playwright) against real
// daemons on loopback: a host and two buddies. Take a snapshot from the button, watch its
// shipment go, browse into it, download and restore a file and compare bytes, see a stopped
// buddy turn unhealthy. Screenshots of the screens go to build-logs/screens/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { seededBytes, tempDir } from '../helpers.js';
import { makeMember } from '../peers/group.js';
import { callDaemon } from '../../src/cli/control.js';
import { paths } from '../../src/cli/config.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENS = new URL('../../../build-logs/screens/', import.meta.url).pathname;

test('the dashboard: snapshot from the button, shipment progress, browse, download, restore, a stopped buddy', { timeout: 240_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: bash scripts/install-deps.sh installs Debian's chromium`);
  mkdirSync(SCREENS, { recursive: true });
  const b1 = await makeMember('ui-buddy-1', { offer: '1G' });
  b1.mount();
  const b2 = await makeMember('ui-buddy-2', { offer: '1G', peers: [b1.addr] });
  b2.mount();
  // Capped so the shipment is still going when the page looks.
  const host = await makeMember('ui-host', { offer: '1G', buddies: 2, peers: [b1.addr], initArgs: ['--max-upload', '3M'] });
  host.mount();
  const photo = seededBytes(12_000_000, 21);
  mkdirSync(join(host.mnt, 'photos'));
  writeFileSync(join(host.mnt, 'photos', 'beach.jpg'), photo);
  writeFileSync(join(host.mnt, 'notes.txt'), 'remember the milk\n');
  await host.settle();
  const url = (JSON.parse(host.ok('ui', '--no-open', '--json')) as { url: string }).url;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32}$/);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(SCREENS, `${name}.png`), fullPage: true });
    await page.goto(url);
    await page.waitForSelector('#snapshot-now');
    assert.equal(await page.textContent('#latest'), 'no snapshots yet');

    // The button takes a snapshot; the page hears of it and of the shipment that follows.
    await page.click('#snapshot-now');
    await page.waitForFunction(() => document.querySelector('#latest')?.textContent?.startsWith('latest: '));
    const name = (await page.textContent('#latest'))!.replace('latest: ', '');
    assert.deepEqual((JSON.parse(host.ok('snapshots', '--json')) as { name: string }[]).map((s) => s.name), [name]);
    const seen = new Set<number>();
    await page.waitForSelector('.shipment .pct', { timeout: 30_000 });
    await shot('shipping');
    const t0 = Date.now();
    for (;;) {
      const pcts = await page.$$eval('.shipment .pct', (els) => els.map((e) => Number(e.textContent!.replace('%', ''))));
      for (const p of pcts) seen.add(p);
      const lag = await page.$$eval('#buddies tr[data-peer] td:nth-child(4)', (els) => els.map((e) => e.textContent));
      if (pcts.length === 0 && lag.length === 2 && lag.every((l) => l === 'up to date')) break;
      assert.ok(Date.now() - t0 < 90_000, `the shipment did not finish: ${[...seen].join(',')} ${lag.join(',')}`);
      await page.waitForTimeout(200);
    }
    assert.ok([...seen].some((p) => p > 0 && p < 100), `progress was shown on the way: ${[...seen].sort((a, b) => a - b).join(', ')}%`);
    await page.waitForFunction(() => /^2[2-6]\.\d MiB$/.test(document.querySelector('#storage tr:last-child td:last-child')?.textContent ?? ''));
    // The store's figures noted after the snapshot: a chart over time; and what comes next.
    await page.waitForSelector('#storage-chart canvas');
    assert.match((await page.textContent('#next'))!, /^next snapshot \S.*, shipped at once; next audit \S/);
    await shot('overview');

    // Into the snapshot: download a file, then restore it to a new place.
    await page.selectOption('#snapshot-select', name);
    await page.click('#entries a.dir:text("photos/")');
    await page.waitForSelector('#entries tr[data-name="beach.jpg"]');
    await shot('browser');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#entries tr[data-name="beach.jpg"] a.download')]);
    assert.ok(readFileSync((await download.path())!).equals(photo), 'the downloaded file is the snapshot\'s bytes');
    await page.click('#entries tr[data-name="beach.jpg"] a.versions');
    await page.waitForSelector('#versions tr');
    assert.equal(await page.$$eval('#versions tr', (r) => r.length), 1);

    const target = join(tempDir('safe-ui-restore-'), 'restored', 'beach.jpg');
    await page.click('#entries tr[data-name="beach.jpg"] a.restore');
    await page.fill('#restore-target', target);
    await page.click('#restore-go');
    await page.waitForSelector('.restore td.ok', { timeout: 30_000 });
    assert.ok(readFileSync(target).equals(photo), 'the restored file is the snapshot\'s bytes');

    // A buddy stops: the page shows it unhealthy.
    const stopped = b2.peerId();
    b2.unmount();
    await page.waitForSelector(`#buddies tr[data-peer="${stopped}"] td.health.bad`, { timeout: 60_000 });
    assert.match((await page.textContent(`#buddies tr[data-peer="${stopped}"] td.health`))!, /^(not connected|failing \(\d+x\))$/);
    assert.equal(await page.$$eval(`#buddies tr[data-peer="${b1.peerId()}"] td.health.ok`, (e) => e.length), 1);
    await shot('buddy-down');
    await firstPaint(page, url, 'a few snapshots');
    // A long history: 1,000 snapshots, taken through the control socket as `safe snapshot` would.
    for (let i = 0; i < 999; i++) {
      const r = await callDaemon(paths(host.home).socket, { cmd: 'snapshot' });
      assert.ok(r?.ok, JSON.stringify(r));
    }
    await firstPaint(page, url, '1,000 snapshots');
    assert.equal(await page.$$eval('#snapshot-select option', (o) => o.length), 1001);
    await shot('long-history');
  } finally {
    await browser.close();
  }
});

/** Time to the page with its data and the folder's listing, reported (budget: 1 s). */
async function firstPaint(page: Page, url: string, what: string): Promise<void> {
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('#entries tr[data-name]');
  process.stderr.write(`dashboard, ${what}: page with its data and the folder's listing after ${Date.now() - t0} ms\n`);
}
