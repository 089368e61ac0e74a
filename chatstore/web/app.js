// The chat page: a sidebar of sessions, the open session's messages, and a composer that streams
// the reply. Message text only ever goes into the page as text nodes, never as HTML: replies'
// Markdown is built as DOM nodes by markdown.js, and search snippets' <mark> by snippetNodes.

import * as api from "./api.js";
import { MarkdownView, snippetNodes } from "./markdown.js";

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
  header: document.querySelector(".chat-header"),
  actions: $("chat-actions"),
  actionsToggle: $("actions-toggle"),
  settings: $("chat-settings"),
  export: $("export-session"),
  exportMenu: $("export-menu"),
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
  deleteHeading: $("delete-heading"),
  deleteForm: $("delete-form"),
  deleteText: $("delete-text"),
  deleteError: $("delete-error"),
  deleteCancel: $("delete-cancel"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyError: $("key-error"),
  keyCancel: $("key-cancel"),
  settingsDialog: $("settings-dialog"),
  settingsForm: $("settings-form"),
  settingsModel: $("settings-model"),
  settingsPrompt: $("settings-prompt"),
  settingsError: $("settings-error"),
  settingsCancel: $("settings-cancel"),
  search: $("search-input"),
  searchResults: $("search-results"),
  searchStatus: $("search-status"),
  searchList: $("search-list"),
  moreResults: $("more-results"),
  sessionBrowser: $("session-browser"),
  sessionMenu: $("session-menu"),
  messageMenu: $("message-menu"),
  importButton: $("import-session"),
  importFile: $("import-file"),
};

const state = {
  sessions: [], // the sidebar's sessions, most recently active first (the server's order)
  nextCursor: null, // where the next page of sessions starts, if there is one
  current: null, // the open session
  stream: null, // while a reply streams: {sessionId, controller, replyId, stopping, stoppedAs}
  loading: 0, // counts session loads, so that a slow, older one does not overwrite a newer one
  draftMetadata: {}, // settings chosen for a chat not created yet: sent with its first message
  menuSession: null, // the session whose sidebar menu is open
  menuMessage: null, // the message item whose menu is open
  search: { query: "", cursor: null, count: 0 }, // count: searches sent, so only the latest shows
};
// Each reply's Markdown view, which keeps the reply's text and renders it as it grows.
const views = new WeakMap();
// Each message item's place in the conversation's tree: {parentId, siblingIds}. `siblingIds` are
// the versions shown as "‹ 2 / 3 ›", in the server's order; null stands for the item itself while
// it has no id yet (a message being sent).
const places = new WeakMap();

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
const FORK_SUFFIX = / \(fork(?: \d+)?\)$/; // what forkName adds to a fork's name
const SEARCH_DELAY_MS = 250;
const HIGHLIGHT_MS = 2500;
// The server's words for a reply it could not store yet; it stores it when its database is back.
const KEPT_DETAIL = "the reply could not be stored yet because the database failed";
const KEPT_TEXT = "Not saved yet: the database is unavailable. The reply is kept and will be saved when it is back.";
// What a failed reply's `error` means, in a person's words; the server's own stays behind a toggle.
const FAILURES = [
  [/^could not reach the model server/, "The model server could not be reached. Check that it is running at the address chatstore was given."],
  [/^the model server answered (401|403)\b/, "The model server did not accept chatstore's API key."],
  [/^the model server answered 404\b/, "The model server does not know this model or address. Check the chat's model in Settings."],
  [/^the model server answered 429\b/, "The model server is busy or over its limit. Wait a moment, then retry."],
  [/^the model server answered 5\d\d\b/, "The model server had a problem of its own. Retry in a moment."],
  [/^the model server answered/, "The model server turned the request down."],
  [/^the model server did not start replying/, "The model server took too long to start replying."],
  [/^the model server stopped sending/, "The model server went silent in the middle of the reply."],
  [/^the model server sent a/, "The model server sent something chatstore could not read."],
  [/^the model server failed in the middle/, "The model server failed in the middle of the reply."],
  [/^the (connection to the model server broke|model server ended the stream)/, "The connection to the model server broke off before the reply was finished."],
  [/^the session's metadata `model`/, "This chat's model setting is not valid. Change it in Settings."],
  [/^the session's metadata `system_prompt`/, "This chat's system prompt setting is not valid. Change it in Settings."],
  [/^the session was deleted/, "This chat was deleted while the reply was being written."],
];
// The server's 503 when it cannot fetch the sign-in provider's keys (JWKS) to check a token with.
const KEYS_UNAVAILABLE = /\bkeys\b.*\bcannot be fetched\b/;
const KEYS_UNAVAILABLE_TEXT = "The sign-in provider's keys can't be fetched right now; try again in a moment.";
const UNKNOWN_FAILURE = "The reply failed because of a problem on the server.";
// A send met by the server's 400 naming `parent_id`: the message it followed is no longer stored.
const PARENT_GONE_TEXT =
  "Your message was not sent: the message it followed was deleted in another tab or on another device. " +
  "The chat now shows what is left; your message is still in the box below, to send again.";
const EDIT_PARENT_GONE_TEXT =
  "Your edit was not sent: the message you edited was deleted in another tab or on another device. " +
  "The chat now shows what is left; your text is in the box below, to send again.";

const sessionHash = (id) => `#/sessions/${encodeURIComponent(id)}`;
const messageHash = (sessionId, messageId) => `${sessionHash(sessionId)}/messages/${encodeURIComponent(messageId)}`;
/** A session's name; without one, its first message (the server sends its start), on one line. */
const sessionName = (session) =>
  session.name ||
  session.preview?.replace(/\s+/g, " ").trim() ||
  (session.message_count ? "Untitled chat" : "New chat");
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
  if (error.status === 401) return "This chatstore server needs an API key or an access token. Try again to enter it.";
  if (error.status === 503 && KEYS_UNAVAILABLE.test(error.message)) return KEYS_UNAVAILABLE_TEXT;
  return error.message;
}

// ---- the API key or access token ---------------------------------------------------------------

let keyPrompt = null; // {promise, resolve} while the key form is open: every request met by a 401 waits on it

/** Open the key form (once, however many requests ask) and resolve to the key or token typed, or null. */
function askForKey({ invalid, reason }) {
  if (!keyPrompt) {
    let resolve;
    const promise = new Promise((settle) => (resolve = settle));
    keyPrompt = { promise, resolve };
    ui.keyInput.value = "";
    ui.keyError.hidden = true;
    ui.keyDialog.showModal();
  }
  if (invalid) {
    ui.keyError.textContent = reason ? `That key or token is not valid: ${reason}.` : "That key or token is not valid.";
    ui.keyError.hidden = false;
  }
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
    // A chat without a name is shown by its first message, which it may just have been sent.
    const current = state.current && state.sessions.find((session) => session.id === state.current.id);
    if (current && !current.name) {
      state.current = { ...state.current, preview: current.preview, message_count: current.message_count };
      showTitle(state.current);
    }
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
  const groups = [];
  for (const session of state.sessions) {
    const day = dayGroup(activity(session));
    if (groups.at(-1)?.day !== day) groups.push({ day, sessions: [] });
    groups.at(-1).sessions.push(session);
  }
  ui.sessionList.replaceChildren(
    ...groups.map(({ day, sessions }) => {
      const group = element("li", "session-group");
      const list = element("ul", "session-group-list");
      list.append(...sessions.map(sessionItem));
      group.append(element("h3", "session-day", day), list);
      return group;
    }),
  );
  ui.sessionsEmpty.hidden = state.sessions.length > 0;
  ui.moreSessions.hidden = !state.nextCursor;
}

function sessionItem(session) {
  const link = element("a", "session-link");
  link.href = sessionHash(session.id);
  if (session.id === state.current?.id) link.setAttribute("aria-current", "page");
  const count = session.message_count ?? 0;
  const name = element("span", "session-name", sessionName(session));
  name.id = `session-name-${session.id}`;
  link.append(name);
  link.append(
    element("span", "session-meta", `${count} ${count === 1 ? "message" : "messages"} · ${formatWhen(activity(session))}`),
  );
  const menuButton = element("button", "button icon session-menu-button", "\u22EF");
  menuButton.type = "button";
  menuButton.setAttribute("aria-haspopup", "menu");
  menuButton.setAttribute("aria-expanded", "false");
  // Named by what it is, described by the chat's name (a name is no part of what the button does).
  menuButton.setAttribute("aria-label", "Chat options");
  menuButton.setAttribute("aria-describedby", name.id);
  const item = element("li", "session-item");
  item.dataset.sessionId = session.id;
  item.append(link, menuButton);
  return item;
}

/** "Today", "Yesterday", "Previous 7 days", "Previous 30 days", then the month. */
function dayGroup(iso) {
  const when = new Date(iso);
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const day = new Date(when);
  day.setHours(0, 0, 0, 0);
  const daysAgo = Math.round((today - day) / 86_400_000);
  if (daysAgo <= 0) return "Today";
  if (daysAgo === 1) return "Yesterday";
  if (daysAgo < 7) return "Previous 7 days";
  if (daysAgo < 30) return "Previous 30 days";
  return monthFormat.format(when);
}

// ---- the sidebar's menus -----------------------------------------------------------------------

function openSessionMenu(button) {
  const item = button.closest(".session-item");
  const session = state.sessions.find((s) => s.id === item.dataset.sessionId);
  if (!session) return;
  closeMenus();
  state.menuSession = session;
  item.append(ui.sessionMenu);
  openMenu(button, ui.sessionMenu);
}

let openedMenu = null; // {button, menu}

function openMenu(button, menu) {
  closeMenus();
  openedMenu = { button, menu };
  menu.hidden = false;
  button.setAttribute("aria-expanded", "true");
  menu.querySelector(".menu-item:not([hidden])")?.focus();
}

function closeMenus({ focusButton = false } = {}) {
  if (!openedMenu) return;
  const { button, menu } = openedMenu;
  openedMenu = null;
  menu.hidden = true;
  button.setAttribute("aria-expanded", "false");
  if (focusButton) button.focus();
}

function moveInMenu(menu, step) {
  const items = [...menu.querySelectorAll(".menu-item:not([hidden])")];
  const index = items.indexOf(document.activeElement);
  items[(index + step + items.length) % items.length]?.focus();
}

function setActionsOpen(open) {
  ui.header.dataset.actions = open ? "open" : "closed";
  ui.actionsToggle.setAttribute("aria-expanded", String(open));
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

function routed() {
  const match = /^#\/sessions\/([^/]+)(?:\/messages\/([^/]+))?$/.exec(location.hash);
  return match ? { id: decodeURIComponent(match[1]), messageId: match[2] && decodeURIComponent(match[2]) } : null;
}

async function route() {
  const target = routed();
  if (!target) {
    showNewChat();
    return;
  }
  // A search hit in the open chat: no need to load it again.
  if (target.messageId && state.current?.id === target.id && highlightMessage(target.messageId)) {
    setSidebarOpen(false);
    return;
  }
  await openSession(target.id, target.messageId);
}

/** Show a session; scrolled to `messageId` if given (a search hit), else to its newest message. */
async function openSession(id, messageId = null) {
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
  if (messageId && !detail.messages.some((message) => message.id === messageId)) {
    // A search hit on another branch: that branch is made current, so that a reload shows it too.
    try {
      await api.switchBranch(id, messageId);
      detail = await api.getSession(id);
    } catch {
      // Gone meanwhile (deleted): the current branch is shown, scrolled to its end.
    }
    if (load !== state.loading) return;
  }
  showSession(detail.session);
  ui.messages.replaceChildren(...detail.messages.map(messageItem));
  updateActions();
  if (!messageId || !highlightMessage(messageId)) scrollToEnd();
  await followIfStreaming(id, detail.messages);
}

/** Follow the branch's last reply live if it is still being written (after a reload, say). */
async function followIfStreaming(sessionId, messages) {
  const last = messages.at(-1);
  if (last?.role === "assistant" && last.status === "in_progress" && !state.stream) {
    await watchReply(sessionId, last, ui.messages.lastElementChild);
  }
}

/**
 * Show the session's current branch, as the server sent it, in place of the one shown: the
 * messages both start with stay as they are (with their versions brought up to date), so a switch
 * deep in a long chat renders only what changed.
 */
function showBranch({ session, messages }) {
  closeEditor(); // its message may be on the branch no longer
  state.current = { ...state.current, ...session };
  const items = [...ui.messages.children];
  let kept = 0;
  while (kept < Math.min(items.length, messages.length) && showsMessage(items[kept], messages[kept])) {
    places.set(items[kept], placeOf(messages[kept]));
    showVersions(items[kept]);
    kept++;
  }
  for (const item of items.slice(kept)) item.remove();
  ui.messages.append(...messages.slice(kept).map(messageItem));
  ui.welcome.hidden = true;
  updateActions();
}

const showsMessage = (item, message) =>
  item.dataset.messageId === message.id && item.dataset.status === message.status && messageText(item) === message.content;

function showSession(session) {
  state.current = session;
  showTitle(session);
  for (const node of ui.actions.querySelectorAll(".session-only")) node.hidden = false;
  ui.welcome.hidden = true;
  markCurrentSession();
}

function showTitle(session) {
  ui.title.textContent = sessionName(session);
  document.title = `${sessionName(session)} · chatstore`;
}

/** The view of a chat not started yet: the first message creates the session. */
function showNewChat() {
  state.current = null;
  state.draftMetadata = {};
  state.loading++;
  ui.title.textContent = "New chat";
  document.title = "chatstore";
  for (const node of ui.actions.querySelectorAll(".session-only")) node.hidden = true;
  ui.welcome.hidden = false;
  ui.messages.replaceChildren();
  markCurrentSession();
}

/** Scroll to a message, mark it for a moment and move the focus there; false if it is not shown. */
function highlightMessage(messageId) {
  const item = ui.messages.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
  if (!item) return false;
  for (const other of ui.messages.querySelectorAll(".highlighted")) other.classList.remove("highlighted");
  item.classList.add("highlighted");
  item.tabIndex = -1;
  item.scrollIntoView({ block: "center" });
  item.focus({ preventScroll: true });
  setTimeout(() => item.classList.remove("highlighted"), HIGHLIGHT_MS);
  return true;
}

// ---- messages --------------------------------------------------------------------------------

function messageItem(message) {
  const item = element("li", `message ${message.role}`);
  if (message.id) item.dataset.messageId = message.id;
  const content = element("div", "message-content");
  if (message.role === "assistant") {
    content.classList.add("markdown");
    const view = new MarkdownView(content);
    views.set(item, view);
    view.set(message.content);
  } else content.textContent = message.content;

  const failure = element("div", "message-failure");
  failure.hidden = true;
  const details = element("details", "failure-details");
  details.append(element("summary", "", "Details"), element("p", "failure-detail"));
  failure.append(element("p", "failure-text"), details);

  const actions = element("div", "message-actions");
  const time = element("time", "message-time on-hover");
  // "‹ 2 / 3 ›": the versions of this message (edits, or replies asked for again) to switch between.
  const versions = element("span", "message-versions");
  versions.setAttribute("role", "group");
  versions.setAttribute("aria-label", "Versions");
  versions.append(
    actionButton("\u2039", "version-previous", "Previous version"),
    element("span", "version-position"),
    actionButton("\u203A", "version-next", "Next version"),
  );
  const copy = actionButton("Copy", "message-copy on-hover", "Copy message");
  actions.append(time, versions, copy);
  if (message.role === "user") actions.append(actionButton("\u270E", "message-edit on-hover", "Edit message"));
  // Regenerate, or Retry for a reply that failed or was stopped: a new reply beside this one.
  if (message.role === "assistant") actions.append(actionButton("Regenerate", "message-regenerate"));
  const more = element("span", "menu-anchor message-more on-hover");
  const moreButton = actionButton("\u22EF", "message-more-button", "More actions");
  moreButton.setAttribute("aria-haspopup", "menu");
  moreButton.setAttribute("aria-expanded", "false");
  more.append(moreButton);
  actions.append(more);

  item.append(element("span", "message-role", ROLE_TEXT[message.role]), content, element("p", "message-status"), failure, actions);
  places.set(item, placeOf(message));
  showVersions(item);
  setTime(item, message.created_at ?? new Date().toISOString());
  setStatus(item, message.status, message.finish_reason, message.error);
  return item;
}

const placeOf = (message) => ({ parentId: message.parent_id ?? null, siblingIds: message.sibling_ids ?? [message.id ?? null] });

/** Show "‹ n / m ›" on a message that has other versions; nothing on one that has none. */
function showVersions(item) {
  const { siblingIds } = places.get(item);
  const index = siblingIds.indexOf(item.dataset.messageId ?? null);
  const versions = item.querySelector(".message-versions");
  versions.hidden = siblingIds.length < 2 || index === -1;
  if (versions.hidden) return;
  versions.querySelector(".version-position").textContent = `${index + 1} / ${siblingIds.length}`;
  versions.querySelector(".version-previous").disabled = index === 0 || state.stream !== null;
  versions.querySelector(".version-next").disabled = index === siblingIds.length - 1 || state.stream !== null;
}

/** A message sent or a reply started has its id: it takes its place among its versions. */
function nameItem(item, id) {
  item.dataset.messageId = id;
  const place = places.get(item);
  place.siblingIds = place.siblingIds.map((sibling) => sibling ?? id);
  showVersions(item);
  updateItemActions(item);
}

function actionButton(text, className, label) {
  const button = element("button", `button subtle small ${className}`, text);
  button.type = "button";
  if (label) button.setAttribute("aria-label", label);
  return button;
}

function setTime(item, iso) {
  const time = item.querySelector(".message-time");
  const when = new Date(iso);
  time.dateTime = iso;
  time.textContent = formatMessageTime(when);
  time.title = fullTime.format(when);
}

/** The raw text of a message: a reply's Markdown source, or what the person typed. */
const messageText = (item) => views.get(item)?.text ?? item.querySelector(".message-content").textContent;

function setStatus(item, status, finishReason = null, error = null) {
  item.dataset.status = status;
  delete item.dataset.connection;
  delete item.dataset.kept;
  showStatusText(item, (status === "incomplete" && FINISH_TEXT[finishReason]) || STATUS_TEXT[status] || "");
  showFailure(item, status === "error" ? (error ?? "") : null);
  updateItemActions(item);
}

/** Say why a reply failed in words, with the server's own words behind "Details"; null hides it. */
function showFailure(item, detail) {
  const failure = item.querySelector(".message-failure");
  failure.hidden = detail === null;
  if (detail === null) return;
  item.querySelector(".failure-text").textContent = explainFailure(detail);
  item.querySelector(".failure-detail").textContent = detail || "The server gave no reason.";
  item.querySelector(".failure-details").hidden = !detail;
}

function explainFailure(detail) {
  return FAILURES.find(([pattern]) => pattern.test(detail))?.[1] ?? UNKNOWN_FAILURE;
}

/** The `error` event of a reply the server keeps, to store once its database is back. */
function showKept(item, detail) {
  // "<why it failed>; <kept>" when the reply failed as well: then it will be stored as failed.
  const failed = detail.indexOf(`; ${KEPT_DETAIL}`);
  if (failed > 0) setStatus(item, "error", "error", detail.slice(0, failed));
  else setStatus(item, "complete");
  item.dataset.kept = "true";
  updateItemActions(item);
  showStatusText(item, KEPT_TEXT);
}

function showStatusText(item, text) {
  const label = item.querySelector(".message-status");
  label.textContent = text;
  label.hidden = !text;
}

/** Show a reply as the server stored it: its whole text and how it ended. */
function showStored(item, message) {
  const view = views.get(item);
  // Usually the text shown is the text stored: then only what is still pending is rendered.
  if (view && view.text === message.content) view.render();
  else if (view) view.set(message.content);
  else item.querySelector(".message-content").textContent = message.content;
  if (message.id) item.dataset.messageId = message.id;
  if (message.created_at) setTime(item, message.created_at);
  setStatus(item, message.status, message.finish_reason, message.error);
}

function setConnection(item, connected) {
  if (connected) delete item.dataset.connection;
  else item.dataset.connection = "reconnecting";
  showStatusText(item, connected ? STATUS_TEXT[item.dataset.status] : RECONNECTING_TEXT);
}

/**
 * What a message offers while nothing streams: a stored message can be edited (the person's),
 * asked for again (a reply: Regenerate, or Retry when it failed or was stopped), forked or deleted.
 */
function updateItemActions(item) {
  const stored = Boolean(item.dataset.messageId) && !item.dataset.kept;
  const idle = state.stream === null;
  const status = item.dataset.status;
  const edit = item.querySelector(".message-edit");
  if (edit) edit.hidden = !(stored && idle);
  const regenerate = item.querySelector(".message-regenerate");
  if (regenerate) {
    const retry = ["error", "incomplete"].includes(status);
    regenerate.textContent = retry ? "Retry" : "Regenerate";
    regenerate.classList.toggle("on-hover", !retry); // Retry stays in view: it is what comes next
    regenerate.hidden = !(stored && idle && (retry || status === "complete"));
  }
  item.querySelector(".message-more").hidden = !(stored && idle && status !== "in_progress");
}

function updateActions() {
  for (const item of ui.messages.children) {
    updateItemActions(item);
    showVersions(item);
  }
  // An edit is sent once the reply streaming now has ended (what was typed stays meanwhile).
  if (editing) editing.form.querySelector(".editor-send").disabled = state.stream !== null;
}

function appendMessage(message) {
  ui.welcome.hidden = true;
  const item = messageItem(message);
  ui.messages.append(item);
  scrollToEnd();
  return item;
}

/** Take a message and every message after it off the page; returns them, to put back if need be. */
function cutBranchAt(item) {
  const items = [...ui.messages.children];
  const cut = items.slice(items.indexOf(item));
  for (const node of cut) node.remove();
  return cut;
}

function appendText(item, text) {
  const stick = nearEnd();
  views.get(item).append(text);
  // The view renders at the next frame, before this runs.
  if (stick) requestAnimationFrame(scrollToEnd);
}

const nearEnd = () => ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 80;
const scrollToEnd = () => ui.scroller.scrollTo({ top: ui.scroller.scrollHeight });

// Whether the newest message was in view at the last scroll: when the chat area changes size (the
// window, a phone turned or its keyboard opened, the composer grown) the view stays at the end.
let atEnd = true;
let seenHeight = ui.scroller.clientHeight; // the height the resize observer last saw
ui.scroller.addEventListener(
  "scroll",
  () => {
    // A scroll the browser makes as the area resizes, before the observer runs, is not the person's.
    if (ui.scroller.clientHeight === seenHeight) atEnd = nearEnd();
  },
  { passive: true },
);
new ResizeObserver(() => {
  seenHeight = ui.scroller.clientHeight;
  if (atEnd) scrollToEnd();
}).observe(ui.scroller);

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Over plain http on another host there is no Clipboard API; the older way still works there.
    const area = element("textarea", "visually-hidden");
    area.value = text;
    area.setAttribute("readonly", "");
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }
}

async function copyFrom(button, text) {
  const label = button.textContent;
  button.textContent = (await copyText(text)) ? "Copied" : "Copy failed";
  setTimeout(() => (button.textContent = label), 1500);
}

// ---- sending and streaming -------------------------------------------------------------------

const newStream = (sessionId, replyId = null) => ({
  sessionId,
  controller: new AbortController(), // aborts the reading only: the reply goes on on the server
  replyId,
  stopping: false, // Stop was pressed
  stoppedAs: null, // the reply as stored, once the server has stopped it
  parentGone: false, // the message sent was to follow one deleted elsewhere: nothing was stored
});

async function sendMessage() {
  const content = ui.input.value;
  if (!content.trim() || state.stream) return;
  clearError();
  const stream = newStream(state.current?.id);
  state.stream = stream;
  setStreaming(true);
  try {
    if (!state.current && !(await createSession(nameFrom(content), state.draftMetadata))) return;
    stream.sessionId = state.current.id;
    ui.input.value = "";
    fitInput();
    await streamReply(stream, content);
  } finally {
    endStream(stream);
  }
  if (stream.parentGone) await showBranchAfterParentGone(stream.sessionId, PARENT_GONE_TEXT);
  await refreshSessions();
}

/**
 * Show the user's message and stream the reply under it. It follows the last message shown (none:
 * a new first message), named as its `parent_id`: another tab or device may have switched the
 * session's current branch meanwhile, and the message goes where the person sees it. An edit
 * (`edit`: the edited message's {place, item, replaced}) sends the new text below the edited
 * message's parent, a new branch beside the old one, which shows in place of the old one's
 * messages (`replaced`). If the message followed is gone (deleted elsewhere), nothing is stored;
 * `stream.parentGone` tells the caller to show the chat as it is now.
 */
async function streamReply(stream, content, edit = null) {
  const parentId = edit ? edit.place.parentId : (ui.messages.lastElementChild?.dataset.messageId ?? null);
  const siblingIds = edit ? [...edit.place.siblingIds, null] : [null];
  const question = appendMessage({ role: "user", content, status: "complete", parent_id: parentId, sibling_ids: siblingIds });
  const reply = appendMessage({ role: "assistant", content: "", status: "in_progress" });
  const send = (handlers) => api.chat(stream.sessionId, content, { ...handlers, parentId });
  try {
    await readReply(reply, stream, send, question);
  } catch (error) {
    if (stream.replyId === null && error.status === 400 && error.fields?.includes("parent_id")) {
      // Deleted elsewhere: the text waits in the composer (an edit's too, as its message is gone).
      stream.parentGone = true;
      question.remove();
      reply.remove();
      if (edit && state.current?.id === stream.sessionId) ui.messages.append(...edit.replaced);
      ui.input.value = content;
      fitInput();
      return;
    }
    if (stream.replyId === null) {
      // The reply never started: nothing was stored, so the message goes back where it was typed.
      question.remove();
      reply.remove();
      if (edit) {
        if (state.current?.id === stream.sessionId) {
          ui.messages.append(...edit.replaced);
          openEditor(edit.item, content);
        }
      } else {
        ui.input.value = content;
        fitInput();
      }
    }
    showStreamError(reply, stream, error);
  }
}

/** Send the edited text of a user message as a new branch beside it. */
async function sendEdit(item, content) {
  if (!content.trim() || state.stream || !state.current) return;
  closeEditor();
  clearError();
  const stream = newStream(state.current.id);
  state.stream = stream;
  setStreaming(true);
  try {
    const place = places.get(item);
    await streamReply(stream, content, { place, item, replaced: cutBranchAt(item) });
  } finally {
    endStream(stream);
  }
  if (stream.parentGone) await showBranchAfterParentGone(stream.sessionId, EDIT_PARENT_GONE_TEXT);
  await refreshSessions();
}

/**
 * A message was not sent because the one it was to follow was deleted elsewhere (another tab,
 * another device): show the chat as the server has it now, then say so (`text`).
 */
async function showBranchAfterParentGone(sessionId, text) {
  if (state.current?.id !== sessionId) return; // another chat was opened meanwhile
  const load = state.loading;
  try {
    const detail = await api.getSession(sessionId);
    if (load !== state.loading) return;
    showBranch(detail);
    scrollToEnd();
    showError(text);
    ui.input.focus();
    await followIfStreaming(sessionId, detail.messages);
  } catch (error) {
    if (load === state.loading) showError(messageOf(error));
  }
}

/**
 * Ask for a new reply beside `old` (Regenerate, or Retry after a failure): it answers the same
 * history and shows in place of `old` and what followed it, as version n / n.
 */
async function regenerateReply(old) {
  if (state.stream || !state.current) return;
  clearError();
  const stream = newStream(state.current.id);
  state.stream = stream;
  setStreaming(true);
  const { parentId, siblingIds } = places.get(old);
  const replaced = cutBranchAt(old);
  const reply = appendMessage({
    role: "assistant",
    content: "",
    status: "in_progress",
    parent_id: parentId,
    sibling_ids: [...siblingIds, null],
  });
  try {
    await readReply(reply, stream, (handlers) => api.regenerate(stream.sessionId, old.dataset.messageId, handlers));
  } catch (error) {
    if (stream.replyId === null) {
      reply.remove();
      // Nothing was asked for: the branch stays as it was (unless another chat is open by now).
      if (state.current?.id === stream.sessionId) ui.messages.append(...replaced);
    }
    showStreamError(reply, stream, error);
  } finally {
    endStream(stream);
  }
  await refreshSessions();
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
async function readReply(reply, stream, read, question = null) {
  // Screen readers announce the reply once, when it ends (busy until then), not word by word.
  reply.setAttribute("aria-live", "polite");
  reply.setAttribute("aria-busy", "true");
  try {
    await read({
      signal: stream.controller.signal,
      onEvent(name, data) {
        if (name === "start") {
          stream.replyId = data.assistant_message_id;
          if (question && data.message_ids?.[0]) nameItem(question, data.message_ids[0]);
          if (question) places.get(reply).parentId = question.dataset.messageId ?? null;
          nameItem(reply, data.assistant_message_id);
          if (stream.stopping) stopStream(stream); // Stop was pressed before the reply had an id
          refreshSessions(); // the message is stored: the sidebar can count it and move the chat up
        } else if (name === "delta") appendText(reply, data.content);
        else if (name === "done") showStored(reply, data);
        else if (name === "error") {
          views.get(reply)?.render();
          if (data.detail.includes(KEPT_DETAIL)) showKept(reply, data.detail);
          else {
            setStatus(reply, "error", "error", data.detail);
            showError(`The reply failed: ${explainFailure(data.detail)}`);
          }
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

async function createSession(name, metadata = {}) {
  try {
    const session = await api.createSession(name, metadata);
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
  updateActions();
}

function fitInput() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

// ---- on phones and touch screens ------------------------------------------------------------

// A touch keyboard's Enter makes a new line, as people expect there; the Send button sends.
const touch = matchMedia("(pointer: coarse)");

function fitPlaceholder() {
  if (touch.matches) ui.input.placeholder = "Write a message";
  else if (phoneWidth.matches) ui.input.placeholder = "Write a message. Enter sends.";
  else ui.input.placeholder = "Write a message. Enter sends, Shift+Enter starts a new line.";
}

// ---- chat settings ----------------------------------------------------------------------------

function openSettings() {
  setActionsOpen(false);
  const metadata = state.current ? (state.current.metadata ?? {}) : state.draftMetadata;
  ui.settingsModel.value = typeof metadata.model === "string" ? metadata.model : "";
  ui.settingsPrompt.value = typeof metadata.system_prompt === "string" ? metadata.system_prompt : "";
  ui.settingsError.hidden = true;
  ui.settingsDialog.showModal();
  ui.settingsModel.focus();
}

async function saveSettings() {
  // Empty means the server's default: the key is removed (merge patch: null removes).
  const model = ui.settingsModel.value.trim() || null;
  const prompt = ui.settingsPrompt.value.trim() ? ui.settingsPrompt.value : null;
  if (!state.current) {
    state.draftMetadata = Object.fromEntries(
      Object.entries({ model, system_prompt: prompt }).filter(([, value]) => value !== null),
    );
    ui.settingsDialog.close();
    return;
  }
  try {
    const updated = await api.updateSession(state.current.id, { metadata: { model, system_prompt: prompt } });
    ui.settingsDialog.close();
    if (state.current?.id === updated.id) state.current = { ...state.current, ...updated };
  } catch (error) {
    ui.settingsError.textContent = messageOf(error);
    ui.settingsError.hidden = false;
  }
}

// ---- search -----------------------------------------------------------------------------------

let searchTimer = 0;

function searchSoon() {
  clearTimeout(searchTimer);
  const query = ui.search.value.trim();
  if (!query) {
    showSearch(false);
    return;
  }
  searchTimer = setTimeout(() => runSearch(query), SEARCH_DELAY_MS);
}

function showSearch(searching) {
  ui.searchResults.hidden = !searching;
  ui.sessionBrowser.hidden = searching;
  if (!searching) {
    state.search = { query: "", cursor: null, count: state.search.count + 1 };
    ui.searchList.replaceChildren();
  }
}

async function runSearch(query, cursor = null) {
  const count = ++state.search.count;
  showSearch(true);
  if (!cursor) ui.searchStatus.textContent = "Searching…";
  let page;
  try {
    page = await api.search(query, cursor);
  } catch (error) {
    if (count !== state.search.count) return;
    ui.searchList.replaceChildren();
    ui.moreResults.hidden = true;
    ui.searchStatus.textContent = error.status === 400 ? "Type a word to look for." : messageOf(error);
    return;
  }
  if (count !== state.search.count) return; // a newer search was sent meanwhile
  state.search.query = query;
  state.search.cursor = page.next_cursor;
  const hits = page.results.map(searchHit);
  if (cursor) ui.searchList.append(...hits);
  else ui.searchList.replaceChildren(...hits);
  const shown = ui.searchList.children.length;
  ui.searchStatus.textContent = shown
    ? `${shown}${page.next_cursor ? "+" : ""} ${shown === 1 ? "message" : "messages"} found`
    : "No messages match.";
  ui.moreResults.hidden = !page.next_cursor;
}

function searchHit(hit) {
  const link = element("a", "search-hit");
  link.href = messageHash(hit.session_id, hit.message_id);
  const snippet = element("span", "search-snippet");
  snippet.append(...snippetNodes(hit.snippet));
  link.append(
    element("span", "session-name", hit.session_name || "Untitled chat"),
    snippet,
    element("span", "session-meta", `${ROLE_TEXT[hit.role] ?? hit.role} · ${formatWhen(hit.created_at)}`),
  );
  const item = element("li", "search-item");
  item.append(link);
  return item;
}

// ---- export and import ------------------------------------------------------------------------

async function exportChat(format) {
  closeMenus();
  setActionsOpen(false);
  try {
    const { blob, filename } = await api.exportSession(state.current.id, format);
    const url = URL.createObjectURL(blob);
    const link = element("a");
    link.href = url;
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showError(`The chat could not be exported: ${messageOf(error)}`);
  }
}

async function importChat(file) {
  clearError();
  let exported;
  try {
    exported = JSON.parse(await file.text());
  } catch {
    showError(`“${file.name}” is not a chatstore export: it is not JSON. Export a chat as JSON to import it.`);
    return;
  }
  try {
    const session = await api.importSession(exported);
    await refreshSessions();
    location.hash = sessionHash(session.id);
  } catch (error) {
    showError(`“${file.name}” could not be imported: ${messageOf(error)}`);
  }
}

// ---- rename and delete -----------------------------------------------------------------------

let renaming = null; // the session the rename dialog is for
let deleting = null; // what the delete dialog is for: {session} or {item}, a message of the open chat

function openRename(session = state.current) {
  renaming = session;
  setActionsOpen(false);
  ui.renameInput.value = session.name ?? "";
  ui.renameError.hidden = true;
  ui.renameDialog.showModal();
  ui.renameInput.select();
}

async function saveRename() {
  const session = renaming;
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

function openDelete(session = state.current) {
  deleting = { session };
  setActionsOpen(false);
  ui.deleteHeading.textContent = "Delete chat?";
  const shown = session.id === state.current?.id ? ui.messages.children.length : 0;
  const count = state.sessions.find((s) => s.id === session.id)?.message_count ?? shown;
  ui.deleteText.textContent =
    `“${sessionName(session)}” and its ${count} ${count === 1 ? "message" : "messages"} will be deleted. ` +
    "This cannot be undone.";
  ui.deleteError.hidden = true;
  ui.deleteDialog.showModal();
  ui.deleteCancel.focus();
}

/** The delete the dialog asked about; true once done (a 404 means done already), else the dialog
 * stays open and shows why. */
async function deleteAskedFor(remove) {
  try {
    await remove();
  } catch (error) {
    if (error.status !== 404) {
      ui.deleteError.textContent = messageOf(error);
      ui.deleteError.hidden = false;
      return false;
    }
  }
  ui.deleteDialog.close();
  return true;
}

async function confirmDelete() {
  if (deleting.item) {
    await confirmDeleteMessage(deleting.item);
    return;
  }
  const { session } = deleting;
  if (state.stream?.sessionId === session.id) state.stream.controller.abort();
  if (!(await deleteAskedFor(() => api.deleteSession(session.id)))) return;
  state.sessions = state.sessions.filter((s) => s.id !== session.id);
  renderSessions();
  if (state.current?.id === session.id) {
    history.replaceState(null, "", location.pathname + location.search);
    showNewChat();
  }
  ui.newSession.focus();
}

// ---- branches: edit, versions, fork, delete -----------------------------------------------------

let editing = null; // {item, form} while a message of the person's is edited in place

/** Edit a user message in place; what is sent becomes a new branch beside the message. */
function openEditor(item, text = messageText(item)) {
  closeEditor();
  const form = element("form", "message-editor");
  const area = element("textarea", "editor-input");
  area.value = text;
  area.setAttribute("aria-label", "Edit message");
  const cancel = actionButton("Cancel", "editor-cancel");
  const send = element("button", "button primary small editor-send", "Send");
  send.type = "submit";
  const buttons = element("div", "editor-buttons");
  buttons.append(cancel, send);
  form.append(area, buttons);
  item.querySelector(".message-content").after(form);
  item.classList.add("editing");
  editing = { item, form };
  send.disabled = state.stream !== null;

  const fit = () => {
    area.style.height = "auto";
    area.style.height = `${Math.min(area.scrollHeight + 2, 320)}px`;
  };
  area.addEventListener("input", fit);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      closeEditor({ focus: true });
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      if (touch.matches && !event.ctrlKey && !event.metaKey) return; // as in the composer
      event.preventDefault();
      sendEdit(item, area.value);
    }
  });
  cancel.addEventListener("click", () => closeEditor({ focus: true }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendEdit(item, area.value);
  });
  fit();
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
}

function closeEditor({ focus = false } = {}) {
  if (!editing) return;
  const { item, form } = editing;
  editing = null;
  form.remove();
  item.classList.remove("editing");
  if (focus) item.querySelector(".message-edit")?.focus();
}

/** Show the previous (`step` -1) or next (+1) version of a message, and the branch below it. */
async function showVersion(item, step) {
  const { siblingIds } = places.get(item);
  const target = siblingIds[siblingIds.indexOf(item.dataset.messageId) + step];
  if (!target || state.stream || !state.current) return;
  const sessionId = state.current.id;
  const load = state.loading;
  clearError();
  try {
    // The server goes on down to the newest message below the version, and remembers the switch.
    await api.switchBranch(sessionId, target);
    const detail = await api.getSession(sessionId);
    if (load !== state.loading) return; // another chat was opened meanwhile
    showBranch(detail);
    refocusVersions(target, step);
    await followIfStreaming(sessionId, detail.messages);
  } catch (error) {
    if (load === state.loading) showError(`That version could not be shown: ${messageOf(error)}`);
  }
}

/** Keep the keyboard on the switcher, now of the version shown (its item is a new one). */
function refocusVersions(messageId, step) {
  const item = ui.messages.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
  if (!item) return;
  const toward = item.querySelector(step < 0 ? ".version-previous" : ".version-next");
  (toward.disabled ? item.querySelector(step < 0 ? ".version-next" : ".version-previous") : toward).focus();
}

function openMessageMenu(button) {
  closeMenus();
  state.menuMessage = button.closest(".message");
  button.after(ui.messageMenu);
  ui.messageMenu.classList.remove("upward", "flipped");
  openMenu(button, ui.messageMenu);
  // The menu opens where it fits in the conversation: upwards near its bottom, and on the button's
  // other side near its edge (a reply's menu on a phone).
  const menu = ui.messageMenu.getBoundingClientRect();
  const area = ui.scroller.getBoundingClientRect();
  if (menu.bottom > area.bottom) ui.messageMenu.classList.add("upward");
  if (menu.right > area.right || menu.left < area.left) ui.messageMenu.classList.add("flipped");
}

/**
 * A new chat holding a copy of the branch down to `item`, opened (and so marked in the sidebar). It
 * is named "<name> (fork)" so that the sidebar tells the two apart; a chat without a name gives an
 * unnamed fork, shown by its first message as the original is.
 */
async function forkAt(item) {
  if (!state.current) return;
  clearError();
  const { id, name } = state.current;
  try {
    let fork;
    try {
      fork = await api.forkSession(id, item.dataset.messageId, forkName(name));
    } catch (error) {
      // The suffix took a long name past the server's limit: the original's length fits.
      if (!(name && error.status === 400 && error.fields.includes("name"))) throw error;
      fork = await api.forkSession(id, item.dataset.messageId, forkName(name, Array.from(name).length));
    }
    await refreshSessions();
    // Its activity is its last message's time, which may be older than the first page of chats.
    if (!state.sessions.some((session) => session.id === fork.id)) {
      state.sessions.unshift(fork);
      renderSessions();
    }
    location.hash = sessionHash(fork.id);
  } catch (error) {
    showError(`The chat could not be forked: ${messageOf(error)}`);
  }
}

/**
 * The name of a fork of a chat named `name`: "<name> (fork)", or "(fork 2)", "(fork 3)"… when the
 * sidebar has that name already (a fork of a fork counts on from its original's name). `limit`, in
 * characters, cuts the name to make room for the suffix. Null for a chat without a name.
 */
function forkName(name, limit = Infinity) {
  if (!name) return null;
  const base = name.replace(FORK_SUFFIX, "");
  const taken = new Set(state.sessions.map((session) => session.name));
  let suffix = " (fork)";
  for (let number = 2; taken.has(base + suffix); number++) suffix = ` (fork ${number})`;
  const room = limit - suffix.length;
  if (room < 2) return name; // a limit too short for any suffix: the original's name, which fits
  const characters = Array.from(base);
  return (characters.length > room ? `${characters.slice(0, Math.max(room - 1, 0)).join("")}…` : base) + suffix;
}

function openDeleteMessage(item) {
  deleting = { item };
  const items = [...ui.messages.children];
  const after = items.slice(items.indexOf(item) + 1);
  const text = messageText(item);
  const what = text.trim() ? `“${nameFrom(text)}”` : item.classList.contains("user") ? "This message" : "This reply";
  const following = after.length ? ` and the ${after.length} ${after.length === 1 ? "message" : "messages"} after it` : "";
  // The versions of a later message are below this one too, and go with it.
  const others = after.some((later) => places.get(later).siblingIds.length > 1) ? ", with their other versions," : "";
  ui.deleteHeading.textContent = "Delete message?";
  ui.deleteText.textContent = `${what}${following}${others} will be deleted. This cannot be undone.`;
  ui.deleteError.hidden = true;
  ui.deleteDialog.showModal();
  ui.deleteCancel.focus();
}

async function confirmDeleteMessage(item) {
  const sessionId = state.current.id;
  const id = item.dataset.messageId;
  const { siblingIds } = places.get(item);
  if (!(await deleteAskedFor(() => api.deleteMessage(id)))) return;
  const load = state.loading;
  try {
    // The server makes the deleted message's parent current, which would leave the versions beside
    // it out of sight: the page shows the one before it (or after it) instead.
    const index = siblingIds.indexOf(id);
    const neighbour = siblingIds[index > 0 ? index - 1 : index + 1];
    if (neighbour) await api.switchBranch(sessionId, neighbour);
    const detail = await api.getSession(sessionId);
    if (load !== state.loading) return;
    showBranch(detail);
    ui.input.focus();
  } catch (error) {
    if (load === state.loading) showError(messageOf(error));
  }
  refreshSessions(); // its count of messages
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
const otherDayTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const fullTime = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const monthFormat = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric" });

function formatMessageTime(when) {
  return when.toDateString() === new Date().toDateString() ? sameDay.format(when) : otherDayTime.format(when);
}

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
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  // On a touch screen Enter makes a new line; Ctrl/Cmd+Enter sends everywhere.
  if (touch.matches && !event.ctrlKey && !event.metaKey) return;
  event.preventDefault();
  sendMessage();
});
touch.addEventListener("change", fitPlaceholder);
phoneWidth.addEventListener("change", fitPlaceholder);
fitPlaceholder();
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
  const menuButton = event.target.closest(".session-menu-button");
  if (menuButton) {
    if (openedMenu?.button === menuButton) closeMenus();
    else openSessionMenu(menuButton);
    return;
  }
  const action = event.target.closest("#session-menu .menu-item");
  if (action) {
    const session = state.menuSession;
    closeMenus();
    if (action.dataset.action === "rename") openRename(session);
    else openDelete(session);
    return;
  }
  // A click on the open session's link changes no hash, so close the phone drawer here too.
  if (event.target.closest(".session-link")) setSidebarOpen(false);
});
ui.searchList.addEventListener("click", (event) => {
  const hit = event.target.closest(".search-hit");
  if (!hit) return;
  setSidebarOpen(false);
  // The same hit again changes no hash: show it again all the same.
  if (hit.hash === location.hash) route();
});
ui.search.addEventListener("input", searchSoon);
ui.search.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ui.search.value) {
    event.stopPropagation();
    ui.search.value = "";
    searchSoon();
  }
});
ui.moreResults.addEventListener("click", () => runSearch(state.search.query, state.search.cursor));
ui.importButton.addEventListener("click", () => ui.importFile.click());
ui.importFile.addEventListener("change", () => {
  const [file] = ui.importFile.files;
  ui.importFile.value = "";
  if (file) importChat(file);
});

ui.messages.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  const item = button.closest(".message");
  if (button.matches("#message-menu .menu-item")) {
    const target = state.menuMessage;
    closeMenus();
    if (button.dataset.action === "fork") forkAt(target);
    else openDeleteMessage(target);
  } else if (button.classList.contains("message-copy")) copyFrom(button, messageText(item));
  else if (button.classList.contains("code-copy")) {
    copyFrom(button, button.closest(".code-block").querySelector("code").textContent);
  } else if (button.classList.contains("message-regenerate")) regenerateReply(item);
  else if (button.classList.contains("message-edit")) openEditor(item);
  else if (button.classList.contains("version-previous")) showVersion(item, -1);
  else if (button.classList.contains("version-next")) showVersion(item, 1);
  else if (button.classList.contains("message-more-button")) {
    if (openedMenu?.button === button) closeMenus();
    else openMessageMenu(button);
  }
});

ui.actionsToggle.addEventListener("click", () => setActionsOpen(ui.header.dataset.actions !== "open"));
ui.settings.addEventListener("click", openSettings);
ui.export.addEventListener("click", () => {
  if (openedMenu?.menu === ui.exportMenu) closeMenus();
  else openMenu(ui.export, ui.exportMenu);
});
ui.exportMenu.addEventListener("click", (event) => {
  const item = event.target.closest(".menu-item");
  if (item) exportChat(item.dataset.format);
});
ui.settingsCancel.addEventListener("click", () => ui.settingsDialog.close());
ui.settingsForm.addEventListener("submit", (event) => {
  event.preventDefault();
  saveSettings();
});
// Menus close on a click elsewhere, on Escape, and move with the arrow keys.
document.addEventListener("click", (event) => {
  if (openedMenu && !openedMenu.menu.contains(event.target) && !openedMenu.button.contains(event.target)) closeMenus();
  if (ui.header.dataset.actions === "open" && !ui.header.contains(event.target)) setActionsOpen(false);
});
document.addEventListener("keydown", (event) => {
  if (!openedMenu) return;
  if (event.key === "Escape") {
    event.stopImmediatePropagation();
    closeMenus({ focusButton: true });
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    moveInMenu(openedMenu.menu, event.key === "ArrowDown" ? 1 : -1);
  }
}, true);
ui.menuToggle.addEventListener("click", () => setSidebarOpen(ui.app.dataset.sidebar !== "open"));
ui.backdrop.addEventListener("click", () => setSidebarOpen(false));
phoneWidth.addEventListener("change", () => {
  setSidebarOpen(false);
  setActionsOpen(false);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ui.header.dataset.actions === "open") {
    setActionsOpen(false);
    ui.actionsToggle.focus();
  }
  if (event.key === "Escape" && ui.app.dataset.sidebar === "open") {
    setSidebarOpen(false);
    ui.menuToggle.focus();
  }
});
ui.alertClose.addEventListener("click", clearError);

ui.rename.addEventListener("click", () => openRename());
ui.renameCancel.addEventListener("click", () => ui.renameDialog.close());
ui.renameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  saveRename();
});
ui.delete.addEventListener("click", () => openDelete());
ui.deleteCancel.addEventListener("click", () => ui.deleteDialog.close());
ui.deleteDialog.addEventListener("close", () => {
  // The message's menu that asked is closed by now: the focus goes back to its button.
  const item = deleting?.item;
  if (item?.isConnected && document.activeElement === document.body) item.querySelector(".message-more-button").focus();
});
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
