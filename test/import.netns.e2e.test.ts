import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import { canRunNetns, NetnsLab } from './helpers/netns-lab.js'
import { CLI, runCli, Sandbox, waitFor } from './helpers/processes.js'

const exec = promisify(execFile)
const VIP = '198.18.0.100'
/**
 * A slow advert_int, as for a lossy network: the import scales pgmesh's election timings by it
 * (lease 2.5 s), which also keeps the election steady on a crowded test machine
 */
const ADVERT_INT_S = 10
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
    `  advert_int ${ADVERT_INT_S}`,
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
    // the same script on every host (the cluster section must be identical everywhere): the
    // node it ran on is in PGMESH_NODE
    `  notify_master "/bin/sh -c 'touch ${markerDir}/$PGMESH_NODE.master'"`,
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
  const clusterSections: unknown[] = []
  /** the node's API from inside its namespace: the HTTP status, or the body when `body` */
  const api = async (n: string, path: string, body = false): Promise<string> => {
    const { stdout } = await exec(
      'ip',
      lab.inside(n, [
        'curl',
        '-s',
        '-m',
        '2',
        ...(body ? [] : ['-o', '/dev/null', '-w', '%{http_code}']),
        `http://127.0.0.1:7947${path}`,
      ]),
      { timeout: 10_000 },
    )
    return stdout
  }

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
      clusterSections.push((parse(await readFile(out, 'utf8')) as { cluster: unknown }).cluster)
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
          // inside the namespace: the test asks through `ip netns exec`, so another lab's routes
          // in the root namespace (parallel tests use the same subnet) cannot get in the way
          '--api',
          '127.0.0.1:7947',
        ]),
        `${n}.log`,
      )
    }
  })

  it('every host gets the same cluster section (what the mesh versions and gossips)', () => {
    assert.equal(clusterSections.length, 3)
    for (const c of clusterSections.slice(1)) assert.deepEqual(c, clusterSections[0])
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
  })

  it('the 110 node becomes MASTER, adds the VIP alone, and runs its notify_master script', async () => {
    // polled as one state: on a crowded machine an early term may go to another node first
    // (then the 110 node preempts it), so only the settled picture is asserted
    await waitFor(
      'n1 to be MASTER and hold the VIP alone',
      90_000,
      async () => {
        const held = await Promise.all(NAMES.map(async (n) => (await lab.addresses(n)).includes(VIP)))
        if (held.join() !== 'true,false,false') return undefined
        return (await api('n1', '/master')) === '200' ? true : undefined
      },
      200,
    )
    assert.equal(await api('n3', '/master'), '503')
    await waitFor(
      'notify_master to run on n1',
      30_000,
      async () => (existsSync(join(sb.dir, 'n1.master')) ? true : undefined),
      100,
    ).catch(async (e: unknown) => {
      const log = (await readFile(join(sb.dir, 'n1.log'), 'utf8')).split('\n')
      const vip = log.filter((l) => /notify|"component":"vip"|VIP/.test(l)).slice(-30)
      throw new Error(`${String(e)}\nn1's VIP log:\n${vip.join('\n')}`)
    })
    // the HAProxy check became a TCP check of pgmesh's own listener, which passes: full priority;
    // the slow advert_int arrived as scaled election timings
    const status = await waitFor('n1 at its full priority', 30_000, async () => {
      const st = JSON.parse(await api('n1', '/v1/status', true)) as {
        election: { effectivePriority: number; failingChecks: string[] }
      }
      return st.election.effectivePriority === 110 ? st : undefined
    })
    assert.deepEqual(status.election.failingChecks, [])
    const config = JSON.parse(await api('n1', '/v1/config', true)) as {
      cluster: { election?: { leaseMs?: number }; checks?: { name: string; kind: string; port: number }[] }
    }
    assert.equal(config.cluster.election?.leaseMs, 250 * ADVERT_INT_S)
    assert.deepEqual(
      config.cluster.checks?.map((c) => [c.name, c.kind, c.port]),
      [['chk_haproxy', 'tcp', 5000]],
    )
  })
})
