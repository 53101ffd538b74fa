import { open, readFile, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { err, ok, pgmeshError, type Result, VoterConfigSchema } from '@pgmesh/protocol'
import { z } from 'zod'
import type { PersistedElection } from './types.js'

/** The file the election keeps its term, vote and voters in (Raft's "persistent state"). */
export const ElectionFileSchema = z
  .object({
    term: z.number().int().min(0),
    votedFor: z.string().nullable(),
    voters: VoterConfigSchema.nullable(),
  })
  .strict()

export interface ElectionStore {
  load(): Promise<Result<PersistedElection | null>>
  /** resolves once the state is on disk (fsync): a vote must never be forgotten by a crash */
  save(state: PersistedElection): Promise<void>
}

export function fileElectionStore(dataDir: string): ElectionStore {
  const file = join(dataDir, 'election.json')
  return {
    async load() {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(null)
        return err(pgmeshError('ELECTION_STATE_INVALID', `cannot read ${file}: ${(e as Error).message}`))
      }
      try {
        const r = ElectionFileSchema.safeParse(JSON.parse(text))
        if (r.success) return ok(r.data)
      } catch {
        // fall through: not JSON
      }
      return err(
        pgmeshError(
          'ELECTION_STATE_INVALID',
          `${file} is damaged; if this node is stopped on every peer's side, move it away to rejoin as a new voter`,
        ),
      )
    },
    async save(state) {
      const tmp = `${file}.tmp-${process.pid}`
      const fh = await open(tmp, 'w', 0o600)
      try {
        await fh.writeFile(`${JSON.stringify(state)}\n`)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, file)
      const dir = await open(dirname(file), 'r')
      try {
        await dir.sync()
      } finally {
        await dir.close()
      }
    },
  }
}

/** For tests and `vip.driver: none` labs that run without a data dir. */
export function memoryElectionStore(): ElectionStore & { saved: PersistedElection | null } {
  const store = {
    saved: null as PersistedElection | null,
    async load() {
      return ok(store.saved)
    },
    async save(s: PersistedElection) {
      store.saved = s
    },
  }
  return store
}
