import { z } from 'zod'

/** Node ids name a node in logs, the API and the config; they are stable across restarts. */
export const NodeIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
    'must be 1-63 characters: letters, digits, _ . - (starting with a letter or digit)',
  )

export const PrioritySchema = z.number().int().min(1).max(254)

/** A duration field in ms with its documented default and bounds. */
export const ms = (def: number, min: number, max: number) => z.number().int().min(min).max(max).default(def)
