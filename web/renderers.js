// Renderers by sample `kind`. Each one builds the sample into a container and
// may return {toggle, stop} for media the Space key plays and stops.

import { asText, el } from './dom.js';
import { renderMelody } from './melody.js';

const SAFE_URL = /^(https?:|data:image\/|data:audio\/|blob:|\/|\.{0,2}\/|[\w-]+(\/|\.|$))/i;

/** @param {unknown} value @returns {string} a URL we are willing to load, or throw */
function safeUrl(value) {
  const url = typeof value === 'string' ? value.trim() : '';
  if (!url || !SAFE_URL.test(url) || /^(javascript|vbscript):/i.test(url)) {
    throw new TypeError(`not a loadable URL: ${url.slice(0, 60)}`);
  }
  return url;
}

function renderText(content, container) {
  const text = typeof content === 'string' ? content : content?.text;
  if (typeof text !== 'string') throw new TypeError('text content must be a string or {text}');
  container.append(el('p', { className: 'sample-text', text }));
}

// Images smaller than this (8x8 digits, 32x32 thumbnails) are shown scaled up by a
// whole factor to about UPSCALE_TO pixels, sharp-edged, instead of as a dot.
const SMALL_IMAGE = 128;
const UPSCALE_TO = 256;

function renderImage(content, container) {
  const spec = typeof content === 'string' ? { src: content } : content ?? {};
  const src = safeUrl(spec.src ?? spec.url);
  const img = el('img', { src, alt: asText(spec.alt ?? 'sample image'), className: 'sample-image' });
  img.addEventListener('load', () => {
    const side = Math.max(img.naturalWidth, img.naturalHeight);
    if (side > 0 && side < SMALL_IMAGE) {
      img.style.width = `${img.naturalWidth * Math.floor(UPSCALE_TO / side)}px`;
      img.classList.add('upscaled');
    }
  });
  container.append(el('figure', {}, [img, ...(spec.caption ? [el('figcaption', { text: asText(spec.caption) })] : [])]));
}

/** A number as a person reads it: integers as they are, others to 4 decimals (or 4
 *  significant digits below 1, so 0.00001234 stays readable). */
function readableNumber(value) {
  if (Number.isInteger(value)) return String(value);
  return String(Math.abs(value) >= 1 ? Number(value.toFixed(4)) : Number(value.toPrecision(4)));
}

function cell(tag, value) {
  if (typeof value === 'number' && Number.isFinite(value)) {
    const shown = readableNumber(value);
    // the exact value stays a hover away when rounding changed it
    return el(tag, { text: shown, title: shown === String(value) ? null : String(value) });
  }
  return el(tag, { text: asText(value) });
}

function renderTable(content, container) {
  const table = el('table', { className: 'sample-table' });
  let columns = null;
  let rows;
  if (Array.isArray(content?.columns) && Array.isArray(content?.rows)) {
    columns = content.columns;
    rows = content.rows;
  } else if (Array.isArray(content) && content.every((row) => row && typeof row === 'object' && !Array.isArray(row))) {
    columns = [...new Set(content.flatMap((row) => Object.keys(row)))];
    rows = content.map((row) => columns.map((key) => row[key]));
  } else if (Array.isArray(content)) {
    rows = content.map((row) => (Array.isArray(row) ? row : [row]));
  } else if (content && typeof content === 'object') {
    rows = Object.entries(content); // one sample: key / value
    table.classList.add('key-value');
  } else {
    throw new TypeError('table content must be an object, a list of rows, or {columns, rows}');
  }
  if (columns) table.append(el('thead', {}, [el('tr', {}, columns.map((c) => cell('th', c)))]));
  table.append(el('tbody', {}, rows.map((row) => el('tr', {}, (Array.isArray(row) ? row : [row]).map((v, i) =>
    cell(!columns && table.classList.contains('key-value') && i === 0 ? 'th' : 'td', v))))));
  container.append(el('div', { className: 'table-wrap' }, [table]));
}

function renderAudio(content, container) {
  const spec = typeof content === 'string' ? { src: content } : content ?? {};
  const audio = el('audio', { src: safeUrl(spec.src ?? spec.url), controls: '', preload: 'metadata', className: 'sample-audio' });
  container.append(audio);
  return {
    toggle: () => (audio.paused ? audio.play().catch(() => {}) : audio.pause()),
    stop: () => audio.pause(),
  };
}

function renderJson(content, container) {
  let text;
  try {
    text = JSON.stringify(content, null, 2);
  } catch (error) {
    text = String(content);
  }
  container.append(el('pre', { className: 'sample-json', text: text ?? 'null' }));
}

export const renderers = {
  text: renderText,
  image: renderImage,
  table: renderTable,
  melody: renderMelody,
  audio: renderAudio,
  json: renderJson,
};

/**
 * Render one sample; a renderer that fails falls back to the JSON view, so
 * one odd sample never breaks the page.
 * @returns {{kind: string, toggle?: () => void, stop?: () => void}}
 */
export function renderSample(kind, content, container) {
  container.replaceChildren();
  const renderer = Object.hasOwn(renderers, kind) ? renderers[kind] : renderJson;
  try {
    return { kind: Object.hasOwn(renderers, kind) ? kind : 'json', ...(renderer(content, container) ?? {}) };
  } catch (error) {
    container.replaceChildren(el('p', { className: 'render-error', text: `could not show this ${kind} sample: ${error.message}` }));
    renderJson(content, container);
    return { kind: 'json' };
  }
}
