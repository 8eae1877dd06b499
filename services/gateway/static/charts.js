// Small SVG charts for the reports: bars, an hour-of-week heatmap and a coverage strip.
// Plain SVG, no library; every chart has a title and a text alternative for screen readers.
const NS = "http://www.w3.org/2000/svg";

function svg(width, height, label) {
  const root = document.createElementNS(NS, "svg");
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.setAttribute("width", width); root.setAttribute("role", "img");
  root.setAttribute("aria-label", label);
  return root;
}
function shape(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Vertical bars: rows of {label, value}; a label under every `every`-th bar.
export function bars(rows, { label, every = 1, colour = "#1f5fbf" }) {
  const width = Math.max(240, rows.length * 14 + 40), height = 150, top = Math.max(1, ...rows.map((r) => r.value));
  const root = svg(width, height, label);
  rows.forEach((r, i) => {
    const h = Math.round((r.value / top) * 110);
    const bar = shape("rect", { x: 30 + i * 14, y: 120 - h, width: 10, height: h, fill: colour });
    bar.append(shape("title", {}, `${r.label}: ${r.value}`));
    root.append(bar);
    if (i % every === 0) root.append(shape("text", { x: 30 + i * 14, y: 138 }, r.label));
  });
  root.append(shape("text", { x: 0, y: 12 }, String(top)));
  return root;
}

// Two bars a group side by side, e.g. the median and the 90th percentile wait of each day:
// rows of {label, a, b} (null: no figure that day), with a legend naming both.
export function pairedBars(rows, { label, names, every = 1, unit = "" }) {
  const colours = ["#1f5fbf", "#b8860b"];
  const width = Math.max(260, rows.length * 18 + 40), height = 170;
  const top = Math.max(1, ...rows.flatMap((r) => [r.a || 0, r.b || 0]));
  const root = svg(width, height, label);
  rows.forEach((r, i) => {
    [r.a, r.b].forEach((value, k) => {
      if (value === null || value === undefined) return;
      const h = Math.max(1, Math.round((value / top) * 110));
      const bar = shape("rect", { x: 30 + i * 18 + k * 7, y: 130 - h, width: 6, height: h, fill: colours[k], "data-series": String(k) });
      bar.append(shape("title", {}, `${r.label}, ${names[k]}: ${Math.round(value)}${unit}`));
      root.append(bar);
    });
    if (i % every === 0) root.append(shape("text", { x: 30 + i * 18, y: 146 }, r.label));
  });
  root.append(shape("text", { x: 0, y: 12 }, `${Math.round(top)}${unit}`));
  names.forEach((name, k) => {
    root.append(shape("rect", { x: 30 + k * 110, y: 156, width: 10, height: 10, fill: colours[k] }));
    root.append(shape("text", { x: 44 + k * 110, y: 165 }, name));
  });
  return root;
}

// Horizontal bars with their values: a few named figures side by side.
export function figuresBars(rows, { label }) {
  const top = Math.max(1, ...rows.map((r) => r.value));
  const root = svg(360, rows.length * 24 + 6, label);
  rows.forEach((r, i) => {
    const w = Math.round((r.value / top) * 180);
    root.append(shape("text", { x: 0, y: i * 24 + 16 }, r.label));
    root.append(shape("rect", { x: 130, y: i * 24 + 4, width: w, height: 16, fill: r.colour || "#1f5fbf" }));
    root.append(shape("text", { x: 136 + w, y: i * 24 + 16 }, String(r.value)));
  });
  return root;
}

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
// Hour of the week: groups keyed "mon 09" -> chats, as a 7 x 24 grid.
export function heatmap(groups, { label }) {
  const counts = new Map(groups.map((g) => [g.key, g.chats]));
  const top = Math.max(1, ...counts.values());
  const root = svg(24 * 14 + 40, 7 * 14 + 20, label);
  DAYS.forEach((day, d) => {
    root.append(shape("text", { x: 0, y: d * 14 + 11 }, day));
    for (let h = 0; h < 24; h++) {
      const n = counts.get(`${day} ${String(h).padStart(2, "0")}`) || 0;
      const cell = shape("rect", { x: 32 + h * 14, y: d * 14, width: 13, height: 13,
        fill: n ? `rgba(31, 95, 191, ${0.15 + 0.85 * (n / top)})` : "#eef0f4" });
      cell.append(shape("title", {}, `${day} ${h}:00: ${n} chats`));
      root.append(cell);
    }
  });
  [0, 6, 12, 18].forEach((h) => root.append(shape("text", { x: 32 + h * 14, y: 7 * 14 + 14 }, `${h}h`)));
  return root;
}

// A week of coverage: one row a day, each interval coloured by the queue that answers
// (grey: nobody), over `from` .. `from + 7 days` in the browser's time.
export function coverageStrip(intervals, from, { label }) {
  const palette = ["#1f5fbf", "#2e8b57", "#b8860b", "#8a2be2", "#c0392b"];
  const colours = new Map();
  const root = svg(24 * 20 + 50, 7 * 18 + 24, label);
  const start = from.getTime(), day = 86400000;
  for (let d = 0; d < 7; d++) root.append(shape("text", { x: 0, y: d * 18 + 12 }, new Date(start + d * day).toLocaleDateString("en", { weekday: "short" })));
  for (const interval of intervals) {
    const b = Date.parse(interval.end);
    let a = Date.parse(interval.start);  // moves on to each day's end in turn
    while (a < b) {
      const d = Math.floor((a - start) / day);
      const dayEnd = start + (d + 1) * day, upto = Math.min(b, dayEnd);
      if (d >= 0 && d < 7) {
        const x = 44 + ((a - (start + d * day)) / day) * 480, w = ((upto - a) / day) * 480;
        if (interval.queue && !colours.has(interval.queue)) colours.set(interval.queue, palette[colours.size % palette.length]);
        const piece = shape("rect", { x, y: d * 18, width: Math.max(w, 0.5), height: 14,
          fill: interval.queue ? colours.get(interval.queue) : "#d9dde5", "data-queue": interval.queue || "" });
        piece.append(shape("title", {}, `${interval.queue || "nobody"}: ${interval.reason}`));
        root.append(piece);
      }
      a = upto;
    }
  }
  [0, 6, 12, 18].forEach((h) => root.append(shape("text", { x: 44 + h * 20, y: 7 * 18 + 16 }, `${h}h`)));
  return root;
}
