// Transferring the chat shown on the desk: to someone online chosen from a list (own library
// first; the patron's library, partners and backup services only when "other libraries" is
// ticked, the explicit cross-library choice), or to a user name or queue typed in, with an
// optional note; and taking an open offer back until someone accepts it.
import { $, el } from "./dom.js";

const RELATIONS = { own: "Your library", home: "The patron's library", partner: "Partners", backup: "Backup service" };
const CONTROLS = ["transfer-to", "transfer-note", "transfer", "transfer-choice", "transfer-cross"];

// `current()`: the chat shown, as {id, chat}, or null. Events up: `onTransferred(chat)` with
// the chat as the server now has it, `onStateChanged(chatId, state)`.
export function transferPanel({ api, send, queueNames, current, onTransferred, onStateChanged, report }) {
  let targets = [];  // who and which queues the server offers for the chat shown

  // Suggestions for the typed box: this institution's queues and, for another library's
  // patron (the backup service answering), that library's own queue to hand the chat back to.
  function renderSuggestions(chat) {
    const list = $("transfer-targets");
    list.replaceChildren();
    for (const name of queueNames) list.append(el("option", { value: name }));
    if (chat.home_queue && !queueNames.has(chat.home_queue)) {
      list.append(el("option", { value: chat.home_queue, label: `hand back to ${chat.institution}` }));
    }
  }
  function typedTarget(name, chat) {
    return queueNames.has(name) || name === chat.home_queue ? { queue: name } : { operator: name };
  }

  async function loadTargets(chat) {
    targets = [];
    if (!["active", "transferring"].includes(chat.state)) return renderTargets();
    try { targets = (await api(`/api/transfer-targets?chat_id=${chat.id}`)).targets; }
    catch { targets = []; }
    const shown = current();
    if (shown && shown.id === chat.id) renderTargets();
  }
  function renderTargets() {
    const select = $("transfer-choice");
    select.replaceChildren(el("option", { value: "" }, "Transfer to…"));
    const wide = $("transfer-cross").checked;
    for (const [relation, title] of Object.entries(RELATIONS)) {
      if (relation !== "own" && !wide) continue;
      const here = (targets || []).filter((t) => t.relation === relation && (t.kind === "queue" || t.online));
      if (!here.length) continue;
      const group = el("optgroup", { label: title });
      for (const t of here) {
        const label = t.kind === "operator" ? `${t.display_name} (${t.institution})` : `Queue ${t.display_name}${t.online ? "" : " (nobody online)"}`;
        group.append(el("option", { value: `${t.kind}:${t.name}`, "data-relation": t.relation }, label));
      }
      select.append(group);
    }
  }
  $("transfer-cross").addEventListener("change", renderTargets);

  $("transfer-cancel").addEventListener("click", async () => {
    const shown = current();
    if (!shown) return;
    try {
      const ack = await send({ type: "transfer.cancel", chat_id: shown.id });
      onStateChanged(shown.id, ack.state); report.error("");
    } catch (err) { report.error(err.message); }
  });

  $("transfer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = $("transfer-choice").value;
    const name = chosen ? chosen.split(":").slice(1).join(":") : $("transfer-to").value.trim();
    const shown = current();
    if (!name || !shown) return;
    const to = chosen ? { [chosen.split(":")[0]]: name } : typedTarget(name, shown.chat);
    const note = $("transfer-note").value.trim() || null;
    const transfer = { type: "chat.transfer", chat_id: shown.id, to, note };
    // Chosen from another library's list: that was the explicit choice.
    const option = $("transfer-choice").selectedOptions[0];
    if (chosen && option && option.dataset.relation !== "own") transfer.cross_institution = true;
    try {
      let ack;
      try {
        ack = await send(transfer);
      } catch (err) {
        // Outside the library only on purpose: the server says so, the operator confirms.
        if (err.code !== "forbidden" || !err.message.includes("cross_institution")) throw err;
        if (!window.confirm(`${name} is outside your library. Transfer the chat there?`)) return;
        ack = await send({ ...transfer, cross_institution: true });
      }
      $("transfer-to").value = ""; $("transfer-note").value = ""; $("transfer-choice").value = "";
      onTransferred(ack.chat); report.error("");
    } catch (err) { report.error(err.message); }
  });

  return {
    // The chat shown (or none): the controls work while it is open, and an offer of it can
    // be taken back while it is transferring.
    show(chat) {
      const open = Boolean(chat) && ["active", "transferring"].includes(chat.state);
      for (const id of CONTROLS) $(id).disabled = !open;
      $("transfer-cancel").classList.toggle("hidden", !(chat && chat.state === "transferring"));
      if (chat) renderSuggestions(chat);
    },
    // A chat newly shown: ask who can take it now.
    loadTargets,
  };
}
