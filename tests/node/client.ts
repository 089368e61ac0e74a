// A client of chatstore typed only by what openapi-typescript generates from /schema/openapi.json
// (into generated/chatstore-api.d.ts), calling every operation once through openapi-fetch. The
// stream's events are typed by the schema's ReplyEvent: no type here is written by hand.
// Run by tests/api/test_typescript_client.py: node build/client.js <base URL> <API key>; it prints the
// operations it used as one line of JSON and exits non-zero at the first surprise.
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./generated/chatstore-api.js";

type ReplyEvent = components["schemas"]["ReplyEvent"];

const [baseUrl = "", apiKey = ""] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });
const anonymous = createClient<paths>({ baseUrl });
const used: (keyof operations)[] = [];

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`expected ${what}`);
  }
}

// The names are checked against the schema's union: a name it lacks would not compile.
const EVENT_NAMES: ReplyEvent["event"][] = ["start", "delta", "done", "error", "failure"];

function isEventName(name: string): name is ReplyEvent["event"] {
  return EVENT_NAMES.some((known) => known === name);
}

/** The events of a finished `text/event-stream` body, each typed by its `event` name. */
async function readEvents(response: Response): Promise<ReplyEvent[]> {
  check(response.headers.get("content-type")?.startsWith("text/event-stream") === true, "an event stream");
  const events: ReplyEvent[] = [];
  let fields = new Map<string, string>();
  // Lines end in CRLF, LF or CR; a blank line ends an event.
  for (const line of (await response.text()).split(/\r\n|\r|\n/)) {
    const colon = line.indexOf(":");
    if (colon === 0) {
      continue; // a comment
    }
    if (colon > 0) {
      fields.set(line.slice(0, colon), line.slice(colon + 1).replace(/^ /, ""));
      continue;
    }
    const [name, id, data] = [fields.get("event"), fields.get("id"), fields.get("data")];
    fields = new Map();
    if (line !== "" || name === undefined || id === undefined || data === undefined) {
      continue;
    }
    check(isEventName(name), `a known event name, got ${name}`);
    events.push({ event: name, id, data: JSON.parse(data) });
  }
  return events;
}

function replyText(events: ReplyEvent[]): string {
  return events.map((event) => (event.event === "delta" ? event.data.content : "")).join("");
}

async function main(): Promise<void> {
  const health = await client.GET("/healthz");
  check(health.data?.status === "ok", "a healthy service");
  used.push("getHealth");

  const refused = await anonymous.GET("/api/sessions");
  check(refused.response.status === 401 && refused.error?.status_code === 401, "401 without the key");

  const created = await client.POST("/api/sessions", { body: { name: "typed", metadata: { topic: "ts" } } });
  check(created.data !== undefined, "a created session");
  const session = created.data;
  check(created.response.headers.get("location") === `/api/sessions/${session.id}`, "its Location");
  check(session.message_count === 0 && session.last_message_at === null, "an empty session");
  used.push("createSession");
  const sessionPath = { path: { session_id: session.id } };

  const listed = await client.GET("/api/sessions", { params: { query: { limit: 10, order: "activity" } } });
  check(listed.data?.some((item) => item.id === session.id) === true, "the session in the list");
  used.push("listSessions");

  const renamed = await client.PATCH("/api/sessions/{session_id}", { params: sessionPath, body: { name: "renamed" } });
  check(renamed.data?.name === "renamed", "the new name");
  used.push("updateSession");

  // keep_generating and error_event have defaults: a body without them is a complete ChatRequest.
  const chat = await client.POST("/api/chat", {
    body: { session_id: session.id, messages: [{ role: "user", content: "hello typed world" }] },
    parseAs: "stream",
  });
  const events = await readEvents(chat.response);
  const [start] = events;
  const done = events.at(-1);
  check(start?.event === "start" && start.data.session_id === session.id, "start first");
  check(done?.event === "done", "done last");
  check(done.data.content === replyText(events) && done.data.finish_reason === "completed", "the whole reply");
  used.push("chat");

  const detail = await client.GET("/api/sessions/{session_id}", { params: sessionPath });
  check(detail.data !== undefined, "the session read back");
  const [question, answer] = detail.data.messages;
  check(question?.client_id === null && answer?.error === null, "null fields present");
  check(detail.data.session.message_count === 2 && detail.data.session.last_message_at !== null, "its counts");
  used.push("getSession");

  const page = await client.GET("/api/sessions/{session_id}/messages", {
    params: { ...sessionPath, query: { direction: "backward", limit: 1 } },
  });
  check(page.data?.[0]?.id === done.data.id, "the newest message first");
  check(page.response.headers.get("x-next-cursor") !== null, "a next page");
  used.push("listMessages");

  const replyPath = { path: { message_id: done.data.id } };
  const followed = await client.GET("/api/messages/{message_id}/stream", {
    params: { ...replyPath, query: { last_event_id: 0, error_event: "failure" } },
    parseAs: "stream",
  });
  check(replyText(await readEvents(followed.response)) === done.data.content, "the same reply, re-attached");
  const ended = await client.GET("/api/messages/{message_id}/stream", {
    params: { ...replyPath, header: { "Last-Event-ID": Number(done.id) } },
    parseAs: "stream",
  });
  check(ended.response.status === 204, "204 once nothing is left");
  used.push("followReply");

  const regenerated = await client.POST("/api/sessions/{session_id}/regenerate", {
    params: sessionPath,
    body: { error_event: "failure" },
    parseAs: "stream",
  });
  const again = (await readEvents(regenerated.response)).at(-1);
  check(again?.event === "done" && again.data.seq === 3, "a second reply");
  check(again.data.parent_id === question?.id, "a sibling of the first reply, below the same question");
  used.push("regenerateReply");

  const stopped = await client.POST("/api/messages/{message_id}/stop", { params: replyPath });
  check(stopped.data?.status === "complete", "an ended reply returned as it is");
  used.push("stopReply");

  const found = await client.GET("/api/search", { params: { query: { q: "hello" } } });
  check(found.data?.results[0]?.snippet.includes("<mark>") === true, "a hit with its snippet");
  used.push("searchMessages");

  const exported = await client.GET("/api/sessions/{session_id}/export", {
    params: { ...sessionPath, query: { format: "json" } },
  });
  // The operation answers JSON or Markdown, so its data is either; format=json asked for the object.
  const exportedSession = exported.data;
  check(typeof exportedSession === "object" && exportedSession.format === "chatstore.session", "a JSON export");
  const transcript = await client.GET("/api/sessions/{session_id}/export", {
    params: { ...sessionPath, query: { format: "markdown" } },
    parseAs: "text",
  });
  check(transcript.response.headers.get("content-type")?.startsWith("text/markdown") === true, "Markdown");
  used.push("exportSession");

  const imported = await client.POST("/api/sessions/import", { body: exportedSession });
  check(imported.data?.name === "renamed" && imported.data.message_count === 3, "the imported copy");
  used.push("importSession");

  const forked = await client.POST("/api/sessions/{session_id}/fork", {
    params: sessionPath,
    body: { message_id: again.data.id, name: "forked" },
  });
  check(forked.data?.forked_from?.session_id === session.id, "a fork that names its origin");
  check(forked.data.message_count === 2 && forked.data.current_message_id !== null, "the branch copied");
  used.push("forkSession");

  const removed = await client.DELETE("/api/messages/{message_id}", { params: { path: { message_id: again.data.id } } });
  check(removed.response.status === 204, "204 on deleting a message");
  const afterRemoval = await client.GET("/api/sessions/{session_id}", { params: sessionPath });
  check(afterRemoval.data?.session.current_message_id === question?.id, "the current branch moved up");
  used.push("deleteMessage");

  // The AI SDK's routes: the chat's id is the session's, its messages UIMessages.
  const chatPath = { path: { chat_id: randomUUID() } };
  const uiChat = await client.POST("/api/ui/chat", {
    body: {
      id: chatPath.path.chat_id,
      messages: [{ id: "typed-1", role: "user", parts: [{ type: "text", text: "hello from the AI SDK's body" }] }],
      trigger: "submit-message",
    },
    parseAs: "text",
  });
  check(uiChat.response.headers.get("x-vercel-ai-ui-message-stream") === "v1", "a UI message stream");
  check(uiChat.data?.trimEnd().endsWith("data: [DONE]") === true, "the stream's end");
  used.push("uiChat");
  const uiMessages = await client.GET("/api/ui/chat/{chat_id}/messages", { params: chatPath });
  const [asked, replied] = uiMessages.data ?? [];
  check(asked?.id === "typed-1" && replied?.role === "assistant", "the chat as UIMessages");
  check(replied.metadata.status === "complete" && replied.metadata.seq === 2, "a reply's metadata");
  used.push("uiChatMessages");
  const uiStream = await client.GET("/api/ui/chat/{chat_id}/stream", { params: chatPath, parseAs: "stream" });
  check(uiStream.response.status === 204, "nothing streaming in the chat");
  used.push("uiChatStream");

  const deleted = await client.DELETE("/api/sessions/{session_id}", { params: sessionPath });
  check(deleted.response.status === 204, "204 on delete");
  const gone = await client.GET("/api/sessions/{session_id}", { params: sessionPath });
  check(gone.error?.status_code === 404 && gone.error.detail.includes(session.id), "404 afterwards");
  used.push("deleteSession");

  console.log(JSON.stringify({ used }));
}

await main();
