import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { canRunNetns, NetnsLab } from './helpers/netns-lab.js'
import { CLI, runCli, Sandbox, waitFor } from './helpers/processes.js'

const VIP = '198.18.0.100'
const PRIORITIES = { n1: 110, n2: 105, n3: 100 } as const
const NAMES = Object.keys(PRIORITIES) as (keyof typeof PRIORITIES)[]

/**
 * What an operator runs today on each proxy host: HAProxy with the Percona Patroni listeners and
 * Keepalived tracking HAProxy, unicast VRRP between the three hosts, a notify_master script.
 */
function haproxyCfg(): string {
  return [
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    'listen primary',
    '  bind *:5000',
    '  option httpchk /primary',
    '  http-check expect status 200',
    // nothing listens there: the databases are down, which does not matter to the VIP
    '  server pg1 127.0.0.1:6543 check port 6544',
    '',
  ].join('\n')
}

function keepalivedConf(
  name: keyof typeof PRIORITIES,
  addr: (n: string) => string,
  markerDir: string,
): string {
  return [
    'global_defs {',
    `  router_id ${name}`,
    '}',
    'vrrp_script chk_haproxy {',
    '  script "/usr/bin/killall -0 haproxy"',
    '  interval 1',
    '  weight -20',
    '}',
    'vrrp_instance VI_1 {',
    '  state BACKUP',
    '  interface eth0',
    '  virtual_router_id 51',
    `  priority ${PRIORITIES[name]}`,
    '  advert_int 1',
    `  unicast_src_ip ${addr(name)}`,
    '  unicast_peer {',
    ...NAMES.filter((n) => n !== name).map((n) => `    ${addr(n)}`),
    '  }',
    '  virtual_ipaddress {',
    `    ${VIP}/24 dev eth0`,
    '  }',
    '  track_script {',
    '    chk_haproxy',
    '  }',
    `  notify_master "/usr/bin/touch ${join(markerDir, `${name}.master`)}"`,
    '}',
    '',
  ].join('\n')
}

describe('pgmesh import: the imported configs run a real 3-node cluster in namespaces', {
  skip: canRunNetns() ?? false,
  timeout: 180_000,
}, () => {
  const sb = new Sandbox()
  const lab = new NetnsLab()
  const addr = (n: string) => lab.host(n).address

  before(async () => {
    await sb.init('import-netns')
    await lab.create(NAMES)
    const secret = join(sb.dir, 'cluster.secret')
    assert.equal((await runCli(sb, ['keygen', '--out', secret])).code, 0)
    await writeFile(join(sb.dir, 'haproxy.cfg'), haproxyCfg())
    for (const n of NAMES) {
      const conf = join(sb.dir, `keepalived-${n}.conf`)
      await writeFile(conf, keepalivedConf(n, addr, sb.dir))
      const members = NAMES.filter((m) => m !== n).flatMap((m) => ['--member', `${m}=${PRIORITIES[m]}`])
      const out = join(sb.dir, `${n}.yaml`)
      const r = await runCli(sb, [
        'import',
        '--haproxy',
        join(sb.dir, 'haproxy.cfg'),
        '--keepalived',
        conf,
        ...members,
        '--out',
        out,
      ])
      assert.equal(r.code, 0, r.stderr)
      // only the package paths and the API address differ from the import on a real host
      sb.spawnCommand(
        'ip',
        lab.inside(n, [
          process.execPath,
          CLI,
          'start',
          '--config',
          out,
          '--secret-file',
          secret,
          '--data-dir',
          join(sb.dir, 'data', n),
          '--api',
          `${addr(n)}:7947`,
        ]),
        `${n}.log`,
      )
    }
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
  })

  it('the 110 node becomes MASTER, adds the VIP alone, and runs its notify_master script', async () => {
    await waitFor(
      'n1 to hold the VIP',
      60_000,
      async () => ((await lab.addresses('n1')).includes(VIP) ? true : undefined),
      100,
    )
    for (const n of ['n2', 'n3'])
      assert.equal((await lab.addresses(n)).includes(VIP), false, `${n} holds no VIP`)
    const res = await fetch(`http://${addr('n1')}:7947/master`, { signal: AbortSignal.timeout(2000) })
    await res.body?.cancel()
    assert.equal(res.status, 200)
    await waitFor(
      'notify_master to run on n1',
      10_000,
      async () => (existsSync(join(sb.dir, 'n1.master')) ? true : undefined),
      100,
    )
    assert.equal(existsSync(join(sb.dir, 'n2.master')), false)
    // the HAProxy check became a TCP check of pgmesh's own listener, which passes: full priority
    const status = (await (
      await fetch(`http://${addr('n1')}:7947/v1/status`, { signal: AbortSignal.timeout(2000) })
    ).json()) as {
      election: { effectivePriority: number; failingChecks: string[] }
    }
    assert.equal(status.election.effectivePriority, 110)
    assert.deepEqual(status.election.failingChecks, [])
  })
})
