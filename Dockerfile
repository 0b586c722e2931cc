# syntax=docker/dockerfile:1
# The callback-monitor image: docker build -t callback-monitor:0.1.0 .
#
# The base is pinned by tag only (both FROM lines): pin it by digest too
# (python:3.11-slim-bookworm@sha256:...) in your own build, where the digest can be looked up and
# kept current; this repository is developed offline, where it cannot.

# --- build: the project's wheel, and wheels of its dependencies ---------------------------------
# The labels the final image must carry (.hadolint.yaml) are not needed on this throwaway stage.
# hadolint ignore=DL3049
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed, nothing else ------------------------------------------------
FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="callback-monitor" \
      org.opencontainers.image.description="Watches Tencent RTC room callback configurations for drift from a desired state kept in git" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/example/callback-monitor"

# Nothing is written at run time: no bytecode (pip compiled it at install), no pip cache, and HOME
# points at /tmp, the one writable mount under a read-only root filesystem.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp

# --no-index: the runtime stage installs exactly the wheels built above, from nowhere else. The
# bind mount keeps the wheel files themselves out of the image's layers.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "callback-monitor==${VERSION}" \
    && groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin monitor

# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
EXPOSE 9765
# No HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz itself (see deploy/).
ENTRYPOINT ["callback-monitor"]
CMD ["serve"]
