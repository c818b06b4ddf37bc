# The extender image: `redis-extender` on Python 3.11, as an unprivileged user.
#   docker build -t redis-extender:0.1.0 .
# deploy/extender-deployment.yaml runs it with `serve --in-cluster` over HTTPS on 8443.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what .dockerignore lets through: pyproject.toml, README.md and extender/.
COPY . /tmp/src
RUN pip install /tmp/src && rm -rf /tmp/src

# A numeric user, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 redis-extender \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin redis-extender
USER 10001:10001
WORKDIR /

# 8443: HTTPS as deployed; 8888: the plain-HTTP default below.
EXPOSE 8443 8888
ENTRYPOINT ["redis-extender"]
# Without arguments: plain HTTP on all interfaces (the Deployment passes its own arguments).
CMD ["serve", "--bind", "0.0.0.0:8888"]
