// The `safe` command: parse (commander: generated help, unknown options and extra words
// refused), dispatch, and turn every failure into one line and an exit code.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { damagedIndex, UserError } from './errors.js';
import type { Out } from './commands-store.js';
import { completionScript } from './completion.js';

// Each command loads only its own modules: the daemon's and recovery's pull in libp2p, which
// cost every `safe status` 0.7 s of start-up.
const store = () => import('./commands-store.js');
const mounting = () => import('./commands-mount.js');
const peering = () => import('./commands-peers.js');
const snapshotting = () => import('./commands-snapshot.js');

/** Exit status for a command line that does not parse. */
const USAGE_EXIT = 2;
/** Exit status when stdout's reader went away (`safe diff A B | head -1`): SIGPIPE's, as other tools. */
const CLOSED_PIPE_EXIT = 141;

function output(json: boolean): Out {
  return {
    json,
    print(human, data) {
      process.stdout.write(json ? JSON.stringify(data) + '\n' : human + '\n');
    },
  };
}

type Opts = Record<string, unknown>;

function program(setExit: (code: number) => void): Command {
  const root = new Command('safe')
    .description('a folder that backs itself up to friends')
    .usage('<command> [options]   (--json on any command for machine output)')
    .version((JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version)
    .showSuggestionAfterError()
    .helpCommand('help [command]', 'help for a command');
  /** A command of `parent` with --json, its action given its options (plain data) and positional words. */
  const commandOf = (parent: Command, name: string, summary: string, run: (o: Opts, args: string[]) => Promise<number | void>): Command => {
    const c = parent.command(name).description(summary).option('--json', 'one JSON document on stdout');
    c.action(async (...params: unknown[]) => {
      const self = params.at(-1) as Command;
      const code = await run(self.opts(), self.args);
      setExit(code ?? 0);
    });
    return c;
  };
  const command = (name: string, summary: string, run: (o: Opts, args: string[]) => Promise<number | void>): Command => commandOf(root, name, summary, run);
  const out = (o: Opts): Out => output(!!o.json);

  command('init', 'create a host: its name, mount point, group, space offered and redundancy', async (o) => {
    const { init } = await store();
    await init({
      host: o.host as string | undefined, mount: o.mount as string | undefined, group: o.group as string | undefined,
      offer: o.offer as string | undefined, listen: o.listen as string | undefined, peer: o.peer as string[] | undefined,
      buddies: o.buddies as string | undefined, redundancy: o.redundancy as string | undefined, fallback: o.fallback as string | undefined,
      'no-mdns': o.mdns === false, 'recovery-sheet': o.recoverySheet as string | undefined,
      'max-upload': o.maxUpload as string | undefined, 'max-download': o.maxDownload as string | undefined,
      relay: o.relay as boolean | string | undefined,
    }, out(o));
  })
    .option('--host <name>', "this host's name (default: the machine's)")
    .option('--mount <dir>', 'where the folder appears (default ~/safe)')
    .option('--group <name>', 'backup group to join (asks for its password)')
    .option('--recovery-sheet <file>', 'write what a recovery needs, except the passphrase, to FILE')
    .option('--offer <size>', 'space offered to the group, e.g. 20G')
    .option('--listen <multiaddr>', 'where to listen for members')
    .option('--peer <multiaddr...>', 'a member to contact (repeatable)')
    .option('--redundancy <scheme>', 'copies:N whole copies, or rs:K+M shards on K+M members (default copies:2)')
    .option('--fallback <scheme>', 'copies:N to use when fewer than K+M members answer')
    .addOption(new Option('--buddies <n>', 'same as --redundancy copies:N').hideHelp())
    .option('--no-mdns', 'do not look for members on the LAN')
    .option('--max-upload <rate>', 'cap what this host sends, over all its connections: 2M = 2 MB/s')
    .option('--max-download <rate>', 'cap what this host receives: 2M = 2 MB/s')
    .option('--relay [members]', 'relay for members behind NAT, up to this many of them (default 16)');

  command('mount', 'start the daemon: the folder, chunking, snapshots on schedule, the peer service', async (o) => {
    if (o.passwordFile !== undefined && o.keyring) throw new UserError('give --password-file or --keyring, not both', 2);
    const from = o.passwordFile !== undefined ? { file: o.passwordFile as string } : o.keyring ? { keyring: true as const } : undefined;
    await (await mounting()).mount(!!o.foreground, out(o), undefined, from);
  })
    .option('--foreground', 'stay attached; Ctrl-C unmounts')
    .option('--password-file <file>', 'read the passphrase from FILE (mode 0600, yours): for a mount at boot')
    .option('--keyring', 'take the passphrase from the desktop keyring (safe service install --keyring put it there)');

  command('unmount', 'stop the daemon cleanly: chunking finished, state durable, mount gone', async (o) => {
    await (await mounting()).unmount(out(o));
  });

  root.command('__daemon', { hidden: true }).action(async () => {
    await (await mounting()).daemonMain();
  });

  command('snapshot', 'take a snapshot now and print its name', async (o) => {
    await (await snapshotting()).snapshot(o.label as string | undefined, out(o));
  }).option('--label <label>', "appended to the snapshot's name; the label alone names it too");

  command('snapshots', 'list snapshots: name, time, label, bytes changed', async (o) => {
    await (await snapshotting()).snapshots(out(o));
  });

  const keep = ['last', 'hourly', 'daily', 'weekly', 'monthly'] as const;
  const forget = command('forget', 'apply a retention policy: forget the snapshots it does not keep, free their space', async (o) => {
    const policy = Object.fromEntries(keep.map((k) => {
      const v = o[`keep${k[0]!.toUpperCase()}${k.slice(1)}`] as string | undefined;
      return [k, v === undefined ? undefined : Number(v)];
    }));
    await (await snapshotting()).forget(policy, !!o.dryRun, !!o.allowEmpty, out(o));
  });
  for (const k of keep) forget.option(`--keep-${k} <n>`, k === 'last' ? 'keep the newest N' : `keep the newest of each of the last N ${k === 'daily' ? 'days' : k.replace(/ly$/, 's')}`);
  forget.option('--dry-run', 'say what would be forgotten, change nothing').option('--allow-empty', 'allow a policy that forgets every snapshot');

  command('diff', 'paths added (+), removed (-) and modified (M) between two snapshots', async (o, [a, b]) => {
    await (await snapshotting()).diff(a!, b!, out(o));
  }).argument('<a>', 'a snapshot: its name, its label, or latest').argument('<b>', 'another');

  command('restore', 'copy a snapshot, or a path in one, out to a directory', async (o, [spec]) => {
    await (await snapshotting()).restore(spec!, o.target as string | undefined, !!o.overwrite, out(o));
  })
    .argument('<snapshot[:path]>', 'a snapshot (name, label or latest), optionally :PATH inside it')
    .option('--target <dir>', 'the directory to put it in (required); may be in the live tree')
    .option('--overwrite', 'replace what is there (in the live tree, a snapshot keeps it first)');

  command('status', 'the mount, the store, chunking, the last snapshot, and each buddy', async (o) => {
    await (await store()).status(out(o));
  });

  command('sync', 'ship the latest snapshot to the buddies now', async (o) => (await peering()).sync(!!o.wait, !!o.now, out(o)))
    .option('--wait', 'return once every buddy committed it')
    .option('--now', 'ship even outside the ship window of the config');

  command('peers', 'group members seen: address, space offered, what they hold of ours, last seen', async (o) => {
    await (await peering()).peers(out(o));
  });

  command('verify', 'check every tag in the local store; with --remote, challenge every buddy too', async (o) => {
    const { verify } = await store();
    if (!o.remote) return (await verify(out(o), !!o.repair)) ? 0 : 1;
    // Both checks, one JSON document: the local store, then every buddy.
    const json = !!o.json;
    const docs: Record<string, unknown> = {};
    const collect = (key: string): Out => (json ? { json, print: (_h, data) => void (docs[key] = data) } : output(false));
    const local = await verify(collect('local'), !!o.repair);
    const remote = await (await peering()).verifyRemote(collect('remote'));
    if (json) process.stdout.write(JSON.stringify(docs) + '\n');
    return local && remote ? 0 : 1;
  })
    .option('--remote', 'also challenge every buddy on a sample of what it holds for us')
    .option('--repair', 'fetch chunks that fail from a buddy and rewrite them');

  command('recover', 'after a disk died: bring a host back from its name, passphrase and group', async (o) => {
    const { recover } = await import('./recover.js');
    await recover({
      host: o.host as string | undefined, mount: typeof o.mount === 'string' ? o.mount : undefined, group: o.group as string | undefined,
      peer: o.peer as string[] | undefined, listen: o.listen as string | undefined, force: !!o.force,
      'no-mdns': o.mdns === false, 'no-mount': o.mount === false, 'no-wait': o.wait === false,
    }, out(o));
  })
    .option('--host <name>', "the lost host's name (default: this machine's)")
    .option('--mount <dir>', 'where to mount it (default: where it was)')
    .option('--group <name>', 'its backup group (asks for the password)')
    .option('--peer <multiaddr...>', 'a member to contact (repeatable)')
    .option('--listen <multiaddr>', 'where to listen')
    .option('--force', 'replace a host already in SAFE_HOME')
    .option('--no-mdns', 'do not look for members on the LAN')
    .option('--no-mount', 'fetch the metadata, do not mount')
    .option('--no-wait', 'mount as soon as the tree is back; chunks follow in the background');

  command('logs', "the daemon's log: the last lines, or followed with -f", async (o) => {
    const { logs } = await import('./commands-logs.js');
    await logs({ follow: !!o.follow, level: o.level as string | undefined, component: o.component as string | undefined, lines: o.lines as string | undefined }, out(o));
  })
    .option('-f, --follow', 'keep showing lines as they come (Ctrl-C ends)')
    .option('--level <level>', 'only this level and above: debug, info, warn, error')
    .option('--component <name>', 'only lines of this component (daemon, fs, peers, replicator, holder, shipper, fetcher, metadata)')
    .option('-n, --lines <n>', 'how many of the last lines to show first (default 200)');

  command('ui', 'the dashboard: snapshots, files, buddies and long work, in a browser on this machine', async (o) => {
    const { ui } = await import('./commands-ui.js');
    await ui(o.open !== false, out(o));
  }).option('--no-open', 'print the URL only; do not open a browser');

  const service = root.command('service').description('run the daemon as a systemd unit: at login, or at boot with --system');
  const serviceCommand = (name: string, summary: string, run: (o: Opts, s: typeof import('./commands-service.js')) => void | Promise<void>): Command =>
    commandOf(service, name, summary, async (o) => run(o, await import('./commands-service.js'))).option('--system', 'the machine-wide unit (as root), not your user unit');
  serviceCommand('install', 'write and enable the unit; it mounts with the passphrase from --password-file or the desktop keyring', (o, s) => s.install({ system: !!o.system, passwordFile: o.passwordFile as string | undefined, keyring: !!o.keyring }, out(o)))
    .option('--password-file <file>', 'the passphrase on its first line; yours, mode 0600')
    .option('--keyring', 'store the passphrase in the desktop keyring (Secret Service), unlocked when you log in');
  serviceCommand('uninstall', 'stop, disable and remove the unit', (o, s) => s.uninstall({ system: !!o.system }, out(o)));
  serviceCommand('status', 'whether the unit is installed, enabled and running', (o, s) => s.status({ system: !!o.system }, out(o)));

  root.command('completion').description('print a bash completion script: eval "$(safe completion)"').action(() => {
    process.stdout.write(completionScript(root));
  });

  // Errors go through outputError as one line naming where help is; the exit code is ours.
  const everyCommand = (c: Command): Command[] => [c, ...c.commands.flatMap(everyCommand)];
  root.exitOverride();
  for (const c of everyCommand(root)) c.exitOverride();
  const oneLine = (c: Command) => (str: string, write: (s: string) => void): void => {
    const names: string[] = [];
    for (let at: Command | null = c; at && at !== root; at = at.parent) names.unshift(at.name());
    const where = ['safe', ...names, '--help'].join(' ');
    write(`safe: ${str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')} (see ${where})\n`);
  };
  for (const c of everyCommand(root)) c.configureOutput({ outputError: oneLine(c) });
  return root;
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

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(CLOSED_PIPE_EXIT);
  throw err;
});

program((code) => (process.exitCode = code)).parseAsync(process.argv.slice(2), { from: 'user' }).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help and version asked for: printed already, success. A command line that does not
    // parse: its one line is printed already.
    const asked = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
    process.exitCode = asked ? (err.code === 'commander.help' && err.exitCode !== 0 ? USAGE_EXIT : 0) : USAGE_EXIT;
    return;
  }
  const { message, code } = describe(err);
  process.stderr.write(`safe: ${message}\n`);
  if (process.env.SAFE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exitCode = code;
});
