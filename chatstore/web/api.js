// The chatstore HTTP API, as the page uses it. Every failure becomes an ApiError with a message a
// person can read: the server's `detail`, or what went wrong on the way.

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: the server could not be reached
  }
}

const UNREACHABLE = "Cannot reach the chatstore server. Check that it is running, then try again.";

async function send(method, path, { body, signal } = {}) {
  const init = { method, signal, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(UNREACHABLE);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function errorFrom(response) {
  let detail = "";
  try {
    detail = (await response.json()).detail ?? "";
  } catch {
    // Not JSON (a proxy's error page, say): the status line below says enough.
  }
  if (response.status === 404 && !detail) detail = "Not found.";
  const message = detail || `The server answered ${response.status} ${response.statusText}.`;
  return new ApiError(message, response.status);
}

const sessionPath = (id) => `/api/sessions/${encodeURIComponent(id)}`;

/** One page of sessions, most recently active first, and the cursor of the next page (or null). */
export async function listSessions(cursor = null) {
  const query = new URLSearchParams({ order: "activity", limit: "50" });
  if (cursor) query.set("cursor", cursor);
  const response = await send("GET", `/api/sessions?${query}`);
  return { sessions: await response.json(), nextCursor: response.headers.get("x-next-cursor") };
}

/** `{session, messages}` */
export async function getSession(id) {
  return (await send("GET", sessionPath(id))).json();
}

export async function createSession(name) {
  return (await send("POST", "/api/sessions", { body: { name } })).json();
}

export async function renameSession(id, name) {
  return (await send("PATCH", sessionPath(id), { body: { name } })).json();
}

export async function deleteSession(id) {
  await send("DELETE", sessionPath(id));
}

/**
 * Send one user message and read the streamed reply. `onEvent(name, data)` is called for every
 * Server-Sent Event as it arrives. Resolves when the stream ends; rejects with ApiError, or with
 * an AbortError when `signal` aborts.
 */
export async function chat(sessionId, content, { signal, onEvent }) {
  const response = await send("POST", "/api/chat", {
    body: { session_id: sessionId, messages: [{ role: "user", content }] },
    signal,
  });
  try {
    for await (const event of serverSentEvents(response.body)) onEvent(event.name, event.data);
  } catch (error) {
    if (error.name === "AbortError" || error instanceof ApiError) throw error;
    throw new ApiError("The connection to the server was lost while the reply was streaming.");
  }
}

// EventSource cannot POST, so the stream is parsed here. chatstore sends one JSON `data:` line per
// event; lines may arrive split across chunks, so text is buffered until a blank line ends an event.
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // Normalise line ends; a trailing "\r" waits, as its "\n" may come in the next chunk.
      buffer += value;
      const held = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n") + held;
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) yield event;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment, e.g. a keep-alive ping
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { name, data: JSON.parse(data.join("\n")) };
  } catch {
    throw new ApiError("The server sent a reply this page cannot read.");
  }
}
