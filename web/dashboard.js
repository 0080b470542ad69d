// The dashboard watches like a component: it joins the feedback room(s) for
// FEEDBACK/STATS and LOG/KPI (the feedback service relays LOG/KPI there), and
// the `kpi` room for models that publish elsewhere. It also polls /api/stats,
// so the numbers are there before the first STATS message.

import { asText, el, need } from './dom.js';
import { RelayClient, newId, showConnection, socketUrl, takeToken } from './relay.js';
import { LinePlot } from './plot.js';

const STAT_KEYS = ['queued', 'in_flight', 'labeled', 'labelers', 'labels_per_minute'];
const POLL_MS = 5000;

/** The first finite number among `keys` of `data`. */
function pick(data, ...keys) {
  for (const key of keys) {
    const value = Number(data?.[key]);
    if (data?.[key] !== undefined && data?.[key] !== null && Number.isFinite(value)) return value;
  }
  return undefined;
}

class Dashboard {
  constructor(root) {
    this.root = root;
    this.rooms = JSON.parse(root.dataset.rooms || '["feedback"]'); // names may hold any character
    this.kpiRoom = root.dataset.kpiRoom || 'kpi';
    this.statsByRoom = new Map();
    this.models = new Map();
    this.modelRows = need(root, '[data-models]');
    this.plot = new LinePlot(need(root, '[data-plot]'), need(root, '[data-legend]'));
    this.kpiCount = 0;
    this.seenKpi = new Set();
  }

  start() {
    this.relay = new RelayClient({ url: socketUrl(this.root.dataset.wsPath || '/ws'),
                                   name: `dashboard-${newId().slice(0, 8)}`, role: 'component',
                                   token: takeToken('swergio_al.component_token'),
                                   rooms: [...this.rooms, this.kpiRoom] });
    showConnection(this.relay, document.querySelector('[data-conn]'));
    this.relay.addEventListener('message', (event) => this.onMessage(event.detail));
    this.relay.connect();
    this.poll();
  }

  async poll() {
    const url = this.root.dataset.statsUrl;
    if (url) {
      try {
        const headers = { Accept: 'application/json' };
        if (this.relay.token) headers.Authorization = `Bearer ${this.relay.token}`;
        const response = await fetch(url, { headers });
        if (response.ok) this.onApiStats(await response.json());
      } catch (error) {
        // the server is down; the socket's reconnecting state already says so
      }
    }
    setTimeout(() => this.poll(), POLL_MS);
  }

  /** /api/stats answers {room: stats} for every feedback room with requests. */
  onApiStats(body) {
    if (!body || typeof body !== 'object') return;
    for (const [room, stats] of Object.entries(body)) {
      if (this.rooms.includes(room) && stats && typeof stats === 'object') this.statsByRoom.set(room, stats);
    }
    this.renderStats();
  }

  onMessage(message) {
    if (message.TYPE === 'FEEDBACK/STATS') {
      this.statsByRoom.set(message.TO_ROOM || this.rooms[0], message.DATA ?? {});
      this.renderStats();
    } else if (message.TYPE === 'LOG/KPI') {
      this.onKpi(message);
    }
  }

  renderStats() {
    for (const key of STAT_KEYS) {
      const values = [...this.statsByRoom.values()].map((s) => pick(s, key)).filter((v) => v !== undefined);
      const node = this.root.querySelector(`[data-stat="${key}"]`);
      if (!node || !values.length) continue;
      const total = values.reduce((a, b) => a + b, 0);
      node.textContent = Number.isInteger(total) ? String(total) : total.toFixed(1);
    }
  }

  onKpi(message) {
    const data = message.DATA && typeof message.DATA === 'object' ? message.DATA : message;
    const model = asText(data.model ?? message.SENT_BY ?? 'model');
    this.root.dataset.kpiReceived = String(Number(this.root.dataset.kpiReceived || 0) + 1);
    // A model loop may publish the same report to its feedback room and to `kpi`.
    const key = JSON.stringify([model, data.version, data.labels, data.score, data.time]);
    if (this.seenKpi.has(key)) return;
    this.seenKpi.add(key);
    if (this.seenKpi.size > 10000) this.seenKpi.delete(this.seenKpi.values().next().value);
    const row = {
      version: pick(data, 'version', 'model_version'),
      labels: pick(data, 'labels', 'n_labels', 'labeled'),
      score: pick(data, 'score', 'heldout_score', 'held_out_score', 'accuracy'),
      fit: pick(data, 'fit_seconds', 'fit_time', 'fit_s'),
      at: new Date(),
    };
    this.models.set(model, row);
    if (row.labels !== undefined && row.score !== undefined) this.plot.add(model, row.labels, row.score);
    this.kpiCount += 1;
    this.root.dataset.kpi = String(this.kpiCount);
    this.renderModels();
  }

  renderModels() {
    const fmt = (v, digits) => (v === undefined ? '–' : digits === undefined ? String(v) : v.toFixed(digits));
    this.modelRows.replaceChildren(...[...this.models.entries()].map(([name, m]) => el('tr', { 'data-model': name }, [
      el('td', { text: name }), el('td', { text: fmt(m.version) }), el('td', { text: fmt(m.labels) }),
      el('td', { text: fmt(m.score, 3) }), el('td', { text: fmt(m.fit, 3) }),
      el('td', { text: m.at.toLocaleTimeString() }),
    ])));
  }
}

for (const root of document.querySelectorAll('[data-module="dashboard"]')) {
  try {
    new Dashboard(root).start();
  } catch (error) {
    console.error(error);
    root.prepend(el('p', { className: 'notice', text: `The dashboard could not start: ${error.message}` }));
  }
}
