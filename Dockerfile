# AgentHub's image: one static binary on distroless, which brings CA
# certificates (for Slack, GitHub, Google and Redis over TLS) and a non-root
# user (65532, "nonroot"), and no shell or package manager to attack.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t agenthub .
#
# docs/INSTALL.md says how to run it; cmd/bot/dockerfile_test.go checks the
# properties below, since no test can build the image.

FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, in their own layer, so that a source change does not
# download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY cmd ./cmd
COPY internal ./internal

# CGO off: a static binary that needs no libc in the runtime image.
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/agenthub ./cmd/bot

# The embedded store's directory, owned by the runtime user: distroless has
# no shell to create it there. A named volume mounted on /data starts as a
# copy of it, ownership included.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agenthub /agenthub
COPY --from=build --chown=65532:65532 /out/data /data

# Defaults for a container; every secret comes at run time (-e, --env-file
# or *_FILE from mounted secrets), never from the image.
ENV AGENTHUB_HTTP_ADDR=:8080 \
    AGENTHUB_STORE=bolt:/data/agenthub.db
VOLUME /data
EXPOSE 8080

USER nonroot:nonroot
ENTRYPOINT ["/agenthub"]
