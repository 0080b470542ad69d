// A learning-curve plot drawn as SVG: one line per series (a score of a model),
// x = labels. Small on purpose; redrawn whole on every update, and at the width
// it is shown at (a wide drawing scaled down to a phone shrank its text to ~5 px).

import { el, svg } from './dom.js';

const DEFAULT_WIDTH = 640; // until the container's own width is known
const MAX_HEIGHT = 300;
const MIN_HEIGHT = 180;
const PAD = { left: 48, right: 16, top: 12, bottom: 36 };
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

/** About `count` round tick values covering [low, high]. */
export function ticks(low, high, count = 5) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export class LinePlot {
  /** @param {HTMLElement} container @param {HTMLElement} legend @param {{label?: string}} [options] */
  constructor(container, legend, { label = 'scores against labels' } = {}) {
    this.container = container;
    this.legend = legend;
    this.label = label;
    /** @type {Map<string, {x: number, y: number}[]>} */
    this.series = new Map();
    this.width = DEFAULT_WIDTH;
    this.fit(false);
    this.draw();
    if (typeof ResizeObserver === 'function') new ResizeObserver(() => this.fit()).observe(container);
  }

  /** Take the container's width; redraw when it changed (a redraw changes only its height). */
  fit(redraw = true) {
    const width = Math.round(this.container.clientWidth);
    if (width <= 0 || Math.abs(width - this.width) < 2) return;
    this.width = width;
    if (redraw) this.draw();
  }

  /** All series at once (name -> points), e.g. when a model's runs are redrawn. */
  replace(series) {
    this.series = new Map([...series].map(([name, points]) => [name, [...points].sort((a, b) => a.x - b.x)]));
    this.draw();
  }

  draw() {
    const width = this.width;
    const height = Math.round(Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, width * (MAX_HEIGHT / DEFAULT_WIDTH))));
    const all = [...this.series.values()].flat();
    const xs = all.map((p) => p.x);
    const ys = all.map((p) => p.y);
    const xMax = Math.max(1, ...xs);
    const xMin = Math.min(0, ...xs);
    const yMin = Math.min(0, ...ys);
    const yMax = Math.max(1, ...ys);
    const sx = (x) => PAD.left + ((x - xMin) / (xMax - xMin)) * (width - PAD.left - PAD.right);
    const sy = (y) => height - PAD.bottom - ((y - yMin) / (yMax - yMin)) * (height - PAD.top - PAD.bottom);

    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'line-plot', role: 'img',
                              'data-points': all.length, 'aria-label': this.label });
    for (const t of ticks(yMin, yMax)) {
      root.append(svg('line', { x1: PAD.left, x2: width - PAD.right, y1: sy(t), y2: sy(t), class: 'grid' }));
      root.append(label(PAD.left - 6, sy(t) + 4, String(t), 'end'));
    }
    for (const t of ticks(xMin, xMax, 6).filter(Number.isInteger)) {
      root.append(svg('line', { x1: sx(t), x2: sx(t), y1: height - PAD.bottom, y2: height - PAD.bottom + 4, class: 'axis' }));
      root.append(label(sx(t), height - PAD.bottom + 16, String(t), 'middle'));
    }
    root.append(svg('line', { x1: PAD.left, x2: width - PAD.right, y1: height - PAD.bottom, y2: height - PAD.bottom, class: 'axis' }));
    root.append(svg('line', { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: height - PAD.bottom, class: 'axis' }));
    root.append(label((width + PAD.left) / 2, height - 4, 'labels', 'middle'));

    this.legend.replaceChildren();
    [...this.series.entries()].forEach(([name, points], i) => {
      const color = COLORS[i % COLORS.length];
      root.append(svg('polyline', { points: points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(' '),
                                    class: 'series', stroke: color, 'data-series': name }));
      for (const p of points) root.append(svg('circle', { cx: sx(p.x), cy: sy(p.y), r: 3, fill: color }));
      const swatch = el('span', { className: 'swatch' });
      swatch.style.background = color;
      this.legend.append(el('span', {}, [swatch, name]));
    });
    if (!all.length) root.append(label(width / 2, height / 2, 'no label learned yet', 'middle'));
    this.container.replaceChildren(root);
  }
}

function label(x, y, text, anchor) {
  const node = svg('text', { x, y, 'text-anchor': anchor, class: 'tick' });
  node.textContent = text;
  return node;
}
