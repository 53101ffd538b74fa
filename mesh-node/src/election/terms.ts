import type { Draft } from './types.js'

/** Raft's rule: a higher term is adopted, and the vote given in the old one no longer binds. */
export function adoptTerm(d: Draft, term: number): void {
  if (term > d.term) {
    d.term = term
    d.votedFor = null
  }
}
