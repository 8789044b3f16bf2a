// @types/jmespath leaves out `compile`, which jmespath.js exports (the parser alone, for syntax checks)
declare module "jmespath" {
  export function compile(expression: string): unknown;
}
