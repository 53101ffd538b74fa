/**
 * VIP failover benchmark: pgmesh and Keepalived side by side in the same network-namespace lab
 * (a bridge, 3 node namespaces with priorities 110/105/100, a client namespace probing the VIP
 * every 20 ms). Every run starts the system fresh and measures one scenario:
 *   killed      kill -9 of the MASTER's process(es) → the client is answered by another node
 *   partition   the MASTER's port detached from the bridge (link up) → another node answers;
 *               the partition lasts 10 s, and `overlap` is how long two namespaces held the VIP
 *   check       the MASTER's tracked service stops listening → the client is answered by another node
 *   recovered   the service listens again → the 110 node answers again
 *   paused      SIGSTOP of the MASTER's process(es) for 3 s → another node answers
 * After the failover in `killed` and `paused` the client asks ARP for the VIP every 20 ms (arping
 * from its namespace; not before: its requests would change how the client's kernel follows the
 * VIP): `arp two-host` is the longest stretch during which two hosts answered, until 4 s after
 * the kill (Keepalived's dead node answers until it restarts) or the end of the 3 s pause.
 * Keepalived runs twice: advert_int 1 (its default) and VRRPv3 advert_int 0.1 (its tuned best);
 * `pgmesh-unfenced` is pgmesh with `vip.fence: false` and no address lifetime (the driver before
 * the fence), for the cost of fencing in the same run.
 * Usage (root): node --conditions=source --import tsx test/bench/vip-failover.bench.ts [--runs 5]
 *   [--systems pgmesh,keepalived-1,keepalived-0.1] [--scenarios killed,partition,check,paused]
 */
import { execFile } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs, promisify } from 'node:util'
import { KeepalivedLab } from '../helpers/keepalived-lab.js'
import { canRunNetns, ip, NetnsLab } from '../helpers/netns-lab.js'
import { exited, isRunning, Sandbox, waitFor } from '../helpers/processes.js'
import { NODE_NAMES, twoHostStretch, VIP, VipLab, watchArp, watchHolders } from '../helpers/vip-lab.js'

const { values } = parseArgs({
  options: { runs: { type: 'string' }, systems: { type: 'string' }, scenarios: { type: 'string' } },
})
const runs = Number(values.runs ?? '5')
const systems = (values.systems ?? 'pgmesh,keepalived-1,keepalived-0.1').split(',')
const only = new Set((values.scenarios ?? 'killed,partition,check,paused').split(','))
const PARTITION_MS = 10_000
const PAUSE_MS = 3_000
/** how long ARP answers are watched after a kill */
const KILL_WATCH_MS = 4_000
const run = promisify(execFile)

const why = canRunNetns()
if (why !== null) {
  process.stderr.write(`${why}\n`)
  process.exit(2)
}

interface System {
  start(name: string): void
  /** kill -9 of every process of the node */
  kill(name: string): Promise<void>
  /** SIGSTOP / SIGCONT of every process of the node */
  signal(name: string, sig: 'SIGSTOP' | 'SIGCONT'): Promise<void>
  stopAll(): Promise<void>
}

const sb = new Sandbox()
await sb.init('vipbench')
const lab = new NetnsLab()
const vl = new VipLab(sb, lab)
try {
  await lab.create([...NODE_NAMES, 'client'])
  await vl.init()
} catch (e) {
  // a lab left behind would take every later lab's 198.18.0.0/24 route
  await sb.cleanup()
  await lab.destroy()
  throw e
}
for (const n of NODE_NAMES) vl.startService(n)
vl.startClient(20)

async function pidsOf(file: string): Promise<number[]> {
  const text = await readFile(file, 'utf8').catch(() => '')
  const pid = Number.parseInt(text, 10)
  return Number.isFinite(pid) ? [pid] : []
}

function makeSystem(kind: string): System {
  if (kind === 'pgmesh' || kind === 'pgmesh-unfenced') {
    // the same configs, the second without the kernel fence and the address lifetime (as before it)
    const lines = kind === 'pgmesh' ? [] : ['    fence: false', '    addressLifetimeMs: 0']
    const configured = new VipLab(sb, lab, { cluster: lines }).init()
    let ready: Promise<void> | null = null
    return {
      start: (n) => {
        ready ??= configured
        void ready.then(() => vl.startNode(n))
      },
      kill: async (n) => {
        const p = vl.nodes.get(n)
        p?.kill('SIGKILL')
        if (p !== undefined) await exited(p, 5_000)
      },
      signal: async (n, sig) => {
        vl.nodes.get(n)?.kill(sig)
      },
      stopAll: async () => {
        for (const p of vl.nodes.values()) if (isRunning(p)) p.kill('SIGTERM')
        for (const p of vl.nodes.values()) await exited(p, 15_000).catch(() => p.kill('SIGKILL'))
      },
    }
  }
  const advertInt = Number(kind.split('-')[1])
  const kl = new KeepalivedLab(sb, lab, { advertInt, checkInterval: advertInt < 1 ? 0.1 : 1 })
  let ready: Promise<void> | null = null
  return {
    start: (n) => {
      ready ??= kl.init()
      void ready.then(() => kl.startNode(n))
    },
    kill: async (n) => {
      // the parent and its VRRP child: a crash takes both
      const pids = [
        ...(await pidsOf(join(sb.dir, `keepalived-${n}.vrrp.pid`))),
        ...(await pidsOf(join(sb.dir, `keepalived-${n}.pid`))),
      ]
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      // and anything else started from that node's config (the config path is unique to this run)
      await run('pkill', ['-KILL', '-f', join(sb.dir, `keepalived-${n}.conf`)]).catch(() => undefined)
      const p = kl.nodes.get(n)
      if (p !== undefined) await exited(p, 5_000)
      // stale pid files make the next start refuse with "daemon is already running"
      for (const suffix of ['pid', 'vrrp.pid', 'checkers.pid'])
        await rm(join(sb.dir, `keepalived-${n}.${suffix}`), { force: true })
    },
    signal: async (n, sig) => {
      for (const f of ['vrrp.pid', 'pid']) {
        for (const pid of await pidsOf(join(sb.dir, `keepalived-${n}.${f}`))) {
          try {
            process.kill(pid, sig)
          } catch {
            // gone
          }
        }
      }
    },
    stopAll: async () => {
      for (const p of kl.nodes.values()) if (isRunning(p)) p.kill('SIGTERM')
      for (const p of kl.nodes.values()) await exited(p, 15_000).catch(() => p.kill('SIGKILL'))
    },
  }
}

/** What a killed run left: the VIP, and pgmesh's nftables tables (its fence would mute the next system). */
async function removeVips(): Promise<void> {
  for (const n of NODE_NAMES) {
    const ns = lab.host(n).netns
    await ip('-n', ns, 'addr', 'del', `${VIP}/24`, 'dev', 'eth0').catch(() => undefined)
    const { stdout } = await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables']).catch(() => ({
      stdout: '',
    }))
    for (const m of stdout.matchAll(/^table (\w+) (pgmesh_\w+)$/gm)) {
      await run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', m[1]!, m[2]!]).catch(() => undefined)
    }
  }
}

/** First probe at or after `since` answered by a node other than `not`. */
async function servedByOther(not: string, since: number): Promise<number | undefined> {
  return (await vl.answers(since)).find((a) => a.node !== null && a.node !== not)?.t
}

type Scenario =
  | 'killed'
  | 'arpKilled'
  | 'partition'
  | 'check'
  | 'recovered'
  | 'overlap'
  | 'paused'
  | 'arpPaused'
const results = new Map<string, Map<Scenario, number[]>>()
const record = (sys: string, sc: Scenario, ms: number) => {
  const m = results.get(sys) ?? new Map<Scenario, number[]>()
  results.set(sys, m)
  const xs = m.get(sc) ?? []
  xs.push(ms)
  m.set(sc, xs)
  process.stdout.write(`${sys} ${sc}: ${ms} ms\n`)
}

async function fresh(sys: System): Promise<void> {
  await removeVips()
  const t = Date.now()
  for (const n of NODE_NAMES) sys.start(n)
  await waitFor('n1 to serve the VIP', 60_000, () => vl.servedBy('n1', t), 50)
  await waitFor('n1 the only holder', 30_000, async () =>
    (await vl.holders()).join() === 'n1' ? true : undefined,
  )
  await sleep(1_500)
}

try {
  for (const kind of systems) {
    for (let r = 0; r < runs; r++) {
      let sys: System
      let t0: number
      if (only.has('killed')) {
        sys = makeSystem(kind)
        await fresh(sys)
        t0 = Date.now()
        await sys.kill('n1')
        record(
          kind,
          'killed',
          (await waitFor('failover after kill', 30_000, () => servedByOther('n1', t0), 20)) - t0,
        )
        // only now: ARP requests of its own would change how the client's kernel follows the VIP
        const arp = await watchArp(vl, KILL_WATCH_MS + 10_000)
        await sleep(Math.max(0, t0 + KILL_WATCH_MS - Date.now()))
        const { replies } = await arp.stop()
        record(
          kind,
          'arpKilled',
          twoHostStretch(replies.filter((r) => r.t >= t0 && r.t <= t0 + KILL_WATCH_MS)),
        )
        await sys.stopAll()
      }

      if (only.has('paused')) {
        sys = makeSystem(kind)
        await fresh(sys)
        t0 = Date.now()
        await sys.signal('n1', 'SIGSTOP')
        let arp: Awaited<ReturnType<typeof watchArp>> | null = null
        try {
          record(
            kind,
            'paused',
            (await waitFor('failover during the pause', 30_000, () => servedByOther('n1', t0), 20)) - t0,
          )
          arp = await watchArp(vl, PAUSE_MS + 10_000)
          await sleep(Math.max(0, t0 + PAUSE_MS - Date.now()))
        } finally {
          await sys.signal('n1', 'SIGCONT')
        }
        const { replies } = await arp.stop()
        record(kind, 'arpPaused', twoHostStretch(replies.filter((r) => r.t >= t0 && r.t <= t0 + PAUSE_MS)))
        await sys.stopAll()
      }

      if (!only.has('partition') && !only.has('check')) continue
      // partition
      sys = makeSystem(kind)
      await fresh(sys)
      const watch = watchHolders(vl)
      t0 = Date.now()
      await lab.detach('n1')
      record(
        kind,
        'partition',
        (await waitFor('failover after partition', 30_000, () => servedByOther('n1', t0), 20)) - t0,
      )
      await sleep(Math.max(0, PARTITION_MS - (Date.now() - t0)))
      const w = await watch.stop()
      await lab.attach('n1')
      record(kind, 'overlap', w.maxOverlapMs)
      await sys.stopAll()

      // tracked check fails, then recovers
      sys = makeSystem(kind)
      await fresh(sys)
      t0 = Date.now()
      const svc = vl.services.get('n1')!
      svc.kill('SIGHUP')
      record(
        kind,
        'check',
        (await waitFor('VIP moved after the check failed', 30_000, () => servedByOther('n1', t0), 20)) - t0,
      )
      await sleep(1_000)
      t0 = Date.now()
      svc.kill('SIGUSR2')
      record(
        kind,
        'recovered',
        (await waitFor('VIP back on n1', 30_000, () => vl.servedBy('n1', t0), 20)) - t0,
      )
      await sys.stopAll()
    }
  }
} finally {
  await sb.cleanup()
  await lab.destroy()
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return `${s[Math.floor(s.length / 2)]} (${s[0]}–${s[s.length - 1]})`
}
const scenarios: [Scenario, string][] = [
  ['killed', 'MASTER killed (kill -9) → client served by the new MASTER, ms'],
  [
    'arpKilled',
    `two hosts answer ARP for the VIP, from the failover to ${KILL_WATCH_MS / 1000} s after kill -9, longest stretch, ms`,
  ],
  ['paused', `MASTER paused (SIGSTOP ${PAUSE_MS / 1000} s) → client served by another node, ms`],
  [
    'arpPaused',
    `two hosts answer ARP for the VIP, from the failover to the end of the ${PAUSE_MS / 1000} s pause, longest stretch, ms`,
  ],
  ['partition', 'MASTER partitioned → client served by the new MASTER, ms'],
  ['overlap', `two nodes held the VIP during a ${PARTITION_MS / 1000} s partition, longest stretch, ms`],
  ['check', 'tracked check fails → client served by another node, ms'],
  ['recovered', 'check recovers → the 110 node serves again, ms'],
]
const head = `| scenario (median (min–max) of ${runs} runs) | ${systems.join(' | ')} |`
const lines = [head, `|---|${systems.map(() => '---').join('|')}|`]
for (const [sc, label] of scenarios) {
  if (!systems.some((s) => results.get(s)?.has(sc))) continue
  lines.push(
    `| ${label} | ${systems.map((s) => stats(results.get(s)?.get(sc) ?? [Number.NaN])).join(' | ')} |`,
  )
}
process.stdout.write(
  `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}\n${lines.join('\n')}\n`,
)
