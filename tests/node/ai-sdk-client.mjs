// The AI SDK's own client against a real chatstore: the framework-free Chat (AbstractChat with an
// in-memory state, as @ai-sdk/react and the others make theirs) and DefaultChatTransport pointed at
// /api/ui/chat, with no server code of the frontend's own. It sends, receives the streamed reply,
// reloads the chat as UIMessage[], regenerates, edits a message, stops mid-stream, and resumes after
// a dropped connection and after a reload, comparing what the client shows with what chatstore
// stored.
// Usage: node ai-sdk-client.mjs <base url> [api key]. Prints one JSON line per step; exits 1 on a
// mismatch.
import { readFileSync } from "node:fs"
import { AbstractChat, DefaultChatTransport } from "ai"

const [base, apiKey] = process.argv.slice(2)
const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {}
const version = JSON.parse(readFileSync(new URL("./node_modules/ai/package.json", import.meta.url))).version

class MemoryState {
  constructor(messages = []) {
    this.messages = messages
    this.status = "ready"
    this.error = undefined
  }
  pushMessage = (message) => (this.messages = this.messages.concat(message))
  popMessage = () => (this.messages = this.messages.slice(0, -1))
  replaceMessage = (index, message) => (this.messages = this.messages.with(index, message))
  snapshot = (value) => structuredClone(value)
}

class Chat extends AbstractChat {
  constructor({ messages, ...init }) {
    super({ ...init, state: new MemoryState(messages) })
  }
}

function transport({ keepGenerating = false, fetch } = {}) {
  return new DefaultChatTransport({
    api: `${base}/api/ui/chat`,
    headers,
    body: keepGenerating ? { keep_generating: true } : undefined,
    fetch,
  })
}

async function api(path) {
  const response = await fetch(`${base}${path}`, { headers })
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`)
  return response.json()
}

const loadMessages = (chatId) => api(`/api/ui/chat/${chatId}/messages`)

function check(condition, what, detail) {
  if (!condition) {
    console.log(JSON.stringify({ step: "mismatch", what, detail }))
    process.exit(1)
  }
}

function textOf(message) {
  return message.parts.filter((part) => part.type === "text").map((part) => part.text).join("")
}

// A chat as JSON with sorted keys, without what a live stream leaves undefined (providerMetadata),
// and without the metadata of user messages: a client learns it (their seq) only from a reload.
function canonical(messages) {
  const sorted = (value) =>
    Array.isArray(value)
      ? value.map(sorted)
      : value && typeof value === "object"
        ? Object.fromEntries(Object.keys(value).sort().map((key) => [key, sorted(value[key])]))
        : value
  const shown = messages.map(({ metadata, ...message }) => (message.role === "user" ? message : { ...message, metadata }))
  return JSON.stringify(sorted(JSON.parse(JSON.stringify(shown))))
}

async function storedReply(chatId) {
  const { messages } = await api(`/api/sessions/${chatId}`)
  return messages[messages.length - 1]
}

async function waitFor(condition, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    check(Date.now() < deadline, `timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function report(step, values) {
  console.log(JSON.stringify({ step, ai: version, ...values }))
}

// 1. Send, and receive the streamed reply.
const chatId = crypto.randomUUID()
const errors = []
const chat = new Chat({ id: chatId, transport: transport(), onError: (error) => errors.push(String(error)) })
await chat.sendMessage({ text: "Hello from the AI SDK" })
check(chat.status === "ready" && errors.length === 0, "the first reply streams without error", errors)
const [question, reply] = chat.messages
let stored = await storedReply(chatId)
check(reply.id === stored.id, "the reply's id is the stored reply's", [reply.id, stored.id])
check(textOf(reply) === stored.content, "the streamed text is the stored text", [textOf(reply), stored.content])
check(reply.metadata.status === "complete" && reply.metadata.seq === stored.seq, "metadata", reply.metadata)
report("streamed", { chat: chatId, reply: reply.id, text: textOf(reply), metadata: reply.metadata })

// 2. Reload the chat as UIMessage[]: the same messages the stream built.
const loaded = await loadMessages(chatId)
check(
  canonical(loaded) === canonical(chat.messages),
  "the reloaded chat is what the client built from the stream",
  { loaded, streamed: chat.messages },
)
check(loaded[0].id === question.id, "a user message keeps the id the client gave it", loaded[0].id)
report("reloaded", { messages: loaded.length, ids: loaded.map((m) => m.id) })

// 3. Regenerate: a new reply, a sibling of the old one; both stay stored.
await chat.regenerate()
const regenerated = chat.messages[1]
stored = await storedReply(chatId)
check(chat.messages.length === 2 && regenerated.id !== reply.id, "regenerate replaces the reply shown")
check(regenerated.id === stored.id && textOf(regenerated) === stored.content, "the regenerated reply is stored")
check(JSON.stringify(stored.sibling_ids) === JSON.stringify([reply.id, regenerated.id]), "siblings", stored)
report("regenerated", { reply: regenerated.id, siblings: stored.sibling_ids })

// 3b. Edit the first message: a new branch beside it, with its own reply; the old branch stays.
await chat.sendMessage({ text: "Hello, edited", messageId: question.id })
check(chat.status === "ready" && chat.messages.length === 2, "the edit and its reply", chat.messages)
const branch = (await api(`/api/sessions/${chatId}`)).messages
check(branch[0].content === "Hello, edited" && branch[0].sibling_ids.length === 2, "the edit beside the old", branch)
check(branch[1].id === chat.messages[1].id && branch[1].content === textOf(chat.messages[1]), "the edit's reply")
report("edited", { question: branch[0].id, siblings: branch[0].sibling_ids.length })

// 4. Stop mid-stream: stop() aborts the request; the reply is stored as far as it went, incomplete.
const sending = chat.sendMessage({ text: "Tell me something long" })
await waitFor(() => textOf(chat.messages[chat.messages.length - 1]).length > 0 && chat.messages.length === 4, "text")
await chat.stop()
await sending
const shown = chat.messages[3]
await waitFor(async () => (await storedReply(chatId)).status !== "in_progress", "the stopped reply to be stored")
stored = await storedReply(chatId)
check(stored.id === shown.id, "the stopped reply is the one shown", [stored.id, shown.id])
check(
  stored.status === "incomplete" && stored.finish_reason === "client_disconnected",
  "an aborted reply is stored incomplete",
  stored,
)
check(stored.content.startsWith(textOf(shown)), "what the client saw is stored", [stored.content, textOf(shown)])
report("stopped", { shown: textOf(shown).length, stored: stored.content.length, status: stored.status })

// 5. A dropped connection, then resumeStream(): the reply, kept generating, is replayed from its start.
let cut = false
function droppingFetch(url, init) {
  return fetch(url, init).then((response) => {
    if (init.method !== "POST" || cut) return response
    cut = true
    const reader = response.body.getReader()
    let pieces = 0
    const body = new ReadableStream({
      async pull(controller) {
        const { done, value } = await reader.read()
        if (done || ++pieces > 4) {
          reader.cancel().catch(() => {})
          controller.error(new TypeError("network error")) // as fetch reports a dropped connection
          return
        }
        controller.enqueue(value)
      },
    })
    return new Response(body, { status: response.status, headers: response.headers })
  })
}
const resumable = new Chat({
  id: crypto.randomUUID(),
  transport: transport({ keepGenerating: true, fetch: droppingFetch }),
  onError: () => {},
})
await resumable.sendMessage({ text: "Keep going without me" })
check(resumable.status === "error", "the dropped connection is an error to the chat", resumable.status)
const partial = textOf(resumable.messages[1])
await resumable.resumeStream()
check(resumable.status === "ready", "the resumed stream ends", resumable.status)
await waitFor(async () => (await storedReply(resumable.id)).status !== "in_progress", "the reply to end")
stored = await storedReply(resumable.id)
const resumed = resumable.messages[1]
check(resumable.messages.length === 2 && resumed.id === stored.id, "one reply after the resume", resumable.messages)
check(stored.status === "complete" && textOf(resumed) === stored.content, "the whole reply after resuming", {
  shown: textOf(resumed),
  stored: stored.content,
})
check(textOf(resumed).startsWith(partial), "the resume goes on from what was shown", partial)
report("resumed", { before: partial.length, after: textOf(resumed).length, status: stored.status })

// 6. A reload while the reply streams: the loaded messages, then resume (useChat's resume: true).
const first = new Chat({ id: crypto.randomUUID(), transport: transport({ keepGenerating: true }) })
const streaming = first.sendMessage({ text: "Reload me" })
await waitFor(() => first.messages.length === 2 && textOf(first.messages[1]).length > 0, "the reply to start")
await first.stop() // the page goes away; the reply goes on
await streaming
const reloadedMessages = await loadMessages(first.id)
check(reloadedMessages[1].metadata.status === "in_progress", "the reply still streams", reloadedMessages[1])
const reloaded = new Chat({ id: first.id, messages: reloadedMessages, transport: transport({ keepGenerating: true }) })
await reloaded.resumeStream()
stored = await storedReply(first.id)
check(reloaded.messages.length === 2, "the resumed reply replaces the loaded one", reloaded.messages)
check(textOf(reloaded.messages[1]) === stored.content && stored.status === "complete", "resumed after a reload")
check(
  canonical(await loadMessages(first.id)) === canonical(reloaded.messages),
  "the chat as stored is the chat as shown",
)
report("reloaded-and-resumed", { reply: stored.id, text: stored.content.length })

// 7. Nothing streaming: resumeStream() gets a 204 and leaves the chat as it is.
await reloaded.resumeStream()
check(reloaded.status === "ready" && reloaded.messages.length === 2, "a 204 changes nothing", reloaded.status)
report("nothing-to-resume", { status: reloaded.status })
