# Vigil in Kafka mode, in two stages: the first compiles Vigil's engine (Rust, native/)
# and durable-rules (C) into wheels; the second installs those, with no compiler in it.
ARG PYTHON=3.11-slim-bookworm

FROM python:${PYTHON} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Debian's Rust is older than the engine's rust-version (native/Cargo.toml).
ARG RUST=1.82.0
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain ${RUST}
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY native ./native
COPY vigil ./vigil
COPY flows ./flows
COPY rules ./rules
COPY connectors ./connectors
RUN pip install --no-cache-dir -c constraints.txt --upgrade pip \
 && pip wheel --no-cache-dir -c constraints.txt --build-constraint constraints.txt \
      --wheel-dir /wheels .

FROM python:${PYTHON}
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir --no-index --find-links /wheels -c /tmp/constraints.txt vigil \
 && rm -rf /wheels /tmp/constraints.txt \
 && python -c "import vigil._native" \
 && useradd --system --home /var/lib/vigil vigil \
 && mkdir -p /var/lib/vigil/recovery \
 && chown -R vigil /var/lib/vigil
WORKDIR /var/lib/vigil
# Settings and rules are not baked in: docker-compose.yml mounts them (--config, and
# rules.paths); without them Vigil runs on its built-in defaults and bundled rules.
USER vigil
EXPOSE 9464
ENTRYPOINT ["vigil"]
CMD ["run", "--kafka", "kafka:9092", "--recovery-dir", "/var/lib/vigil/recovery"]
