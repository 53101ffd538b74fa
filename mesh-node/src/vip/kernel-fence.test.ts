import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { VipAddressSchema, VipConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import {
  fenceArmScript,
  fencePrefix,
  fenceRemoveScript,
  fenceRenewLine,
  fenceTable,
  parseFenceTables,
} from './kernel-fence.js'
import { parseAddrShow } from './linux-driver.js'
import type { VipDriver } from './types.js'
import { createVipDriver } from './vip-driver.js'

const v4 = VipAddressSchema.parse('198.18.0.100/24')
const v6 = VipAddressSchema.parse('fd00::100/64')

describe('kernel fence scripts', () => {
  it('names one table per node, interface and VIP, under a prefix a restart finds', () => {
    const t = fenceTable('eth0', 'n1', '198.18.0.100')
    assert.ok(t.startsWith(fencePrefix('eth0', 'n1')))
    assert.notEqual(t, fenceTable('eth0', 'n2', '198.18.0.100'))
    assert.notEqual(t, fenceTable('eth0', 'n1', 'fd00::100'))
    assert.ok(!fenceTable('eth0', 'n1', 'fd00::100').startsWith(fencePrefix('eth1', 'n1')))
    assert.match(fenceTable('br-x.1', 'n1', '198.18.0.100'), /^pgmesh_fence_br_x_1_[0-9a-f]{8}_[0-9a-f]{6}$/)
  })

  it('IPv4: gates ARP from the VIP and input/output of the VIP on the lease set; the element carries the timeout', () => {
    const s = fenceArmScript('T', v4, 237.6)
    assert.match(s, /add rule arp T out arp saddr ip 198\.18\.0\.100 arp saddr ip != @lease counter drop/)
    assert.match(s, /add rule inet T in ip daddr 198\.18\.0\.100 ip daddr != @lease counter drop/)
    assert.match(s, /add rule inet T out ip saddr 198\.18\.0\.100 ip saddr != @lease counter drop/)
    assert.match(s, /add element arp T lease \{ 198\.18\.0\.100 timeout 237ms \}/)
    assert.match(s, /add element inet T lease \{ 198\.18\.0\.100 timeout 237ms \}/)
    // a lease already over: the tables go up with no element, the host answers nothing
    assert.doesNotMatch(fenceArmScript('T', v4, 0), /add element/)
    assert.match(fenceArmScript('T', v4, null), /add element inet T lease \{ 198\.18\.0\.100 \}/)
  })

  it('IPv6: no arp table; neighbour advertisements leave from the VIP, so the output rule gates them', () => {
    const s = fenceArmScript('T', v6, 100)
    assert.doesNotMatch(s, /add set arp/)
    assert.match(s, /type ipv6_addr; flags timeout;/)
    assert.match(s, /add rule inet T out ip6 saddr fd00::100 ip6 saddr != @lease counter drop/)
    assert.equal(
      fenceRenewLine('T', v6, 50),
      'flush set inet T lease; add element inet T lease { fd00::100 timeout 50ms }',
    )
    assert.equal(fenceRenewLine('T', v4, -5), 'flush set inet T lease; flush set arp T lease')
    assert.doesNotMatch(fenceRemoveScript('T', 'ipv6'), /arp/)
  })

  it('finds only its own tables in `nft list tables`', () => {
    const p = fencePrefix('eth0', 'n1')
    const listing = `table inet filter\ntable inet ${p}abcdef\ntable arp ${p}abcdef\ntable inet ${fencePrefix('eth0', 'n2')}abcdef\n`
    assert.deepEqual(parseFenceTables(listing, p), [
      { family: 'inet', name: `${p}abcdef` },
      { family: 'arp', name: `${p}abcdef` },
    ])
  })
})

/**
 * The linux driver with its fence in a namespace of its own (veth `d0`), a neighbour namespace
 * asking for the VIP with arping and TCP. Only 198.18.0.0/15 addresses.
 */
const root = process.getuid?.() === 0
const hasNft = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some((f) => existsSync(f))
const skip = !root ? 'needs root (network namespaces)' : !hasNft ? 'needs nft' : false
const suffix = randomBytes(4).toString('hex')
const NS = `pgmesh-fence-${suffix}`
const PEER = `pgmesh-fencep-${suffix}`
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', timeout: 5000 })
const addrs = () => parseAddrShow(ip('-n', NS, '-o', 'addr', 'show', 'dev', 'd0'))
const tables = () => ip('netns', 'exec', NS, 'nft', 'list', 'tables')

/** Exit status of a command, without blocking the event loop (the lease renewals keep running). */
function status(argv: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' })
    const t = setTimeout(() => p.kill('SIGKILL'), 5_000)
    p.on('exit', (code) => {
      clearTimeout(t)
      resolve(code)
    })
    p.on('error', () => resolve(null))
  })
}

/** Whether the VIP answers one ARP request from the neighbour (arping exits 0 on a reply). */
async function arpAnswered(): Promise<boolean> {
  const argv = [
    'ip',
    'netns',
    'exec',
    PEER,
    'arping',
    '-q',
    '-c',
    '1',
    '-w',
    '0.3',
    '-i',
    'd0p',
    '198.18.0.100',
  ]
  return (await status(argv)) === 0
}

/** Whether the neighbour reaches the VIP over TCP (an RST from a closed port counts: the host answered). */
async function tcpAnswered(host = '198.18.0.100'): Promise<boolean> {
  const code = `const s=require('net').connect({host:'${host}',port:7999});const t=setTimeout(()=>process.exit(1),300);s.on('connect',()=>process.exit(0));s.on('error',e=>process.exit(e.code==='ECONNREFUSED'?0:1))`
  return (await status(['ip', 'netns', 'exec', PEER, process.execPath, '-e', code])) === 0
}

describe('kernel fence in a network namespace (real nft and arping)', { skip, timeout: 60_000 }, () => {
  const drivers: VipDriver[] = []
  const driver = (
    addressLifetimeMs = 2_000,
    address = '198.18.0.100/24',
    garpCount = 0,
    secondAddress?: string,
  ): VipDriver => {
    const d = createVipDriver({
      config: VipConfigSchema.parse({
        driver: 'linux',
        address,
        garpCount,
        addressLifetimeMs,
        ...(secondAddress === undefined ? {} : { secondAddress }),
      }),
      iface: 'd0',
      node: 'n1',
      logger: pino({ level: process.env.FENCE_DEBUG ? 'debug' : 'silent' }),
      netns: NS,
      mono: () => performance.now(),
    })
    drivers.push(d)
    return d
  }

  before(() => {
    ip('netns', 'add', NS)
    ip('netns', 'add', PEER)
    ip('-n', NS, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p')
    ip('-n', NS, 'link', 'set', 'd0p', 'netns', PEER)
    ip('-n', NS, 'link', 'set', 'd0', 'up')
    ip('-n', NS, 'link', 'set', 'lo', 'up')
    ip('-n', PEER, 'link', 'set', 'd0p', 'up')
    ip('-n', NS, 'addr', 'add', '198.18.0.2/24', 'dev', 'd0')
    ip('-n', PEER, 'addr', 'add', '198.18.0.1/24', 'dev', 'd0p')
    ip('-n', NS, 'addr', 'add', 'fd00::2/64', 'dev', 'd0', 'nodad')
    ip('-n', PEER, 'addr', 'add', 'fd00::1/64', 'dev', 'd0p', 'nodad')
  })

  after(async () => {
    try {
      await Promise.all(drivers.map((d) => d.stop()))
    } finally {
      for (const ns of [NS, PEER]) spawnSync('ip', ['netns', 'del', ns], { timeout: 5000 })
    }
  })

  it('answers while the lease is renewed; stops answering ARP and TCP within the lease once renewals stop; the address lifetime removes the VIP', async () => {
    const d = driver(4_000)
    await d.start()
    const LEASE = 600
    d.lease?.(performance.now() + LEASE)
    await d.enter('MASTER')
    assert.ok(addrs().includes('198.18.0.100/24'))
    assert.match(tables(), /table arp pgmesh_fence_d0_/)
    // renewed every 50 ms for 1.5 s (more than three leases): answering all along
    const until = performance.now() + 1_500
    const renew = setInterval(() => d.lease?.(performance.now() + LEASE), 50)
    try {
      while (performance.now() < until) {
        assert.ok(await arpAnswered(), 'the MASTER must answer ARP while its lease is renewed')
        await sleep(100)
      }
      assert.ok(await tcpAnswered(), 'the MASTER must accept packets to the VIP while its lease is renewed')
    } finally {
      clearInterval(renew)
    }
    // the process "pauses": no renewal, no action; the kernel stops answering by itself
    const stoppedAt = performance.now()
    let silentAfter: number | null = null
    while (performance.now() - stoppedAt < 3 * LEASE) {
      // the kernel was silent when this request went out, at the latest
      const askedAt = performance.now()
      if (!(await arpAnswered())) {
        silentAfter = askedAt - stoppedAt
        break
      }
    }
    assert.ok(silentAfter !== null, 'ARP is still answered three leases after the last renewal')
    // the request before the silent one may have gone out up to an arping run (300 ms) earlier
    assert.ok(
      silentAfter <= LEASE + 300 + 100,
      `ARP answered ${Math.round(silentAfter)} ms after the last renewal (lease ${LEASE})`,
    )
    assert.equal(await tcpAnswered(), false, 'packets to the VIP must be dropped without a lease')
    assert.ok(addrs().includes('198.18.0.100/24'), 'the address itself stays until its lifetime ends')
    // backstop: valid_lft 4 s; the kernel checks lifetimes about once a second
    const deadline = Date.now() + 8_000
    while (addrs().includes('198.18.0.100/24')) {
      assert.ok(Date.now() < deadline, 'the address lifetime did not remove the VIP')
      await sleep(100)
    }
  })

  it('a restarted driver removes the fence and the VIP a killed predecessor left', async () => {
    const d = driver(0)
    await d.start()
    d.lease?.(performance.now() + 60_000)
    await d.enter('MASTER')
    assert.match(tables(), /pgmesh_fence_d0_/)
    // "killed": nothing is released; a new driver starts on the same interface
    const next = driver(0)
    await next.start()
    assert.doesNotMatch(tables(), /pgmesh_fence_d0_/)
    assert.ok(!addrs().includes('198.18.0.100/24'))
    assert.equal(await arpAnswered(), false)
  })

  it('a release removes address and fence at once', async () => {
    const d = driver()
    await d.start()
    d.lease?.(performance.now() + 5_000)
    await d.enter('MASTER')
    assert.ok(await arpAnswered())
    await d.enter('BACKUP')
    d.lease?.(null)
    assert.ok(!addrs().includes('198.18.0.100/24'))
    assert.doesNotMatch(tables(), /pgmesh_fence_d0_/)
  })

  it('IPv6: an unsolicited neighbour advertisement points the neighbour at the VIP; without a lease no neighbour advertisement and no TCP', {
    skip: ['/usr/sbin/na6', '/usr/bin/na6'].some((f) => existsSync(f)) ? false : 'needs na6 (ipv6toolkit)',
  }, async () => {
    const mac = /link\/ether (\S+)/.exec(ip('-n', NS, 'link', 'show', 'd0'))![1]
    ip(
      '-n',
      PEER,
      'neigh',
      'replace',
      'fd00::100',
      'lladdr',
      '02:00:00:00:00:01',
      'dev',
      'd0p',
      'nud',
      'stale',
    )
    const d = driver(0, 'fd00::100/64', 1)
    await d.start()
    const leaseStart = performance.now()
    d.lease?.(performance.now() + 1_500)
    await d.enter('MASTER')
    const deadline = Date.now() + 3_000
    while (!ip('-n', PEER, 'neigh', 'show', 'fd00::100').includes(mac!)) {
      assert.ok(Date.now() < deadline, `the neighbour never learnt ${mac} for the VIP`)
      await sleep(50)
    }
    assert.ok(await tcpAnswered('fd00::100'))
    await sleep(Math.max(0, leaseStart + 1_600 - performance.now()))
    ip('-n', PEER, 'neigh', 'flush', 'dev', 'd0p')
    assert.equal(await tcpAnswered('fd00::100'), false, 'the VIP must not answer without a lease')
    const n = ip('-n', PEER, 'neigh', 'show', 'fd00::100')
    assert.ok(!n.includes(mac!), `the host answered neighbour solicitation without a lease: ${n}`)
    await d.enter('BACKUP')
  })

  it('a live edit turns the fence off on a held VIP (tables gone) and on again (armed with the running lease)', async () => {
    const d = driver(0)
    await d.start()
    d.lease?.(performance.now() + 5_000)
    await d.enter('MASTER')
    const base = { driver: 'linux', address: '198.18.0.100/24', garpCount: 0, addressLifetimeMs: 0 }
    await d.reconfigure(VipConfigSchema.parse({ ...base, fence: false }))
    assert.doesNotMatch(tables(), /pgmesh_fence_d0_/)
    assert.ok(await arpAnswered())
    await d.reconfigure(VipConfigSchema.parse({ ...base, fence: true }))
    assert.match(tables(), /pgmesh_fence_d0_/)
    assert.ok(await arpAnswered(), 'armed with what is left of the lease')
    await d.enter('BACKUP')
    d.lease?.(null)
  })

  it('a dual-stack pair: both VIPs fenced and held together, silent together without a lease, released together', async () => {
    const d = driver(0, '198.18.0.100/24', 0, 'fd00::100/64')
    await d.start()
    const leaseStart = performance.now()
    // a long lease: a loaded machine may take a while for both addresses, the tables and IPv6 DAD
    d.lease?.(leaseStart + 4_000)
    await d.enter('MASTER')
    assert.ok(d.holds())
    assert.ok(addrs().includes('198.18.0.100/24') && addrs().includes('fd00::100/64'))
    assert.equal(
      tables()
        .split('\n')
        .filter((l) => l.includes('pgmesh_fence_d0_')).length,
      3,
      'inet + arp for IPv4, inet for IPv6',
    )
    assert.ok(await arpAnswered())
    // an IPv6 address answers once duplicate address detection is done (about a second)
    let v6 = false
    for (let i = 0; i < 20 && !v6 && performance.now() < leaseStart + 3_500; i++) {
      v6 = await tcpAnswered('fd00::100')
      if (!v6) await sleep(100)
    }
    assert.ok(v6, 'the IPv6 VIP answers while the lease runs')
    await sleep(Math.max(0, leaseStart + 4_100 - performance.now()))
    assert.equal(await arpAnswered(), false)
    assert.equal(await tcpAnswered('fd00::100'), false)
    assert.equal(await tcpAnswered(), false)
    await d.enter('BACKUP')
    d.lease?.(null)
    assert.equal(d.holds(), false)
    assert.deepEqual(
      addrs().filter((a) => a.startsWith('198.18.0.100/') || a.startsWith('fd00::100/')),
      [],
    )
    assert.doesNotMatch(tables(), /pgmesh_fence_d0_/)
  })
})

describe('fence renewals through a slow nft (a stand-in process)', () => {
  /** answers each line like `nft -e -i` after `delayMs`, and reports what it got on stderr-free stdout */
  const fakeNft = (delayMs: number, log: string) => `
    const rl = require('readline').createInterface({ input: process.stdin })
    rl.on('line', (l) => setTimeout(() => {
      require('fs').appendFileSync(${JSON.stringify(log)}, l + '\\n')
      for (const m of l.matchAll(/add element inet (\\S+) lease \\{ ([^}]*) \\}/g)) process.stdout.write('add element inet ' + m[1] + ' lease { ' + m[2] + ' }\\n')
    }, ${delayMs}))`

  it('keeps one renewal in flight, coalesces the rest, and never turns a running lease into a flush', async (t) => {
    const { createKernelFence } = await import('./kernel-fence.js')
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-fence-fake-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const lines = join(dir, 'lines')
    const fence = createKernelFence({
      iface: 'eth0',
      node: 'n1',
      nft: 'nft',
      // arm/remove: one-shot commands succeed without touching anything
      exec: async () => ({
        code: 0,
        signal: null,
        stdout: '',
        stderr: '',
        timedOut: false,
        aborted: false,
        spawnError: null,
      }),
      wrap: () => [process.execPath, '-e', fakeNft(300, lines)],
      timeoutMs: 1_000,
      logger: pino({ level: 'silent' }),
    })
    assert.ok(await fence.arm(v4, 200))
    // 20 renewals in 200 ms while the stand-in takes 300 ms per line
    for (let i = 0; i < 20; i++) {
      fence.renew(() => 200)
      await sleep(10)
    }
    assert.equal(fence.stats().renewals, 1, 'one line on its way; the others wait for it')
    const deadline = Date.now() + 5_000
    while (fence.stats().confirmed < 2) {
      assert.ok(Date.now() < deadline, `only ${fence.stats().confirmed} confirmations`)
      await sleep(20)
    }
    const s = fence.stats()
    assert.equal(s.renewals, 2, 'the waiting ones went as one')
    assert.ok(s.lastApplyMs >= 250, `apply time measured: ${s.lastApplyMs}`)
    // the apply time (≥ 300 ms) exceeds the lease left (200 ms): a quarter comes off, not a flush
    fence.renew(() => 200)
    const until = Date.now() + 5_000
    while (!existsSync(lines) || readFileSync(lines, 'utf8').trim().split('\n').length < 3) {
      assert.ok(Date.now() < until, 'the third renewal never reached the stand-in')
      await sleep(20)
    }
    fence.close()
    const got = readFileSync(lines, 'utf8').trim().split('\n')
    assert.match(got[0]!, /timeout 200ms/, 'nothing measured yet: the full remaining lease')
    assert.match(got[2]!, /add element inet \S+ lease \{ 198\.18\.0\.100 timeout 150ms \}/)
  })
})
