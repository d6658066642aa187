// The types of the ESM entry (ai-sdk.mjs): the same exports as ai-sdk.d.ts.
export * from './ai-sdk.js'
