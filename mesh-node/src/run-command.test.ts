import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { describeFailure, runCommand } from './run-command.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-run-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** A killed process whose parent died may stay a zombie until init reaps it: that counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\d+ \(.*\) Z/.test(stat)
  } catch {
    return false
  }
}

describe('runCommand', () => {
  it('reports the exit code and output of a command run without a shell', async () => {
    const r = await runCommand(['sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 2000 })
    assert.equal(r.code, 3)
    assert.equal(r.stdout, 'out\n')
    assert.equal(r.stderr, 'err\n')
    assert.equal(describeFailure(r, 2000), 'exited with code 3: err')
    const literal = await runCommand(['echo', '$HOME', ';', 'false'], { timeoutMs: 2000 })
    assert.equal(literal.stdout, '$HOME ; false\n')
  })

  it('caps the output it keeps', async () => {
    const r = await runCommand(['sh', '-c', 'head -c 100000 /dev/zero'], {
      timeoutMs: 2000,
      maxOutputBytes: 1000,
    })
    assert.equal(r.code, 0)
    assert.equal(r.stdout.length, 1000)
  })

  it('kills the whole process group on timeout', async () => {
    const pidFile = join(dir, 'grandchild.pid')
    const started = Date.now()
    const r = await runCommand(['sh', '-c', `sleep 5 & echo $! > ${pidFile}; wait`], { timeoutMs: 150 })
    assert.ok(Date.now() - started < 1500)
    assert.equal(r.timedOut, true)
    assert.equal(r.signal, 'SIGKILL')
    assert.match(describeFailure(r, 150), /timed out after 150 ms/)
    const grandchild = Number(readFileSync(pidFile, 'utf8'))
    const deadline = Date.now() + 1000
    while (alive(grandchild) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    assert.equal(alive(grandchild), false)
  })

  it('kills on abort and reports a command that cannot start', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    const r = await runCommand(['sleep', '5'], { timeoutMs: 3000, signal: ac.signal })
    assert.equal(r.aborted, true)
    assert.equal(r.signal, 'SIGKILL')
    const missing = await runCommand(['/nonexistent/pgmesh-cmd'], { timeoutMs: 1000 })
    assert.match(missing.spawnError ?? '', /ENOENT/)
    assert.match(describeFailure(missing, 1000), /could not start/)
  })

  it('does not wait long for a background process that keeps the pipes open', async () => {
    const pidFile = join(dir, 'bg.pid')
    const started = Date.now()
    const r = await runCommand(['sh', '-c', `sleep 3 & echo $! > ${pidFile}`], { timeoutMs: 2000 })
    assert.equal(r.code, 0)
    assert.ok(Date.now() - started < 1000)
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL')
  })
})
