/** The demo's contract: a small shop. */
import { Type } from 'typebox'
import { defineService } from '../service/contract.js'

export const Shop = defineService('shop', {
  price: { params: Type.Object({ sku: Type.String({ minLength: 1 }) }), result: Type.Object({ sku: Type.String(), cents: Type.Integer() }), idempotent: true },
  checkout: {
    params: Type.Object({ items: Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) }), { minItems: 1 }) }),
    result: Type.Object({ order: Type.Integer(), totalCents: Type.Integer() }),
  },
  report: { params: Type.Object({ ms: Type.Integer({ minimum: 0 }) }), result: Type.String() },
})
