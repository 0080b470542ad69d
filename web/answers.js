// Answer controls built from a request's `answer` schema:
// {type: "choice", choices}, {type: "rating", min, max, step}, {type: "text", max_length}.

import { asText, el } from './dom.js';

/**
 * @typedef {object} AnswerControl
 * @property {HTMLElement} element
 * @property {() => unknown} value       the answer, or undefined when none is given yet
 * @property {(answer: unknown) => void} set
 * @property {(digit: number) => boolean} pick  a digit key; true when it chose something
 * @property {HTMLTextAreaElement|null} textBox
 */

/** @returns {AnswerControl} */
export function createAnswerControl(schema) {
  const type = schema?.type;
  if (type === 'choice' && Array.isArray(schema.choices) && schema.choices.length) {
    return buttons(schema.choices, (i) => (i >= 1 && i <= 9 ? i - 1 : -1), (i) => String(i + 1), 'choice');
  }
  if (type === 'rating') {
    const min = Number.isFinite(Number(schema.min)) ? Number(schema.min) : 0;
    const max = Number.isFinite(Number(schema.max)) ? Number(schema.max) : 5;
    const step = Number(schema.step) > 0 ? Number(schema.step) : 1;
    const values = [];
    for (let v = min; v <= max + 1e-9 && values.length < 101; v += step) values.push(Number(v.toFixed(6)));
    return buttons(values, (digit) => values.indexOf(digit), (i) => (Number.isInteger(values[i]) && values[i] >= 0 && values[i] <= 9 ? String(values[i]) : ''), 'rating');
  }
  return textBox(type === 'text' ? Number(schema.max_length) || 2000 : 2000);
}

function buttons(values, indexOfDigit, keyOf, kind) {
  let selected = -1;
  const element = el('div', { className: `answer-${kind}`, role: 'radiogroup' });
  const items = values.map((value, i) => {
    const key = keyOf(i);
    const button = el('button', { type: 'button', role: 'radio', 'aria-checked': 'false', 'data-value': asText(value) },
      [...(key ? [el('kbd', { text: key })] : []), el('span', { text: asText(value) })]);
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
    value: () => (selected >= 0 ? values[selected] : undefined),
    set(answer) {
      select(values.findIndex((v) => JSON.stringify(v) === JSON.stringify(answer)));
    },
    pick(digit) {
      const i = indexOfDigit(digit);
      if (i < 0 || i >= values.length) return false;
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
    value: () => (box.value.trim() ? box.value.trim() : undefined),
    set(answer) { box.value = answer === undefined ? '' : asText(answer); },
    pick: () => false,
  };
}
