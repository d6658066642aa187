// embedding-service/daemon (CommonJS): folder-mcp's embedding backends, in process. The code is in daemon/;
// types and docs: daemon.d.ts.
'use strict'

module.exports = require('./daemon/index.js')
