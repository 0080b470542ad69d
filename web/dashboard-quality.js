// Label-quality panel: per room, how far the answers agree (Fleiss' kappa,
// Krippendorff's alpha) and, per labeler, their answers, agreement with the
// aggregate, gold and estimated accuracy, median seconds, and whether the room
// flagged them (their later answers stop counting). Polls /api/quality through
// the dashboard's feed (its token, its room filter).
//
// Agreement needs a sample answered twice: with one answer per sample (a room's
// default), each answer *is* the aggregate, and the 1.000 the server reports
// would read as perfect labels. Those figures show as "–", and the room says why.

import { el, need } from './dom.js';

const POLL_MS = 3000;
const AGREEMENT_NAMES = {
  fleiss_kappa: "Fleiss' κ",
  alpha_nominal: 'α nominal',
  alpha_ordinal: 'α ordinal',
  alpha_interval: 'α interval',
};

/** @param {unknown} value @param {number} [digits] */
function fmt(value, digits = 3) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '–';
  return Number.isInteger(value) && digits === 0 ? String(value) : value.toFixed(digits);
}

/** Whether some sample has two or more answers: only then can answers disagree. */
function overlapping(report) {
  return !(Number(report.answers) > 0 && Number(report.answers) === Number(report.samples));
}

export class QualityPanel {
  /** @param {HTMLElement} root @param {import('./dashboard-feed.js').DashboardFeed} feed */
  constructor(root, feed) {
    this.root = root;
    this.feed = feed;
    this.url = root.dataset.qualityUrl || '/api/quality';
    this.summary = need(root, '[data-agreement]');
    this.rows = need(root, '[data-quality-rows]');
    this.poll();
  }

  async poll() {
    try {
      this.render(await this.feed.getJson(this.url));
    } catch (error) {
      // the server is down: the connection badge says so; the next poll tries again
    }
    if (!this.feed.refused) setTimeout(() => this.poll(), POLL_MS);
  }

  /** @param {Record<string, any>} body  {room: report} */
  render(body) {
    if (!body || typeof body !== 'object') return;
    const rooms = Object.entries(body).filter(([room, report]) =>
      this.feed.inScope(room) && report && typeof report === 'object');
    if (!rooms.length) return;
    this.summary.replaceChildren(...rooms.map(([room, report]) => el('p', { 'data-room': room }, [
      el('b', { text: room }), ` · ${report.answers} answers on ${report.samples} samples · `,
      ...(overlapping(report) ? [
        ...Object.entries(report.agreement || {}).map(([key, value]) =>
          el('span', { className: 'agreement', 'data-agreement-kind': key,
                       text: `${AGREEMENT_NAMES[key] || key} ${fmt(value)} ` })),
        `· mean confidence ${fmt(report.mean_confidence)}`,
      ] : [el('span', { 'data-no-overlap': '',
                        text: 'no sample has two answers yet, so there is no agreement to measure' })]),
    ])));
    const rows = [];
    for (const [room, report] of rooms) {
      const measured = overlapping(report);
      for (const [name, answered] of Object.entries(report.per_labeler || {})) {
        const row = measured ? answered : { ...answered, agreement: null, estimated_accuracy: null };
        const share = typeof row.estimated_accuracy === 'number' ? row.estimated_accuracy
          : typeof row.agreement === 'number' ? row.agreement : row.gold_accuracy;
        const fill = el('span', { className: 'quality-fill' });
        fill.style.width = `${Math.round(100 * Math.max(0, Math.min(1, Number(share) || 0)))}%`;
        rows.push(el('tr', { 'data-quality-labeler': name, 'data-room': room,
                             className: row.flagged ? 'flagged' : '' }, [
          el('td', { text: name }), el('td', { text: fmt(row.answers, 0) }),
          el('td', { text: fmt(row.counted, 0) }), el('td', { text: fmt(row.agreement) }),
          el('td', { text: fmt(row.gold_accuracy) }), el('td', { text: fmt(row.estimated_accuracy) }),
          el('td', { className: 'bar-cell' }, [el('span', { className: 'quality-bar' }, [fill])]),
          el('td', { text: fmt(row.median_seconds, 2) }),
          el('td', { className: 'flag', text: row.flagged ? 'flagged' : '' }),
        ]));
      }
    }
    this.rows.replaceChildren(...rows);
    this.root.dataset.updated = String(Number(this.root.dataset.updated || 0) + 1);
  }
}
