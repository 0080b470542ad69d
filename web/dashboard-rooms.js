// Rooms panel: the totals as tiles and one row per feedback room (queue, in
// flight, labeled, labels/min, labelers online), each linking to its label page.
// The labelers tile is the server's count of people, not the rows' sum: one
// person labeling in two rooms is in both rows, and online once.

import { asText, el, need } from './dom.js';

const KEYS = ['queued', 'in_flight', 'labeled', 'labels_per_minute', 'labelers'];
const SUMMED = KEYS.filter((key) => key !== 'labelers');

function count(stats, key) {
  const value = Number(stats?.[key]);
  return Number.isFinite(value) ? value : 0;
}

export class RoomsPanel {
  /** @param {HTMLElement} root @param {import('./dashboard-feed.js').DashboardFeed} feed */
  constructor(root, feed) {
    this.root = root;
    this.rows = need(root, '[data-room-rows]');
    this.tiles = document.querySelector('[data-module="totals"]');
    feed.addEventListener('stats', (event) => this.render(event.detail));
    feed.addEventListener('online', (event) => this.tile('labelers', event.detail));
  }

  tile(key, value) {
    const node = this.tiles?.querySelector(`[data-stat="${key}"]`);
    if (node) node.textContent = String(value);
  }

  render(byRoom) {
    const rooms = Object.keys(byRoom).sort();
    for (const key of SUMMED) this.tile(key, rooms.reduce((sum, room) => sum + count(byRoom[room], key), 0));
    if (!rooms.length) return;
    this.rows.replaceChildren(...rooms.map((room) => {
      const link = el('a', { href: `/label/${room.split('/').map(encodeURIComponent).join('/')}`, text: room });
      return el('tr', { 'data-room': room }, [el('td', {}, [link]),
        ...KEYS.map((key) => el('td', { 'data-key': key, text: asText(count(byRoom[room], key)) }))]);
    }));
  }
}
