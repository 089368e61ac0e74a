// The chat page: a sidebar of sessions, the open session's messages, and a composer that streams
// the reply. Message text only ever goes into the page as text (textContent), never as HTML.

import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"),
  chat: $("chat"),
  backdrop: $("backdrop"),
  menuToggle: $("menu-toggle"),
  newSession: $("new-session"),
  sessionList: $("session-list"),
  sessionsEmpty: $("sessions-empty"),
  moreSessions: $("more-sessions"),
  title: $("chat-title"),
  actions: $("chat-actions"),
  rename: $("rename-session"),
  delete: $("delete-session"),
  alert: $("alert"),
  alertText: $("alert-text"),
  alertClose: $("alert-close"),
  scroller: $("messages-region"),
  welcome: $("welcome"),
  messages: $("message-list"),
  composer: $("composer"),
  input: $("message-input"),
  send: $("send"),
  stop: $("stop"),
  renameDialog: $("rename-dialog"),
  renameForm: $("rename-form"),
  renameInput: $("rename-input"),
  renameError: $("rename-error"),
  renameCancel: $("rename-cancel"),
  deleteDialog: $("delete-dialog"),
  deleteForm: $("delete-form"),
  deleteText: $("delete-text"),
  deleteError: $("delete-error"),
  deleteCancel: $("delete-cancel"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyError: $("key-error"),
  keyCancel: $("key-cancel"),
};

const state = {
  sessions: [], // the sidebar's sessions, most recently active first (the server's order)
  nextCursor: null, // where the next page of sessions starts, if there is one
  current: null, // the open session
  stream: null, // while a reply streams: {sessionId, controller, replyId, stopping, stoppedAs}
  loading: 0, // counts session loads, so that a slow, older one does not overwrite a newer one
};

const ROLE_TEXT = { user: "You", assistant: "Assistant", system: "System" };
const STATUS_TEXT = {
  in_progress: "Still being written",
  incomplete: "Incomplete: stopped before it finished",
  error: "Failed before it finished",
  // Not a stored status: the page lost the stream, while the reply may go on on the server.
  disconnected: "Connection lost: open the chat again to see the rest",
};
// Why an incomplete reply ended, where that says more than "stopped".
const FINISH_TEXT = {
  client_disconnected: "Incomplete: the page went away before it finished",
  server_stopped: "Incomplete: the server stopped before it finished",
};
const RECONNECTING_TEXT = "Connection lost, reconnecting…";
const NAME_LENGTH = 60;

const sessionHash = (id) => `#/sessions/${encodeURIComponent(id)}`;
const sessionName = (session) => session.name || "Untitled chat";
const activity = (session) => session.last_message_at ?? session.created_at;

// ---- errors ----------------------------------------------------------------------------------

function showError(message) {
  ui.alertText.textContent = message;
  ui.alert.hidden = false;
}

function clearError() {
  ui.alert.hidden = true;
  ui.alertText.textContent = "";
}

function messageOf(error) {
  if (!(error instanceof api.ApiError)) return `Something went wrong: ${error}`;
  if (error.status === 401) return "This chatstore server needs an API key. Try again to enter it.";
  return error.message;
}

// ---- the API key -------------------------------------------------------------------------------

let keyPrompt = null; // {promise, resolve} while the key form is open: every request met by a 401 waits on it

/** Open the key form (once, however many requests ask) and resolve to the key typed, or null. */
function askForKey({ invalid }) {
  if (!keyPrompt) {
    let resolve;
    const promise = new Promise((settle) => (resolve = settle));
    keyPrompt = { promise, resolve };
    ui.keyInput.value = "";
    ui.keyError.hidden = true;
    ui.keyDialog.showModal();
  }
  if (invalid) ui.keyError.hidden = false;
  ui.keyInput.focus();
  return keyPrompt.promise;
}

function answerKeyPrompt(key) {
  keyPrompt?.resolve(key);
  keyPrompt = null;
}

// ---- sidebar ---------------------------------------------------------------------------------

async function refreshSessions() {
  try {
    const page = await api.listSessions();
    state.sessions = page.sessions;
    state.nextCursor = page.nextCursor;
    renderSessions();
  } catch (error) {
    showError(messageOf(error));
  }
}

async function loadMoreSessions() {
  try {
    const page = await api.listSessions(state.nextCursor);
    const known = new Set(state.sessions.map((session) => session.id));
    state.sessions.push(...page.sessions.filter((session) => !known.has(session.id)));
    state.nextCursor = page.nextCursor;
    renderSessions();
  } catch (error) {
    showError(messageOf(error));
  }
}

function renderSessions() {
  ui.sessionList.replaceChildren(...state.sessions.map(sessionItem));
  ui.sessionsEmpty.hidden = state.sessions.length > 0;
  ui.moreSessions.hidden = !state.nextCursor;
}

function sessionItem(session) {
  const link = element("a", "session-link");
  link.href = sessionHash(session.id);
  if (session.id === state.current?.id) link.setAttribute("aria-current", "page");
  const count = session.message_count ?? 0;
  link.append(
    element("span", "session-name", sessionName(session)),
    element("span", "session-meta", `${count} ${count === 1 ? "message" : "messages"} · ${formatWhen(activity(session))}`),
  );
  const item = element("li", "session-item");
  item.dataset.sessionId = session.id;
  item.append(link);
  return item;
}

function markCurrentSession() {
  for (const link of ui.sessionList.querySelectorAll(".session-link")) {
    const current = link.parentElement.dataset.sessionId === state.current?.id;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// On a phone the sidebar is a drawer over the chat; while it is open the chat cannot be reached.
const phoneWidth = matchMedia("(max-width: 720px)");

function setSidebarOpen(open) {
  ui.app.dataset.sidebar = open ? "open" : "closed";
  ui.chat.inert = open;
  ui.backdrop.hidden = !open;
  ui.menuToggle.setAttribute("aria-expanded", String(open));
  if (open) ui.newSession.focus();
}

// ---- the open session ------------------------------------------------------------------------

function routedSessionId() {
  const match = /^#\/sessions\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function route() {
  const id = routedSessionId();
  if (id) await openSession(id);
  else showNewChat();
}

async function openSession(id) {
  // Only stops reading: the reply goes on on the server, and shows again when its chat is opened.
  if (state.stream && state.stream.sessionId !== id) state.stream.controller.abort();
  clearError();
  setSidebarOpen(false);
  const load = ++state.loading;
  let detail;
  try {
    detail = await api.getSession(id);
  } catch (error) {
    if (load !== state.loading) return;
    showNewChat();
    showError(error.status === 404 ? "That chat does not exist; it may have been deleted." : messageOf(error));
    return;
  }
  if (load !== state.loading) return;
  showSession(detail.session);
  ui.messages.replaceChildren(...detail.messages.map(messageItem));
  scrollToEnd();
  const last = detail.messages.at(-1);
  if (last?.role === "assistant" && last.status === "in_progress" && !state.stream) {
    await watchReply(id, last, ui.messages.lastElementChild);
  }
}

function showSession(session) {
  state.current = session;
  ui.title.textContent = sessionName(session);
  document.title = `${sessionName(session)} · chatstore`;
  ui.actions.hidden = false;
  ui.welcome.hidden = true;
  markCurrentSession();
}

/** The view of a chat not started yet: the first message creates the session. */
function showNewChat() {
  state.current = null;
  state.loading++;
  ui.title.textContent = "New chat";
  document.title = "chatstore";
  ui.actions.hidden = true;
  ui.welcome.hidden = false;
  ui.messages.replaceChildren();
  markCurrentSession();
}

// ---- messages --------------------------------------------------------------------------------

function messageItem(message) {
  const item = element("li", `message ${message.role}`);
  item.append(
    element("span", "message-role", ROLE_TEXT[message.role]),
    element("div", "message-content", message.content),
    element("p", "message-status"),
  );
  setStatus(item, message.status, message.finish_reason);
  return item;
}

function setStatus(item, status, finishReason = null) {
  item.dataset.status = status;
  delete item.dataset.connection;
  showStatusText(item, (status === "incomplete" && FINISH_TEXT[finishReason]) || STATUS_TEXT[status] || "");
}

function showStatusText(item, text) {
  const label = item.querySelector(".message-status");
  label.textContent = text;
  label.hidden = !text;
}

/** Show a reply as the server stored it: its whole text and how it ended. */
function showStored(item, message) {
  item.querySelector(".message-content").textContent = message.content;
  setStatus(item, message.status, message.finish_reason);
}

function setConnection(item, connected) {
  if (connected) delete item.dataset.connection;
  else item.dataset.connection = "reconnecting";
  showStatusText(item, connected ? STATUS_TEXT[item.dataset.status] : RECONNECTING_TEXT);
}

function appendMessage(message) {
  ui.welcome.hidden = true;
  const item = messageItem(message);
  ui.messages.append(item);
  scrollToEnd();
  return item;
}

function appendText(item, text) {
  const stick = nearEnd();
  item.querySelector(".message-content").append(text);
  if (stick) scrollToEnd();
}

const nearEnd = () => ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 80;
const scrollToEnd = () => ui.scroller.scrollTo({ top: ui.scroller.scrollHeight });

// ---- sending and streaming -------------------------------------------------------------------

const newStream = (sessionId, replyId = null) => ({
  sessionId,
  controller: new AbortController(), // aborts the reading only: the reply goes on on the server
  replyId,
  stopping: false, // Stop was pressed
  stoppedAs: null, // the reply as stored, once the server has stopped it
});

async function sendMessage() {
  const content = ui.input.value;
  if (!content.trim() || state.stream) return;
  clearError();
  const stream = newStream(state.current?.id);
  state.stream = stream;
  setStreaming(true);
  try {
    if (!state.current && !(await createSession(nameFrom(content)))) return;
    stream.sessionId = state.current.id;
    ui.input.value = "";
    fitInput();
    await streamReply(stream, content);
  } finally {
    endStream(stream);
  }
  await refreshSessions();
}

/** Show the user's message and stream the reply under it. */
async function streamReply(stream, content) {
  const question = appendMessage({ role: "user", content, status: "complete" });
  const reply = appendMessage({ role: "assistant", content: "", status: "in_progress" });
  try {
    await readReply(reply, stream, (handlers) => api.chat(stream.sessionId, content, handlers));
  } catch (error) {
    if (stream.replyId === null) {
      // The reply never started: put the message back into the composer so that it is not lost.
      question.remove();
      reply.remove();
      ui.input.value = content;
      fitInput();
    }
    showStreamError(reply, stream, error);
  }
}

/** Follow a reply that was still being written when its chat was opened (after a reload, say). */
async function watchReply(sessionId, message, item) {
  const stream = newStream(sessionId, message.id);
  state.stream = stream;
  setStreaming(true);
  try {
    // Event ids count characters as the server does (code points), so the shown text's length is
    // where the rest begins.
    const shown = Array.from(message.content).length;
    await readReply(item, stream, (handlers) => api.attachToReply(message.id, shown, handlers));
  } catch (error) {
    showStreamError(item, stream, error);
  } finally {
    endStream(stream);
  }
}

/** Run `read(handlers)`, one of the api's streaming calls, showing its events in `reply`. */
async function readReply(reply, stream, read) {
  // Screen readers announce the reply once, when it ends (busy until then), not word by word.
  reply.setAttribute("aria-live", "polite");
  reply.setAttribute("aria-busy", "true");
  try {
    await read({
      signal: stream.controller.signal,
      onEvent(name, data) {
        if (name === "start") {
          stream.replyId = data.assistant_message_id;
          if (stream.stopping) stopStream(stream); // Stop was pressed before the reply had an id
          refreshSessions(); // the message is stored: the sidebar can count it and move the chat up
        } else if (name === "delta") appendText(reply, data.content);
        else if (name === "done") showStored(reply, data);
        else if (name === "error") {
          setStatus(reply, "error");
          showError(`The reply failed: ${data.detail}`);
        }
      },
      onConnection: (connected) => setConnection(reply, connected),
    });
  } finally {
    reply.setAttribute("aria-busy", "false");
  }
}

function showStreamError(reply, stream, error) {
  if (stream.stoppedAs) {
    showStored(reply, stream.stoppedAs);
    return;
  }
  if (error.name === "AbortError") return; // the chat was left: its reply goes on unseen
  // A 404: the chat was deleted meanwhile, and its reply with it.
  if (stream.replyId !== null) setStatus(reply, error.status === 404 ? "error" : "disconnected");
  showError(messageOf(error));
  if (error.status === 404) refreshSessions();
}

/** Stop: the server stops the reply and stores it (finish_reason `stopped`), then reading ends. */
async function stopStream(stream) {
  stream.stopping = true;
  if (stream.replyId === null) return; // stopped as soon as the `start` event gives the reply's id
  try {
    stream.stoppedAs = await api.stopReply(stream.replyId);
    stream.controller.abort();
  } catch (error) {
    stream.stopping = false;
    showError(`The reply could not be stopped: ${messageOf(error)}`);
  }
}

function endStream(stream) {
  if (state.stream !== stream) return; // another chat's reply streams now
  state.stream = null;
  setStreaming(false);
}

async function createSession(name) {
  try {
    const session = await api.createSession(name);
    state.sessions.unshift(session);
    renderSessions();
    showSession(session);
    ui.messages.replaceChildren();
    state.loading++; // a load still running for another session must not replace this one
    history.pushState(null, "", sessionHash(session.id));
    return true;
  } catch (error) {
    showError(messageOf(error));
    return false;
  }
}

function setStreaming(streaming) {
  // Focus moves only if it would be lost with the control that goes (or was nowhere).
  const active = document.activeElement;
  const moveFocus = !active || active === document.body || active === (streaming ? ui.input : ui.stop);
  ui.input.disabled = streaming;
  ui.send.hidden = streaming;
  ui.stop.hidden = !streaming;
  if (moveFocus) (streaming ? ui.stop : ui.input).focus();
}

function fitInput() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

// ---- rename and delete -----------------------------------------------------------------------

function openRename() {
  ui.renameInput.value = state.current.name ?? "";
  ui.renameError.hidden = true;
  ui.renameDialog.showModal();
  ui.renameInput.select();
}

async function saveRename() {
  const session = state.current;
  try {
    const updated = await api.renameSession(session.id, ui.renameInput.value.trim() || null);
    ui.renameDialog.close();
    if (state.current?.id === updated.id) showSession({ ...state.current, ...updated });
    state.sessions = state.sessions.map((s) => (s.id === updated.id ? { ...s, ...updated } : s));
    renderSessions();
  } catch (error) {
    ui.renameError.textContent = messageOf(error);
    ui.renameError.hidden = false;
  }
}

function openDelete() {
  const session = state.current;
  const count = state.sessions.find((s) => s.id === session.id)?.message_count ?? ui.messages.children.length;
  ui.deleteText.textContent =
    `“${sessionName(session)}” and its ${count} ${count === 1 ? "message" : "messages"} will be deleted. ` +
    "This cannot be undone.";
  ui.deleteError.hidden = true;
  ui.deleteDialog.showModal();
  ui.deleteCancel.focus();
}

async function confirmDelete() {
  const session = state.current;
  if (state.stream?.sessionId === session.id) state.stream.controller.abort();
  try {
    await api.deleteSession(session.id);
  } catch (error) {
    if (error.status !== 404) {
      // A 404 means it is gone already, which is what was asked.
      ui.deleteError.textContent = messageOf(error);
      ui.deleteError.hidden = false;
      return;
    }
  }
  ui.deleteDialog.close();
  state.sessions = state.sessions.filter((s) => s.id !== session.id);
  renderSessions();
  if (state.current?.id === session.id) {
    history.replaceState(null, "", location.pathname + location.search);
    showNewChat();
  }
  ui.newSession.focus();
}

// ---- helpers ---------------------------------------------------------------------------------

/** A new chat is named after the first line of its first message, cut at a word if long. */
function nameFrom(content) {
  const line = content.trim().split("\n")[0].replace(/\s+/g, " ");
  if (line.length <= NAME_LENGTH) return line;
  const cut = line.slice(0, NAME_LENGTH);
  const space = cut.lastIndexOf(" ");
  return `${space > NAME_LENGTH / 2 ? cut.slice(0, space) : cut}…`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const sameDay = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const otherDay = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

function formatWhen(iso) {
  const when = new Date(iso);
  return when.toDateString() === new Date().toDateString() ? sameDay.format(when) : otherDay.format(when);
}

// ---- wiring ----------------------------------------------------------------------------------

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});
ui.input.addEventListener("input", fitInput);
ui.stop.addEventListener("click", () => {
  if (state.stream && !state.stream.stopping) stopStream(state.stream);
});

ui.newSession.addEventListener("click", () => {
  if (state.stream) state.stream.controller.abort();
  clearError();
  setSidebarOpen(false);
  if (location.hash) history.pushState(null, "", location.pathname + location.search);
  showNewChat();
  ui.input.focus();
});
ui.moreSessions.addEventListener("click", loadMoreSessions);
ui.sessionList.addEventListener("click", (event) => {
  // A click on the open session's link changes no hash, so close the phone drawer here too.
  if (event.target.closest(".session-link")) setSidebarOpen(false);
});
ui.menuToggle.addEventListener("click", () => setSidebarOpen(ui.app.dataset.sidebar !== "open"));
ui.backdrop.addEventListener("click", () => setSidebarOpen(false));
phoneWidth.addEventListener("change", () => setSidebarOpen(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ui.app.dataset.sidebar === "open") {
    setSidebarOpen(false);
    ui.menuToggle.focus();
  }
});
ui.alertClose.addEventListener("click", clearError);

ui.rename.addEventListener("click", openRename);
ui.renameCancel.addEventListener("click", () => ui.renameDialog.close());
ui.renameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  saveRename();
});
ui.delete.addEventListener("click", openDelete);
ui.deleteCancel.addEventListener("click", () => ui.deleteDialog.close());
ui.deleteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  confirmDelete();
});
ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  answerKeyPrompt(key);
  ui.keyDialog.close();
});
ui.keyCancel.addEventListener("click", () => ui.keyDialog.close());
ui.keyDialog.addEventListener("close", () => answerKeyPrompt(null)); // Cancel or Escape: no key
api.setKeyPrompt(askForKey);

window.addEventListener("hashchange", route);
refreshSessions();
route();
