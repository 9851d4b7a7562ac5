// A host's config in SAFE_HOME/config.json. Only derived checks and secrets sealed under the
// host's metadata key are written: unlocking always needs the passphrase.
import { createCipheriv, createDecipheriv, randomBytes, hkdfSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, fsyncSync, openSync, closeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { hostKeys, hostMaster, type GroupKeys, type HostKeys } from '../keys/derive.js';
import { UserError } from './errors.js';
import type { Policy } from '../snapshot/retention.js';
import type { HostSettings } from '../peers/metadata/sealed-objects.js';
import { passphraseFromFile, passphraseFromKeyring, secret, type Unattended } from './secrets.js';
import { formatRedundancy, parseRedundancy, stripeShape, type Redundancy } from '../redundancy/scheme.js';

export interface HostConfig {
  version: 1;
  host: string;
  mount: string;
  group: string | null;
  offer: number;
  listen: string[];
  peers: string[];
  /** How many buddies hold each snapshot (copies:N; release 0.2's setting, when `redundancy` is absent). */
  buddies?: number;
  /** copies:N or rs:K+M (default copies:2). */
  redundancy?: string;
  /** rs:K+M: replace lost buddies once fewer than K + this many hold shards (1..M; default M). */
  repairThreshold?: number;
  /** Look for group members on the LAN by mDNS (default true). */
  mdns?: boolean;
  /** Average chunk size in bytes; fixed at init (changing it would stop dedup with old data). */
  avgChunk: number;
  /** Snapshot schedule, cron syntax (node-cron; default hourly). */
  schedule: string;
  /** Retention applied after each scheduled snapshot (default: DEFAULT_POLICY). */
  retention?: Policy;
  /** When buddies are audited, cron syntax (default daily, 04:17). */
  auditSchedule?: string;
  /** A buddy failing for this long is replaced (default '7d'; s, m, h, d). */
  buddySilence?: string;
  /** A host we hold data for, silent this long, is taken as gone and its space reclaimed ('60d'). */
  ownerSilence?: string;
  /** Snapshots not on every buddy for this long are an alert (default 2d). */
  alertAfter?: string;
  /** Caps on what this host sends and receives, over all its connections ('2M' = 2 MB/s; none by default). */
  maxUpload?: string;
  maxDownload?: string;
  /** Relay for members behind NAT: how many reservations this host holds at most (none by default). */
  relay?: number;
  /** When automatic shipments may run, local time ('22:00-06:00'); any time by default. */
  shipWindow?: string;
  /** daemon.log past this size is rotated to daemon.log.1 and .2 (default 10M). */
  logMaxSize?: string;
  verifier: string;
  /** Set while `safe recover` has not finished: mount refuses, recover resumes. */
  recovering?: boolean;
  /** Group keys sealed under the host's metadata key (base64 nonce||ciphertext||tag). */
  sealed: string;
  created: string;
}

interface SealedSecrets {
  convergence: string;
  pnetKey?: string;
  rendezvous?: string;
}

export interface Unlocked {
  config: HostConfig;
  keys: HostKeys;
  convergence: Uint8Array;
  group: GroupKeys | null;
}

export function safeHome(): string {
  if (process.env.SAFE_HOME) return process.env.SAFE_HOME;
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'safe');
}

export const paths = (home: string) => ({
  config: join(home, 'config.json'),
  store: join(home, 'store'),
  staging: join(home, 'staging'),
  socket: join(home, 'daemon.sock'),
  pid: join(home, 'daemon.pid'),
  log: join(home, 'daemon.log'),
});

export function loadConfig(home: string): HostConfig {
  const file = paths(home).config;
  if (!existsSync(file)) throw new UserError(`no host in ${home}: 'safe init' creates one, 'safe recover' brings back one whose disk was lost (or set SAFE_HOME)`);
  let cfg: HostConfig;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8')) as HostConfig;
  } catch (cause) {
    throw new UserError(`config ${file} is unreadable: ${(cause as Error).message}`, 1, { cause });
  }
  if (cfg.version !== 1) throw new UserError(`config ${file} has unknown version ${String(cfg.version)}`);
  return cfg;
}

export function saveConfig(home: string, cfg: HostConfig): void {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const file = paths(home).config;
  const tmp = file + '.tmp';
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, file);
}

/** The host's redundancy scheme; a config naming none had whole copies on `buddies` buddies. */
export function redundancyOf(cfg: Pick<HostConfig, 'buddies' | 'redundancy'>): Redundancy {
  try {
    return parseRedundancy(cfg.redundancy ?? `copies:${cfg.buddies ?? 2}`);
  } catch (err) {
    throw new UserError(`config: ${(err as Error).message}`);
  }
}

/** The repair threshold of a config, checked against its scheme. */
export function repairThresholdOf(cfg: Pick<HostConfig, 'repairThreshold'>, r: Redundancy): number | undefined {
  if (cfg.repairThreshold === undefined) return undefined;
  const { m } = stripeShape(r);
  if (!Number.isInteger(cfg.repairThreshold) || cfg.repairThreshold < 1 || cfg.repairThreshold > m) {
    throw new UserError(`config: repairThreshold must be a whole number from 1 to ${m} for ${formatRedundancy(r)}, not ${String(cfg.repairThreshold)}`);
  }
  return cfg.repairThreshold;
}

/** How many members a host relays for (null: it does not relay), checked. */
export function relaySlotsOf(cfg: Pick<HostConfig, 'relay'>): number | null {
  if (cfg.relay === undefined) return null;
  if (!Number.isInteger(cfg.relay) || cfg.relay < 1 || cfg.relay > 9999) {
    throw new UserError(`config: relay must be the number of members to relay for, 1 to 9999, not ${JSON.stringify(cfg.relay)}`);
  }
  return cfg.relay;
}

/** What the root block carries of a config: a recovery sets the host up as it was. */
export function settingsOf(cfg: HostConfig): Omit<HostSettings, 'offer' | 'buddies'> {
  return {
    avgChunk: cfg.avgChunk, schedule: cfg.schedule, listen: cfg.listen, mdns: cfg.mdns ?? true, peers: cfg.peers, mount: cfg.mount,
    retention: cfg.retention, auditSchedule: cfg.auditSchedule, buddySilence: cfg.buddySilence, ownerSilence: cfg.ownerSilence,
    repairThreshold: cfg.repairThreshold,
  };
}

const configKey = (keys: HostKeys): Buffer => Buffer.from(hkdfSync('sha256', keys.metaKey, Buffer.alloc(0), 'safe/v1/config', 32));

export function sealSecrets(keys: HostKeys, convergence: Uint8Array, group: GroupKeys | null): string {
  const body: SealedSecrets = { convergence: Buffer.from(convergence).toString('base64') };
  if (group) {
    body.pnetKey = Buffer.from(group.pnetKey).toString('base64');
    body.rendezvous = group.rendezvous;
  }
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', configKey(keys), nonce);
  const ct = Buffer.concat([c.update(JSON.stringify(body)), c.final()]);
  return Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64');
}

function openSecrets(keys: HostKeys, sealed: string): SealedSecrets {
  const raw = Buffer.from(sealed, 'base64');
  const d = createDecipheriv('aes-256-gcm', configKey(keys), raw.subarray(0, 12));
  d.setAuthTag(raw.subarray(raw.length - 16));
  try {
    return JSON.parse(Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString()) as SealedSecrets;
  } catch (cause) {
    throw new UserError('the config’s sealed secrets do not open with this passphrase (config damaged?)', 1, { cause });
  }
}

/** Asks for (or reads) the passphrase and derives everything; a wrong one is one clear line. */
/** The host's keys from its passphrase; a wrong one is refused. */
export async function keysOf(cfg: HostConfig, passphrase: string): Promise<HostKeys> {
  const keys = hostKeys(await hostMaster(cfg.host, passphrase));
  if (keys.verifier !== cfg.verifier) throw new UserError(`wrong passphrase for host '${cfg.host}'`);
  return keys;
}

/** The passphrase of an unattended mount, or else from SAFE_PASSPHRASE or the terminal. */
export async function passphraseOf(cfg: HostConfig, from?: Unattended): Promise<string> {
  if (from && 'file' in from) return passphraseFromFile(from.file);
  if (from) return passphraseFromKeyring(cfg.host);
  return secret('SAFE_PASSPHRASE', `Passphrase for ${cfg.host}`);
}

/** `from`: a password file (secrets.ts checks who may read it) or the desktop keyring. */
export async function unlock(home: string, cfg = loadConfig(home), from?: Unattended): Promise<Unlocked> {
  const keys = await keysOf(cfg, await passphraseOf(cfg, from));
  const s = openSecrets(keys, cfg.sealed);
  const group: GroupKeys | null =
    cfg.group && s.pnetKey && s.rendezvous
      ? { pnetKey: Buffer.from(s.pnetKey, 'base64'), rendezvous: s.rendezvous, convergence: Buffer.from(s.convergence, 'base64') }
      : null;
  return { config: cfg, keys, convergence: Buffer.from(s.convergence, 'base64'), group };
}

const UNITS: Record<string, number> = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 };

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new UserError(`not a size: '${text}' (e.g. 20G, 500M)`);
  return Math.round(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
}

const RATE_UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9 };

/** '2M', '500K', '2MB/s' -> bytes a second (decimal, as link speeds are quoted). */
export function parseRate(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:B)?(?:\/s)?$/i.exec(text.trim());
  const rate = m ? Math.round(Number(m[1]) * RATE_UNITS[m[2]!.toUpperCase()]!) : 0;
  if (!m || rate < 1000) throw new UserError(`${what} is not a rate of at least 1K: '${text}' (e.g. 2M for 2 MB/s, 500K)`, 2);
  return rate;
}

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** '3d', '12h', '90s' -> milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd])$/.exec(text.trim());
  if (!m) throw new UserError(`${what} in the config is not a duration: '${text}' (e.g. 3d, 12h, 90s)`);
  return Math.round(Number(m[1]) * SECONDS[m[2]!]! * 1000);
}

export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i]}`;
}
