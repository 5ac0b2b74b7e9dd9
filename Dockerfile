# Vigil in Kafka mode. durable-rules builds from source, hence the compiler.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vigil
COPY pyproject.toml README.md constraints.txt ./
COPY vigil ./vigil
COPY flows ./flows
COPY rules ./rules
COPY connectors ./connectors
COPY config ./config
RUN pip install --no-cache-dir -c constraints.txt --upgrade pip \
 && pip install --no-cache-dir -c constraints.txt --build-constraint constraints.txt . \
 && useradd --system --home /var/lib/vigil vigil \
 && mkdir -p /var/lib/vigil/recovery \
 && chown -R vigil /var/lib/vigil

USER vigil
EXPOSE 9464
ENTRYPOINT ["vigil"]
CMD ["run", "--kafka", "kafka:9092", "--recovery-dir", "/var/lib/vigil/recovery", "--config", "/opt/vigil/config/vigil.toml"]
