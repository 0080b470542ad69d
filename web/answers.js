// Answer controls built from a request's `answer` schema:
// {type: "choice", choices, keys?}, {type: "rating", min, max, step}, {type: "text", max_length},
// {type: "number"}.
// Every button shows its keyboard key once; a key does what its button says.

import { asText, el } from './dom.js';

// Default keys for choices: 1-9, then 0, then letters (not S, U: skip and undo).
const DEFAULT_KEYS = [...'1234567890abcdefghijklmnopqrtvwxyz'];

/**
 * @typedef {object} AnswerControl
 * @property {HTMLElement} element
 * @property {() => unknown} value       the answer, or undefined when none is given yet
 * @property {(answer: unknown) => void} set
 * @property {(key: string) => boolean} press  a key; true when it chose something
 * @property {string[]} keys             the keys this control answers to, in order
 * @property {HTMLTextAreaElement|HTMLInputElement|null} textBox
 * @property {string} [hint]             what to say when Enter finds no answer yet
 */

/** The keys of a choice schema: its own `keys` when usable, else the defaults. */
export function choiceKeys(schema, count) {
  const given = Array.isArray(schema?.keys) ? schema.keys.map((k) => String(k).toLowerCase()) : null;
  if (given && given.length === count && new Set(given).size === count && given.every((k) => k.length === 1)) return given;
  // Choices that are single characters ("0".."9", "a".."e") are their own keys.
  const own = (schema?.choices ?? []).map((c) => asText(c).toLowerCase());
  if (own.length === count && own.every((k) => k.length === 1 && !' su'.includes(k)) && new Set(own).size === count) return own;
  return DEFAULT_KEYS.slice(0, count).concat(Array(Math.max(0, count - DEFAULT_KEYS.length)).fill(''));
}

/** @returns {AnswerControl} */
export function createAnswerControl(schema) {
  const type = schema?.type;
  if (type === 'choice' && Array.isArray(schema.choices) && schema.choices.length) {
    return buttons(schema.choices, choiceKeys(schema, schema.choices.length), 'choice');
  }
  if (type === 'rating') {
    const min = Number.isFinite(Number(schema.min)) ? Number(schema.min) : 0;
    const max = Number.isFinite(Number(schema.max)) ? Number(schema.max) : 5;
    const step = Number(schema.step) > 0 ? Number(schema.step) : 1;
    const values = [];
    for (let v = min; v <= max + 1e-9 && values.length < 101; v += step) values.push(Number(v.toFixed(6)));
    // A rating's key is its value where that is one digit (0-9); others are clicked.
    const keys = values.map((v) => (Number.isInteger(v) && v >= 0 && v <= 9 ? String(v) : ''));
    return buttons(values, keys, 'rating');
  }
  if (type === 'number') return numberBox();
  return textBox(type === 'text' ? Number(schema.max_length) || 2000 : 2000);
}

function buttons(values, keys, kind) {
  let selected = -1;
  const element = el('div', { className: `answer-${kind}`, role: 'radiogroup' });
  const items = values.map((value, i) => {
    const key = keys[i];
    const label = asText(value);
    // The key once: a button whose label is its key ("3" for rating 3) shows just the label.
    const parts = key && key !== label.toLowerCase() ? [el('kbd', { text: key })] : [];
    const button = el('button', { type: 'button', role: 'radio', 'aria-checked': 'false',
                                  'data-value': label, 'data-key': key || false,
                                  'aria-keyshortcuts': key || false },
      [...parts, el('span', { text: label })]);
    button.addEventListener('click', () => { select(i); button.blur(); });
    return button;
  });
  element.append(...items);
  function select(i) {
    selected = i;
    items.forEach((item, j) => item.setAttribute('aria-checked', String(j === i)));
  }
  return {
    element,
    textBox: null,
    keys: keys.filter(Boolean),
    value: () => (selected >= 0 ? values[selected] : undefined),
    set(answer) {
      select(values.findIndex((v) => JSON.stringify(v) === JSON.stringify(answer)));
    },
    press(key) {
      const i = keys.indexOf(key.toLowerCase());
      if (i < 0) return false;
      select(i);
      return true;
    },
  };
}

function textBox(maxLength) {
  const box = el('textarea', { rows: 3, maxlength: maxLength, placeholder: 'Type the answer, then Enter (Esc leaves the box)', 'aria-label': 'answer' });
  return {
    element: el('div', { className: 'answer-text' }, [box]),
    textBox: box,
    keys: [],
    value: () => (box.value.trim() ? box.value.trim() : undefined),
    set(answer) { box.value = answer === undefined ? '' : asText(answer); },
    press: () => false,
  };
}

// A number answer must reach the model as a JSON number: the box sends only what parses
// to a finite one ("1e400", "abc" and "" are not answers yet).
function numberBox() {
  const box = el('input', { type: 'text', inputmode: 'decimal', autocomplete: 'off',
                            placeholder: 'Type a number, then Enter (Esc leaves the box)', 'aria-label': 'answer' });
  const parse = () => {
    const text = box.value.trim().replace(',', '.');
    const value = text ? Number(text) : NaN;
    return Number.isFinite(value) ? value : undefined;
  };
  return {
    element: el('div', { className: 'answer-text answer-number' }, [box]),
    textBox: box,
    keys: [],
    hint: 'Type a number, then Enter.',
    value: parse,
    set(answer) { box.value = answer === undefined ? '' : asText(answer); },
    press: () => false,
  };
}
