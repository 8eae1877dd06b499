// Forms for a library's records (queues, widgets, snippets, users): each field a labelled
// control, lists (opening hours, closed days, the fallback chain, allowed origins) as rows
// that can be added, moved and removed. `read()` gives the record as the API takes it; fields
// the form does not show are kept as they were, and the server still checks every one.

import { el } from "./dom.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ROLES = ["operator", "institution_admin"];
let made = 0;  // ids for labels, unique across forms on the page

// A field the record has (the API sends null, or leaves out, one it has not).
const given = (value) => value !== null && value !== undefined;

// A labelled control; `name` is the record's field, which the tests and a 422's path use.
function control(name, label, input, hint = "") {
  const id = `rf-${name}-${++made}`;
  input.id = id;
  input.dataset.field = name;
  // A checkbox sits before its label, on one line; other controls under theirs.
  const box = input.type === "checkbox";
  const wrap = el("div", { class: box ? "field check" : "stack field" });
  if (box) wrap.append(input, el("label", { for: id }, label));
  else wrap.append(el("label", { for: id }, label), input);
  if (hint) {
    const note = el("small", { class: "muted", id: `${id}-hint` }, hint);
    input.setAttribute("aria-describedby", note.id);
    wrap.append(note);
  }
  return wrap;
}

function input(type, value, attrs = {}) {
  const node = el("input", { type, ...attrs });
  if (type === "checkbox") node.checked = Boolean(value);
  else node.value = given(value) ? String(value) : "";
  return node;
}

function select(options, value) {
  const node = el("select");
  node.append(...options.map(([v, text]) => el("option", { value: v }, text)));
  node.value = value;
  return node;
}

// Rows of one kind of item, each with its own controls and a remove button (and, where
// order matters, a move-up button); `make(item)` returns {nodes, read}.
function rows(name, legend, items, blank, make, { ordered = false } = {}) {
  const set = el("fieldset", { class: "stack", "data-field": name });
  set.append(el("legend", {}, legend));
  const list = el("ol", { class: "plain stack" });
  const live = [];
  function add(item) {
    const row = make(item, live.length + 1);
    const li = el("li", { class: "row" });
    const entry = { li, read: row.read };
    li.append(...row.nodes);
    if (ordered) {
      const up = el("button", { type: "button", class: "secondary", "aria-label": `Move ${row.label} up` }, "↑");
      up.addEventListener("click", () => {
        const at = live.indexOf(entry);
        if (at > 0) { live.splice(at, 1); live.splice(at - 1, 0, entry); list.insertBefore(li, live[at].li); }
      });
      li.append(up);
    }
    const remove = el("button", { type: "button", class: "secondary", "aria-label": `Remove ${row.label}` }, "Remove");
    remove.addEventListener("click", () => { live.splice(live.indexOf(entry), 1); li.remove(); });
    li.append(remove);
    live.push(entry);
    list.append(li);
    return li;
  }
  items.forEach(add);
  const more = el("button", { type: "button", class: "secondary", "data-add": name }, `Add ${legend.toLowerCase().replace(/s$/, "")}`);
  more.addEventListener("click", () => { const li = add(blank()); li.querySelector("input, select").focus(); });
  set.append(list, more);
  return { node: set, read: () => live.map((entry) => entry.read()) };
}

// Times as text, HH:MM: a time input cannot hold 24:00, the close of a day open to midnight.
const TIME = { pattern: "([01][0-9]|2[0-3]):[0-5][0-9]|24:00", inputmode: "numeric", size: "5", placeholder: "HH:MM" };
function hoursRow(window, n) {
  const day = select(DAYS.map((d) => [d, d]), window.day);
  const open = input("text", window.open, TIME), close = input("text", window.close, TIME);
  day.setAttribute("aria-label", `Window ${n}: day`);
  open.setAttribute("aria-label", `Window ${n}: opens (HH:MM)`);
  close.setAttribute("aria-label", `Window ${n}: closes (HH:MM, 24:00 for midnight)`);
  return { nodes: [day, open, close], label: `window ${n}`, read: () => ({ day: day.value, open: open.value.trim(), close: close.value.trim() }) };
}

function valueRow(type, label, attrs = {}) {
  return (value, n) => {
    const box = input(type, value, { "aria-label": `${label} ${n}`, ...attrs });
    return { nodes: [box], label: `${label.toLowerCase()} ${n}`, read: () => box.value.trim() };
  };
}

function queueForm(record, ctx) {
  const fields = {
    display_name: input("text", record.display_name, { maxlength: "80" }),
    timezone: input("text", record.timezone, { placeholder: "the library's zone" }),
    calendar: input("text", record.holidays?.calendar ?? "US"),
    covered: input("checkbox", record.holidays?.covered),
    rollover: input("checkbox", given(record.rollover_after_s)),
    rollover_after_s: input("number", record.rollover_after_s ?? 120, { min: "5", max: "86400" }),
  };
  const hours = rows("hours", "Opening hours", record.hours || [], () => ({ day: "mon", open: "09:00", close: "17:00" }), hoursRow);
  const closures = rows("closures", "Extra closed days", record.holidays?.closures || [], () => "", valueRow("date", "Closed day"));
  const others = (ctx.queues || []).filter((q) => q !== record.name);
  const known = el("datalist", { id: `rf-queues-${++made}` });
  known.append(...others.map((q) => el("option", { value: q })));
  const fallback = rows("fallback", "Fallback queues", record.fallback || [], () => "", valueRow("text", "Fallback queue", { list: known.id }), { ordered: true });
  const node = el("div", { class: "stack" });
  node.append(
    control("display_name", "Name shown to staff", fields.display_name),
    control("timezone", "Time zone (IANA, empty for the library's)", fields.timezone),
    hours.node,
    control("holidays.calendar", "Holiday calendar", fields.calendar, "A country code like US, or a region like US-TX: its public holidays close the queue."),
    control("holidays.covered", "Open on holidays", fields.covered),
    closures.node,
    known, fallback.node,
    control("rollover", "Move an unclaimed chat to the next queue of its chain", fields.rollover),
    control("rollover_after_s", "after this many seconds unclaimed", fields.rollover_after_s),
  );
  const read = () => ({
    ...record,
    display_name: fields.display_name.value.trim(),
    timezone: fields.timezone.value.trim() || null,
    hours: hours.read(),
    holidays: { ...(record.holidays || {}), calendar: fields.calendar.value.trim(), covered: fields.covered.checked, closures: closures.read().filter(Boolean) },
    fallback: fallback.read().filter(Boolean),
    rollover_after_s: fields.rollover.checked ? Number(fields.rollover_after_s.value) : null,
  });
  return { node, read };
}

function widgetForm(record, ctx) {
  const title = input("text", record.title, { maxlength: "80" });
  const queue = select((ctx.queues || []).map((q) => [q, q]), record.queue);
  const origins = rows("allowed_origins", "Allowed origins", record.allowed_origins || [], () => "", valueRow("url", "Origin", { placeholder: "https://library.example.org" }));
  const node = el("div", { class: "stack" });
  node.append(control("title", "Title on the widget", title), control("queue", "Queue its chats go to", queue), origins.node);
  if (record.id) {
    const line = `<script src="${location.origin}/widget.js" data-widget="${record.id}" async></script>`;
    node.append(el("p", {}, "The line to paste into the library's pages:"), el("code", { class: "paste" }, line));
  }
  return { node, read: () => ({ ...record, title: title.value.trim(), queue: queue.value, allowed_origins: origins.read().filter(Boolean) }) };
}

function snippetForm(record) {
  const body = el("textarea", { rows: "4", maxlength: "4000" });
  body.value = record.body || "";
  const node = el("div", { class: "stack" });
  node.append(control("body", "Text inserted into the chat", body));
  return { node, read: () => ({ ...record, body: body.value }) };
}

function userForm(record) {
  const fields = {
    role: select(ROLES.map((r) => [r, r.replace("_", " ")]), record.role),
    display_name: input("text", record.display_name, { maxlength: "80" }),
    max_chats: input("number", record.max_chats, { min: "1", max: "50", placeholder: "no limit" }),
    disabled: input("checkbox", record.disabled),
    password: input("password", "", { autocomplete: "new-password" }),
  };
  const node = el("div", { class: "stack" });
  node.append(
    control("role", "Role", fields.role),
    control("display_name", "Name patrons see", fields.display_name),
    control("max_chats", "Chats at once", fields.max_chats),
    control("disabled", "Disabled (cannot sign in)", fields.disabled),
    control("password", record.username ? "New password (empty: unchanged)" : "Password", fields.password),
  );
  const read = () => {
    const user = { ...record, role: fields.role.value, display_name: fields.display_name.value.trim(), disabled: fields.disabled.checked };
    user.max_chats = fields.max_chats.value ? Number(fields.max_chats.value) : null;
    if (fields.password.value) user.password = fields.password.value; else delete user.password;
    return user;
  };
  return { node, read };
}

const FORMS = { queues: queueForm, widgets: widgetForm, snippets: snippetForm, users: userForm };
const KEYS = { queues: "name", widgets: "id", snippets: "name", users: "username" };
const KEY_LABELS = { queues: "Queue name", widgets: "Widget id", snippets: "Snippet name", users: "User name" };

// The form for one record; a new record (`isNew`) also takes its key, which an existing one
// keeps (it is the record's address).
export function recordForm(kind, record, ctx, isNew) {
  const key = KEYS[kind];
  const name = input("text", record[key]);
  if (!isNew) name.readOnly = true;
  const inner = FORMS[kind](record, ctx);
  const node = el("div", { class: "stack" });
  node.append(control(key, KEY_LABELS[kind], name), inner.node);
  return { node, read: () => ({ ...inner.read(), [key]: name.value.trim() }) };
}

export { KEYS };
