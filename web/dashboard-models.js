// Models panel: each model's version, labels and latest scores in a table, and
// its learning curve: the prequential score (each label scored on the prediction
// made before it was learned, so every model has one) and the held-out score
// where the model has a held-out set. The history comes from the server first,
// live reports follow.

import { asText, el, need } from './dom.js';
import { LinePlot } from './plot.js';

const METRIC_NAMES = { accuracy: 'accuracy', mae: 'mean abs. error', r2: 'R²' };

/** The first finite number among `keys` of `data`. */
function pick(data, ...keys) {
  for (const key of keys) {
    const value = data?.[key];
    if (value !== undefined && value !== null && Number.isFinite(Number(value))) return Number(value);
  }
  return undefined;
}

function metricName(metric) {
  return METRIC_NAMES[metric] ?? asText(metric ?? 'score');
}

export class ModelsPanel {
  /** @param {HTMLElement} root @param {import('./dashboard-feed.js').DashboardFeed} feed */
  constructor(root, feed) {
    this.root = root;
    this.rows = need(root, '[data-models]');
    this.curves = need(root, '[data-curves]');
    /** @type {Map<string, {row: object, plot: LinePlot}>} */
    this.models = new Map();
    this.points = 0;
    feed.addEventListener('kpi', (event) => this.onKpi(event.detail));
  }

  onKpi(data) {
    const name = asText(data.model);
    const model = this.models.get(name) ?? this.addModel(name);
    const labels = pick(data, 'labels', 'n_labels', 'labeled');
    const row = {
      version: pick(data, 'version', 'model_version') ?? model.row.version,
      labels: labels ?? model.row.labels,
      prequential: pick(data, 'prequential') ?? model.row.prequential,
      prequentialMetric: data.prequential_metric ?? model.row.prequentialMetric,
      score: pick(data, 'score', 'heldout_score', 'held_out_score', 'accuracy') ?? model.row.score,
      scoreMetric: data.score_metric ?? model.row.scoreMetric,
      fit: pick(data, 'fit_seconds', 'fit_time', 'fit_s') ?? model.row.fit,
      room: data.room || model.row.room,
    };
    model.row = row;
    if (labels !== undefined) {
      const prequential = pick(data, 'prequential');
      const score = pick(data, 'score', 'heldout_score', 'held_out_score', 'accuracy');
      if (prequential !== undefined) model.plot.add(`prequential ${metricName(row.prequentialMetric)}`, labels, prequential);
      if (score !== undefined) model.plot.add(`held-out ${metricName(row.scoreMetric)}`, labels, score);
      if (prequential !== undefined || score !== undefined) this.points += 1;
    }
    this.root.dataset.points = String(this.points);
    this.renderTable();
  }

  addModel(name) {
    const plot = el('div', { className: 'plot' });
    const legend = el('div', { className: 'legend' });
    this.curves.append(el('figure', { className: 'curve', 'data-curve': name }, [
      el('figcaption', { text: name }), plot, legend]));
    const model = { row: {}, plot: new LinePlot(plot, legend, { label: `${name}: scores against labels` }) };
    this.models.set(name, model);
    return model;
  }

  renderTable() {
    const fmt = (v, digits) => (v === undefined ? '–' : digits === undefined ? String(v) : v.toFixed(digits));
    this.rows.replaceChildren(...[...this.models.entries()].map(([name, { row }]) => el('tr', { 'data-model': name }, [
      el('td', { text: name }), el('td', { text: fmt(row.version) }), el('td', { text: fmt(row.labels) }),
      el('td', { text: row.prequential === undefined ? '–' : `${fmt(row.prequential, 3)} ${metricName(row.prequentialMetric)}` }),
      el('td', { text: row.score === undefined ? '–' : `${fmt(row.score, 3)} ${metricName(row.scoreMetric)}` }),
      el('td', { text: fmt(row.fit, 3) }),
    ])));
  }
}
