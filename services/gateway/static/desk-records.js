// Records (for admins, in the reports): the library's queues, widgets, snippets and users,
// each in its own form (record-forms.js). The server checks every field (the ones it refuses
// are marked) and the scope of every change.
import { $, el } from "./dom.js";
import { KEYS, recordForm } from "./record-forms.js";

// A new record's first values: names begin with the consortium's and the library's parts
// (the naming convention the server checks), for the admin to finish.
function templates(user) {
  const consortium = user.username.split("-")[0];
  return {
    queues: (inst) => ({ name: `${consortium}-${inst}-`, institution: inst, display_name: "", hours: [] }),
    widgets: (inst) => ({ id: "", institution: inst, queue: "", title: "Ask a librarian", allowed_origins: [] }),
    snippets: (inst) => ({ name: `${inst} ()`, institution: inst, body: "" }),
    users: (inst) => ({ role: "operator", username: `${consortium}-${inst}-`, institution: inst, display_name: "" }),
  };
}

// Events up: `onSaved(kind, record)`, awaited: what it fails at shows as not saved.
export function recordsEditor({ api, user, queueNames, onSaved, report }) {
  const TEMPLATES = templates(user);
  let editing = null;  // the name of the record in the form; null for a new one
  let form = null;

  async function listRecords(select) {
    const kind = $("records-kind").value;
    const records = await api(`/api/${kind}`);
    $("records-name").replaceChildren(...records.map((r) => el("option", { value: r[KEYS[kind]] }, r[KEYS[kind]])));
    if (select) $("records-name").value = select;
    await showRecord();
  }
  function fill(kind, record, isNew) {
    form = recordForm(kind, record, { queues: [...queueNames] }, isNew);
    $("record-fields").replaceChildren(form.node);
    // Accounts are disabled, never deleted: their names stay on the transcripts.
    $("record-delete").classList.toggle("hidden", kind === "users");
  }
  async function showRecord() {
    const kind = $("records-kind").value, name = $("records-name").value;
    $("record-said").textContent = "";
    if (!name) { editing = null; form = null; $("record-fields").replaceChildren(); return; }
    const record = await api(`/api/${kind}/${encodeURIComponent(name)}`);
    editing = name; fill(kind, record, false);
  }
  function markRefused(fields) {
    for (const field of fields || []) {
      for (const node of $("record-fields").querySelectorAll("[data-field]")) {
        if (node.dataset.field === field || node.dataset.field.startsWith(`${field}.`)) node.setAttribute("aria-invalid", "true");
      }
    }
  }

  $("records-kind").addEventListener("change", () => listRecords().catch((err) => report.error(err.message)));
  $("records-name").addEventListener("change", () => showRecord().catch((err) => report.error(err.message)));
  $("records-new").addEventListener("click", () => {
    const kind = $("records-kind").value;
    editing = null; fill(kind, TEMPLATES[kind](user.institution), true);
    $("record-said").textContent = "A new record: fill it in and save.";
    $("record-fields").querySelector("input").focus();
  });
  $("record-editor").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form) return;
    const kind = $("records-kind").value;
    for (const node of $("record-fields").querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    try {
      const path = editing === null ? `/api/${kind}` : `/api/${kind}/${encodeURIComponent(editing)}`;
      const saved = await api(path, { method: editing === null ? "POST" : "PUT", body: JSON.stringify(form.read()) });
      await listRecords(saved[KEYS[kind]]);
      $("record-said").textContent = "Saved.";
      await onSaved(kind, saved);
    } catch (err) {
      $("record-said").textContent = `Not saved: ${err.message}`;
      markRefused(err.fields);
    }
  });
  $("record-delete").addEventListener("click", async () => {
    const kind = $("records-kind").value;
    if (editing === null || !window.confirm(`Delete ${editing}?`)) return;
    try {
      await api(`/api/${kind}/${encodeURIComponent(editing)}`, { method: "DELETE" });
      await listRecords(); $("record-said").textContent = "Deleted.";
    } catch (err) { $("record-said").textContent = `Not deleted: ${err.message}`; }
  });

  // The records of the kind chosen, the first (or `select`) in the form.
  return { listRecords };
}
