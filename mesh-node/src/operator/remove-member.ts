import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'
import type { MembershipState } from '../membership/membership.js'

/**
 * Whether an operator may remove `id` on this node: not itself, and not a member this node still
 * hears from (alive) or has just stopped hearing from (suspect: it may be a blip). `listed` are the
 * ids the node knows from elsewhere: the founding members and the voters, which a dead member
 * never heard from by this node still counts in. Answers the incarnation to remove.
 */
export function checkRemovable(
  id: string,
  self: string,
  membership: MembershipState,
  listed: readonly string[],
): Result<{ incarnation: number }> {
  if (id === self) {
    return err(
      pgmeshError(
        'MEMBER_IS_SELF',
        `${id} is this node; to take it out of service use maintenance, or stop it and remove it from another node`,
      ),
    )
  }
  const rec = membership.members.get(id)
  if (rec === undefined) {
    const removed = membership.removed.get(id)
    if (removed !== undefined) return ok({ incarnation: removed.incarnation })
    if (listed.includes(id)) return ok({ incarnation: 0 })
    return err(pgmeshError('MEMBER_NOT_FOUND', `no member ${id} is known to this node`))
  }
  if (rec.state === 'alive' || rec.state === 'suspect') {
    return err(
      pgmeshError(
        'MEMBER_NOT_DEAD',
        `member ${id} is ${rec.state} on this node; only a dead or left member can be removed (stop it first, then wait until it is dead)`,
      ),
    )
  }
  return ok({ incarnation: rec.incarnation })
}
