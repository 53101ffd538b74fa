import assert from 'node:assert/strict'
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { chmod, copyFile, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort, ROOT, Sandbox, waitFor } from './helpers/processes.js'

/**
 * The newcomer path, as docs print it: on a copy of this checkout (no node_modules, no dist, no
 * .runtime of its own), every command in README.md's sh blocks and every command the demo prints
 * is run, in order, and must succeed. The commands are parsed out of README.md and the demo's
 * output, so this fails when the docs drift from what works.
 *
 * What is adapted, and why:
 * - README ports 7946-7977 are moved to a free range (other tests and programs may hold them).
 * - A command that fails is retried for up to RETRY_S seconds, as a person retries a `curl` typed
 *   before the nodes were up; a command still failing then fails the test.
 * - `./deploy/test.sh` runs as `./deploy/test.sh install` (its install half): the whole suite
 *   would run this test again. In the Development block, build, typecheck and lint run; the test
 *   suites themselves are what runs this test.
 * - `${EDITOR:-vi}` is `true`; a printed `pgmesh start` meant for its own terminal runs in the
 *   background.
 * - Node.js runtimes installed by deploy/runtime.sh are shared with the checkout under test
 *   (PGMESH_RUNTIME_DIR) rather than fetched again; the runtime install itself is what
 *   `deploy/test.sh install` on a fresh machine proves (CI).
 */

const RETRY_S = 40
const README_PORT = /127\.0\.0\.1:(79[4-9]\d)\b/g

/** The commands of every ```sh block, one string per line (continuations joined). */
function shBlocks(markdown: string): string[][] {
  const blocks: string[][] = []
  for (const m of markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) blocks.push(commandLines(m[1]!))
  return blocks
}

/** Command lines of a script: comments and blank lines dropped, `\` continuations joined. */
function commandLines(text: string): string[] {
  const out: string[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = pending === '' ? raw.trim() : `${pending} ${raw.trim()}`
    if (line.endsWith('\\')) {
      pending = line.slice(0, -1).trim()
      continue
    }
    pending = ''
    if (line === '' || line.startsWith('#')) continue
    out.push(line)
  }
  return out
}

/** The commands a script prints: the lines indented by exactly two spaces between `from` and `to`. */
function demoCommands(
  output: string,
  from = 'Try, in another terminal',
  to = 'Ctrl-C stops the demo',
): string[] {
  const start = output.indexOf(from)
  const end = output.indexOf(to, start)
  assert.ok(start >= 0 && end > start, `the demo printed no commands:\n${output}`)
  const section = output.slice(start, end).split('\n').slice(1)
  const indented: string[] = []
  for (let i = 0; i < section.length; i++) {
    const line = section[i]!
    if (!/^ {2}\S/.test(line)) continue
    let cmd = line
    while (cmd.endsWith('\\') && i + 1 < section.length) cmd = `${cmd.slice(0, -1)} ${section[++i]!.trim()}`
    indented.push(cmd.trim())
  }
  return indented
}

/**
 * A bash script running `commands` in one shell, as a person types them: each foreground command
 * retried until it succeeds (bounded), its output framed by `>>> cmd` / `<<< ok` markers.
 */
function script(commands: readonly string[], bgLog: string): string {
  const q = (t: string) => `'${t.replaceAll("'", "'\\''")}'`
  const lines = [
    'set -u',
    `retry() { local deadline=$((SECONDS + ${RETRY_S})); echo ">>> $1"; until eval "$1"; do if [ $SECONDS -ge $deadline ]; then echo "<<< FAILED: $1"; exit 1; fi; sleep 1; echo ">>> (again) $1"; done; echo "<<< ok"; }`,
  ]
  for (const c of commands) {
    const bg = c.endsWith('&') ? c.slice(0, -1).trim() : /^pgmesh start\b/.test(c) ? c : null
    if (bg === null) lines.push(`retry ${q(c)}`)
    // a node's own output goes to a log, as it would scroll by in its terminal
    else lines.push(`echo ${q(`&&& ${bg} &`)}`, `${bg} >>${q(bgLog)} 2>&1 &`)
  }
  lines.push('echo "=== all commands done"')
  return `${lines.join('\n')}\n`
}

/** Output of each command, keyed by the command as run (the last, successful, attempt). */
function outputs(log: string): Map<string, string> {
  const out = new Map<string, string>()
  const re = /^>>> (?:\(again\) )?(.*)\n([\s\S]*?)^<<< ok$/gm
  for (const m of log.matchAll(re)) out.set(m[1]!, m[2]!.split(/^>>> \(again\) .*$/m).at(-1)!)
  return out
}

/** The checkout as git sees it (tracked files and new ones, not ignored ones): a fresh clone, plus local edits. */
async function copyCheckout(dest: string): Promise<void> {
  const files = execFileSync(
    'git',
    ['-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    {
      encoding: 'utf8',
    },
  )
    .split('\0')
    .filter((f) => f !== '')
  for (const f of files) {
    const from = join(ROOT, f)
    const s = await stat(from).catch(() => null)
    if (s === null || !s.isFile()) continue // deleted in the work tree
    await mkdir(dirname(join(dest, f)), { recursive: true })
    await copyFile(from, join(dest, f))
  }
}

/** PIDs of pgmesh processes working in `dir` (the nodes the docs' commands started). */
async function pgmeshProcessesIn(dir: string): Promise<number[]> {
  const pids: number[] = []
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue
    const cwd = await readlink(`/proc/${e}/cwd`).catch(() => '')
    if (cwd !== dir && !cwd.startsWith(`${dir}/`)) continue
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')
    if (/pgmesh/.test(cmd) && /\0start\0/.test(cmd)) pids.push(Number(e))
  }
  return pids
}

function run(
  sb: Sandbox,
  command: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): { proc: ChildProcess; output: () => string } {
  let output = ''
  const proc = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  sb.procs.add(proc)
  proc.stdout?.on('data', (d: Buffer) => {
    output += d.toString()
  })
  proc.stderr?.on('data', (d: Buffer) => {
    output += d.toString()
  })
  return { proc, output: () => output }
}

/**
 * The exit code, or a rejection after `ms`. Unlike helpers/processes.ts' `exited`, it clears its
 * timer: a pending 15-minute timer would keep this file's process alive after the tests end.
 */
function exitOf(p: ChildProcess, ms: number): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode)
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`process ${p.pid} did not exit within ${ms} ms`)), ms)
    p.once('exit', (code) => {
      clearTimeout(timer)
      done(code)
    })
  })
}

async function runToEnd(
  sb: Sandbox,
  what: string,
  command: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<string> {
  const r = run(sb, command, args, cwd, env)
  const code = await exitOf(r.proc, timeoutMs).catch((e: unknown) => {
    r.proc.kill('SIGKILL')
    throw new Error(`${what}: ${(e as Error).message}\n${r.output().slice(-4000)}`)
  })
  assert.equal(code, 0, `${what} exited ${code}:\n${r.output().slice(-6000)}`)
  return r.output()
}

function spawnOk(command: string, args: readonly string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

async function freeBase(count: number, step: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + ((await freePort()) % 80) * 100
    let free = true
    for (let i = 0; i < count && free; i++) {
      free = await new Promise<boolean>((done) => {
        const s = createServer()
        s.once('error', () => done(false))
        s.listen(base + i * step, '127.0.0.1', () => s.close(() => done(true)))
      })
    }
    if (free) return base
  }
  throw new Error('no free port range')
}

describe('the newcomer path: every command README.md and the demo print works on a fresh checkout', {
  timeout: 1_500_000,
}, () => {
  const sb = new Sandbox()
  let copy = ''
  let env: NodeJS.ProcessEnv = {}
  let demoTestbed = ''
  let labDir = ''
  let labEnv: NodeJS.ProcessEnv = {}

  before(async () => {
    await sb.init('newcomer')
    // the demo's Patroni and the lab's PostgreSQL run as the postgres user, in this checkout
    await chmod(sb.dir, 0o755)
    copy = join(sb.dir, 'pgmesh')
    await copyCheckout(copy)
    // a newcomer's PATH: no runtime of ours on it yet (the docs' first command puts it there)
    const path = (process.env.PATH ?? '')
      .split(':')
      .filter((p) => !p.includes('/.runtime/'))
      .join(':')
    env = {
      ...process.env,
      PATH: path || '/usr/local/bin:/usr/bin:/bin',
      PGMESH_RUNTIME_DIR: join(ROOT, '.runtime'),
      EDITOR: 'true',
    }
    delete env.NODE_OPTIONS
  })

  after(async () => {
    if (copy !== '') {
      for (const pid of await pgmeshProcessesIn(copy)) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    if (labDir !== '') {
      await runToEnd(
        sb,
        'vip-lab down',
        join(copy, 'deploy', 'vip-lab.sh'),
        ['down', labDir],
        copy,
        labEnv,
        60_000,
      ).catch(() => undefined)
    }
    if (demoTestbed !== '') {
      await runToEnd(
        sb,
        'testbed down',
        join(ROOT, 'deploy', 'testbed.sh'),
        ['down', demoTestbed],
        ROOT,
        env,
        120_000,
      ).catch(() => undefined)
    }
    await sb.cleanup()
  })

  it("README.md: the top commands, then every sh block's commands in one shell", async () => {
    const readme = await readFile(join(copy, 'README.md'), 'utf8')
    const blocks = shBlocks(readme)
    const top = blocks.find((b) => b.some((c) => c.startsWith('./deploy/demo.sh')))
    assert.ok(top, 'README.md starts with the demo and test commands')
    assert.deepEqual(
      top.map((c) => c.split(/\s+/)[0]),
      ['./deploy/demo.sh', './deploy/test.sh'],
    )
    // the test command's install half: Debian packages, the runtime, node_modules and a build
    await runToEnd(
      sb,
      './deploy/test.sh install',
      join(copy, 'deploy', 'test.sh'),
      ['install'],
      copy,
      env,
      900_000,
    )
    // npm linked the committed launcher, though there was no dist/ at install time
    assert.equal(
      await readlink(join(copy, 'node_modules', '.bin', 'pgmesh')),
      '../@pgmesh/mesh-node/bin/pgmesh.js',
    )

    const base = await freeBase(8, 10)
    const moved = (c: string) =>
      c.replace(README_PORT, (_, p: string) => `127.0.0.1:${base + Number(p) - 7946}`)
    const dev = blocks.find((b) => b.some((c) => c.startsWith('npm run typecheck')))
    const byHand = blocks
      .filter((b) => b !== top && b !== dev)
      .flat()
      .map(moved)
    assert.ok(
      byHand[0]?.startsWith('. deploy/env.sh'),
      'the quick start begins by putting the runtime on PATH',
    )
    const devCommands = (dev ?? [])
      .map((c) => c.replace(/\s+#.*$/, ''))
      .filter((c) => /^npm run (build|typecheck|lint)$/.test(c))
    assert.equal(devCommands.length, 3, 'the Development block lists build, typecheck and lint')
    const all = [...byHand, ...devCommands.map((c) => `${c} >/dev/null`), 'npx pgmesh --version']
    await writeFile(join(sb.dir, 'readme.sh'), script(all, join(sb.dir, 'readme-nodes.log')))
    const log = await runToEnd(
      sb,
      'the README commands',
      'bash',
      [join(sb.dir, 'readme.sh')],
      copy,
      env,
      900_000,
    )
    assert.match(log, /=== all commands done/)
    const out = outputs(log)
    const get = (prefix: string) => [...out].find(([c]) => c.startsWith(prefix))?.[1] ?? ''
    assert.match(get('curl -s http://127.0.0.1'), /"members"/)
    assert.match(get('pgmesh config apply'), /cluster config version \d+ .* is applied here/)
    assert.match(get('pgmesh members remove n3'), /n3/)
    assert.match(get('npx pgmesh --version'), /^pgmesh \d+\.\d+\.\d+$/m)
    // the last block stopped the nodes it started
    await waitFor('the README nodes to stop', 20_000, async () =>
      (await pgmeshProcessesIn(copy)).length === 0 ? true : undefined,
    )
  })

  it('deploy/demo.sh: every command it prints, run in another shell, works', async () => {
    const base = 21_000 + ((await freePort()) % 10_000)
    const demoDir = join(sb.dir, 'demo')
    demoTestbed = `/tmp/pgmesh-newcomer-testbed-${base}`
    const demo = run(sb, join(copy, 'deploy', 'demo.sh'), [], copy, {
      ...env,
      PGMESH_DEMO_PORT: String(base),
      PGMESH_DEMO_DIR: demoDir,
      PGMESH_DEMO_TESTBED: demoTestbed,
      PGMESH_DEMO_SECONDS: '900',
      // a Patroni bootstrap on a loaded 2-core machine can take longer than the testbed's 120 s
      TB_TIMEOUT: '300',
    })
    try {
      const ready = await waitFor(
        'the demo to print its commands',
        420_000,
        async () =>
          demo.output().includes('Ctrl-C stops the demo')
            ? 'up'
            : demo.proc.exitCode !== null
              ? 'exited'
              : undefined,
        200,
      )
      assert.equal(ready, 'up', `the demo exited:\n${demo.output().slice(-4000)}`)
      const commands = demoCommands(demo.output())
      assert.equal(commands[0]?.replace(/\s+#.*$/, ''), '. deploy/env.sh')
      assert.ok(commands.some((c) => c.startsWith('pgmesh status')))
      assert.ok(commands.some((c) => c.startsWith('pgmesh start --id n4')))
      await writeFile(join(sb.dir, 'demo.sh'), `${script(commands, join(sb.dir, 'demo-n4.log'))}kill %1\n`)
      const log = await runToEnd(
        sb,
        'the demo commands',
        'bash',
        [join(sb.dir, 'demo.sh')],
        copy,
        env,
        600_000,
      )
      assert.match(log, /=== all commands done/)
      const out = outputs(log)
      const get = (re: RegExp) => [...out].find(([c]) => re.test(c))?.[1]
      assert.match(get(/^curl -s http.*\/v1\/status$/) ?? '', /"members"/)
      if (process.getuid?.() === 0) {
        // with PostgreSQL: the write listener reaches the primary, the read listener a replica
        assert.match(get(/psql .*# the primary/) ?? `(no such command) ${log}`, /^\s*\d+ \| f\s*$/m)
        assert.match(get(/psql .*# a replica/) ?? `(no such command) ${log}`, /^\s*\d+ \| t\s*$/m)
      }
    } finally {
      demo.proc.kill('SIGTERM')
      await exitOf(demo.proc, 60_000).catch(() => demo.proc.kill('SIGKILL'))
    }
    assert.match(demo.output(), /demo stopped/)
  })

  const netnsLab = process.getuid?.() === 0 && spawnOk('ip', ['netns', 'list'])
  it('docs/getting-started.md: the VIP lab, and every command it prints (a write through the VIP, a failover)', {
    skip: netnsLab ? false : 'needs root and network namespaces',
  }, async () => {
    const guide = await readFile(join(copy, 'docs', 'getting-started.md'), 'utf8')
    const blocks = shBlocks(guide).flat()
    assert.ok(blocks.includes('sudo deploy/vip-lab.sh up'), 'the guide starts the lab')
    assert.ok(
      blocks.some((c) => c.startsWith('sudo deploy/vip-lab.sh down')),
      'the guide stops the lab',
    )
    const tag = `nc${(await freePort()).toString(36).slice(-4)}`
    labDir = join(sb.dir, 'vip-lab')
    // a /24 of its own: other namespace tests on this machine may hold 198.18.0.0/24 or the default
    const net = `198.18.${100 + ((await freePort()) % 150)}`
    labEnv = { ...env, PGMESH_LAB_TAG: tag, PGMESH_LAB_NET: net }
    const up = await runToEnd(
      sb,
      'vip-lab.sh up',
      join(copy, 'deploy', 'vip-lab.sh'),
      ['up', labDir],
      copy,
      labEnv,
      300_000,
    )
    const commands = demoCommands(up, 'The lab is up', `deploy/vip-lab.sh down ${labDir}`)
    assert.ok(
      commands.some((c) => c.startsWith('kill -9')),
      'the lab prints the failover',
    )
    await writeFile(join(sb.dir, 'lab.sh'), script(commands, join(sb.dir, 'lab-cmds.log')))
    const log = await runToEnd(
      sb,
      'the lab commands',
      'bash',
      [join(sb.dir, 'lab.sh')],
      copy,
      labEnv,
      600_000,
    )
    assert.match(log, /=== all commands done/)
    const out = [...outputs(log)]
    const inserts = out.filter(([c]) => c.includes('insert into hello')).map(([, o]) => o)
    assert.equal(inserts.length, 2)
    assert.match(inserts[0]!, /\| the VIP\s*$/m)
    assert.match(inserts[1]!, /\| the VIP, after a failover\s*$/m)
    // after the kill, n2 (the next priority) is MASTER
    assert.match(
      out.find(([c]) => c.startsWith(`ip -n ${tag}-n2`))?.[1] ?? '',
      new RegExp(`${net.replaceAll('.', '\\.')}\\.100/`),
    )
  })
})
