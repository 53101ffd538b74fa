/**
 * The cost of the kernel fence's renewals: one long-lived `nft -e -i` process fed one line per
 * renewal (as the linux VIP driver does, one in flight), against one `nft` process per renewal.
 * In a network namespace of its own, on a table like the driver's.
 * Usage (root): node --conditions=source --import tsx test/bench/fence-renewal.bench.ts [--renewals 1000] [--spawns 100]
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { VipAddressSchema } from '@pgmesh/protocol'
import { fenceArmScript, fenceRenewLine } from '../../mesh-node/src/vip/kernel-fence.js'

const { values } = parseArgs({ options: { renewals: { type: 'string' }, spawns: { type: 'string' } } })
const RENEWALS = Number(values.renewals ?? '1000')
const SPAWNS = Number(values.spawns ?? '100')
if (process.getuid?.() !== 0) {
  process.stderr.write('needs root (a network namespace)\n')
  process.exit(2)
}
const NS = `pgmesh-fbench-${randomBytes(3).toString('hex')}`
const TABLE = 'pgmesh_fence_bench'
const vip = VipAddressSchema.parse('198.18.0.100/24')
const ticks = 100 // USER_HZ
/** CPU seconds of a process (utime + stime), or of this process's reaped children */
const cpuOf = (pid: number | 'children') => {
  const f = readFileSync(`/proc/${pid === 'children' ? 'self' : pid}/stat`, 'utf8')
    .split(') ')[1]!
    .split(' ')
  // fields after the command: state is [0]; utime [11], stime [12], cutime [13], cstime [14]
  return pid === 'children'
    ? (Number(f[13]) + Number(f[14])) / ticks
    : (Number(f[11]) + Number(f[12])) / ticks
}

spawnSync('ip', ['netns', 'add', NS])
try {
  const arm = spawnSync('ip', [
    'netns',
    'exec',
    NS,
    'nft',
    fenceArmScript(TABLE, vip, 250).replaceAll('\n', '; '),
  ])
  if (arm.status !== 0) throw new Error(`arm failed: ${arm.stderr}`)

  // one process, one line per renewal, the next written when the last is confirmed
  const p = spawn('ip', ['netns', 'exec', NS, 'nft', '-e', '-i'], { stdio: ['pipe', 'pipe', 'inherit'] })
  let confirmed = 0
  let waiting: (() => void) | null = null
  let buf = ''
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    const lines = buf.split('\n')
    buf = lines.pop() ?? ''
    for (const l of lines)
      if (l.startsWith('add element inet ')) {
        confirmed++
        waiting?.()
      }
  })
  // warm-up: the process start is not a renewal
  await new Promise<void>((r) => {
    waiting = r
    p.stdin.write(`${fenceRenewLine(TABLE, vip, 250)}\n`)
  })
  const cpu0 = cpuOf(p.pid!)
  const t0 = performance.now()
  for (let i = 0; i < RENEWALS; i++) {
    await new Promise<void>((r) => {
      waiting = r
      p.stdin.write(`${fenceRenewLine(TABLE, vip, 250)}\n`)
    })
  }
  const pipeMs = performance.now() - t0
  const pipeCpu = cpuOf(p.pid!) - cpu0
  p.stdin.end()
  await new Promise((r) => p.once('exit', r))

  // one nft process per renewal
  const c0 = cpuOf('children')
  const t1 = performance.now()
  for (let i = 0; i < SPAWNS; i++) {
    const r = spawnSync('ip', ['netns', 'exec', NS, 'nft', fenceRenewLine(TABLE, vip, 250)])
    if (r.status !== 0) throw new Error(`renewal failed: ${r.stderr}`)
  }
  const spawnMs = performance.now() - t1
  const spawnCpu = cpuOf('children') - c0
  const at20 = (cpuPerRenewal: number) => `${(cpuPerRenewal * 20 * 100).toFixed(2)} % of a core`
  process.stdout.write(
    [
      `${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Node ${process.version}`,
      '| renewal path | per renewal, wall | per renewal, CPU | CPU at 20 renewals/s |',
      '|---|---|---|---|',
      `| one \`nft -e -i\` process, a line each (${RENEWALS}, confirmed ${confirmed - 1}) | ${(pipeMs / RENEWALS).toFixed(2)} ms | ${((pipeCpu / RENEWALS) * 1000).toFixed(3)} ms | ${at20(pipeCpu / RENEWALS)} |`,
      `| one \`ip netns exec … nft\` process each (${SPAWNS}) | ${(spawnMs / SPAWNS).toFixed(2)} ms | ${((spawnCpu / SPAWNS) * 1000).toFixed(3)} ms | ${at20(spawnCpu / SPAWNS)} |`,
      '',
    ].join('\n'),
  )
} finally {
  spawnSync('ip', ['netns', 'del', NS])
}
