// The `safe` command: parse, dispatch, and turn every failure into one line and an exit code.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { damagedIndex, UserError } from './errors.js';
import type { Out } from './commands-store.js';

// Each command loads only its own modules: the daemon's and recovery's pull in libp2p, which
// cost every `safe status` 0.7 s of start-up.
const store = () => import('./commands-store.js');
const mounting = () => import('./commands-mount.js');
const peering = () => import('./commands-peers.js');
const snapshotting = () => import('./commands-snapshot.js');

const USAGE = `usage: safe <command> [options]   (--json for machine output)
  init [--host NAME] [--mount DIR] [--group NAME [--recovery-sheet FILE]] [--offer SIZE] [--listen MULTIADDR] [--peer MULTIADDR]... [--redundancy copies:N|rs:K+M [--fallback copies:N]] [--no-mdns]
  mount [--foreground]
  unmount
  snapshot [--label L]
  snapshots
  forget --keep-last N --keep-hourly N --keep-daily N --keep-weekly N --keep-monthly N [--dry-run] [--allow-empty]
  diff A B
  restore SNAPSHOT[:PATH] --target DIR
  status
  sync [--wait]
  peers
  verify [--remote] [--repair]
  recover [--host NAME] [--mount DIR] [--group NAME] [--peer MULTIADDR]... [--listen MULTIADDR] [--force] [--no-mdns] [--no-mount | --no-wait]`;

type Options = NonNullable<ParseArgsConfig['options']>;
const common: Options = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };

function parse(args: string[], options: Options) {
  try {
    return parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new UserError(`${(cause as Error).message.split('\n')[0].replace(/\. To specify a positional.*$/, '')} (see safe help)`, 2, { cause });
  }
}

function output(json: boolean): Out {
  return {
    json,
    print(human, data) {
      process.stdout.write(json ? JSON.stringify(data) + '\n' : human + '\n');
    },
  };
}

async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'init': {
      const { values } = parse(rest, {
        host: { type: 'string' },
        mount: { type: 'string' },
        group: { type: 'string' },
        offer: { type: 'string' },
        listen: { type: 'string' },
        peer: { type: 'string', multiple: true },
        buddies: { type: 'string' },
        redundancy: { type: 'string' },
        fallback: { type: 'string' },
        'no-mdns': { type: 'boolean' },
        'recovery-sheet': { type: 'string' },
      });
      const { init } = await store();
      await init(values as Parameters<typeof init>[0], output(!!values.json));
      return 0;
    }
    case 'mount': {
      const { values } = parse(rest, { foreground: { type: 'boolean' } });
      const { mount } = await mounting();
      await mount(!!values.foreground, output(!!values.json));
      return 0;
    }
    case 'unmount': {
      const { values } = parse(rest, {});
      const { unmount } = await mounting();
      await unmount(output(!!values.json));
      return 0;
    }
    case '__daemon':
      await (await mounting()).daemonMain();
      return 0;
    case 'snapshot': {
      const { values } = parse(rest, { label: { type: 'string' } });
      const { snapshot } = await snapshotting();
      await snapshot(values.label as string | undefined, output(!!values.json));
      return 0;
    }
    case 'snapshots': {
      const { values } = parse(rest, {});
      await (await snapshotting()).snapshots(output(!!values.json));
      return 0;
    }
    case 'forget': {
      const keep = (k: string) => ({ [`keep-${k}`]: { type: 'string' as const } });
      const { values } = parse(rest, { ...keep('last'), ...keep('hourly'), ...keep('daily'), ...keep('weekly'), ...keep('monthly'), 'dry-run': { type: 'boolean' }, 'allow-empty': { type: 'boolean' } });
      const num = (k: string): number | undefined => (values[`keep-${k}`] === undefined ? undefined : Number(values[`keep-${k}`]));
      const { forget } = await snapshotting();
      await forget({ last: num('last'), hourly: num('hourly'), daily: num('daily'), weekly: num('weekly'), monthly: num('monthly') }, !!values['dry-run'], !!values['allow-empty'], output(!!values.json));
      return 0;
    }
    case 'diff': {
      const { values, positionals } = parse(rest, {});
      if (positionals.length !== 2) throw new UserError('usage: safe diff SNAPSHOT_A SNAPSHOT_B', 2);
      await (await snapshotting()).diff(positionals[0]!, positionals[1]!, output(!!values.json));
      return 0;
    }
    case 'restore': {
      const { values, positionals } = parse(rest, { target: { type: 'string' } });
      if (positionals.length !== 1) throw new UserError('usage: safe restore SNAPSHOT[:PATH] --target DIR', 2);
      const { restore } = await snapshotting();
      await restore(positionals[0]!, values.target as string | undefined, output(!!values.json));
      return 0;
    }
    case 'sync': {
      const { values } = parse(rest, { wait: { type: 'boolean' } });
      return (await peering()).sync(!!values.wait, output(!!values.json));
    }
    case 'peers': {
      const { values } = parse(rest, {});
      await (await peering()).peers(output(!!values.json));
      return 0;
    }
    case 'recover': {
      const { values } = parse(rest, {
        host: { type: 'string' },
        mount: { type: 'string' },
        group: { type: 'string' },
        peer: { type: 'string', multiple: true },
        listen: { type: 'string' },
        force: { type: 'boolean' },
        'no-mdns': { type: 'boolean' },
        'no-mount': { type: 'boolean' },
        'no-wait': { type: 'boolean' },
      });
      const { recover } = await import('./recover.js');
      await recover(values as Parameters<typeof recover>[0], output(!!values.json));
      return 0;
    }
    case 'status': {
      const { values } = parse(rest, {});
      await (await store()).status(output(!!values.json));
      return 0;
    }
    case 'verify': {
      const { values } = parse(rest, { remote: { type: 'boolean' }, repair: { type: 'boolean' } });
      const { verify } = await store();
      if (!values.remote) return (await verify(output(!!values.json), !!values.repair)) ? 0 : 1;
      // Both checks, one JSON document: the local store, then every buddy.
      const json = !!values.json;
      const docs: Record<string, unknown> = {};
      const collect = (key: string): Out => (json ? { json, print: (_h, data) => void (docs[key] = data) } : output(false));
      const local = await verify(collect('local'), !!values.repair);
      const remote = await (await peering()).verifyRemote(collect('remote'));
      if (json) process.stdout.write(JSON.stringify(docs) + '\n');
      return local && remote ? 0 : 1;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      throw new UserError(`unknown command '${cmd}' (see safe help)`, 2);
  }
}

export function describe(err: unknown): { message: string; code: number } {
  if (err instanceof UserError) return { message: err.message, code: err.exitCode };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return { message: `disk full${e.path ? ` at ${e.path}` : ''}: nothing was lost, free space and retry`, code: 1 };
  if (e?.code === 'EROFS') return { message: `read-only file system${e.path ? ` at ${e.path}` : ''}: safe writes its store, log and socket under SAFE_HOME; make it writable and retry`, code: 1 };
  // SQLite names no path and no reason; the usual one is a directory it may not write in (the WAL).
  if (e?.code === 'SQLITE_CANTOPEN') return { message: 'cannot open the index database (store/index.db under SAFE_HOME): it must exist and its directory be writable', code: 1 };
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return { message: `permission denied${e.path ? `: ${e.path}` : ''}`, code: 1 };
  if (e?.code === 'SQLITE_CORRUPT' || e?.code === 'SQLITE_NOTADB') return { message: damagedIndex(`${e.code}: ${e.message}`).message, code: 1 };
  if (e?.code === 'SQLITE_FULL') return { message: 'disk full while updating the index: nothing was lost, free space and retry', code: 1 };
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) return { message: `index database error (${e.code}): ${e.message}`, code: 1 };
  return { message: e instanceof Error ? e.message : String(err), code: 1 };
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const { message, code } = describe(err);
    process.stderr.write(`safe: ${message}\n`);
    if (process.env.SAFE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exitCode = code;
  },
);
