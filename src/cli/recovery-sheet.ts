// The recovery sheet: what `safe recover` needs besides the passphrase (hostname, group name and
// password, a member to ask), shown when a host joins a group. Written to a file (0600) it holds
// the group password too: the one secret a demo set-up makes up for the user.
import { closeSync, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs';

export interface SheetFacts {
  host: string;
  group: string;
  /** Other members' addresses (--peer): whom a recovery asks. */
  members: string[];
  /** This host's listen addresses: what the other members ask for. */
  listen: string[];
}

/** The sheet's text; `password` is the group password itself or where to find it. */
export function recoverySheet(f: SheetFacts, password: string): string {
  const peerArgs = f.members.length > 0 ? ` --peer ${f.members[0]}` : '';
  return [
    `Recovery sheet for host '${f.host}': keep it off this machine.`,
    `When its disk is lost, on a blank machine: safe recover --host ${f.host} --group ${f.group}${peerArgs}`,
    `  passphrase of ${f.host}: yours, written nowhere`,
    `  password of group ${f.group}: ${password} (the group's members know it too)`,
    `  a member's address (needed when mDNS sees none on the LAN):`,
    ...(f.members.length > 0 ? f.members.map((m) => `    ${m}`) : ['    none known yet: this host starts the group; the address of any member that joins will do']),
    `  this host listens on ${f.listen.join(' ')}: the address the others give as --peer`,
  ].join('\n');
}

/** Writes the sheet readable by its owner only, whatever mode an older file had. */
export function writeSheet(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, text + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
