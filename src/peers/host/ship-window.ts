// When automatic shipments may run (config `shipWindow`, e.g. "22:00-06:00": nights only, in
// the machine's local time): snapshots are still taken on schedule, their shipment waits for
// the window. `safe sync --now` ships anyway.

export class ShipWindowError extends Error {
  override name = 'ShipWindowError';
}

export interface ShipWindow {
  /** As written in the config. */
  text: string;
  /** Minutes after local midnight; a window whose end is before its start runs past midnight. */
  from: number;
  to: number;
}

const minutesOf = (hh: string, mm: string): number => Number(hh) * 60 + Number(mm);

export function parseShipWindow(text: string): ShipWindow {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)$/.exec(text.trim());
  if (!m) throw new ShipWindowError(`shipWindow '${text}' is not a time window (e.g. 22:00-06:00)`);
  const w = { text: text.trim(), from: minutesOf(m[1]!, m[2]!), to: minutesOf(m[3]!, m[4]!) };
  if (w.from === w.to) throw new ShipWindowError(`shipWindow '${text}' is empty: leave it out to ship at any time`);
  return w;
}

const minuteOfDay = (d: Date): number => d.getHours() * 60 + d.getMinutes();

export function isOpen(w: ShipWindow, at: Date): boolean {
  const m = minuteOfDay(at);
  return w.from < w.to ? m >= w.from && m < w.to : m >= w.from || m < w.to;
}

/** Null while shipments may run (no window, or an open one); else when the window opens. */
export function closedUntil(w: ShipWindow | null, at = new Date()): Date | null {
  return w && !isOpen(w, at) ? nextOpening(w, at) : null;
}

/** The next time the window opens after `at` (now, if it is open). */
export function nextOpening(w: ShipWindow, at: Date): Date {
  if (isOpen(w, at)) return at;
  const next = new Date(at);
  next.setHours(Math.floor(w.from / 60), w.from % 60, 0, 0);
  if (next <= at) next.setDate(next.getDate() + 1);
  return next;
}
