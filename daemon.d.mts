// The types of the daemon adapter's ESM entry (daemon.mjs): the same named exports as daemon.d.ts, and a
// default export that is the object `require('embedding-service/daemon')` returns.
import * as adapter from './daemon.js'

export * from './daemon.js'
export default adapter
