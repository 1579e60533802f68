// The console's only way to the daemon: JSON and Server-Sent Events over fetch, with the token in
// an Authorization header. The token lives in this tab's sessionStorage and nowhere else: never a
// cookie, never a URL (see docs/console.md#sign-in).

const TOKEN_KEY = "clusterm.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: behave as signed out
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored, nothing to clear
  }
}

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

const signedOutHandlers = [];

export function onSignedOut(fn) {
  signedOutHandlers.push(fn);
}

function signedOut(message) {
  clearToken();
  for (const fn of signedOutHandlers) {
    try {
      fn(message);
    } catch (err) {
      console.error(err);
    }
  }
}

const EXPIRED =
  "Your token is no longer valid (revoked or expired): sign in again.";

// The query string of `params`: arrays repeat the key; null, undefined and '' are left out.
export function query(params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === null || item === undefined || item === "") continue;
      search.append(key, String(item));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const token = getToken();
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

async function readBody(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

// A readable sentence for a refused request: the daemon's own message when it sent one.
function describe(status, body, path) {
  if (body && typeof body === "object" && typeof body.message === "string") {
    return body.message;
  }
  if (typeof body === "string" && body.trim()) return `${status}: ${body.trim().slice(0, 300)}`;
  return `${path} answered ${status}`;
}

async function failure(response, path) {
  const body = await readBody(response);
  if (response.status === 401) {
    signedOut(EXPIRED);
    return new ApiError(401, body, EXPIRED);
  }
  return new ApiError(response.status, body, describe(response.status, body, path));
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, null, `Could not reach the daemon (${err && err.message ? err.message : err}); is it running?`);
  }
}

export async function getJSON(path, params = {}) {
  const response = await send(path + query(params), { headers: headers(), cache: "no-store" });
  if (!response.ok) throw await failure(response, path);
  return readBody(response);
}

function isUnauthorized(data) {
  try {
    const body = JSON.parse(data);
    return (
      body !== null &&
      typeof body === "object" &&
      (body.status === 401 || String(body.error).toLowerCase() === "unauthorized")
    );
  } catch {
    return false;
  }
}

// Server-Sent Events read with fetch, which (unlike EventSource) can send the Authorization header.
// Yields {event, id, data} per event; resuming after a dropped connection is the caller's job.
export async function* sse(path, params = {}, { lastEventId, signal } = {}) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId !== undefined && lastEventId !== null && lastEventId !== "") {
    extra["Last-Event-ID"] = String(lastEventId);
  }
  const response = await send(path + query(params), {
    headers: headers(extra),
    cache: "no-store",
    signal,
  });
  if (!response.ok) throw await failure(response, path);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", id: undefined, data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // Lines end in \r\n, \n or \r; a trailing \r may be the first half of \r\n: wait for more.
      let match;
      while ((match = /\r\n|\n|\r(?=[^\n])/.exec(buffer)) !== null) {
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          if (event.data.length > 0) {
            const out = { event: event.event, id: event.id, data: event.data.join("\n") };
            if (out.event === "error" && isUnauthorized(out.data)) {
              signedOut(EXPIRED);
              yield out;
              return;
            }
            yield out;
          }
          event = { event: "message", id: undefined, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's keep-alive ping
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event.event = text || "message";
        else if (field === "data") event.data.push(text);
        else if (field === "id" && !text.includes("\0")) event.id = text;
        // "retry" and unknown fields: ignored (the caller chooses its own backoff)
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
