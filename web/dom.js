// Tiny DOM helpers. Text always goes in through textContent, never as HTML.

/**
 * @param {string} tag
 * @param {Record<string, string|number|boolean>} [attrs]
 * @param {(Node|string)[]} [children]
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') node.textContent = String(value);
    else if (key === 'className') node.className = String(value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child); // strings become text nodes
  return node;
}

/** @param {string} tag @param {Record<string, string|number>} [attrs] */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

/** Any JSON value as readable text. */
export function asText(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch (error) {
    return String(value);
  }
}

/** Find `[selector]` under `root` or throw a named error: the markup is the contract. */
export function need(root, selector) {
  const node = root.querySelector(selector);
  if (!node) throw new MarkupError(`missing ${selector} in ${root.dataset.module || root.tagName}`);
  return node;
}

export class MarkupError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MarkupError';
  }
}
