// The types of the ESM entry (index.mjs): the same named exports as index.d.ts, and a default export that is
// the object `require('embedding-service')` returns.
import * as binding from './index.js'

export * from './index.js'
export default binding
