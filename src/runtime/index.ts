/**
 * `bpfctl/runtime`: what a handler module imports. A handler needs the types of what it gets and
 * returns (`Request`, `Handler`, `HandlerResult`) and `FunctionError` to fail a request with a
 * status. Supervisors, gateways and tools built on bpfctl import the modules they use directly
 * (`src/runtime/supervisor`, `src/runtime/gateway`, `src/runtime/pool`, `src/maps`): those are not
 * a handler's API, and the wire format under them may change with bpfctl.
 */
export { FunctionError, type Handler, type HandlerResult, type Request } from './sdk/types.ts';
