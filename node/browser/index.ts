export { browserClientFeature, browserAddrs, BROWSER_CERTIFICATE_TTL_MS } from './browser-feature.ts'
export type { BrowserInvite } from './browser-feature.ts'
export { StaticSite, HttpPortInUseError } from './static-site.ts'
export type { SiteFile, StaticSiteOptions } from './static-site.ts'
