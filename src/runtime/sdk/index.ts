/** The function SDK: what handler modules and supervisors import. */
export type { DispatcherStats } from './dispatcher.ts';
export { ENV, type FunctionEnvOptions, functionEnv } from './env.ts';
export { Link, type RegisterMode, socketFd } from './link.ts';
export { DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_QUEUE, EXIT_RESTART, type FunctionInstance, loadHandler, type RunFunctionOptions, runFunction } from './run.ts';
export { FunctionError, type Handler, type HandlerResult, type Request } from './types.ts';
export { DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, DESC_SIZE, type Desc, FrameReader, readDesc, writeDesc } from './wire.ts';
