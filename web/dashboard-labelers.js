// Labelers panel: per labeler and room, labels given, median seconds per label
// (their recent labels) and skips, busiest first.

import { asText, el, need } from './dom.js';

const MAX_ROWS = 200;

export class LabelersPanel {
  /** @param {HTMLElement} root @param {import('./dashboard-feed.js').DashboardFeed} feed */
  constructor(root, feed) {
    this.root = root;
    this.rows = need(root, '[data-labeler-rows]');
    feed.addEventListener('labelers', (event) => this.render(event.detail));
  }

  render(byRoom) {
    const rows = [];
    for (const [room, labelers] of Object.entries(byRoom)) {
      for (const row of Array.isArray(labelers) ? labelers : []) rows.push({ room, ...row });
    }
    if (!rows.length) return;
    rows.sort((a, b) => (Number(b.labels) || 0) - (Number(a.labels) || 0));
    const seconds = (value) => (typeof value === 'number' && Number.isFinite(value) ? value.toFixed(1) : '–');
    this.rows.replaceChildren(...rows.slice(0, MAX_ROWS).map((row) => el('tr', {
      'data-labeler': asText(row.labeler), 'data-room': row.room,
    }, [el('td', { text: asText(row.labeler) }), el('td', { text: row.room }),
        el('td', { text: asText(row.labels) }), el('td', { text: seconds(row.median_seconds) }),
        el('td', { text: asText(row.skips) })])));
  }
}
