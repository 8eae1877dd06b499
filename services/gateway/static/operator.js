// refdesk operator client: sign in, choose status and queues, claim, reply, tag, transfer
// (and answer transfer offers), take over a disconnected colleague's chat, close, and talk
// to other staff.
import { createConnection } from "./connection.js";
import { bars, coverageStrip, figuresBars, heatmap, pairedBars } from "./charts.js";
import { KEYS, recordForm } from "./record-forms.js";
import { staffTalk } from "./staff-talk.js";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { token: null, user: null,
                  waiting: new Map(), orphans: new Map(), offers: new Map(), chats: new Map(),
                  current: null, queueNames: new Set(), since: new Map(), snippets: new Map(),
                  typingSent: 0, typingTimer: null, tickets: "mine" };
  const CLAIM_WITHIN_S = 60, TYPING_EVERY_MS = 3000, TYPING_SHOWN_MS = 5000;
  // REST as the signed-in operator; a refusal rejects with its message and HTTP status.
  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" };
    const response = await fetch(path, { ...options, headers });
    const body = response.status === 204 ? null : await response.json();
    if (!response.ok) throw Object.assign(new Error(body && body.message || response.statusText), { status: response.status, fields: body && body.fields });
    return body;
  }

  function showError(text) { $("desk-error").textContent = text || ""; }
  const connection = createConnection({
    path: "/ws/operator",
    greeting: () => ({ type: "auth", token: state.token }),
    onFrame,
    onProblem: showError,
    onClosed: () => { $("status").disabled = true; },
    // A network drop or a restarted gateway: come back and resume the chats.
    onReconnecting: () => { $("connection").textContent = "Reconnecting…"; },
  });
  const send = connection.send;
  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    node.textContent = text;
    return node;
  }

  function renderWaiting() {
    const list = $("waiting");
    list.replaceChildren();
    if (state.waiting.size === 0 && state.orphans.size === 0) { list.append(el("li", { class: "muted" }, "No one is waiting.")); return; }
    for (const chat of state.waiting.values()) {
      const item = el("li", { "data-chat": chat.id });
      const again = chat.requeued_at ? " (back in line: their librarian was disconnected)" : "";
      // A chat of another library's patron, fallen back or rolled over to this queue.
      const from = chat.queue_institution && chat.queue_institution !== chat.institution ? ` [${chat.institution}]` : "";
      item.append(el("span", {}, `${chat.patron.name || "Patron"}${from}: ${chat.question || ""}${again}`));
      item.append(el("span", { class: "wait", "data-since": String(state.since.get(chat.id) || Date.now()) }, ""));
      const button = el("button", { "data-claim": chat.id }, "Claim");
      button.addEventListener("click", () => own("chat.claim", chat.id));
      item.append(button);
      list.append(item);
    }
    for (const orphan of state.orphans.values()) {
      const item = el("li", { "data-chat": orphan.chat_id });
      item.append(el("span", {}, `${orphan.owner} was disconnected from a chat`));
      const button = el("button", { "data-take": orphan.chat_id }, "Take over");
      button.addEventListener("click", () => own("chat.take", orphan.chat_id));
      item.append(button);
      list.append(item);
    }
  }
  // Waiting times tick; a chat unclaimed for a minute stands out (the desk's rule).
  function tick() {
    for (const span of document.querySelectorAll("#waiting .wait")) {
      const seconds = Math.max(0, Math.floor((Date.now() - Number(span.dataset.since)) / 1000));
      span.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
      span.closest("li").classList.toggle("overdue", seconds >= CLAIM_WITHIN_S);
    }
    const count = state.waiting.size;
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
    } catch (err) { /* no audio here: the title still says it */ }
    tick();
  }
  function renderOffers() {
    const list = $("offers");
    list.replaceChildren();
    if (state.offers.size === 0) { list.append(el("li", { class: "muted" }, "No transfer offers.")); return; }
    for (const offer of state.offers.values()) {
      const item = el("li", { "data-offer": offer.chat_id });
      const note = offer.note ? ` — “${offer.note}”` : "";
      item.append(el("span", {}, `${offer.from} offers ${offer.chat.patron.name || "a patron"}: ${offer.chat.question || ""}${note}`));
      const accept = el("button", { "data-accept": offer.chat_id }, "Accept");
      accept.addEventListener("click", () => own("transfer.accept", offer.chat_id));
      const decline = el("button", { class: "secondary", "data-decline": offer.chat_id }, "Decline");
      decline.addEventListener("click", async () => {
        state.offers.delete(offer.chat_id); renderOffers();
        try { await send({ type: "transfer.decline", chat_id: offer.chat_id }); } catch (err) { showError(err.message); }
      });
      item.append(accept, decline);
      list.append(item);
    }
  }
  // Notices: tickets, chats moved between queues, announcements, what this desk did.
  function notice(text) {
    const line = el("div", { class: "msg system" }, text);
    $("notices").append(line); $("notices").scrollTop = $("notices").scrollHeight;
  }
  // Staff conversations: all, each queue, each colleague; each with its history.
  async function startStaffTalk() {
    const colleagues = await api("/api/users").catch(() => []);
    state.talk = staffTalk({ api, send, user: state.user, queues: [...state.queueNames], colleagues, picker: $("staff-conversation"), log: $("staff-log"), composer: $("staff-form") });
    await state.talk.show().catch(() => {});
  }
  // Every chat of this operator, the one shown marked; new patron messages in the others
  // counted until they are looked at.
  function renderMine() {
    const list = $("mine");
    list.replaceChildren();
    for (const chat of state.chats.values()) {
      const item = el("li", { "data-chat": chat.chat.id, tabindex: "0" }, `${chat.chat.patron.name || "Patron"} (${chat.chat.state})`);
      if (chat.chat.id === state.current) item.classList.add("current");
      if (chat.unread) item.append(el("span", { class: "unread", "aria-label": `${chat.unread} new` }, String(chat.unread)));
      item.addEventListener("click", () => select(chat.chat.id));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") select(chat.chat.id); });
      list.append(item);
    }
  }
  function renderLog() {
    const log = $("log");
    log.replaceChildren();
    const entry = state.chats.get(state.current);
    const open = entry && ["active", "transferring"].includes(entry.chat.state);
    $("chat-title").textContent = entry ? `Chat with ${entry.chat.patron.name || "Patron"} — ${entry.chat.state}` : "No chat selected";
    for (const id of ["body", "send", "tags", "close", "transfer-to", "transfer-note", "transfer", "snippet", "transfer-choice", "transfer-cross"]) $(id).disabled = !open;
    // An offer of this chat is open: it can be taken back until someone accepts.
    $("transfer-cancel").classList.toggle("hidden", !(entry && entry.chat.state === "transferring"));
    // Tags and a ticket: during the chat and after it closed.
    for (const id of ["tag", "tag-add", "ticket"]) $(id).disabled = !entry;
    if (!entry) { $("patron").textContent = ""; return; }
    const c = entry.chat;
    const details = [c.patron.name || "Patron", c.patron.email, c.widget && `widget ${c.widget}`, c.tags.length && `tags: ${c.tags.join(", ")}`];
    $("patron").textContent = details.filter(Boolean).join(" · ");
    if (c.patron.page) {
      // Shown as text, and a link only to a web address (the server checked its form).
      const link = el("a", { href: c.patron.page, target: "_blank", rel: "noopener noreferrer", "data-page": "" }, c.patron.page);
      $("patron").append(" · from ", link);
    }
    renderTransferTargets(entry.chat);
    for (const m of entry.messages) {
      const line = el("div", { class: `msg ${m.from.kind}` });
      line.append(el("span", { class: "who" }, m.from.name + ":"), document.createTextNode(m.body));
      log.append(line);
    }
    log.scrollTop = log.scrollHeight;
  }
  // Suggestions for the transfer box: this institution's queues and, for another library's
  // patron (the backup service answering), that library's own queue to hand the chat back to.
  function renderTransferTargets(chat) {
    const list = $("transfer-targets");
    list.replaceChildren();
    for (const name of state.queueNames) list.append(el("option", { value: name }));
    if (chat.home_queue && !state.queueNames.has(chat.home_queue)) {
      list.append(el("option", { value: chat.home_queue, label: `hand back to ${chat.institution}` }));
    }
  }
  function transferTarget(name, chat) {
    return state.queueNames.has(name) || name === chat.home_queue ? { queue: name } : { operator: name };
  }
  function select(chatId) {
    state.current = chatId; $("typing").textContent = ""; renderLog();
    const entry = state.chats.get(chatId);
    if (entry) entry.unread = 0;
    renderMine();
    if (entry) { earlierToday(entry.chat); loadTargets(entry.chat); }
  }
  // Who is online to transfer to: own library first; the patron's library, partners and
  // backup services only when "other libraries" is ticked (the explicit cross-library choice).
  const RELATIONS = { own: "Your library", home: "The patron's library", partner: "Partners", backup: "Backup service" };
  async function loadTargets(chat) {
    state.targets = [];
    if (!["active", "transferring"].includes(chat.state)) return renderTargets();
    try { state.targets = (await api(`/api/transfer-targets?chat_id=${chat.id}`)).targets; }
    catch (err) { state.targets = []; }
    if (state.current === chat.id) renderTargets();
  }
  function renderTargets() {
    const select = $("transfer-choice");
    select.replaceChildren(el("option", { value: "" }, "Transfer to…"));
    const wide = $("transfer-cross").checked;
    for (const [relation, title] of Object.entries(RELATIONS)) {
      if (relation !== "own" && !wide) continue;
      const here = (state.targets || []).filter((t) => t.relation === relation && (t.kind === "queue" || t.online));
      if (!here.length) continue;
      const group = el("optgroup", { label: title });
      for (const t of here) {
        const label = t.kind === "operator" ? `${t.display_name} (${t.institution})` : `Queue ${t.display_name}${t.online ? "" : " (nobody online)"}`;
        group.append(el("option", { value: `${t.kind}:${t.name}`, "data-relation": t.relation }, label));
      }
      select.append(group);
    }
  }
  // A returning patron: the guest's other chats of the day, beside this one.
  async function earlierToday(chat) {
    $("earlier").classList.add("hidden");
    try {
      const found = await api(`/api/guests/${encodeURIComponent(chat.patron.guest_id)}/chats`);
      const others = found.chats.filter((c) => c.id !== chat.id);
      if (state.current !== chat.id || !others.length) return;
      $("earlier-list").replaceChildren(...others.map((c) => el("li", { "data-earlier": c.id },
        `${c.created_at.slice(11, 16)} ${c.question || ""} — ${c.owner_name || "unanswered"} (${c.state})`)));
      $("earlier").classList.remove("hidden");
    } catch (err) { /* history is a help, not a must */ }
  }
  async function loadSnippets() {
    try {
      const found = await api("/api/snippets");
      for (const snippet of found) {
        state.snippets.set(snippet.name, snippet.body);
        $("snippet").append(el("option", { value: snippet.name }, snippet.name));
      }
    } catch (err) { /* none to offer */ }
  }
  // The library's missed chats of today: follow up one with a ticket in one step.
  async function loadMissed() {
    const asked = state.ticketsAsked = (state.ticketsAsked || 0) + 1;
    const since = new Date(); since.setHours(0, 0, 0, 0);
    try {
      const found = await api(`/api/chats/missed?since=${encodeURIComponent(since.toISOString())}`);
      if (asked !== state.ticketsAsked) return;
      const list = $("tickets");
      list.replaceChildren();
      if (!found.chats.length) { list.append(el("li", { class: "muted" }, "No missed chats today.")); return; }
      for (const chat of found.chats) {
        const item = el("li", { "data-missed": chat.id });
        item.append(el("span", {}, `${chat.created_at.slice(11, 16)} ${chat.patron.name || "Patron"}: ${chat.question || ""}${chat.patron.email ? "" : " (no email)"}`));
        const ticket = el("button", { class: "secondary", "data-missed-ticket": chat.id }, "Ticket");
        ticket.addEventListener("click", async () => {
          try {
            const email = chat.patron.email || window.prompt("The patron's email address, for the follow-up:");
            if (!email) return;
            const made = await api("/api/tickets", { method: "POST", body: JSON.stringify({ chat_id: chat.id, email }) });
            notice(`Ticket [${made.ref}] made from a missed chat.`); showError("");
          } catch (err) { showError(err.message); }
        });
        item.append(ticket);
        list.append(item);
      }
    } catch (err) { showError(err.message); }
  }
  // One ticket: its conversation, a reply or note, its assignee, closing it.
  async function showTicket(ticketId) {
    try {
      const t = await api(`/api/tickets/${ticketId}`);
      state.ticket = t;
      $("ticket-title").textContent = `[${t.ref}] ${t.subject} — ${t.status}`;
      const entries = [{ by: t.name || t.email, body: t.question, at: t.created_at, kind: "patron" }, ...t.replies, ...t.notes]
        .sort((a, b) => a.at.localeCompare(b.at));
      $("ticket-log").replaceChildren(...entries.map((e) => {
        const line = el("div", { class: `msg ${e.kind === "patron" ? "patron" : "operator"}` });
        const mail = e.mail && e.mail !== "sent" ? ` (mail ${e.mail})` : "";
        line.append(el("span", { class: "who" }, `${e.kind === "note" ? "Note, " : ""}${e.by}${mail}:`), document.createTextNode(e.body));
        return line;
      }));
      const staff = await api("/api/users").catch(() => []);
      const choices = [el("option", { value: "" }, "Unassigned")];
      for (const u of staff.filter((u) => u.institution === t.institution && !u.disabled)) {
        choices.push(el("option", { value: u.username }, u.display_name));
      }
      $("ticket-assignee").replaceChildren(...choices);
      $("ticket-assignee").value = t.assignee || "";
      $("ticket-detail").classList.remove("hidden");
    } catch (err) { showError(err.message); }
  }
  async function changeTicket(change) {
    try {
      await api(`/api/tickets/${state.ticket.id}`, { method: "PATCH", body: JSON.stringify(change) });
      await showTicket(state.ticket.id); loadTickets(); showError("");
    } catch (err) { showError(err.message); }
  }
  async function loadTickets() {
    if (state.tickets === "missed") return loadMissed();
    const query = state.tickets === "mine" ? "assignee=me" : "assignee=none&status=open";
    const asked = state.ticketsAsked = (state.ticketsAsked || 0) + 1;
    try {
      const page = await api(`/api/tickets?${query}`);
      if (asked !== state.ticketsAsked) return;  // a later question was asked: its answer shows
      const list = $("tickets");
      list.replaceChildren();
      if (!page.tickets.length) { list.append(el("li", { class: "muted" }, "No tickets.")); return; }
      for (const t of page.tickets) {
        const item = el("li", { "data-ticket": t.id });
        const open = el("button", { class: "link", "data-open-ticket": t.id }, `[${t.ref}] ${t.subject} — ${t.status}${t.mail_failed ? " (mail failed)" : ""}`);
        open.addEventListener("click", () => showTicket(t.id));
        item.append(open);
        if (!t.assignee) {
          const take = el("button", { class: "secondary", "data-take-ticket": t.id }, "Take");
          take.addEventListener("click", async () => {
            try { await api(`/api/tickets/${t.id}`, { method: "PATCH", body: JSON.stringify({ assignee: state.user.username }) }); loadTickets(); }
            catch (err) { showError(err.message); }
          });
          item.append(take);
        }
        list.append(item);
      }
    } catch (err) { showError(err.message); }
  }

  // Claim from the queue, take over from a disconnected colleague, or accept an offer:
  // each answers with the chat and its whole history.
  async function own(type, chatId) {
    try {
      const ack = await send({ type, chat_id: chatId });
      state.waiting.delete(chatId); state.orphans.delete(chatId); state.offers.delete(chatId);
      state.chats.set(chatId, { chat: ack.chat, messages: ack.messages });
      renderWaiting(); renderOffers(); renderMine(); select(chatId); showError("");
    } catch (err) { showError(err.message); }
  }
  function setChatState(chatId, chatState) {
    const entry = state.chats.get(chatId);
    if (entry) { entry.chat.state = chatState; renderMine(); renderLog(); }
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "session":
        $("connection").textContent = "Connected"; $("status").disabled = false;
        $("status").value = frame.status; $("status").dataset.confirmed = frame.status;
        if (state.hadSession) {
          // Back after a drop: what colleagues wrote meanwhile is in the history, and a
          // chat this desk was answering that is no longer ours is marked as such.
          if (state.talk) state.talk.show().catch(() => {});
          for (const [id, entry] of state.chats) {
            const mine = ["active", "transferring"].includes(entry.chat.state) && entry.chat.owner === state.user.username;
            if (mine && !frame.chats.includes(id)) {
              setChatState(id, "no longer yours");
              notice(`While you were away, your chat with ${entry.chat.patron.name || "a patron"} went to a colleague, back to the queue, or ended.`);
            }
          }
        }
        state.hadSession = true; break;
      case "queue.snapshot":
        state.waiting = new Map(frame.chats.map((w) => [w.chat.id, w.chat]));
        for (const w of frame.chats) state.since.set(w.chat.id, Date.now() - w.wait_s * 1000);
        renderWaiting(); tick(); break;
      case "queue.chat_added":
        if (!state.waiting.has(frame.chat.id)) { state.since.set(frame.chat.id, Date.now()); alertNewChat(); }
        state.waiting.set(frame.chat.id, frame.chat); renderWaiting(); tick(); break;
      case "queue.chat_removed":
        state.waiting.delete(frame.chat_id); state.since.delete(frame.chat_id); renderWaiting(); tick(); break;
      case "typing":
        if (frame.chat_id === state.current && frame.from.kind === "patron") {
          $("typing").textContent = `${frame.from.name} is typing…`;
          clearTimeout(state.typingTimer);
          state.typingTimer = setTimeout(() => { $("typing").textContent = ""; }, TYPING_SHOWN_MS);
        }
        break;
      case "ticket.created":
      case "ticket.assigned":
      case "ticket.answered":
        notice(`Ticket [${frame.ticket.ref}] ${frame.type.slice(7)}: ${frame.ticket.subject}`);
        loadTickets(); break;
      case "message": {
        if (frame.chat_id === state.current && frame.from.kind === "patron") $("typing").textContent = "";
        const entry = state.chats.get(frame.chat_id);
        if (entry) {
          entry.messages.push(frame);
          if (state.current === frame.chat_id) renderLog();
          else if (frame.from.kind === "patron") { entry.unread = (entry.unread || 0) + 1; renderMine(); }
        }
        break;
      }
      case "chat.closed":
        state.orphans.delete(frame.chat_id); renderWaiting();
        setChatState(frame.chat_id, frame.state); break;
      case "chat.resumed":
        state.chats.set(frame.chat.id, { chat: frame.chat, messages: frame.messages });
        renderMine(); if (!state.current) select(frame.chat.id); break;
      case "transfer.offer":
        state.offers.set(frame.chat_id, frame); renderOffers(); break;
      case "transfer.withdrawn":
        state.offers.delete(frame.chat_id); renderOffers(); break;
      case "transfer.accepted":
        state.offers.delete(frame.chat_id); renderOffers();
        if (state.chats.has(frame.chat_id)) { setChatState(frame.chat_id, `transferred to ${frame.operator_name}`); }
        break;
      case "transfer.expired":
        state.offers.delete(frame.chat_id); renderOffers();
        if (state.chats.has(frame.chat_id)) { setChatState(frame.chat_id, "active"); showError(`Nobody took the transfer (${frame.reason}); the chat is still yours.`); }
        break;
      case "chat.owner_left":
        if (!state.chats.has(frame.chat_id)) { state.orphans.set(frame.chat_id, frame); renderWaiting(); }
        break;
      case "chat.owner_returned":
        state.orphans.delete(frame.chat_id); renderWaiting(); break;
      case "chat.requeued":
        state.orphans.delete(frame.chat_id); renderWaiting();
        if (state.chats.has(frame.chat_id)) setChatState(frame.chat_id, "requeued");
        break;
      case "chat.rolled_over":
        notice(`A waiting chat moved from ${frame.from_queue} to ${frame.queue} (${frame.reason}).`); break;
      case "announcement":
        if (state.talk) state.talk.receive(frame);
        notice(`Announcement from ${frame.from.name}: ${frame.body}`);
        showError(`Announcement from ${frame.from.name}: ${frame.body}`); break;
      case "internal.message":
        if (state.talk) state.talk.receive(frame); break;
      case "session.ended":
        // Signed in elsewhere, ended by an admin, expired: this tab stops (no reconnecting).
        connection.stop();
        $("connection").textContent = "Signed out";
        showError(`Your session ended: ${frame.reason.replaceAll("_", " ")}.`); break;

    }
  }

  async function loadQueues() {
    const queues = await api("/api/queues");
    const list = $("queues");
    list.replaceChildren();
    for (const q of queues) {
      state.queueNames.add(q.name);
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
    try { await send({ type: "monitor.set", queues }); showError(""); } catch (err) { showError(err.message); }
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const response = await fetch("/api/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const body = await response.json();
    if (!response.ok) { $("login-error").textContent = body.message || "Sign-in failed"; return; }
    state.token = body.token; state.user = body.user;
    $("whoami").textContent = `— ${body.user.display_name} (${body.user.username})`;
    $("reports-toggle").classList.toggle("hidden", body.user.role === "operator");
    $("login").classList.add("hidden"); $("desk").classList.remove("hidden");
    $("alerts").checked = localStorage.getItem("refdesk-alerts") !== "off";
    await loadQueues();
    await loadSnippets();
    await startStaffTalk();
    connection.open();
    loadTickets();
  });
  $("status").addEventListener("change", async () => {
    // The confirmed status is kept apart from the menu's value until the server agrees.
    try {
      const ack = await send({ type: "status.set", status: $("status").value });
      $("status").dataset.confirmed = ack.status; showError("");
    } catch (err) { showError(err.message); }
  });
  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("body").value.trim();
    if (!body || !state.current) return;
    try {
      const ack = await connection.sendMessage(state.current, body);
      const entry = state.chats.get(state.current);
      entry.messages.push({ id: ack.id, seq: ack.seq, body, from: { kind: "operator", name: state.user.display_name } });
      if (entry.chat.state === "transferring") entry.chat.state = "active";  // writing took it back
      renderMine();
      $("body").value = ""; renderLog();
    } catch (err) { showError(err.message); }
  });
  $("transfer-cross").addEventListener("change", renderTargets);
  $("transfer-cancel").addEventListener("click", async () => {
    if (!state.current) return;
    try {
      const ack = await send({ type: "transfer.cancel", chat_id: state.current });
      setChatState(state.current, ack.state); showError("");
    } catch (err) { showError(err.message); }
  });
  $("transfer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = $("transfer-choice").value;
    const name = chosen ? chosen.split(":").slice(1).join(":") : $("transfer-to").value.trim();
    if (!name || !state.current) return;
    const to = chosen ? { [chosen.split(":")[0]]: name } : transferTarget(name, state.chats.get(state.current).chat);
    const note = $("transfer-note").value.trim() || null;
    const transfer = { type: "chat.transfer", chat_id: state.current, to, note };
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
      state.chats.get(state.current).chat = ack.chat; $("transfer-to").value = ""; $("transfer-note").value = ""; $("transfer-choice").value = "";
      renderMine(); renderLog(); showError("");
    } catch (err) { showError(err.message); }
  });
  $("staff-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("staff-body").value.trim();
    if (!body || !state.talk) return;
    try {
      await state.talk.say(body);
      $("staff-body").value = ""; showError("");
    } catch (err) { showError(err.message); }
  });
  $("close-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const tags = $("tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    try {
      const ack = await send({ type: "chat.close", chat_id: state.current, tags });
      state.chats.get(state.current).chat = ack.chat; $("tags").value = ""; renderMine(); renderLog();
    } catch (err) { showError(err.message); }
  });
  $("sign-out").addEventListener("click", () => { connection.close(); location.reload(); });
  $("alerts").addEventListener("change", () => { localStorage.setItem("refdesk-alerts", $("alerts").checked ? "on" : "off"); tick(); });
  $("body").addEventListener("input", () => {
    const now = Date.now();
    if (!state.current || !$("body").value || now - state.typingSent < TYPING_EVERY_MS) return;
    state.typingSent = now;
    send({ type: "typing", chat_id: state.current }).catch(() => {});
  });
  $("snippet").addEventListener("change", () => {
    const text = state.snippets.get($("snippet").value);
    if (text) { $("body").value = $("body").value ? `${$("body").value} ${text}` : text; $("body").focus(); }
    $("snippet").value = "";
  });
  $("tag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const tag = $("tag").value.trim();
    if (!tag || !state.current) return;
    try {
      const ack = await send({ type: "chat.tag", chat_id: state.current, tags: [tag] });
      state.chats.get(state.current).chat = ack.chat; $("tag").value = ""; renderLog(); showError("");
    } catch (err) { showError(err.message); }
  });
  // One step: the chat's email, name and question; asks for an address if the chat has none.
  $("ticket").addEventListener("click", async () => {
    const chatId = state.current;
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
      notice(`Ticket [${ticket.ref}] made from this chat.`); showError(""); loadTickets();
    } catch (err) { showError(err.message); }
  });
  // --- reports (admins): statistics, coverage, opening hours -------------------------------
  function monday(date) {
    const d = new Date(date); d.setHours(0, 0, 0, 0);
    d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
    return d;
  }
  async function showStatistics() {
    const to = new Date(), from = new Date(to.getTime() - 30 * 86400000);
    const span = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
    const [days, hours] = await Promise.all([api(`/api/stats?${span}&group_by=day`), api(`/api/stats?${span}&group_by=hour`)]);
    const p = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} s`);
    $("figures").textContent = `${days.chats} chat${days.chats === 1 ? "" : "s"}, ${days.missed} missed; wait p50 ${p(days.wait_p50_s)}, p90 ${p(days.wait_p90_s)}; duration p50 ${p(days.duration_p50_s)}.`;
    $("chart-days").replaceChildren(bars(days.groups.map((g) => ({ label: g.key.slice(5), value: g.chats })),
      { label: `Chats per day: ${days.groups.map((g) => `${g.key} ${g.chats}`).join(", ")}`, every: 5 }));
    $("chart-hours").replaceChildren(heatmap(hours.groups, { label: "Chats by hour of the week" }));
    $("chart-waits").replaceChildren(pairedBars(days.groups.map((g) => ({ label: g.key.slice(5), a: g.wait_p50_s, b: g.wait_p90_s })),
      { label: `Wait before an answer, median and 90th percentile: ${days.groups.map((g) => `${g.key} ${p(g.wait_p50_s)} / ${p(g.wait_p90_s)}`).join(", ")}`, names: ["median", "90th percentile"], every: 5, unit: " s" }));
    $("chart-answered").replaceChildren(figuresBars([
      { label: "at home", value: days.answered_at_home },
      { label: "by the backup", value: days.answered_by_backup, colour: "#2e8b57" },
      { label: "by partners", value: days.answered_by_partners, colour: "#b8860b" },
      { label: "missed", value: days.missed, colour: "#a33" },
    ], { label: `Answered at home ${days.answered_at_home}, by the backup service ${days.answered_by_backup}, by partners ${days.answered_by_partners}, missed ${days.missed}` }));
  }
  async function showCoverage() {
    const queue = $("coverage-queue").value;
    if (!queue) return;
    const from = $("coverage-from").value ? new Date(`${$("coverage-from").value}T00:00:00`) : monday(new Date());
    const to = new Date(from.getTime() + 7 * 86400000);
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
        } catch (err) { showError(err.message); }
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
  // Records: queues, widgets, snippets and users of the library, each in its own form; the
  // server checks every field (the ones it refuses are marked) and the scope of every change.
  const TEMPLATES = {
    queues: (inst) => ({ name: `${state.user.username.split("-")[0]}-${inst}-`, institution: inst, display_name: "", hours: [] }),
    widgets: (inst) => ({ id: "", institution: inst, queue: "", title: "Ask a librarian", allowed_origins: [] }),
    snippets: (inst) => ({ name: `${inst} ()`, institution: inst, body: "" }),
    users: (inst) => ({ role: "operator", username: `${state.user.username.split("-")[0]}-${inst}-`, institution: inst, display_name: "" }),
  };
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
    form = recordForm(kind, record, { queues: [...state.queueNames] }, isNew);
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
  $("records-kind").addEventListener("change", () => listRecords().catch((err) => showError(err.message)));
  $("records-name").addEventListener("change", () => showRecord().catch((err) => showError(err.message)));
  $("records-new").addEventListener("click", () => {
    const kind = $("records-kind").value;
    editing = null; fill(kind, TEMPLATES[kind](state.user.institution), true);
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
      if (kind === "queues" && !state.queueNames.has(saved.name)) {
        // A new queue: offered for coverage and fallback chains now, for monitoring after a reload.
        state.queueNames.add(saved.name);
        $("coverage-queue").append(el("option", { value: saved.name }, saved.name));
      }
      if (kind === "queues" && saved.name === $("coverage-queue").value) await showCoverage();
      if (kind === "widgets") await showWidgets();
    } catch (err) {
      $("record-said").textContent = `Not saved: ${err.message}`;
      for (const field of err.fields || []) {
        for (const node of $("record-fields").querySelectorAll("[data-field]")) {
          if (node.dataset.field === field || node.dataset.field.startsWith(`${field}.`)) node.setAttribute("aria-invalid", "true");
        }
      }
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
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); searchTranscripts().catch((err) => showError(err.message)); });
  async function openReports() {
    const open = $("reports").classList.toggle("hidden") === false;
    $("reports-toggle").setAttribute("aria-expanded", String(open));
    if (!open) return;
    try {
      $("coverage-queue").replaceChildren(...[...state.queueNames].map((q) => el("option", { value: q }, q)));
      $("coverage-from").value = monday(new Date()).toISOString().slice(0, 10);
      await Promise.all([showStatistics(), showCoverage(), showWidgets(), listRecords()]);
      showError("");
    } catch (err) { showError(err.message); }
  }
  $("reports-toggle").addEventListener("click", openReports);
  $("coverage-form").addEventListener("submit", (event) => { event.preventDefault(); showCoverage().catch((err) => showError(err.message)); });
  $("hours-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("coverage-queue").value;
    try {
      const queue = await api(`/api/queues/${encodeURIComponent(name)}`);
      queue.hours = [...queue.hours, { day: $("hours-day").value, open: $("hours-open").value, close: $("hours-close").value }];
      await api(`/api/queues/${encodeURIComponent(name)}`, { method: "PUT", body: JSON.stringify(queue) });
      await showCoverage(); showError("");
    } catch (err) { showError(err.message); }
  });
  // Patrons on the library's pages lately: start a chat with one (a proactive chat).
  async function loadGuests() {
    try {
      const found = await api("/api/guests?limit=20");
      $("guests").replaceChildren(...found.guests.map((g) => {
        const item = el("li", { "data-guest": g.guest_id });
        item.append(el("span", {}, `Guest …${g.guest_id.slice(-4)} on ${g.widget}, ${g.last_seen.slice(11, 16)}`));
        const start = el("button", { class: "secondary", "data-start-chat": g.guest_id }, "Start chat");
        start.addEventListener("click", async () => {
          const body = window.prompt("Your opening message to this guest:", "Hello! Can I help you find something?");
          if (!body) return;
          try {
            const ack = await send({ type: "chat.start_proactive", guest_id: g.guest_id, body });
            state.chats.set(ack.chat_id, { chat: ack.chat, messages: [{ body, from: { kind: "operator", name: state.user.display_name } }] });
            select(ack.chat_id); showError("");
          } catch (err) { showError(err.message); }
        });
        item.append(start);
        return item;
      }));
      if (!found.guests.length) $("guests").append(el("li", { class: "muted" }, "Nobody lately."));
    } catch (err) { showError(err.message); }
  }
  $("guests-refresh").addEventListener("click", loadGuests);
  $("tickets-mine").addEventListener("click", () => { state.tickets = "mine"; loadTickets(); });
  $("tickets-missed").addEventListener("click", () => { state.tickets = "missed"; loadTickets(); });
  $("ticket-assignee").addEventListener("change", () => changeTicket({ assignee: $("ticket-assignee").value || null }));
  $("ticket-close").addEventListener("click", () => changeTicket({ status: "closed" }));
  $("ticket-reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("ticket-reply").value.trim();
    if (!body || !state.ticket) return;
    try {
      await api(`/api/tickets/${state.ticket.id}/replies`, { method: "POST", body: JSON.stringify({ body, internal: $("ticket-internal").checked }) });
      $("ticket-reply").value = ""; await showTicket(state.ticket.id); loadTickets(); showError("");
    } catch (err) { showError(err.message); }
  });
  $("tickets-open").addEventListener("click", () => { state.tickets = "open"; loadTickets(); });
})();
