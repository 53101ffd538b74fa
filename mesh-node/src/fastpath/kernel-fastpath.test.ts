import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { CommandResult } from '../run-command.js'
import { FakeClock } from '../testing/fake-clock.js'
import { countByBackend, KernelFastPath } from './kernel-fastpath.js'
import type { KernelRoute } from './nft-rules.js'

const ok = (stdout = '', stderr = ''): CommandResult => ({
  code: 0,
  signal: null,
  stdout,
  stderr,
  timedOut: false,
  aborted: false,
  spawnError: null,
})
const missing: CommandResult = {
  code: null,
  signal: null,
  stdout: '',
  stderr: '',
  timedOut: false,
  aborted: false,
  spawnError: 'spawn nft ENOENT',
}

function logger(lines: Record<string, unknown>[]) {
  return pino(
    { level: 'debug' },
    { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
  )
}

const route = (targets: KernelRoute['targets']): KernelRoute => ({
  listener: 'write',
  host: '127.0.0.1',
  port: 6432,
  balance: 'roundrobin',
  targets,
})

describe('KernelFastPath', () => {
  it('without nftables: one warning, every kernel listener on the Node path', async () => {
    const lines: Record<string, unknown>[] = []
    const calls: string[][] = []
    const f = new KernelFastPath({
      node: 'n1',
      clock: new FakeClock(),
      logger: logger(lines),
      routes: () => [route([{ id: 'db1', host: '127.0.0.1', port: 5432, weight: 1 }])],
      exec: async (argv) => {
        calls.push([...argv])
        return missing
      },
    })
    await f.start()
    f.sync()
    assert.equal(f.status().available, false)
    assert.equal(f.status().listeners[0]?.path, 'node')
    assert.equal(lines.filter((l) => l.code === 'FASTPATH_UNAVAILABLE').length, 1)
    assert.equal(calls.length, 1, 'no rule is attempted once nft is known missing')
    await f.stop()
  })

  it('replaces the rules only when a route changed, and cuts flows once when a backend turns bad', async () => {
    const calls: string[][] = []
    let targets: KernelRoute['targets'] = [{ id: 'db1', host: '127.0.0.1', port: 5432, weight: 1 }]
    /** a fast path over a stand-in nft and a conntrack that deletes 2 flows per call */
    const fastPath = () =>
      new KernelFastPath({
        node: 'n1',
        clock: new FakeClock(),
        logger: logger([]),
        routes: () => [route(targets)],
        exec: async (argv) => {
          calls.push([...argv])
          return argv[0] === 'conntrack'
            ? ok('', 'conntrack v1.4.7: 2 flow entries have been deleted.\n')
            : ok()
        },
      })
    const f = fastPath()
    await f.start()
    f.sync()
    f.sync()
    await f.stop().catch(() => undefined)
    const nftUpdates = () => calls.filter((c) => c[0] === 'nft' && c[1]?.includes('add rule')).length
    // start (remove stale) + one update; the second sync changed nothing
    assert.equal(nftUpdates(), 1)

    const g = fastPath()
    calls.length = 0
    await g.start()
    targets = null
    g.sync()
    const listeners = [{ name: 'write', dataPath: 'kernel' }] as never
    const backends = new Map([['db1', { host: '127.0.0.1', port: 5432 }]])
    g.cut(listeners, backends, () => 'demoted')
    g.cut(listeners, backends, () => 'demoted')
    await g.settled()
    await g.stop()
    assert.equal(calls.filter((c) => c[0] === 'conntrack').length, 1, 'edge-triggered: one cut per pair')
    assert.equal(g.status().cuts, 2)
    assert.equal(g.status().listeners[0]?.path, 'node', 'no target: the Node listener takes new connections')
  })

  it('a sync while the start-up probe of nft runs still installs the rules once nft answers', async () => {
    const calls: string[][] = []
    let answerProbe: (r: CommandResult) => void = () => undefined
    const probeAnswer = new Promise<CommandResult>((r) => (answerProbe = r))
    const f = new KernelFastPath({
      node: 'n1',
      clock: new FakeClock(),
      logger: logger([]),
      routes: () => [route([{ id: 'db1', host: '127.0.0.1', port: 5432, weight: 1 }])],
      exec: (argv) => {
        calls.push([...argv])
        // the first call is the probe (remove a stale table): it answers late
        return calls.length === 1 ? probeAnswer : Promise.resolve(ok())
      },
    })
    const started = f.start()
    // routing reroutes (a database check came in) before nft has answered
    f.sync()
    await new Promise((r) => setImmediate(r))
    answerProbe(ok())
    await started
    f.sync()
    await f.settled()
    const updates = calls.filter((c) => c[0] === 'nft' && c[1]?.includes('add rule'))
    assert.equal(updates.length, 1, 'the rules reached the kernel')
    assert.equal(f.status().listeners[0]?.path, 'kernel')
    await f.stop()
  })

  it('counts established flows per backend from conntrack', () => {
    const text = [
      'tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=50000 dport=6432 src=127.0.0.1 dst=127.0.0.1 sport=5432 dport=50000 [ASSURED] mark=0 use=1',
      'tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=50001 dport=6432 src=127.0.0.1 dst=127.0.0.1 sport=5433 dport=50001 [ASSURED] mark=0 use=1',
      'tcp      6 110 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=50002 dport=6432 src=127.0.0.1 dst=127.0.0.1 sport=5432 dport=50002 [ASSURED] mark=0 use=1',
    ].join('\n')
    const t = [
      { id: 'db1', host: '127.0.0.1', port: 5432 },
      { id: 'db2', host: '127.0.0.1', port: 5433 },
    ]
    assert.deepEqual(countByBackend(text, t), { db1: 1, db2: 1 })
  })
})
