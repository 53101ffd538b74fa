import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const CLI = join(ROOT, 'mesh-node', 'dist', 'pgmesh.mjs')
/**
 * The V8 flags every shipped launcher gives a node (the systemd unit, the .deb's `pgmesh`, the npm
 * `pgmesh` launcher, deploy/demo.sh and deploy/vip-lab.sh; test/runtime-flags.test.ts keeps them
 * equal): tests and benchmarks run the node as operators do.
 */
export const NODE_FLAGS = ['--max-semi-space-size=2'] as const

/** A port that was free a moment ago on 127.0.0.1. */
/**
 * A free loopback port below the kernel's ephemeral range (32768+): a port from that range can be
 * taken by any outgoing connection between this check and the node binding it. The range is wide
 * (12,700 ports, clear of the testbed's fixed 12379/15432/18008 defaults) because test files run
 * in parallel and each draws its ports at random: in 2,700 ports, a 16-node test and its
 * neighbours drew the same port often enough to fail CI once (EADDRINUSE). A port is never handed
 * out twice by one process.
 */
const PORT_LOW = 20_000
const PORT_SPAN = 12_700
const handedOut = new Set<number>()
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_LOW + Math.floor(Math.random() * PORT_SPAN)
    if (handedOut.has(port)) continue
    const free = await new Promise<boolean>((done) => {
      const s = createServer()
      s.once('error', () => done(false))
      s.listen(port, '127.0.0.1', () => s.close(() => done(true)))
    })
    if (free) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error(`no free port in ${PORT_LOW}-${PORT_LOW + PORT_SPAN - 1}`)
}

/**
 * Everything a test starts, so `cleanup()` can stop it by PID and remove its files whatever
 * happened in between.
 */
export class Sandbox {
  readonly procs = new Set<ChildProcess>()
  dir = ''
  /** processes that failed on their own (exit status 1: a runtime failure), for the post-mortem */
  readonly #crashed: { log: string; pid: number | undefined }[] = []

  async init(prefix: string): Promise<string> {
    this.dir = await mkdtemp(join(tmpdir(), `pgmesh-${prefix}-`))
    liveSandboxes.add(this)
    return this.dir
  }

  /** Synchronous last resort when the runner itself is interrupted: no orphans. */
  killAll(): void {
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL')
  }

  /** Spawns `node ARGS` with output to LOG in the sandbox dir (cwd: the sandbox unless given). */
  spawnNode(args: readonly string[], log: string, cwd = this.dir): ChildProcess {
    return this.spawnCommand(process.execPath, [...NODE_FLAGS, ...args], log, cwd)
  }

  /** Spawns any command the same way (`ip netns exec NS ...` replaces itself, so the PID is the command's). */
  spawnCommand(command: string, args: readonly string[], log: string, cwd = this.dir): ChildProcess {
    const out = createWriteStream(join(this.dir, log))
    const p = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    p.stdout?.pipe(out)
    p.stderr?.pipe(out)
    this.procs.add(p)
    p.once('exit', (code) => {
      this.procs.delete(p)
      if (code === 1) this.#crashed.push({ log, pid: p.pid })
    })
    return p
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) if (p.pid !== undefined && p.exitCode === null) p.kill('SIGKILL')
    const deadline = Date.now() + 5000
    while (this.procs.size > 0 && Date.now() < deadline) await sleep(20)
    // a CI run keeps no sandbox: say why a process died while its log still exists
    for (const c of this.#crashed) {
      const text = await readFile(join(this.dir, c.log), 'utf8').catch(() => '')
      process.stderr.write(
        `# ${c.log} (pid ${c.pid}) exited with status 1; its last lines:\n${text.slice(-3000)}\n`,
      )
    }
    // PGMESH_KEEP_TEST_DIRS=1 keeps logs and data of the run for a post-mortem
    if (this.dir !== '' && process.env.PGMESH_KEEP_TEST_DIRS !== '1')
      await rm(this.dir, { recursive: true, force: true })
    liveSandboxes.delete(this)
  }
}

const liveSandboxes = new Set<Sandbox>()
process.once('exit', () => {
  for (const s of liveSandboxes) s.killAll()
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const s of liveSandboxes) s.killAll()
    process.exit(130)
  })
}

export function isRunning(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null
}

export async function exited(p: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (!isRunning(p)) return p.exitCode
  return await Promise.race([
    new Promise<number | null>((done) => p.once('exit', (code) => done(code))),
    sleep(timeoutMs).then(() => {
      throw new Error(`process ${p.pid} did not exit within ${timeoutMs} ms`)
    }),
  ])
}

/** Polls `check` until it returns a value other than undefined, or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      lastError = undefined
      const v = await check()
      if (v !== undefined) return v
    } catch (e) {
      lastError = e
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`,
      )
    }
    await sleep(everyMs)
  }
}

/**
 * Waits until the log LOG in the sandbox has a line matching RE. A child's output reaches its log
 * through a pipe and a write stream in this process, so a line can land after the API already shows
 * the state it describes: read logs with this, not with one readFile.
 */
export async function waitForLogLine(
  sandbox: Sandbox,
  log: string,
  re: RegExp,
  timeoutMs = 5000,
): Promise<string> {
  return await waitFor(`a line matching ${re} in ${log}`, timeoutMs, async () => {
    const text = await readFile(join(sandbox.dir, log), 'utf8').catch(() => '')
    return text.split('\n').find((l) => re.test(l))
  })
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCli(
  sandbox: Sandbox,
  args: readonly string[],
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], {
    cwd: sandbox.dir || ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  sandbox.procs.add(p)
  let stdout = ''
  let stderr = ''
  p.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const code = await exited(p, timeoutMs)
  sandbox.procs.delete(p)
  return { code, stdout, stderr }
}
