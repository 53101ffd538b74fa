import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { lookup } from 'node:dns/promises'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { type FileHandle, open, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type TrackedCheck, TrackedCheckSchema } from '@pgmesh/protocol'
import { createFileCheckRunner, runFileCheck } from './run-file.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-file-check-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const file = (path: string, failWhen: 'exists' | 'missing', timeoutMs = 1000) =>
  TrackedCheckSchema.parse({ name: 'f', kind: 'file', path, failWhen, timeoutMs }) as Extract<
    TrackedCheck,
    { kind: 'file' }
  >
const never = new AbortController().signal

describe('file check', () => {
  it("failWhen 'exists' fails while the file exists", async () => {
    const flag = join(dir, 'maintenance')
    assert.deepEqual(await runFileCheck(file(flag, 'exists'), never), { ok: true })
    writeFileSync(flag, '')
    const r = await runFileCheck(file(flag, 'exists'), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /exists/)
    rmSync(flag)
    assert.deepEqual(await runFileCheck(file(flag, 'exists'), never), { ok: true })
  })

  it("failWhen 'missing' fails while the file is absent", async () => {
    const ready = join(dir, 'ready')
    const r = await runFileCheck(file(ready, 'missing'), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /is missing/)
    writeFileSync(ready, '')
    assert.deepEqual(await runFileCheck(file(ready, 'missing'), never), { ok: true })
    // a path through a regular file is absent, not an error
    assert.equal((await runFileCheck(file(join(ready, 'sub'), 'missing'), never)).ok, false)
    assert.equal((await runFileCheck(file(join(ready, 'sub'), 'exists'), never)).ok, true)
  })
})

/** Resolves with how long `p` took, or null when it took longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<number | null> {
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  const r = await Promise.race([
    p.then(() => performance.now() - t0),
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms)
    }),
  ])
  clearTimeout(timer)
  return r
}

describe('file check on a hung file system', () => {
  // opening a FIFO for reading blocks a libuv thread until a writer comes, as a stat on a hung
  // NFS mount does: a real stand-in for the thread a stuck probe holds
  const fifo = join(dir, 'hung')
  execFileSync('mkfifo', [fifo])
  const opened: Promise<FileHandle>[] = []
  const hungProbe = (calls: string[]) => (path: string) => {
    calls.push(path)
    const h = open(fifo, 'r')
    opened.push(h)
    return h.then(() => true)
  }
  /** a writer releases every blocked reader; then all handles are closed */
  const release = async () => {
    const w = openSync(fifo, 'w')
    const handles = await Promise.all(opened.splice(0))
    closeSync(w)
    await Promise.all(handles.map((h) => h.close()))
  }
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)

  it('the stand-in is real: that many blocked probes stall every other file call', async () => {
    const calls: string[] = []
    const probe = hungProbe(calls)
    for (let i = 0; i < threads; i++) void probe(fifo)
    try {
      assert.equal(await within(stat(dir), 500), null, 'a stat waits while the pool is taken')
    } finally {
      await release()
    }
    assert.notEqual(await within(stat(dir), 5_000), null)
  })

  it('runs of a hung check share one probe, probes are capped, and fs and DNS keep working', async () => {
    const calls: string[] = []
    const run = createFileCheckRunner(hungProbe(calls), 2)
    try {
      const hung = file(join(dir, 'nfs', 'flag'), 'exists', 50)
      for (let i = 0; i < threads * 3; i++) {
        const r = await run(hung, never)
        assert.equal(r.ok, false)
        assert.match(r.error ?? '', /timed out after 50 ms/)
      }
      assert.equal(calls.length, 1, 'one probe in flight for the path, not one per run')
      // a second hung path takes the second slot; a third is refused at once, unprobed
      assert.equal((await run(file(join(dir, 'nfs2'), 'exists', 50), never)).ok, false)
      const third = await run(file(join(dir, 'nfs3'), 'exists', 50), never)
      assert.match(third.error ?? '', /not probed: 2 file check\(s\) are blocked/)
      assert.equal(calls.length, 2)
      // the thread pool still has room: file calls and DNS answer
      assert.notEqual(await within(stat(dir), 2_000), null, 'a stat still completes')
      assert.notEqual(await within(lookup('localhost'), 2_000), null, 'a DNS lookup still completes')
    } finally {
      await release()
    }
    // once the blocked probes return, the next run starts a new one
    await new Promise((r) => setTimeout(r, 20))
    await run(file(join(dir, 'nfs', 'flag'), 'exists', 50), never)
    assert.equal(calls.length, 3)
    await release()
  })
})
