/**
 * The native gateway (src/runtime/gateway-native) against the shared gateway cases
 * (runtime-fixtures/gateway-cases.ts), the same ones the Node gateway passes in
 * runtime-gateway.test.ts. gateway-native.test.ts runs it under a real chain.
 */
import { runGatewayCases } from './runtime-fixtures/gateway-cases.ts';

runGatewayCases('native');
