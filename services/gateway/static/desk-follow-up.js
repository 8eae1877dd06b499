// Follow-up: the tickets assigned to this operator or to nobody, the library's missed chats
// of today (a ticket from one in one step), and one ticket worked: its conversation, a
// reply to the patron or a note for staff, its assignee, closing it.
import { $, el } from "./dom.js";

const EMAIL_PROMPT = "The patron's email address, for the follow-up:";

export function followUpPanel({ api, user, report }) {
  let listing = "mine";  // which list shows: "mine", "open" (unassigned) or "missed"
  let asked = 0;  // lists asked for; only the answer to the last one shows
  let ticket = null;  // the ticket shown

  function showList(rows, empty) {
    const list = $("tickets");
    list.replaceChildren();
    if (!rows.length) list.append(el("li", { class: "muted" }, empty));
    else list.append(...rows);
  }

  async function loadTickets() {
    if (listing === "missed") return loadMissed();
    const query = listing === "mine" ? "assignee=me" : "assignee=none&status=open";
    const mine = ++asked;
    try {
      const page = await api(`/api/tickets?${query}`);
      if (mine !== asked) return;  // a later question was asked: its answer shows
      showList(page.tickets.map((t) => {
        const item = el("li", { "data-ticket": t.id });
        const open = el("button", { class: "link", "data-open-ticket": t.id }, `[${t.ref}] ${t.subject} — ${t.status}${t.mail_failed ? " (mail failed)" : ""}`);
        open.addEventListener("click", () => showTicket(t.id));
        item.append(open);
        if (!t.assignee) {
          const take = el("button", { class: "secondary", "data-take-ticket": t.id }, "Take");
          take.addEventListener("click", async () => {
            try { await api(`/api/tickets/${t.id}`, { method: "PATCH", body: JSON.stringify({ assignee: user.username }) }); loadTickets(); }
            catch (err) { report.error(err.message); }
          });
          item.append(take);
        }
        return item;
      }), "No tickets.");
    } catch (err) { report.error(err.message); }
  }

  // The library's missed chats of today, each with a button that makes its ticket.
  async function loadMissed() {
    const mine = ++asked;
    const since = new Date(); since.setHours(0, 0, 0, 0);
    try {
      const found = await api(`/api/chats/missed?since=${encodeURIComponent(since.toISOString())}`);
      if (mine !== asked) return;
      showList(found.chats.map((chat) => {
        const item = el("li", { "data-missed": chat.id });
        item.append(el("span", {}, `${chat.created_at.slice(11, 16)} ${chat.patron.name || "Patron"}: ${chat.question || ""}${chat.patron.email ? "" : " (no email)"}`));
        const make = el("button", { class: "secondary", "data-missed-ticket": chat.id }, "Ticket");
        make.addEventListener("click", async () => {
          try {
            const email = chat.patron.email || window.prompt(EMAIL_PROMPT);
            if (!email) return;
            const made = await api("/api/tickets", { method: "POST", body: JSON.stringify({ chat_id: chat.id, email }) });
            report.notice(`Ticket [${made.ref}] made from a missed chat.`); report.error("");
          } catch (err) { report.error(err.message); }
        });
        item.append(make);
        return item;
      }), "No missed chats today.");
    } catch (err) { report.error(err.message); }
  }

  async function showTicket(ticketId) {
    try {
      const t = await api(`/api/tickets/${ticketId}`);
      ticket = t;
      $("ticket-title").textContent = `[${t.ref}] ${t.subject} — ${t.status}`;
      const entries = [{ by: t.name || t.email, body: t.question, at: t.created_at, kind: "patron" }, ...t.replies, ...t.notes]
        .sort((a, b) => a.at.localeCompare(b.at));
      $("ticket-log").replaceChildren(...entries.map((e) => {
        const line = el("div", { class: `msg ${e.kind === "patron" ? "patron" : "operator"}` });
        const mail = e.mail && e.mail !== "sent" ? ` (mail ${e.mail})` : "";
        line.append(el("span", { class: "who" }, `${e.kind === "note" ? "Note, " : ""}${e.by}${mail}:`), document.createTextNode(e.body));
        return line;
      }));
      // Who may be assigned: the ticket's library's staff, less disabled accounts.
      const staff = await api("/api/users").catch(() => []);
      const choices = [el("option", { value: "" }, "Unassigned")];
      for (const u of staff.filter((u) => u.institution === t.institution && !u.disabled)) {
        choices.push(el("option", { value: u.username }, u.display_name));
      }
      $("ticket-assignee").replaceChildren(...choices);
      $("ticket-assignee").value = t.assignee || "";
      $("ticket-detail").classList.remove("hidden");
    } catch (err) { report.error(err.message); }
  }
  async function changeTicket(change) {
    try {
      await api(`/api/tickets/${ticket.id}`, { method: "PATCH", body: JSON.stringify(change) });
      await showTicket(ticket.id); loadTickets(); report.error("");
    } catch (err) { report.error(err.message); }
  }

  for (const [button, which] of [["tickets-mine", "mine"], ["tickets-open", "open"], ["tickets-missed", "missed"]]) {
    $(button).addEventListener("click", () => { listing = which; loadTickets(); });
  }
  $("ticket-assignee").addEventListener("change", () => changeTicket({ assignee: $("ticket-assignee").value || null }));
  $("ticket-close").addEventListener("click", () => changeTicket({ status: "closed" }));
  $("ticket-reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("ticket-reply").value.trim();
    if (!body || !ticket) return;
    try {
      await api(`/api/tickets/${ticket.id}/replies`, { method: "POST", body: JSON.stringify({ body, internal: $("ticket-internal").checked }) });
      $("ticket-reply").value = ""; await showTicket(ticket.id); loadTickets(); report.error("");
    } catch (err) { report.error(err.message); }
  });

  // The list shown again: a ticket was made, assigned or answered.
  return { reload: loadTickets };
}
