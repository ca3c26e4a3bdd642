/**
 * The context manager the server registers with the OpenTelemetry SDK: `context.with(ctx, fn)` makes `ctx`
 * the active context while `fn` runs synchronously, and no longer; callbacks and promise continuations do not
 * inherit it.
 *
 * Why not the SDK's default (AsyncLocalStorageContextManager): it turns on Node's async hooks for the whole
 * process, so every promise, timer and socket callback pays for carrying a context, traced or not. Measured on
 * `mlp` at concurrency 64 with every span exported: about 24 µs of main-thread time per request, nearly half
 * of what tracing cost (bench/results/tracing-context-2026-12-03.md). The request path does not need it: a
 * request's span travels with the request (InferenceRequest.span, GenerateRequest.span), and the pipeline,
 * the scheduler and the job runner use that span. What still reads the active context, the log lines written
 * while a call is handled synchronously, still finds it.
 *
 * Written here because OpenTelemetry's synchronous manager (StackContextManager) ships only in its browser SDK.
 */
import { ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

export class SynchronousContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const previous = this.current;
    this.current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  /** A function bound to `ctx` runs in it whenever it is called; anything else (an emitter) is returned as it is. */
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as (...args: unknown[]) => unknown;
    const bound = (thisArg: unknown, args: unknown[]) => this.with(ctx, () => fn.apply(thisArg, args));
    return function (this: unknown, ...args: unknown[]) {
      return bound(this, args);
    } as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}
