import assert from 'node:assert/strict'
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type VipConfigInput, VipConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { parseAddrShow } from './linux-driver.js'
import { synBlockTable } from './syn-block.js'
import type { VipDriver } from './types.js'
import { createVipDriver } from './vip-driver.js'

/**
 * The real driver in a network namespace of its own: veth `d0` (the VIP's interface) whose peer
 * `d0p` sits in a second namespace, a "neighbour" that learns the VIP's MAC from gratuitous ARP.
 * Only 198.18.0.0/15 (benchmarking) addresses are used.
 */
const root = process.getuid?.() === 0
/** the quiesce tests need nftables (deploy/install-deps.sh installs it) */
const noNft = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some((f) => existsSync(f)) ? false : 'needs nft'
const suffix = randomBytes(4).toString('hex')
const NS = `pgmesh-vip-${suffix}`
const PEER = `pgmesh-vipp-${suffix}`
const VIP = '198.18.0.100/24'
let dir = ''
const drivers: VipDriver[] = []

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', timeout: 5000 })
const addrs = () => parseAddrShow(ip('-n', NS, '-o', 'addr', 'show', 'dev', 'd0'))
const silent = pino({ level: 'silent' })

function driver(
  config: Partial<VipConfigInput> = {},
  iface = 'd0',
  logger = silent,
  sessionsTo?: (ip: string) => number,
): VipDriver {
  const d = createVipDriver({
    config: VipConfigSchema.parse({ driver: 'linux', address: VIP, garpCount: 0, ...config }),
    iface,
    node: 'n1',
    logger,
    netns: NS,
    ...(sessionsTo !== undefined ? { sessionsTo } : {}),
  })
  drivers.push(d)
  return d
}

const children: ChildProcess[] = []
const PORT = 7000
const sysctl = (key: string, value: string) =>
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', `${key}=${value}`], { timeout: 5000 })
const tables = () =>
  execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'tables'], { encoding: 'utf8', timeout: 5000 })

/** An echo server on every address of the driver's namespace, port PORT. */
function echoServer(): void {
  const code = `require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s) }).listen(${PORT}, '0.0.0.0')`
  children.push(spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', code], { stdio: 'ignore' }))
}

/**
 * A client in the neighbour's namespace, driven line by line: \`open ID HOST\` keeps a connection,
 * \`echo ID TEXT\` sends on it, \`dial ID HOST MS\` tries a new connection for at most MS.
 */
class Client {
  readonly #p: ChildProcess
  readonly #lines: string[] = []
  constructor() {
    const code = `
      const net = require('net'); const socks = new Map(); const say = (s) => process.stdout.write(s + '\\n')
      require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
        const [cmd, id, a, b] = line.split(' ')
        if (cmd === 'open') {
          const s = net.connect({ host: a, port: ${PORT} }); s.setEncoding('utf8')
          s.once('connect', () => { socks.set(id, s); say(id + ' open') }); s.on('error', (e) => say(id + ' error ' + e.code))
        } else if (cmd === 'echo') {
          const s = socks.get(id); const t = setTimeout(() => say(id + ' timeout'), 2000)
          s.once('data', (d) => { clearTimeout(t); say(id + ' echo ' + d) }); s.write(a)
        } else if (cmd === 'dial') {
          const s = net.connect({ host: a, port: ${PORT} }); const t = setTimeout(() => { s.destroy(); say(id + ' timeout') }, Number(b))
          s.once('connect', () => { clearTimeout(t); s.destroy(); say(id + ' ok') }); s.once('error', (e) => { clearTimeout(t); say(id + ' ' + e.code) })
        }
      })`
    this.#p = spawn('ip', ['netns', 'exec', PEER, process.execPath, '-e', code], {
      stdio: ['pipe', 'pipe', 'ignore'],
    })
    children.push(this.#p)
    let buf = ''
    this.#p.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d
      const parts = buf.split('\n')
      buf = parts.pop() ?? ''
      this.#lines.push(...parts)
    })
  }
  /** sends a command; resolves with the rest of the answer line for its id */
  async ask(line: string, ms = 5000): Promise<string> {
    const id = line.split(' ')[1]!
    this.#p.stdin?.write(`${line}\n`)
    let answer: string | undefined
    await until(
      `an answer to '${line}'`,
      () => {
        const i = this.#lines.findIndex((l) => l.startsWith(`${id} `))
        if (i >= 0) answer = this.#lines.splice(i, 1)[0]
        return answer !== undefined
      },
      ms,
    )
    return answer!.slice(id.length + 1)
  }
}

/** `ip monitor address` in the driver's namespace: what was added and deleted while it ran, in order. */
function monitor(): { stop(): Promise<string[]> } {
  const p = spawn('ip', ['-n', NS, 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] })
  children.push(p)
  let out = ''
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d
  })
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 200))
      p.kill()
      return out
        .split('\n')
        .map((l) => /^(Deleted )?\d+: \S+\s+inet6? (\S+)/.exec(l))
        .filter((m) => m !== null)
        .map((m) => `${m[1] === undefined ? 'add' : 'del'} ${m[2]}`)
    },
  }
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
      for (const c of children) c.kill('SIGKILL')
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
    await assert.rejects(
      bad.enter('MASTER'),
      /'ip addr add 198\.18\.0\.100\/24 dev nope0 valid_lft 3 preferred_lft 3' failed: .*nope0/,
    )
    assert.equal(bad.holds(), false)

    const good = driver({ notify: { master: note('master'), backup: note('backup') } })
    await good.enter('MASTER')
    await good.enter('BACKUP')
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : [])
    await until('both scripts', () => lines().length === 2)
    assert.deepEqual(lines(), [`master MASTER ${VIP}`, `backup BACKUP ${VIP}`])
  })

  it('quiesce(): new connections to the VIP are dropped, established ones go on; it waits for the sessions; the release lifts the block', {
    skip: noNft,
  }, async () => {
    echoServer()
    let sessions = 1
    const d = driver({ drainMs: 3000 }, 'd0', silent, (ip) => (ip === '198.18.0.100' ? sessions : 0))
    await d.enter('MASTER')
    const c = new Client()
    for (let i = 0; i < 50 && (await c.ask(`dial p${i} 198.18.0.100 200`)) !== 'ok'; i++)
      await new Promise((r) => setTimeout(r, 50))
    assert.equal(await c.ask('open a 198.18.0.100'), 'open')
    assert.equal(await c.ask('echo a hello'), 'echo hello')
    const started = Date.now()
    const q = d.quiesce?.()
    assert.ok(q !== undefined, 'the linux driver quiesces')
    await until('the nftables table', () => tables().includes(synBlockTable('d0', 'n1')))
    assert.equal(
      await c.ask('dial b 198.18.0.100 600'),
      'timeout',
      'a new connection is dropped, not refused',
    )
    assert.equal(await c.ask('echo a still'), 'echo still', 'the established session goes on')
    sessions = 0
    await q
    const took = Date.now() - started
    assert.ok(took >= 600 && took < 2500, `quiesce() took ${took} ms`)
    assert.ok(addrs().includes(VIP), 'quiesce() leaves the address to the release')
    assert.equal(d.holds(), true)
    await d.enter('BACKUP')
    assert.ok(!addrs().includes(VIP))
    assert.ok(!tables().includes('pgmesh_vip'), 'the block goes with the address')
  })

  it('quiesce() is bounded by drainMs, ends when the VIP is released, does nothing when not holding; unquiesce() lifts it', {
    skip: noNft,
  }, async () => {
    const table = synBlockTable('d0', 'n1')
    const d = driver({ drainMs: 300 }, 'd0', silent, () => 5)
    await d.quiesce?.()
    assert.ok(!tables().includes(table), 'not holding: no block')
    await d.enter('MASTER')
    let started = Date.now()
    await d.quiesce?.()
    let took = Date.now() - started
    assert.ok(took >= 280 && took < 1500, `bounded by drainMs: took ${took} ms`)
    assert.ok(tables().includes(table))
    await d.unquiesce?.()
    assert.ok(!tables().includes(table))
    assert.ok(addrs().includes(VIP))
    await d.reconfigure(
      VipConfigSchema.parse({ driver: 'linux', address: VIP, garpCount: 0, drainMs: 10_000 }),
    )
    started = Date.now()
    const q = d.quiesce?.()
    await until('the block', () => tables().includes(table))
    await d.enter('FAULT')
    await q
    took = Date.now() - started
    assert.ok(took < 2000, `the release ended the wait: took ${took} ms`)
    assert.ok(!tables().includes(table))
    assert.ok(!addrs().includes(VIP))
  })

  it('start() removes the table a predecessor killed while handing over left', { skip: noNft }, async () => {
    const table = synBlockTable('d0', 'n1')
    execFileSync('ip', ['netns', 'exec', NS, 'nft', `add table inet ${table}`], { timeout: 5000 })
    assert.ok(tables().includes(table))
    await driver().start()
    assert.ok(!tables().includes(table))
  })

  it('reconfigure() with the same address swaps settings without touching the interface', async () => {
    const out = join(dir, 'reconf-same.log')
    const note = (s: string) => ['sh', '-c', `echo "${s} $PGMESH_STATE $PGMESH_VIP" >> '${out}'`]
    const records: Record<string, unknown>[] = []
    const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) })
    const d = driver({ notify: { backup: note('old') } }, 'd0', logger)
    await d.enter('MASTER')
    const c = new Client()
    assert.equal(await c.ask('open s 198.18.0.100'), 'open')
    assert.equal(await c.ask('echo s one'), 'echo one')
    const m = monitor()
    await d.reconfigure(
      VipConfigSchema.parse({
        driver: 'linux',
        address: VIP,
        garpCount: 1,
        drainMs: 50,
        notify: { backup: note('new') },
      }),
    )
    assert.deepEqual(await m.stop(), [], 'no address operation')
    assert.equal(await c.ask('echo s two'), 'echo two', 'the session did not notice')
    const info = records.find((r) => r.msg === 'VIP settings changed')
    assert.equal(info?.component, 'vip')
    assert.deepEqual(info?.changed, ['garpCount', 'drainMs', 'notify'])
    await d.enter('BACKUP')
    await until('the backup script', () => existsSync(out))
    assert.equal(readFileSync(out, 'utf8').trim(), `new BACKUP ${VIP}`)
  })

  it('reconfigure() to a new address on a MASTER: added and announced before the old one goes; the master script runs again', async () => {
    const out = join(dir, 'reconf-move.log')
    const note = ['sh', '-c', `echo "master $PGMESH_STATE $PGMESH_VIP" >> '${out}'`]
    const records: Record<string, unknown>[] = []
    const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) })
    const d = driver({ notify: { master: note } }, 'd0', logger)
    await d.enter('MASTER')
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : [])
    await until('the first master script', () => lines().length === 1)
    const NEW = '198.18.0.101/24'
    const mac = /link\/ether (\S+)/.exec(ip('-n', NS, 'link', 'show', 'd0'))?.[1]
    assert.ok(mac)
    const neigh = () => ip('-n', PEER, 'neigh', 'show', '198.18.0.101', 'dev', 'd0p')
    assert.ok(!neigh().includes(mac))
    // as systemd sets it on a host: the new address (a secondary) survives the old primary's removal
    sysctl('net.ipv4.conf.d0.promote_secondaries', '1')
    let m = monitor()
    await d.reconfigure(
      VipConfigSchema.parse({
        driver: 'linux',
        address: NEW,
        garpCount: 2,
        garpIntervalMs: 10,
        notify: { master: note },
      }),
    )
    // (the kernel reports the promoted secondary as added again: not an operation of the driver)
    assert.deepEqual((await m.stop()).slice(0, 2), [`add ${NEW}`, `del ${VIP}`])
    assert.ok(!records.some((r) => r.level === 40), 'nothing had to be added again')
    assert.ok(addrs().includes(NEW) && !addrs().includes(VIP))
    assert.equal(d.holds(), true)
    await until('the neighbour learning the new VIP from gratuitous ARP', () => neigh().includes(mac))
    await until('the master script again', () => lines().length === 2)
    assert.equal(lines()[1], `master MASTER ${NEW}`)

    // the kernel's default: removing the primary takes its secondaries along; the driver adds the new one again
    sysctl('net.ipv4.conf.d0.promote_secondaries', '0')
    m = monitor()
    await d.reconfigure(
      VipConfigSchema.parse({ driver: 'linux', address: VIP, garpCount: 0, notify: { master: note } }),
    )
    const ops = await m.stop()
    assert.equal(ops[0], `add ${VIP}`, 'the new address comes first')
    assert.ok(addrs().includes(VIP) && !addrs().includes(NEW), ops.join(', '))
    assert.match(String(records.find((r) => r.level === 40)?.msg), /promote_secondaries/)
    assert.equal(d.holds(), true)
    await d.enter('BACKUP')
    assert.ok(!addrs().includes(VIP))
  })

  it('reconfigure() while not holding only switches; a change of driver is left for the restart', async () => {
    const d = driver()
    await d.enter('BACKUP')
    const m = monitor()
    await d.reconfigure(VipConfigSchema.parse({ driver: 'linux', address: '198.18.0.102/24', garpCount: 0 }))
    assert.deepEqual(await m.stop(), [])
    await d.enter('MASTER')
    assert.ok(addrs().includes('198.18.0.102/24') && !addrs().includes(VIP))
    await d.reconfigure(VipConfigSchema.parse({ driver: 'none' }))
    assert.equal(d.kind, 'linux')
    assert.ok(addrs().includes('198.18.0.102/24'))
    await d.enter('BACKUP')
    assert.ok(!addrs().includes('198.18.0.102/24'))
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
