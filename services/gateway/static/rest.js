// The desk's REST calls, as the signed-in operator. A refusal rejects with the server's
// message, the HTTP status and the fields it refused (a 422), which the callers show.

export function restClient(token) {
  return async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
    const response = await fetch(path, { ...options, headers });
    const body = response.status === 204 ? null : await response.json();
    if (!response.ok) throw Object.assign(new Error(body && body.message || response.statusText), { status: response.status, fields: body && body.fields });
    return body;
  };
}
