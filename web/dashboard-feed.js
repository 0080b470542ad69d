// What the dashboard panels read: one relay connection (live FEEDBACK/STATS and
// LOG/KPI) and the JSON API (/api/stats, /api/online, /api/kpi history, /api/labelers).
// Panels listen to its events; none of them talks to the server itself.
//
// Events: 'stats' (detail: {room: stats}, every room in scope so far),
//         'kpi' (detail: one report, {model, room, version, labels, ...}),
//         'online' (detail: labelers online in the rooms in scope, each person once),
//         'labelers' (detail: {room: [{labeler, labels, median_seconds, skips}]}),
//         'refused' (once: the server wants the component token this page lacks).

import { asText } from './dom.js';
import { ConnState, RelayClient, newId, showConnection, socketUrl, takeToken } from './relay.js';

const STATS_POLL_MS = 2000;
const LABELERS_POLL_MS = 3000;
const MAX_SEEN = 20000;

export class DashboardFeed extends EventTarget {
  /** @param {HTMLElement} root the dashboard element with the data- settings */
  constructor(root) {
    super();
    this.root = root;
    /** @type {string[]} the room filter; empty: every feedback room */
    this.rooms = JSON.parse(root.dataset.rooms || '[]');
    this.kpiRoom = root.dataset.kpiRoom || 'kpi';
    this.token = takeToken('swergio_al.component_token');
    /** @type {Map<string, object>} */
    this.stats = new Map();
    this.seen = new Set();
    this.received = 0;
    this.onlineLoading = false; // a /api/online request is under way
    this.onlineAgain = false;
    this.refused = false;
  }

  /** A filter for `feedback` also shows its sub-rooms (`feedback/...`). */
  inScope(room) {
    return !this.rooms.length || this.rooms.some((r) => room === r || room.startsWith(`${r}/`));
  }

  start() {
    this.relay = new RelayClient({ url: socketUrl(this.root.dataset.wsPath || '/ws'),
                                   name: `dashboard-${newId().slice(0, 8)}`, role: 'component',
                                   token: this.token, rooms: [...this.rooms, this.kpiRoom] });
    showConnection(this.relay, document.querySelector('[data-conn]'));
    this.relay.addEventListener('message', (event) => this.onMessage(event.detail));
    this.relay.addEventListener('state', (event) => {
      if (event.detail.state === ConnState.REFUSED) this.refuse();
    });
    // After every (re)connect: the history, so nothing learned while away is missing.
    this.relay.addEventListener('ready', () => this.loadKpi());
    this.relay.connect();
    this.pollStats();
    this.pollLabelers();
  }

  async getJson(url) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch(url, { headers });
    if (response.status === 401) this.refuse();
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  async pollStats() {
    try {
      const body = await this.getJson(this.root.dataset.statsUrl || '/api/stats');
      let joined = false;
      for (const [room, stats] of Object.entries(body ?? {})) {
        if (!this.inScope(room) || !stats || typeof stats !== 'object') continue;
        this.stats.set(room, stats);
        joined = this.relay.join(room) || joined; // live figures and reports from now on
      }
      this.emit('stats', Object.fromEntries(this.stats));
      if (joined && this.relay.isOpen) this.loadKpi(); // what the new room's models said before
    } catch (error) {
      // the server is down: the connection badge says so; the next poll tries again
    }
    this.loadOnline();
    if (!this.refused) setTimeout(() => this.pollStats(), STATS_POLL_MS);
  }

  /** How many people label in the rooms in scope: the server counts each once, where
   * adding up the rooms' figures would count someone in two rooms twice. */
  async loadOnline() {
    if (this.onlineLoading) {
      this.onlineAgain = true; // the figures changed while asking: ask once more after
      return;
    }
    this.onlineLoading = true;
    try {
      const query = new URLSearchParams(this.rooms.map((room) => ['room', room]));
      const url = this.root.dataset.onlineUrl || '/api/online';
      const body = await this.getJson(this.rooms.length ? `${url}?${query}` : url);
      if (Number.isFinite(body?.labelers)) this.emit('online', body.labelers);
    } catch (error) {
      // as above
    } finally {
      this.onlineLoading = false;
    }
    if (this.onlineAgain) {
      this.onlineAgain = false;
      this.loadOnline();
    }
  }

  async pollLabelers() {
    try {
      const body = await this.getJson(this.root.dataset.labelersUrl || '/api/labelers');
      this.emit('labelers', Object.fromEntries(Object.entries(body ?? {}).filter(([room]) => this.inScope(room))));
    } catch (error) {
      // as above
    }
    if (!this.refused) setTimeout(() => this.pollLabelers(), LABELERS_POLL_MS);
  }

  async loadKpi() {
    try {
      const body = await this.getJson(this.root.dataset.kpiUrl || '/api/kpi');
      for (const point of body?.kpi ?? []) {
        if (this.inScope(asText(point.room))) this.onKpi(point, asText(point.room), false);
      }
    } catch (error) {
      // no history now; live reports still arrive
    }
  }

  onMessage(message) {
    if (message.TYPE === 'FEEDBACK/STATS' && typeof message.TO_ROOM === 'string') {
      if (!this.inScope(message.TO_ROOM) || !message.DATA || typeof message.DATA !== 'object') return;
      const before = this.stats.get(message.TO_ROOM);
      this.stats.set(message.TO_ROOM, message.DATA);
      this.emit('stats', Object.fromEntries(this.stats));
      if (before?.labelers !== message.DATA.labelers) this.loadOnline(); // someone came or went
    } else if (message.TYPE === 'LOG/KPI') {
      const data = message.DATA && typeof message.DATA === 'object' ? message.DATA : {};
      this.onKpi({ ...data, model: data.model ?? message.SENT_BY ?? 'model' }, asText(message.TO_ROOM), true);
    }
  }

  /** One report, live or from the history; a report seen twice (a loop publishes to its
   * feedback room and to `kpi`; the history repeats what came live) counts once. */
  onKpi(data, room, live) {
    if (live) {
      this.received += 1;
      this.root.dataset.kpiReceived = String(this.received);
    }
    const key = JSON.stringify([asText(data.model), data.version, data.labels, data.score,
                                data.prequential, data.time]);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.values().next().value);
    this.emit('kpi', { ...data, model: asText(data.model), room });
  }

  /** Without the token every figure stays empty, which would read as "no work yet". */
  refuse() {
    if (this.refused) return;
    this.refused = true;
    this.emit('refused');
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
