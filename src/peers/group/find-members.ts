// Reaching a group from nothing but member addresses (safe init, safe recover): connect to each
// --peer address, with backoff while nobody at all answers (a member restarting), and ask each
// one reached for the members it knows.
import type { PeerNode } from '../net/node.js';
import { GroupMismatchError } from '../net/private-network.js';
import { probe } from './members.js';

/** How long a --peer address that refuses or drops connections is tried while nobody answers. */
export const REACH_PATIENCE_MS = 30_000;

/** Connects to a --peer address, again with backoff while no member at all is reachable. */
async function reach(node: PeerNode, addr: string, deadline: number): Promise<string> {
  for (let pause = 500; ; pause = Math.min(2 * pause, 5000)) {
    try {
      return await node.connect(addr, { signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      if (err instanceof GroupMismatchError) throw new GroupMismatchError(`${addr} is not in this group: check the group name and password`, { cause: err });
      if (node.peers().length > 0 || Date.now() + pause > deadline) throw err;
      await new Promise((res) => setTimeout(res, pause));
    }
  }
}

/**
 * Members to ask: the --peer addresses reached, and everyone they know of (peer ids). An
 * address of another group throws GroupMismatchError; unreachable ones are skipped.
 */
export async function findMembers(node: PeerNode, addrs: string[], patienceMs = REACH_PATIENCE_MS): Promise<string[]> {
  const out = new Set<string>();
  const deadline = Date.now() + patienceMs;
  await Promise.all(
    addrs.map(async (addr) => {
      try {
        const id = await reach(node, addr, deadline);
        out.add(id);
        const r = await probe(node, id, [], AbortSignal.timeout(10_000));
        for (const m of r.members) {
          if (m.peer === node.peerId) continue;
          await node.learn(m.peer, m.addrs);
          out.add(m.peer);
        }
      } catch (err) {
        if (err instanceof GroupMismatchError) throw err;
        // unreachable: the others may do
      }
    }),
  );
  return [...out];
}
