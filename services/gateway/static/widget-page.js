// The patron side of the widget: hello (with a remembered guest token, which also resumes
// an open chat), ask, chat, end.
import { messageSender, refusal } from "./messages.js";

(() => {
  const $ = (id) => document.getElementById(id);
  const widget = new URLSearchParams(location.search).get("widget") || "";
  const tokenKey = `refdesk-guest-${widget}`;
  const refs = new Map();
  let nextRef = 1, chatId = null, ws = null;

  function send(frame) {
    return new Promise((resolve, reject) => {
      const ref = String(nextRef++);
      refs.set(ref, { resolve, reject });
      ws.send(JSON.stringify({ ...frame, ref }));
    });
  }
  const sendMessage = messageSender(send);
  function line(who, text, kind) {
    const row = document.createElement("div");
    row.className = `msg ${kind}`;
    const name = document.createElement("span");
    name.className = "who"; name.textContent = who ? `${who}:` : "";
    row.append(name, document.createTextNode(text));
    $("log").append(row); $("log").scrollTop = $("log").scrollHeight;
  }
  function showChat() {
    $("start-form").classList.add("hidden"); $("offline-form").classList.add("hidden");
    $("chat").classList.remove("hidden");
  }
  // Online: the question form; offline: the leave-a-message form. A chat under way stays.
  function availability(online) {
    $("availability").textContent = online ? "A librarian is available." : "No one is available right now.";
    if (chatId) return;
    $("start-form").classList.toggle("hidden", !online);
    $("offline-form").classList.toggle("hidden", online);
  }

  function onFrame(f) {
    if (f.type === "ack" || f.type === "error") {
      const p = refs.get(f.ref);
      if (p) { refs.delete(f.ref); f.type === "ack" ? p.resolve(f) : p.reject(refusal(f)); }
      else if (f.type === "error") $("error").textContent = f.message;
      return;
    }
    switch (f.type) {
      case "welcome":
        localStorage.setItem(tokenKey, f.token);
        availability(f.widget.online); break;
      case "chat.resumed":
      case "chat.started":
        chatId = f.chat.id; showChat(); $("send-form").classList.remove("hidden");
        $("log").replaceChildren();
        for (const m of f.messages || []) line(m.from.kind === "patron" ? "You" : m.from.name, m.body, m.from.kind);
        break;
      case "chat.queued":
      case "queue.position":
        line("", `You are number ${f.position} in line.`, "system"); break;
      case "chat.claimed":
        line("", `${f.operator} joined the chat.`, "system"); break;
      case "chat.transferring":
        line("", "Connecting you with a colleague…", "system"); break;
      case "chat.transferred":
        line("", `${f.operator} has taken over the chat.`, "system"); break;
      case "chat.rolled_over":
        line("", "Still waiting: your question has been passed to our partner librarians.", "system"); break;
      case "chat.requeued":
        line("", "Your librarian was disconnected; the next one available will continue.", "system"); break;
      case "message":
        line(f.from.name, f.body, f.from.kind); break;
      case "chat.closed":
        line("", "The chat has ended.", "system"); chatId = null; $("send-form").classList.add("hidden"); break;
      case "widget.status":
        availability(f.online); break;
    }
  }

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}/ws/patron?widget=${encodeURIComponent(widget)}`);
  ws.addEventListener("open", () => send({ type: "hello", token: localStorage.getItem(tokenKey) }).catch((e) => { $("error").textContent = e.message; }));
  ws.addEventListener("message", (e) => onFrame(JSON.parse(e.data)));

  $("start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    try {
      const email = $("email").value.trim() || null;
      const ack = await send({ type: "chat.start", question, name: $("name").value.trim() || null, email });
      chatId = ack.chat_id; showChat(); line($("name").value.trim() || "You", question, "patron");
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
    $("offline-form").classList.add("hidden");
    $("offline-sent").textContent = `Thank you. Your question is ticket ${answer.ticket_id}.`;
    $("offline-sent").classList.remove("hidden");
  });
  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("body").value.trim();
    if (!body || !chatId) return;
    try { await sendMessage(chatId, body); line("You", body, "patron"); $("body").value = ""; }
    catch (err) { $("error").textContent = err.message; }
  });
  $("end").addEventListener("click", async () => {
    if (!chatId) return;
    try { await send({ type: "chat.end", chat_id: chatId }); } catch (err) { $("error").textContent = err.message; }
  });
})();
