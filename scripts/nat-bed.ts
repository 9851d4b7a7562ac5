// A small internet in network namespaces, for members behind home routers (the NAT tests and
// bench-nat):
//
//   home1 (10.1.0.2) -- router1 (NAT) --+
//                                       +-- inet -- pub (198.18.3.2, a reachable member)
//   home2 (10.2.0.2) -- router2 (NAT) --+
//
// Each router masquerades its home behind its uplink address (198.18.1.2, 198.18.2.2) and lets
// in only what belongs to connections started from inside, as a home router does. `inet`
// routes between the uplinks and has no route to the homes' private networks. Uplinks can be
// shaped with tbf. Nothing here touches the test machine's own interfaces; every namespace is
// named after this process and removed by teardown (and leftovers of the same name at setup).
import { spawnSync } from 'node:child_process';

export interface Bed {
  /** Namespace names. */
  ns: { home1: string; home2: string; pub: string; router1: string; router2: string };
  ip: { home1: string; home2: string; pub: string };
  /** Bytes a router has sent out on its uplink so far. */
  uplinkSent(router: 'router1' | 'router2'): number;
  teardown(): void;
}

const sh = (args: string[]): void => {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
};

export interface BedOptions {
  /** Map each outgoing connection of this router to a random port (iptables --random-fully). */
  randomFully?: { router1?: boolean; router2?: boolean };
  /** tbf rate on both directions of each home's uplink, e.g. '100mbit'. */
  uplink?: string;
}

/** Whether this machine can build the bed: root and iproute2 (iptables is checked at setup). */
export function canBuildBed(): boolean {
  return process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0;
}

export function makeBed(o: BedOptions = {}): Bed {
  const tag = `sf${process.pid}`;
  const names = { inet: `${tag}-inet`, router1: `${tag}-r1`, router2: `${tag}-r2`, home1: `${tag}-h1`, home2: `${tag}-h2`, pub: `${tag}-pub` };
  const all = Object.values(names);
  const teardown = (): void => {
    for (const n of all) spawnSync('ip', ['netns', 'delete', n]);
  };
  teardown();
  try {
    for (const n of all) {
      sh(['ip', 'netns', 'add', n]);
      sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
    }
    const ex = (n: string, ...args: string[]): void => sh(['ip', 'netns', 'exec', n, ...args]);
    /** A veth pair between two namespaces, addressed and up. */
    const wire = (a: string, aIf: string, aIp: string, b: string, bIf: string, bIp: string): void => {
      sh(['ip', '-n', a, 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b]);
      sh(['ip', '-n', a, 'addr', 'add', aIp, 'dev', aIf]);
      sh(['ip', '-n', b, 'addr', 'add', bIp, 'dev', bIf]);
      sh(['ip', '-n', a, 'link', 'set', aIf, 'up']);
      sh(['ip', '-n', b, 'link', 'set', bIf, 'up']);
    };
    wire(names.inet, 'to-r1', '198.18.1.1/24', names.router1, 'wan', '198.18.1.2/24');
    wire(names.inet, 'to-r2', '198.18.2.1/24', names.router2, 'wan', '198.18.2.2/24');
    wire(names.inet, 'to-pub', '198.18.3.1/24', names.pub, 'eth', '198.18.3.2/24');
    wire(names.router1, 'lan', '10.1.0.1/24', names.home1, 'eth', '10.1.0.2/24');
    wire(names.router2, 'lan', '10.2.0.1/24', names.home2, 'eth', '10.2.0.2/24');
    ex(names.inet, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    sh(['ip', '-n', names.pub, 'route', 'add', 'default', 'via', '198.18.3.1']);
    for (const [router, home, up, lan] of [
      [names.router1, names.home1, '198.18.1.1', '10.1.0.1'],
      [names.router2, names.home2, '198.18.2.1', '10.2.0.1'],
    ] as const) {
      sh(['ip', '-n', router, 'route', 'add', 'default', 'via', up]);
      sh(['ip', '-n', home, 'route', 'add', 'default', 'via', lan]);
      ex(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      const random = router === names.router1 ? o.randomFully?.router1 : o.randomFully?.router2;
      ex(router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(random ? ['--random-fully'] : []));
      ex(router, 'iptables', '-A', 'FORWARD', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
      ex(router, 'iptables', '-A', 'FORWARD', '-i', 'wan', '-j', 'DROP');
      ex(router, 'iptables', '-A', 'INPUT', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
      ex(router, 'iptables', '-A', 'INPUT', '-i', 'wan', '-j', 'DROP');
      if (o.uplink) {
        const tbf = ['tbf', 'rate', o.uplink, 'burst', '64kb', 'latency', '50ms'];
        sh(['tc', '-n', router, 'qdisc', 'add', 'dev', 'wan', 'root', ...tbf]);
        sh(['tc', '-n', names.inet, 'qdisc', 'add', 'dev', router === names.router1 ? 'to-r1' : 'to-r2', 'root', ...tbf]);
      }
    }
  } catch (err) {
    teardown();
    throw err;
  }
  return {
    ns: { home1: names.home1, home2: names.home2, pub: names.pub, router1: names.router1, router2: names.router2 },
    ip: { home1: '10.1.0.2', home2: '10.2.0.2', pub: '198.18.3.2' },
    uplinkSent: (router) =>
      Number(spawnSync('ip', ['netns', 'exec', names[router], 'cat', '/sys/class/net/wan/statistics/tx_bytes'], { encoding: 'utf8' }).stdout.trim()),
    teardown,
  };
}
