// The desk, refdesk's operator client: this shell signs in, opens the connection
// (connection.js) and wires the panels, each of which owns its part of the page:
//   desk-waiting.js    monitored queues, who waits, colleagues' orphaned chats, offers to me
//   desk-guests.js     patrons on the library's pages, a chat started with one
//   desk-chats.js      my chats and the one shown: reply, tag, ticket, close; with
//   desk-transfer.js   transferring it, and taking an offer back
//   desk-follow-up.js  tickets and today's missed chats
//   staff-talk.js      staff conversations and the consortium's announcements
//   desk-reports.js    statistics, transcripts, widgets, coverage; desk-records.js records
// Data flows down (the REST client, the connection, the signed-in user, the set of the
// institution's queues); panels tell the shell what happened (events up), and the shell
// routes the server's frames to the panels they are about.
import { $, el } from "./dom.js";
import { createConnection } from "./connection.js";
import { restClient } from "./rest.js";
import { waitingPanel } from "./desk-waiting.js";
import { guestsPanel } from "./desk-guests.js";
import { chatsPanel } from "./desk-chats.js";
import { followUpPanel } from "./desk-follow-up.js";
import { reportsPanel } from "./desk-reports.js";
import { staffTalk } from "./staff-talk.js";

// Errors in the desk's banner; notices (tickets, chats moved between queues,
// announcements, what this desk did) in their log.
const report = {
  error(text) { $("desk-error").textContent = text || ""; },
  notice(text) {
    const line = el("div", { class: "msg system" }, text);
    $("notices").append(line); $("notices").scrollTop = $("notices").scrollHeight;
  },
};

function openDesk({ token, user }) {
  const api = restClient(token);
  const queueNames = new Set();  // the institution's queues, as loaded and as made here
  let talk = null;  // staff conversations, once their pane is ready
  let hadSession = false;

  const connection = createConnection({
    path: "/ws/operator",
    greeting: () => ({ type: "auth", token }),
    onFrame: route,
    onProblem: report.error,
    onClosed: () => { $("status").disabled = true; },
    // A network drop or a restarted gateway: come back and resume the chats.
    onReconnecting: () => { $("connection").textContent = "Reconnecting…"; },
  });
  const send = connection.send;

  const waiting = waitingPanel({ api, send, queueNames, report, isMine: (id) => chats.has(id), onOwn: own });
  const chats = chatsPanel({ api, connection, user, queueNames, report, onTicketMade: () => followUp.reload() });
  guestsPanel({ api, send, user, report, onStarted: (chat, messages) => chats.open(chat, messages) });
  const followUp = followUpPanel({ api, user, report });
  reportsPanel({ api, user, queueNames, report, onQueueAdded: (name) => queueNames.add(name) });

  // Claim from the queue, take over from a disconnected colleague, or accept an offer:
  // each answers with the chat and its whole history.
  async function own(type, chatId) {
    try {
      const ack = await send({ type, chat_id: chatId });
      waiting.forget(chatId);
      chats.open(ack.chat, ack.messages); report.error("");
    } catch (err) { report.error(err.message); }
  }

  // Staff conversations: all, each queue, each colleague; each with its history.
  async function startStaffTalk() {
    const colleagues = await api("/api/users").catch(() => []);
    talk = staffTalk({ api, send, user, queues: [...queueNames], colleagues, picker: $("staff-conversation"), log: $("staff-log"), composer: $("staff-form") });
    await talk.show().catch(() => {});
  }
  $("staff-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("staff-body").value.trim();
    if (!body || !talk) return;
    try {
      await talk.say(body);
      $("staff-body").value = ""; report.error("");
    } catch (err) { report.error(err.message); }
  });

  // The session as the server holds it: its status, and which chats are still this
  // operator's (after a drop, what changed meanwhile is marked).
  function sessionOpened(frame) {
    $("connection").textContent = "Connected"; $("status").disabled = false;
    $("status").value = frame.status; $("status").dataset.confirmed = frame.status;
    if (hadSession) {
      // What colleagues wrote meanwhile is in the history.
      if (talk) talk.show().catch(() => {});
      chats.reconcile(frame.chats);
    }
    hadSession = true;
  }

  function route(frame) {
    switch (frame.type) {
      case "session":
        sessionOpened(frame); break;
      case "queue.snapshot":
      case "queue.chat_added":
      case "queue.chat_removed":
      case "chat.owner_left":
      case "chat.owner_returned":
      case "transfer.offer":
      case "transfer.withdrawn":
        waiting.receive(frame); break;
      case "typing":
      case "message":
      case "chat.resumed":
        chats.receive(frame); break;
      case "chat.closed":
      case "chat.requeued":
      case "transfer.accepted":
      case "transfer.expired":
        waiting.receive(frame); chats.receive(frame); break;
      case "ticket.created":
      case "ticket.assigned":
      case "ticket.answered":
        report.notice(`Ticket [${frame.ticket.ref}] ${frame.type.slice(7)}: ${frame.ticket.subject}`);
        followUp.reload(); break;
      case "chat.rolled_over":
        report.notice(`A waiting chat moved from ${frame.from_queue} to ${frame.queue} (${frame.reason}).`); break;
      case "announcement":
        if (talk) talk.receive(frame);
        report.notice(`Announcement from ${frame.from.name}: ${frame.body}`);
        report.error(`Announcement from ${frame.from.name}: ${frame.body}`); break;
      case "internal.message":
        if (talk) talk.receive(frame); break;
      case "session.ended":
        // Signed in elsewhere, ended by an admin, expired: this tab stops (no reconnecting).
        connection.stop();
        $("connection").textContent = "Signed out";
        report.error(`Your session ended: ${frame.reason.replaceAll("_", " ")}.`); break;
    }
  }

  $("status").addEventListener("change", async () => {
    // The confirmed status is kept apart from the menu's value until the server agrees.
    try {
      const ack = await send({ type: "status.set", status: $("status").value });
      $("status").dataset.confirmed = ack.status; report.error("");
    } catch (err) { report.error(err.message); }
  });
  $("sign-out").addEventListener("click", () => { connection.close(); location.reload(); });

  return {
    // In this order: the queues first (staff talk and transfers offer them), the socket
    // last but the tickets.
    async start() {
      await waiting.loadQueues();
      await chats.loadSnippets();
      await startStaffTalk();
      connection.open();
      followUp.reload();
    },
  };
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
  $("whoami").textContent = `— ${body.user.display_name} (${body.user.username})`;
  $("login").classList.add("hidden"); $("desk").classList.remove("hidden");
  await openDesk({ token: body.token, user: body.user }).start();
});
