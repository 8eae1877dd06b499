// Patrons on the library's pages lately (guests of its widgets): the operator may start a
// chat with one (a proactive chat), which becomes one of theirs (`onStarted`).
import { $, el } from "./dom.js";

export function guestsPanel({ api, send, user, onStarted, report }) {
  async function loadGuests() {
    try {
      const found = await api("/api/guests?limit=20");
      $("guests").replaceChildren(...found.guests.map((g) => {
        const item = el("li", { "data-guest": g.guest_id });
        // The page of the library's site they are on, when the loader said.
        const where = g.page ? ` (${g.page.replace(/^https?:\/\//, "")})` : "";
        item.append(el("span", {}, `Guest …${g.guest_id.slice(-4)} on ${g.widget}${where}, ${g.last_seen.slice(11, 16)}`));
        const start = el("button", { class: "secondary", "data-start-chat": g.guest_id }, "Start chat");
        start.addEventListener("click", async () => {
          const body = window.prompt("Your opening message to this guest:", "Hello! Can I help you find something?");
          if (!body) return;
          try {
            const ack = await send({ type: "chat.start_proactive", guest_id: g.guest_id, body });
            onStarted(ack.chat, [{ body, from: { kind: "operator", name: user.display_name } }]); report.error("");
          } catch (err) { report.error(err.message); }
        });
        item.append(start);
        return item;
      }));
      if (!found.guests.length) $("guests").append(el("li", { class: "muted" }, "Nobody lately."));
    } catch (err) { report.error(err.message); }
  }
  $("guests-refresh").addEventListener("click", loadGuests);
}
