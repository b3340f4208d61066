/**
 * The Node gateway against the shared gateway cases (runtime-fixtures/gateway-cases.ts); the native
 * gateway runs the same cases in gateway-native-cases.test.ts.
 */
import { runGatewayCases } from './runtime-fixtures/gateway-cases.ts';

runGatewayCases('node');
