// The client: connects to HOST:PORT every INTERVAL ms (bounded by COUNT attempts) and prints one
// JSON line per attempt: {"t": epoch ms, "node": answering host or null}.
// usage: probe-vip.ts HOST PORT INTERVAL_MS COUNT
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

const [host = '198.18.0.100', port = '5000', every = '50', count = '6000'] = process.argv.slice(2)

function probe(): Promise<string | null> {
  return new Promise((done) => {
    let data = ''
    // PGMESH_PROBE_TIMEOUT_MS: how long one probe waits for an answer (a SYN a fenced host dropped)
    const s = connect({
      host,
      port: Number(port),
      timeout: Number(process.env.PGMESH_PROBE_TIMEOUT_MS ?? '200'),
    })
    const finish = (v: string | null) => {
      s.destroy()
      done(v)
    }
    s.setEncoding('utf8')
    s.on('data', (d) => {
      data += d
    })
    s.on('end', () => finish(data.trim() || null))
    s.on('timeout', () => finish(null))
    s.on('error', () => finish(null))
  })
}

for (let i = 0; i < Number(count); i++) {
  const t = Date.now()
  const node = await probe()
  process.stdout.write(`${JSON.stringify({ t, node })}\n`)
  await sleep(Math.max(0, Number(every) - (Date.now() - t)))
}
