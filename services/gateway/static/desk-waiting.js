// What comes to the desk to be answered: the queues it monitors, the chats waiting in them
// (with their ticking waits and the new-chat alert), colleagues' chats left when they were
// disconnected, and transfers offered to this operator. Claiming, taking over and accepting
// are the shell's (`onOwn`), which tells `forget` once the chat is this operator's.
import { $, el } from "./dom.js";

const CLAIM_WITHIN_S = 60;  // the desk's rule: a chat unclaimed for a minute stands out

// `queueNames`: the shell's set of the institution's queues, which `loadQueues` fills.
// `isMine(chatId)`: whether the chat is among this operator's own.
export function waitingPanel({ api, send, queueNames, isMine, onOwn, report }) {
  const waiting = new Map();  // chat id -> chat
  const since = new Map();    // chat id -> when it started waiting (ms)
  const orphans = new Map();  // chat id -> the chat.owner_left frame
  const offers = new Map();   // chat id -> the transfer.offer frame

  // The queues to monitor; ticking one tells the server the whole choice.
  async function loadQueues() {
    const queues = await api("/api/queues");
    const list = $("queues");
    list.replaceChildren();
    for (const q of queues) {
      queueNames.add(q.name);
      const item = el("li");
      const label = el("label");
      const box = el("input", { type: "checkbox", value: q.name });
      box.addEventListener("change", updateMonitoring);
      label.append(box, document.createTextNode(` ${q.display_name} (${q.name})`));
      item.append(label);
      list.append(item);
    }
  }
  async function updateMonitoring() {
    const queues = [...document.querySelectorAll("#queues input:checked")].map((b) => b.value);
    try { await send({ type: "monitor.set", queues }); report.error(""); } catch (err) { report.error(err.message); }
  }

  function renderWaiting() {
    const list = $("waiting");
    list.replaceChildren();
    if (waiting.size === 0 && orphans.size === 0) { list.append(el("li", { class: "muted" }, "No one is waiting.")); return; }
    for (const chat of waiting.values()) {
      const item = el("li", { "data-chat": chat.id });
      const again = chat.requeued_at ? " (back in line: their librarian was disconnected)" : "";
      // A chat of another library's patron, fallen back or rolled over to this queue.
      const from = chat.queue_institution && chat.queue_institution !== chat.institution ? ` [${chat.institution}]` : "";
      item.append(el("span", {}, `${chat.patron.name || "Patron"}${from}: ${chat.question || ""}${again}`));
      item.append(el("span", { class: "wait", "data-since": String(since.get(chat.id) || Date.now()) }, ""));
      const button = el("button", { "data-claim": chat.id }, "Claim");
      button.addEventListener("click", () => onOwn("chat.claim", chat.id));
      item.append(button);
      list.append(item);
    }
    for (const orphan of orphans.values()) {
      const item = el("li", { "data-chat": orphan.chat_id });
      item.append(el("span", {}, `${orphan.owner} was disconnected from a chat`));
      const button = el("button", { "data-take": orphan.chat_id }, "Take over");
      button.addEventListener("click", () => onOwn("chat.take", orphan.chat_id));
      item.append(button);
      list.append(item);
    }
  }

  // Waiting times tick every second; the count goes in the tab's title unless alerts are off.
  function tick() {
    for (const span of document.querySelectorAll("#waiting .wait")) {
      const seconds = Math.max(0, Math.floor((Date.now() - Number(span.dataset.since)) / 1000));
      span.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
      span.closest("li").classList.toggle("overdue", seconds >= CLAIM_WITHIN_S);
    }
    const count = waiting.size;
    document.title = count && $("alerts").checked ? `(${count}) waiting — refdesk` : "refdesk — operator";
  }
  setInterval(tick, 1000);
  // A new chat: a short tone and the count in the tab's title, unless turned off.
  function alertNewChat() {
    if (!$("alerts").checked) return;
    document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
    try {
      const audio = new (window.AudioContext || window.webkitAudioContext)();
      const tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = 880; gain.gain.value = 0.1;
      tone.connect(gain).connect(audio.destination);
      tone.start(); tone.stop(audio.currentTime + 0.2);
      tone.addEventListener("ended", () => audio.close());
    } catch { /* no audio here: the title still says it */ }
    tick();
  }
  // The choice is this browser's, kept across sign-ins.
  $("alerts").checked = localStorage.getItem("refdesk-alerts") !== "off";
  $("alerts").addEventListener("change", () => { localStorage.setItem("refdesk-alerts", $("alerts").checked ? "on" : "off"); tick(); });

  function renderOffers() {
    const list = $("offers");
    list.replaceChildren();
    if (offers.size === 0) { list.append(el("li", { class: "muted" }, "No transfer offers.")); return; }
    for (const offer of offers.values()) {
      const item = el("li", { "data-offer": offer.chat_id });
      const note = offer.note ? ` — “${offer.note}”` : "";
      item.append(el("span", {}, `${offer.from} offers ${offer.chat.patron.name || "a patron"}: ${offer.chat.question || ""}${note}`));
      const accept = el("button", { "data-accept": offer.chat_id }, "Accept");
      accept.addEventListener("click", () => onOwn("transfer.accept", offer.chat_id));
      const decline = el("button", { class: "secondary", "data-decline": offer.chat_id }, "Decline");
      decline.addEventListener("click", async () => {
        offers.delete(offer.chat_id); renderOffers();
        try { await send({ type: "transfer.decline", chat_id: offer.chat_id }); } catch (err) { report.error(err.message); }
      });
      item.append(accept, decline);
      list.append(item);
    }
  }

  // The frames about queues, orphaned chats and offers; others are not this panel's.
  function receive(frame) {
    switch (frame.type) {
      case "queue.snapshot":
        waiting.clear();
        for (const w of frame.chats) { waiting.set(w.chat.id, w.chat); since.set(w.chat.id, Date.now() - w.wait_s * 1000); }
        renderWaiting(); tick(); break;
      case "queue.chat_added":
        if (!waiting.has(frame.chat.id)) { since.set(frame.chat.id, Date.now()); alertNewChat(); }
        waiting.set(frame.chat.id, frame.chat); renderWaiting(); tick(); break;
      case "queue.chat_removed":
        waiting.delete(frame.chat_id); since.delete(frame.chat_id); renderWaiting(); tick(); break;
      case "chat.owner_left":
        if (!isMine(frame.chat_id)) { orphans.set(frame.chat_id, frame); renderWaiting(); }
        break;
      case "chat.owner_returned":
      case "chat.closed":
      case "chat.requeued":
        orphans.delete(frame.chat_id); renderWaiting(); break;
      case "transfer.offer":
        offers.set(frame.chat_id, frame); renderOffers(); break;
      case "transfer.withdrawn":
      case "transfer.accepted":
      case "transfer.expired":
        offers.delete(frame.chat_id); renderOffers(); break;
    }
  }

  return {
    loadQueues,
    receive,
    // The chat is this operator's now: no longer waiting, orphaned or offered.
    forget(chatId) {
      waiting.delete(chatId); orphans.delete(chatId); offers.delete(chatId);
      renderWaiting(); renderOffers();
    },
  };
}
