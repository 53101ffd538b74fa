import { spawn } from 'node:child_process'

/**
 * Whether this node lets an argv from the cluster config run (`node.allow.commands`, or the same
 * argv in the node's own file): `CommandAllowance` from the protocol package implements it.
 */
export interface CommandGate {
  allows(argv: readonly string[]): boolean
  /** why `argv` is refused, for logs and check errors */
  refusal(argv: readonly string[]): string
}

export interface RunCommandOptions {
  /** the child (and its process group) is killed with SIGKILL after this long */
  readonly timeoutMs: number
  /** aborting kills the child the same way */
  readonly signal?: AbortSignal
  /** the child's whole environment; default: the parent's */
  readonly env?: NodeJS.ProcessEnv
  /** stdout and stderr are each kept up to this many bytes, the rest is read and dropped. Default 16 KiB */
  readonly maxOutputBytes?: number
}

export interface CommandResult {
  /** exit code, or null when the child was killed by a signal or never started */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
  readonly aborted: boolean
  /** set when the child could not be started (ENOENT, EACCES) */
  readonly spawnError: string | null
}

/** How long to wait for the pipes to close after the child exited (a grandchild may hold them open). */
const PIPE_GRACE_MS = 100

/**
 * Runs argv without a shell, in its own process group, with a hard timeout. Never rejects:
 * every failure is in the result. Resolves once the child has exited (killed or not).
 */
export function runCommand(argv: readonly string[], opts: RunCommandOptions): Promise<CommandResult> {
  const [file, ...args] = argv
  const max = opts.maxOutputBytes ?? 16 * 1024
  const empty = { code: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false }
  if (file === undefined) return Promise.resolve({ ...empty, spawnError: 'empty command' })
  if (opts.signal?.aborted) return Promise.resolve({ ...empty, aborted: true, spawnError: null })

  return new Promise<CommandResult>((resolve) => {
    let child: ReturnType<typeof spawn>
    try {
      child = spawn(file, args, {
        env: opts.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        // own process group, so a kill reaches what a script started too
        detached: true,
      })
    } catch (e) {
      resolve({ ...empty, spawnError: e instanceof Error ? e.message : String(e) })
      return
    }
    const out: Buffer[] = []
    const err: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    child.stdout?.on('data', (b: Buffer) => {
      if (outBytes < max) out.push(b.subarray(0, max - outBytes))
      outBytes += b.length
    })
    child.stderr?.on('data', (b: Buffer) => {
      if (errBytes < max) err.push(b.subarray(0, max - errBytes))
      errBytes += b.length
    })

    let timedOut = false
    let aborted = false
    let spawnError: string | null = null
    let exited = false
    let settled = false

    const kill = () => {
      if (exited || child.pid === undefined) return
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        try {
          child.kill('SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    const timer = setTimeout(() => {
      timedOut = true
      kill()
    }, opts.timeoutMs)
    const onAbort = () => {
      aborted = true
      kill()
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true })

    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      child.stdout?.destroy()
      child.stderr?.destroy()
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        aborted,
        spawnError,
      })
    }

    child.once('error', (e) => {
      // spawn failure: no 'exit' follows
      if (child.pid === undefined) {
        spawnError = e.message
        finish(null, null)
      }
    })
    child.once('exit', (code, signal) => {
      exited = true
      clearTimeout(timer)
      // a grandchild the command left running may hold the pipes open: do not wait for it long
      const grace = setTimeout(() => finish(code, signal), PIPE_GRACE_MS)
      child.once('close', () => {
        clearTimeout(grace)
        finish(code, signal)
      })
    })
  })
}

/** One line for a log or an error message: why a command did not succeed. */
export function describeFailure(r: CommandResult, timeoutMs: number): string {
  if (r.spawnError !== null) return `could not start: ${r.spawnError}`
  if (r.timedOut) return `timed out after ${timeoutMs} ms (killed)`
  if (r.aborted) return 'aborted (killed)'
  const how = r.code !== null ? `exited with code ${r.code}` : `killed by ${r.signal ?? 'a signal'}`
  const detail = r.stderr.trim().split('\n').slice(-3).join(' / ').slice(0, 300)
  return detail === '' ? how : `${how}: ${detail}`
}
