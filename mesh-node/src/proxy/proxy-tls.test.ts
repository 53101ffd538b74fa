import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { ListenerConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { makeCa, makeServerCert, type TestCert } from '../tls/test-certs.js'
import { ProxyService } from './proxy-service.js'

let dir: string
let ca: TestCert
let cert: TestCert
const DAY = 86_400_000

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgmesh-proxy-tls-'))
  ca = await makeCa(dir)
  cert = await makeServerCert(dir, ca, 'edge')
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

function capture() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  return { lines, log: pino({ level: 'info' }, stream) }
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

const listener = async (tls: Record<string, unknown>) =>
  ListenerConfigSchema.parse({
    name: 'edge',
    bind: `127.0.0.1:${await freePort()}`,
    role: 'primary',
    tls: { mode: 'terminate', certFile: cert.cert, keyFile: cert.key, ...tls },
  })

describe('ProxyService TLS material', () => {
  it('shows the certificate (never the key), warns inside the expiry window, keeps the old one on a bad reload', async () => {
    const { lines, log } = capture()
    const proxy = new ProxyService(log)
    try {
      const r = await proxy.apply([await listener({ expiryWarningMs: 365 * DAY })])
      assert.deepEqual(r.failed, [])
      const st = proxy.status()[0]!.tls!
      assert.equal(st.mode, 'terminate')
      assert.ok(st.certificate)
      assert.equal(st.certificate.expiryWarning, true)
      assert.match(st.certificate.subject, /CN=edge/)
      assert.ok(
        lines.some((l) => /certificate of listener edge expires in 1 day/.test(l)),
        lines.join(''),
      )

      const keyPem = await readFile(cert.key, 'utf8')
      const keyBody = keyPem.split('\n')[1]!
      const before = st.certificate.fingerprint256
      await writeFile(cert.key, 'not a key\n')
      const failed = await proxy.reloadTls()
      assert.equal(failed.length, 1)
      assert.match(failed[0]!.error, /^TLS_MATERIAL_INVALID: /)
      assert.equal(
        proxy.status()[0]!.tls!.certificate!.fingerprint256,
        before,
        'the previous certificate stays',
      )
      await writeFile(cert.key, keyPem, { mode: 0o600 })
      assert.deepEqual(await proxy.reloadTls(), [])
      assert.ok(!JSON.stringify(proxy.status()).includes(keyBody), 'key material in the status')
      assert.ok(!lines.join('').includes(keyBody), 'key material in the log')
    } finally {
      await proxy.drain()
    }
  })

  it('no warning outside the window; a listener whose files are missing does not start', async () => {
    const { lines, log } = capture()
    const proxy = new ProxyService(log)
    try {
      await proxy.apply([await listener({ expiryWarningMs: 0 })])
      assert.equal(proxy.status()[0]!.tls!.certificate!.expiryWarning, false)
      assert.ok(!lines.some((l) => /expires in/.test(l)))
      assert.equal(proxy.certificateExpiries().length, 1)
      const missing = await proxy.apply([await listener({ certFile: join(dir, 'nope.crt') })])
      assert.equal(missing.failed.length, 1)
      assert.match(
        missing.failed[0]!.error,
        /TLS_MATERIAL_INVALID: cannot read certificate .*nope\.crt: ENOENT/,
      )
    } finally {
      await proxy.drain()
    }
  })

  it('the schema refuses terminate without files and verify-full without a CA', () => {
    const base = { name: 'x', bind: '127.0.0.1:1', role: 'primary' }
    assert.equal(ListenerConfigSchema.safeParse({ ...base, tls: { mode: 'terminate' } }).success, false)
    assert.equal(
      ListenerConfigSchema.safeParse({
        ...base,
        tls: { mode: 'terminate', certFile: 'a', keyFile: 'b', backend: 'verify-full' },
      }).success,
      false,
    )
    assert.equal(
      ListenerConfigSchema.safeParse({ ...base, tls: { mode: 'passthrough', backend: 'verify-full' } })
        .success,
      false,
    )
    assert.equal(
      ListenerConfigSchema.safeParse({
        ...base,
        role: 'servers',
        servers: [{ address: '127.0.0.1:2' }],
        applicationNameAddHost: true,
      }).success,
      false,
    )
  })
})
