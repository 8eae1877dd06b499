// The small DOM helpers the web clients share.

export const $ = (id) => document.getElementById(id);

// An element with its attributes and its text (as text, never as markup).
export function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  node.textContent = text;
  return node;
}
