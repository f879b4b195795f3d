export {
  GUEST_PAGE_SIZE, GuestLayout, GuestParamOffsets, GUEST_MAGIC, GUEST_LAYOUT_VERSION, InvalidGuestParamsError,
  assemblePageWriter, defaultPageWriterParams, loadPageWriter, readGuestChecksum, readGuestCounter, readPageWriterParams,
  validatePageWriterParams, WRITE_PATTERNS
} from './page-writer.ts'
export type { PageWriterParams, WritePattern } from './page-writer.ts'
export { fullPageStream, pageStamp, pagesWrittenBetween, verifyGuestMemory } from './guest-verifier.ts'
export type { GuestMemoryCheck } from './guest-verifier.ts'
