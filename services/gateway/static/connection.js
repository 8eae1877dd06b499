// The one WebSocket of a web client, shared by the desk and the patron's widget page: it
// opens the socket and greets the server on every open, matches each answer (`ack` or
// `error`) to the frame it answers by `ref`, and comes back by itself after a drop. Everything
// else the server says goes to `onFrame`.
//
// Reconnecting: 0.5 s after a drop, then twice as long each time, at most 10 s apart.
// Most drops are a gateway restarting or replaced, or a network blip, which the first quick
// try gets over; doubling soon thins out the tries of every desk and widget of the
// consortium against a gateway that stays down; the cap keeps a librarian or a patron from
// waiting longer than 10 s once it is back. The steps start again only when the server has
// accepted the greeting (its ack), not when the socket opens, so a server that takes the
// socket and cannot serve it is not asked again every half second.
const FIRST_RETRY_MS = 500, LONGEST_RETRY_MS = 10000;

// An error frame as a rejection the callers can act on (its code, the server's hint).
function refusal(frame) {
  return Object.assign(new Error(frame.message), { code: frame.code, retryAfterMs: frame.retry_after_ms });
}

// A chat message carries an id of the client's choosing: when the answer is `unavailable`
// (it may have landed), it is sent again with the same id after the server's hint, and the
// server posts it once whatever happened to the first try.
function clientId() {
  const raw = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  return raw.replace(/[^A-Za-z0-9_-]/g, "");
}
const MESSAGE_TRIES = 5;

// Any frame refused `busy` was not handled (the gateway, or the service behind it, had
// more in hand than it takes at once): it is sent again after the server's hint, for as
// long as this, before the refusal reaches the caller (and the librarian or patron).
const BUSY_PATIENCE_MS = 15000;
const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// `path`: the socket's path and query. `greeting()`: the first frame on each open (`auth`,
// `hello`). Callbacks, all optional but `onFrame`: `onOpened()`; `onProblem(text)`, an error
// no frame waits for, or the greeting refused; `onClosed(closeEvent)`, on every close, which
// may call `stop()` to stay closed; `onReconnecting()`, before the next try is scheduled.
export function createConnection({ path, greeting, onFrame, onOpened, onProblem, onClosed, onReconnecting }) {
  const pending = new Map();  // ref -> {resolve, reject}
  let socket = null, nextRef = 1, failedTries = 0, stopped = false;

  // Resolves with the ack, or rejects with the refusal, "Connection lost." when the socket
  // closes first, or at once when it is not open.
  function sendOnce(frame) {
    return new Promise((resolve, reject) => {
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        reject(new Error(stopped ? "Not connected." : "Reconnecting… try again in a moment."));
        return;
      }
      const ref = String(nextRef++);
      pending.set(ref, { resolve, reject });
      socket.send(JSON.stringify({ ...frame, ref }));
    });
  }

  // As `sendOnce`, sent again while the answer is `busy`, after the server's hint.
  async function send(frame) {
    const giveUpAt = Date.now() + BUSY_PATIENCE_MS;
    for (;;) {
      try { return await sendOnce(frame); }
      catch (err) {
        if (err.code !== "busy" || Date.now() >= giveUpAt) throw err;
        await pause(err.retryAfterMs || 1000);
      }
    }
  }

  async function sendMessage(chatId, body) {
    const frame = { type: "message", chat_id: chatId, body, client_id: clientId() };
    for (let attempt = 1; ; attempt++) {
      try { return await send(frame); }
      catch (err) {
        if (err.code !== "unavailable" || attempt >= MESSAGE_TRIES) throw err;
        await pause(err.retryAfterMs || 1000);
      }
    }
  }

  function received(frame) {
    if (frame.type !== "ack" && frame.type !== "error") { onFrame(frame); return; }
    const waiting = pending.get(frame.ref);
    if (waiting) {
      pending.delete(frame.ref);
      if (frame.type === "ack") waiting.resolve(frame); else waiting.reject(refusal(frame));
    } else if (frame.type === "error" && onProblem) onProblem(frame.message);
  }

  function open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.addEventListener("open", () => {
      if (onOpened) onOpened();
      send(greeting()).then(
        () => { failedTries = 0; },
        (err) => { if (onProblem) onProblem(err.message); },
      );
    });
    socket.addEventListener("message", (event) => received(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      for (const waiting of pending.values()) waiting.reject(new Error("Connection lost."));
      pending.clear();
      if (onClosed) onClosed(event);
      if (stopped) return;
      if (onReconnecting) onReconnecting();
      failedTries = Math.min(failedTries + 1, 6);  // 2 ** 5 steps passes the cap already
      setTimeout(open, Math.min(FIRST_RETRY_MS * 2 ** (failedTries - 1), LONGEST_RETRY_MS));
    });
  }

  return {
    open,
    send,
    sendMessage,
    // No more reconnecting: the session ended, or the server will not have this client.
    stop() { stopped = true; },
    // Stop, and close the socket (signing out).
    close() { stopped = true; if (socket) socket.close(); },
  };
}
