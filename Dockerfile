# syntax=docker/dockerfile:1
#
# The Switchboard image: one static binary that runs every service
# (`run users`, `run orders`, …) and `dev`. Build it with
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t switchboard .
#
# (podman build works the same). The final stage holds only the binary and
# the CA certificates for outgoing HTTPS (webhooks): no shell, no package
# manager, a numeric non-root user. Where no base-image registry can be
# reached, deploy/image/build makes the same final stage from a binary built
# on the host (deploy/image/Dockerfile.prebuilt); see docs/operations.md.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/switchboard ./cmd/switchboard \
 && mkdir /out/data

# Keep this stage the same as in deploy/image/Dockerfile.prebuilt: .ci/run
# (deploy/image/check) compares the two.
FROM scratch
ARG VERSION=dev
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/switchboard /usr/local/bin/switchboard
COPY --from=build --chown=65532:65532 /out/data /data
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Go microservices over NATS: every service in one binary" \
      org.opencontainers.image.source="https://github.com/devloop/switchboard" \
      org.opencontainers.image.version="${VERSION}"
# 65532 is the conventional "nonroot" id (distroless); numeric, so that
# Kubernetes' runAsNonRoot can check it without an /etc/passwd.
USER 65532:65532
# /data is the only writable place: `dev` keeps its JetStream store there
# (mount a volume to keep it); `run` writes nothing, so a read-only root
# file system is fine. The ops HTTP server listens on every interface of
# the container, so that -p 8080:8080 and the kubelet reach it.
ENV SWITCHBOARD_DATA_DIR=/data \
    SWITCHBOARD_HTTP_LISTEN=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["--help"]
