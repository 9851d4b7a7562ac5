// The dashboard page: Preact components (htm templates, no JSX step), a uPlot chart of what
// each snapshot added, the daemon's state pushed over server-sent events.
import { h, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';

const html = htm.bind(h);
const token = new URLSearchParams(location.search).get('token') ?? '';

interface Snapshot { name: string; epoch: number; time: number; label: string | null; changedBytes: number }
interface Buddy { peer: string; epoch: number; lastOk: number | null; lastError: string | null; fails: number; shipped: number }
interface Audit { peer: string; time: number; verdict: string; missing: number }
interface Shipment { peer: string; epoch: number; done: number; total: number; bytes: number; rate: number; etaSeconds: number | null }
interface Peers {
  peerId: string; latest: number | null; buddies: Buddy[]; audits: Audit[]; shipping: Shipment[]; connected: string[];
  offered: number; used: number; fetching: boolean; backfill: { bytes: number; totalBytes: number; files: number; totalFiles: number } | null;
  reach: { kind: string; via?: string; by?: string; reason?: string };
}
interface Upcoming { snapshot: number | null; ship: number | null; audit: number | null }
interface Gc { phase: 'dropping' | 'compacting'; collected: number; packsDone: number; packsTotal: number; bytesFreed: number; started: number }
interface Status { mount: string; pendingChunking: number; epoch: number; peers: Peers | null; alerts: { message: string }[]; next: Upcoming; gc: Gc | null }
interface Restore { id: number; snapshot: string; path: string; target: string; files: number; bytes: number; done: boolean; error: string | null }
interface Storage { chunks: number; liveBytes: number; referencedRaw: number; ratio: number; disk: number }
interface Sample { epoch: number; time: number; liveBytes: number; referencedRaw: number; packBytes: number; shipped: number }
interface State { status: Status; snapshots: Snapshot[]; storage: Storage; samples: Sample[]; restores: Restore[]; error?: string }
interface Entry { name: string; kind: string; size: number; mtime: number }
interface Version { snapshot: string; size: number; mtime: number }

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(path, { ...init, headers: { 'x-safe-token': token, 'content-type': 'application/json', ...(init.headers ?? {}) } });
  const body = (await r.json()) as T & { error?: string };
  if (!r.ok) throw new Error(body.error ?? `${r.status}`);
  return body;
}

const bytes = (n: number): string => {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < u.length - 1; i++) n /= 1024;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
};
const ago = (t: number | null): string => (t === null ? 'never' : `${Math.max(0, Math.round((Date.now() - t) / 1000))} s ago`);
const short = (peer: string): string => `…${peer.slice(-8)}`;

/** A uPlot chart over time, drawn again when `version` changes. */
function Chart({ id, times, series, version }: { id: string; times: number[]; series: (uPlot.Series & { data: number[] })[]; version: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current || times.length === 0) return;
    // A history shorter than an hour (one snapshot, say) is shown as the day around it.
    const pad = times.at(-1)! - times[0]! < 3600 ? 43200 : 0;
    const plot = new uPlot(
      {
        width: box.current.clientWidth || 600,
        height: 160,
        scales: { x: { time: true, range: [times[0]! - pad, times.at(-1)! + pad] } },
        series: [{}, ...series.map(({ data: _, ...s }) => ({ value: (_u: uPlot, v: number | null) => (v === null ? '-' : bytes(v)), ...s }))],
        axes: [{}, { size: 70, values: (_u, vals) => vals.map((v) => bytes(v)) }],
      },
      [times, ...series.map((s) => s.data)],
      box.current,
    );
    return () => plot.destroy();
  }, [version]);
  return html`<div ref=${box} id=${id}></div>`;
}

function Timeline({ snapshots }: { snapshots: Snapshot[] }) {
  return html`<${Chart} id="timeline" version=${`${snapshots.length}/${snapshots.at(-1)?.epoch}`} times=${snapshots.map((s) => s.time / 1000)}
    series=${[{ label: 'changed', stroke: '#1a56b8', fill: '#1a56b822', paths: uPlot.paths.bars!({ size: [0.6, 40] }), data: snapshots.map((s) => s.changedBytes) }]} />`;
}

function StorageChart({ samples }: { samples: Sample[] }) {
  if (samples.length === 0) return html`<p class="muted">the store's size is noted after each snapshot</p>`;
  return html`<${Chart} id="storage-chart" version=${`${samples.length}/${samples.at(-1)!.epoch}`} times=${samples.map((s) => s.time / 1000)} series=${[
    { label: 'the files name', stroke: '#7a7a7a', data: samples.map((s) => s.referencedRaw) },
    { label: 'stored here', stroke: '#1a56b8', data: samples.map((s) => s.liveBytes) },
    { label: 'sent to buddies', stroke: '#2f8f3a', data: samples.map((s) => s.shipped) },
  ]} />`;
}

function Buddies({ peers, snapshots, next }: { peers: Peers | null; snapshots: Snapshot[]; next: Upcoming }) {
  if (!peers) return html`<p class="muted">not in a backup group, or the peer service is not up</p>`;
  const audit = (peer: string): Audit | undefined => peers.audits.find((a) => a.peer === peer);
  const reach = peers.reach;
  const reachLine = reach.kind === 'direct' ? 'reachable directly' : reach.kind === 'relayed' ? `behind NAT, reached through relay ${short(reach.via!)}` : reach.kind === 'unreachable' ? `not reachable: ${reach.reason}` : 'reachability not checked yet';
  const behind = (epoch: number): number => snapshots.filter((s) => s.epoch > epoch).length;
  const at = (t: number | null): string => (t === null ? 'not scheduled' : new Date(t).toLocaleString());
  return html`<p class="muted">this host ${short(peers.peerId)}; ${reachLine}; holding ${bytes(peers.used)} of ${bytes(peers.offered)} offered</p>
    <p class="muted" id="next">next snapshot ${at(next.snapshot)}${next.ship === null ? '' : next.ship === next.snapshot ? ', shipped at once' : `, shipped ${at(next.ship)} (ship window)`}; next audit ${at(next.audit)}</p>
    <table id="buddies"><tr><th>buddy</th><th>health</th><th>last contact</th><th>lag</th><th>last audit</th><th>shipped</th></tr>
    ${peers.buddies.map((b) => {
      const a = audit(b.peer);
      const healthy = !b.lastError && peers.connected.includes(b.peer);
      return html`<tr data-peer=${b.peer}>
        <td title=${b.peer}>${short(b.peer)}</td>
        <td class=${healthy ? 'ok health' : 'bad health'} title=${b.lastError ?? ''}>${b.lastError ? `failing (${b.fails}x)` : healthy ? 'ok' : 'not connected'}</td>
        <td>${ago(b.lastOk)}</td>
        <td>${peers.latest === null ? '-' : b.epoch === peers.latest ? 'up to date' : b.epoch === 0 ? 'has nothing yet' : `${behind(b.epoch)} snapshots behind`}</td>
        <td>${a ? `${a.verdict}${a.missing ? ` (${a.missing} missing)` : ''}, ${ago(a.time)}` : 'none this week'}</td>
        <td>${bytes(b.shipped)}</td></tr>`;
    })}</table>`;
}

function StoragePanel({ state }: { state: State }) {
  const s = state.storage;
  const held = state.status.peers?.buddies.reduce((n, b) => n + b.shipped, 0) ?? 0;
  return html`<table id="storage">
    <tr><td>the files name</td><td>${bytes(s.referencedRaw)}</td></tr>
    <tr><td>stored here (${s.chunks} chunks)</td><td>${bytes(s.liveBytes)}</td></tr>
    <tr><td>deduplication and compression</td><td>${s.ratio.toFixed(2)}x</td></tr>
    <tr><td>the store on disk</td><td>${bytes(s.disk)}</td></tr>
    <tr><td>shipped to buddies</td><td>${bytes(held)}</td></tr></table>`;
}

function gcRow(g: Gc) {
  const secs = (Date.now() - g.started) / 1000;
  const left = g.phase === 'compacting' && g.packsDone > 0 ? (secs * (g.packsTotal - g.packsDone)) / g.packsDone : null;
  return html`<tr class="gc"><td>garbage collection: ${g.phase === 'dropping' ? `${g.collected} unused chunks dropped` : `pack ${g.packsDone} of ${g.packsTotal}`}</td>
    <td>${g.phase === 'compacting' ? html`<progress max=${g.packsTotal} value=${g.packsDone}></progress>` : ''}</td><td>${bytes(g.bytesFreed)} freed</td><td>${left === null ? '' : `${Math.ceil(left)} s left`}</td></tr>`;
}

function Work({ state }: { state: State }) {
  const p = state.status.peers;
  const rows = [
    ...(p?.shipping ?? []).map((s) => {
      const pct = s.total > 0 ? Math.floor((100 * s.done) / s.total) : 0;
      return html`<tr class="shipment" data-peer=${s.peer}><td>shipping epoch ${s.epoch} to ${short(s.peer)}</td><td><progress max="100" value=${pct}></progress> <span class="pct">${pct}%</span></td><td>${bytes(s.rate)}/s</td><td>${s.etaSeconds === null ? '' : `${Math.ceil(s.etaSeconds)} s left`}</td></tr>`;
    }),
    ...(p?.fetching && p.backfill ? [html`<tr><td>recovery: fetching chunks back</td><td><progress max=${p.backfill.totalBytes} value=${p.backfill.bytes}></progress></td><td>${p.backfill.files}/${p.backfill.totalFiles} files</td><td></td></tr>`] : []),
    ...(state.status.gc ? [gcRow(state.status.gc)] : []),
    ...state.restores.map((r) => html`<tr class="restore" data-id=${r.id}><td>restore ${r.snapshot}:${r.path || '/'} to ${r.target}</td><td class=${r.error ? 'bad' : r.done ? 'ok' : ''}>${r.error ? `failed: ${r.error}` : r.done ? 'done' : 'copying'}</td><td>${r.files} files</td><td>${bytes(r.bytes)}</td></tr>`),
  ];
  return html`${rows.length === 0 ? html`<p class="muted">nothing under way</p>` : html`<table id="work">${rows}</table>`}
    ${state.status.pendingChunking > 0 ? html`<p>${state.status.pendingChunking} files waiting to be chunked</p>` : null}`;
}

function Browser({ snapshots }: { snapshots: Snapshot[] }) {
  const [snap, setSnap] = useState('live');
  const [path, setPath] = useState('');
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [versions, setVersions] = useState<{ path: string; list: Version[] } | null>(null);
  const [restoring, setRestoring] = useState<string | null>(null);
  const [target, setTarget] = useState('');
  useEffect(() => {
    setEntries(null);
    api<Entry[]>(`/api/ls?snapshot=${encodeURIComponent(snap)}&path=${encodeURIComponent(path)}`).then(setEntries, (e: Error) => setError(e.message));
  }, [snap, path]);
  const go = (p: string): void => {
    setError(null);
    setVersions(null);
    setPath(p);
  };
  const parts = path.split('/').filter(Boolean);
  const restore = async (): Promise<void> => {
    try {
      await api('/api/restore', { method: 'POST', body: JSON.stringify({ snapshot: snap, path: restoring, target }) });
      setRestoring(null);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return html`<div>
    <label>view <select id="snapshot-select" value=${snap} onChange=${(e: Event) => { setSnap((e.target as HTMLSelectElement).value); go(''); }}>
      <option value="live">the live folder</option>
      ${[...snapshots].reverse().map((s) => html`<option value=${s.name}>${s.name}</option>`)}
    </select></label>
    <p class="crumbs"><a onClick=${() => go('')}>/</a>${parts.map((p, i) => html`<a onClick=${() => go(parts.slice(0, i + 1).join('/'))}>${p}/</a>`)}</p>
    ${error ? html`<p class="alert">${error}</p>` : null}
    ${restoring !== null ? html`<p id="restore-form">restore ${snap}:${restoring || '/'} to <input type="text" id="restore-target" placeholder="/absolute/new/path" value=${target} onInput=${(e: Event) => setTarget((e.target as HTMLInputElement).value)} /> <button id="restore-go" onClick=${restore}>restore</button> <a onClick=${() => setRestoring(null)}>cancel</a></p>` : null}
    ${versions ? html`<div id="versions"><h2>versions of ${versions.path}</h2><table>${versions.list.map((v) => html`<tr><td>${v.snapshot}</td><td>${bytes(v.size)}</td><td>${new Date(v.mtime).toISOString()}</td></tr>`)}</table></div>` : null}
    ${entries === null ? html`<p class="muted">…</p>` : html`<table id="entries">
      <tr><th>name</th><th>size</th><th>modified</th><th></th></tr>
      ${path !== '' || snap !== 'live' ? html`<tr><td colspan="4"><a onClick=${() => setRestoring(path)}>restore this folder…</a></td></tr>` : null}
      ${entries.map((e) => {
        const p = path ? `${path}/${e.name}` : e.name;
        const file = `/api/file?token=${token}&snapshot=${encodeURIComponent(snap)}&path=${encodeURIComponent(p)}`;
        return html`<tr data-name=${e.name}>
          <td>${e.kind === 'dir' ? html`<a class="dir" onClick=${() => go(p)}>${e.name}/</a>` : e.name}</td>
          <td>${e.kind === 'dir' ? '' : bytes(e.size)}</td><td>${new Date(e.mtime).toISOString().slice(0, 19)}</td>
          <td>${e.kind === 'file' ? html`<a class="download" href=${file} download=${e.name}>download</a> · <a class="versions" onClick=${() => api<Version[]>(`/api/versions?path=${encodeURIComponent(p)}`).then((list) => setVersions({ path: p, list }))}>versions</a>` : null}${snap !== 'live' ? html`${e.kind === 'file' ? ' · ' : ''}<a class="restore" onClick=${() => setRestoring(p)}>restore…</a>` : null}</td></tr>`;
      })}</table>`}
  </div>`;
}

function App() {
  const [state, setState] = useState<State | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const events = new EventSource(`/api/events?token=${token}`);
    events.onmessage = (m) => setState(JSON.parse(m.data as string) as State);
    return () => events.close();
  }, []);
  if (!state) return html`<p class="loading">connecting to the daemon…</p>`;
  if (state.error) return html`<p class="alert">${state.error}</p>`;
  const s = state.status;
  const snapshotNow = async (): Promise<void> => {
    setBusy(true);
    try {
      await api('/api/snapshot', { method: 'POST' });
    } finally {
      setBusy(false);
    }
  };
  return html`<header><h1>safe</h1><span class="state">${s.mount} · ${state.snapshots.length} snapshots</span>
      <button id="snapshot-now" disabled=${busy} onClick=${snapshotNow}>snapshot now</button></header>
    <main>
      ${s.alerts.length > 0 ? html`<section class="wide" id="alerts">${s.alerts.map((a) => html`<p class="alert">${a.message}</p>`)}</section>` : null}
      <section class="wide"><h2>snapshots: what each changed</h2><${Timeline} snapshots=${state.snapshots} />
        <p id="latest" class="muted">${state.snapshots.length ? `latest: ${state.snapshots.at(-1)!.name}` : 'no snapshots yet'}</p></section>
      <section class="wide"><h2>buddies</h2><${Buddies} peers=${s.peers} snapshots=${state.snapshots} next=${s.next} /></section>
      <section><h2>under way</h2><${Work} state=${state} /></section>
      <section><h2>storage</h2><${StoragePanel} state=${state} /><${StorageChart} samples=${state.samples} /></section>
      <section class="wide"><h2>files</h2><${Browser} snapshots=${state.snapshots} /></section>
    </main>`;
}

render(html`<${App} />`, document.getElementById('app')!);
