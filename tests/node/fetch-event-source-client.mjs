// Drives @microsoft/fetch-event-source against a chatstore URL, and prints what it saw as JSON
// lines: {"progress": …} for each message, then {"report": …} once fetchEventSource settles (or
// the timeout ran out).
//
// argv[2] is a JSON object: {url, method, body?, headers?, timeout_ms, stop_on_204?}.
// The library retries by itself after a network error, with the same body and the last event id
// in a Last-Event-ID header; its default onopen is kept unless stop_on_204 asks for the one the
// README shows, which ends on a 204.

// The library is written for browsers: it calls window.setTimeout and document.*EventListener.
// Node has the same timers on globalThis; openWhenHidden keeps it from watching visibility.
globalThis.window ??= globalThis
globalThis.document ??= Object.assign(new EventTarget(), { hidden: false })

const { fetchEventSource } = await import('@microsoft/fetch-event-source')

const config = JSON.parse(process.argv[2])
const requests = []
const messages = []
const errors = []
let closed = false

function print(line) {
  process.stdout.write(JSON.stringify(line) + '\n')
}

async function recordingFetch(url, init) {
  const request = { last_event_id: new Headers(init.headers).get('Last-Event-ID'), status: null }
  requests.push(request)
  const response = await fetch(url, init)
  request.status = response.status
  return response
}

// The onopen and onerror of the README's example.
class ReplyEnded extends Error {}

const options = {
  method: config.method,
  headers: { 'Content-Type': 'application/json', ...config.headers },
  body: config.body === undefined ? undefined : JSON.stringify(config.body),
  openWhenHidden: true,
  fetch: recordingFetch,
  onmessage(message) {
    const seen = {
      type: message.event,
      id: message.id,
      data: JSON.parse(message.data),
      connection: requests.length,
    }
    messages.push(seen)
    print({ progress: seen })
  },
  onclose() {
    closed = true
  },
  onerror(error) {
    errors.push(String(error))
    if (error instanceof ReplyEnded) throw error // ends fetchEventSource; other errors are retried
  },
}
if (config.stop_on_204) {
  options.onopen = async (response) => {
    if (response.status === 204) throw new ReplyEnded() // nothing more will come
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
  }
}

const abort = new AbortController()
const timer = setTimeout(() => abort.abort(), config.timeout_ms)
let outcome = 'resolved'
try {
  await fetchEventSource(config.url, { ...options, signal: abort.signal })
} catch (error) {
  outcome = error instanceof ReplyEnded ? 'reply_ended' : `rejected: ${error}`
}
clearTimeout(timer)
print({ report: { requests, messages, errors, closed, outcome, timed_out: abort.signal.aborted } })
