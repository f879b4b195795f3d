export { AppTopics, checkTopicName, InvalidTopicError } from './app-topics.ts'
export type { ReceivedMessage } from './app-topics.ts'
export { encodeBridgedMessage, decodeBridgedMessage, isBridgedMessage, isAttested } from './bridged-message.ts'
export type { BridgedMessage } from './bridged-message.ts'
