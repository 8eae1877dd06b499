// The patron side of the widget: hello (with a remembered guest token, which also resumes
// an open chat), ask, chat, end, ask again; reconnects by itself after a network drop
// (connection.js, as the desk does).
import { createConnection } from "./connection.js";
import { $ } from "./dom.js";

(() => {
  const params = new URLSearchParams(location.search);
  const widget = params.get("widget") || "";
  // The host page, as the loader passed it; only a web address goes with the chat.
  const page = /^https?:\/\//.test(params.get("page") || "") ? params.get("page").slice(0, 500) : null;
  // The page's origin: the only one told the guest token.
  const pageOrigin = page ? new URL(page).origin : null;
  const tokenKey = `refdesk-guest-${widget}`;
  const TYPING_EVERY_MS = 3000, TYPING_SHOWN_MS = 5000;
  let chatId = null, online = false;
  let typingSent = 0, typingTimer = null;
  // The guest this browser is: as the loader handed it (in the fragment, so the frame is
  // the guest whose page views were reported and who may be invited), else as this frame
  // kept it (a loader from before the fragment, or the page opened on its own). Storage
  // may be refused in a frame: the token is kept in memory too.
  let guestToken = new URLSearchParams(location.hash.slice(1)).get("guest") || kept(tokenKey);
  if (location.hash) history.replaceState(null, "", `${location.pathname}${location.search}`);
  function kept(key) { try { return localStorage.getItem(key); } catch { return null; } }
  function keep(key, value) { try { localStorage.setItem(key, value); } catch { /* memory only */ } }

  const server = createConnection({
    path: `/ws/patron?widget=${encodeURIComponent(widget)}`,
    greeting: () => ({ type: "hello", token: guestToken }),
    onFrame,
    onOpened: () => { $("error").textContent = ""; },
    onProblem: (text) => { $("error").textContent = text; },
    onClosed: (event) => {
      // No such widget here: asking again would not change that.
      if (event.code === 4404) { $("availability").textContent = "This chat is not available here."; server.stop(); }
    },
    // A network drop or a restarted gateway: come back, and the chat resumes.
    onReconnecting: () => { $("availability").textContent = "Reconnecting…"; },
  });
  const send = server.send;

  function line(who, text, kind) {
    const row = document.createElement("div");
    row.className = `msg ${kind}`;
    const name = document.createElement("span");
    name.className = "who"; name.textContent = who ? `${who}:` : "";
    row.append(name, document.createTextNode(text));
    $("log").append(row); $("log").scrollTop = $("log").scrollHeight;
  }
  function status(text) { $("status").textContent = text; }
  function show(which) {
    for (const id of ["start-form", "offline-form", "offline-sent", "chat", "again"]) $(id).classList.toggle("hidden", !which.includes(id));
  }
  // Tell the page's button, so its label follows availability.
  function tellPage(isOnline) {
    if (parent !== window) parent.postMessage({ type: "refdesk.status", online: isOnline }, "*");
  }
  // Tell the loader whether a chat is going on, so that a reload or the next page opens
  // the frame at once and the chat resumes; and the guest token, for its page views. Only
  // to the page the loader said it is on (a lie there reaches nobody).
  function tellLoader(message) {
    if (parent !== window && pageOrigin) parent.postMessage(message, pageOrigin);
  }
  function chatGoingOn(open) { tellLoader({ type: "refdesk.chat", open }); }
  // Online: the question form; offline: the leave-a-message form. A chat under way stays.
  function availability(isOnline) {
    online = isOnline;
    tellPage(isOnline);
    $("availability").textContent = isOnline ? "A librarian is available." : "No one is available right now.";
    if (chatId || !$("again").classList.contains("hidden")) return;
    if (!$("offline-sent").classList.contains("hidden")) return;
    show([isOnline ? "start-form" : "offline-form"]);
  }
  function waiting(f) {
    const minutes = f.estimated_wait_s ? Math.max(1, Math.round(f.estimated_wait_s / 60)) : null;
    const about = minutes ? ` (about ${minutes} minute${minutes === 1 ? "" : "s"})` : "";
    status(`You are number ${f.position} in line${about}.`);
  }
  function typingShown(name) {
    $("typing").textContent = `${name} is typing…`;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { $("typing").textContent = ""; }, TYPING_SHOWN_MS);
  }
  function chatOver(text) {
    line("", text, "system");
    chatGoingOn(false);
    chatId = null; status(""); $("typing").textContent = "";
    $("send-form").classList.add("hidden"); $("end").classList.add("hidden");
    $("again").classList.remove("hidden");
    $("again").focus();
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        guestToken = f.token; keep(tokenKey, f.token);
        tellLoader({ type: "refdesk.guest", token: f.token });
        // A returning guest's chat, if any, comes next (`chat.resumed`).
        if (!chatId) chatGoingOn(false);
        availability(f.widget.online); break;
      case "chat.resumed":
      case "chat.started":
        chatId = f.chat.id; show(["chat"]); chatGoingOn(true);
        $("send-form").classList.remove("hidden"); $("end").classList.remove("hidden");
        $("log").replaceChildren();
        for (const m of f.messages || []) line(m.from.kind === "patron" ? "You" : m.from.name, m.body, m.from.kind);
        if (f.chat.operator) status(`You are chatting with ${f.chat.operator}.`);
        break;
      case "chat.queued":
      case "queue.position":
        waiting(f); break;
      case "chat.claimed":
        status(`You are chatting with ${f.operator}.`);
        line("", `${f.operator} joined the chat.`, "system"); break;
      case "chat.transferring":
        line("", "Connecting you with a colleague…", "system"); break;
      case "chat.transferred":
        status(`You are chatting with ${f.operator}.`);
        line("", `${f.operator} has taken over the chat.`, "system"); break;
      case "chat.rolled_over":
        line("", "Still waiting: your question has been passed to our partner librarians.", "system"); break;
      case "chat.requeued":
        status("Waiting for the next librarian…");
        line("", "Your librarian was disconnected; the next one available will continue.", "system"); break;
      case "typing":
        if (f.from && f.from.kind !== "patron") typingShown(f.from.name); break;
      case "message":
        if (f.from.kind !== "patron") $("typing").textContent = "";
        line(f.from.name, f.body, f.from.kind); break;
      case "chat.closed":
        if (f.chat_id === chatId) chatOver("The chat has ended.");
        break;
      case "widget.status":
        availability(f.online); break;
    }
  }

  server.open();

  $("start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    try {
      const name = $("name").value.trim() || null;
      const email = $("email").value.trim() || null;
      const ack = await send({ type: "chat.start", question, name, email, page });
      chatId = ack.chat_id; show(["chat"]); $("log").replaceChildren(); chatGoingOn(true);
      $("send-form").classList.remove("hidden"); $("end").classList.remove("hidden");
      line(name || "You", question, "patron");
      $("question").value = ""; $("body").focus();
    } catch (err) { $("error").textContent = err.message; }
  });
  $("offline-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: $("off-name").value.trim() || null, email: $("off-email").value.trim(), question: $("off-question").value.trim() };
    const r = await fetch(`/api/widgets/${encodeURIComponent(widget)}/offline-message`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await r.json();
    if (!r.ok) { $("error").textContent = answer.message || "Could not send your question."; return; }
    // The reference our mail carries in its subject, so the patron can match it.
    $("offline-sent").textContent = `Thank you. We will answer by email (ticket T${answer.ticket_id.slice(0, 8).toUpperCase()}).`;
    show(["offline-sent"]);
  });
  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("body").value.trim();
    if (!body || !chatId) return;
    try { await server.sendMessage(chatId, body); line("You", body, "patron"); $("body").value = ""; typingSent = 0; }
    catch (err) { $("error").textContent = err.message; }
  });
  // The librarian sees that the patron is writing: at most one notice every 3 s.
  $("body").addEventListener("input", () => {
    const now = Date.now();
    if (!chatId || !$("body").value || now - typingSent < TYPING_EVERY_MS) return;
    typingSent = now;
    send({ type: "typing", chat_id: chatId }).catch(() => {});
  });
  $("end").addEventListener("click", async () => {
    if (!chatId) return;
    try {
      await send({ type: "chat.end", chat_id: chatId });
      if (chatId) chatOver("You have ended the chat.");
    } catch (err) { $("error").textContent = err.message; }
  });
  $("again").addEventListener("click", () => {
    $("again").classList.add("hidden"); $("log").replaceChildren();
    show([online ? "start-form" : "offline-form"]);
    $(online ? "question" : "off-question").focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && parent !== window) parent.postMessage({ type: "refdesk.close" }, "*");
  });
})();
