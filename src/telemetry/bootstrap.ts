/**
 * Imported first by the CLI entry point: starts OpenTelemetry (when OTEL_* variables ask for it) before
 * anything loads @grpc/grpc-js or other instrumentable modules.
 */
import { startTracing, type TelemetryHandle } from './tracing';

export const telemetry: TelemetryHandle | undefined = startTracing();
