// Staff conversations on the desk: everyone of the library (`all`), each queue's staff
// (`queue:<name>`), each colleague (`dm:<a>:<b>`, the two names in order), as the server
// names them, and the consortium's announcements (which only its admins write). The one
// chosen shows its history and what arrives live; the others count what arrived unread.

const ANNOUNCEMENTS = "announcements";

export function staffTalk({ api, send, user, queues, colleagues, picker, log, composer }) {
  const unread = new Map();
  const labels = new Map();

  const dm = (other) => `dm:${[user.username, other].sort().join(":")}`;
  function option(conversation, label) {
    labels.set(conversation, label);
    const node = document.createElement("option");
    node.value = conversation;
    picker.append(node);
    paint(conversation);
  }
  function paint(conversation) {
    const node = [...picker.options].find((o) => o.value === conversation);
    const count = unread.get(conversation) || 0;
    if (node) node.textContent = count ? `${labels.get(conversation)} (${count} new)` : labels.get(conversation);
  }
  function line(message) {
    const row = document.createElement("div");
    row.className = "msg operator";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${message.from.name}:`;
    const when = document.createElement("time");
    when.className = "muted";
    when.dateTime = message.ts;
    when.textContent = ` ${message.ts.slice(11, 16)}`;
    row.append(who, document.createTextNode(message.body), when);
    log.append(row);
    log.scrollTop = log.scrollHeight;
  }

  // The chosen conversation's last 50 messages, oldest first.
  async function show() {
    const conversation = picker.value;
    unread.delete(conversation); paint(conversation);
    const writable = conversation !== ANNOUNCEMENTS || user.role === "consortium_admin";
    for (const control of composer.elements) control.disabled = !writable;
    const found = await api(`/api/internal/${encodeURIComponent(conversation)}?limit=50`);
    if (picker.value !== conversation) return;  // another was chosen meanwhile
    log.replaceChildren();
    log.dataset.conversation = conversation;
    for (const message of found.messages) line(message);
  }

  picker.replaceChildren();
  option("all", "All staff");
  option(ANNOUNCEMENTS, "Consortium announcements");
  for (const queue of queues) option(`queue:${queue}`, `Queue ${queue}`);
  // Colleagues of one's own library (a consortium admin's: the other consortium admins).
  for (const person of colleagues) {
    if (person.username !== user.username && person.institution === user.institution && !person.disabled) {
      option(dm(person.username), person.display_name);
    }
  }
  picker.addEventListener("change", () => show().catch(() => {}));

  return {
    show,
    // An `internal.message` frame, or an `announcement` (`conversation` absent): shown if
    // its conversation is the open one, else counted.
    receive(frame) {
      if (frame.type === "announcement") frame = { ...frame, conversation: ANNOUNCEMENTS };
      if (!labels.has(frame.conversation)) option(frame.conversation, frame.from.name);
      if (frame.conversation === picker.value) { line(frame); return; }
      unread.set(frame.conversation, (unread.get(frame.conversation) || 0) + 1);
      paint(frame.conversation);
    },
    // Sends to the open conversation; the ack names it, and the message is shown as sent.
    async say(body) {
      const conversation = picker.value;
      if (conversation === ANNOUNCEMENTS) {
        await api("/api/announcements", { method: "POST", body: JSON.stringify({ body }) });
        line({ from: { name: user.display_name }, body, ts: new Date().toISOString() });
        return;
      }
      const to = conversation === "all" ? { all: true }
        : conversation.startsWith("queue:") ? { queue: conversation.slice(6) }
        : { operator: conversation.split(":").slice(1).find((name) => name !== user.username) || user.username };
      const ack = await send({ type: "internal.send", to, body });
      if (picker.value === ack.conversation) {
        line({ from: { name: user.display_name }, body, ts: new Date().toISOString() });
      }
    },
  };
}
