# syntax=docker/dockerfile:1
#
# tensorgate container image.
#
#   docker build -t tensorgate .
#   docker run --rm -p 50051:50051 tensorgate                      # serves the bundled models/
#   docker run --rm -p 50051:50051 -v "$PWD/my-models:/models:ro" -e TENSORGATE_MODELS=/models tensorgate
#   docker run --rm --network host tensorgate models --address 127.0.0.1:50051   # the CLI as a client
#
# Settings come from TENSORGATE_* variables or flags after the image name (see `tensorgate --help`).
# ONNX Runtime's CPU binaries ship inside the onnxruntime-node package; nothing is downloaded at build time
# besides the npm registry tarballs.

ARG NODE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------------- build
FROM ${NODE_IMAGE} AS build
WORKDIR /app

# Dependencies first, so this layer is reused while only sources change. .npmrc comes along: it tells
# onnxruntime-node's installer to skip the CUDA download (onnxruntime-node-install=skip).
# --ignore-scripts because npm ci would also run this package's own `prepare` (tsc) before src/ is here;
# no dependency needs its install script (onnxruntime-node ships the CPU binaries and its installer exits
# at once with the .npmrc setting; @bufbuild/buf is a development tool).
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund

COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
COPY console ./console
# Compile, drop the development dependencies, and drop the macOS and Windows binaries onnxruntime-node
# bundles (~220 MB): the image runs Linux only.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v*/darwin node_modules/onnxruntime-node/bin/napi-v*/win32

# ---------------------------------------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# MALLOC_ARENA_MAX: the worker threads' malloc arenas (one per thread by default) keep freed inference memory;
# two arenas cut settled RSS after sustained mixed load from ~317 to ~281 MB (measured on the bundled models).
ENV NODE_ENV=production \
    TENSORGATE_HOST=0.0.0.0 \
    TENSORGATE_PORT=50051 \
    MALLOC_ARENA_MAX=2

# Owned by root and only readable by the service user: the server writes nothing to disk.
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY proto ./proto
COPY console/public ./console/public
COPY models ./models
COPY deploy/healthcheck.js ./deploy/healthcheck.js

# The node:* images ship a non-root `node` user (uid 1000).
USER node

# 50051: gRPC (ModelService, grpc.health.v1.Health, reflection). 8080: HTTP (/metrics for Prometheus,
# /healthz liveness, /readyz readiness).
EXPOSE 50051 8080

# Health/Check on 127.0.0.1:$TENSORGATE_PORT with a 3 s deadline; NOT_SERVING while models load and while
# draining, hence the start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "deploy/healthcheck.js"]

# Exec form: node is PID 1 and receives SIGTERM itself; the server then reports NOT_SERVING, stops
# accepting calls and drains in-flight ones (TENSORGATE_SHUTDOWN_GRACE_MS, default 10 s; keep
# `docker stop --time` above it).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
