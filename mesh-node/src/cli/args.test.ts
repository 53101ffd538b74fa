import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ClusterStatus } from '@pgmesh/protocol'
import { parseCommandLine } from './args.js'
import { formatStatus } from './status-table.js'

describe('command line', () => {
  it('parses start with repeatable --join', () => {
    const r = parseCommandLine([
      'start',
      '--id',
      'n1',
      '--join',
      'a:1',
      '--join',
      'b:2',
      '--insecure-dev',
      '--priority',
      '110',
    ])
    assert.ok(r.ok)
    assert.deepEqual(r.command, {
      kind: 'start',
      config: undefined,
      flags: { id: 'n1', join: ['a:1', 'b:2'], insecureDev: true, priority: '110' },
    })
  })

  it('normalises the status API URL', () => {
    const r = parseCommandLine(['status', '--api', '127.0.0.1:9000/', '--json'])
    assert.ok(r.ok)
    assert.deepEqual(r.command, { kind: 'status', api: 'http://127.0.0.1:9000', json: true })
  })

  it('returns usage errors as values', () => {
    for (const argv of [['frobnicate'], ['start', '--bogus'], ['start', 'extra'], ['status', '--api']]) {
      const r = parseCommandLine(argv)
      assert.equal(r.ok, false, argv.join(' '))
    }
    assert.deepEqual(parseCommandLine([]), { ok: true, command: { kind: 'help' } })
  })

  it('formats the status as a table', () => {
    const s: ClusterStatus = {
      cluster: 'c',
      version: '1.2.3',
      self: 'n1',
      generatedAt: new Date(0).toISOString(),
      members: [
        {
          id: 'n1',
          peerId: 'p1',
          self: true,
          state: 'alive',
          priority: 110,
          incarnation: 4,
          addrs: [],
          api: '127.0.0.1:7947',
          lastHeardAt: null,
          lastHeardAgoMs: null,
          stateSince: new Date(0).toISOString(),
          configVersion: 0,
          maintenance: null,
          election: {
            term: 3,
            effectivePriority: 110,
            eligible: true,
            holder: true,
            leader: 'n1',
            failingChecks: [],
          },
        },
        {
          id: 'n2',
          peerId: 'p2',
          self: false,
          state: 'dead',
          priority: 100,
          incarnation: 2,
          addrs: [],
          api: null,
          lastHeardAt: new Date(0).toISOString(),
          lastHeardAgoMs: 4200,
          stateSince: new Date(0).toISOString(),
          configVersion: 0,
          maintenance: null,
          election: null,
        },
      ],
      counts: { alive: 1, suspect: 0, dead: 1, left: 0 },
      gossip: {
        connectedPeers: 0,
        topicPeers: 0,
        messagesIn: 5,
        messagesOut: 6,
        dropped: { GOSSIP_NOT_JSON: 2 },
      },
      election: sampleElection,
      removed: [],
      listeners: [
        {
          name: 'write',
          bind: '0.0.0.0:5000',
          role: 'servers',
          balance: 'first',
          active: 3,
          total: 40,
          queued: 1,
          refused: 0,
          queueTimeouts: 2,
          connectErrors: 0,
          cut: 5,
          backends: [],
        },
      ],
    }
    const out = formatStatus(s)
    assert.match(out, /1 alive, 0 suspect, 1 dead, 0 left/)
    assert.match(out, /MASTER: n1 \(term 3, VIP 198\.18\.0\.100\/24\)/)
    assert.match(out, /n1 \*\s+alive\s+MASTER\s+110\s+-\s+4\s+self\s+127\.0\.0\.1:7947\s+p1/)
    assert.match(out, /n2\s+dead\s+-\s+100\s+-\s+2\s+4\.2s\s+-\s+p2/)
    assert.match(out, /dropped GOSSIP_NOT_JSON=2/)
    assert.match(out, /write\s+0\.0\.0\.0:5000\s+servers\s+first\s+3\s+40\s+1\s+0\s+2\s+5\s+-/)
  })
})

/** An election view for fixtures. */
export const sampleElection: ClusterStatus['election'] = {
  quorum: 'majority',
  state: 'MASTER',
  role: 'leader',
  term: 3,
  master: 'n1',
  vipHolders: ['n1'],
  vip: { address: '198.18.0.100/24', driver: 'none', held: true },
  leaseRemainingMs: 200,
  priority: 110,
  effectivePriority: 110,
  eligible: true,
  failingChecks: [],
  checks: [],
  voters: { voters: ['n1', 'n2'], prev: null },
  masterChanges: 1,
}
