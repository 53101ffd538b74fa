/**
 * Listener traffic policy against real sockets: clients bound to distinct loopback sources
 * (127.0.0.x, ::1) through a real ProxyService to real TCP echo servers; HAProxy from Debian in
 * front with `send-proxy-v2`; a real PostgreSQL client refused with an ErrorResponse; two
 * in-process "nodes" sharing a rate limit through the heartbeat delta.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  type ListenerConfigInput,
  ListenerConfigSchema,
  type ListenerPolicyStatus,
  PolicyDeltaSchema,
} from '@pgmesh/protocol'
import pg from 'pg'
import { pino } from 'pino'
import { encodeProxyV1, encodeProxyV2 } from '../mesh-node/src/policy/proxy-protocol.js'
import { ProxyService } from '../mesh-node/src/proxy/proxy-service.js'
import { freePort, Sandbox, waitFor } from './helpers/processes.js'

const log = pino({ level: 'silent' })
const servers: Server[] = []
const services: ProxyService[] = []
const sb = new Sandbox()

before(async () => {
  await sb.init('policy')
})

after(async () => {
  for (const s of services) await s.drain()
  for (const s of servers) await new Promise((r) => s.close(r))
  await sb.cleanup()
})

interface Echo {
  readonly name: string
  readonly port: number
  /** everything each connection sent, in order of arrival */
  readonly received: string[]
}

/** A TCP server that greets with its name, then echoes; it records what each connection sent. */
async function echo(name: string): Promise<Echo> {
  const received: string[] = []
  const server = createServer((s) => {
    s.on('error', () => undefined)
    const i = received.push('') - 1
    s.write(`${name}\n`)
    s.on('data', (d) => {
      received[i] += d.toString('latin1')
      s.write(d)
    })
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { name, port: (server.address() as { port: number }).port, received }
}

type Outcome =
  | { kind: 'served'; greeting: string }
  | { kind: 'reset' }
  | { kind: 'closed' }
  | { kind: 'timeout' }

/**
 * Connects from `from` to `host:port`, sends `preface` (a PROXY header, say) then a line, and says
 * what happened: served (the line came back, after the backend's greeting), reset, closed.
 */
async function attempt(
  from: string,
  port: number,
  opts: { host?: string; preface?: Buffer; holdOpen?: boolean } = {},
): Promise<{ outcome: Outcome; socket: Socket }> {
  const host = opts.host ?? (from.includes(':') ? '::1' : '127.0.0.1')
  const socket = connect({ host, port, localAddress: from })
  const line = `hello from ${from} ${Math.random()}\n`
  const outcome = await new Promise<Outcome>((done) => {
    let data = ''
    const timer = setTimeout(() => done({ kind: 'timeout' }), 5_000)
    const finish = (o: Outcome) => {
      clearTimeout(timer)
      done(o)
    }
    socket.on('connect', () => {
      if (opts.preface !== undefined) socket.write(opts.preface)
      socket.write(line)
    })
    socket.on('data', (d) => {
      data += d.toString('latin1')
      if (data.includes(line)) finish({ kind: 'served', greeting: data.split('\n')[0]! })
    })
    socket.on('error', (e: NodeJS.ErrnoException) =>
      finish(e.code === 'ECONNRESET' ? { kind: 'reset' } : { kind: 'closed' }),
    )
    socket.on('close', () => finish({ kind: 'closed' }))
  })
  if (opts.holdOpen !== true) socket.destroy()
  return { outcome, socket }
}

async function service(
  listeners: ListenerConfigInput[],
  route: Echo[] = [],
): Promise<{ svc: ProxyService; port: (name: string) => number }> {
  const svc = new ProxyService(log, () =>
    route.map((e) => ({ id: e.name, host: '127.0.0.1', port: e.port, weight: 1, maxconn: 100 })),
  )
  services.push(svc)
  const r = await svc.apply(listeners.map((l) => ListenerConfigSchema.parse(l)))
  assert.deepEqual(r.failed, [])
  return {
    svc,
    port: (name) =>
      Number(
        svc
          .status()
          .find((l) => l.name === name)!
          .bind.split(':')
          .pop(),
      ),
  }
}

function policyOf(svc: ProxyService, name: string): ListenerPolicyStatus {
  const p = svc.status().find((l) => l.name === name)?.policy
  assert.ok(p !== undefined, `listener ${name} has a policy status`)
  return p
}

const servers1 = (e: Echo, extra: Record<string, unknown> = {}) => [
  { address: `127.0.0.1:${e.port}`, ...extra },
]

describe('listener policy over real sockets', { timeout: 120_000 }, () => {
  it('allow/deny: a denied source is reset, an allowed one served, IPv4 and IPv6; counted per rule', async () => {
    const e = await echo('db1')
    const { svc, port } = await service([
      {
        name: 'v4',
        bind: '127.0.0.1:0',
        role: 'servers',
        servers: servers1(e),
        allow: ['127.0.0.0/29'],
        deny: ['127.0.0.3'],
      },
      { name: 'v6', bind: '[::1]:0', role: 'servers', servers: servers1(e), deny: ['::1/128'] },
      { name: 'v6ok', bind: '[::1]:0', role: 'servers', servers: servers1(e), allow: ['::1'] },
    ])
    assert.equal((await attempt('127.0.0.2', port('v4'))).outcome.kind, 'served')
    assert.equal((await attempt('127.0.0.3', port('v4'))).outcome.kind, 'reset')
    assert.equal((await attempt('127.0.0.9', port('v4'))).outcome.kind, 'reset', 'outside the allow list')
    assert.equal((await attempt('::1', port('v6'))).outcome.kind, 'reset')
    assert.equal((await attempt('::1', port('v6ok'))).outcome.kind, 'served')
    const p = policyOf(svc, 'v4')
    assert.equal(p.refused.denied, 1)
    assert.equal(p.refused.notAllowed, 1)
    assert.deepEqual(
      p.rules.map((r) => [r.list, r.cidr, r.hits]),
      [
        ['allow', '127.0.0.0/29', 1],
        ['deny', '127.0.0.3', 1],
      ],
    )
    assert.equal(policyOf(svc, 'v6').refused.denied, 1)
    // the refused ones never reached the backend: one session each from the two served clients
    assert.equal(e.received.length, 2)
  })

  it('a PostgreSQL listener answers a denied client with an ErrorResponse (28000) its driver shows', async () => {
    const { port } = await service([
      { name: 'pg', bind: '127.0.0.1:0', role: 'replica', deny: ['127.0.0.1'] },
    ])
    const client = new pg.Client({
      host: '127.0.0.1',
      port: port('pg'),
      user: 'app',
      database: 'app',
      connectionTimeoutMillis: 5_000,
    })
    client.on('error', () => undefined)
    await assert.rejects(client.connect(), (e: Error & { code?: string }) => {
      assert.equal(e.code, '28000')
      assert.match(e.message, /refused by listener "pg": denied by 127\.0\.0\.1/)
      return true
    })
    await client.end().catch(() => undefined)
  })

  it('per-source limits: over the rate or over its connections a source is refused, others are not', async () => {
    const e = await echo('db1')
    const { svc, port } = await service([
      {
        name: 'rate',
        bind: '127.0.0.1:0',
        role: 'servers',
        servers: servers1(e),
        limits: { ratePerSource: 0.01, burst: 2 },
      },
      {
        name: 'conns',
        bind: '127.0.0.1:0',
        role: 'servers',
        servers: servers1(e),
        limits: { maxConnPerSource: 1 },
      },
    ])
    assert.equal((await attempt('127.0.0.4', port('rate'))).outcome.kind, 'served')
    assert.equal((await attempt('127.0.0.4', port('rate'))).outcome.kind, 'served')
    assert.equal((await attempt('127.0.0.4', port('rate'))).outcome.kind, 'reset')
    assert.equal((await attempt('127.0.0.5', port('rate'))).outcome.kind, 'served')
    const held = await attempt('127.0.0.6', port('conns'), { holdOpen: true })
    assert.equal(held.outcome.kind, 'served')
    assert.equal((await attempt('127.0.0.6', port('conns'))).outcome.kind, 'reset')
    assert.equal((await attempt('127.0.0.7', port('conns'))).outcome.kind, 'served')
    held.socket.destroy()
    await waitFor('the slot freed', 5_000, async () =>
      policyOf(svc, 'conns').connectedSources === 0 ? true : undefined,
    )
    assert.equal((await attempt('127.0.0.6', port('conns'))).outcome.kind, 'served')
    const rate = policyOf(svc, 'rate')
    assert.equal(rate.refused.overRate, 1)
    assert.deepEqual(rate.limited, [{ source: '127.0.0.4', refused: 1 }])
    assert.equal(policyOf(svc, 'conns').refused.overConnections, 1)
  })

  it('a source over its rate through one node is refused by a second node once the delta arrives', async () => {
    const e = await echo('db1')
    const l = {
      name: 'shared',
      bind: '127.0.0.1:0',
      role: 'servers' as const,
      servers: servers1(e),
      limits: { ratePerSource: 0.01, burst: 3 },
    }
    const a = await service([l])
    const b = await service([l])
    for (let i = 0; i < 3; i++)
      assert.equal((await attempt('127.0.0.11', a.port('shared'))).outcome.kind, 'served')
    assert.equal((await attempt('127.0.0.11', a.port('shared'))).outcome.kind, 'reset')
    // what the lead's heartbeat carries: A's delta, through the wire schema, merged by B
    const delta = a.svc.policy.exportDelta(performance.now())
    assert.ok(delta !== undefined)
    const wire = PolicyDeltaSchema.parse(JSON.parse(JSON.stringify(delta)))
    assert.equal(b.svc.policy.mergeRemote('a', wire, performance.now()), true)
    assert.equal((await attempt('127.0.0.11', b.port('shared'))).outcome.kind, 'reset')
    assert.equal((await attempt('127.0.0.12', b.port('shared'))).outcome.kind, 'served')
    assert.equal(policyOf(b.svc, 'shared').refused.overRate, 1)
  })

  it('sticky: a client keeps its backend when a backend is added, and moves when its own goes', async () => {
    const [d1, d2, d3] = [await echo('d1'), await echo('d2'), await echo('d3')]
    const cfg = (es: Echo[]) => ({
      name: 'sticky',
      bind: '127.0.0.1:0',
      role: 'servers' as const,
      balance: 'roundrobin' as const,
      servers: es.map((x) => ({ address: `127.0.0.1:${x.port}` })),
      stick: { on: 'source' as const, ttlMs: 60_000 },
    })
    const { svc, port } = await service([cfg([d1, d2])])
    const p = port('sticky')
    const greet = async (from: string) => {
      const r = await attempt(from, p)
      assert.equal(r.outcome.kind, 'served')
      return (r.outcome as { greeting: string }).greeting
    }
    const first = await greet('127.0.0.30')
    for (let i = 0; i < 4; i++) assert.equal(await greet('127.0.0.30'), first, 'round robin would alternate')
    // the same bind (port 0 as configured): the listener is updated in place
    assert.deepEqual((await svc.apply([ListenerConfigSchema.parse(cfg([d1, d2, d3]))])).updated, ['sticky'])
    for (let i = 0; i < 4; i++) assert.equal(await greet('127.0.0.30'), first, 'kept across a backend added')
    const rest = [d1, d2, d3].filter((x) => x.name !== first)
    assert.deepEqual((await svc.apply([ListenerConfigSchema.parse(cfg(rest))])).updated, ['sticky'])
    const moved = await greet('127.0.0.30')
    assert.notEqual(moved, first)
    assert.equal(await greet('127.0.0.30'), moved)
    const stick = policyOf(svc, 'sticky').stick!
    assert.equal(stick.entries, 1)
    const backendId = `127.0.0.1:${[d1, d2, d3].find((x) => x.name === moved)!.port}`
    assert.deepEqual(
      stick.recent.map((r) => [r.source, r.backend]),
      [['127.0.0.30', backendId]],
    )
  })

  it('PROXY protocol: trusted peers give the real client (policy and backend see it); forged or missing headers are refused', async () => {
    const e = await echo('db1')
    const { svc, port } = await service([
      {
        name: 'pp',
        bind: '127.0.0.1:0',
        role: 'servers',
        servers: servers1(e, { sendProxy: 'v1' }),
        deny: ['198.18.0.66'],
        proxyProtocol: { trusted: ['127.0.0.20'], headerTimeoutMs: 500 },
      },
    ])
    const p = port('pp')
    const header = (source: string, v2: boolean) =>
      (v2 ? encodeProxyV2 : encodeProxyV1)({ source, sourcePort: 40_000, dest: '198.18.0.1', destPort: 5432 })
    assert.equal(
      (await attempt('127.0.0.20', p, { preface: header('198.18.0.5', true) })).outcome.kind,
      'served',
    )
    assert.equal(
      (await attempt('127.0.0.20', p, { preface: header('198.18.0.6', false) })).outcome.kind,
      'served',
    )
    assert.equal(
      (await attempt('127.0.0.20', p, { preface: header('198.18.0.66', true) })).outcome.kind,
      'reset',
    )
    // the backend was told who the clients really are, and the original destination
    assert.match(
      e.received[0]!,
      /^PROXY TCP4 198\.18\.0\.5 198\.18\.0\.1 40000 5432\r\nhello from 127\.0\.0\.20/,
    )
    assert.match(e.received[1]!, /^PROXY TCP4 198\.18\.0\.6 /)
    // an untrusted peer forging a header: refused, and the header never reaches the backend
    const sessions = e.received.length
    // pgmesh resets it (SO_LINGER 0), but the client had the backend's greeting unread when the RST
    // came, and the kernel may report that as an end of stream: either, never served
    const forged = (await attempt('127.0.0.21', p, { preface: header('198.18.0.9', false) })).outcome.kind
    assert.ok(forged === 'reset' || forged === 'closed', forged)
    assert.ok(!e.received.slice(sessions).some((r) => r.includes('198.18.0.9')))
    // an untrusted peer without a header is an ordinary client
    assert.equal((await attempt('127.0.0.21', p)).outcome.kind, 'served')
    // a trusted peer that sends none
    assert.equal((await attempt('127.0.0.20', p)).outcome.kind, 'reset')
    const s = policyOf(svc, 'pp')
    assert.deepEqual(
      { denied: s.refused.denied, untrusted: s.refused.proxyUntrusted, missing: s.refused.proxyMissing },
      { denied: 1, untrusted: 1, missing: 1 },
    )
  })

  it('HAProxy in front with send-proxy-v2: pgmesh sees (and filters on) the client address', async () => {
    const e = await echo('db1')
    const { svc, port } = await service([
      {
        name: 'behind-haproxy',
        bind: '127.0.0.1:0',
        role: 'servers',
        servers: servers1(e, { sendProxy: 'v1' }),
        deny: ['127.0.0.8'],
        proxyProtocol: { trusted: ['127.0.0.1'] },
      },
    ])
    const hp = await freePort()
    const file = join(sb.dir, 'haproxy.cfg')
    await writeFile(
      file,
      [
        'global',
        '  maxconn 200',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 10s',
        '  timeout server 10s',
        'listen front',
        `  bind 127.0.0.1:${hp}`,
        `  server pgmesh 127.0.0.1:${port('behind-haproxy')} send-proxy-v2 source 127.0.0.1`,
        '',
      ].join('\n'),
    )
    sb.spawnCommand('haproxy', ['-db', '-f', file], 'haproxy.log')
    await waitFor('haproxy listening', 10_000, async () => {
      const r = await attempt('127.0.0.7', hp)
      return r.outcome.kind === 'served' ? true : undefined
    })
    const before = e.received.length
    assert.equal((await attempt('127.0.0.7', hp)).outcome.kind, 'served')
    assert.match(e.received[before]!, /^PROXY TCP4 127\.0\.0\.7 127\.0\.0\.1 \d+ \d+\r\n/)
    const denied = await attempt('127.0.0.8', hp)
    assert.notEqual(denied.outcome.kind, 'served')
    assert.equal(policyOf(svc, 'behind-haproxy').refused.denied, 1)
    assert.equal(policyOf(svc, 'behind-haproxy').refused.proxyMissing, 0)
  })

  it('a flood of distinct PROXY-provided sources: rate table, stick table and top list stay bounded', async () => {
    const e = await echo('db1')
    const { svc, port } = await service([
      {
        name: 'flood',
        bind: '127.0.0.1:0',
        role: 'servers',
        maxconn: 10_000,
        servers: servers1(e),
        limits: { ratePerSource: 0.01, burst: 1, trackedSources: 200 },
        stick: { on: 'source', maxEntries: 200 },
        proxyProtocol: { trusted: ['127.0.0.20'] },
      },
    ])
    const p = port('flood')
    const heapBefore = process.memoryUsage().heapUsed
    const N = 3_000
    let served = 0
    for (let i = 0; i < N; i += 50) {
      const batch = []
      for (let j = i; j < Math.min(N, i + 50); j++) {
        const source = `198.18.${(j >> 8) & 255}.${j & 255}`
        batch.push(
          attempt('127.0.0.20', p, {
            preface: encodeProxyV2({ source, sourcePort: 1000, dest: '198.18.0.1', destPort: 1 }),
          }),
        )
      }
      for (const r of await Promise.all(batch)) if (r.outcome.kind === 'served') served++
    }
    assert.equal(served, N, 'each source once: within its burst')
    const s = policyOf(svc, 'flood')
    assert.ok(s.trackedSources <= 200, `${s.trackedSources} rate buckets`)
    assert.ok(s.stick!.entries <= 200, `${s.stick!.entries} sticky entries`)
    assert.ok(s.limited.length <= 10)
    await waitFor('every slot released', 10_000, async () =>
      policyOf(svc, 'flood').connectedSources === 0 ? true : undefined,
    )
    // a generous bound: 3,000 sources kept in full would not fit here, the bounded tables do
    const grown = process.memoryUsage().heapUsed - heapBefore
    assert.ok(grown < 64 * 1024 * 1024, `heap grew ${grown} bytes`)
    const delta = svc.policy.exportDelta(performance.now())
    assert.equal(PolicyDeltaSchema.safeParse(delta).success, true)
  })
})
