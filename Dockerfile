# Carapace gateway in a container: Node 24 on Debian (glibc: the prebuilt
# isolated-vm, better-sqlite3 and sqlite-vec binaries are used as-is, on amd64 and
# arm64 alike), running as an unprivileged user with all state in one volume.
#
#   docker build -t carapace .
#   docker run -d --name carapace -v carapace-data:/data \
#     -p 127.0.0.1:18789:18789 -e ANTHROPIC_API_KEY carapace
#
# Why --bind lan: inside the container 127.0.0.1 is the container's own loopback,
# which the published port cannot reach, so the gateway must listen on 0.0.0.0.
# Publish the port on the HOST's loopback (-p 127.0.0.1:18789:18789) unless you
# mean to expose it; `carapace doctor` inside the container reports bind.exposed
# because it cannot see how the host publishes the port — see the README.
FROM node:24-slim

# bubblewrap: the exec tool's sandbox (it needs user namespaces, which Docker's
# default seccomp profile denies: without them exec stays disabled, never unsandboxed).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/carapace
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# The source tree (core/, plugins/, manifests/, ui/ ...; .dockerignore leaves out
# tests, benches and any host node_modules). Owned by root: the gateway cannot
# rewrite its own code.
COPY . .

RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin carapace \
 && mkdir -p /data /home/carapace-cache \
 && chown carapace:carapace /data /home/carapace-cache && chmod 700 /data /home/carapace-cache

ENV CARAPACE_HOME=/data \
    CARAPACE_COMPILE_CACHE=/home/carapace-cache/compile-cache \
    MALLOC_ARENA_MAX=1 \
    NODE_ENV=production
USER carapace
VOLUME ["/data"]
EXPOSE 18789

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["node", "-e", "const i = JSON.parse(require('fs').readFileSync(process.env.CARAPACE_HOME + '/run/gateway.json', 'utf8')); const s = i.tls ? 'https' : 'http'; require(s).get(s + '://127.0.0.1:' + i.port + '/healthz', { rejectUnauthorized: false, timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]

# tini forwards SIGTERM so the gateway stops cleanly (finishes in-flight work).
# The gateway's node flags and environment: core/gateway/node-flags.ts.
ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=1", "--expose-gc", "--no-node-snapshot", "/opt/carapace/core/cli/bin.js"]
CMD ["start", "--bind", "lan", "--port", "18789"]
