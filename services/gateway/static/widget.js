// Widget loader for library pages:
//   <script src="https://refdesk.example.org/static/widget.js" data-widget="hill" defer></script>
// Adds an "Ask a librarian" button that opens the chat in a frame served by refdesk.
"use strict";
(() => {
  const script = document.currentScript;
  const widget = script.dataset.widget;
  const origin = new URL(script.src).origin;
  const button = document.createElement("button");
  button.textContent = "Ask a librarian";
  button.setAttribute("data-refdesk", "open");
  Object.assign(button.style, { position: "fixed", right: "1rem", bottom: "1rem", padding: ".6rem 1rem",
    background: "#1f5fbf", color: "#fff", border: "0", borderRadius: "4px", font: "inherit", cursor: "pointer", zIndex: 2147483000 });
  const frame = document.createElement("iframe");
  frame.title = "Chat with a librarian";
  frame.src = `${origin}/widget?widget=${encodeURIComponent(widget)}`;
  Object.assign(frame.style, { position: "fixed", right: "1rem", bottom: "3.8rem", width: "22rem", height: "28rem",
    border: "1px solid #d9dde5", borderRadius: "6px", background: "#fff", display: "none", zIndex: 2147483000 });
  button.addEventListener("click", () => { frame.style.display = frame.style.display === "none" ? "block" : "none"; });
  fetch(`${origin}/api/widgets/${encodeURIComponent(widget)}/status`)
    .then((r) => r.json())
    .then((s) => { button.textContent = s.online ? "Ask a librarian" : "Ask a librarian (offline)"; })
    .catch(() => {});
  document.body.append(button, frame);
})();
