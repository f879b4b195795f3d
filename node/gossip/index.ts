export { AppTopics, checkTopicName, InvalidTopicError } from './app-topics.ts'
export type { ReceivedMessage } from './app-topics.ts'
