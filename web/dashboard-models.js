// Models panel: each model's version, labels and latest scores in a table, and
// its learning curve: the prequential score (each label scored on the prediction
// made before it was learned, so every model has one) and the held-out score
// where the model has a held-out set. The history comes from the server first,
// live reports follow.
//
// A restarted model is a new run (`run` in its reports: when it started). It counts
// its versions from 1 again and its prequential score from its first new label, so
// the table shows the newest run's figures only, and each later run draws curves
// of its own beside the earlier ones.

import { asText, el, need } from './dom.js';
import { LinePlot } from './plot.js';

const METRIC_NAMES = { accuracy: 'accuracy', mae: 'mean abs. error', r2: 'R²' };
const UNTAGGED = 0; // a report without `run` (an older loop, another sender): the first run

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

/** When a run started, as the clock on the wall says it (HH:MM:SS). */
function clock(run) {
  const at = new Date(run * 1000);
  return [at.getHours(), at.getMinutes(), at.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

export class ModelsPanel {
  /** @param {HTMLElement} root @param {import('./dashboard-feed.js').DashboardFeed} feed */
  constructor(root, feed) {
    this.root = root;
    this.rows = need(root, '[data-models]');
    this.curves = need(root, '[data-curves]');
    /** @type {Map<string, {runs: Map<number, {row: object, curves: Map<string, {x: number, y: number}[]>}>, plot: LinePlot}>} */
    this.models = new Map();
    this.points = 0;
    feed.addEventListener('kpi', (event) => this.onKpi(event.detail));
  }

  onKpi(data) {
    const name = asText(data.model);
    const model = this.models.get(name) ?? this.addModel(name);
    const runId = pick(data, 'run') ?? UNTAGGED;
    const run = model.runs.get(runId) ?? { row: {}, curves: new Map() };
    model.runs.set(runId, run);
    const labels = pick(data, 'labels', 'n_labels', 'labeled');
    // Within a run a report may leave a figure out (a refit, a custom sender): the last
    // one stands. Never one of another run's: its versions and scores start over.
    const row = {
      version: pick(data, 'version', 'model_version') ?? run.row.version,
      labels: labels ?? run.row.labels,
      prequential: pick(data, 'prequential') ?? run.row.prequential,
      prequentialMetric: data.prequential_metric ?? run.row.prequentialMetric,
      score: pick(data, 'score', 'heldout_score', 'held_out_score', 'accuracy') ?? run.row.score,
      scoreMetric: data.score_metric ?? run.row.scoreMetric,
      fit: pick(data, 'fit_seconds', 'fit_time', 'fit_s') ?? run.row.fit,
      room: data.room || run.row.room,
    };
    run.row = row;
    if (labels !== undefined) {
      const prequential = pick(data, 'prequential');
      const score = pick(data, 'score', 'heldout_score', 'held_out_score', 'accuracy');
      let added = false;
      if (prequential !== undefined) added = this.addPoint(run, `prequential ${metricName(row.prequentialMetric)}`, labels, prequential) || added;
      if (score !== undefined) added = this.addPoint(run, `held-out ${metricName(row.scoreMetric)}`, labels, score) || added;
      if (added) this.drawCurves(model);
      if (prequential !== undefined || score !== undefined) this.points += 1;
    }
    this.root.dataset.points = String(this.points);
    this.renderTable();
  }

  /** One point of a run's curve; false when the run has it already (a report seen twice). */
  addPoint(run, series, x, y) {
    const points = run.curves.get(series) ?? [];
    run.curves.set(series, points);
    if (points.some((p) => p.x === x && p.y === y)) return false;
    points.push({ x, y });
    return true;
  }

  /** The curves of every run, oldest first; a later run's are named by when it started. */
  drawCurves(model) {
    const runs = [...model.runs.keys()].sort((a, b) => a - b);
    const series = new Map();
    runs.forEach((runId, i) => {
      for (const [name, points] of model.runs.get(runId).curves) {
        series.set(i === 0 ? name : `${name}, restarted ${clock(runId)}`, points);
      }
    });
    model.plot.replace(series);
  }

  addModel(name) {
    const plot = el('div', { className: 'plot' });
    const legend = el('div', { className: 'legend' });
    this.curves.append(el('figure', { className: 'curve', 'data-curve': name }, [
      el('figcaption', { text: name }), plot, legend]));
    const model = { runs: new Map(), plot: new LinePlot(plot, legend, { label: `${name}: scores against labels` }) };
    this.models.set(name, model);
    return model;
  }

  renderTable() {
    const fmt = (v, digits) => (v === undefined ? '–' : digits === undefined ? String(v) : v.toFixed(digits));
    this.rows.replaceChildren(...[...this.models.entries()].map(([name, { runs }]) => {
      const latest = Math.max(...runs.keys());
      const { row } = runs.get(latest);
      const restarted = runs.size > 1 && latest !== UNTAGGED;
      const model = el('td', { text: name }, restarted ? [
        el('span', { className: 'restarted', text: ` · restarted ${clock(latest)}` })] : []);
      return el('tr', { 'data-model': name, 'data-run': latest === UNTAGGED ? false : latest }, [
        model, el('td', { text: fmt(row.version) }), el('td', { text: fmt(row.labels) }),
        el('td', { text: row.prequential === undefined ? '–' : `${fmt(row.prequential, 3)} ${metricName(row.prequentialMetric)}` }),
        el('td', { text: row.score === undefined ? '–' : `${fmt(row.score, 3)} ${metricName(row.scoreMetric)}` }),
        el('td', { text: fmt(row.fit, 3) }),
      ]);
    }));
  }
}
