// This operator's chats: the list of them (new patron messages counted in the ones not
// shown), the one shown with its log, who the patron is and their earlier chats of the day;
// replying (with snippets, and telling the patron that the librarian is typing), tagging,
// a ticket in one step, transferring (desk-transfer.js) and closing.
import { $, el } from "./dom.js";
import { transferPanel } from "./desk-transfer.js";

const TYPING_EVERY_MS = 3000;  // at most one typing notice to the patron this often
const TYPING_SHOWN_MS = 5000;  // "… is typing" goes after this long without another
const OPEN = ["active", "transferring"];  // the states in which the chat can be written to
const COMPOSER = ["body", "send", "tags", "close", "snippet"];  // usable while the chat is open
const TAGGING = ["tag", "tag-add", "ticket"];  // usable during the chat and after it closed

// Events up: `onTicketMade(ticket)`.
export function chatsPanel({ api, connection, user, queueNames, onTicketMade, report }) {
  const chats = new Map();  // chat id -> {chat, messages, unread}
  const snippets = new Map();  // name -> text
  let current = null;  // the id of the chat shown
  let typingSent = 0, typingTimer = null;

  const transfer = transferPanel({
    api, send: connection.send, queueNames, report,
    current: () => (chats.has(current) ? { id: current, chat: chats.get(current).chat } : null),
    onTransferred: (chat) => replaceChat(chat),
    onStateChanged: (chatId, state) => setChatState(chatId, state),
  });

  function renderMine() {
    const list = $("mine");
    list.replaceChildren();
    for (const entry of chats.values()) {
      const item = el("li", { "data-chat": entry.chat.id, tabindex: "0" }, `${entry.chat.patron.name || "Patron"} (${entry.chat.state})`);
      if (entry.chat.id === current) item.classList.add("current");
      if (entry.unread) item.append(el("span", { class: "unread", "aria-label": `${entry.unread} new` }, String(entry.unread)));
      item.addEventListener("click", () => select(entry.chat.id));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") select(entry.chat.id); });
      list.append(item);
    }
  }
  function renderLog() {
    const log = $("log");
    log.replaceChildren();
    const entry = chats.get(current);
    const open = entry && OPEN.includes(entry.chat.state);
    $("chat-title").textContent = entry ? `Chat with ${entry.chat.patron.name || "Patron"} — ${entry.chat.state}` : "No chat selected";
    for (const id of COMPOSER) $(id).disabled = !open;
    for (const id of TAGGING) $(id).disabled = !entry;
    transfer.show(entry && entry.chat);
    if (!entry) { $("patron").textContent = ""; return; }
    const c = entry.chat;
    const details = [c.patron.name || "Patron", c.patron.email, c.widget && `widget ${c.widget}`, c.tags.length && `tags: ${c.tags.join(", ")}`];
    $("patron").textContent = details.filter(Boolean).join(" · ");
    if (c.patron.page) {
      // Shown as text, and a link only to a web address (the server checked its form).
      const link = el("a", { href: c.patron.page, target: "_blank", rel: "noopener noreferrer", "data-page": "" }, c.patron.page);
      $("patron").append(" · from ", link);
    }
    for (const m of entry.messages) {
      const line = el("div", { class: `msg ${m.from.kind}` });
      line.append(el("span", { class: "who" }, m.from.name + ":"), document.createTextNode(m.body));
      log.append(line);
    }
    log.scrollTop = log.scrollHeight;
  }
  function select(chatId) {
    current = chatId; $("typing").textContent = ""; renderLog();
    const entry = chats.get(chatId);
    if (entry) entry.unread = 0;
    renderMine();
    if (entry) { earlierToday(entry.chat); transfer.loadTargets(entry.chat); }
  }
  function setChatState(chatId, state) {
    const entry = chats.get(chatId);
    if (entry) { entry.chat.state = state; renderMine(); renderLog(); }
  }
  // The chat as the server answered it after a change (tags, a transfer, closing).
  function replaceChat(chat) {
    const entry = chats.get(chat.id);
    if (entry) { entry.chat = chat; renderMine(); renderLog(); }
  }

  // A returning patron: the guest's other chats of the day, beside this one.
  async function earlierToday(chat) {
    $("earlier").classList.add("hidden");
    try {
      const found = await api(`/api/guests/${encodeURIComponent(chat.patron.guest_id)}/chats`);
      const others = found.chats.filter((c) => c.id !== chat.id);
      if (current !== chat.id || !others.length) return;
      $("earlier-list").replaceChildren(...others.map((c) => el("li", { "data-earlier": c.id },
        `${c.created_at.slice(11, 16)} ${c.question || ""} — ${c.owner_name || "unanswered"} (${c.state})`)));
      $("earlier").classList.remove("hidden");
    } catch { /* history is a help, not a must */ }
  }

  async function loadSnippets() {
    try {
      const found = await api("/api/snippets");
      for (const snippet of found) {
        snippets.set(snippet.name, snippet.body);
        $("snippet").append(el("option", { value: snippet.name }, snippet.name));
      }
    } catch { /* none to offer */ }
  }
  $("snippet").addEventListener("change", () => {
    const text = snippets.get($("snippet").value);
    if (text) { $("body").value = $("body").value ? `${$("body").value} ${text}` : text; $("body").focus(); }
    $("snippet").value = "";
  });

  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("body").value.trim();
    if (!body || !current) return;
    try {
      const ack = await connection.sendMessage(current, body);
      const entry = chats.get(current);
      entry.messages.push({ id: ack.id, seq: ack.seq, body, from: { kind: "operator", name: user.display_name } });
      if (entry.chat.state === "transferring") entry.chat.state = "active";  // writing took it back
      renderMine();
      $("body").value = ""; renderLog();
    } catch (err) { report.error(err.message); }
  });
  $("body").addEventListener("input", () => {
    const now = Date.now();
    if (!current || !$("body").value || now - typingSent < TYPING_EVERY_MS) return;
    typingSent = now;
    connection.send({ type: "typing", chat_id: current }).catch(() => {});
  });
  $("tag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const tag = $("tag").value.trim();
    if (!tag || !current) return;
    try {
      const ack = await connection.send({ type: "chat.tag", chat_id: current, tags: [tag] });
      $("tag").value = ""; replaceChat(ack.chat); report.error("");
    } catch (err) { report.error(err.message); }
  });
  // One step: the chat's email, name and question; asks for an address if the chat has none.
  $("ticket").addEventListener("click", async () => {
    const chatId = current;
    if (!chatId) return;
    const make = (extra) => api("/api/tickets", { method: "POST", body: JSON.stringify({ chat_id: chatId, ...extra }) });
    try {
      let ticket;
      try { ticket = await make({}); }
      catch (err) {
        if (err.status !== 422 || !err.message.includes("email")) throw err;
        const email = window.prompt("The patron's email address, for the follow-up:");
        if (!email) return;
        ticket = await make({ email });
      }
      report.notice(`Ticket [${ticket.ref}] made from this chat.`); report.error(""); onTicketMade(ticket);
    } catch (err) { report.error(err.message); }
  });
  $("close-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const tags = $("tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    try {
      const ack = await connection.send({ type: "chat.close", chat_id: current, tags });
      $("tags").value = ""; replaceChat(ack.chat);
    } catch (err) { report.error(err.message); }
  });

  // The frames about this operator's chats; others are not this panel's.
  function receive(frame) {
    switch (frame.type) {
      case "typing":
        if (frame.chat_id === current && frame.from.kind === "patron") {
          $("typing").textContent = `${frame.from.name} is typing…`;
          clearTimeout(typingTimer);
          typingTimer = setTimeout(() => { $("typing").textContent = ""; }, TYPING_SHOWN_MS);
        }
        break;
      case "message": {
        if (frame.chat_id === current && frame.from.kind === "patron") $("typing").textContent = "";
        const entry = chats.get(frame.chat_id);
        if (entry) {
          entry.messages.push(frame);
          if (current === frame.chat_id) renderLog();
          else if (frame.from.kind === "patron") { entry.unread = (entry.unread || 0) + 1; renderMine(); }
        }
        break;
      }
      case "chat.resumed":
        chats.set(frame.chat.id, { chat: frame.chat, messages: frame.messages });
        renderMine(); if (!current) select(frame.chat.id); break;
      case "chat.closed":
        setChatState(frame.chat_id, frame.state); break;
      case "chat.requeued":
        setChatState(frame.chat_id, "requeued"); break;
      case "transfer.accepted":
        setChatState(frame.chat_id, `transferred to ${frame.operator_name}`); break;
      case "transfer.expired":
        if (chats.has(frame.chat_id)) { setChatState(frame.chat_id, "active"); report.error(`Nobody took the transfer (${frame.reason}); the chat is still yours.`); }
        break;
    }
  }

  return {
    receive,
    loadSnippets,
    has: (chatId) => chats.has(chatId),
    // A chat this operator now has (claimed, taken over, accepted, started), shown at once.
    open(chat, messages) { chats.set(chat.id, { chat, messages }); renderMine(); select(chat.id); },
    // Back after a drop: a chat this desk was answering that the session no longer lists
    // (`stillMine`) went to a colleague, back to the queue, or ended meanwhile.
    reconcile(stillMine) {
      for (const [id, entry] of chats) {
        const mine = OPEN.includes(entry.chat.state) && entry.chat.owner === user.username;
        if (mine && !stillMine.includes(id)) {
          setChatState(id, "no longer yours");
          report.notice(`While you were away, your chat with ${entry.chat.patron.name || "a patron"} went to a colleague, back to the queue, or ended.`);
        }
      }
    },
  };
}
