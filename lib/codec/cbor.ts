/**
 * zrpc's CBOR profile: what we write, and what we agree to read from an untrusted peer.
 *
 * cbor-x alone is not safe for bytes from the network: its size limits are process-global, it has no
 * nesting-depth limit, and it honours tags that build cyclic graphs (28/29), packed CBOR (51), Error
 * and RegExp objects (27) and record definitions whatever the options. So every frame is first walked
 * by {@link scanCbor}, a pure, allocation-free well-formedness check with per-call limits, and only
 * bytes that pass it reach cbor-x.
 *
 * The profile (stated in docs/protocol.md):
 * - definite lengths only; no indefinite-length strings, arrays or maps, no break byte
 * - simple values false, true, null, undefined; floats of 16, 32 and 64 bits; no other simple values
 * - map keys are text strings or integers
 * - tags only from an explicit allow list (empty by default)
 * - at most `maxDepth` nested arrays/maps and `maxBytes` in all; every declared length fits the bytes left
 * - at most `maxItems` data items in one top-level item, `maxMapEntries` entries in one map and
 *   `maxArrayLength` items in one array: cbor-x's cost is per item, not per byte, so bytes alone do not
 *   bound the time one item holds the event loop
 */
import { Decoder, Encoder } from 'cbor-x'

/**
 * Limits for reading CBOR from a peer.
 *
 * The item limits are optional so that limits written before they existed (and spreads such as
 * `{ ...DEFAULT_CBOR_LIMITS, maxBytes }`) keep working; an absent one means its default, never "no
 * limit" (pass `Infinity` for that).
 *
 * @example
 * ```ts
 * const limits: CborLimits = { ...DEFAULT_CBOR_LIMITS, maxBytes: 1024 * 1024, maxItems: 10_000 }
 * const value = decodeCbor(bytes, limits)
 * ```
 */
export interface CborLimits {
  /** Largest input accepted, in bytes. */
  readonly maxBytes: number
  /** Deepest nesting of arrays and maps accepted (the top-level item is depth 1). */
  readonly maxDepth: number
  /** Tag numbers a peer may use. Anything else is rejected. */
  readonly allowTags: ReadonlySet<number>
  /**
   * Data items in one top-level item: every head counts (each integer, string, float, simple value,
   * array, map, map key and tag). Default {@link DEFAULT_MAX_ITEMS}.
   */
  readonly maxItems?: number
  /** Entries (key and value pairs) in one map. Default {@link DEFAULT_MAX_MAP_ENTRIES}. */
  readonly maxMapEntries?: number
  /** Items in one array. Default {@link DEFAULT_MAX_ARRAY_LENGTH}. */
  readonly maxArrayLength?: number
}

// Measured with cbor-x 1.6.9 on Node 20 on the 2-core build machine, shared and loaded
// (test/unit/cbor-limits.test.ts keeps a coarse guard): the costliest items are small maps whose text
// keys the process has never seen (each key a new hidden class), 300-600 ns per item, so 100 000 of
// them decode in 30-60 ms (median about 40); empty byte strings, arrays and maps cost 60-300 ns,
// integers, floats and short text 5-20 ns. Unbounded, one 4 MiB payload took 0.6-1.2 s (4 Mi empty
// arrays, or 700 000 new keys in one map). One map slows down per key as it grows (100-300 ns a key at
// 50 000 entries, 300-500 ns at 150 000, 800 ns at 700 000): hence a limit of its own.
/** Default {@link CborLimits.maxItems}: decoding this many of the costliest items takes about 50 ms. */
export const DEFAULT_MAX_ITEMS = 100_000
/** Default {@link CborLimits.maxMapEntries}: below the size where one map's per-key cost starts to grow. */
export const DEFAULT_MAX_MAP_ENTRIES = 50_000
/** Default {@link CborLimits.maxArrayLength}: as many as {@link DEFAULT_MAX_ITEMS} allows. */
export const DEFAULT_MAX_ARRAY_LENGTH = 100_000

/** The limits zrpc applies to payloads (params, results, topic data) unless configured otherwise. */
export const DEFAULT_CBOR_LIMITS: CborLimits = {
  maxBytes: 4 * 1024 * 1024,
  maxDepth: 32,
  allowTags: new Set(),
  maxItems: DEFAULT_MAX_ITEMS,
  maxMapEntries: DEFAULT_MAX_MAP_ENTRIES,
  maxArrayLength: DEFAULT_MAX_ARRAY_LENGTH,
}

/** Why bytes were refused; a value, not a throw, so hot paths decide what to do with it. */
export class CborProfileError extends Error {
  override readonly name = 'CborProfileError'
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`)
  }
}

// One encoder for the process: useRecords false keeps our frames plain CBOR any library can read;
// cbor-x appends each result to its slab (it never rewrites earlier results in this mode), which is
// what makes the buffer-ownership rule in docs/protocol.md hold.
// useTag259ForMaps is honoured by cbor-x but missing from its typings.
const encoderOptions = {
  useRecords: false,
  variableMapSize: true,
  useTag259ForMaps: false,
  tagUint8Array: false,
  largeBigIntToFloat: false,
}
const encoder = new Encoder(encoderOptions)

const decoder = new Decoder({ useRecords: false, mapsAsObjects: true })
// cbor-x's decode takes an end offset, missing from its typings.
const decodeUpTo = decoder.decode.bind(decoder) as (source: Uint8Array, end: number) => unknown

/**
 * Encodes a value as plain CBOR.
 *
 * The result is a view into cbor-x's slab that no later encode overwrites; it is safe to hand to a
 * zeromq socket, and must not be written to afterwards.
 */
export function encodeCbor(value: unknown): Buffer {
  return encoder.encode(value)
}

/**
 * Checks that `buf` holds a CBOR sequence of items that all fit the profile, and returns the end
 * offset of each top-level item (a frame may carry several envelopes back to back, RFC 8742).
 * Stops at the first item over a limit.
 *
 * @example
 * ```ts
 * const ends = scanCbor(frame, limits)
 * if (ends instanceof CborProfileError) return drop(ends.message)
 * ```
 */
export function scanCbor(buf: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): number[] | CborProfileError {
  return scan(buf, limits, STOP)
}

/** A CBOR sequence that fits the profile, some of whose items may be over the item limits. */
export interface CborSequenceScan {
  /** End offset of each top-level item: item i spans `ends[i - 1] ?? 0` to `ends[i]`. */
  readonly ends: number[]
  /** Items over `maxItems`, `maxMapEntries` or `maxArrayLength`, by index in `ends`, with the first reason. */
  readonly overLimit: ReadonlyMap<number, CborProfileError>
}

/**
 * Like {@link scanCbor}, but an item over an item limit does not end the scan: it is listed in
 * `overLimit` and the scan goes on to find where it ends and to check its neighbours. For a frame of
 * envelopes, where one oversized envelope must not hide the others. Anything that breaks the profile
 * itself (bad bytes, a tag, nesting, a length past the end) still refuses the whole sequence, since
 * item boundaries past it cannot be trusted.
 *
 * @example
 * ```ts
 * const scan = scanCborSequence(frame, limits)
 * if (scan instanceof CborProfileError) return drop(scan.message)
 * for (const [index, err] of scan.overLimit) refuse(index, err.message)
 * ```
 */
export function scanCborSequence(buf: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): CborSequenceScan | CborProfileError {
  const ends = scan(buf, limits, COLLECT)
  if (ends instanceof CborProfileError) return ends
  const overLimit = found ?? NONE_OVER
  found = undefined
  return { ends, overLimit }
}

// What scan() found besides the ends: module state, so the common frame with nothing over a limit
// allocates no Map, and a payload check allocates no array of ends.
/** Items over an item limit, created on the first one (COLLECT mode). */
let found: Map<number, CborProfileError> | undefined
/** Top-level items read by the last scan. */
let itemCount = 0
/** Whether the last scan met a byte string or a tag, whose decoded values cbor-x may make views of its input. */
let sawViews = false
/** The shared, never written "nothing over a limit" of scanCborSequence. */
const NONE_OVER: ReadonlyMap<number, CborProfileError> = new Map()
// The scan's stacks, reused: a scan runs to its end synchronously, so one pair serves every call.
const pendingStack: number[] = [1]
const mapStateStack: number[] = [0]

const NOT_MAP = 0
const MAP_KEY = 1
const MAP_VALUE = 2

/** scan() modes: stop at the first item-limit error; collect them in `found`; one item, no ends. */
const STOP = 0
const COLLECT = 1
const ONE = 2
const NO_ENDS: number[] = []

/**
 * One pass over the bytes; item-limit errors go to `found` in COLLECT mode, else end the scan. In ONE
 * mode it stops after the first top-level item and returns NO_ENDS with `itemCount` 1 if that was all
 * the input, else 2 (the caller rescans to count); it sets `sawViews` in every mode.
 */
function scan(buf: Uint8Array, limits: CborLimits, mode: number): number[] | CborProfileError {
  found = undefined
  sawViews = false
  if (buf.length > limits.maxBytes) return new CborProfileError(`input of ${buf.length} bytes exceeds ${limits.maxBytes}`, 0)
  if (buf.length === 0) return new CborProfileError('empty input', 0)
  const maxItems = limits.maxItems ?? DEFAULT_MAX_ITEMS
  const maxMapEntries = limits.maxMapEntries ?? DEFAULT_MAX_MAP_ENTRIES
  const maxArrayLength = limits.maxArrayLength ?? DEFAULT_MAX_ARRAY_LENGTH
  const maxDepth = limits.maxDepth
  const ends: number[] = mode === ONE ? NO_ENDS : []
  // pending[d] = items still to read in the container open at depth d; depth 0 is the top level.
  const pending = pendingStack
  pending[0] = 1
  // mapState[d]: NOT_MAP, or for a map whether its next item is a key (for the key-type rule) or a value.
  // One array instead of two measured 30% faster over the whole scan.
  const mapState = mapStateStack
  mapState[0] = NOT_MAP
  let depth = 0
  let pos = 0
  const n = buf.length
  // Heads read in the current top-level item, and whether it is already over an item limit.
  let items = 0
  let over = false
  let limitError: CborProfileError | undefined

  while (true) {
    // Close every finished container, recording the end of each top-level item.
    while (pending[depth] === 0) {
      if (depth === 0) {
        if (mode === ONE) {
          itemCount = pos === n ? 1 : 2
          return ends
        }
        ends.push(pos)
        if (pos === n) return ends
        pending[0] = 1
        items = 0
        over = false
        break
      }
      depth--
    }
    if (pos >= n) return new CborProfileError('truncated input', pos)
    const start = pos
    const initial = buf[pos++]!
    const major = initial >> 5
    const info = initial & 0x1f
    pending[depth]!--
    const state = mapState[depth]!
    if (state !== NOT_MAP) {
      if (state === MAP_VALUE) mapState[depth] = MAP_KEY
      else if (major === 0 || major === 1 || major === 3) mapState[depth] = MAP_VALUE
      else return new CborProfileError('map key must be a text string or an integer', start)
    }
    if (++items > maxItems && !over) limitError = new CborProfileError(`more than ${maxItems} data items in one item`, start)

    let arg: number
    if (info < 24) arg = info
    else if (info === 24) {
      if (pos + 1 > n) return new CborProfileError('truncated input', start)
      arg = buf[pos]!
      pos += 1
    } else if (info === 25) {
      if (pos + 2 > n) return new CborProfileError('truncated input', start)
      arg = (buf[pos]! << 8) | buf[pos + 1]!
      pos += 2
    } else if (info === 26) {
      if (pos + 4 > n) return new CborProfileError('truncated input', start)
      arg = ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!)
      pos += 4
    } else if (info === 27) {
      if (pos + 8 > n) return new CborProfileError('truncated input', start)
      const hi = ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!)
      const lo = ((buf[pos + 4]! << 24) >>> 0) + ((buf[pos + 5]! << 16) | (buf[pos + 6]! << 8) | buf[pos + 7]!)
      // Lengths and tag numbers past 2^53 can never fit; integers of any size are fine.
      arg = hi * 2 ** 32 + lo
      pos += 8
    } else if (info === 31) {
      return new CborProfileError('indefinite lengths are not accepted', start)
    } else {
      return new CborProfileError(`reserved additional information ${info}`, start)
    }

    switch (major) {
      case 0:
      case 1:
        break
      case 2:
      case 3:
        if (major === 2) sawViews = true
        if (arg > n - pos) return new CborProfileError(`string length ${arg} exceeds the ${n - pos} bytes left`, start)
        pos += arg
        break
      case 4:
      case 5: {
        const entries = major === 5 ? arg * 2 : arg
        // Every item takes at least one byte: a larger count is a lie, refuse before allocating.
        if (entries > n - pos) return new CborProfileError(`container of ${arg} entries exceeds the ${n - pos} bytes left`, start)
        // The container itself sits at depth + 1, whether or not it holds anything.
        if (depth + 1 > maxDepth) return new CborProfileError(`nesting deeper than ${maxDepth}`, start)
        if (!over && limitError === undefined) {
          if (major === 5 && arg > maxMapEntries) limitError = new CborProfileError(`map of ${arg} entries exceeds ${maxMapEntries}`, start)
          else if (major === 4 && arg > maxArrayLength) limitError = new CborProfileError(`array of ${arg} items exceeds ${maxArrayLength}`, start)
        }
        if (entries > 0) {
          depth++
          pending[depth] = entries
          mapState[depth] = major === 5 ? MAP_KEY : NOT_MAP
        }
        break
      }
      case 6:
        sawViews = true
        if (!limits.allowTags.has(arg)) return new CborProfileError(`tag ${arg} is not accepted`, start)
        // The tag content is one more item in the same container, in the tag's place (a key cannot be
        // a tag, so that place is an array item or a map value).
        pending[depth]!++
        mapState[depth] = state
        break
      default:
        // major 7: false, true, null, undefined and floats only.
        if (info < 20 || info === 24) return new CborProfileError(`simple value ${arg} is not accepted`, start)
        break
    }
    if (limitError !== undefined) {
      if (mode !== COLLECT) return limitError
      // Keep walking to find where this item ends; its other excesses need no second report.
      found ??= new Map()
      found.set(ends.length, limitError)
      over = true
      limitError = undefined
    }
  }
}

/**
 * Decodes one item that {@link scanCbor} has already accepted.
 * Never call it on unchecked bytes from a peer.
 */
export function decodeChecked(buf: Uint8Array): unknown {
  return decoder.decode(buf)
}

/** Scans, then decodes a single item; for payloads carried inside an envelope. */
export function decodeCbor(buf: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): unknown {
  const checked = scan(buf, limits, ONE)
  if (checked instanceof CborProfileError) throw checked
  if (itemCount !== 1) {
    // More than one item: the full scan gives the verdict (a bad later item, or the count).
    const ends = scanCbor(buf, limits)
    if (ends instanceof CborProfileError) throw ends
    throw new CborProfileError(`expected one item, found ${ends.length}`, ends[0] ?? 0)
  }
  if (sawViews || buf.length > scratch.length) return decoder.decode(buf)
  // cbor-x caches a DataView on each input it is given: a payload is a new subarray every call, and a
  // new DataView (plus a property added to the Buffer) cost more than copying it into one reused
  // buffer. Safe only when nothing decoded can be a view of the input (no byte strings, no tags).
  scratch.set(buf)
  return decodeUpTo(scratch, buf.length)
}

/** Where decodeCbor copies payloads up to its size; grown never, larger payloads decode in place. */
const scratch = Buffer.alloc(64 * 1024)
