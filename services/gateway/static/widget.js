// The widget loader a library pastes into its pages:
//   <script src="https://refdesk.example.org/widget.js" data-widget="hill" async></script>
// Adds one button whose label follows the service's live status; it opens the chat in a
// frame served by refdesk. One global, `refdeskWidget` ({open, close}).
"use strict";
(() => {
  const script = document.currentScript;
  if (!script || window.refdeskWidget) return;
  const widget = script.dataset.widget || "";
  const origin = new URL(script.src).origin;
  const label = (online) => (online ? "Ask a librarian" : "Ask a librarian (leave a message)");

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

  const frame = document.createElement("iframe");
  frame.id = "refdesk-frame";
  frame.title = "Chat with a librarian";
  // The page the patron is on goes with the chat (the desk shows it), without its query or
  // fragment, which may hold what they searched for.
  const page = `${location.origin}${location.pathname}`.slice(0, 500);
  frame.src = `${origin}/widget?widget=${encodeURIComponent(widget)}&page=${encodeURIComponent(page)}`;
  // At most 24 by 34 rem, and never wider or taller than the screen leaves (phones).
  Object.assign(frame.style, {
    position: "fixed", right: ".5rem", bottom: "3.6rem", width: "min(24rem, calc(100vw - 1rem))",
    height: "min(34rem, calc(100vh - 4.6rem))", border: "1px solid #d9dde5", borderRadius: "6px",
    background: "#fff", display: "none", zIndex: 2147483000,
  });

  function show(open) {
    frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", String(open));
    if (open) frame.focus();
  }
  button.addEventListener("click", () => show(frame.style.display === "none"));

  // The frame says when availability changes; only it may (same origin as the script).
  window.addEventListener("message", (event) => {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    const data = event.data || {};
    if (data.type === "refdesk.status") button.textContent = label(Boolean(data.online));
    if (data.type === "refdesk.close") show(false);
  });
  fetch(`${origin}/api/widgets/${encodeURIComponent(widget)}/status`)
    .then((r) => r.json())
    .then((s) => { button.textContent = label(s.online); })
    .catch(() => {});

  document.body.append(button, frame);
  window.refdeskWidget = { open: () => show(true), close: () => show(false) };
})();
