// The hyphae web client. Its browser code lives in app/ and is bundled by build.ts; this file
// is what Node code (the daemon that serves the bundle, tests) uses of it.
export { buildBrowserClient, BROWSER_BUNDLE_DIR, BROWSER_BUNDLE_FILES, BrowserBuildError } from './build.ts'
export type { BrowserBundle } from './build.ts'
export { encodeStoredMembership, decodeStoredMembership, MEMBERSHIP_STORAGE_KEY, NODE_KEY_STORAGE_KEY, StoredMembershipError } from './app/stored-membership.ts'
export type { StoredMembership } from './app/stored-membership.ts'
export { PAGE_CHAT_TOPIC } from './app/app-chat.ts'
export { collectProofMessage } from './app/join-proof.ts'
