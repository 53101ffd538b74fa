import assert from 'node:assert/strict'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { type TrackedCheck, TrackedCheckSchema } from '@pgmesh/protocol'
import { runTcpCheck } from './run-tcp.js'

let server: Server
let accepted = 0
before(async () => {
  server = createServer((s) => {
    accepted++
    s.on('error', () => undefined)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})
after(() => new Promise((resolve) => server.close(resolve)))

const tcp = (port: number) =>
  TrackedCheckSchema.parse({
    name: 't',
    kind: 'tcp',
    host: '127.0.0.1',
    port,
    timeoutMs: 500,
    intervalMs: 1000,
  }) as Extract<TrackedCheck, { kind: 'tcp' }>
const never = new AbortController().signal

describe('tcp check', () => {
  it('passes against a listening port and closes the connection', async () => {
    const port = (server.address() as AddressInfo).port
    assert.deepEqual(await runTcpCheck(tcp(port), never), { ok: true })
    const deadline = Date.now() + 1000
    while (accepted === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    const open = await new Promise<number>((resolve, reject) =>
      server.getConnections((e, n) => (e ? reject(e) : resolve(n))),
    )
    assert.ok(open <= 1)
  })

  it('fails against a closed port', async () => {
    const other = createServer()
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    const port = (other.address() as AddressInfo).port
    await new Promise((resolve) => other.close(resolve))
    const r = await runTcpCheck(tcp(port), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /ECONNREFUSED/)
  })

  it('stops at once when aborted', async () => {
    const ac = new AbortController()
    ac.abort()
    assert.deepEqual(await runTcpCheck(tcp(1), ac.signal), { ok: false, error: 'aborted' })
  })
})
