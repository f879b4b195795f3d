export class HomeError extends Error {
  readonly name = 'HomeError'
}
