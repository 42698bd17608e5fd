/**
 * Compiled TypeBox validators for a contract, built once per definition and shared.
 */
import { Compile } from 'typebox/compile'
import type { TSchema } from 'typebox'
import { RpcError, type StatusCode } from '../errors.js'
import type { MethodDefinition, ServiceDefinition } from './contract.js'

/** One validation problem, as sent in an error's `details`. */
export interface ValidationIssue {
  /** JSON pointer into the value, '' for the value itself. */
  readonly path: string
  readonly message: string
}

export interface MethodValidators {
  readonly definition: MethodDefinition
  /** Returns undefined when valid, else an RpcError with the issues in `details`. */
  params(value: unknown): RpcError | undefined
  /** The result of a unary method, or one item of a stream. */
  result(value: unknown): RpcError | undefined
  /** Whether the method is a server stream. */
  readonly stream: boolean
}

const cache = new WeakMap<ServiceDefinition, Map<string, MethodValidators>>()

/** Validators for every method of a service, compiled on first use. */
export function validatorsFor(service: ServiceDefinition): Map<string, MethodValidators> {
  let methods = cache.get(service)
  if (methods === undefined) {
    methods = new Map()
    for (const [name, definition] of Object.entries(service.methods)) {
      const stream = definition.stream !== undefined
      methods.set(name, {
        definition,
        stream,
        params: checker(definition.params, 'INVALID_ARGUMENT', `invalid params for ${service.name}.${name}`),
        result: stream
          ? checker(definition.stream!, 'INTERNAL', `item of ${service.name}.${name} does not match its schema`)
          : checker(definition.result!, 'INTERNAL', `result of ${service.name}.${name} does not match its schema`),
      })
    }
    cache.set(service, methods)
  }
  return methods
}

/** At most this many issues travel in an error: enough to fix a call, bounded for a hostile value. */
const MAX_ISSUES = 20

function checker(schema: TSchema, code: StatusCode, message: string): (value: unknown) => RpcError | undefined {
  const validator = Compile(schema)
  return (value) => {
    if (validator.Check(value)) return undefined
    const issues: ValidationIssue[] = validator
      .Errors(value)
      .slice(0, MAX_ISSUES)
      .map((e) => ({ path: e.instancePath, message: e.message }))
    const first = issues[0]
    return new RpcError(code, first === undefined ? message : `${message}: ${first.path || '/'} ${first.message}`, issues)
  }
}
