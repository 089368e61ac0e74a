// Reads UI message streams as the AI SDK's DefaultChatTransport does: each body through the
// package's own parseJsonEventStream with its uiMessageChunkSchema. Input on stdin: a JSON array of
// raw text/event-stream bodies. Output: for each, the chunks it parsed, or the errors.
import { parseJsonEventStream, uiMessageChunkSchema } from "ai"

const input = await new Promise((resolve) => {
  let text = ""
  process.stdin.setEncoding("utf8")
  process.stdin.on("data", (piece) => (text += piece))
  process.stdin.on("end", () => resolve(text))
})

const results = []
for (const body of JSON.parse(input)) {
  const stream = new Blob([body]).stream()
  const reader = parseJsonEventStream({ stream, schema: uiMessageChunkSchema }).getReader()
  const chunks = []
  const errors = []
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    if (value.success) chunks.push(value.value)
    else errors.push(String(value.error))
  }
  results.push({ chunks, errors })
}
process.stdout.write(JSON.stringify(results))
