// The widget loader a library pastes into its pages:
//   <script src="https://refdesk.example.org/widget.js" data-widget="hill" async></script>
// Adds one button whose label follows the service's status; it opens the chat in a frame
// served by refdesk. One global, `refdeskWidget` ({open, close}).
//
// A page nobody chats from holds no socket: the loader reports the page view and reads the
// status over HTTP (one request), then refreshes the status every 30 s while the tab is
// shown, and once when it is shown again. The frame, and its socket, are made only when the
// patron opens the widget, when an invitation to chat waits for this guest (the status
// lists it under the key the page view answered with), when this browser has a chat going
// on (a reload resumes it at once), or when the library keeps a socket on every page
// (`live_socket`). Once the frame is there, the status comes live over its socket.
//
// What the loader keeps in the library site's localStorage, per widget: the guest token
// (`refdesk-guest-<widget>`, handed to the frame), when a chat was last seen going on
// (`refdesk-chat-<widget>`, which the frame tells), and the last invitation acted on
// (`refdesk-invited-<widget>`), so one is opened once.
"use strict";
(() => {
  const script = document.currentScript;
  if (!script || window.refdeskWidget) return;
  const widget = script.dataset.widget || "";
  const origin = new URL(script.src).origin;
  const api = `${origin}/api/widgets/${encodeURIComponent(widget)}`;
  // The status at most every 30 s: what a patron waits at worst for an invitation.
  const REFRESH_MS = 30000;
  // A chat flag older than this is stale (the chat ended while no page was open).
  const CHAT_KEPT_MS = 24 * 3600 * 1000;
  const keys = { token: `refdesk-guest-${widget}`, chat: `refdesk-chat-${widget}`, invited: `refdesk-invited-${widget}` };
  // Storage may be refused (privacy settings): the widget works, remembering nothing.
  const stored = {
    get(key) { try { return localStorage.getItem(key); } catch { return null; } },
    set(key, value) {
      try { if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value); } catch { /* not kept */ }
    },
  };
  const label = (online) => (online ? "Ask a librarian" : "Ask a librarian (leave a message)");
  // The page the patron is on goes with the chat (the desk shows it), without its query or
  // fragment, which may hold what they searched for.
  const page = `${location.origin}${location.pathname}`.slice(0, 500);
  let frame = null, inviteKey = null, lastRefresh = 0, timer = null;

  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label(true);
  button.setAttribute("data-refdesk", "open");
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "refdesk-frame");
  Object.assign(button.style, {
    position: "fixed", right: ".75rem", bottom: ".75rem", padding: ".6rem 1rem", background: "#1f5fbf",
    color: "#fff", border: "0", borderRadius: "4px", font: "inherit", cursor: "pointer", zIndex: 2147483000,
  });

  // The chat frame, made once; the guest token goes in its fragment (never sent to a
  // server, nor in a Referer), so the frame is the guest this page reported.
  function makeFrame() {
    if (frame) return;
    clearTimeout(timer);
    frame = document.createElement("iframe");
    frame.id = "refdesk-frame";
    frame.title = "Chat with a librarian";
    const token = stored.get(keys.token);
    frame.src = `${origin}/widget?widget=${encodeURIComponent(widget)}&page=${encodeURIComponent(page)}`
      + (token ? `#guest=${encodeURIComponent(token)}` : "");
    // At most 24 by 34 rem, and never wider or taller than the screen leaves (phones).
    Object.assign(frame.style, {
      position: "fixed", right: ".5rem", bottom: "3.6rem", width: "min(24rem, calc(100vw - 1rem))",
      height: "min(34rem, calc(100vh - 4.6rem))", border: "1px solid #d9dde5", borderRadius: "6px",
      background: "#fff", display: "none", zIndex: 2147483000,
    });
    document.body.append(frame);
  }

  function show(open) {
    if (open) makeFrame();
    if (!frame) return;
    frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", String(open));
    if (open) frame.focus();
  }
  button.addEventListener("click", () => show(!frame || frame.style.display === "none"));

  function chatGoingOn() {
    const at = Number(stored.get(keys.chat));
    return at > 0 && Date.now() - at < CHAT_KEPT_MS;
  }

  function apply(status) {
    button.textContent = label(Boolean(status.online));
    const mine = inviteKey && (status.invitations || []).find((entry) => entry.startsWith(`${inviteKey}.`));
    if (mine && stored.get(keys.invited) !== mine) {
      stored.set(keys.invited, mine);
      show(true);
    } else if (status.live_socket) makeFrame();
  }

  // The status as any cache may hold it (the browser revalidates with its ETag).
  async function refresh() {
    lastRefresh = Date.now();
    try {
      const answer = await fetch(`${api}/status`);
      if (answer.ok && !frame) apply(await answer.json());
    } catch { /* the next refresh tries again */ }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (frame) return;
      if (!document.hidden) await refresh();
      schedule();
    }, REFRESH_MS);
  }

  // The page view: who is on the library's pages (staff may invite them), answered with
  // the guest's token, their invitation key and the status. Sent as text/plain, so the
  // browser asks no preflight first.
  async function reportView() {
    lastRefresh = Date.now();
    try {
      const answer = await fetch(`${api}/views`, {
        method: "POST", headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ token: stored.get(keys.token), page }),
      });
      if (!answer.ok) { await refresh(); return; }
      const viewed = await answer.json();
      stored.set(keys.token, viewed.token);
      inviteKey = viewed.invite_key;
      if (!frame) apply(viewed.status);
    } catch { /* the next refresh tries again */ }
  }

  document.addEventListener("visibilitychange", () => {
    if (frame || document.hidden || Date.now() - lastRefresh < REFRESH_MS) return;
    refresh();
    schedule();
  });

  // What the frame says; only it may (same origin as the script).
  window.addEventListener("message", (event) => {
    if (!frame || event.origin !== origin || event.source !== frame.contentWindow) return;
    const data = event.data || {};
    if (data.type === "refdesk.status") button.textContent = label(Boolean(data.online));
    if (data.type === "refdesk.close") show(false);
    if (data.type === "refdesk.guest" && typeof data.token === "string") stored.set(keys.token, data.token);
    if (data.type === "refdesk.chat") stored.set(keys.chat, data.open ? String(Date.now()) : null);
  });

  document.body.append(button);
  window.refdeskWidget = { open: () => show(true), close: () => show(false) };
  if (chatGoingOn()) makeFrame();
  else reportView().then(schedule);
})();
