// What needs the user's attention, from what the daemon knows: a buddy that failed an audit, a
// host that has not shipped for too long, a disk near full. Shown by safe status and, where a
// desktop runs notify-send, once each as a notification.
import { execFile } from 'node:child_process';
import { statfsSync } from 'node:fs';
import type { PeerStatus } from '../peers/service.js';
import type { Log } from '../log/logger.js';

export interface Alert {
  kind: 'audit-failed' | 'not-shipped' | 'disk-low';
  /** Names the alert across checks: notified once. */
  key: string;
  message: string;
}

/** Below either, the disk under SAFE_HOME is near full. */
const DISK_LOW_FRACTION = 0.05;
const DISK_LOW_BYTES = 1 << 30;

export interface AlertFacts {
  now: number;
  home: string;
  /** Null alone, or while the peer service is not up. */
  peers: PeerStatus | null;
  /** The newest snapshot's time, or null. */
  latestTime: number | null;
  /** Not shipped for this long (config `alertAfter`) is an alert. */
  shipAlertMs: number;
}

const when = (t: number): string => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');

export function alertsOf(f: AlertFacts): Alert[] {
  const out: Alert[] = [];
  for (const a of f.peers?.audits ?? []) {
    // The audits of the last week: a failure is shown that long.
    if (a.verdict !== 'failed') continue;
    out.push({ kind: 'audit-failed', key: `audit-failed:${a.peer}:${a.time}`, message: `buddy ${a.peer} failed its audit at ${when(a.time)} (${a.missing} of ${a.sampled} chunks missing${a.error ? `: ${a.error}` : ''}); it was replaced` });
  }
  const p = f.peers;
  if (p && p.latest !== null && f.latestTime !== null) {
    const behind = p.buddies.filter((b) => b.epoch !== p.latest);
    const lastShip = Math.max(0, ...p.buddies.map((b) => b.lastOk ?? 0));
    const since = Math.max(lastShip, f.latestTime);
    if ((p.buddies.length === 0 || behind.length > 0) && f.now - since > f.shipAlertMs) {
      const held = p.buddies.length - behind.length;
      out.push({
        kind: 'not-shipped',
        key: `not-shipped:${p.latest}`,
        message: `the latest snapshot (${when(f.latestTime)}) is on ${held} of ${p.buddies.length} buddies${lastShip ? `; the last shipment that arrived was at ${when(lastShip)}` : '; nothing has arrived anywhere yet'} (see safe peers)`,
      });
    }
  }
  try {
    const s = statfsSync(f.home);
    const free = s.bavail * s.bsize;
    const total = s.blocks * s.bsize;
    if (free < DISK_LOW_BYTES || free < total * DISK_LOW_FRACTION) {
      out.push({ kind: 'disk-low', key: 'disk-low', message: `the disk holding ${f.home} is near full: ${(free / 2 ** 30).toFixed(1)} GiB free of ${(total / 2 ** 30).toFixed(1)} GiB` });
    }
  } catch {
    // statfs unsupported here: nothing to say
  }
  return out;
}

/** Shows each new alert once as a desktop notification, where notify-send exists. */
export class Notifier {
  private readonly told = new Set<string>();
  private available: boolean | null = null;

  constructor(private readonly log: Log) {}

  notify(alerts: Alert[]): void {
    for (const a of alerts) {
      if (this.told.has(a.key)) continue;
      this.told.add(a.key);
      this.log.warn(`attention: ${a.message}`);
      if (this.available === false) continue;
      execFile('notify-send', ['--app-name=safe', 'safe needs attention', a.message], (err) => {
        // Absent (a server, a container): not an error, and not tried again.
        if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') this.available = false;
        else this.available = true;
      });
    }
  }
}
