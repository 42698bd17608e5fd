/** The contract the broker bench calls: echo a string. */
import { Type } from 'typebox'
import { defineService } from '../../lib/index.js'

export const Echo = defineService('echo', { echo: { params: Type.Object({ data: Type.String() }), result: Type.String() } })
