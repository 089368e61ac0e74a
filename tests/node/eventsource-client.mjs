// Drives the `eventsource` package (the browser's EventSource API, for Node) against a chatstore URL,
// and prints what it saw as JSON lines: {"progress": …} for each event, then {"report": …} once the
// EventSource is closed (or the timeout ran out).
//
// argv[2] is a JSON object: {url, events: [names to listen to], timeout_ms, method?, body?}.
// With a body, the requests are POSTs of it, made through the package's `fetch` option, as an
// application that streams POST /api/chat with this package does. Nothing else is changed: the
// package reconnects, and sends Last-Event-ID, as it does by itself.
import { EventSource } from 'eventsource'

const config = JSON.parse(process.argv[2])
const requests = []
const events = []

function print(line) {
  process.stdout.write(JSON.stringify(line) + '\n')
}

function recordingFetch(url, init) {
  const request = {
    method: config.body === undefined ? 'GET' : 'POST',
    last_event_id: new Headers(init.headers).get('Last-Event-ID'),
    status: null,
  }
  requests.push(request)
  const options = { ...init, method: request.method }
  if (config.body !== undefined) {
    options.headers = { ...init.headers, 'Content-Type': 'application/json' }
    options.body = JSON.stringify(config.body)
  }
  return fetch(url, options).then((response) => {
    request.status = response.status
    return response
  })
}

const source = new EventSource(config.url, { fetch: recordingFetch })
for (const name of config.events) {
  source.addEventListener(name, (event) => {
    const seen = {
      listener: name,
      type: event.type,
      // What tells a server's event from the package's own connection error.
      is_message: event instanceof MessageEvent,
      data: event instanceof MessageEvent ? JSON.parse(event.data) : null,
      id: event instanceof MessageEvent ? event.lastEventId : null,
      code: event.code ?? null,
      connection: requests.length,
    }
    events.push(seen)
    print({ progress: seen })
  })
}
// Added after the recording listeners, so that it runs after them: the package fails the
// connection for good (a 204, another status) by closing it, then firing `error`.
const finished = new Promise((resolve) => {
  const timer = setTimeout(() => resolve(true), config.timeout_ms)
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      clearTimeout(timer)
      resolve(false)
    }
  })
})

const timedOut = await finished
source.close()
print({ report: { requests, events, timed_out: timedOut, closed: !timedOut } })
