// safe ui: the daemon's dashboard in a browser.
import { spawn, spawnSync } from 'node:child_process';
import { callDaemon } from './control.js';
import { loadConfig, paths, safeHome } from './config.js';
import { UserError } from './errors.js';
import type { Out } from './commands-store.js';

export async function ui(open: boolean, out: Out): Promise<void> {
  const home = safeHome();
  loadConfig(home); // no host here: the usual line, not "not running"
  const reply = await callDaemon(paths(home).socket, { cmd: 'ui' }, 30_000);
  if (!reply) throw new UserError('the daemon is not running: run safe mount first');
  if (!reply.ok) throw new UserError(reply.error);
  const { url } = reply.data as { url: string };
  // A desktop session with a browser to open it in; elsewhere the URL is for a tunnel or a copy.
  const opener = open && (process.env.DISPLAY || process.env.WAYLAND_DISPLAY) && spawnSync('which', ['xdg-open']).status === 0;
  if (opener) spawn('xdg-open', [url], { stdio: 'ignore', detached: true }).unref();
  out.print(`${url}${opener ? '' : '\n(open it in a browser on this machine; it answers on 127.0.0.1 only, and only with its token)'}`, { url });
}
