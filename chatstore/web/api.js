// The chatstore HTTP API, as the page uses it. Every failure becomes an ApiError with a message a
// person can read: the server's `detail`, or what went wrong on the way.

export class ApiError extends Error {
  constructor(message, status = 0, fields = []) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: the server could not be reached
    this.fields = fields; // a 400's offending fields, as the server names them (`extra[].key`)
  }
}

const UNREACHABLE = "Cannot reach the chatstore server. Check that it is running, then try again.";
const CONNECTION_LOST = "The connection to the server was lost while the reply was streaming.";
// Kept for the browser tab only: gone when the tab closes, never sent anywhere but this server.
const KEY_STORAGE = "chatstore.apiKey";
// Waits before each attempt to re-attach to a reply whose stream broke; then the page gives up.
const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 4000];

let askForKey = async () => null;

/**
 * Set how the page asks for the API key or token when the server answers 401: `ask({invalid, reason})`
 * resolves to what was typed in, or null if the person declined. `invalid` says the one sent was
 * rejected; `reason` is why, when the server says (a token's `error_description`: "the token has expired").
 */
export function setKeyPrompt(ask) {
  askForKey = ask;
}

async function send(method, path, { body, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) init.headers.authorization = `Bearer ${key}`;
    else delete init.headers.authorization;
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(UNREACHABLE);
    }
    if (response.ok) return response;
    if (response.status !== 401) throw await errorFrom(response);
    // The server wants a key or token, or a different one: ask, then try again with what was typed.
    const challenge = response.headers.get("www-authenticate") ?? "";
    const invalid = /error="invalid_token"/.test(challenge);
    const reason = /error_description="([^"]*)"/.exec(challenge)?.[1] ?? "";
    if (invalid && sessionStorage.getItem(KEY_STORAGE) === key) sessionStorage.removeItem(KEY_STORAGE);
    const error = await errorFrom(response);
    const typed = await askForKey({ invalid, reason });
    if (!typed) throw error;
    sessionStorage.setItem(KEY_STORAGE, typed);
  }
}

async function errorFrom(response) {
  let detail = "";
  let fields = [];
  try {
    const body = await response.json();
    detail = body.detail ?? "";
    fields = Array.isArray(body.extra) ? body.extra.map((item) => item?.key).filter(Boolean) : [];
  } catch {
    // Not JSON (a proxy's error page, say): the status line below says enough.
  }
  if (response.status === 404 && !detail) detail = "Not found.";
  // A stock phrase ("Internal Server Error") says less than what it means for the person.
  if (response.status >= 500 && (!detail || detail === response.statusText || detail === "Internal Server Error")) {
    detail = `The chatstore server could not answer just now (${response.status}). Try again in a moment.`;
  }
  const message = detail || `The server answered ${response.status} ${response.statusText}.`;
  return new ApiError(message, response.status, fields);
}

const sessionPath = (id) => `/api/sessions/${encodeURIComponent(id)}`;
const messagePath = (id) => `/api/messages/${encodeURIComponent(id)}`;

/** One page of sessions, most recently active first, and the cursor of the next page (or null). */
export async function listSessions(cursor = null) {
  const query = new URLSearchParams({ order: "activity", limit: "50" });
  if (cursor) query.set("cursor", cursor);
  const response = await send("GET", `/api/sessions?${query}`);
  return { sessions: await response.json(), nextCursor: response.headers.get("x-next-cursor") };
}

/** `{session, messages}`: the session and its current branch, root first, with `sibling_ids`. */
export async function getSession(id) {
  return (await send("GET", sessionPath(id))).json();
}

export async function createSession(name, metadata = {}) {
  return (await send("POST", "/api/sessions", { body: { name, metadata } })).json();
}

export async function renameSession(id, name) {
  return updateSession(id, { name });
}

/** PATCH a session: `metadata` is merged into the stored one (a key set to null is removed). */
export async function updateSession(id, patch) {
  return (await send("PATCH", sessionPath(id), { body: patch })).json();
}

/** One page of search hits, best first: `{results, next_cursor}`. */
export async function search(q, cursor = null) {
  const query = new URLSearchParams({ q, limit: "20" });
  if (cursor) query.set("cursor", cursor);
  return (await send("GET", `/api/search?${query}`)).json();
}

/** The session as a file to save: `{blob, filename}`; `format` is `json` or `markdown`. */
export async function exportSession(id, format) {
  const response = await send("GET", `${sessionPath(id)}/export?format=${format}`, { headers: { accept: "*/*" } });
  const disposition = response.headers.get("content-disposition") ?? "";
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `chatstore-${id}.${format === "json" ? "json" : "md"}`;
  return { blob: await response.blob(), filename };
}

/** Create a new session from a JSON export (parsed); resolves to the new session. */
export async function importSession(document) {
  return (await send("POST", "/api/sessions/import", { body: document })).json();
}

export async function deleteSession(id) {
  await send("DELETE", sessionPath(id));
}

/**
 * Make the branch through `messageId` the session's current one (down to the newest message below
 * it); resolves to the session.
 */
export async function switchBranch(sessionId, messageId) {
  return updateSession(sessionId, { current_message_id: messageId });
}

/** Delete a message and every message below it, on every branch. */
export async function deleteMessage(messageId) {
  await send("DELETE", messagePath(messageId));
}

/**
 * A new session holding a copy of the branch that ends at `messageId`, named `name` (null: no name);
 * resolves to the session.
 */
export async function forkSession(sessionId, messageId, name) {
  const body = { message_id: messageId, name };
  return (await send("POST", `${sessionPath(sessionId)}/fork`, { body })).json();
}

/** Stop a reply wherever it is being written; resolves to the reply as stored. */
export async function stopReply(messageId) {
  return (await send("POST", `${messagePath(messageId)}/stop`)).json();
}

/**
 * Send one user message and read the streamed reply. `onEvent(name, data)` is called for every
 * Server-Sent Event as it arrives. The reply goes on when the connection is lost (a reload, a flaky
 * network): the stream is re-attached from the last event received, a few times, and
 * `onConnection(false)` / `onConnection(true)` tell when it is lost and back. Resolves when the
 * stream ends with `done` or `error`; rejects with ApiError, or with an AbortError when `signal`
 * aborts. `parentId` is the message the new one follows (null: a new first message). The page
 * always gives it, so that the message follows what the page shows even when another tab or device
 * switched the session's current branch; a 400 naming `parent_id` means that message is gone.
 */
export async function chat(sessionId, content, { parentId, signal, onEvent, onConnection }) {
  const body = { session_id: sessionId, messages: [{ role: "user", content }], keep_generating: true };
  if (parentId !== undefined) body.parent_id = parentId;
  const response = await send("POST", "/api/chat", { body, signal });
  await followReply(response, { replyId: null, position: null }, { signal, onEvent, onConnection });
}

/** Ask for a new reply beside the reply `messageId` (a sibling of it), and read it as `chat()` does. */
export async function regenerate(sessionId, messageId, { signal, onEvent, onConnection }) {
  const response = await send("POST", `${sessionPath(sessionId)}/regenerate`, {
    body: { message_id: messageId, keep_generating: true },
    signal,
  });
  await followReply(response, { replyId: null, position: null }, { signal, onEvent, onConnection });
}

/**
 * Attach to a reply still being written, whose first `length` characters are shown already, and
 * read the rest of it as `chat()` does.
 */
export async function attachToReply(replyId, length, { signal, onEvent, onConnection }) {
  const reply = { replyId, position: String(length) };
  await followReply(await openReplyStream(reply, signal), reply, { signal, onEvent, onConnection });
}

function openReplyStream({ replyId, position }, signal) {
  return send("GET", `${messagePath(replyId)}/stream`, { signal, headers: { "last-event-id": position } });
}

/** Read a reply's events; if the stream breaks before its end, re-attach from the last event's id. */
async function followReply(response, reply, { signal, onEvent, onConnection = () => {} }) {
  let failures = 0;
  for (;;) {
    if (response) {
      try {
        for await (const event of serverSentEvents(response.body)) {
          if (failures) onConnection(true);
          failures = 0;
          if (event.id !== null) reply.position = event.id;
          if (event.name === "start") reply.replyId = event.data.assistant_message_id;
          onEvent(event.name, event.data);
          if (event.name === "done" || event.name === "error") return;
        }
        // The stream ended without `done`: the server went away mid-reply (a restart, a proxy).
      } catch (error) {
        if (error.name === "AbortError" || error instanceof ApiError) throw error;
      }
    }
    // Without a start there is no reply to re-attach to; past the last try the network is gone.
    if (reply.replyId === null || failures === RECONNECT_DELAYS_MS.length) throw new ApiError(CONNECTION_LOST);
    if (!failures) onConnection(false);
    await delay(RECONNECT_DELAYS_MS[failures++], signal);
    try {
      response = await openReplyStream(reply, signal);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 0) throw error;
      response = null; // still unreachable: wait longer, then try again
    }
  }
}

function delay(ms, signal) {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

// EventSource cannot POST (nor send the key), so the stream is parsed here. chatstore sends one JSON
// `data:` line per event; lines may arrive split across chunks, so text is buffered until a blank
// line ends an event.
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
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment, e.g. a keep-alive ping
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (!data.length) return null;
  try {
    return { name, id, data: JSON.parse(data.join("\n")) };
  } catch {
    throw new ApiError("The server sent a reply this page cannot read.");
  }
}
