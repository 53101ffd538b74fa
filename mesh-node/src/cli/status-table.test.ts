import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ClusterStatus } from '@pgmesh/protocol'
import { parseCommandLine } from './args.js'
import { sampleElection } from './args.test.js'
import { formatStatus, isUnsafeForTerminal, jsonForTerminal, sanitizeForTerminal } from './status-table.js'

const ESC = '\u001b'

/** A status whose peer-supplied strings carry terminal escapes and control characters. */
function hostileStatus(): ClusterStatus {
  return {
    cluster: `c${ESC}]0;owned${'\u0007'}`,
    version: '1.0.0',
    self: 'n1',
    generatedAt: new Date(0).toISOString(),
    members: [
      {
        id: `n2${ESC}[2J${ESC}[H`,
        peerId: `p2\r\u009b31m`,
        self: false,
        state: 'alive',
        priority: 100,
        incarnation: 1,
        addrs: [],
        api: `127.0.0.1:1${'\u202e'}`,
        lastHeardAt: null,
        lastHeardAgoMs: 10,
        stateSince: new Date(0).toISOString(),
        configVersion: 0,
        maintenance: { since: new Date(0).toISOString(), reason: `upgrade\n${ESC}[31mFAKE MASTER: n9` },
        election: {
          term: 1,
          effectivePriority: 100,
          eligible: true,
          holder: false,
          leader: null,
          failingChecks: [`chk${ESC}[8m`],
        },
      },
    ],
    counts: { alive: 1, suspect: 0, dead: 0, left: 0 },
    gossip: { connectedPeers: 1, topicPeers: 1, messagesIn: 1, messagesOut: 1, dropped: { [`X${ESC}`]: 1 } },
    election: { ...sampleElection, master: `n2${ESC}[1A` },
    removed: [{ id: `gone${'\u0008'}`, incarnation: 1, removedAt: new Date(0).toISOString() }],
    listeners: [],
  }
}

describe('pgmesh status output', () => {
  it('shows control characters from peers as visible escapes, never raw', () => {
    const out = formatStatus(hostileStatus())
    // the only control character left is the table's own newline
    const unsafe = [...out].filter((c) => c !== '\n' && isUnsafeForTerminal(c.codePointAt(0)!))
    assert.deepEqual(unsafe, [])
    assert.match(out, /n2\\x1b\[2J\\x1b\[H/)
    assert.match(out, /cluster c\\x1b\]0;owned\\x07/)
    assert.match(out, /upgrade\\x0a\\x1b\[31mFAKE MASTER: n9/, 'a reason cannot start a line of its own')
    assert.match(out, /127\.0\.0\.1:1\\u202e/)
    assert.match(out, /p2\\x0d\\x9b31m/)
    assert.match(out, /MASTER: n2\\x1b\[1A/)
    assert.match(out, /gone\\x08/)
  })

  it('--json keeps the same value, with C1 and bidi characters escaped', () => {
    const status = hostileStatus()
    const text = jsonForTerminal(status)
    const unsafe = [...text].filter((c) => c !== '\n' && isUnsafeForTerminal(c.codePointAt(0)!))
    assert.deepEqual(unsafe, [])
    assert.deepEqual(JSON.parse(text), status)
  })

  it('leaves ordinary text alone', () => {
    assert.equal(sanitizeForTerminal('n1 (198.18.0.1:7947) — ünïcode ✓'), 'n1 (198.18.0.1:7947) — ünïcode ✓')
  })

  it('takes --token-file', () => {
    const r = parseCommandLine(['status', '--api', '127.0.0.1:9000', '--token-file', '/etc/pgmesh/op.token'])
    assert.ok(r.ok)
    assert.deepEqual(r.command, {
      kind: 'status',
      api: 'http://127.0.0.1:9000',
      json: false,
      tokenFile: '/etc/pgmesh/op.token',
    })
  })
})
