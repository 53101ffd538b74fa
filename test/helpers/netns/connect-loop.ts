// The client of the maintenance test: opens a new TCP connection to HOST:PORT every INTERVAL ms
// (bounded by COUNT attempts), one at a time, waits up to TIMEOUT ms for the answer, and prints one
// JSON line per attempt: {"t": epoch ms, "node": answering host or null, "ms": duration, "error"?}.
// usage: connect-loop.ts HOST PORT INTERVAL_MS COUNT TIMEOUT_MS
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

const [host = '198.18.0.100', port = '6000', every = '20', count = '1500', timeout = '3000'] =
  process.argv.slice(2)

function attempt(): Promise<{ node: string | null; error?: string }> {
  return new Promise((done) => {
    let data = ''
    const s = connect({ host, port: Number(port) })
    const timer = setTimeout(() => finish({ node: null, error: 'timeout' }), Number(timeout))
    const finish = (v: { node: string | null; error?: string }) => {
      clearTimeout(timer)
      s.destroy()
      done(v)
    }
    s.setEncoding('utf8')
    s.on('data', (d) => {
      data += d
    })
    s.on('end', () => finish(data.trim() === '' ? { node: null, error: 'empty' } : { node: data.trim() }))
    s.on('error', (e: NodeJS.ErrnoException) => finish({ node: null, error: e.code ?? e.message }))
  })
}

for (let i = 0; i < Number(count); i++) {
  const t = Date.now()
  const r = await attempt()
  process.stdout.write(`${JSON.stringify({ t, ms: Date.now() - t, ...r })}\n`)
  await sleep(Math.max(0, Number(every) - (Date.now() - t)))
}
