# syntax=docker/dockerfile:1
# The IdP on Node 22 (it runs TypeScript directly through Node's type
# stripping; there is no build step). Production dependencies only.
# Production builds pin the base image by digest (docs/deploy-aws.md):
#   docker build --build-arg NODE_IMAGE=node:22-slim@sha256:<digest> -t idp .
ARG NODE_IMAGE=node:22-slim
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts=false && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    DATA_DIR=/data \
    PORT=3000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY adapters ./adapters
COPY migrations ./migrations
COPY views ./views
# the integrator guide, linked from the landing page (/docs/openid-configuration.md)
COPY openid-configuration.md ./
RUN mkdir -p /data && chown node:node /data && ln -s /app/bin/idp /usr/local/bin/idp
USER node
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node as PID 1 receives SIGTERM directly and shuts down gracefully
CMD ["node", "src/main.ts"]
