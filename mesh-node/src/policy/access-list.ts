import { type IpAddress, parseCidr } from '@pgmesh/protocol'
import { PrefixTrie } from './prefix-trie.js'

export interface AccessRule {
  readonly list: 'allow' | 'deny'
  readonly cidr: string
  hits: number
}

export type AccessVerdict =
  | { readonly admit: true; readonly rule: AccessRule | null }
  | { readonly admit: false; readonly reason: 'denied' | 'notAllowed'; readonly rule: AccessRule | null }

/**
 * A listener's allow and deny lists. The most specific entry holding the client's address decides
 * (a tie between the lists goes to deny); no entry: admitted when the allow list is empty.
 * Entries are validated by the config schema; an invalid one here is skipped.
 */
export class AccessList {
  readonly rules: AccessRule[] = []
  readonly #trie = new PrefixTrie()
  readonly #allowAll: boolean

  constructor(allow: readonly string[], deny: readonly string[], previous?: AccessList) {
    const hits = new Map<string, number>()
    for (const r of previous?.rules ?? []) hits.set(`${r.list} ${r.cidr}`, r.hits)
    this.#allowAll = allow.length === 0
    const add = (list: 'allow' | 'deny', cidr: string) => {
      const p = parseCidr(cidr)
      if ('error' in p) return
      const index = this.rules.length
      this.rules.push({ list, cidr, hits: hits.get(`${list} ${cidr}`) ?? 0 })
      // deny entries are inserted last and replace an allow entry of the same prefix
      this.#trie.insert(p, index, (old) => this.rules[old]!.list === 'deny')
    }
    for (const c of allow) add('allow', c)
    for (const c of deny) add('deny', c)
  }

  get empty(): boolean {
    return this.rules.length === 0
  }

  check(ip: IpAddress): AccessVerdict {
    const i = this.#trie.match(ip)
    if (i < 0)
      return this.#allowAll ? { admit: true, rule: null } : { admit: false, reason: 'notAllowed', rule: null }
    const rule = this.rules[i]!
    rule.hits++
    return rule.list === 'allow' ? { admit: true, rule } : { admit: false, reason: 'denied', rule }
  }
}
