import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { CommandResult } from '../run-command.js'
import { createSynBlock, synBlockScript, synBlockTable, synUnblockScript } from './syn-block.js'

const ok: CommandResult = {
  code: 0,
  signal: null,
  stdout: '',
  stderr: '',
  timedOut: false,
  aborted: false,
  spawnError: null,
}
const missing: CommandResult = { ...ok, code: null, spawnError: 'spawn nft ENOENT' }
const refused: CommandResult = {
  ...ok,
  code: 1,
  stderr: 'Error: Could not process rule: Operation not permitted',
}

/** A block whose nft answers from `answers` in turn (the last one repeats); records each batch. */
function rig(...answers: CommandResult[]) {
  const batches: string[] = []
  const records: Record<string, unknown>[] = []
  const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) })
  const block = createSynBlock({
    iface: 'eth0',
    node: 'n1',
    nft: '/usr/sbin/nft',
    timeoutMs: 5000,
    logger,
    exec: async (argv) => {
      assert.equal(argv[0], '/usr/sbin/nft')
      assert.equal(argv.length, 2, 'one batch, applied atomically')
      batches.push(argv[1]!)
      return answers.length > 1 ? answers.shift()! : answers[0]!
    },
  })
  return { block, batches, records }
}

describe('SYN block (nftables)', () => {
  it('names a table per interface and node, with characters nft takes', () => {
    assert.match(synBlockTable('eth0', 'n1'), /^pgmesh_vip_eth0_[0-9a-f]{8}$/)
    assert.match(synBlockTable('bond0.100', 'n1'), /^pgmesh_vip_bond0_100_[0-9a-f]{8}$/)
    assert.notEqual(synBlockTable('eth0', 'n1'), synBlockTable('eth0', 'n2'))
  })

  it('drops only SYNs without ACK to the VIP, IPv4 or IPv6, in a fresh table', () => {
    const v4 = synBlockScript('t', '198.18.0.100', 'ipv4')
    assert.match(v4, /^add table inet t; delete table inet t; add table inet t; /)
    assert.match(v4, /hook input priority filter; policy accept;/)
    assert.match(
      v4,
      /add rule inet t input ip daddr 198\.18\.0\.100 tcp flags & \(syn \| ack\) == syn counter drop$/,
    )
    assert.match(synBlockScript('t', 'fd00::100', 'ipv6'), /input ip6 daddr fd00::100 tcp flags/)
    assert.equal(synUnblockScript('t'), 'add table inet t; delete table inet t')
  })

  it('adds, then removes only what it added; remove(true) clears a leftover', async () => {
    const { block, batches } = rig(ok)
    await block.remove()
    assert.deepEqual(batches, [], 'nothing added, nothing to remove')
    assert.equal(await block.add('198.18.0.100', 'ipv4'), true)
    assert.equal(block.active, true)
    assert.equal(batches[0], synBlockScript(block.table, '198.18.0.100', 'ipv4'))
    await block.remove()
    assert.equal(block.active, false)
    assert.equal(batches[1], synUnblockScript(block.table))
    await block.remove(true)
    assert.equal(batches.length, 3)
  })

  it('without nft: false, one warning with its code, and no error at start', async () => {
    const { block, records } = rig(missing)
    await block.remove(true)
    assert.equal(await block.add('198.18.0.100', 'ipv4'), false)
    assert.equal(await block.add('198.18.0.100', 'ipv4'), false)
    assert.equal(block.active, false)
    const warns = records.filter((r) => r.level === 40)
    assert.equal(warns.length, 1)
    assert.equal(warns[0]?.code, 'VIP_SYN_BLOCK_FAILED')
    assert.match(String(warns[0]?.reason), /could not start: spawn nft ENOENT/)
    assert.ok(!records.some((r) => r.level === 50))
  })

  it('a refused rule is warned once; a table it cannot remove is an error naming the fix', async () => {
    const { block, records } = rig(refused, ok, refused)
    assert.equal(await block.add('198.18.0.100', 'ipv4'), false)
    assert.equal(records.find((r) => r.level === 40)?.code, 'VIP_SYN_BLOCK_FAILED')
    assert.equal(await block.add('198.18.0.100', 'ipv4'), true)
    await block.remove()
    const error = records.find((r) => r.level === 50)
    assert.equal(error?.code, 'VIP_SYN_BLOCK_FAILED')
    assert.match(String(error?.msg), /nft delete table inet pgmesh_vip_eth0_/)
    assert.equal(block.active, true, 'still there: a later remove() tries again')
  })
})
