// embedding-service/ai-sdk (CommonJS): an embedding model for the Vercel AI SDK's `embed` and `embedMany`.
'use strict'

module.exports = require('./adapters/ai-sdk.js')
