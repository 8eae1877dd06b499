// Chat messages as both web clients send them. A message carries an id of the client's
// choosing; when the answer is `busy` or `unavailable` it is sent again with the same id
// after the server's hint, and the server posts it once whatever happened to the first try.

function clientId() {
  const raw = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  return raw.replace(/[^A-Za-z0-9_-]/g, "");
}

// An error frame as a rejection the senders can act on.
export function refusal(frame) {
  return Object.assign(new Error(frame.message), { code: frame.code, retryAfterMs: frame.retry_after_ms });
}

// `send(frame)` resolves with the ack or rejects with `refusal(error)`.
export function messageSender(send) {
  return async function sendMessage(chat, body) {
    const frame = { type: "message", chat_id: chat, body, client_id: clientId() };
    for (let attempt = 1; ; attempt++) {
      try { return await send(frame); }
      catch (err) {
        if (!["busy", "unavailable"].includes(err.code) || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, err.retryAfterMs || 1000));
      }
    }
  };
}
