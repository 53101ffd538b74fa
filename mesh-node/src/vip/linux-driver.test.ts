import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type VipConfigInput, VipConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { parseAddrShow } from './linux-driver.js'
import type { VipDriver } from './types.js'
import { createVipDriver } from './vip-driver.js'

/**
 * The real driver in a network namespace of its own: veth `d0` (the VIP's interface) whose peer
 * `d0p` sits in a second namespace, a "neighbour" that learns the VIP's MAC from gratuitous ARP.
 * Only 198.18.0.0/15 (benchmarking) addresses are used.
 */
const root = process.getuid?.() === 0
const suffix = randomBytes(4).toString('hex')
const NS = `pgmesh-vip-${suffix}`
const PEER = `pgmesh-vipp-${suffix}`
const VIP = '198.18.0.100/24'
let dir = ''
const drivers: VipDriver[] = []

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', timeout: 5000 })
const addrs = () => parseAddrShow(ip('-n', NS, '-o', 'addr', 'show', 'dev', 'd0'))
const silent = pino({ level: 'silent' })

function driver(config: Partial<VipConfigInput> = {}, iface = 'd0', logger = silent): VipDriver {
  const d = createVipDriver({
    config: VipConfigSchema.parse({ driver: 'linux', address: VIP, garpCount: 0, ...config }),
    iface,
    node: 'n1',
    logger,
    netns: NS,
  })
  drivers.push(d)
  return d
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('linux VIP driver (network namespace)', { skip: root ? false : 'needs root for ip netns' }, () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgmesh-linux-vip-'))
    ip('netns', 'add', NS)
    ip('netns', 'add', PEER)
    ip('-n', NS, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p')
    ip('-n', NS, 'link', 'set', 'd0p', 'netns', PEER)
    ip('-n', NS, 'link', 'set', 'd0', 'up')
    ip('-n', PEER, 'link', 'set', 'd0p', 'up')
    ip('-n', PEER, 'addr', 'add', '198.18.0.1/24', 'dev', 'd0p')
    // let the neighbour create entries from gratuitous ARP
    execFileSync(
      'ip',
      ['netns', 'exec', PEER, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/d0p/arp_accept'],
      {
        timeout: 5000,
      },
    )
  })

  after(async () => {
    try {
      await Promise.all(drivers.map((d) => d.stop()))
    } finally {
      for (const ns of [NS, PEER]) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { timeout: 5000, stdio: 'ignore' })
        } catch {
          // not created
        }
      }
      if (dir !== '') rmSync(dir, { recursive: true, force: true })
    }
  })

  it('start() removes a VIP a killed predecessor left, and is idempotent', async () => {
    ip('-n', NS, 'addr', 'add', VIP, 'dev', 'd0')
    assert.ok(addrs().includes(VIP))
    const d = driver()
    await d.start()
    assert.ok(!addrs().includes(VIP))
    await d.start()
    assert.equal(d.holds(), false)
  })

  it('MASTER adds the address, any other state removes it; both idempotent', async () => {
    const d = driver()
    await d.start()
    await d.enter('MASTER')
    assert.ok(addrs().includes(VIP))
    assert.equal(d.holds(), true)
    await d.enter('MASTER')
    assert.equal(addrs().filter((a) => a === VIP).length, 1)
    await d.enter('BACKUP')
    assert.ok(!addrs().includes(VIP))
    assert.equal(d.holds(), false)
    await d.enter('BACKUP')
    await d.enter('FAULT')
    assert.ok(!addrs().includes(VIP))
    // an address someone else added is removed too
    ip('-n', NS, 'addr', 'add', VIP, 'dev', 'd0')
    await d.enter('STOP')
    assert.ok(!addrs().includes(VIP))
  })

  it('serializes enter() calls: the last one wins', async () => {
    const d = driver()
    const all = [d.enter('MASTER'), d.enter('BACKUP'), d.enter('MASTER'), d.enter('FAULT'), d.enter('MASTER')]
    await Promise.all(all)
    assert.ok(addrs().includes(VIP))
    assert.equal(d.holds(), true)
    await Promise.all([d.enter('BACKUP'), d.enter('MASTER'), d.enter('BACKUP')])
    assert.ok(!addrs().includes(VIP))
    assert.equal(d.holds(), false)
  })

  it('sends gratuitous ARP from the VIP in the background on MASTER and on announce()', async () => {
    const records: Record<string, unknown>[] = []
    const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) })
    const d = driver({ garpCount: 2, garpIntervalMs: 10 }, 'd0', logger)
    const mac = /link\/ether (\S+)/.exec(ip('-n', NS, 'link', 'show', 'd0'))?.[1]
    assert.ok(mac)
    const neigh = () => ip('-n', PEER, 'neigh', 'show', '198.18.0.100', 'dev', 'd0p')
    await d.enter('MASTER')
    await until('the neighbour learning the VIP', () => neigh().includes(mac))
    await until('arping to finish', () => records.some((r) => r.msg === 'gratuitous ARP sent'))
    ip('-n', PEER, 'neigh', 'flush', 'dev', 'd0p')
    assert.ok(!neigh().includes(mac))
    d.announce()
    await until('the neighbour learning it again', () => neigh().includes(mac))
    assert.ok(!records.some((r) => r.msg === 'gratuitous ARP failed'))
    await d.enter('BACKUP')
    assert.ok(!addrs().includes(VIP))
  })

  it('never waits for arping: enter() resolves at once and a release stops a long GARP', async () => {
    const d = driver({ garpCount: 50, garpIntervalMs: 100 })
    let started = Date.now()
    await d.enter('MASTER')
    assert.ok(Date.now() - started < 1000, 'enter(MASTER) did not wait for 5 s of GARP')
    await new Promise((r) => setTimeout(r, 100))
    started = Date.now()
    await d.enter('BACKUP')
    assert.ok(Date.now() - started < 1000, 'enter(BACKUP) killed the GARP')
    assert.ok(!addrs().includes(VIP))
  })

  it('rejects with the command and its error on a missing interface; notify runs with the linux driver', async () => {
    const out = join(dir, 'notify.log')
    const note = (s: string) => ['sh', '-c', `echo "${s} $PGMESH_STATE $PGMESH_VIP" >> '${out}'`]
    const bad = driver({ notify: { master: note('master'), backup: note('backup') } }, 'nope0')
    await assert.rejects(bad.start(), /'ip -o addr show dev nope0' failed: exited with code 1: .*nope0/)
    await assert.rejects(bad.enter('MASTER'), /'ip addr add 198\.18\.0\.100\/24 dev nope0' failed: .*nope0/)
    assert.equal(bad.holds(), false)

    const good = driver({ notify: { master: note('master'), backup: note('backup') } })
    await good.enter('MASTER')
    await good.enter('BACKUP')
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : [])
    await until('both scripts', () => lines().length === 2)
    assert.deepEqual(lines(), [`master MASTER ${VIP}`, `backup BACKUP ${VIP}`])
  })

  it('stop() releases a VIP still held', async () => {
    const d = driver()
    await d.enter('MASTER')
    assert.ok(addrs().includes(VIP))
    await d.stop()
    assert.ok(!addrs().includes(VIP))
    assert.equal(d.holds(), false)
    await assert.rejects(d.enter('MASTER'), /stopped/)
    await d.stop()
  })
})

describe('parseAddrShow', () => {
  it('lists the addresses of `ip -o addr show`, IPv6 in canonical form', () => {
    const out = [
      '3: d0    inet 198.18.0.100/24 scope global d0\\       valid_lft forever preferred_lft forever',
      '3: d0    inet6 fd00:0:0::100/64 scope global nodad \\       valid_lft forever preferred_lft forever',
    ].join('\n')
    assert.deepEqual(parseAddrShow(out), ['198.18.0.100/24', 'fd00::100/64'])
  })
})
