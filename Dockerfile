# The notary image: one image for the API (`notary serve`), validators
# (`notary node run`) and the one-shot genesis. Used by compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/notary
COPY pyproject.toml README.md ./
COPY storage storage
COPY chain chain
COPY notary notary
COPY cli cli
# pyeclib's wheel carries liberasurecode and ISA-L: no system packages needed.
RUN pip install . && useradd --system --uid 10001 --home-dir /var/lib/notary notary \
    && mkdir -p /var/lib/notary && chown notary /var/lib/notary
COPY deploy/genesis.sh /usr/local/bin/notary-genesis
USER notary
EXPOSE 8080 7100
ENTRYPOINT ["notary"]
CMD ["--help"]
