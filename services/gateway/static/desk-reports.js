// Reports, for admins: the last 30 days' statistics and charts (charts.js), transcript
// search and reading, each widget's line to paste, the records editor (desk-records.js),
// and a queue's coverage over a week, with opening hours added from here.
import { $, el } from "./dom.js";
import { bars, coverageStrip, figuresBars, heatmap, pairedBars } from "./charts.js";
import { recordsEditor } from "./desk-records.js";

const DAY_MS = 86400000;

// The Monday that starts the week of `date`, at midnight in the browser's time.
function monday(date) {
  const d = new Date(date); d.setHours(0, 0, 0, 0);
  d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
  return d;
}
const seconds = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} s`);

// Events up: `onQueueAdded(name)`, a queue made in the records editor.
export function reportsPanel({ api, user, queueNames, onQueueAdded, report }) {
  const records = recordsEditor({ api, user, queueNames, report, onSaved: recordSaved });

  async function showStatistics() {
    const to = new Date(), from = new Date(to.getTime() - 30 * DAY_MS);
    const span = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
    const [days, hours] = await Promise.all([api(`/api/stats?${span}&group_by=day`), api(`/api/stats?${span}&group_by=hour`)]);
    $("figures").textContent = `${days.chats} chat${days.chats === 1 ? "" : "s"}, ${days.missed} missed; wait p50 ${seconds(days.wait_p50_s)}, p90 ${seconds(days.wait_p90_s)}; duration p50 ${seconds(days.duration_p50_s)}.`;
    $("chart-days").replaceChildren(bars(days.groups.map((g) => ({ label: g.key.slice(5), value: g.chats })),
      { label: `Chats per day: ${days.groups.map((g) => `${g.key} ${g.chats}`).join(", ")}`, every: 5 }));
    $("chart-hours").replaceChildren(heatmap(hours.groups, { label: "Chats by hour of the week" }));
    $("chart-waits").replaceChildren(pairedBars(days.groups.map((g) => ({ label: g.key.slice(5), a: g.wait_p50_s, b: g.wait_p90_s })),
      { label: `Wait before an answer, median and 90th percentile: ${days.groups.map((g) => `${g.key} ${seconds(g.wait_p50_s)} / ${seconds(g.wait_p90_s)}`).join(", ")}`, names: ["median", "90th percentile"], every: 5, unit: " s" }));
    $("chart-answered").replaceChildren(figuresBars([
      { label: "at home", value: days.answered_at_home },
      { label: "by the backup", value: days.answered_by_backup, colour: "#2e8b57" },
      { label: "by partners", value: days.answered_by_partners, colour: "#b8860b" },
      { label: "missed", value: days.missed, colour: "#a33" },
    ], { label: `Answered at home ${days.answered_at_home}, by the backup service ${days.answered_by_backup}, by partners ${days.answered_by_partners}, missed ${days.missed}` }));
  }

  // The strip's `data-revision` counts its redrawings, so that a change can be waited for.
  async function showCoverage() {
    const queue = $("coverage-queue").value;
    if (!queue) return;
    const from = $("coverage-from").value ? new Date(`${$("coverage-from").value}T00:00:00`) : monday(new Date());
    const to = new Date(from.getTime() + 7 * DAY_MS);
    const found = await api(`/api/coverage?queue=${encodeURIComponent(queue)}&from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`);
    $("coverage-strip").replaceChildren(coverageStrip(found.intervals, from, { label: `Who answers ${queue} in the week from ${from.toDateString()}` }));
    $("coverage-strip").dataset.revision = String(Number($("coverage-strip").dataset.revision || 0) + 1);
  }

  async function searchTranscripts() {
    const q = $("search-q").value.trim();
    const found = await api(`/api/transcripts?limit=20${q ? `&q=${encodeURIComponent(q)}` : ""}`);
    $("search-results").replaceChildren(...found.chats.map((c) => {
      const item = el("li", { "data-found": c.id });
      const open = el("button", { class: "link" }, `${c.created_at.slice(0, 16).replace("T", " ")} ${c.patron.name || "Patron"}: ${c.question || ""} (${c.state}${c.tags.length ? `; ${c.tags.join(", ")}` : ""})`);
      open.addEventListener("click", async () => {
        try {
          const t = await api(`/api/transcripts/${c.id}`);
          $("transcript").replaceChildren(...t.messages.map((m) => {
            const line = el("div", { class: `msg ${m.from.kind}` });
            line.append(el("span", { class: "who" }, `${m.from.name}:`), document.createTextNode(m.body));
            return line;
          }));
          $("transcript").classList.remove("hidden");
        } catch (err) { report.error(err.message); }
      });
      item.append(open);
      return item;
    }));
    if (!found.chats.length) $("search-results").append(el("li", { class: "muted" }, "Nothing found."));
  }

  // Each widget of the library with the line its web pages need.
  async function showWidgets() {
    const widgets = await api("/api/widgets");
    $("widgets").replaceChildren(...widgets.map((w) => {
      const item = el("li", { "data-widget": w.id });
      const code = el("code", {}, `<script src="${location.origin}/widget.js" data-widget="${w.id}" async></script>`);
      item.append(el("span", {}, `${w.title} (${w.queue}): `), code);
      return item;
    }));
  }

  // What a saved record changes here: a new queue is offered for coverage (and, through the
  // shell, for fallback chains and transfers; for monitoring only after a reload); the
  // strip and the widgets' lines are drawn again.
  async function recordSaved(kind, saved) {
    if (kind === "queues" && !queueNames.has(saved.name)) {
      onQueueAdded(saved.name);
      $("coverage-queue").append(el("option", { value: saved.name }, saved.name));
    }
    if (kind === "queues" && saved.name === $("coverage-queue").value) await showCoverage();
    if (kind === "widgets") await showWidgets();
  }

  async function toggle() {
    const open = $("reports").classList.toggle("hidden") === false;
    $("reports-toggle").setAttribute("aria-expanded", String(open));
    if (!open) return;
    try {
      $("coverage-queue").replaceChildren(...[...queueNames].map((q) => el("option", { value: q }, q)));
      $("coverage-from").value = monday(new Date()).toISOString().slice(0, 10);
      await Promise.all([showStatistics(), showCoverage(), showWidgets(), records.listRecords()]);
      report.error("");
    } catch (err) { report.error(err.message); }
  }

  // Reports are for admins; the server checks their scope whoever asks.
  $("reports-toggle").classList.toggle("hidden", user.role === "operator");
  $("reports-toggle").addEventListener("click", toggle);
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); searchTranscripts().catch((err) => report.error(err.message)); });
  $("coverage-form").addEventListener("submit", (event) => { event.preventDefault(); showCoverage().catch((err) => report.error(err.message)); });
  $("hours-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("coverage-queue").value;
    try {
      const queue = await api(`/api/queues/${encodeURIComponent(name)}`);
      queue.hours = [...queue.hours, { day: $("hours-day").value, open: $("hours-open").value, close: $("hours-close").value }];
      await api(`/api/queues/${encodeURIComponent(name)}`, { method: "PUT", body: JSON.stringify(queue) });
      await showCoverage(); report.error("");
    } catch (err) { report.error(err.message); }
  });
}
